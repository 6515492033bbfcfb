//! Never lose a byte: one writer per project (a lock), temporary files msgen owns
//! (created exclusively, never through a link, swept only from `.msgen/tmp/`), and
//! no write followed out of the project.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{assert_ok, copy_dir, fixture_monolith, msgen, stderr, tree};

fn new_project(dir: &Path) -> std::path::PathBuf {
    common::new_from_example(dir, "mixed", "shop")
}

#[test]
fn a_second_writer_is_told_the_project_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    // This process holds the lock, as a running msgen would.
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join(".msgen/lock"))
        .unwrap();
    lock.try_lock().unwrap();
    fs::write(
        root.join(".msgen/lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let before = common::tree(&root);
    for args in [
        &["generate"][..],
        &["add-service", "billing"],
        &["remove-service", "pricing"],
        &["add-migration", "catalog", "seed"],
        &["split", "catalog"],
    ] {
        let out = msgen(&root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("busy") && err.contains(&format!("pid {}", std::process::id())),
            "{args:?}: {err}"
        );
    }
    assert!(
        common::tree(&root) == before,
        "a refused writer changed the tree"
    );
    // Readers need no lock.
    assert_ok(&msgen(&root, &["generate", "--check"]));
    assert_ok(&msgen(&root, &["validate"]));
    drop(lock);
    assert_ok(&msgen(&root, &["add-service", "billing"]));
}

#[test]
fn two_add_service_at_once_never_lose_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    for round in 0..4 {
        let (a, b) = (format!("alpha{round}"), format!("beta{round}"));
        let spawn = |name: &str| {
            Command::new(common::msgen_bin())
                .arg("-C")
                .arg(&root)
                .args(["add-service", name, "--quiet"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(&a), spawn(&b));
        let outcomes = [
            (a, first.wait_with_output().unwrap()),
            (b, second.wait_with_output().unwrap()),
        ];
        let config = fs::read_to_string(root.join("services.toml")).unwrap();
        for (name, out) in &outcomes {
            let listed = config.contains(&format!("name = \"{name}\""));
            if out.status.success() {
                assert!(
                    listed,
                    "`add-service {name}` succeeded but services.toml lacks it:\n{config}"
                );
            } else {
                assert!(!listed, "{name}");
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains("busy"),
                    "{:?}",
                    out
                );
            }
        }
        // Whatever happened, the project is consistent.
        assert_ok(&msgen(&root, &["generate", "--check"]));
    }
}

#[test]
fn the_sweep_leaves_files_named_like_temporary_ones_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let mine = [
        "notes.msgen-tmp-draft.txt",
        ".Cargo.toml.msgen-tmp-4242",
        "services/catalog/src/.x.msgen-tmp-1",
    ];
    for m in mine {
        fs::write(root.join(m), "mine").unwrap();
    }
    // A killed run's leftovers are where msgen keeps them.
    fs::create_dir_all(root.join(".msgen/tmp")).unwrap();
    fs::write(root.join(".msgen/tmp/.msgen-tmp-1-0"), "half").unwrap();
    common::edit_config(&root, "quantity = \"i32\"", "quantity = \"i64\"");
    assert_ok(&msgen(&root, &["generate"]));
    for m in mine {
        assert_eq!(fs::read_to_string(root.join(m)).unwrap(), "mine", "{m}");
    }
    assert_eq!(fs::read_dir(root.join(".msgen/tmp")).unwrap().count(), 0);
    let gitignore = fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(gitignore.contains("/.msgen/tmp/") && gitignore.contains("/.msgen/lock"));
}

