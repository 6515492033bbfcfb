//! Every example renders into a workspace that passes `cargo fmt --check`,
//! `cargo clippy -D warnings`, `cargo build` and its own `cargo test` (against the
//! machine's PostgreSQL). All builds share one target directory.

mod common;

use common::{assert_ok, cargo, example, examples, msgen, require_postgres, CARGO_LOCK};

fn check_example(name: &str) {
    require_postgres();
    common::require_nats();
    let dir = tempfile::tempdir().unwrap();
    let config = example(name);
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
