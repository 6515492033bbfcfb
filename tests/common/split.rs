//! A system `msgen split --from` made, running for real: the adopted monolith,
//! the services split out of it and the gateway, on loopback against one fresh
//! PostgreSQL database, each connecting the way the project's README says (the
//! services' tables in schemas of their own, read through search paths).

use std::fs;
use std::path::Path;
use std::process::Command;

use super::run::{free_port, wait_healthy, Proc};

pub fn create_database(name: &str) {
    let status = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .status()
        .expect("psql runs");
    assert!(status.success(), "cannot create database {name}");
}

/// Runs `sql` on `database`; it must succeed. Returns the rows, unaligned.
pub fn sql(database: &str, sql: &str) -> String {
    let out = super::psql(database, &["-Atc", sql]);
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `table` (schema-qualified) exists in `database`.
pub fn exists(database: &str, table: &str) -> bool {
    sql(
        database,
        &format!("SELECT to_regclass('{table}') IS NOT NULL"),
    ) == "t"
}

pub fn count(database: &str, table: &str) -> i64 {
    sql(database, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

/// A fresh database for one run of a monolith.
pub fn fresh_database(monolith: &str) -> String {
    let db = format!("{monolith}_{}_{}", std::process::id(), free_port());
    create_database(&db);
    db
}

/// The untouched monolith (binary `monolith` in `bin`), listening where
/// `addr_env` says, on database `db`; returns it and its base URL.
pub fn start_monolith(bin: &Path, monolith: &str, addr_env: &str, url: &str) -> (Proc, String) {
    let port = free_port();
    let mut mono = Proc::start(
        bin,
        monolith,
        &[
            ("DATABASE_URL".into(), url.to_string()),
            (addr_env.into(), format!("127.0.0.1:{port}")),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut mono);
    (mono, base)
}

pub struct SplitSystem {
    gateway: Proc,
    _services: Vec<Proc>,
    _monolith: Proc,
    /// The gateway's base URL.
    pub url: String,
    /// The one database of the monolith and the services.
    pub db: String,
}

impl SplitSystem {
    /// The monolith, every service of `services` and the gateway of the project at
    /// `root` (binaries in `bin`); `addr_env` is the variable the monolith reads
    /// its listen address from.
    pub fn start(
        root: &Path,
        bin: &Path,
        monolith: &str,
        addr_env: &str,
        services: &[&str],
    ) -> Self {
        let db = fresh_database(monolith);
        Self::start_on(root, bin, monolith, addr_env, services, db)
    }

    /// Like [`SplitSystem::start`], on the monolith's database `db` as it is; a
    /// service with a database of its own gets `<db>_<service>`, made if missing.
    pub fn start_on(
        root: &Path,
        bin: &Path,
        monolith: &str,
        addr_env: &str,
        services: &[&str],
        db: String,
    ) -> Self {
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        // The README's DATABASE_URL for a process, on this run's databases.
        let url = |run: &str| {
            let line = readme
                .lines()
                .find(|l| l.contains(run) && l.contains("DATABASE_URL="))
                .unwrap_or_else(|| {
                    panic!("no `{run}` line with DATABASE_URL in README.md:\n{readme}")
                });
            let value = line
                .split("DATABASE_URL=")
                .nth(1)
                .and_then(|u| u.trim_start_matches('\'').split(['\'', ' ']).next())
                .unwrap_or_default();
            match value.split_once('?') {
                // A schema of the monolith's database, with its search path.
                Some((_, query)) => format!("postgres://postgres@127.0.0.1:5432/{db}?{query}"),
                // A database of its own.
                None => {
                    let crate_name = run.rsplit(' ').next().unwrap_or_default();
                    let service = crate_name.trim_end_matches("-service");
                    let name = format!("{db}_{}", service.replace('-', "_"));
                    let known =
                        format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
                    if sql("postgres", &known) == "0" {
                        create_database(&name);
                    }
                    format!("postgres://postgres@127.0.0.1:5432/{name}")
                }
            }
        };
        // The monolith first: its migrations make the services' schemas.
        let (mono, mono_url) = start_monolith(bin, monolith, addr_env, &url("(cd legacy &&"));
        let mut gateway_env = vec![("MONOLITH_URL".to_string(), mono_url)];
        let mut procs = Vec::new();
        for service in services {
            let port = free_port();
            let mut svc = Proc::start(
                bin,
                &format!("{service}-service"),
                &[
                    (
                        "DATABASE_URL".into(),
                        url(&format!("cargo run -p {service}-service")),
                    ),
                    ("PORT".into(), port.to_string()),
                ],
            );
            let base = format!("http://127.0.0.1:{port}");
            wait_healthy(&base, &mut svc);
            procs.push(svc);
            gateway_env.push((
                format!("{}_SERVICE_URL", service.to_uppercase().replace('-', "_")),
                base,
            ));
        }
        let gw_port = free_port();
        gateway_env.push(("PORT".into(), gw_port.to_string()));
        let mut gateway = Proc::start(bin, "gateway", &gateway_env);
        let gw = format!("http://127.0.0.1:{gw_port}");
        wait_healthy(&gw, &mut gateway);
        SplitSystem {
            gateway,
            _services: procs,
            _monolith: mono,
            url: gw,
            db,
        }
    }

    /// Stops the gateway gracefully (it must exit cleanly), then the others.
    pub fn stop(self) {
        self.gateway.terminate();
    }
}