#[cfg(unix)]
#[test]
fn links_planted_where_msgen_writes_temporary_files_are_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "precious").unwrap();

    // Links inside .msgen/tmp/ at every name msgen could pick: swept, not followed.
    fs::create_dir_all(root.join(".msgen/tmp")).unwrap();
    for n in 0..50 {
        symlink(
            outside.join("victim"),
            root.join(format!(".msgen/tmp/.msgen-tmp-{n}-0")),
        )
        .unwrap();
    }
    common::edit_config(&root, "quantity = \"i32\"", "quantity = \"i64\"");
    assert_ok(&msgen(&root, &["generate"]));
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "precious"
    );

    // .msgen/tmp itself a link out of the project: refused, nothing written there.
    fs::remove_dir_all(root.join(".msgen/tmp")).unwrap();
    symlink(&outside, root.join(".msgen/tmp")).unwrap();
    common::edit_config(
        &root,
        "quantity = \"i64\"",
        "quantity = \"i64\", extra = \"string?\"",
    );
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(".msgen/tmp"), "{}", stderr(&out));
    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["victim"]);
}

#[cfg(unix)]
#[test]
fn split_from_does_not_follow_a_dangling_cargo_lock_link() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    copy_dir(&fixture_monolith("nested"), &root.join("legacy"));
    fs::write(root.join("legacy/Cargo.lock"), "# locked\n").unwrap();
    let target = dir.path().join("planted.lock");
    symlink(&target, root.join("Cargo.lock")).unwrap();
    let out = msgen(&root, &["split", "blog", "--from", "legacy"]);
    assert!(
        !target.exists(),
        "split --from wrote through the link: {}",
        stderr(&out)
    );
    assert!(fs::symlink_metadata(root.join("Cargo.lock"))
        .unwrap()
        .file_type()
        .is_symlink());
}

fn new_monolith(dir: &Path) -> std::path::PathBuf {
    common::new_from_example(dir, "monolith", "mono")
}

#[test]
fn split_moves_binary_and_non_utf8_files_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_monolith(dir.path());
    let png: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let latin1 = b"//! caf\xe9 cr\xe8me\r\npub fn f() {}\r\n".to_vec();
    fs::write(root.join("monolith/src/blog/logo.png"), &png).unwrap();
    fs::write(root.join("monolith/src/blog/legacy.rs"), &latin1).unwrap();
    let out = msgen(&root, &["split", "blog"]);
    assert_ok(&out);
    assert_eq!(
        fs::read(root.join("services/blog/src/logo.png")).unwrap(),
        png
    );
    assert_eq!(
        fs::read(root.join("services/blog/src/legacy.rs")).unwrap(),
        latin1
    );
    assert!(!root.join("monolith/src/blog/logo.png").exists());
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(
        report.contains("services/blog/src/legacy.rs: not UTF-8"),
        "{report}"
    );
}

#[test]
fn split_never_writes_over_files_already_in_the_service_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_monolith(dir.path());
    fs::create_dir_all(root.join("services/blog/src")).unwrap();
    fs::write(root.join("services/blog/src/lib.rs"), "// mine\n").unwrap();
    fs::write(root.join("services/blog/notes.md"), "mine too\n").unwrap();
    let before = common::tree(&root);
    let out = msgen(&root, &["split", "blog"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("services/blog/src/lib.rs")
            && err.contains("services/blog/notes.md")
            && err.contains("nothing was written"),
        "{err}"
    );
    let after = common::tree(&root);
    let changed: Vec<&String> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "a refused split changed {changed:?}");
}

#[test]
fn add_and_remove_service_work_on_services_written_as_an_inline_array() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inline");
    fs::create_dir(&root).unwrap();
    let text = r#"# Services written inline.
services = [
  { name = "user", port = 3002, resources = [{ name = "user", fields = { email = "email" } }] },
  { name = "blog", port = 3003, depends_on = ["user"] }, # the blog
]

