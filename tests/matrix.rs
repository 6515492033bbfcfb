//! The combination matrix: `services.toml` files generated from the features that
//! change the rendered code, cut to pairwise coverage, each rendered and checked
//! (`cargo fmt --check`, `cargo clippy --all-targets -D warnings`) in the shared
//! target directory; a sample in which every level of every feature occurs is also
//! built and its own tests run against the machine's PostgreSQL and NATS.
//!
//! `MSGEN_MATRIX_CASE=N` runs case N alone; `MSGEN_MATRIX_LIST=1` prints the cases.
//! Each case prints how long it took: the matrix's cost in CI is measured here.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use common::pairwise;
use common::run::{build_bins, call, free_port, wait_healthy, Proc};
use common::{assert_ok, cargo, msgen, require_nats, require_postgres, DropDb, CARGO_LOCK};
use msgen::model::{DatabaseKind, Project};

/// The features, in the order of a case's levels.
const FACTORS: &[(&str, &[&str])] = &[
    ("layout", &["services", "monolith", "split"]),
    ("auth", &["none", "service"]),
    ("events", &["none", "publish", "consume", "both"]),
    ("clients", &["none", "depends_on"]),
    ("databases", &["postgres", "sqlite", "mixed", "none"]),
    ("access", &["protected", "public", "mixed"]),
    (
        "fields",
        &["required", "optional", "defaults", "refs", "none"],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq)]
struct Features {
    layout: &'static str,
    auth: bool,
    events: &'static str,
    clients: bool,
    databases: &'static str,
    access: &'static str,
    fields: &'static str,
}

impl Features {
    fn of(case: &[usize]) -> Self {
        let level = |i: usize| FACTORS[i].1[case[i]];
        Self {
            layout: level(0),
            auth: level(1) == "service",
            events: level(2),
            clients: level(3) == "depends_on",
            databases: level(4),
            access: level(5),
            fields: level(6),
        }
    }

    /// Whether the combination can be written at all (not whether msgen accepts it:
    /// every possible case must be accepted).
    fn possible(case: &[usize]) -> bool {
        let f = Self::of(case);
        // Modules of a monolith share one database and take no events (yet).
        if f.layout != "services"
            && (f.events != "none" || !matches!(f.databases, "postgres" | "sqlite"))
        {
            return false;
        }
        // Stateless services hold no resources and cannot remember handled events.
        if f.databases == "none" && (f.fields != "none" || matches!(f.events, "consume" | "both")) {
            return false;
        }
        true
    }
}

