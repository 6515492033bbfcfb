//! The database follows `services.toml` on a running system: a PostgreSQL service
//! and a SQLite service behind the gateway store rows; then, step by step, the
//! model changes (an optional field, a required field with a default, a rename, a
//! widening, a new resource, a dropped field with confirmation), and after each
//! step msgen regenerates, the workspace is rebuilt and the system restarted on
//! the same databases: every row is kept, renamed columns keep their values, new
//! fields work through the gateway.

mod common;

use std::path::Path;

use serde_json::{json, Value};

use common::run::{build_bins, call, free_port, wait_healthy, Proc};
use common::{assert_ok, msgen, require_postgres, DropDb};

const BINS: [&str; 3] = ["gateway", "shop-service", "stock-service"];

/// services.toml with `fields` for both resources, and `extra` resources.
fn config(fields: &str, extra: bool) -> String {
    let tag = |name: &str| {
        if extra {
            format!("\n  [[services.resources]]\n  name = \"{name}\"\n  fields = {{ name = \"string\" }}\n")
        } else {
            String::new()
        }
    };
    format!(
        "[project]\nname = \"evo\"\n\n[gateway]\nport = 8080\n\n\
         [[services]]\nname = \"shop\"\nport = 3001\ndatabase = \"postgres\"\npublic = true\n\n  [[services.resources]]\n  name = \"order\"\n  fields = {fields}\n{}\n\
         [[services]]\nname = \"stock\"\nport = 3002\ndatabase = \"sqlite\"\npublic = true\n\n  [[services.resources]]\n  name = \"item\"\n  fields = {fields}\n{}",
        tag("tag"),
        tag("bin")
    )
}

struct System {
    procs: Vec<Proc>,
    gateway: String,
}

fn start(bin: &Path, dir: &Path, pg_db: &str) -> System {
    let (shop, stock, gw) = (free_port(), free_port(), free_port());
    let mut procs = Vec::new();
    let mut shop_p = Proc::start(
        bin,
        "shop-service",
        &[
            ("PORT".into(), shop.to_string()),
            (
                "DATABASE_URL".into(),
                format!("postgres://postgres@127.0.0.1:5432/{pg_db}"),
            ),
        ],
    );
    wait_healthy(&format!("http://127.0.0.1:{shop}"), &mut shop_p);
    let mut stock_p = Proc::start(
        bin,
        "stock-service",
        &[
            ("PORT".into(), stock.to_string()),
            (
                "DATABASE_URL".into(),
                format!("sqlite://{}/stock.db", dir.display()),
            ),
        ],
    );
    wait_healthy(&format!("http://127.0.0.1:{stock}"), &mut stock_p);
    let mut gw_p = Proc::start(
        bin,
        "gateway",
        &[
            ("PORT".into(), gw.to_string()),
            (
                "SHOP_SERVICE_URL".into(),
                format!("http://127.0.0.1:{shop}"),
            ),
            (
                "STOCK_SERVICE_URL".into(),
                format!("http://127.0.0.1:{stock}"),
            ),
        ],
    );
    let gateway = format!("http://127.0.0.1:{gw}");
    wait_healthy(&gateway, &mut gw_p);
    procs.extend([shop_p, stock_p, gw_p]);
    System { procs, gateway }
}

impl System {
    fn stop(self) {
        for p in self.procs {
            p.terminate();
        }
    }