[project]
name = "inline"
"#;
    fs::write(root.join("services.toml"), text).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert_ok(&msgen(
        &root,
        &[
            "add-service",
            "billing",
            "--resource",
            "invoice",
            "--field",
            "total:f64",
        ],
    ));
    let added = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        added.contains(r#"{ name = "billing", port = 3001, resources = [{ name = "invoice", fields = { total = "f64" } }] }"#),
        "{added}"
    );
    assert!(added.contains("# the blog") && added.starts_with("# Services written inline."));
    assert!(root
        .join("services/billing/src/models/invoice.rs")
        .is_file());
    assert_ok(&msgen(&root, &["generate", "--check"]));

    let out = msgen(&root, &["remove-service", "billing"]);
    assert_ok(&out);
    assert_eq!(
        fs::read_to_string(root.join("services.toml")).unwrap(),
        text
    );
    assert!(!root.join("services/billing/src").exists());
    assert_ok(&msgen(&root, &["generate", "--check"]));
}

#[test]
fn merges_keep_bytes_that_are_not_utf8_and_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    // The user's bytes in a generated file: a Latin-1 comment, a CRLF line.
    let compose = root.join("compose.yaml");
    let mut text = b"# caf\xe9 cr\xe8me\r\n".to_vec();
    text.extend(fs::read(&compose).unwrap());
    fs::write(&compose, &text).unwrap();
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    let merged = fs::read(&compose).unwrap();
    assert!(
        merged.starts_with(b"# caf\xe9 cr\xe8me\r\n"),
        "the user's bytes changed: {:?}",
        String::from_utf8_lossy(&merged[..40])
    );
    assert!(
        String::from_utf8_lossy(&merged).contains("billing-service"),
        "the render's change is missing"
    );
    // And back: the render's change goes, the user's bytes stay.
    assert_ok(&msgen(&root, &["remove-service", "billing"]));
    let after = fs::read(&compose).unwrap();
    assert!(after.starts_with(b"# caf\xe9 cr\xe8me\r\n"));
    assert!(!String::from_utf8_lossy(&after).contains("billing-service"));
}

/// A generated file the user's tools turned to CRLF with a BOM (git's
/// `autocrlf`, an editor) is merged line by line, and stays CRLF with its BOM.
#[test]
fn a_generated_file_turned_to_crlf_is_merged_not_one_whole_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let compose = root.join("compose.yaml");
    let text = fs::read_to_string(&compose).unwrap();
    let mut crlf = b"\xEF\xBB\xBF".to_vec();
    crlf.extend(text.replace('\n', "\r\n").into_bytes());
    fs::write(&compose, &crlf).unwrap();
    assert_ok(&msgen(&root, &["generate", "--check"]));
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    let after = fs::read(&compose).unwrap();
    assert!(
        after.starts_with(b"\xEF\xBB\xBF"),
        "the byte order mark is gone"
    );
    assert_eq!(lone_lf(&after), 0, "LF line endings crept in");
    assert!(String::from_utf8_lossy(&after).contains("billing-service"));
    // And the same with a hand edit in it: merged, still CRLF.
    let mut edited = b"\xEF\xBB\xBF# mine\r\n".to_vec();
    edited.extend_from_slice(&after[3..]);
    fs::write(&compose, &edited).unwrap();
    assert_ok(&msgen(&root, &["remove-service", "billing"]));
    let after = fs::read(&compose).unwrap();
    assert!(after.starts_with(b"\xEF\xBB\xBF# mine\r\n"));
    assert!(!String::from_utf8_lossy(&after).contains("billing-service"));
    assert_eq!(lone_lf(&after), 0, "LF line endings crept in");
}

/// Line feeds not preceded by a carriage return.
fn lone_lf(bytes: &[u8]) -> usize {
    bytes
        .windows(2)
        .filter(|w| w[1] == b'\n' && w[0] != b'\r')
        .count()
}

