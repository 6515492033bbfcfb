//! What `msgen split --from` promises a team with a monolith and an API suite
//! they trust: after each split, the suite passes through the gateway unchanged.
//!
//! Three monoliths written for these tests, in different domains and shapes:
//! - `shelf` (an inventory): two modules under one prefix, one nested and one
//!   merged at the root;
//! - `joined` (a shop): a library crate whose router is built in a helper, an
//!   orders module that joins the catalog's table and has a foreign key to it;
//! - `ledger` (book-keeping, on sqlx 0.9 and clap): the entries' router is the
//!   receiver the others are merged into, accounts and entries share a prefix and
//!   read each other's tables, accounts use compile-time checked queries (offline
//!   data only: no build here has a database), a trigger and a function keep the
//!   audit trail, and the settings come from clap flags with `env`.
//!
//! Each API script runs against the untouched monolith, then through the gateway
//! after splitting every module in turn, against a fresh database each time, with
//! no hand edit: every answer (status and body) must be the same.

mod common;

use std::path::Path;

use serde_json::{json, Value};

use common::run::{build_bins, call};
use common::split::{exists, fresh_database, start_monolith, SplitSystem};
use common::{assert_ok, copy_dir, fixture_monolith, msgen, require_postgres};

/// One request of a script.
struct Step {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
}

fn get(path: &'static str) -> Step {
    Step {
        method: "GET",
        path,
        body: None,
    }
}

fn post(path: &'static str, body: Value) -> Step {
    Step {
        method: "POST",
        path,
        body: Some(body),
    }
}

/// Runs the script against `base`: each step's request with its answer.
fn run(base: &str, script: &[Step]) -> Vec<Value> {
    script
        .iter()
        .map(|s| {
            let (status, body) = call(s.method, &format!("{base}{}", s.path), None, s.body.clone());
            json!({ "request": format!("{} {}", s.method, s.path), "status": status, "body": body })
        })
        .collect()
}

/// The monolith's fixture, its binary, where it reads its listen address from,
/// its modules in the order they are split, and the API script.
fn suite(fixture: &str, binary: &str, addr_env: &str, modules: &[&str], script: &[Step]) {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    copy_dir(&fixture_monolith(fixture), &root.join("legacy"));
    let bin = dir.path().join("bin");

    // The untouched monolith gives the answers every later run must give.
    build_bins(&root.join("legacy"), &bin, &[binary]);
    let db = fresh_database(binary);
    let (mono, base) = start_monolith(
        &bin,
        binary,
        addr_env,
        &format!("postgres://postgres@127.0.0.1:5432/{db}"),
    );
    let expected = run(&base, script);
    drop(mono);
    assert!(
        expected
            .iter()
            .any(|a| a["status"].as_u64().is_some_and(|s| s < 300)),
        "the script proves nothing: {expected:#?}"
    );

    let mut split: Vec<&str> = Vec::new();
    for module in modules {
        assert_ok(&msgen(&root, &["split", module, "--from", "legacy"]));
        split.push(module);
        let mut bins: Vec<String> = vec!["gateway".into()];
        bins.extend(
            split
                .iter()
                .map(|m| format!("{}-service", m.replace('_', "-"))),
        );
        let bins: Vec<&str> = bins.iter().map(String::as_str).collect();
        build_bins(&root.join("legacy"), &bin, &[binary]);
        build_bins(&root, &bin, &bins);
        let system = SplitSystem::start(&root, &bin, binary, addr_env, &split);
        let got = run(&system.url, script);
        // Each service keeps its migration history in its own schema.
        for m in &split {
            let history = format!("{}._sqlx_migrations", m.replace('-', "_"));
            assert!(exists(&system.db, &history), "no {history}");
        }
        system.stop();
        for (want, got) in expected.iter().zip(&got) {
            assert_eq!(
                got,
                want,
                "{fixture}: after splitting {}, {} answers differently through the gateway",
                split.join(", "),
                want["request"]
            );
        }
    }
    assert_ok(&msgen(&root, &["generate", "--check"]));
    one_of_each(&root);
    check_deployment(&root);
}

