//! `msgen new --monolith` and `msgen split`: a module of the modular monolith moves
//! into a service of its own, with the user's edits, its tables and its routes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_ok, msgen, stderr, stdout, tree};

fn monolith(dir: &Path) -> PathBuf {
    assert_ok(&msgen(dir, &["new", "shop", "--monolith", "--yes"]));
    dir.join("shop")
}

#[test]
fn new_monolith_renders_one_crate_with_a_module_per_context() {
    let dir = tempfile::tempdir().unwrap();
    let root = monolith(dir.path());
    for f in [
        "monolith/src/auth/handlers/auth.rs",
        "monolith/src/user/handlers/user.rs",
        "monolith/src/blog/handlers/post.rs",
        "monolith/src/clients/user.rs",
        "monolith/migrations/0001_create_auth_users.sql",
        "monolith/migrations/0002_create_users.sql",
        "monolith/migrations/0003_create_posts.sql",
        "monolith/Dockerfile",
        "deploy/k8s/services/monolith.yaml",
    ] {
        assert!(root.join(f).is_file(), "{f} missing");
    }
    assert!(!root.join("services").exists());
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(
        toml.contains("[monolith]\nport = 3000") && toml.contains("monolith = true"),
        "{toml}"
    );
    let routes = fs::read_to_string(root.join("gateway/src/routes.rs")).unwrap();
    assert!(routes.contains("prefix: \"/api/posts\"") && routes.contains("upstream: \"monolith\""));
    // In process between modules: no HTTP client in the monolith.
    let client = fs::read_to_string(root.join("monolith/src/clients/user.rs")).unwrap();
    assert!(client.contains("crate::user::repo::user::get"), "{client}");
    let compose = fs::read_to_string(root.join("compose.yaml")).unwrap();
    assert!(compose.contains("  monolith:") && compose.contains("monolith-db:"));
    assert!(!compose.contains("blog-db"));
}