#[test]
fn services_toml_keeps_its_line_endings_bom_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let path = root.join("services.toml");
    let text = fs::read_to_string(&path).unwrap();
    let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    fs::write(&path, &crlf).unwrap();
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    let after = fs::read(&path).unwrap();
    assert!(
        after.starts_with(b"\xEF\xBB\xBF"),
        "the byte order mark is gone"
    );
    assert_eq!(
        lone_lf(&after),
        0,
        "LF line endings crept in:\n{}",
        String::from_utf8_lossy(&after)
    );
    assert!(
        after.starts_with(crlf.as_bytes()),
        "lines before the new service changed"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // A link to a file inside the project stays a link; the file is edited.
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        fs::create_dir(root.join("config")).unwrap();
        fs::rename(&path, root.join("config/services.toml")).unwrap();
        symlink("config/services.toml", &path).unwrap();
        assert_ok(&msgen(&root, &["add-service", "ledger"]));
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        let linked = fs::read_to_string(root.join("config/services.toml")).unwrap();
        assert!(linked.contains("name = \"ledger\""), "{linked}");

        // A link out of the project: refused, the file outside untouched.
        let outside = dir.path().join("shared.toml");
        fs::copy(root.join("config/services.toml"), &outside).unwrap();
        fs::remove_file(&path).unwrap();
        symlink(&outside, &path).unwrap();
        let before = fs::read(&outside).unwrap();
        let out = msgen(&root, &["add-service", "audit"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("outside the project"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(&outside).unwrap(), before);
    }
}

#[cfg(unix)]
#[test]
fn rewritten_files_keep_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let readme = root.join("README.md");
    let compose = root.join("compose.yaml");
    fs::set_permissions(&readme, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&compose, fs::Permissions::from_mode(0o444)).unwrap();
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    assert!(fs::read_to_string(&compose)
        .unwrap()
        .contains("billing-service"));
    assert_eq!(
        fs::metadata(&readme).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(&compose).unwrap().permissions().mode() & 0o777,
        0o444
    );
}

#[test]
fn deeply_nested_rust_is_refused_or_read_never_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_monolith(dir.path());
    // Brackets far deeper than any hand-written code: a clear refusal.
    let deep = format!(
        "pub fn f() -> i32 {{ {}1{} }}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    fs::write(root.join("monolith/src/blog/deep.rs"), &deep).unwrap();
    // A long left-deep chain: read (it nests no brackets), on msgen's large stack.
    let chain = format!("pub fn g() -> i64 {{ 0{} }}\n", " + 1".repeat(200_000));
    fs::write(root.join("monolith/src/blog/chain.rs"), &chain).unwrap();
    let out = msgen(&root, &["split", "blog"]);
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(
        report.contains("services/blog/src/deep.rs") || report.contains("deep.rs"),
        "{report}"
    );
    assert!(report.contains("levels deep"), "{report}");
    // Moved as they were.
    assert_eq!(
        fs::read_to_string(root.join("services/blog/src/deep.rs")).unwrap(),
        deep
    );
    assert_eq!(
        fs::read_to_string(root.join("services/blog/src/chain.rs")).unwrap(),
        chain
    );
}

#[test]
fn split_from_refuses_deeply_nested_rust_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    copy_dir(&fixture_monolith("nested"), &root.join("legacy"));
    let deep = format!(
        "pub fn f() -> i32 {{ {}1{} }}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let main = root.join("legacy/src/main.rs");
    let mut text = fs::read_to_string(&main).unwrap();
    text.push_str(&deep);
    fs::write(&main, &text).unwrap();
    let before = common::tree(&root);
    let out = msgen(&root, &["split", "blog", "--from", "legacy"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("src/main.rs:26:") && err.contains("levels deep"),
        "{err}"
    );
    assert!(
        common::tree(&root) == before,
        "a refused split --from changed the tree"
    );
}

#[test]
fn a_stray_record_never_gets_a_user_file_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    assert!(
        root.join(".msgen/manifest").is_file(),
        "msgen lists what it recorded"
    );
    // A record msgen never wrote (copied from elsewhere, or planted) for a file of
    // the user's, identical to it: that would pass for "generated and unedited".
    fs::write(root.join("important.txt"), "my notes\n").unwrap();
    fs::write(root.join(".msgen/base/important.txt"), "my notes\n").unwrap();
    common::edit_config(&root, "quantity = \"i32\"", "quantity = \"i64\"");
    assert_ok(&msgen(&root, &["generate"]));
    assert_eq!(
        fs::read_to_string(root.join("important.txt")).unwrap(),
        "my notes\n"
    );
    assert_ok(&msgen(&root, &["remove-service", "pricing"]));
    assert_eq!(
        fs::read_to_string(root.join("important.txt")).unwrap(),
        "my notes\n"
    );
    // What msgen did write is still removed when it is no longer generated.
    assert!(!root.join("services/pricing/src/main.rs").exists());
}

