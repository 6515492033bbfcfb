//! Every example renders into a workspace that passes `cargo fmt --check`,
//! `cargo clippy -D warnings`, `cargo build` and its own `cargo test` (against the
//! machine's PostgreSQL). All builds share one target directory.

mod common;

use common::{assert_ok, cargo, example, examples, msgen, require_postgres, CARGO_LOCK};

fn check_example(name: &str) {
    check_example_with(name, "");
}

/// `project` holds more `[project]` keys for the example, e.g. its majors.
fn check_example_with(name: &str, project: &str) {
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
}

#[test]
fn examples_are_all_covered() {
    // A new example file must get a test below.
    assert_eq!(examples(), ["blogsys", "mixed", "monolith", "platform"]);
}

#[test]
fn blogsys_workspace_builds_and_passes_its_tests() {
    check_example("blogsys");
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