/// Every field type, written for the `fields` level.
fn item_fields(level: &str) -> String {
    let all = [
        ("title", "string", "\"untitled\""),
        ("body", "text", "\"\""),
        ("contact", "email", "\"nobody@example.com\""),
        ("quantity", "i32", "0"),
        ("views", "i64", "9000000000"),
        ("price", "f64", "0.5"),
        ("active", "bool", "true"),
        ("released_at", "datetime", "\"2024-01-01T00:00:00Z\""),
    ];
    let fields: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, (name, ty, default))| match level {
            "optional" => format!("{name} = \"{ty}?\""),
            // Half with a default and required, half with a default and optional.
            "defaults" if i % 2 == 0 => {
                format!("{name} = {{ type = \"{ty}\", default = {default} }}")
            }
            "defaults" => format!("{name} = {{ type = \"{ty}?\", default = {default} }}"),
            _ => format!("{name} = \"{ty}\""),
        })
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// The `services.toml` of a case.
fn config(name: &str, f: Features) -> String {
    let mut t = String::new();
    let project_db = if f.databases == "sqlite" {
        "sqlite"
    } else if f.databases == "none" {
        "none"
    } else {
        "postgres"
    };
    writeln!(
        t,
        "[project]\nname = \"{name}\"\ndatabase = \"{project_db}\"\n"
    )
    .unwrap();
    writeln!(t, "[gateway]\nport = 8080\n").unwrap();
    if f.layout != "services" {
        writeln!(t, "[monolith]\nport = 3000\n").unwrap();
    }
    let monolith = if f.layout != "services" {
        "monolith = true\n"
    } else {
        ""
    };
    let public = |svc: &str| match f.access {
        "public" => "public = true\n",
        "mixed" if svc == "catalog" => "public = true\n",
        _ => "",
    };
    // Resources, unless the level is "none" (services with a database and no table
    // of their own are possible too).
    let stateful = f.fields != "none";

    if f.auth {
        let db = if f.databases == "none" {
            "database = \"postgres\"\n"
        } else {
            ""
        };
        writeln!(
            t,
            "[[services]]\nname = \"auth\"\ntemplate = \"auth\"\n{db}{monolith}"
        )
        .unwrap();
    }

    // catalog: the service every other one calls.
    write!(
        t,
        "[[services]]\nname = \"catalog\"\n{monolith}{}",
        public("catalog")
    )
    .unwrap();
    match f.events {
        "publish" | "consume" => t.push_str("publishes = [\"item.created\"]\n"),
        "both" => t.push_str("publishes = [\"item.created\"]\nconsumes = [\"order.placed\"]\n"),
        _ => {}
    }
    if stateful {
        writeln!(
            t,
            "\n  [[services.resources]]\n  name = \"item\"\n  fields = {}",
            item_fields(f.fields)
        )
        .unwrap();
        if f.fields == "refs" {
            t.push_str("\n  [[services.resources]]\n  name = \"part\"\n  fields = { item_id = \"ref:item\", spare_for = \"ref:item?\", label = \"string\" }\n");
            // A tree: its only reference is to its own resource.
            t.push_str("\n  [[services.resources]]\n  name = \"category\"\n  fields = { title = \"string\", parent_id = \"ref:category?\" }\n");
        }
    }
    t.push('\n');

    // orders: calls catalog when `clients`, refers across services when both.
    write!(
        t,
        "[[services]]\nname = \"orders\"\n{monolith}{}",
        public("orders")
    )
    .unwrap();
    if f.databases == "mixed" {
        t.push_str("database = \"sqlite\"\n");
    }
    if f.clients {
        t.push_str("depends_on = [\"catalog\"]\n");
    }
    match f.events {
        "consume" => t.push_str("consumes = [\"item.created\"]\n"),
        "both" => t.push_str("publishes = [\"order.placed\"]\nconsumes = [\"item.created\"]\n"),
        _ => {}
    }
    if stateful {
        let reference = match (f.fields, f.clients) {
            ("refs", true) => ", item_id = \"ref:item\", maybe_item = \"ref:item?\"",
            ("refs", false) => ", ticket_id = \"ref:ticket\"",
            _ => "",
        };
        writeln!(t, "\n  [[services.resources]]\n  name = \"order\"\n  fields = {{ note = \"string?\", count = \"i32\"{reference} }}").unwrap();
        if f.fields == "refs" && !f.clients {
            t.push_str("\n  [[services.resources]]\n  name = \"ticket\"\n  fields = { code = \"string\" }\n");
        }
    }
    t.push('\n');

    // mixed databases: a stateless service beside the PostgreSQL and SQLite ones.
    if f.databases == "mixed" {
        let deps = if f.clients {
            "depends_on = [\"catalog\", \"orders\"]\n"
        } else {
            ""
        };
        writeln!(
            t,
            "[[services]]\nname = \"edge\"\ndatabase = \"none\"\n{deps}{}",
            public("edge")
        )
        .unwrap();
    }
    t
}

fn cases() -> Vec<pairwise::Case> {
    let levels: Vec<usize> = FACTORS.iter().map(|(_, l)| l.len()).collect();
    pairwise::cover(&levels, Features::possible)
}