/// A missing or damaged record is named as such, and the file the user edited is
/// left as it is, with advice that keeps the edits.
#[test]
fn a_missing_or_damaged_record_is_named_and_the_edits_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let compose = root.join("compose.yaml");
    let routes = root.join("gateway/src/routes.rs");
    for f in [&compose, &routes] {
        let mut text = fs::read(f).unwrap();
        text.extend_from_slice(b"// mine\n");
        fs::write(f, text).unwrap();
    }
    let (compose_mine, routes_mine) = (fs::read(&compose).unwrap(), fs::read(&routes).unwrap());
    fs::remove_file(root.join(".msgen/base/compose.yaml")).unwrap();
    fs::write(root.join(".msgen/base/gateway/src/routes.rs"), "damaged").unwrap();
    common::edit_config(&root, "port = 4001", "port = 4011");
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(".msgen/base/compose.yaml, is missing"),
        "{err}"
    );
    assert!(
        err.contains(".msgen/base/gateway/src/routes.rs, is damaged"),
        "{err}"
    );
    assert!(err.contains("mv compose.yaml compose.yaml.mine"), "{err}");
    assert_eq!(fs::read(&compose).unwrap(), compose_mine);
    assert_eq!(fs::read(&routes).unwrap(), routes_mine);
    // Following the advice: the render and its record come back, the edits aside.
    fs::rename(&compose, root.join("compose.yaml.mine")).unwrap();
    let out = msgen(&root, &["generate"]);
    assert!(!stderr(&out).contains("compose.yaml"), "{}", stderr(&out));
    assert!(fs::read_to_string(&compose).unwrap().contains("4011"));
}

#[test]
fn conflicts_are_msgen_s_record_not_a_text_search() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    // Lines that look like conflict markers, inside a string of the user's code.
    let handler = root.join("services/catalog/src/handlers/product.rs");
    let mut text = fs::read_to_string(&handler).unwrap();
    text.push_str("\n#[allow(dead_code)]\nconst SAMPLE: &str = r#\"\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n\"#;\n");
    fs::write(&handler, &text).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert_ok(&msgen(&root, &["generate", "--check"]));
    // A render change elsewhere in that file merges as usual.
    common::edit_config(
        &root,
        "in_stock = \"bool\"",
        "in_stock = \"bool\", sku = \"string?\"",
    );
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    assert!(fs::read_to_string(&handler)
        .unwrap()
        .contains("<<<<<<< ours"));
    assert_ok(&msgen(&root, &["generate", "--check"]));
}

#[test]
fn a_conflict_resolved_by_keeping_one_s_version_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let routes = root.join("gateway/src/routes.rs");
    let mine = fs::read_to_string(&routes).unwrap().replace(
        "http://catalog-service:4001",
        "http://catalog.internal:4001",
    );
    fs::write(&routes, &mine).unwrap();
    common::edit_config(&root, "port = 4001", "port = 4011");
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(fs::read_to_string(&routes).unwrap().contains("<<<<<<<"));
    // Resolved by putting one's own version back: said, not dropped silently.
    fs::write(&routes, &mine).unwrap();
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    let said = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(
        said.contains("gateway/src/routes.rs: you resolved the conflict by keeping your version"),
        "{said}"
    );
    // Said once: the record is gone.
    let out = msgen(&root, &["generate"]);
    assert!(!format!("{}{}", common::stdout(&out), stderr(&out)).contains("you resolved"));
}

