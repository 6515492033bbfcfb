//! `msgen status`: hand edits, open conflicts, what `generate` would change and
//! schema changes waiting for a migration, with exit codes for CI; and the
//! documents `new` writes describe the project it made.

mod common;

use common::{assert_ok, edit_config, msgen, stdout, tree};
use std::fs;

fn status(root: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let out = msgen(root, &all);
    (out.status.code(), stdout(&out))
}

#[test]
fn status_tells_hand_edits_conflicts_drift_and_schema_changes_apart() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&msgen(dir.path(), &["new", "shop", "--yes"]));
    let root = dir.path().join("shop");

    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("has nothing to do"), "{out}");

    // A hand edit is reported, and is no reason to fail.
    let handler = root.join("services/blog/src/handlers/post.rs");
    let mut text = fs::read_to_string(&handler).unwrap();
    text.push_str("// reviewed by Ada\n");
    fs::write(&handler, &text).unwrap();
    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("edited         services/blog/src/handlers/post.rs"),
        "{out}"
    );
    assert!(
        !out.contains("reviewed by Ada"),
        "no diff without --diff: {out}"
    );
    let (_, out) = status(&root, &["--diff"]);
    assert!(
        out.contains("+++ b/services/blog/src/handlers/post.rs")
            && out.contains("+// reviewed by Ada"),
        "{out}"
    );

    // services.toml changed: the files generate would write and the migration it
    // owes, exit 1; and nothing written by looking.
    edit_config(&root, "age = \"i32?\"", "age = \"i32?\", bio = \"string?\"");
    let before = tree(&root);
    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("update         services/user/src/models/user.rs"),
        "{out}"
    );
    assert!(
        out.contains("Schema changes waiting for a migration")
            && out.contains("add column \"bio\""),
        "{out}"
    );
    assert_eq!(before, tree(&root), "status wrote something");
    let quiet = msgen(&root, &["--quiet", "status"]);
    assert_eq!(quiet.status.code(), Some(1));
    assert_eq!(stdout(&quiet), "");
    assert_ok(&msgen(&root, &["generate"]));
    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(0), "{out}");

    // A conflict stays reported, with its lines, until its markers are gone.
    let model = root.join("services/user/src/models/user.rs");
    let text = fs::read_to_string(&model).unwrap();
    fs::write(
        &model,
        text.replace("pub age: Option<i32>,", "pub age: Option<i64>,"),
    )
    .unwrap();
    edit_config(
        &root,
        "age = \"i32?\"",
        "age = \"i32?\", nick = \"string?\"",
    );
    assert_eq!(msgen(&root, &["generate"]).status.code(), Some(1));
    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Unresolved conflicts") && out.contains("services/user/src/models/user.rs: "),
        "{out}"
    );
    let marked = fs::read_to_string(&model).unwrap();
    let resolved: String = marked
        .lines()
        .filter(|l| {
            !l.starts_with("<<<<<<<") && !l.starts_with("=======") && !l.starts_with(">>>>>>>")
        })
        .filter(|l| !l.contains("Option<i64>"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&model, resolved).unwrap();
    let (_, out) = status(&root, &[]);
    assert!(!out.contains("Unresolved conflicts"), "{out}");

    // A generated file removed by hand: generate writes it again, said once.
    fs::remove_file(root.join("services/blog/Dockerfile")).unwrap();
    let (code, out) = status(&root, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("create         services/blog/Dockerfile"),
        "{out}"
    );
    assert!(
        !out.contains("deleted        services/blog/Dockerfile"),
        "{out}"
    );
}

#[test]
fn status_outside_a_project_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("services.toml"), "{err}");
}

#[test]
fn documents_describe_the_project_new_made() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&msgen(dir.path(), &["new", "mono", "--yes", "--monolith"]));
    let root = dir.path().join("mono");
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.starts_with("# mono: an API gateway in front of a modular monolith whose modules (auth, user and\n# blog) share its database.\n"),
        "{config}"
    );
    assert!(!config.contains("three services"), "{config}");
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("in front of a modular monolith whose modules (auth, user and blog) share its database."),
        "{readme}"
    );
    assert!(!readme.contains("0 service(s)"), "{readme}");
    assert!(
        readme.contains("cargo install --locked --path ."),
        "{readme}"
    );
    assert!(
        readme.contains("cargo test --workspace --no-fail-fast"),
        "{readme}"
    );

    // The header msgen wrote follows the services; one of the user's own stays.
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.starts_with("# mono: an API gateway in front of the billing service, with a database of its own;\n# and a modular monolith"),
        "{config}"
    );
    let own = config.replacen("# mono: an API gateway", "# Our shop: an API gateway", 1);
    let own = own.replacen(
        "# Edit this file, then run `msgen generate`; `msgen validate` checks it.\n",
        "",
        1,
    );
    fs::write(root.join("services.toml"), &own).unwrap();
    assert_ok(&msgen(&root, &["remove-service", "billing"]));
    let config = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        config.starts_with("# Our shop: an API gateway in front of the billing"),
        "{config}"
    );

    // The built-in example as it is keeps its own words.
    assert_ok(&msgen(dir.path(), &["new", "plain", "--yes"]));
    let config = fs::read_to_string(dir.path().join("plain/services.toml")).unwrap();
    assert!(config.starts_with("# The article's system"), "{config}");
    let readme = fs::read_to_string(dir.path().join("plain/README.md")).unwrap();
    assert!(
        readme.contains(
            "in front of the auth, user and blog services, each with a database of its own."
        ),
        "{readme}"
    );
}
