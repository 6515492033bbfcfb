//! What `msgen dev` runs, worked out without touching anything: the processes of a
//! project (every deployable crate and the gateway) with the environment that
//! points them at each other on 127.0.0.1, the `.env` they read, and what a
//! `cargo build` said it rebuilt. The command (`commands::dev`) starts, watches
//! and stops them.

use std::collections::BTreeMap;

use crate::context::ProjectCtx;
use crate::model::Project;

/// One process of the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// As its logs are prefixed: the service's name, `monolith` or `gateway`.
    pub name: String,
    /// The cargo package whose binary it runs; `None` for an adopted monolith,
    /// run with `cargo run` in its own directory.
    pub package: Option<String>,
    /// The adopted monolith's directory, relative to the project.
    pub dir: Option<String>,
    pub port: u16,
    /// What it is started with, on top of `.env` and msgen's own environment.
    pub env: BTreeMap<String, String>,
    /// Polled until it answers 200: `/health/ready` where the database is
    /// checked, `/health` for the gateway.
    pub ready_path: &'static str,
}

/// The secret `msgen dev` uses when `.env` has none: the README's local one.
pub const LOCAL_JWT_SECRET: &str = "local-development-secret-0123456789";

/// The processes of `project`, in start order: an adopted monolith first (its
/// migrations make the tables split services read), the services, the gateway.
/// `dotenv` is the project's `.env`; it gives `JWT_SECRET` and anything adopted
/// code reads, and each process gets it whole.
pub fn processes(project: &Project, dotenv: &BTreeMap<String, String>) -> Vec<Proc> {
    // Only what the processes need is read: whether sqlx's macros are on is not.
    let ctx = ProjectCtx::new(project, Default::default());
    let mut base = dotenv.clone();
    base.insert("HOST".into(), "127.0.0.1".into());
    if ctx.has_auth && dotenv.get("JWT_SECRET").is_none_or(|s| s.is_empty()) {
        base.insert("JWT_SECRET".into(), LOCAL_JWT_SECRET.into());
    }
    if ctx.has_events {
        base.entry("NATS_URL".into())
            .or_insert_with(|| "nats://127.0.0.1:4222".into());
    }
    let mut out = Vec::new();
    if let Some(m) = &ctx.external_monolith {
        let mut env = base.clone();
        env.insert("PORT".into(), m.port.to_string());
        if m.is_postgres {
            env.insert("DATABASE_URL".into(), m.local_database_url.clone());
        }
        out.push(Proc {
            name: "monolith".into(),
            package: None,
            dir: Some(m.path.clone()),
            port: m.port,
            env,
            ready_path: "/health",
        });
    }
    for s in &ctx.deployables {
        let mut env = base.clone();
        env.insert("PORT".into(), s.port.to_string());
        if s.has_db {
            env.insert("DATABASE_URL".into(), s.local_database_url.clone());
        }
        for d in &s.http_deps {
            env.insert(
                format!("{}_SERVICE_URL", d.upper),
                format!("http://127.0.0.1:{}", d.port),
            );
        }
        out.push(Proc {
            name: s.name.clone(),
            package: Some(s.crate_name.clone()),
            dir: None,
            port: s.port,
            env,
            ready_path: if s.adopted {
                "/health"
            } else {
                "/health/ready"
            },
        });
    }
    let mut env = base;
    env.insert("PORT".into(), ctx.gateway_port.to_string());
    for u in &ctx.upstreams {
        env.insert(u.env.clone(), format!("http://127.0.0.1:{}", u.port));
    }
    out.push(Proc {
        name: "gateway".into(),
        package: Some("gateway".into()),
        dir: None,
        port: ctx.gateway_port,
        env,
        ready_path: "/health",
    });
    out
}

/// `KEY=VALUE` lines of a `.env` file: comments, blank lines and `export ` are
/// skipped, and one pair of surrounding quotes is taken off a value.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(v);
            (k.trim().to_string(), unquoted.to_string())
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// A binary `cargo build --message-format=json` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub executable: String,
    /// Not rebuilt by this build: a process running it need not restart.
    pub fresh: bool,
}

/// The binaries in `cargo build --message-format=json` output, by name.
pub fn built_binaries(json_lines: &str) -> BTreeMap<String, Built> {
    let mut out = BTreeMap::new();
    for line in json_lines.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        if is_bin {
            out.insert(
                name.to_string(),
                Built {
                    executable: exe.to_string(),
                    fresh: msg["fresh"].as_bool().unwrap_or(false),
                },
            );
        }
    }
    out
}