#[test]
fn a_conflict_stays_a_conflict_across_other_commands() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let routes = root.join("gateway/src/routes.rs");
    let mine = fs::read_to_string(&routes).unwrap().replace(
        "http://catalog-service:4001",
        "http://catalog.internal:4001",
    );
    fs::write(&routes, &mine).unwrap();
    common::edit_config(&root, "port = 4001", "port = 4011");
    assert_eq!(msgen(&root, &["generate"]).status.code(), Some(1));
    let marked = fs::read(&routes).unwrap();
    // A command that only adds a file says nothing about the conflict...
    assert_ok(&msgen(&root, &["add-migration", "catalog", "seed"]));
    // ...so it is still one: reported, the file untouched (not even rewritten).
    let modified = fs::metadata(&routes).unwrap().modified().unwrap();
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gateway/src/routes.rs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&routes).unwrap(), marked);
    assert_eq!(fs::metadata(&routes).unwrap().modified().unwrap(), modified);
    assert_eq!(
        msgen(&root, &["generate", "--check"]).status.code(),
        Some(1)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Arbitrary bytes (non-UTF-8, CR, NUL, BOM-like) a user put at the top of a
    /// generated file are identical after add-service and remove-service merge the
    /// render's changes into the rest of it.
    #[test]
    fn user_bytes_outside_merged_hunks_survive(prefix in proptest::collection::vec(proptest::num::u8::ANY, 0..160)) {
        let dir = tempfile::tempdir().unwrap();
        let root = new_project(dir.path());
        let compose = root.join("compose.yaml");
        let mut bytes = prefix.clone();
        bytes.push(b'\n');
        bytes.extend(fs::read(&compose).unwrap());
        fs::write(&compose, &bytes).unwrap();
        let mut kept = prefix.clone();
        kept.push(b'\n');

        let out = msgen(&root, &["add-service", "billing"]);
        proptest::prop_assert!(out.status.success(), "{}", stderr(&out));
        let after = fs::read(&compose).unwrap();
        proptest::prop_assert!(after.starts_with(&kept), "the user's bytes changed");
        proptest::prop_assert!(String::from_utf8_lossy(&after).contains("billing-service"));

        let out = msgen(&root, &["remove-service", "billing"]);
        proptest::prop_assert!(out.status.success(), "{}", stderr(&out));
        let after = fs::read(&compose).unwrap();
        proptest::prop_assert!(after.starts_with(&kept), "the user's bytes changed");
        proptest::prop_assert!(!String::from_utf8_lossy(&after).contains("billing-service"));
    }
}

/// The directories under `root`, but msgen's own (`.msgen`).
fn dirs(root: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() && e.file_name() != ".msgen" {
                out.insert(e.path().strip_prefix(root).unwrap().to_path_buf());
                stack.push(e.path());
            }
        }
    }
    out
}