    /// Every row of `path`, through the gateway.
    fn list(&self, path: &str) -> Vec<Value> {
        let (status, body) = call(
            "GET",
            &format!("{}{path}?per_page=100", self.gateway),
            None,
            None,
        );
        assert_eq!(status, 200, "GET {path}: {body}");
        body["data"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn create(&self, path: &str, body: Value) -> Value {
        let (status, answer) = call(
            "POST",
            &format!("{}{path}", self.gateway),
            None,
            Some(body.clone()),
        );
        assert_eq!(status, 201, "POST {path} {body}: {answer}");
        answer["data"].clone()
    }
}

#[test]
fn a_running_system_follows_its_model_and_keeps_every_row() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("evo.toml");
    std::fs::write(
        &config_file,
        config(r#"{ title = "string", qty = "i32" }"#, false),
    )
    .unwrap();
    assert_ok(&msgen(
        dir.path(),
        &[
            "new",
            "evo",
            "--yes",
            "--config",
            config_file.to_str().unwrap(),
        ],
    ));
    let root = dir.path().join("evo");
    let bin = dir.path().join("bin");
    let pg = DropDb(format!("evo_e2e_{}_{}", std::process::id(), free_port()));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    build_bins(&root, &bin, &BINS);
    let system = start(&bin, &data, &pg.0);
    let paths = ["/api/v1/orders", "/api/v1/items"];
    for p in paths {
        system.create(p, json!({ "title": "first", "qty": 3 }));
    }

    // One step: services.toml changes, msgen renders, the system is rebuilt and
    // restarted on the same databases.
    let step = |fields: &str, extra: bool, args: &[&str]| -> System {
        std::fs::write(root.join("services.toml"), config(fields, extra)).unwrap();
        let mut cmd = vec!["generate"];
        cmd.extend_from_slice(args);
        assert_ok(&msgen(&root, &cmd));
        assert_ok(&msgen(&root, &["generate", "--check"]));
        build_bins(&root, &bin, &BINS);
        start(&bin, &data, &pg.0)
    };

    // An optional field: old rows have none, new ones take it.
    system.stop();
    let s = step(
        r#"{ title = "string", qty = "i32", note = "text?" }"#,
        false,
        &[],
    );
    for p in paths {
        let rows = s.list(p);
        assert_eq!(rows.len(), 1, "{p}: {rows:?}");
        assert_eq!(rows[0]["title"], json!("first"));
        assert_eq!(rows[0]["note"], Value::Null);
        let made = s.create(p, json!({ "title": "second", "qty": 4, "note": "hello" }));
        assert_eq!(made["note"], json!("hello"));
    }
    s.stop();

    // A required field with a default: the rows that were there get it.
    let s = step(
        r#"{ title = "string", qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
        &[],
    );
    for p in paths {
        let rows = s.list(p);
        assert_eq!(rows.len(), 2, "{p}: {rows:?}");
        assert!(
            rows.iter().all(|r| r["status"] == json!("new")),
            "{p}: {rows:?}"
        );
        s.create(p, json!({ "title": "third", "qty": 5, "status": "paid" }));
    }
    s.stop();

    // A rename keeps the values.
    let s = step(
        r#"{ label = { type = "string", renamed_from = "title" }, qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
        &[],
    );
    for p in paths {
        let mut labels: Vec<String> = s
            .list(p)
            .iter()
            .map(|r| r["label"].as_str().unwrap_or_default().to_string())
            .collect();
        labels.sort();
        assert_eq!(labels, ["first", "second", "third"], "{p}");
    }
    s.stop();

    // A widening: values past i32 now fit, the old ones are kept.
    let s = step(
        r#"{ label = { type = "string", renamed_from = "title" }, qty = "i64", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
        &[],
    );
    for p in paths {
        let made = s.create(
            p,
            json!({ "label": "big", "qty": 5_000_000_000i64, "status": "new" }),
        );
        assert_eq!(made["qty"], json!(5_000_000_000i64));
        let rows = s.list(p);
        assert_eq!(rows.len(), 4, "{p}: {rows:?}");
        assert!(rows
            .iter()
            .any(|r| r["label"] == json!("first") && r["qty"] == json!(3)));
    }
    s.stop();

    // A new resource beside them.
    let s = step(
        r#"{ label = "string", qty = "i64", note = "text?", status = { type = "string", default = "new" } }"#,
        true,
        &[],
    );
    s.create("/api/v1/tags", json!({ "name": "red" }));
    s.create("/api/v1/bins", json!({ "name": "a1" }));
    assert_eq!(s.list("/api/v1/tags").len(), 1);
    for p in paths {
        assert_eq!(s.list(p).len(), 4, "{p}");
    }
    s.stop();

    // A dropped field needs confirmation; then every row stays, without it.
    std::fs::write(
        root.join("services.toml"),
        config(
            r#"{ label = "string", qty = "i64", status = { type = "string", default = "new" } }"#,
            true,
        ),
    )
    .unwrap();
    let refused = msgen(&root, &["generate"]);
    assert_eq!(refused.status.code(), Some(1));
    let s = step(
        r#"{ label = "string", qty = "i64", status = { type = "string", default = "new" } }"#,
        true,
        &["--allow-data-loss"],
    );
    for p in paths {
        let rows = s.list(p);
        assert_eq!(rows.len(), 4, "{p}: {rows:?}");
        assert!(
            rows.iter().all(|r| r.get("note").is_none()),
            "{p}: {rows:?}"
        );
        assert!(rows
            .iter()
            .any(|r| r["label"] == json!("second") && r["qty"] == json!(4)));
    }
    assert_eq!(s.list("/api/v1/tags").len(), 1);
    s.stop();
}