/// The workspace builds one axum and one sqlx: what msgen generates follows the
/// monolith's majors (shelf is on axum 0.7, the ledger on sqlx 0.9).
fn one_of_each(root: &Path) {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    for name in ["axum", "sqlx"] {
        let versions: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| p.contains(&format!("\nname = \"{name}\"\n")))
            .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .collect();
        assert_eq!(versions.len(), 1, "{name}: {versions:?} in the workspace");
    }
}

/// The deployment files of the finished project are valid: compose resolves, and
/// every Dockerfile (the one msgen wrote for the monolith included) passes hadolint.
fn check_deployment(root: &Path) {
    let hadolint = common::require_tool("hadolint");
    let mut dockerfiles = vec![
        "legacy/Dockerfile".to_string(),
        "gateway/Dockerfile".to_string(),
    ];
    for e in std::fs::read_dir(root.join("services")).unwrap() {
        dockerfiles.push(format!(
            "services/{}/Dockerfile",
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    let out = std::process::Command::new(hadolint)
        .args(["--no-color", "--failure-threshold", "style"])
        .args(&dockerfiles)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = common::compose_config(&common::require_tool("docker-compose"), root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shelf_answers_the_same_after_each_split() {
    suite(
        "shelf",
        "shelf",
        "SHELF_ADDR",
        &["things", "notes"],
        &[
            get("/api/things"),
            post("/api/things", json!({"name": "lamp"})),
            post("/api/things", json!({"name": "desk"})),
            post("/api/things/1/notes", json!({"body": "needs a bulb"})),
            post("/api/things/1/notes", json!({"body": "and a shade"})),
            get("/api/things/1"),
            get("/api/things/1/notes"),
            get("/api/things/2/notes"),
            get("/api/things/3"),
            get("/api/things"),
        ],
    );
}

#[test]
fn the_shop_answers_the_same_after_each_split() {
    suite(
        "joined",
        "shop",
        "SHOP_ADDR",
        &["catalog", "orders"],
        &[
            get("/catalog/products"),
            post(
                "/catalog/products",
                json!({"name": "tea", "price_cents": 350}),
            ),
            post(
                "/catalog/products",
                json!({"name": "mug", "price_cents": 900}),
            ),
            get("/catalog/products/2"),
            get("/catalog/products/7"),
            post("/orders", json!({"product_id": 2, "quantity": 3})),
            post("/orders", json!({"product_id": 1, "quantity": 1})),
            // A foreign key across the cut still holds.
            post("/orders", json!({"product_id": 7, "quantity": 1})),
            get("/orders"),
        ],
    );
}

#[test]
fn the_ledger_answers_the_same_after_each_split() {
    suite(
        "ledger",
        "ledger",
        "LEDGER_ADDR",
        &["accounts", "entries", "audit"],
        &[
            get("/api/accounts"),
            post("/api/accounts", json!({"name": "cash"})),
            post("/api/accounts", json!({"name": ""})),
            post("/api/accounts", json!({"name": "bank"})),
            post(
                "/api/accounts/1/entries",
                json!({"amount_cents": 1500, "memo": "salary"}),
            ),
            post(
                "/api/accounts/1/entries",
                json!({"amount_cents": -300, "memo": "lunch"}),
            ),
            post(
                "/api/accounts/2/entries",
                json!({"amount_cents": 0, "memo": "nothing"}),
            ),
            post(
                "/api/accounts/9/entries",
                json!({"amount_cents": 5, "memo": "nowhere"}),
            ),
            get("/api/accounts/1"),
            get("/api/accounts/9"),
            get("/api/accounts"),
            get("/api/accounts/1/entries"),
            get("/api/accounts/2/entries"),
            get("/api/audit"),
            get("/api/nowhere"),
        ],
    );
}