/// Runs `args` in copies of the project `make` builds, killing msgen (SIGKILL) at
/// several moments: each time the project is wholly as it was (the command can be
/// run again) or, when the kill came after the commit, the next command finishes
/// it; either way the result is what an uninterrupted run makes, byte for byte.
fn a_killed_run_leaves_old_or_new(make: &dyn Fn(&Path) -> std::path::PathBuf, args: &[&str]) {
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};
    // Every file but `.env`, whose secret each `msgen new` draws afresh.
    let files = |root: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(root)
            .into_iter()
            .filter(|(p, _)| p != ".env")
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let reference = make(&dir.path().join("reference"));
    let old: BTreeMap<String, Vec<u8>> = files(&reference);
    let started = std::time::Instant::now();
    assert_ok(&msgen(&reference, args));
    let took = started.elapsed();
    let new: BTreeMap<String, Vec<u8>> = files(&reference);
    let new_dirs = dirs(&reference);
    assert_ne!(old, new);
    // SIGKILL at moments spread over a whole run (most land before the commit,
    // where the work is), then stops right after the commit and after a few of
    // its steps, where a random kill rarely lands.
    let kills = [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0]
        .map(|f: f64| (Some(took.mul_f64(f)), None));
    let stops = [0usize, 1, 2, 5, 20, 60].map(|n| (None, Some(n)));
    let (mut olds, mut finished) = (0, 0);
    for (i, (kill_at, stop_after)) in kills.into_iter().chain(stops).enumerate() {
        let delay_ms = kill_at.map_or(0, |d| d.as_millis());
        let root = make(&dir.path().join(format!("run{i}")));
        let mut cmd = Command::new(common::msgen_bin());
        cmd.arg("-C")
            .arg(&root)
            .args(args)
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = stop_after {
            cmd.env("MSGEN_KILL_AFTER_STEP", n.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(d) = kill_at {
            std::thread::sleep(d);
            let _ = child.kill();
        }
        let _ = child.wait();
        let now: BTreeMap<String, Vec<u8>> = files(&root);
        if root.join(".msgen/journal").exists() {
            // Committed: the next command finishes it before it does anything.
            assert_ok(&msgen(&root, &["generate"]));
            finished += 1;
        } else if now == old {
            olds += 1;
            assert_ok(&msgen(&root, args));
        } else {
            let differ: Vec<&String> = now
                .keys()
                .chain(old.keys())
                .filter(|p| now.get(*p) != old.get(*p))
                .take(5)
                .collect();
            assert_eq!(
                now, new,
                "killed at {delay_ms} ms, {args:?} left the project neither old nor new (differs from old in {differ:?})"
            );
        }
        let got: BTreeMap<String, Vec<u8>> = files(&root);
        let differ: Vec<&String> = got
            .keys()
            .chain(new.keys())
            .filter(|p| got.get(*p) != new.get(*p))
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "killed at {delay_ms} ms, {args:?} and a rerun differ from an uninterrupted run in {differ:?}"
        );
        // Not even an empty directory of the killed run is left behind.
        assert_eq!(
            dirs(&root),
            new_dirs,
            "killed at {delay_ms} ms, {args:?} and a rerun left other directories than an uninterrupted run"
        );
    }
    eprintln!(
        "{args:?} (an uninterrupted run: {took:?}): {olds} stop(s) before the commit, {finished} after it and before the end"
    );
    assert!(
        finished >= 5,
        "the stops after the commit did not stop msgen"
    );
}

#[test]
fn a_killed_split_leaves_the_project_old_or_new() {
    a_killed_run_leaves_old_or_new(
        &|dir| {
            fs::create_dir_all(dir).unwrap();
            let root = new_monolith(dir);
            // A hand edit and a binary file, carried over by the split.
            let handler = root.join("monolith/src/blog/handlers/post.rs");
            let mut text = fs::read_to_string(&handler).unwrap();
            text.push_str("\n// a hand edit\n");
            fs::write(&handler, text).unwrap();
            fs::write(
                root.join("monolith/src/blog/logo.png"),
                [0u8, 0xff, 0xfe, 7],
            )
            .unwrap();
            root
        },
        &["split", "blog"],
    );
}

#[test]
fn a_killed_split_from_leaves_the_project_old_or_new() {
    a_killed_run_leaves_old_or_new(
        &|dir| {
            let root = dir.join("project");
            copy_dir(&fixture_monolith("nested"), &root.join("legacy"));
            root
        },
        &["split", "blog", "--from", "legacy"],
    );
}

#[test]
fn a_killed_add_service_leaves_the_project_old_or_new() {
    a_killed_run_leaves_old_or_new(
        &|dir| {
            fs::create_dir_all(dir).unwrap();
            new_project(dir)
        },
        &["add-service", "billing"],
    );
}

