//! `msgen split MODULE --from DIR` on monoliths msgen did not generate: the three
//! hand-written fixtures of `tests/fixtures/monoliths/` (routers nested under
//! prefixes; routers merged with a shared error type and another module's auth
//! extractor; a library whose orders module joins the catalog's table). Each must
//! still build after the split, on both sides of the cut; the last one also runs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use common::run::{build_bins, call};
use common::split::{count, exists, sql, SplitSystem};
use common::{
    assert_ok, cargo, copy_dir, fixture_monolith, msgen, require_postgres, stderr, stdout, tree,
    CARGO_LOCK,
};

/// A project directory holding a copy of `fixture` as `legacy/`.
fn adopt(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    copy_dir(&fixture_monolith(fixture), &root.join("legacy"));
    (dir, root)
}

fn fixture_file(fixture: &str, rel: &str) -> String {
    fs::read_to_string(fixture_monolith(fixture).join(rel)).unwrap()
}

/// Builds the monolith and the project's workspace (gateway, extracted services).
fn build_both(root: &Path) {
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root.join("legacy"), &["build"]);
    cargo(root, &["build"]);
    // The gateway's own tests, with the adopted monolith as the catch-all.
    cargo(root, &["test", "-p", "gateway"]);
}

#[test]
fn nested_routers_the_module_moves_and_both_sides_build() {
    let (_dir, root) = adopt("nested");
    let out = msgen(&root, &["split", "blog", "--from", "legacy"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(stdout(&out).contains("# Split report"), "{}", stdout(&out));
    for expected in [
        "`legacy/src/blog/mod.rs` → `services/blog/src/blog/mod.rs`",
        "legacy/src/main.rs:19: .nest(\"/api/blog\", blog::router())",
        "module `db`, because src/main.rs:",
        "- `posts`",
        "creates schema `blog` and moves `posts` into it",
    ] {
        assert!(report.contains(expected), "{expected:?} not in:\n{report}");
    }

    // The monolith lost the module, its `mod` item and its mount; nothing else.
    assert!(!root.join("legacy/src/blog").exists());
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    let expected = fixture_file("nested", "src/main.rs")
        .replace("mod blog;\n", "")
        .replace("        .nest(\"/api/blog\", blog::router())\n", "");
    assert_eq!(main, expected);
    assert_eq!(
        fs::read_to_string(root.join("legacy/src/users.rs")).unwrap(),
        fixture_file("nested", "src/users.rs")
    );

    // The service holds the module unchanged, without the other module.
    assert_eq!(
        fs::read_to_string(root.join("services/blog/src/blog/handlers.rs")).unwrap(),
        fixture_file("nested", "src/blog/handlers.rs")
    );
    assert!(!root.join("services/blog/src/users.rs").exists());
    let svc_main = fs::read_to_string(root.join("services/blog/src/main.rs")).unwrap();
    assert!(
        !svc_main.contains("mod users") && !svc_main.contains("users::"),
        "{svc_main}"
    );
    assert!(
        svc_main.contains("bind(msgen_listen_address())"),
        "{svc_main}"
    );
    // The monolith's next migration moves the module's table (its index goes
    // along) into the service's schema; the service's own history starts empty.
    let migration =
        fs::read_to_string(root.join("legacy/migrations/0002_msgen_split_blog.sql")).unwrap();
    assert!(
        migration.contains("ALTER TABLE IF EXISTS \"posts\" SET SCHEMA \"blog\";"),
        "{migration}"
    );
    assert!(!migration.contains("users"), "{migration}");
    assert!(root.join("services/blog/migrations/README.md").is_file());

    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    for expected in [
        "path = \"legacy\"",
        "adopted = true",
        "paths = [\"/api/blog\"]",
    ] {
        assert!(config.contains(expected), "{expected:?} not in:\n{config}");
    }
    let routes = fs::read_to_string(root.join("gateway/src/routes.rs")).unwrap();
    assert!(routes.contains("prefix: \"/api/blog\""), "{routes}");
    let cargo_toml = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("exclude = [\"legacy\"]"),
        "{cargo_toml}"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
    build_both(&root);
    // What msgen rendered for an adopted monolith is as clean as the rest.
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root, &["fmt", "-p", "gateway", "-p", "common", "--check"]);
    cargo(
        &root,
        &[
            "clippy",
            "-p",
            "gateway",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
}

#[test]
fn merged_routers_with_a_shared_error_type_and_extractor_build_after_the_split() {
    let (_dir, root) = adopt("shared");
    // A setting the posts code needs and has no default for.
    let posts = fs::read_to_string(root.join("legacy/src/posts.rs")).unwrap();
    fs::write(
        root.join("legacy/src/posts.rs"),
        format!("{posts}\n#[allow(dead_code)]\npub fn forum_key() -> String {{\n    std::env::var(\"FORUM_KEY\").expect(\"FORUM_KEY is set\")\n}}\n"),
    )
    .unwrap();
    let out = msgen(&root, &["split", "posts", "--from", "legacy"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-posts.md")).unwrap();
    for expected in [
        "legacy/src/main.rs:24: .merge(posts::routes())",
        "module `error`, because src/posts.rs:9 uses `crate::error::AppError`",
        "module `auth` (a bounded context of its own",
        "src/posts.rs:8 uses `crate::auth::extract::AuthUser`: a call across the cut",
        "creates schema `posts` and moves `posts` into it",
        "- `AUTH_SECRET` (default `dev-secret`)",
        "- `FORUM_KEY` (required: set it in `.env`; a Secret in Kubernetes)",
    ] {
        assert!(report.contains(expected), "{expected:?} not in:\n{report}");
    }
    // The merged routes' own paths decide where the gateway sends them.
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(config.contains("paths = [\"/api/posts\"]"), "{config}");
    // What each side reads from its environment reaches every place it runs.
    assert!(
        config.contains("env = [\"AUTH_SECRET=dev-secret\", \"FORUM_KEY\"]"),
        "{config}"
    );
    assert!(
        config.contains("env = [\"AUTH_SECRET=dev-secret\", \"DATABASE_URL=postgres://postgres@127.0.0.1:5432/forum\"]"),
        "{config}"
    );
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    assert!(
        compose
            .contains("FORUM_KEY: \"${FORUM_KEY:?set FORUM_KEY in .env (read by posts-service)}\"")
            && compose
                .matches("AUTH_SECRET: \"${AUTH_SECRET:-dev-secret}\"")
                .count()
                == 2,
        "{compose}"
    );
    let example = fs::read_to_string(root.join(".env.example")).unwrap();
    assert!(
        example.contains("# Read by posts-service (required).\nFORUM_KEY=\n")
            && example.contains("# Read by posts-service, the monolith (optional: the code's default is shown).\n# AUTH_SECRET=dev-secret\n"),
        "{example}"
    );
    let k8s = fs::read_to_string(root.join("deploy/k8s/services/posts.yaml")).unwrap();
    assert!(
        k8s.contains("  AUTH_SECRET: \"dev-secret\"")
            && k8s.contains("  FORUM_KEY: \"REPLACE-ME\""),
        "{k8s}"
    );
    let tool = common::require_tool("docker-compose");
    let compose_config = |env: &str| {
        fs::write(root.join(".env"), env).unwrap();
        let out = common::compose_config(&tool, &root);
        fs::remove_file(root.join(".env")).unwrap();
        out
    };
    let without = compose_config(&example);
    assert!(
        !without.status.success() && stderr(&without).contains("set FORUM_KEY in .env"),
        "{}",
        stderr(&without)
    );
    let with = compose_config(&example.replace("FORUM_KEY=\n", "FORUM_KEY=k\n"));
    assert!(with.status.success(), "{}", stderr(&with));
    // The copied auth module keeps its code but not its routes.
    let svc_main = fs::read_to_string(root.join("services/posts/src/main.rs")).unwrap();
    assert!(!svc_main.contains("auth::routes()"), "{svc_main}");
    assert!(
        svc_main.contains("#[allow(dead_code)]\nmod auth;"),
        "{svc_main}"
    );
    assert!(
        svc_main.contains(
            "app.route(\"/health\", axum::routing::get(msgen_health)).into_make_service()"
        ),
        "{svc_main}"
    );
    assert_eq!(
        fs::read_to_string(root.join("services/posts/src/auth/extract.rs")).unwrap(),
        fixture_file("shared", "src/auth/extract.rs")
    );
    // The service copies no migration: the monolith's next one moves `posts`
    // (its foreign key to `accounts` stays valid across schemas).
    let moves =
        fs::read_to_string(root.join("legacy/migrations/20240102000001_msgen_split_posts.sql"))
            .unwrap();
    assert!(
        moves.contains("ALTER TABLE IF EXISTS \"posts\" SET SCHEMA \"posts\";")
            && !moves.contains("accounts"),
        "{moves}"
    );
    assert!(!root
        .join("services/posts/migrations/20240102000000_posts.sql")
        .exists());
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    assert!(
        main.contains(".merge(auth::routes())\n        .with_state(state)"),
        "{main}"
    );
    build_both(&root);
}

/// The rest of the monolith uses the module's items (a type here): the module
/// stays in the monolith as an unmounted copy, each use reported, and both sides
/// build; the other module splits out after it.
#[test]
fn a_module_whose_items_the_rest_uses_stays_in_the_monolith_unmounted() {
    let (_dir, root) = adopt("shared");
    let users = root.join("legacy/src/auth/handlers.rs");
    let text = fs::read_to_string(&users).unwrap();
    fs::write(
        &users,
        format!("{text}\npub fn latest() -> Option<crate::posts::Post> {{\n    None\n}}\n"),
    )
    .unwrap();
    let out = msgen(&root, &["split", "posts", "--from", "legacy"]);
    assert_ok(&out);
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    assert!(
        main.contains("// still uses it (docs/split-posts.md); the `posts` service serves its routes.\n#[allow(dead_code)]\nmod posts;")
            && !main.contains("posts::routes()"),
        "{main}"
    );
    assert!(root.join("legacy/src/posts.rs").is_file());
    assert!(root.join("services/posts/src/posts.rs").is_file());
    let report = fs::read_to_string(root.join("docs/split-posts.md")).unwrap();
    for expected in [
        "module `posts` stays in the monolith too, unmounted",
        "src/auth/handlers.rs:27: uses `crate::posts::Post` of module `posts`, kept on the monolith's copy",
    ] {
        assert!(report.contains(expected), "{expected:?} not in:\n{report}");
    }
    assert!(!report.contains("## Moved\n\n- `"), "{report}");
    // auth goes next: the posts module it uses comes along as shared code.
    assert_ok(&msgen(&root, &["split", "auth", "--from", "legacy"]));
    let report = fs::read_to_string(root.join("docs/split-auth.md")).unwrap();
    assert!(
        report
            .contains("module `posts`, because src/auth/handlers.rs:27 uses `crate::posts::Post`"),
        "{report}"
    );
    build_both(&root);
}

#[test]
fn an_unknown_module_lists_the_modules_found_and_dry_run_writes_nothing() {
    let (_dir, root) = adopt("nested");
    let before = tree(&root);
    let out = msgen(&root, &["split", "billing", "--from", "legacy"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no module `billing` in src/main.rs; modules found: blog, db, users"),
        "{}",
        stderr(&out)
    );
    let out = msgen(&root, &["split", "blog", "--from", "legacy", "--dry-run"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("-        .nest(\"/api/blog\", blog::router())"),
        "{text}"
    );
    assert!(
        text.contains("remove         legacy/src/blog/mod.rs"),
        "{text}"
    );
    assert_eq!(tree(&root), before);
    // The monolith must be inside the project directory.
    let out = msgen(&root.join("legacy"), &["split", "blog", "--from", "."]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("inside the project directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn joined_tables_are_reported_and_the_split_system_runs() {
    require_postgres();
    let (dir, root) = adopt("joined");
    let out = msgen(&root, &["split", "catalog", "--from", "legacy"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-catalog.md")).unwrap();
    for expected in [
        "legacy/src/app.rs:10: .nest(\"/catalog\", crate::catalog::routes())",
        "src/orders.rs:28: the monolith reads `products`, which moves to schema `catalog`; it is read there through the search path for now: call service `catalog`'s API instead: /catalog",
        "the monolith's `migrations/0002_msgen_split_catalog.sql` (new) creates schema `catalog` and moves `products` into it",
        "module `app`, because src/main.rs:6 uses `shop::app::migrate`",
    ] {
        assert!(report.contains(expected), "{expected:?} not in:\n{report}");
    }
    // main.rs names the library as `shop`: the service's library has a name of
    // its own, and main.rs still reaches it as `shop`.
    let manifest = fs::read_to_string(root.join("services/catalog/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[lib]\nname = \"catalog_service\""),
        "{manifest}"
    );
    let main = fs::read_to_string(root.join("services/catalog/src/main.rs")).unwrap();
    assert!(
        main.contains("extern crate catalog_service as shop;"),
        "{main}"
    );
    assert!(!root.join("services/catalog/src/orders.rs").exists());

    let bin = dir.path().join("bin");
    {
        let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&root.join("legacy"), &["build"]);
    }
    build_bins(&root.join("legacy"), &bin, &["shop"]);
    build_bins(&root, &bin, &["gateway", "catalog-service"]);

    let system = SplitSystem::start(&root, &bin, "shop", "SHOP_ADDR", &["catalog"]);
    let (gw, db) = (&system.url, &system.db);

    // The catalog's old paths reach the new service and its own database.
    let (status, body) = call(
        "POST",
        &format!("{gw}/catalog/products"),
        None,
        Some(json!({"name": "tea", "price_cents": 350})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], json!("tea"));
    let (status, body) = call("GET", &format!("{gw}/catalog/products"), None, None);
    assert_eq!((status, body[0]["name"].clone()), (200, json!("tea")));
    // The monolith's migration moved products into the catalog's schema.
    assert_eq!(count(db, "catalog.products"), 1);
    assert!(!exists(db, "public.products"));
    // Everything else is still the monolith's, its join across the cut included.
    let (status, _) = call(
        "POST",
        &format!("{gw}/orders"),
        None,
        Some(json!({"product_id": body[0]["id"], "quantity": 2})),
    );
    assert_eq!(status, 201);
    let (status, body) = call("GET", &format!("{gw}/orders"), None, None);
    assert_eq!((status, body[0]["product"].clone()), (200, json!("tea")));
    let (status, _) = call("GET", &format!("{gw}/nowhere"), None, None);
    assert_eq!(status, 404);
    let (status, body) = call("GET", &format!("{gw}/health/catalog"), None, None);
    assert_eq!(status, 200, "{body}");
    system.stop();

    // A second split takes the orders module out as well.
    let out = msgen(&root, &["split", "orders", "--from", "legacy"]);
    assert_ok(&out);
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.contains("name = \"orders\"\nport = 3002"),
        "{config}"
    );
    assert!(config.contains("paths = [\"/orders\"]"), "{config}");
    assert!(config.contains("schema = \"orders\""), "{config}");
    // products belongs to catalog now: only orders moves, and the report sends
    // orders' join to catalog.
    let migration =
        fs::read_to_string(root.join("legacy/migrations/0003_msgen_split_orders.sql")).unwrap();
    assert!(
        migration.contains("ALTER TABLE IF EXISTS \"orders\" SET SCHEMA \"orders\"")
            && !migration.contains("products"),
        "{migration}"
    );
    let report = fs::read_to_string(root.join("docs/split-orders.md")).unwrap();
    assert!(
        report.contains("src/orders.rs:28: the module reads `products`, owned by service `catalog`: call its API instead (through the gateway, or CATALOG_SERVICE_URL); read in place for now through the search path (schema of service `catalog`)"),
        "{report}"
    );
    assert!(!report.contains("- `products`"), "{report}");
    // Each side's search path reads what the others own.
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    for path in [
        "search_path%3Dcatalog%2Corders%2Cpublic",
        "search_path%3Dorders%2Ccatalog%2Cpublic",
        "search_path%3Dpublic%2Ccatalog%2Corders",
    ] {
        assert!(compose.contains(path), "{path} not in:\n{compose}");
    }
    let lib = fs::read_to_string(root.join("legacy/src/lib.rs")).unwrap();
    assert!(
        !lib.contains("mod orders") && !lib.contains("mod catalog"),
        "{lib}"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
    build_both(&root);

    // The orders service joins the catalog's products where they are.
    build_bins(&root.join("legacy"), &bin, &["shop"]);
    build_bins(&root, &bin, &["gateway", "orders-service"]);
    let system = SplitSystem::start(&root, &bin, "shop", "SHOP_ADDR", &["orders"]);
    let (gw, db) = (&system.url, &system.db);
    sql(
        db,
        "INSERT INTO catalog.products (name, price_cents) VALUES ('mug', 900)",
    );
    let (status, _) = call(
        "POST",
        &format!("{gw}/orders"),
        None,
        Some(json!({"product_id": 1, "quantity": 3})),
    );
    assert_eq!(status, 201);
    let (status, body) = call("GET", &format!("{gw}/orders"), None, None);
    assert_eq!(
        (
            status,
            body[0]["product"].clone(),
            body[0]["quantity"].clone()
        ),
        (200, json!("mug"), json!(3))
    );
    assert_eq!(count(db, "orders.orders"), 1);
    system.stop();
}

/// Writes `text` to `rel` in the project's monolith copy.
fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join("legacy").join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Replaces `from` by `to` in `rel` of the monolith copy; `from` must be there.
#[track_caller]
fn change(root: &Path, rel: &str, from: &str, to: &str) {
    let path = root.join("legacy").join(rel);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} is not in {rel}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// `split` must refuse, name `expected` and leave every file as it was.
#[track_caller]
fn refused(root: &Path, module: &str, expected: &str) {
    let before = tree(root);
    let out = msgen(root, &["split", module, "--from", "legacy"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(expected),
        "{expected:?} not in:\n{}",
        stderr(&out)
    );
    assert_eq!(tree(root), before);
}

#[test]
fn hidden_uses_of_the_module_are_refused() {
    // `super::super::blog` from inside an inline module.
    let (_d, root) = adopt("nested");
    change(
        &root,
        "src/users.rs",
        "pub fn router()",
        "pub mod preview {\n    pub fn blog() -> axum::Router<sqlx::PgPool> {\n        super::super::blog::router()\n    }\n}\n\npub fn router()",
    );
    refused(
        &root,
        "blog",
        "src/users.rs:21: uses `super::super::blog::router`",
    );

    // A glob import of the root, then a plain path.
    let (_d, root) = adopt("nested");
    change(
        &root,
        "src/users.rs",
        "pub fn router()",
        "use super::*;\n\npub fn blog_router() -> Router<PgPool> {\n    blog::router()\n}\n\npub fn router()",
    );
    refused(&root, "blog", "uses `blog::router` (module `blog`)");

    // Modules whose files are elsewhere.
    let (_d, root) = adopt("nested");
    change(
        &root,
        "src/main.rs",
        "mod db;",
        "#[path = \"db.rs\"]\nmod db;",
    );
    refused(&root, "blog", "`mod db` has a #[path] attribute");

    // A mount path msgen cannot read.
    let (_d, root) = adopt("nested");
    change(
        &root,
        "src/main.rs",
        ".nest(\"/api/blog\", blog::router())",
        ".nest(BLOG, blog::router())",
    );
    change(
        &root,
        "src/main.rs",
        "#[tokio::main]",
        "const BLOG: &str = \"/api/blog\";\n\n#[tokio::main]",
    );
    refused(&root, "blog", "under a path that is not a string literal");
}

/// A module's router as the receiver of the chain (`auth::routes().merge(..)`)
/// is a mount like any other: either module splits out, one after the other, and
/// what remains builds.
#[test]
fn a_module_router_as_the_receiver_of_a_chain_is_a_mount() {
    let (_d, root) = adopt("shared");
    change(
        &root,
        "src/main.rs",
        "    let app = Router::new()\n        .merge(auth::routes())\n        .merge(posts::routes())",
        "    let app = auth::routes()\n        .merge(posts::routes())",
    );
    change(&root, "src/main.rs", "use axum::Router;\n", "");
    // The module in the arguments first (posts uses auth's extractor, so auth
    // cannot leave while posts is in the monolith), then the receiver.
    assert_ok(&msgen(&root, &["split", "posts", "--from", "legacy"]));
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    assert!(main.contains("let app = auth::routes()\n"), "{main}");
    let svc_main = fs::read_to_string(root.join("services/posts/src/main.rs")).unwrap();
    assert!(
        svc_main.contains("let app = axum::Router::new()\n        .merge(posts::routes())"),
        "{svc_main}"
    );
    let out = msgen(&root, &["split", "auth", "--from", "legacy"]);
    assert_ok(&out);
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    assert!(main.contains("let app = axum::Router::new()\n"), "{main}");
    let svc_main = fs::read_to_string(root.join("services/auth/src/main.rs")).unwrap();
    assert!(
        svc_main.contains("let app = auth::routes()\n"),
        "{svc_main}"
    );
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(config.contains("paths = [\"/api/posts\"]"), "{config}");
    assert!(config.contains("paths = [\"/api/login\""), "{config}");
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root.join("legacy"), &["build"]);
    cargo(
        &root,
        &["build", "-p", "auth-service", "-p", "posts-service"],
    );
}

#[test]
fn awkward_shapes_still_give_a_service_that_knows_its_paths() {
    let (_d, root) = adopt("shared");
    // A helper nested under a prefix, a macro module, a /health in another module,
    // a test that binds a port, SQL with comments and dollar quotes, a BOM.
    change(
        &root,
        "src/main.rs",
        "    let app = Router::new()\n        .merge(auth::routes())\n        .merge(posts::routes())\n        .with_state(state);",
        "    let app = Router::new()\n        .merge(auth::routes())\n        .nest(\"/v0\", api())\n        .with_state(state);",
    );
    change(
        &root,
        "src/main.rs",
        "mod auth;",
        "\u{feff}#[macro_use]\nmod macros;\nmod auth;",
    );
    let main = fs::read_to_string(root.join("legacy/src/main.rs")).unwrap();
    fs::write(
        root.join("legacy/src/main.rs"),
        format!("{main}\nfn api() -> Router<AppState> {{\n    Router::new().merge(posts::routes())\n}}\n\n#[cfg(test)]\nmod tests {{\n    #[tokio::test]\n    async fn binds() {{\n        let _ = tokio::net::TcpListener::bind(\"127.0.0.1:3999\").await;\n    }}\n}}\n"),
    )
    .unwrap();
    put(&root, "src/macros.rs", "macro_rules! not_found {\n    () => {\n        crate::error::AppError::NotFound\n    };\n}\n");
    change(
        &root,
        "src/posts.rs",
        ".ok_or(AppError::NotFound)",
        ".ok_or(not_found!())",
    );
    change(
        &root,
        "src/auth/mod.rs",
        "Router::new().route(\"/api/login\", post(handlers::login))",
        "Router::new()\n        .route(\"/api/login\", post(handlers::login))\n        .route(\"/health\", axum::routing::get(|| async { \"ok\" }))",
    );
    put(
        &root,
        "migrations/20240103000000_more.sql",
        "/* Posts; and their tags */\nALTER TABLE posts ADD COLUMN preferences JSONB;\nCREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN UPDATE posts SET body = body; RETURN NEW; END $$ LANGUAGE plpgsql;\nALTER TABLE posts ADD CONSTRAINT posts_account_fk2 FOREIGN KEY (account_id) REFERENCES accounts (id);\n",
    );
    let out = msgen(&root, &["split", "posts", "--from", "legacy"]);
    assert_ok(&out);
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(config.contains("paths = [\"/v0/api/posts\"]"), "{config}");
    assert!(config.contains("[monolith]\nport = 3000"), "{config}");
    let svc_main = fs::read_to_string(root.join("services/posts/src/main.rs")).unwrap();
    assert!(svc_main.contains("mod macros;"), "{svc_main}");
    assert!(
        svc_main.contains("bind(msgen_listen_address())"),
        "{svc_main}"
    );
    assert!(svc_main.contains("bind(\"127.0.0.1:3999\")"), "{svc_main}");
    // auth's /health is not mounted in the service: msgen adds its own.
    assert!(svc_main.contains("get(msgen_health)"), "{svc_main}");
    // The monolith's next migration moves the tables; the service copies none.
    let moves =
        fs::read_to_string(root.join("legacy/migrations/20240103000001_msgen_split_posts.sql"))
            .unwrap();
    assert!(
        moves.contains("CREATE SCHEMA IF NOT EXISTS \"posts\";\nALTER TABLE IF EXISTS \"posts\" SET SCHEMA \"posts\";\n"),
        "{moves}"
    );
    assert!(!root
        .join("services/posts/migrations/20240103000000_more.sql")
        .exists());
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root, &["build", "-p", "posts-service"]);
}

#[test]
fn a_library_crate_keeps_its_names_and_its_binary_modules() {
    let (_d, root) = adopt("joined");
    change(
        &root,
        "Cargo.toml",
        "[dependencies]",
        "[lib]\nname = \"shoplib\"\n\n[dependencies]",
    );
    change(
        &root,
        "src/main.rs",
        "shop::app::migrate",
        "shoplib::app::migrate",
    );
    change(
        &root,
        "src/main.rs",
        "shop::app::router",
        "cli::banner();\n    let app = shoplib::app::router",
    );
    change(
        &root,
        "src/main.rs",
        "#[tokio::main]",
        "mod cli;\n\n#[tokio::main]",
    );
    put(
        &root,
        "src/cli.rs",
        "pub fn banner() {\n    println!(\"shop\");\n}\n",
    );
    // Orders read the catalog's products: splitting orders leaves products behind.
    let out = msgen(&root, &["split", "orders", "--from", "legacy"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-orders.md")).unwrap();
    assert!(report.contains("- `orders`\n"), "{report}");
    assert!(!report.contains("- `products`"), "{report}");
    assert!(
        report.contains("src/orders.rs:28: the module reads `products`, owned by the monolith's module `catalog`: call its API instead: /catalog/products, /catalog/products/{id}"),
        "{report}"
    );
    let manifest = fs::read_to_string(root.join("services/orders/Cargo.toml")).unwrap();
    // A library name of its own: a second service adopted from the same monolith
    // must not collide with it; main.rs still says `shoplib::`.
    assert!(
        manifest.contains("[lib]\nname = \"orders_service\""),
        "{manifest}"
    );
    let main = fs::read_to_string(root.join("services/orders/src/main.rs")).unwrap();
    assert!(
        main.contains("extern crate orders_service as shoplib;"),
        "{main}"
    );
    assert!(root.join("services/orders/src/cli.rs").exists());
    // A second service from the same library crate: both build side by side,
    // without cargo's "output filename collision".
    assert_ok(&msgen(&root, &["split", "catalog", "--from", "legacy"]));
    let main = fs::read_to_string(root.join("services/catalog/src/main.rs")).unwrap();
    assert!(
        main.contains("extern crate catalog_service as shoplib;"),
        "{main}"
    );
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root.join("legacy"), &["build"]);
    let out = cargo(
        &root,
        &["build", "-p", "orders-service", "-p", "catalog-service"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("collision"), "{err}");
}

/// Two modules serve under one prefix (`things` at /api/things, `notes` at
/// /api/things/{id}/notes): each can be split out on its own. The gateway routes
/// by route, most specific first; through it, clients get what the monolith gave.
#[test]
fn modules_sharing_a_prefix_split_one_at_a_time() {
    require_postgres();
    // Either one first: the one that leaves gets its exact routes.
    let (_d, first) = adopt("shelf");
    assert_ok(&msgen(&first, &["split", "things", "--from", "legacy"]));
    let config = fs::read_to_string(first.join("services.toml")).unwrap();
    assert!(
        config.contains("routes = [\"/api/things\", \"/api/things/{id}\"]"),
        "{config}"
    );
    // shelf is on axum 0.7: what msgen generates follows it, and says so.
    assert!(
        config.contains("axum = \"0.7\"") && !config.contains("sqlx ="),
        "{config}"
    );
    let workspace = fs::read_to_string(first.join("Cargo.toml")).unwrap();
    assert!(
        workspace
            .lines()
            .any(|l| l.starts_with("axum = ") && l.contains("\"0.7\"")),
        "{workspace}"
    );
    let report = fs::read_to_string(first.join("docs/split-things.md")).unwrap();
    assert!(
        report.contains("now use the monolith's axum 0.7 (`[project] axum` in services.toml)"),
        "{report}"
    );

    let (dir, root) = adopt("shelf");
    let out = msgen(&root, &["split", "notes", "--from", "legacy"]);
    assert_ok(&out);
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.contains("routes = [\"/api/things/{id}/notes\"]") && !config.contains("paths ="),
        "{config}"
    );
    let report = fs::read_to_string(root.join("docs/split-notes.md")).unwrap();
    assert!(
        report.contains("The gateway sends `/api/things/{id}/notes` (exactly) to it"),
        "{report}"
    );
    // Nothing msgen generated uses a database: the workspace brings no sqlx of its
    // own beside the monolith's (whatever its version).
    for manifest in ["Cargo.toml", "common/Cargo.toml", "gateway/Cargo.toml"] {
        let text = fs::read_to_string(root.join(manifest)).unwrap();
        assert!(!text.contains("sqlx"), "{manifest}:\n{text}");
    }
    let bin = dir.path().join("bin");
    {
        let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&root.join("legacy"), &["build"]);
        cargo(&root, &["test", "-p", "gateway"]);
    }
    build_bins(&root.join("legacy"), &bin, &["shelf"]);
    build_bins(&root, &bin, &["gateway", "notes-service"]);

    let system = SplitSystem::start(&root, &bin, "shelf", "SHELF_ADDR", &["notes"]);
    let (gw, db) = (&system.url, &system.db);

    let (status, thing) = call(
        "POST",
        &format!("{gw}/api/things"),
        None,
        Some(json!({"name": "lamp"})),
    );
    assert_eq!(status, 201, "{thing}");
    let id = thing["id"].as_i64().unwrap();
    let (status, body) = call("GET", &format!("{gw}/api/things/{id}"), None, None);
    assert_eq!((status, body["name"].clone()), (200, json!("lamp")));
    let (status, note) = call(
        "POST",
        &format!("{gw}/api/things/{id}/notes"),
        None,
        Some(json!({"body": "needs a bulb"})),
    );
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["thing_id"], json!(id));
    let (status, body) = call("GET", &format!("{gw}/api/things/{id}/notes"), None, None);
    assert_eq!(
        (status, body[0]["body"].clone()),
        (200, json!("needs a bulb"))
    );
    // Each request reached its owner: the note is in the service's database only.
    assert_eq!(count(db, "notes.notes"), 1);
    assert!(!exists(db, "public.notes"));
    assert_eq!(count(db, "public.things"), 1);
    let (status, body) = call("GET", &format!("{gw}/api/things"), None, None);
    assert_eq!((status, body[0]["name"].clone()), (200, json!("lamp")));
    system.stop();

    // Then the other: things now has the prefix to itself.
    assert_ok(&msgen(&root, &["split", "things", "--from", "legacy"]));
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(config.contains("paths = [\"/api/things\"]"), "{config}");
    let routes = fs::read_to_string(root.join("gateway/src/routes.rs")).unwrap();
    let notes_at = routes.find("prefix: \"/api/things/{id}/notes\"").unwrap();
    let things_at = routes.find("prefix: \"/api/things\"").unwrap();
    assert!(
        notes_at < things_at,
        "the more specific route comes first:\n{routes}"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root, &["test", "-p", "gateway"]);
    cargo(&root, &["fmt", "-p", "gateway", "--check"]);
    cargo(
        &root,
        &[
            "clippy",
            "-p",
            "gateway",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
}

/// The second step: a service with nothing across the cut moves to a database of
/// its own, its rows and sequences copied by the script msgen writes; one with
/// reads across is refused, each site listed, nothing changed.
#[test]
fn a_service_moves_to_a_database_of_its_own_with_its_rows() {
    require_postgres();
    let (_d, shop) = adopt("joined");
    assert_ok(&msgen(&shop, &["split", "catalog", "--from", "legacy"]));
    let before = tree(&shop);
    let out = msgen(&shop, &["split", "catalog", "--own-database"]);
    assert!(!out.status.success());
    for expected in [
        "nothing was changed",
        "legacy/src/orders.rs:28: reads `products`, which moves with service `catalog`",
        "migrations/0001_shop.sql: `product_id BIGINT NOT NULL REFERENCES products (id)` ties `products` and `orders (the monolith)`",
    ] {
        assert!(stderr(&out).contains(expected), "{expected:?} not in:\n{}", stderr(&out));
    }
    assert_eq!(tree(&shop), before);

    let (dir, root) = adopt("shelf");
    assert_ok(&msgen(&root, &["split", "things", "--from", "legacy"]));
    let bin = dir.path().join("bin");
    build_bins(&root.join("legacy"), &bin, &["shelf"]);
    build_bins(&root, &bin, &["gateway", "things-service"]);
    let system = SplitSystem::start(&root, &bin, "shelf", "SHELF_ADDR", &["things"]);
    let gw = system.url.clone();
    for name in ["lamp", "desk"] {
        let (status, _) = call(
            "POST",
            &format!("{gw}/api/things"),
            None,
            Some(json!({"name": name})),
        );
        assert_eq!(status, 201);
    }
    let (status, _) = call(
        "POST",
        &format!("{gw}/api/things/2/notes"),
        None,
        Some(json!({"body": "oak"})),
    );
    assert_eq!(status, 201);
    let db = system.db.clone();
    system.stop();

    let out = msgen(&root, &["split", "things", "--own-database"]);
    assert_ok(&out);
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(!config.contains("schema ="), "{config}");
    let first =
        fs::read_to_string(root.join("services/things/migrations/0_msgen_tables.sql")).unwrap();
    assert!(first.contains("CREATE TABLE things ("), "{first}");
    assert_ok(&msgen(&root, &["generate", "--check"]));
    build_bins(&root, &bin, &["gateway", "things-service"]);
    // The service starts on its new database (its migrations make the table), the
    // script copies the rows and the sequence, and the API answers as before.
    let system = SplitSystem::start_on(&root, &bin, "shelf", "SHELF_ADDR", &["things"], db.clone());
    let own = format!("{db}_things");
    assert_eq!(count(&own, "things"), 0);
    let copy = Command::new("sh")
        .arg(root.join("services/things/db/copy-rows.sh"))
        .env(
            "MONOLITH_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .env(
            "SERVICE_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{own}"),
        )
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let gw = &system.url;
    let (status, body) = call("GET", &format!("{gw}/api/things"), None, None);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([{"id": 1, "name": "lamp"}, {"id": 2, "name": "desk"}])
    );
    let (status, body) = call(
        "POST",
        &format!("{gw}/api/things"),
        None,
        Some(json!({"name": "shelf"})),
    );
    assert_eq!((status, body["id"].clone()), (201, json!(3)));
    let (status, body) = call("GET", &format!("{gw}/api/things/2/notes"), None, None);
    assert_eq!((status, body[0]["body"].clone()), (200, json!("oak")));
    system.stop();
}

/// A module whose routes lie under the routes of a service split out earlier
/// (entries at `/api/accounts/{id}/entries`, after accounts) gets its exact
/// routes, not the prefix the earlier service serves.
#[test]
fn a_module_under_an_earlier_services_routes_gets_its_exact_routes() {
    let (_d, root) = adopt("ledger");
    assert_ok(&msgen(&root, &["split", "accounts", "--from", "legacy"]));
    assert_ok(&msgen(&root, &["split", "entries", "--from", "legacy"]));
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.contains("routes = [\"/api/accounts/{id}/entries\"]")
            && !config.contains("paths = [\"/api/accounts\"]"),
        "{config}"
    );
    // The service makes its schema before sqlx looks for its history there.
    let main = fs::read_to_string(root.join("services/accounts/src/main.rs")).unwrap();
    assert!(
        main.contains("sqlx::migrate!().run(msgen_schema(&db).await).await?;")
            && main.contains("CREATE SCHEMA IF NOT EXISTS \"accounts\""),
        "{main}"
    );
    // The accounts module stays in the monolith for the code that uses it, and
    // the entries service, which copies it along, is told it is a service now.
    let report = fs::read_to_string(root.join("docs/split-entries.md")).unwrap();
    assert!(
        report.contains("src/entries.rs:9 uses `crate::accounts`: a call into `accounts`, which is service `accounts` since an earlier split"),
        "{report}"
    );
}

/// `generate` says when services.toml's majors and the monolith's part ways (a
/// project split before msgen followed them, or a hand edit).
#[test]
fn generate_warns_when_the_monolith_is_on_another_axum() {
    let (_d, root) = adopt("shelf");
    assert_ok(&msgen(&root, &["split", "notes", "--from", "legacy"]));
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    fs::write(
        root.join("services.toml"),
        config.replace("axum = \"0.7\"\n", ""),
    )
    .unwrap();
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    let said = stdout(&out);
    assert!(
        said.contains("warning: legacy/Cargo.toml asks for axum 0.7, the generated crates use axum 0.8: the workspace builds both (set `axum = \"0.7\"` under [project] in services.toml)"),
        "{said}"
    );
}

/// A later split that moves a table an earlier service reads (orders joins
/// products; catalog leaves after orders) tells that service, in its own report
/// too, and puts the new schema on its search path.
#[test]
fn a_later_split_tells_the_earlier_service_whose_reads_it_moves() {
    let (_d, root) = adopt("joined");
    assert_ok(&msgen(&root, &["split", "orders", "--from", "legacy"]));
    let before = fs::read_to_string(root.join("docs/split-orders.md")).unwrap();
    assert_ok(&msgen(&root, &["split", "catalog", "--from", "legacy"]));
    let report = fs::read_to_string(root.join("docs/split-orders.md")).unwrap();
    assert!(report.starts_with(&before), "{report}");
    let added = &report[before.len()..];
    assert!(
        added.contains("## Since `msgen split catalog --from legacy`")
            && added
                .contains("service `orders` reads `products`, which moves to service `catalog`"),
        "{added}"
    );
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    assert!(
        compose.contains("search_path%3Dorders%2Ccatalog%2Cpublic"),
        "{compose}"
    );
}

/// Migrations where `sqlx::migrate!("./db/migrations")` says: read there, the
/// move written there, the service's directory at the same place.
#[test]
fn migrations_in_another_directory_are_found_where_the_code_says() {
    let (_d, root) = adopt("shelf");
    fs::create_dir_all(root.join("legacy/db")).unwrap();
    fs::rename(
        root.join("legacy/migrations"),
        root.join("legacy/db/migrations"),
    )
    .unwrap();
    change(
        &root,
        "src/main.rs",
        "sqlx::migrate!()",
        "sqlx::migrate!(\"./db/migrations\")",
    );
    assert_ok(&msgen(&root, &["split", "notes", "--from", "legacy"]));
    let moves =
        fs::read_to_string(root.join("legacy/db/migrations/0002_msgen_split_notes.sql")).unwrap();
    assert!(moves.contains("SET SCHEMA \"notes\""), "{moves}");
    assert!(!root.join("legacy/migrations").exists());
    assert!(root
        .join("services/notes/db/migrations/README.md")
        .is_file());
    let build = fs::read_to_string(root.join("services/notes/build.rs")).unwrap();
    assert!(build.contains("rerun-if-changed=db/migrations"), "{build}");
}