fn describe(case: &[usize]) -> String {
    FACTORS
        .iter()
        .zip(case)
        .map(|((f, l), &i)| format!("{f}={}", l[i]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders one case into `dir` and checks it; builds and runs its tests when `run`.
/// Returns the failure, if any, instead of panicking, so that one run reports all.
fn check_case(dir: &Path, index: usize, case: &[usize], run: bool) -> Result<(), String> {
    let f = Features::of(case);
    let name = format!("case-{index}");
    let text = config(&name, f);
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, &text).unwrap();
    let out = msgen(
        dir,
        &["new", &name, "--yes", "--config", file.to_str().unwrap()],
    );
    if !out.status.success() {
        return Err(format!(
            "msgen new refused a valid file:\n{text}\n{}",
            common::stderr(&out)
        ));
    }
    let root = dir.join(&name);
    if f.layout == "split" {
        let out = msgen(&root, &["split", "orders"]);
        if !out.status.success() {
            return Err(format!(
                "msgen split orders failed:\n{}",
                common::stderr(&out)
            ));
        }
    }
    let lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = std::panic::catch_unwind(|| {
        cargo(&root, &["fmt", "--all", "--", "--check"]);
        cargo(&root, &["clippy", "--all-targets", "--", "-D", "warnings"]);
        if run {
            common::cargo_test_ran(&root, 5);
        }
    });
    // build_bins takes the cargo lock itself.
    drop(lock);
    let result = result.and_then(|()| {
        if run {
            std::panic::catch_unwind(|| start_system(&root, index))
        } else {
            Ok(())
        }
    });
    result.map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{text}\n{msg}")
    })
}

/// Builds the binaries of the project at `root`, starts every one of them (services,
/// monolith, gateway) on loopback against fresh databases and the machine's NATS,
/// checks that each answers `/health` and that the gateway reaches each service,
/// then stops them all with SIGTERM (each must exit cleanly).
fn start_system(root: &Path, index: usize) {
    let project = Project::load(&root.join("services.toml")).unwrap();
    let standalone: Vec<_> = project.standalone().filter(|s| !s.adopted()).collect();
    let mut bins: Vec<String> = standalone.iter().map(|s| s.name.crate_name()).collect();
    if project.monolith.is_some() {
        bins.push("monolith".into());
    }
    bins.push("gateway".into());
    let bin_dir = root.join("bin");
    let names: Vec<&str> = bins.iter().map(String::as_str).collect();
    build_bins(root, &bin_dir, &names);

    let run = format!("matrix{index}_{}", std::process::id());
    let ports: Vec<(String, u16)> = bins.iter().map(|b| (b.clone(), free_port())).collect();
    let port = |b: &str| ports.iter().find(|(n, _)| n == b).unwrap().1;
    // Every service's URL, whoever calls it; and the monolith's, for the gateway.
    let mut urls: Vec<(String, String)> = standalone
        .iter()
        .map(|s| {
            (
                format!("{}_SERVICE_URL", s.name.upper()),
                format!("http://127.0.0.1:{}", port(&s.name.crate_name())),
            )
        })
        .collect();
    for m in project.modules() {
        urls.push((
            format!("{}_SERVICE_URL", m.name.upper()),
            format!("http://127.0.0.1:{}", port("monolith")),
        ));
    }
    if project.monolith.is_some() {
        urls.push((
            "MONOLITH_URL".into(),
            format!("http://127.0.0.1:{}", port("monolith")),
        ));
    }
    let mut dropped = Vec::new();
    let mut env_of = |bin: &str, kind: DatabaseKind| {
        let mut env = urls.clone();
        env.push(("PORT".into(), port(bin).to_string()));
        env.push(("NATS_URL".into(), "nats://127.0.0.1:4222".into()));
        env.push(("NATS_SUBJECT_PREFIX".into(), run.clone()));
        env.push((
            "JWT_SECRET".into(),
            "matrix-secret-matrix-secret-matrix-secret".into(),
        ));
        let db = format!("{run}_{}", bin.replace('-', "_"));
        match kind {
            DatabaseKind::Postgres => {
                env.push((
                    "DATABASE_URL".into(),
                    format!("postgres://postgres@127.0.0.1:5432/{db}"),
                ));
                dropped.push(DropDb(db));
            }
            DatabaseKind::Sqlite => {
                let file = root.join("data").join(format!("{db}.db"));
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                env.push((
                    "DATABASE_URL".into(),
                    format!("sqlite://{}", file.display()),
                ));
            }
            DatabaseKind::None => {}
        }
        env
    };
    let mut procs = Vec::new();
    for s in &standalone {
        let bin = s.name.crate_name();
        let env = env_of(&bin, s.database);
        procs.push((bin.clone(), Proc::start(&bin_dir, &bin, &env)));
    }
    if project.monolith.is_some() {
        let env = env_of("monolith", project.default_database);
        procs.push(("monolith".into(), Proc::start(&bin_dir, "monolith", &env)));
    }
    let env = env_of("gateway", DatabaseKind::None);
    procs.push(("gateway".into(), Proc::start(&bin_dir, "gateway", &env)));
    for (bin, proc) in &mut procs {
        wait_healthy(&format!("http://127.0.0.1:{}", port(bin)), proc);
    }
    // Through the gateway, each service's own path reaches it: 200, or 401 where
    // the gateway wants a token for it.
    let gateway = format!("http://127.0.0.1:{}", port("gateway"));
    for s in &project.services {
        // A module answers its resources' paths; a service its own as well.
        let path = match (s.in_monolith(), s.resources.first()) {
            (true, Some(r)) => format!("/api/v1/{}", r.path_segment()),
            _ => s.info_path(),
        };
        let (status, body) = call("GET", &format!("{gateway}{path}"), None, None);
        let protected = project.auth_service().is_some()
            && !s.public
            && s.template != msgen::model::Template::Auth;
        if s.in_monolith() && s.resources.is_empty() {
            assert_ne!(status, 502, "{path}: {body}");
        } else if protected {
            assert_eq!(status, 401, "{path}: {body}");
        } else {
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["success"], serde_json::json!(true), "{path}: {body}");
        }
    }
    for (_, proc) in procs.into_iter().rev() {
        proc.terminate();
    }
    drop(dropped);
}