/// A generated file put back to an earlier render (a `git checkout` of the file,
/// a backup restored) is not a hand edit: `--check` calls it drift and `generate`
/// brings it up to date.
#[test]
fn a_generated_file_left_at_an_earlier_render_is_drift() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    let compose = root.join("compose.yaml");
    let before = fs::read(&compose).unwrap();
    common::edit_config(&root, "port = 4001", "port = 4011");
    assert_ok(&msgen(&root, &["generate"]));
    let after = fs::read(&compose).unwrap();
    assert_ne!(before, after);
    fs::write(&compose, &before).unwrap();
    let out = msgen(&root, &["generate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("compose.yaml"), "{}", stderr(&out));
    assert_ok(&msgen(&root, &["generate"]));
    assert_eq!(fs::read(&compose).unwrap(), after);
    // A real edit is still the user's.
    let mut mine = after.clone();
    mine.extend_from_slice(b"# mine\n");
    fs::write(&compose, &mine).unwrap();
    assert_ok(&msgen(&root, &["generate", "--check"]));
    assert_ok(&msgen(&root, &["generate"]));
    assert_eq!(fs::read(&compose).unwrap(), mine);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Arbitrary bytes survive `split`: a file of the user's in the module moves
    /// byte for byte, and bytes the user put at the top of a generated file of the
    /// module are there, unchanged, in the service.
    #[test]
    fn split_keeps_every_user_byte(
        own in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        prefix in proptest::collection::vec(proptest::num::u8::ANY, 0..120),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = new_monolith(dir.path());
        fs::write(root.join("monolith/src/blog/notes.bin"), &own).unwrap();
        let handler = root.join("monolith/src/blog/handlers/post.rs");
        let mut kept: Vec<u8> = prefix.iter().map(|b| if *b == b'\n' { b' ' } else { *b }).collect();
        kept.push(b'\n');
        let mut bytes = kept.clone();
        bytes.extend(fs::read(&handler).unwrap());
        fs::write(&handler, &bytes).unwrap();

        let out = msgen(&root, &["split", "blog"]);
        proptest::prop_assert!(out.status.success(), "{}", stderr(&out));
        proptest::prop_assert_eq!(fs::read(root.join("services/blog/src/notes.bin")).unwrap(), own);
        let moved = fs::read(root.join("services/blog/src/handlers/post.rs")).unwrap();
        proptest::prop_assert!(moved.starts_with(&kept), "the user's bytes changed");
        proptest::prop_assert!(!root.join("monolith/src/blog").exists());
    }
}

/// A move is one group: killed after its commit, and the destination taken by
/// someone before the next run finishes it, the source stays where it was.
#[test]
fn a_move_whose_destination_is_taken_meanwhile_keeps_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_monolith(dir.path());
    let handler = root.join("monolith/src/blog/handlers/post.rs");
    let mut edited = fs::read_to_string(&handler).unwrap();
    edited.push_str("\n// a hand edit\n");
    fs::write(&handler, &edited).unwrap();
    let status = Command::new(common::msgen_bin())
        .arg("-C")
        .arg(&root)
        .args(["split", "blog", "--quiet"])
        .env("MSGEN_KILL_AFTER_STEP", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    assert!(root.join(".msgen/journal").exists());
    let dest = root.join("services/blog/src/handlers/post.rs");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, "someone else's\n").unwrap();
    let out = msgen(&root, &["generate"]);
    assert!(
        stderr(&out).contains("services/blog/src/handlers/post.rs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&dest).unwrap(), "someone else's\n");
    assert_eq!(fs::read_to_string(&handler).unwrap(), edited);
}

/// `services.toml` as a link, msgen run from inside the project (a relative root).
#[cfg(unix)]
#[test]
fn a_linked_services_toml_is_edited_from_inside_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = new_project(dir.path());
    fs::create_dir(root.join("config")).unwrap();
    fs::rename(
        root.join("services.toml"),
        root.join("config/services.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("config/services.toml", root.join("services.toml")).unwrap();
    let out = Command::new(common::msgen_bin())
        .args(["add-service", "billing"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert_ok(&out);
    let linked = fs::read_to_string(root.join("config/services.toml")).unwrap();
    assert!(linked.contains("name = \"billing\""), "{linked}");
    assert!(fs::symlink_metadata(root.join("services.toml"))
        .unwrap()
        .file_type()
        .is_symlink());
}
