//! insta snapshots of every rendered file of every example, one snapshot per file
//! (`tests/snapshots/<example>/<path with / as __>.snap`), so a template change
//! shows up as a reviewable diff of exactly the files it changes
//! (`INSTA_UPDATE=always cargo test --test snapshots` accepts them; a file the
//! examples no longer render loses its snapshot in the same run).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{assert_ok, example, examples, msgen, tree};

/// The snapshot name of a rendered file: its path, with `/` as `__` so each
/// example's snapshots sit in one flat directory.
fn snapshot_name(path: &str) -> String {
    path.replace('/', "__")
}

fn snapshot_dir(example: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(example)
}

/// Whether this run writes snapshots rather than comparing with them.
fn updating() -> bool {
    matches!(
        std::env::var("INSTA_UPDATE").as_deref(),
        Ok("always" | "unseen" | "1" | "force")
    )
}

/// Compares one example's rendered files with their snapshots; the names of the
/// files that differ, have no snapshot, or whose snapshot has no file any more.
fn check_example(name: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = example(name);
    assert_ok(&msgen(
        dir.path(),
        &["new", name, "--yes", "--config", config.to_str().unwrap()],
    ));
    let mut failed = Vec::new();
    let mut expected = BTreeSet::new();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir(name));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for (path, bytes) in tree(&dir.path().join(name)) {
        // msgen's records, and the user's `.env` (a fresh secret each time,
        // never part of what msgen renders).
        if path.starts_with(".msgen/") || path == ".env" {
            continue;
        }
        let snap = snapshot_name(&path);
        expected.insert(format!("{snap}.snap"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // Every file is compared, not only up to the first that differs.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(snap.as_str(), text));
        }));
        if outcome.is_err() {
            failed.push(format!("{name}: {path}"));
        }
    }
    // A snapshot whose file is no longer rendered would otherwise lie there,
    // passing, forever.
    for entry in std::fs::read_dir(snapshot_dir(name)).into_iter().flatten() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !file.ends_with(".snap") || expected.contains(&file) {
            continue;
        }
        if updating() {
            std::fs::remove_file(snapshot_dir(name).join(&file)).unwrap();
        } else {
            failed.push(format!("{name}: {file} (no longer rendered)"));
        }
    }
    failed
}

#[test]
fn every_rendered_file_matches_its_snapshot() {
    let failed: Vec<String> = examples().iter().flat_map(|n| check_example(n)).collect();
    assert!(
        failed.is_empty(),
        "{} rendered file(s) differ from their snapshots (INSTA_UPDATE=always accepts them):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}
