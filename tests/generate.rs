//! `new`, `generate`, `--check`, `--dry-run`, and regeneration that keeps hand edits.

mod common;

use common::{assert_ok, edit_config, example, msgen, stderr, stdout, tree};
use std::fs;
use std::path::Path;

fn new_project(dir: &Path, name: &str, config: Option<&Path>) -> std::path::PathBuf {
    let mut args = vec!["new", name, "--yes"];
    let config_str;
    if let Some(c) = config {
        config_str = c.to_string_lossy().into_owned();
        args.extend(["--config", config_str.as_str()]);
    }
    assert_ok(&msgen(dir, &args));
    dir.join(name)
}

#[test]
fn new_renders_the_article_system() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    for f in [
        "Cargo.toml",
        "services.toml",
        "compose.yaml",
        ".env.example",
        "README.md",
        "docs/architecture.md",
        "gateway/Dockerfile",
        "gateway/src/routes.rs",
        "common/src/lib.rs",
        "services/auth/Dockerfile",
        "services/auth/migrations/0001_create_auth_users.sql",
        "services/user/src/handlers/user.rs",
        "services/blog/src/clients/user.rs",
        ".msgen/base/Cargo.toml",
    ] {
        assert!(root.join(f).is_file(), "{f} missing");
    }
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(toml.contains("name = \"blogsys\""));
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    for s in [
        "auth-db:",
        "user-db:",
        "blog-db:",
        "auth-service:",
        "\"${GATEWAY_PORT:-8080}:8080\"",
    ] {
        assert!(compose.contains(s), "{s} not in compose.yaml");
    }
    let routes = fs::read_to_string(root.join("gateway/src/routes.rs")).unwrap();
    for s in [
        "http://auth-service:3001",
        "http://user-service:3002",
        "http://blog-service:3003",
        "/api/v1/posts",
    ] {
        assert!(routes.contains(s), "{s} not in routes.rs");
    }
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("```mermaid"));
}

#[test]
fn output_is_deterministic_and_a_second_run_changes_nothing() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = new_project(a.path(), "demo", Some(&example("platform")));
    let rb = new_project(b.path(), "demo", Some(&example("platform")));
    // All but .env, whose secret is each project's own.
    let rendered = |root: &Path| {
        let mut t = tree(root);
        t.retain(|(p, _)| p != ".env");
        t
    };
    assert_eq!(rendered(&ra), rendered(&rb));

    let before = tree(&ra);
    let out = msgen(&ra, &["generate"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
    assert_eq!(before, tree(&ra));
    assert_ok(&msgen(&ra, &["generate", "--check"]));
}

#[test]
fn database_flag_sets_the_default_kind() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "lite", "--yes", "--database", "sqlite"],
    ));
    let root = dir.path().join("lite");
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(toml.contains("database = \"sqlite\""), "{toml}");
    // Comments of the built-in example survive the edit.
    assert!(toml.contains("# Register, login and JWTs."));
    let db = fs::read_to_string(root.join("services/user/src/db.rs")).unwrap();
    assert!(db.contains("SqlitePool"));
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    assert!(!compose.contains("postgres:16"));
}