#[test]
fn split_moves_code_edits_migrations_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let root = monolith(dir.path());
    let handler = root.join("monolith/src/blog/handlers/post.rs");
    let edited = fs::read_to_string(&handler).unwrap().replace(
        "    input.validate()?;\n",
        "    input.validate()?;\n    tracing::info!(\"creating a post\");\n",
    );
    fs::write(&handler, &edited).unwrap();
    fs::write(
        root.join("monolith/src/blog/handlers/extra.rs"),
        "//! Mine.\npub fn helper() {}\n",
    )
    .unwrap();

    let before = tree(&root);
    let out = msgen(&root, &["split", "blog", "--dry-run"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("+++ b/services/blog/src/lib.rs"),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, tree(&root), "--dry-run wrote something");

    let out = msgen(&root, &["split", "blog"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(stdout(&out).contains("# Split of `blog` out of the monolith"));
    for s in [
        "monolith/src/blog/handlers/post.rs → services/blog/src/handlers/post.rs",
        "`posts`",
        "monolith/migrations/0003_create_posts.sql → services/blog/migrations/0003_create_posts.sql",
        "`blog` → module `user`: was in process, now HTTP to the monolith",
        "pg_dump --data-only -t posts",
    ] {
        assert!(report.contains(s), "{s:?} not in the report:\n{report}");
    }

    // The edit and the hand-written file moved; the module left the monolith.
    let moved = fs::read_to_string(root.join("services/blog/src/handlers/post.rs")).unwrap();
    assert!(
        moved.contains("tracing::info!(\"creating a post\");"),
        "{moved}"
    );
    assert!(
        moved.contains("use crate::models::post as model;") && !moved.contains("crate::blog::"),
        "{moved}"
    );
    assert!(root.join("services/blog/src/handlers/extra.rs").is_file());
    assert!(!root.join("monolith/src/blog").exists());
    assert!(root
        .join("services/blog/migrations/0003_create_posts.sql")
        .is_file());
    assert!(!root
        .join("monolith/migrations/0003_create_posts.sql")
        .exists());

    // services.toml: comments kept, the module is a service now.
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    assert!(toml.contains("# Creating a post checks its author"));
    assert!(toml.contains("split_from = \"monolith\""), "{toml}");
    // The gateway: old and versioned paths to the service, the rest to the monolith.
    let routes = fs::read_to_string(root.join("gateway/src/routes.rs")).unwrap();
    for s in [
        "prefix: \"/api/posts\",\n        exact: false,\n        pattern: false,\n        rewrite: Some(\"/api/v1/posts\"),\n        upstream: \"blog\"",
        "prefix: \"/api/v1/posts\",\n        exact: false,\n        pattern: false,\n        rewrite: None,\n        upstream: \"blog\"",
        "prefix: \"/api/users\",\n        exact: false,\n        pattern: false,\n        rewrite: None,\n        upstream: \"monolith\"",
        "prefix: \"/api\",\n        exact: false,\n        pattern: false,\n        rewrite: None,\n        upstream: \"monolith\"",
    ] {
        assert!(routes.contains(s), "{s} not in routes.rs:\n{routes}");
    }
    let client = fs::read_to_string(root.join("services/blog/src/clients/user.rs")).unwrap();
    assert!(
        client.contains("ServiceClient"),
        "blog must call user over HTTP"
    );
    assert!(fs::read_to_string(root.join("services/blog/src/config.rs"))
        .unwrap()
        .contains("http://monolith:3000"));
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // A second split works too, and a third of a module that is not there lists them.
    let out = msgen(&root, &["split", "user"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-user.md")).unwrap();
    assert!(
        report.contains(
            "service `blog` → `user`: USER_SERVICE_URL now points at http://user-service:3002"
        ),
        "{report}"
    );
    assert!(fs::read_to_string(root.join("services/blog/src/config.rs"))
        .unwrap()
        .contains("http://user-service:3002"));
    let out = msgen(&root, &["split", "blog"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no module `blog` in the monolith (`blog` is already a service of its own); modules found: auth"), "{}", stderr(&out));
    assert_ok(&msgen(&root, &["generate", "--check"]));
}

#[test]
fn uses_across_the_cut_are_reported_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let root = monolith(dir.path());
    // The blog module reaches into the user module's repository directly...
    let handler = root.join("monolith/src/blog/handlers/post.rs");
    let text = fs::read_to_string(&handler).unwrap();
    fs::write(&handler, format!("{text}\n#[allow(dead_code)]\nasync fn count_users(db: &crate::db::Db) -> i64 {{\n    crate::user::repo::user::count(db).await.unwrap_or(0)\n}}\n")).unwrap();
    let line = text.lines().count() + 4;
    // ...and the auth module uses the blog module's model.
    let auth = root.join("monolith/src/auth/handlers/auth.rs");
    let text = fs::read_to_string(&auth).unwrap();
    fs::write(
        &auth,
        format!("{text}\n#[allow(unused_imports)]\nuse crate::blog::models::post::Post;\n"),
    )
    .unwrap();
    let auth_line = text.lines().count() + 3;
    // ...and the user module names it by a relative path, inside a macro.
    let user = root.join("monolith/src/user/handlers/user.rs");
    let text = fs::read_to_string(&user).unwrap();
    fs::write(
        &user,
        format!("{text}\n#[allow(dead_code)]\nfn posts_table() {{\n    tracing::info!(\"{{}}\", super::super::super::blog::models::post::Post::TABLE);\n}}\n"),
    )
    .unwrap();
    let user_line = text.lines().count() + 4;
    // Hand-written migrations that stay: one uses the moving table (read as SQL,
    // its line found), one only says its name in a comment and a string.
    fs::write(
        root.join("monolith/migrations/0004_notes.sql"),
        "-- Keep the posts tidy: notes hang off them.\nCREATE TABLE notes (\n    id BIGINT PRIMARY KEY,\n    post_id BIGINT REFERENCES \"posts\" (id) ON DELETE CASCADE\n);\n",
    )
    .unwrap();
    fs::write(
        root.join("monolith/migrations/0005_tags.sql"),
        "-- REFERENCES posts (id) is only a comment here\nCREATE TABLE tags (id BIGINT PRIMARY KEY, label TEXT DEFAULT ' posts ');\n",
    )
    .unwrap();

    // ...and one adds its foreign key in a `DO` block, as idempotent migrations do.
    fs::write(
        root.join("monolith/migrations/0006_guard.sql"),
        "DO $$\nBEGIN\n    ALTER TABLE tags ADD CONSTRAINT tags_post FOREIGN KEY (id) REFERENCES posts (id);\nEXCEPTION WHEN duplicate_object THEN NULL;\nEND $$;\n",
    )
    .unwrap();

    let out = msgen(&root, &["split", "blog"]);
    assert_ok(&out);
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(
        report.contains(
            "monolith/migrations/0006_guard.sql:3: a foreign key to table `posts` crosses the cut"
        ),
        "{report}"
    );
    assert!(report.contains(&format!("monolith/src/user/handlers/user.rs:{user_line}: `super::super::super::blog::models::post::Post::TABLE` uses the extracted module directly")), "{report}");
    assert!(
        report.contains("monolith/migrations/0004_notes.sql: mentions table `posts`"),
        "{report}"
    );
    assert!(
        report.contains(
            "monolith/migrations/0004_notes.sql:4: a foreign key to table `posts` crosses the cut"
        ),
        "{report}"
    );
    assert!(!report.contains("0005_tags.sql"), "{report}");
    assert!(report.contains(&format!("services/blog/src/handlers/post.rs:{line}: `crate::user::repo::user::count` reaches into the `user` module")), "{report}");
    assert!(report.contains(&format!("monolith/src/auth/handlers/auth.rs:{auth_line}: `crate::blog::models::post::Post` uses the extracted module directly")), "{report}");
}

#[test]
fn split_needs_a_monolith() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&msgen(dir.path(), &["new", "plain", "--yes"]));
    let out = msgen(&dir.path().join("plain"), &["split", "blog"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("declares no [monolith]"),
        "{}",
        stderr(&out)
    );
    let out = msgen(
        &dir.path().join("plain"),
        &["split", "blog", "--from", "elsewhere"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot open the monolith directory elsewhere"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn edited_glue_is_kept_and_migration_versions_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let root = monolith(dir.path());
    let glue = root.join("monolith/src/blog/routes.rs");
    fs::write(
        &glue,
        fs::read_to_string(&glue).unwrap() + "// my route notes\n",
    )
    .unwrap();
    assert_ok(&msgen(&root, &["split", "blog"]));
    assert!(
        fs::read_to_string(&glue)
            .unwrap()
            .contains("my route notes"),
        "edited glue deleted"
    );
    let report = fs::read_to_string(root.join("docs/split-blog.md")).unwrap();
    assert!(report.contains("monolith/src/blog/routes.rs: your edits of the module's glue were not moved and the file was kept"), "{report}");

    // A new table in the monolith must not take version 3, which the monolith's
    // database already recorded for the posts table that moved away.
    let toml = fs::read_to_string(root.join("services.toml")).unwrap();
    let more = toml.replace(
        "  roles = { delete = \"admin\" }  # and only an admin deletes a profile\n",
        "  roles = { delete = \"admin\" }  # and only an admin deletes a profile\n\n  [[services.resources]]\n  name = \"badge\"\n  fields = { label = \"string\" }\n",
    );
    assert_ne!(toml, more);
    fs::write(root.join("services.toml"), more).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    assert!(
        root.join("monolith/migrations/0004_create_badges.sql")
            .is_file(),
        "{:?}",
        fs::read_dir(root.join("monolith/migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_split_carries_the_tables_history_and_both_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = monolith(dir.path());
    // The blog's table evolved in the monolith before the split.
    common::edit_config(
        &root,
        "published = \"bool\" }",
        "published = \"bool\", summary = \"string?\" }",
    );
    assert_ok(&msgen(&root, &["generate"]));
    let alter = root.join("monolith/migrations/0004_alter_posts.sql");
    assert!(
        fs::read_to_string(&alter)
            .unwrap()
            .contains("ALTER TABLE \"posts\" ADD COLUMN \"summary\" TEXT;"),
        "{:?}",
        fs::read_dir(root.join("monolith/migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );

    let out = msgen(&root, &["split", "blog"]);
    assert_ok(&out);
    // Both of the table's migrations moved, with their versions.
    for f in ["0003_create_posts.sql", "0004_alter_posts.sql"] {
        assert!(
            root.join("services/blog/migrations").join(f).is_file(),
            "{f}"
        );
        assert!(!root.join("monolith/migrations").join(f).exists(), "{f}");
        assert!(stdout(&out).contains(&format!(
            "monolith/migrations/{f} → services/blog/migrations/{f}"
        )));
    }
    let blog = fs::read_to_string(root.join(".msgen/schema/blog.toml")).unwrap();
    assert!(
        blog.contains("{ name = \"summary\", type = \"string\", nullable = true }"),
        "{blog}"
    );
    assert!(
        blog.contains("\"0004_alter_posts.sql\" = { tables = [\"posts\"]"),
        "{blog}"
    );
    let mono = fs::read_to_string(root.join(".msgen/schema/monolith.toml")).unwrap();
    assert!(!mono.contains("\"posts\""), "{mono}");
    assert!(mono.contains("last_version = 4"), "{mono}");
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // The service's next change is numbered after what it carried.
    common::edit_config(
        &root,
        "summary = \"string?\" }",
        "summary = \"string?\", views = \"i64?\" }",
    );
    assert_ok(&msgen(&root, &["generate"]));
    assert!(root
        .join("services/blog/migrations/0005_alter_posts.sql")
        .is_file());
}