#[test]
fn the_pairwise_cut_covers_every_possible_pair() {
    let levels: Vec<usize> = FACTORS.iter().map(|(_, l)| l.len()).collect();
    let possible: Vec<_> = pairwise::product(&levels)
        .into_iter()
        .filter(|c| Features::possible(c))
        .collect();
    let wanted: std::collections::BTreeSet<_> =
        possible.iter().flat_map(|c| pairwise::pairs(c)).collect();
    let chosen = cases();
    let covered: std::collections::BTreeSet<_> =
        chosen.iter().flat_map(|c| pairwise::pairs(c)).collect();
    assert_eq!(wanted, covered);
    assert!(chosen.iter().all(|c| Features::possible(c)));
    // Every level of every factor is possible somewhere: no feature was dropped.
    for (i, (factor, names)) in FACTORS.iter().enumerate() {
        for l in 0..names.len() {
            assert!(
                chosen.iter().any(|c| c[i] == l),
                "{factor}={} is never tested",
                names[l]
            );
        }
    }
    // Pairwise is a real cut of the product.
    assert!(
        chosen.len() * 20 < possible.len(),
        "{} of {}",
        chosen.len(),
        possible.len()
    );
    // Every generated file is one msgen accepts.
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in chosen.iter().enumerate() {
        let root = dir.path().join(format!("v{i}"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("services.toml"),
            config(&format!("case-{i}"), Features::of(c)),
        )
        .unwrap();
        let out = msgen(&root, &["validate"]);
        assert_ok(&out);
    }
}

#[test]
fn every_case_of_the_matrix_builds_and_passes_clippy_and_fmt() {
    require_postgres();
    require_nats();
    let all = cases();
    let levels: Vec<usize> = FACTORS.iter().map(|(_, l)| l.len()).collect();
    let sample = pairwise::each_level(&levels, &all);
    let only: Option<usize> = std::env::var("MSGEN_MATRIX_CASE")
        .ok()
        .and_then(|v| v.parse().ok());
    if std::env::var_os("MSGEN_MATRIX_LIST").is_some() {
        for (i, c) in all.iter().enumerate() {
            let run = if sample.contains(c) {
                " (tests run)"
            } else {
                ""
            };
            eprintln!(
                "case {i}: {}{run}\n{}",
                describe(c),
                config(&format!("case-{i}"), Features::of(c))
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let started = Instant::now();
    for (i, c) in all.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let run = sample.contains(c);
        let t = Instant::now();
        let result = check_case(dir.path(), i, c, run);
        eprintln!(
            "matrix case {i}/{}: {} ({}) {:.1} s {}",
            all.len(),
            describe(c),
            if run {
                "checked, built and tested"
            } else {
                "checked"
            },
            t.elapsed().as_secs_f64(),
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = result {
            failures.push(format!("case {i} ({}):\n{e}", describe(c)));
        }
    }
    eprintln!(
        "matrix: {} cases ({} with tests run) in {:.0} s",
        all.len(),
        sample.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}