#[test]
fn check_catches_drift_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    edit_config(&root, "port = 3003", "port = 3013");
    let before = tree(&root);
    let out = msgen(&root, &["generate", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("compose.yaml") && err.contains("gateway/src/routes.rs"),
        "{err}"
    );
    assert_eq!(before, tree(&root));

    // A deleted generated file is drift too.
    assert_ok(&msgen(&root, &["generate"]));
    fs::remove_file(root.join("gateway/Dockerfile")).unwrap();
    let out = msgen(&root, &["generate", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("gateway/Dockerfile"));
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    edit_config(&root, "port = 3003", "port = 3013");
    let before = tree(&root);
    let out = msgen(&root, &["generate", "--dry-run"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("--- a/compose.yaml") && text.contains("+++ b/compose.yaml"),
        "{text}"
    );
    assert!(
        text.contains("-      BLOG_SERVICE_URL: http://blog-service:3003"),
        "{text}"
    );
    assert!(
        text.contains("+      BLOG_SERVICE_URL: http://blog-service:3013"),
        "{text}"
    );
    assert_eq!(before, tree(&root));

    let fresh = tempfile::tempdir().unwrap();
    let out = msgen(fresh.path(), &["new", "x", "--yes", "--dry-run"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("+++ b/Cargo.toml"));
    assert!(!fresh.path().join("x").exists());
}

#[test]
fn global_dir_flag_works_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    assert_ok(&msgen(&root, &["validate"]));
    assert_ok(&msgen(&root, &["generate", "--check"]));
    let out = msgen(&root, &["graph"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("blog -. REST .-> user"),
        "{}",
        stdout(&out)
    );
    let out = msgen(&root, &["graph", "--format", "dot"]);
    assert!(stdout(&out).starts_with("digraph"));
    let out = msgen(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("services.toml not found"));
}

#[test]
fn an_edited_file_is_merged_with_the_new_render() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    // A hand edit at the top of the gateway's routing table...
    let routes = root.join("gateway/src/routes.rs");
    let text = fs::read_to_string(&routes).unwrap();
    fs::write(
        &routes,
        format!("// Reviewed by the platform team.\n{text}"),
    )
    .unwrap();
    // ...and a change in services.toml that rewrites another part of it.
    edit_config(&root, "port = 3003", "port = 3013");
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("merge"), "{}", stdout(&out));
    let merged = fs::read_to_string(&routes).unwrap();
    assert!(merged.starts_with("// Reviewed by the platform team.\n"));
    assert!(merged.contains("http://blog-service:3013"));
    // Untouched files were simply updated; a second run is a no-op.
    assert!(fs::read_to_string(root.join("compose.yaml"))
        .unwrap()
        .contains("3013"));
    assert!(stdout(&msgen(&root, &["generate"])).contains("up to date"));
}

#[test]
fn colliding_edits_are_reported_as_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    let routes = root.join("gateway/src/routes.rs");
    let text = fs::read_to_string(&routes).unwrap();
    fs::write(
        &routes,
        text.replace("http://blog-service:3003", "http://blog.internal:3003"),
    )
    .unwrap();
    edit_config(&root, "port = 3003", "port = 3013");
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("gateway/src/routes.rs: 1 conflicting hunk"),
        "{err}"
    );
    let marked = fs::read_to_string(&routes).unwrap();
    assert!(
        marked.contains("<<<<<<<") && marked.contains("blog.internal") && marked.contains("3013")
    );
}

