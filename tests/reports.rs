//! insta snapshots of what msgen tells its user, not only of what it writes: the
//! diagnostics of every file in `tests/fixtures/invalid/`, the diff and the
//! refusal `generate` prints after a `services.toml` change, and the report of a
//! `split` of the generated monolith and of each hand-written monolith in
//! `tests/fixtures/monoliths/`. A change to a message then shows as a diff to
//! review (`INSTA_UPDATE=always cargo test --test reports` accepts it).

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_ok, copy_dir, edit_config, example, fixture_monolith, msgen, stderr, stdout};

/// What a run printed, with its exit code, and the temporary directory it ran
/// in written as `[DIR]` so the snapshot is the same on every machine.
fn printed(out: &Output, dir: &Path) -> String {
    let text = format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    redact(&text, dir)
}

fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.to_string();
    for form in [dir.canonicalize().ok(), Some(dir.to_path_buf())]
        .into_iter()
        .flatten()
    {
        text = text.replace(&*form.to_string_lossy(), "[DIR]");
    }
    text
}

#[test]
fn diagnostics_of_invalid_files() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", fixtures.display());
    for file in files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&file, dir.path().join("services.toml")).unwrap();
        let out = msgen(dir.path(), &["validate"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("invalid_{name}"), printed(&out, dir.path()));
    }
}

/// A rendered built-in example, as `shop/` in a temporary directory.
fn rendered(config: &str, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = example(config);
    let mut args = vec!["new", "shop", "--yes", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    assert_ok(&msgen(dir.path(), &args));
    let root = dir.path().join("shop");
    (dir, root)
}

#[test]
fn generate_prints_the_diff_of_a_new_field_and_its_migration() {
    let (dir, root) = rendered("blogsys", &[]);
    edit_config(
        &root,
        "published = \"bool\" }",
        "published = \"bool\", views = \"i64?\" }",
    );
    let out = msgen(&root, &["generate", "--dry-run"]);
    assert_ok(&out);
    insta::assert_snapshot!("generate_new_field", printed(&out, dir.path()));
}

#[test]
fn generate_refuses_a_required_field_on_a_table_with_rows() {
    let (dir, root) = rendered("blogsys", &[]);
    edit_config(
        &root,
        "published = \"bool\" }",
        "published = \"bool\", views = \"i64\" }",
    );
    let out = msgen(&root, &["generate"]);
    insta::assert_snapshot!("generate_refused", printed(&out, dir.path()));
}

#[test]
fn generate_reports_a_conflict_with_a_hand_edit() {
    let (dir, root) = rendered("blogsys", &[]);
    // A hand edit on the line after which the new field's column goes.
    let repo = root.join("services/blog/src/repo/post.rs");
    let text = std::fs::read_to_string(&repo).unwrap();
    let edited = text.replacen(
        "    \"published\",\n",
        "    \"published\", -- shown on the front page\n",
        1,
    );
    assert_ne!(text, edited, "the repo lists \"published\"");
    std::fs::write(&repo, edited).unwrap();
    edit_config(
        &root,
        "published = \"bool\" }",
        "published = \"bool\", views = \"i64?\" }",
    );
    let out = msgen(&root, &["generate"]);
    let merged = std::fs::read_to_string(&repo).unwrap();
    insta::assert_snapshot!(
        "generate_conflict",
        format!(
            "{}\n--- services/blog/src/repo/post.rs\n{merged}",
            printed(&out, dir.path())
        )
    );
}

#[test]
fn split_report_of_the_generated_monolith() {
    let (dir, root) = rendered("blogsys", &["--monolith"]);
    let out = msgen(&root, &["split", "blog"]);
    assert_ok(&out);
    let report = std::fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    insta::assert_snapshot!("split_monolith_blog", redact(&report, dir.path()));
}

#[test]
fn split_reports_of_hand_written_monoliths() {
    for (fixture, module) in [
        ("nested", "blog"),
        ("shared", "posts"),
        ("joined", "catalog"),
        ("shelf", "things"),
        ("ledger", "entries"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        copy_dir(&fixture_monolith(fixture), &root.join("legacy"));
        let out = msgen(&root, &["split", module, "--from", "legacy"]);
        let report = std::fs::read_to_string(root.join(format!("docs/split-{module}.md")))
            .unwrap_or_else(|_| printed(&out, dir.path()));
        insta::assert_snapshot!(
            format!("split_{fixture}_{module}"),
            redact(&report, dir.path())
        );
    }
}