/// Whether a change to `rel` (a path relative to the project) can change what
/// runs: sources, manifests, migrations, `.env` and `services.toml`; not build
/// output, the lock file cargo writes, msgen's records, version control or an
/// editor's swap files.
pub fn matters(rel: &str) -> bool {
    let ignored_dir = rel
        .split('/')
        .any(|c| c == "target" || c == ".git" || c == ".msgen" || c == "node_modules");
    let name = rel.rsplit('/').next().unwrap_or(rel);
    // Cargo writes the lock file itself as it builds.
    let scratch = rel == "Cargo.lock"
        || name.starts_with(".#")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name.starts_with(".msgen-");
    !ignored_dir && !scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Project {
        Project::parse(text, std::path::Path::new("services.toml")).unwrap()
    }

    #[test]
    fn every_process_is_pointed_at_the_others_on_loopback() {
        let p = project(include_str!("../examples/blogsys.toml"));
        let env =
            parse_dotenv("JWT_SECRET=from-dot-env-0123456789abcdef0123456789\nRUST_LOG=debug\n");
        let procs = processes(&p, &env);
        let names: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["auth", "user", "blog", "gateway"]);
        let blog = &procs[2];
        assert_eq!(blog.package.as_deref(), Some("blog-service"));
        assert_eq!(blog.env["PORT"], "3003");
        assert_eq!(blog.env["HOST"], "127.0.0.1");
        assert_eq!(blog.env["USER_SERVICE_URL"], "http://127.0.0.1:3002");
        assert_eq!(blog.env["NATS_URL"], "nats://127.0.0.1:4222");
        assert!(
            blog.env["DATABASE_URL"].starts_with("postgres://"),
            "{:?}",
            blog.env
        );
        assert_eq!(blog.env["RUST_LOG"], "debug");
        assert_eq!(
            blog.env["JWT_SECRET"],
            "from-dot-env-0123456789abcdef0123456789"
        );
        let gateway = &procs[3];
        assert_eq!(gateway.env["PORT"], "8080");
        assert_eq!(gateway.env["AUTH_SERVICE_URL"], "http://127.0.0.1:3001");
        assert_eq!(gateway.ready_path, "/health");
        // No secret in .env: the README's local one, never an empty one.
        let procs = processes(&p, &parse_dotenv("JWT_SECRET=\n"));
        assert_eq!(procs[0].env["JWT_SECRET"], LOCAL_JWT_SECRET);
    }

    #[test]
    fn a_monolith_is_one_process_behind_the_gateway() {
        let p = project(include_str!("../examples/monolith.toml"));
        let procs = processes(&p, &BTreeMap::new());
        let names: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
        assert!(
            names.contains(&"monolith") && names.last() == Some(&"gateway"),
            "{names:?}"
        );
    }

    #[test]
    fn dotenv_lines_are_read_as_a_shell_would() {
        let env = parse_dotenv(
            "# comment\n\nexport A=1\nB = \"two words\"\nC='x=y'\nnot a pair\n=empty\n",
        );
        assert_eq!(env.len(), 3, "{env:?}");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x=y");
    }

    #[test]
    fn cargo_says_which_binaries_it_rebuilt() {
        let out = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"common"},"executable":null,"fresh":false}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"blog-service"},"executable":"/t/debug/blog-service","fresh":false}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"gateway"},"executable":"/t/debug/gateway","fresh":true}
{"reason":"build-finished","success":true}
not json"#;
        let built = built_binaries(out);
        assert_eq!(built.len(), 2);
        assert!(!built["blog-service"].fresh);
        assert!(built["gateway"].fresh);
        assert_eq!(built["gateway"].executable, "/t/debug/gateway");
    }

    #[test]
    fn only_sources_trigger_a_rebuild() {
        assert!(matters("services/blog/src/handlers/post.rs"));
        assert!(matters("services.toml"));
        assert!(matters("services/blog/migrations/0002_x.sql"));
        assert!(!matters("target/debug/blog-service"));
        assert!(!matters(".msgen/base/gateway/src/routes.rs"));
        assert!(!matters("services/blog/src/.post.rs.swp"));
        assert!(!matters("services/blog/src/post.rs~"));
        assert!(!matters(".git/index"));
        assert!(!matters("Cargo.lock"));
    }
}