#[test]
fn a_file_msgen_did_not_write_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    fs::remove_dir_all(root.join(".msgen")).unwrap();
    fs::write(root.join("compose.yaml"), "# mine\n").unwrap();
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("compose.yaml: exists, but msgen has no record of writing it"));
    // The advice keeps the user's version.
    assert!(stderr(&out).contains("mv compose.yaml compose.yaml.mine"));
    assert_eq!(
        fs::read_to_string(root.join("compose.yaml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn add_and_remove_service_keep_comments_and_edits() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    let handler = root.join("services/blog/src/handlers/post.rs");
    let edited = fs::read_to_string(&handler).unwrap() + "\n// custom logic\n";
    fs::write(&handler, &edited).unwrap();

    let out = msgen(
        &root,
        &[
            "add-service",
            "billing",
            "--resource",
            "invoice",
            "--depends-on",
            "user",
        ],
    );
    assert_ok(&out);
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        toml.contains("# Creating a post checks its author"),
        "comments lost:\n{toml}"
    );
    assert!(
        toml.contains("name = \"billing\"") && toml.contains("port = 3004"),
        "{toml}"
    );
    assert!(root
        .join("services/billing/src/handlers/invoice.rs")
        .is_file());
    let members = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(members.contains("\"services/billing\""));
    assert!(fs::read_to_string(root.join("gateway/src/routes.rs"))
        .unwrap()
        .contains("/api/v1/invoices"));
    assert_eq!(fs::read_to_string(&handler).unwrap(), edited);
    assert!(stdout(&msgen(&root, &["add-service", "billing"])).is_empty());

    // Removing it deletes its untouched files but keeps an edited one.
    let kept = root.join("services/billing/src/handlers/invoice.rs");
    fs::write(&kept, fs::read_to_string(&kept).unwrap() + "// mine\n").unwrap();
    let out = msgen(&root, &["remove-service", "billing"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("services/billing/src/handlers/invoice.rs"),
        "{}",
        stdout(&out)
    );
    assert!(kept.is_file());
    assert!(!root.join("services/billing/Cargo.toml").exists());
    assert!(!fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .contains("billing"));
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(!toml.contains("billing") && toml.contains("# Creating a post checks its author"));
    assert_ok(&msgen(&root, &["generate", "--check"]));
}

#[test]
fn add_service_auth_uses_the_auth_template() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "mixed", Some(&example("mixed")));
    assert_ok(&msgen(&root, &["add-service", "auth", "--dry-run"]));
    assert!(!root.join("services/auth").exists());
    assert_ok(&msgen(&root, &["add-service", "auth"]));
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(toml.contains("template = \"auth\""), "{toml}");
    assert!(root.join("services/auth/src/handlers/auth.rs").is_file());
    let out = msgen(&root, &["remove-service", "catalog"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cart, pricing depend(s) on it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn symlinks_cannot_lead_writes_outside_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    fs::remove_dir_all(root.join("gateway")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("gateway")).unwrap();
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_killed_render_leaves_whole_files_and_a_rerun_finishes() {
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "platform", Some(&example("platform")));
    let changed = fs::read_to_string(root.join("services.toml"))
        .unwrap()
        .replace("port = 8000", "port = 8100")
        .replace("timeout_secs = 15", "timeout_secs = 20")
        .replace("name = \"search\"", "name = \"finder\"");
    // What a complete run produces, rendered elsewhere.
    let reference = tempfile::tempdir().unwrap();
    fs::write(reference.path().join("changed.toml"), &changed).unwrap();
    let want = new_project(
        reference.path(),
        "platform",
        Some(&reference.path().join("changed.toml")),
    );
    let old: BTreeMap<String, Vec<u8>> = tree(&root).into_iter().collect();
    let mut new: BTreeMap<String, Vec<u8>> = tree(&want).into_iter().collect();
    // Each project's .env has a secret of its own; this one's is not rendered.
    new.insert(".env".into(), old[".env"].clone());
    let pristine = dir.path().join("pristine");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&pristine)
        .status()
        .unwrap()
        .success());

    for delay_ms in [0u64, 5, 20, 50, 100, 150, 200, 300] {
        fs::remove_dir_all(&root).unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&pristine)
            .arg(&root)
            .status()
            .unwrap()
            .success());
        fs::write(root.join("services.toml"), &changed).unwrap();
        let mut child = Command::new(common::msgen_bin())
            .arg("-C")
            .arg(&root)
            .args(["generate", "--quiet"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        for (path, bytes) in tree(&root) {
            if path.starts_with(".msgen/")
                || path.contains(".msgen-tmp-")
                || path == "services.toml"
            {
                continue;
            }
            let whole = old.get(&path) == Some(&bytes) || new.get(&path) == Some(&bytes);
            assert!(
                whole,
                "after a kill at {delay_ms} ms, {path} is neither old nor new"
            );
        }
        let out = msgen(&root, &["generate"]);
        assert_ok(&out);
        let mut got: BTreeMap<String, Vec<u8>> = tree(&root).into_iter().collect();
        got.retain(|p, _| !p.starts_with(".msgen/"));
        let mut want = new.clone();
        want.retain(|p, _| !p.starts_with(".msgen/"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "after a kill at {delay_ms} ms"
        );
        assert!(
            got == want,
            "after a kill at {delay_ms} ms the re-run did not finish the job"
        );
        assert_ok(&msgen(&root, &["generate", "--check"]));
    }
}

#[test]
fn events_appear_only_where_declared() {
    let dir = tempfile::tempdir().unwrap();
    let with = new_project(dir.path(), "blogsys", None);
    let cargo_toml = fs::read_to_string(with.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("async-nats"));
    assert!(fs::read_to_string(with.join("compose.yaml"))
        .unwrap()
        .contains("  nats:"));
    assert!(with.join("deploy/k8s/nats.yaml").is_file());
    let handler = fs::read_to_string(with.join("services/blog/src/handlers/post.rs")).unwrap();
    assert!(handler.contains("crate::events::publish_post_created(&state.events, &record)"));
    assert!(with.join("services/user/src/handlers/events.rs").is_file());
    assert!(!with.join("services/auth/src/events.rs").exists());

    let without = new_project(dir.path(), "mixed", Some(&example("mixed")));
    for (path, bytes) in tree(&without) {
        let text = String::from_utf8_lossy(&bytes);
        // The runtime is the same in every project (otel.rs can trace a consumer):
        // what the project builds on it, its manifests and deployment, has no events.
        if text.contains(msgen::render::RUNTIME_NOTICE) {
            continue;
        }
        let text = text.to_lowercase();
        assert!(
            !text.contains("nats"),
            "{path} mentions NATS in a system without events"
        );
        assert!(
            !path.contains("events"),
            "{path} exists in a system without events"
        );
    }
}

#[test]
fn migrations_are_never_deleted_and_conflicts_stay_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "platform", Some(&example("platform")));
    // Dropping a resource drops its table only when confirmed, and keeps the
    // migration that created it (it may have run).
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    let without_tag = toml.replace(
        "  [[services.resources]]\n  name = \"address\"\n  fields = { user_id = \"ref:user\", street = \"string\", city = \"string\", postcode = \"string\" }\n",
        "",
    );
    assert_ne!(toml, without_tag);
    fs::write(root.join("services.toml"), &without_tag).unwrap();
    let before = tree(&root);
    let refused = msgen(&root, &["generate"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains(
            "table `addresses`: is no longer in services.toml: dropping it would delete its rows"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--allow-data-loss"));
    assert_eq!(
        tree(&root)
            .into_iter()
            .filter(|(p, _)| p != "services.toml")
            .collect::<Vec<_>>(),
        before
            .into_iter()
            .filter(|(p, _)| p != "services.toml")
            .collect::<Vec<_>>(),
        "a refused render wrote something"
    );
    assert_ok(&msgen(&root, &["generate", "--allow-data-loss"]));
    let drop = fs::read_dir(root.join("services/user/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with("_drop_addresses.sql"))
        .expect("a migration that drops the table");
    assert!(
        fs::read_to_string(root.join("services/user/migrations").join(drop))
            .unwrap()
            .contains("DROP TABLE IF EXISTS \"addresses\";")
    );
    assert!(root
        .join("services/user/migrations/0002_create_addresses.sql")
        .is_file());
    assert!(!root.join("services/user/src/models/address.rs").exists());
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // A conflict left unresolved is still reported on the next runs.
    let routes = root.join("gateway/src/routes.rs");
    let text = fs::read_to_string(&routes).unwrap();
    fs::write(
        &routes,
        text.replace("http://order-service:3005", "http://orders.internal:3005"),
    )
    .unwrap();
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    let moved = toml.replacen("name = \"order\"\n", "name = \"order\"\nport = 3105\n", 1);
    fs::write(root.join("services.toml"), moved).unwrap();
    assert_eq!(msgen(&root, &["generate"]).status.code(), Some(1));
    let again = msgen(&root, &["generate"]);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(stderr(&again).contains("gateway/src/routes.rs"));
    let check = msgen(&root, &["generate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
}

#[test]
fn add_service_takes_a_resource_s_fields_and_add_migration_numbers_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    assert_ok(&msgen(
        &root,
        &[
            "add-service",
            "billing",
            "--resource",
            "invoice",
            "--field",
            "number:string",
            "--field",
            "total:f64,paid_at:datetime?",
        ],
    ));
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        toml.contains("fields = { number = \"string\", total = \"f64\", paid_at = \"datetime?\" }"),
        "{toml}"
    );
    let first =
        fs::read_to_string(root.join("services/billing/migrations/0001_create_invoices.sql"))
            .unwrap();
    assert!(
        first.contains("\"total\" DOUBLE PRECISION NOT NULL"),
        "{first}"
    );
    assert!(first.contains("\"paid_at\" TIMESTAMPTZ,"), "{first}");
    assert!(!first.contains("\"name\""), "{first}");

    let bad = msgen(
        &root,
        &[
            "add-service",
            "shipping",
            "--resource",
            "parcel",
            "--field",
            "weight",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("expected NAME:TYPE"),
        "{}",
        stderr(&bad)
    );

    // A migration of the user's own, numbered after the service's, is left alone by
    // renders and read for what it does.
    let before = tree(&root);
    let out = msgen(&root, &["add-migration", "billing", "add_ledger"]);
    assert_ok(&out);
    // It writes its file and touches nothing else.
    let mut after = tree(&root);
    // (and msgen's record of it: its base copy and the manifest line).
    after.retain(|(p, _)| {
        !p.ends_with("services/billing/migrations/0002_add_ledger.sql") && p != ".msgen/manifest"
    });
    let mut before = before;
    before.retain(|(p, _)| p != ".msgen/manifest");
    assert!(after == before, "add-migration touched other files");
    assert!(stdout(&out).contains("services/billing/migrations/0002_add_ledger.sql"));
    let mine = root.join("services/billing/migrations/0002_add_ledger.sql");
    fs::write(
        &mine,
        fs::read_to_string(&mine).unwrap() + "CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, entry TEXT NOT NULL);\nALTER TABLE invoices ADD COLUMN memo TEXT;\n",
    )
    .unwrap();
    // The user declares the column they added: no migration adds it again.
    common::edit_config(
        &root,
        "paid_at = \"datetime?\" }",
        "paid_at = \"datetime?\", memo = \"text?\" }",
    );
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    assert!(
        !root
            .join("services/billing/migrations/0003_alter_invoices.sql")
            .exists(),
        "{}",
        stdout(&out)
    );
    let record = fs::read_to_string(root.join(".msgen/schema/billing.toml")).unwrap();
    assert!(
        record.contains("name = \"ledger\"\nby_hand = true"),
        "{record}"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
    // The next change is numbered after the user's file.
    common::edit_config(
        &root,
        "memo = \"text?\" }",
        "memo = \"text?\", due = \"datetime?\" }",
    );
    assert_ok(&msgen(&root, &["generate"]));
    assert!(root
        .join("services/billing/migrations/0003_alter_invoices.sql")
        .is_file());
    // An unknown service or a bad name is a usage error.
    assert_eq!(
        msgen(&root, &["add-migration", "nope", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        msgen(&root, &["add-migration", "billing", "Bad Name"])
            .status
            .code(),
        Some(2)
    );

    // A required field added without a default: validate and generate both refuse,
    // naming the key; nothing is written.
    common::edit_config(
        &root,
        "due = \"datetime?\" }",
        "due = \"datetime?\", code = \"string\" }",
    );
    let before = tree(&root);
    for cmd in [&["validate"][..], &["generate"][..]] {
        let out = msgen(&root, cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert!(
            stderr(&out).contains("services.billing.resources.invoice.fields.code"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("default"), "{}", stderr(&out));
    }
    assert_eq!(tree(&root), before);
}

/// The SQL in `repo/` is laid out one clause and one column per line, and ends with
/// a place of the user's own: hand edits to a statement, to the default order and
/// to `filter_more` merge with a field added later, without a conflict.
#[test]
fn hand_edits_to_the_sql_merge_with_later_field_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    let repo = root.join("services/blog/src/repo/post.rs");
    let text = fs::read_to_string(&repo).unwrap();
    assert!(text.contains("SELECT COUNT(*)\nFROM \"posts\"\n"), "{text}");
    let edited = text
        .replace(
            "const DEFAULT_ORDER: &str = r#\"\"id\"\"#;",
            "const DEFAULT_ORDER: &str = r#\"\"created_at\" DESC, \"id\" DESC\"#;",
        )
        .replace(
            "    let _ = (query, params);\n",
            "    let _ = params;\n    query.push(r#\" AND \"published\"\"#);\n",
        )
        .replacen(
            "WHERE \"id\" = $1\n\"#;",
            "WHERE \"id\" = $1\n  AND \"published\"\n\"#;",
            1,
        );
    assert_ne!(edited, text);
    fs::write(&repo, &edited).unwrap();
    edit_config(
        &root,
        "published = \"bool\" }",
        "published = \"bool\", subtitle = \"string?\" }",
    );
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    let merged = fs::read_to_string(&repo).unwrap();
    assert!(!merged.contains("<<<<<<<"), "{merged}");
    assert!(merged.contains("    \"subtitle\",\n"), "{merged}");
    assert!(
        merged.contains("\"created_at\" DESC, \"id\" DESC"),
        "{merged}"
    );
    assert!(
        merged.contains("query.push(r#\" AND \"published\"\"#);"),
        "{merged}"
    );
    assert!(merged.contains("  AND \"published\"\n"), "{merged}");
    let model = fs::read_to_string(root.join("services/blog/src/models/post.rs")).unwrap();
    assert!(model.contains("pub subtitle: Option<String>,"), "{model}");
}

/// Every file of `runtime/<crate>/src/` but `lib.rs`, as `(<crate>/src/<file>, bytes)`.
fn runtime_files() -> Vec<(String, Vec<u8>)> {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
    let mut out = Vec::new();
    for krate in ["common", "gateway"] {
        for (file, bytes) in tree(&runtime.join(krate).join("src")) {
            if file != "lib.rs" {
                out.push((format!("{krate}/src/{file}"), bytes));
            }
        }
    }
    assert!(out.len() > 5, "{out:?}");
    out
}

#[test]
fn the_runtime_is_rendered_byte_for_byte_and_its_version_recorded() {
    let mut carried = std::collections::BTreeSet::new();
    for name in common::examples() {
        let dir = tempfile::tempdir().unwrap();
        let root = new_project(dir.path(), &name, Some(&example(&name)));
        for (path, bytes) in runtime_files() {
            // A runtime module is in the project exactly when its crate declares it
            // (auth only with an auth service, ...): never a file nothing compiles.
            let (krate, file) = path.split_once("/src/").unwrap();
            let lib = fs::read_to_string(root.join(krate).join("src/lib.rs")).unwrap();
            let module = format!("pub mod {};", file.trim_end_matches(".rs"));
            if lib.lines().any(|l| l.trim() == module) {
                assert_eq!(
                    fs::read(root.join(&path)).ok(),
                    Some(bytes),
                    "{name}: {path} is not runtime/{path}"
                );
                carried.insert(path);
            } else {
                assert!(
                    !root.join(&path).exists(),
                    "{name}: {path} is rendered but {krate}/src/lib.rs does not declare it"
                );
            }
        }
        let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        // The crates' own version (checked in src/render.rs's tests).
        let version = msgen::render::runtime_version().to_string();
        let recorded = manifest.parse::<toml::Table>().unwrap()["workspace"]["metadata"]["msgen"]
            ["runtime"]
            .as_str()
            .map(str::to_string);
        assert_eq!(recorded, Some(version), "{name}");
        runtime_dependencies_agree(&name, &manifest.parse().unwrap());
    }
    let every: std::collections::BTreeSet<String> =
        runtime_files().into_iter().map(|(p, _)| p).collect();
    assert_eq!(carried, every, "runtime files no example carries");
}

/// The runtime crates are built here on the versions (and at least the features)
/// the generated workspace pins, so what msgen's CI tests is what projects build.
fn runtime_dependencies_agree(name: &str, workspace: &toml::Table) {
    let pinned = workspace["workspace"]["dependencies"].as_table().unwrap();
    let version = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        other => other.get("version")?.as_str().map(str::to_string),
    };
    let features = |v: &toml::Value| -> Vec<String> {
        v.get("features")
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| Some(f.as_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    for krate in ["common", "gateway"] {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("runtime/{krate}/Cargo.toml"));
        let manifest: toml::Table = fs::read_to_string(path).unwrap().parse().unwrap();
        for (dep, spec) in manifest["dependencies"].as_table().unwrap() {
            // A dependency of a feature the example does not use is not pinned.
            let Some(theirs) = pinned.get(dep) else {
                assert!(
                    spec.get("optional").is_some(),
                    "{name}: the workspace does not pin runtime/{krate}'s {dep}"
                );
                continue;
            };
            assert_eq!(
                version(spec),
                version(theirs),
                "{name}: {dep} of runtime/{krate}"
            );
            for f in features(spec) {
                assert!(
                    features(theirs).contains(&f),
                    "{name}: runtime/{krate} builds {dep} with `{f}`, the workspace without"
                );
            }
        }
    }
}

/// Makes `text` what msgen last wrote at `path`, as an older msgen would have left
/// it: its copy in `.msgen/base/` and the hash `.msgen/manifest` keeps of it.
fn recorded_as_msgens(root: &Path, path: &str, text: &str) {
    fs::write(root.join(".msgen/base").join(path), text).unwrap();
    let manifest = fs::read_to_string(root.join(".msgen/manifest")).unwrap();
    let manifest: String = manifest
        .lines()
        .map(|l| match l.strip_suffix(&format!(" {path}")) {
            Some(_) => format!("{} {path}\n", msgen::txn::content_hash(text.as_bytes())),
            None => format!("{l}\n"),
        })
        .collect();
    fs::write(root.join(".msgen/manifest"), manifest).unwrap();
}

#[test]
fn a_runtime_upgrade_merges_hand_edits_to_runtime_files() {
    // The project as an older msgen left it: a runtime file without its last
    // paragraph, that msgen recorded so, and a hand edit on top.
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "shop", None);
    let path = "common/src/error.rs";
    let current = fs::read_to_string(root.join(path)).unwrap();
    let paragraph = "//!\n//! Part of the msgen runtime: the same in every msgen project, upgraded by\n//! `msgen generate` (your edits to it are merged, not lost).\n";
    assert!(current.contains(paragraph));
    let older = current.replace(paragraph, "");
    recorded_as_msgens(&root, path, &older);
    fs::write(root.join(path), format!("{older}\n// A hand edit.\n")).unwrap();

    assert!(!stdout(&msgen(&root, &["status"])).contains("carries"));
    // ... and its workspace says so.
    let cargo_toml = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let recorded = format!("runtime = \"{}\"", msgen::render::runtime_version());
    assert!(cargo_toml.contains(&recorded));
    fs::write(
        root.join("Cargo.toml"),
        cargo_toml.replace(&recorded, "runtime = \"0.0.1\""),
    )
    .unwrap();
    let out = msgen(&root, &["status"]);
    assert!(
        stdout(&out).contains(&format!(
            "The project carries runtime 0.0.1; this msgen renders runtime {}",
            msgen::render::runtime_version()
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("merge          {path}")),
        "{}",
        stdout(&out)
    );
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    assert_eq!(
        fs::read_to_string(root.join(path)).unwrap(),
        format!("{current}\n// A hand edit.\n")
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
}

/// Generated code does without sqlx's macros; code of the user's that uses them
/// keeps the workspace's feature on, so a regeneration never breaks its build.
#[test]
fn sqlx_macros_follow_the_code_that_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    let sqlx_line = |root: &Path| {
        fs::read_to_string(root.join("Cargo.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("sqlx = "))
            .unwrap()
            .to_string()
    };
    assert!(
        !sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // A module of the user's in a service, with a derive of sqlx's.
    let own = root.join("services/blog/src/stats.rs");
    fs::write(
        &own,
        "#[derive(sqlx::FromRow)]\npub struct Count {\n    pub n: i64,\n}\n",
    )
    .unwrap();
    let out = msgen(&root, &["generate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("Cargo.toml"), "{}", stderr(&out));
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        sqlx_line(&root).contains("\"runtime-tokio\", \"macros\", \"migrate\""),
        "{}",
        sqlx_line(&root)
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // Gone again: the feature goes too.
    fs::remove_file(&own).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        !sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );

    // A crate of the user's own, added to the workspace.
    let tool = root.join("tools/seed/src");
    fs::create_dir_all(&tool).unwrap();
    fs::write(
        tool.join("main.rs"),
        "fn main() {\n    let _ = vec![sqlx::query!(\"SELECT 1\")];\n}\n",
    )
    .unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );
    fs::remove_dir_all(root.join("tools")).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        !sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );

    // A project from before: msgen's own files used the macros (as on disk, so
    // in msgen's copy too). They are msgen's, and this render replaces them.
    let model = "services/blog/src/models/post.rs";
    let old = fs::read_to_string(root.join(model)).unwrap().replace(
        "serde::Deserialize, utoipa::ToSchema)]\npub struct Post {",
        "serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]\npub struct Post {",
    );
    assert!(old.contains("sqlx::FromRow, utoipa"), "{old}");
    fs::write(root.join(model), &old).unwrap();
    recorded_as_msgens(&root, model, &old);
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        !sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );
    assert!(!fs::read_to_string(root.join(model))
        .unwrap()
        .contains("sqlx::FromRow, utoipa"));

    // One more of them of the user's, in a file msgen wrote: that one counts.
    let mut edited = fs::read_to_string(root.join(model)).unwrap();
    edited.push_str("\n#[derive(sqlx::FromRow)]\npub struct Count {\n    pub n: i64,\n}\n");
    fs::write(root.join(model), edited).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        sqlx_line(&root).contains("\"macros\""),
        "{}",
        sqlx_line(&root)
    );
    assert!(fs::read_to_string(root.join(model))
        .unwrap()
        .contains("pub struct Count"));
}

/// Generated code does without axum's macros too: a handler of the user's with
/// `#[debug_handler]` turns the feature on, and a project whose runtime still
/// derived its extractors (msgen's code, replaced by this render) does not.
#[test]
fn axum_macros_follow_the_code_that_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path(), "blogsys", None);
    let axum_line = |root: &Path| {
        fs::read_to_string(root.join("Cargo.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("axum = "))
            .unwrap()
            .to_string()
    };
    assert!(!axum_line(&root).contains("macros"), "{}", axum_line(&root));
    assert_ok(&msgen(&root, &["generate", "--check"]));

    let handler = "services/blog/src/handlers/post.rs";
    let original = fs::read_to_string(root.join(handler)).unwrap();
    fs::write(
        root.join(handler),
        format!("{original}\n#[axum::debug_handler]\npub async fn ping() -> &'static str {{\n    \"pong\"\n}}\n"),
    )
    .unwrap();
    let out = msgen(&root, &["generate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        axum_line(&root).contains("features = [\"macros\"]"),
        "{}",
        axum_line(&root)
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
    fs::write(root.join(handler), &original).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(!axum_line(&root).contains("macros"), "{}", axum_line(&root));

    // The runtime's extractors as older msgens wrote them, derived: msgen's own
    // code, which this render replaces, so the feature stays off.
    let extract = "common/src/extract.rs";
    let old = "use axum::extract::FromRequest;\n\n#[derive(Debug, FromRequest)]\n#[from_request(via(axum::Json))]\npub struct Json<T>(pub T);\n";
    fs::write(root.join(extract), old).unwrap();
    recorded_as_msgens(&root, extract, old);
    assert_ok(&msgen(&root, &["generate"]));
    assert!(!axum_line(&root).contains("macros"), "{}", axum_line(&root));
    assert!(!fs::read_to_string(root.join(extract))
        .unwrap()
        .contains("derive(Debug, FromRequest)"));
}
