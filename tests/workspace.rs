//! Every example renders into a workspace that passes `cargo fmt --check`,
//! `cargo clippy -D warnings`, `cargo build` and its own `cargo test` (against the
//! machine's PostgreSQL). All builds share one target directory.

mod common;

use common::{assert_ok, cargo, example, examples, msgen, require_postgres, CARGO_LOCK};

fn check_example(name: &str) -> tempfile::TempDir {
    check_example_with(name, "")
}

/// `project` holds more `[project]` keys for the example, e.g. its majors.
/// Returns the directory holding the project (`<dir>/<name>`).
fn check_example_with(name: &str, project: &str) -> tempfile::TempDir {
    require_postgres();
    common::require_nats();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example(name)).unwrap();
    let text = text.replacen("[project]\n", &format!("[project]\n{project}"), 1);
    let config = dir.path().join("services.toml");
    std::fs::write(&config, text).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", name, "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join(name);
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root, &["fmt", "--all", "--", "--check"]);
    cargo(&root, &["clippy", "--all-targets", "--", "-D", "warnings"]);
    cargo(&root, &["build"]);
    // The generated workspace's own tests really ran.
    common::cargo_test_ran(&root, 10);
    dir
}

#[test]
fn examples_are_all_covered() {
    // A new example file must get a test below.
    assert_eq!(examples(), ["blogsys", "mixed", "monolith", "platform"]);
}

#[test]
fn blogsys_workspace_builds_and_passes_its_tests() {
    let root = check_example("blogsys");
    the_openapi_test_names_routes(&root.path().join("blogsys"));
    // `common` is the one crate with features; tools that turn them all on
    // (`--all-features`) still build it: axum 0.7's is no feature of an axum 0.8
    // project, and each database kind brings its driver.
    let _lock = common::CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(
        &root.path().join("blogsys"),
        &[
            "clippy",
            "-p",
            "common",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    );
}

/// The generated OpenAPI test lets a documented route of the user's own through
/// (and lists it), and names a declared route that is no longer documented.
fn the_openapi_test_names_routes(root: &std::path::Path) {
    let _lock = common::CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let handlers = root.join("services/user/src/handlers/user.rs");
    let mut text = std::fs::read_to_string(&handlers).unwrap();
    text.push_str(
        "\n/// How many profiles there are (a route of the user's own).\n#[utoipa::path(get, path = \"/api/v1/users/count\", tag = \"users\", responses((status = 200, description = \"count\")))]\npub async fn count() -> &'static str {\n    \"0\"\n}\n",
    );
    std::fs::write(&handlers, text).unwrap();
    let routes = root.join("services/user/src/routes.rs");
    let table = std::fs::read_to_string(&routes).unwrap();
    let own = table.replacen(
        "        .routes(routes!(handlers::user::list, handlers::user::create))\n",
        "        .routes(routes!(handlers::user::list, handlers::user::create))\n        .routes(routes!(handlers::user::count))\n",
        1,
    );
    assert_ne!(own, table, "{table}");
    std::fs::write(&routes, &own).unwrap();
    let args = [
        "test",
        "-p",
        "user-service",
        "--test",
        "api",
        "the_openapi",
        "--",
        "--nocapture",
    ];
    let out = cargo(root, &args);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("documented beyond services.toml: [\"get /api/v1/users/count\"]"),
        "{said}"
    );
    let without_patch = own.replacen("            handlers::user::patch,\n", "", 1);
    assert_ne!(without_patch, own, "{own}");
    std::fs::write(&routes, without_patch).unwrap();
    let out = common::cargo_output(root, &args);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("declared in services.toml but not in the OpenAPI document: [\"patch /api/v1/users/{id}\"]"),
        "{said}"
    );
}

#[test]
fn mixed_workspace_builds_and_passes_its_tests() {
    check_example("mixed");
}

#[test]
fn monolith_workspace_builds_and_passes_its_tests() {
    check_example("monolith");
}

#[test]
fn platform_workspace_builds_and_passes_its_tests() {
    check_example("platform");
}

/// The crates msgen generates follow an adopted monolith's majors: axum 0.7 (its
/// route syntax; `common` serves connections itself) and sqlx 0.9. The monolith's
/// modules and the PostgreSQL, SQLite and database-less services, built and tested.
#[test]
fn monolith_workspace_on_axum_0_7_and_sqlx_0_9_builds_and_passes_its_tests() {
    check_example_with("monolith", "axum = \"0.7\"\nsqlx = \"0.9\"\n");
}

#[test]
fn mixed_workspace_on_axum_0_7_and_sqlx_0_9_builds_and_passes_its_tests() {
    check_example_with("mixed", "axum = \"0.7\"\nsqlx = \"0.9\"\n");
}
