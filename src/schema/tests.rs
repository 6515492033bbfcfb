//! The schema work without a database: every migration msgen writes reads back as
//! the schema it recorded, refusals name what they refuse, hand-written SQL is
//! read. `tests/schema.rs` applies the same migrations to real databases.

use std::path::Path;

use super::owner::{plan, Disk, OwnerPlan};
use super::read::replay;
use super::{wanted, Dialect, Options, Problem, Schema, Wanted};
use crate::model::Project;

fn project(fields: &str, extra: &str) -> Project {
    let text = format!(
        "[project]\nname = \"shop\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"customer\"\n  fields = {{ name = \"string\" }}\n\n  [[services.resources]]\n  name = \"order\"\n  fields = {fields}\n{extra}"
    );
    Project::parse(&text, Path::new("services.toml"))
        .unwrap_or_else(|e| panic!("{text}\n{:?}", e.diagnostics()))
}

/// `plan` of one owner's render of `p`, nothing confirmed.
fn plan_for(p: &Project, dialect: Dialect, disk: &Disk) -> Result<OwnerPlan, Vec<Problem>> {
    plan(&wanted_of(p), dialect, disk, Options::default(), false)
}

fn wanted_of(p: &Project) -> Vec<Wanted> {
    let owners: Vec<_> = p.services.iter().collect();
    wanted(p, &owners)
}

/// Renders `steps` in turn on one owner, as `generate` would after each edit;
/// checks after each that replaying the new migrations on the schema before gives
/// the schema recorded after. Returns the owner's last plan and all files.
fn evolve_through(dialect: Dialect, steps: &[(&str, bool)]) -> (OwnerPlan, Vec<(String, String)>) {
    let mut disk = Disk::default();
    let mut all = Vec::new();
    let mut last = OwnerPlan::default();
    for (fields, allow) in steps {
        let p = project(fields, "");
        let w = wanted_of(&p);
        let before = disk
            .record
            .as_ref()
            .map(|r| r.schema.clone())
            .unwrap_or_default();
        let op = plan(
            &w,
            dialect,
            &disk,
            Options {
                allow_data_loss: *allow,
            },
            false,
        )
        .unwrap_or_else(|e| panic!("{fields}: {e:?}"));
        let mut replayed = before;
        for (_, sql) in &op.new_files {
            let r = replay(&mut replayed, sql, dialect, &w, true);
            assert!(r.unread.is_empty(), "{sql}\nunread: {:?}", r.unread);
        }
        assert_eq!(
            strip_hand(&replayed, dialect),
            strip_hand(&op.record.schema, dialect),
            "{dialect:?} {fields}: the migrations do not make what was recorded:\n{:#?}",
            op.new_files
        );
        // The recorded schema is the model's.
        let model: Vec<_> = w.iter().map(|w| w.table.clone()).collect();
        assert_eq!(op.record.schema.tables, model, "{fields}");
        for (f, sql) in &op.new_files {
            disk.files.insert(f.clone(), sql.clone());
            all.push((f.clone(), sql.clone()));
        }
        disk.record = Some(op.record.clone());
        last = op;
    }
    (last, all)
}

/// Replay cannot know what the user declared, and `ADD COLUMN` appends: compare
/// shapes only, columns by name.
fn strip_hand(s: &Schema, dialect: Dialect) -> Schema {
    let mut s = s.clone();
    // A SQLite rebuild makes its table anew: the last in SQLite's list.
    s.tables.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &mut s.tables {
        t.by_hand = false;
        t.columns.sort_by(|a, b| a.name.cmp(&b.name));
        for c in &mut t.columns {
            c.by_hand = false;
            if c.ty != super::ColType::Id {
                c.ty = super::ColType::Sql(c.ty.sql(dialect));
            }
        }
    }
    s
}

const SEQUENCE: &[(&str, bool)] = &[
    (r#"{ title = "string", qty = "i32" }"#, false),
    // An optional field.
    (
        r#"{ title = "string", qty = "i32", note = "text?" }"#,
        false,
    ),
    // A required field with a default.
    (
        r#"{ title = "string", qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
    ),
    // A rename keeps the column.
    (
        r#"{ label = { type = "string", renamed_from = "title" }, qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
    ),
    // Widening.
    (
        r#"{ label = { type = "string", renamed_from = "title" }, qty = "i64", note = "text?", status = { type = "string", default = "new" } }"#,
        false,
    ),
    // Optional to required (with a default for the rows without), and a reference.
    (
        r#"{ label = "string", qty = "i64", note = { type = "text", default = "" }, status = { type = "string", default = "new" }, customer_id = "ref:customer?" }"#,
        false,
    ),
    // A dropped field, confirmed.
    (
        r#"{ label = "string", qty = "i64", status = { type = "string", default = "new" }, customer_id = "ref:customer?" }"#,
        true,
    ),
    // The reference dropped, a lossy retype confirmed.
    (
        r#"{ label = "string", qty = "i32", status = { type = "string", default = "new" }, customer_id = "i64?" }"#,
        true,
    ),
];

#[test]
fn every_migration_reads_back_as_what_was_recorded() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let (last, all) = evolve_through(dialect, SEQUENCE);
        // Numbered per service from 0001, never reused.
        let names: Vec<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names[0], "0001_create_customers.sql");
        assert_eq!(names[1], "0002_create_orders.sql");
        assert!(
            names[2..].iter().all(|n| n.ends_with("_alter_orders.sql")),
            "{names:?}"
        );
        assert_eq!(last.record.last_version as usize, all.len());
        // Every step but SQLite's i32 → i64 (the same INTEGER) needs SQL.
        let expected = if dialect == Dialect::Sqlite { 8 } else { 9 };
        assert_eq!(all.len(), expected, "{names:?}");
    }
}

#[test]
fn a_second_render_writes_nothing() {
    let (last, files) = evolve_through(Dialect::Postgres, &SEQUENCE[..3]);
    let disk = disk_of(&last, &files);
    let p = project(SEQUENCE[2].0, "");
    let again = plan_for(&p, Dialect::Postgres, &disk).unwrap();
    assert!(again.new_files.is_empty());
    assert_eq!(again.record, last.record);
}

fn problems(dialect: Dialect, from: &str, to: &str) -> Vec<Problem> {
    let (last, _) = evolve_through(dialect, &[(from, false)]);
    let disk = Disk {
        record: Some(last.record),
        ..Default::default()
    };
    let p = project(to, "");
    match plan_for(&p, dialect, &disk) {
        Ok(op) => panic!("{from} → {to} was accepted: {:?}", op.new_files),
        Err(p) => p,
    }
}

#[test]
fn what_would_lose_data_is_refused_and_named() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let p = problems(
            dialect,
            r#"{ title = "string", qty = "i32" }"#,
            r#"{ title = "string" }"#,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "services.shop.resources.order.fields.qty");
        assert!(
            p[0].message
                .contains("dropping column \"qty\" of table `orders`"),
            "{}",
            p[0]
        );
        assert!(p[0].help.contains("--allow-data-loss"), "{}", p[0]);
        assert!(p[0].help.contains("renamed_from"), "{}", p[0]);

        let p = problems(dialect, r#"{ title = "string" }"#, r#"{ title = "i32" }"#);
        assert!(p[0].message.contains("from string to i32"), "{}", p[0]);
        let p = problems(dialect, r#"{ qty = "i64" }"#, r#"{ qty = "i32" }"#);
        assert!(p[0].message.contains("from i64 to i32"), "{}", p[0]);

        let p = problems(
            dialect,
            r#"{ title = "string" }"#,
            r#"{ title = "string", qty = "i32" }"#,
        );
        assert_eq!(p[0].key, "services.shop.resources.order.fields.qty");
        assert!(p[0].help.contains("default = 0"), "{}", p[0]);

        let p = problems(dialect, r#"{ note = "string?" }"#, r#"{ note = "string" }"#);
        assert!(p[0].message.contains("becomes required"), "{}", p[0]);
    }
}

#[test]
fn a_dropped_resource_is_refused_until_confirmed() {
    let (last, _) = evolve_through(Dialect::Postgres, &[(r#"{ title = "string" }"#, false)]);
    let text = "[project]\nname = \"shop\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"customer\"\n  fields = { name = \"string\" }\n";
    let p = Project::parse(text, Path::new("services.toml")).unwrap();
    let disk = Disk {
        record: Some(last.record),
        ..Default::default()
    };
    let err = plan_for(&p, Dialect::Postgres, &disk).unwrap_err();
    assert_eq!(err[0].key, "table `orders`");
    let ok = plan(
        &wanted_of(&p),
        Dialect::Postgres,
        &disk,
        Options {
            allow_data_loss: true,
        },
        false,
    )
    .unwrap();
    assert_eq!(ok.new_files[0].0, "0003_drop_orders.sql");
    assert!(ok.record.schema.table("orders").is_none());
}

#[test]
fn hand_written_migrations_are_read_and_their_columns_kept() {
    let (last, files) = evolve_through(Dialect::Postgres, &[(r#"{ title = "string" }"#, false)]);
    let mut disk = disk_of(&last, &files);
    disk.files.insert(
        "0003_by_hand.sql".into(),
        "-- mine\nALTER TABLE orders ADD COLUMN summary varchar(200);\nALTER TABLE orders ADD COLUMN search tsvector;\nCREATE INDEX orders_search ON orders USING gin (search);\nCREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL);\n".into(),
    );
    // services.toml now declares the column the user added: no migration for it.
    let p = project(r#"{ title = "string", summary = "string?" }"#, "");
    let op = plan_for(&p, Dialect::Postgres, &disk).unwrap();
    assert!(op.new_files.is_empty(), "{:?}", op.new_files);
    assert!(op.unread.is_empty(), "{:?}", op.unread);
    let orders = op.record.schema.table("orders").unwrap();
    let search = orders.column("search").unwrap();
    assert!(search.by_hand);
    assert!(!orders.column("summary").unwrap().by_hand);
    assert!(op.record.schema.table("audit").unwrap().by_hand);
    assert_eq!(
        op.record.migrations["0003_by_hand.sql"].tables,
        ["orders", "audit"]
    );
    // The next migration is numbered after the user's.
    let p = project(
        r#"{ title = "string", summary = "string?", qty = "i32?" }"#,
        "",
    );
    disk.record = Some(op.record);
    let op = plan_for(&p, Dialect::Postgres, &disk).unwrap();
    assert_eq!(op.new_files[0].0, "0004_alter_orders.sql");
    // The user's column and table survive a later change (SQLite rebuilds keep it too).
    assert!(op
        .record
        .schema
        .table("orders")
        .unwrap()
        .column("search")
        .is_some());
    assert!(op.record.schema.table("audit").is_some());
}

#[test]
fn a_project_without_a_record_is_read_from_its_migrations() {
    // As msgen wrote them before it kept a record: one create file per table,
    // numbered across the project; then the model gained a field.
    let mut disk = Disk::default();
    disk.files.insert(
        "0003_create_customers.sql".into(),
        "CREATE TABLE IF NOT EXISTS \"customers\" (\n    \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n    \"name\" TEXT NOT NULL,\n    \"created_at\" TEXT NOT NULL,\n    \"updated_at\" TEXT NOT NULL\n);\n".into(),
    );
    disk.files.insert(
        "0004_create_orders.sql".into(),
        "CREATE TABLE IF NOT EXISTS \"orders\" (\n    \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n    \"qty\" INTEGER NOT NULL,\n    \"created_at\" TEXT NOT NULL,\n    \"updated_at\" TEXT NOT NULL\n);\n".into(),
    );
    let p = project(r#"{ qty = "i32", note = "string?" }"#, "");
    let op = plan_for(&p, Dialect::Sqlite, &disk).unwrap();
    assert_eq!(op.new_files.len(), 1);
    assert_eq!(op.new_files[0].0, "0005_alter_orders.sql");
    assert_eq!(
        op.new_files[0].1.lines().last(),
        Some("ALTER TABLE \"orders\" ADD COLUMN \"note\" TEXT;")
    );
}

#[test]
fn a_migration_written_but_not_recorded_is_not_written_twice() {
    let (first, files) = evolve_through(Dialect::Sqlite, &SEQUENCE[..1]);
    let mut disk = disk_of(&first, &files);
    let p = project(SEQUENCE[1].0, "");
    let w = wanted_of(&p);
    let op = plan(&w, Dialect::Sqlite, &disk, Options::default(), false).unwrap();
    assert_eq!(op.new_files.len(), 1);
    // Killed after the migration, before the record: the rerun reads it back.
    let (f, sql) = op.new_files[0].clone();
    disk.files.insert(f, sql);
    let again = plan(&w, Dialect::Sqlite, &disk, Options::default(), false).unwrap();
    assert!(again.new_files.is_empty(), "{:?}", again.new_files);
    assert_eq!(
        strip_hand(&again.record.schema, Dialect::Sqlite),
        strip_hand(&op.record.schema, Dialect::Sqlite)
    );
}

#[test]
fn accept_schema_records_without_writing() {
    let (last, _) = evolve_through(Dialect::Postgres, &SEQUENCE[..1]);
    let disk = Disk {
        record: Some(last.record),
        ..Default::default()
    };
    let p = project(r#"{ title = "i32" }"#, "");
    let op = plan(
        &wanted_of(&p),
        Dialect::Postgres,
        &disk,
        Options::default(),
        true,
    )
    .unwrap();
    assert!(op.new_files.is_empty());
    let orders = op.record.schema.table("orders").unwrap();
    assert!(orders.column("qty").is_none());
    assert_eq!(orders.column("title").unwrap().ty, super::ColType::I32);
}

/// The first step of [`SEQUENCE`] rendered on `dialect`, then a migration of the
/// user's, `0003_mine.sql`, read and recorded: the disk after that, and that plan.
fn with_users_migration(dialect: Dialect, sql: &str) -> (Disk, OwnerPlan) {
    let (first, files) = evolve_through(dialect, &SEQUENCE[..1]);
    let mut disk = disk_of(&first, &files);
    disk.files.insert("0003_mine.sql".into(), sql.into());
    let op =
        plan_for(&project(SEQUENCE[0].0, ""), dialect, &disk).unwrap_or_else(|e| panic!("{e:?}"));
    disk.record = Some(op.record.clone());
    (disk, op)
}

/// A disk holding `files` and `op`'s record, its sums made to agree with them.
fn disk_of(op: &OwnerPlan, files: &[(String, String)]) -> Disk {
    let mut record = op.record.clone();
    for (f, r) in record.migrations.iter_mut() {
        let contents = files
            .iter()
            .find(|(n, _)| n == f)
            .map_or("", |(_, c)| c.as_str());
        r.fnv1a = super::record::checksum(contents);
    }
    Disk {
        record: Some(record),
        files: files.iter().cloned().collect(),
        // `evolve_through` writes msgen's files only.
        ours: files.iter().map(|(f, _)| f.clone()).collect(),
    }
}

#[test]
fn conversions_no_cast_can_make_are_refused_even_when_confirmed() {
    let (last, files) = evolve_through(
        Dialect::Postgres,
        &[(r#"{ flag = "bool", at = "datetime" }"#, false)],
    );
    let disk = disk_of(&last, &files);
    for to in [
        r#"{ flag = "f64", at = "datetime" }"#,
        r#"{ flag = "bool", at = "i64" }"#,
    ] {
        let p = project(to, "");
        let all = Options {
            allow_data_loss: true,
        };
        let err = plan(&wanted_of(&p), Dialect::Postgres, &disk, all, false).unwrap_err();
        assert!(err[0].message.contains("cannot be converted"), "{}", err[0]);
    }
    // i32 → bool has a cast: allowed once confirmed.
    let (last, files) = evolve_through(Dialect::Postgres, &[(r#"{ flag = "i32" }"#, false)]);
    let p = project(r#"{ flag = "bool" }"#, "");
    let all = Options {
        allow_data_loss: true,
    };
    assert!(plan(
        &wanted_of(&p),
        Dialect::Postgres,
        &disk_of(&last, &files),
        all,
        false
    )
    .is_ok());
}

#[test]
fn a_table_is_created_before_the_tables_that_refer_to_it() {
    let text = "[project]\nname = \"shop\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"order\"\n  fields = { customer_id = \"ref:customer\" }\n\n  [[services.resources]]\n  name = \"customer\"\n  fields = { name = \"string\" }\n";
    let p = Project::parse(text, Path::new("services.toml")).unwrap();
    let op = plan(
        &wanted_of(&p),
        Dialect::Postgres,
        &Disk::default(),
        Options::default(),
        false,
    )
    .unwrap();
    let names: Vec<&str> = op.new_files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        ["0001_create_customers.sql", "0002_create_orders.sql"]
    );
}

#[test]
fn an_edited_migration_makes_msgen_read_them_all_again() {
    // The user's migration, recorded while empty, then written.
    let (mut disk, _) = with_users_migration(Dialect::Sqlite, "");
    disk.files.insert(
        "0003_mine.sql".into(),
        "ALTER TABLE orders ADD COLUMN note TEXT;".into(),
    );
    let p = project(SEQUENCE[1].0, "");
    let op = plan_for(&p, Dialect::Sqlite, &disk).unwrap();
    assert_eq!(op.changed, ["0003_mine.sql"]);
    assert!(op.new_files.is_empty(), "{:?}", op.new_files);
    assert!(op
        .record
        .schema
        .table("orders")
        .unwrap()
        .column("note")
        .is_some());
}

#[test]
fn a_rename_keeps_an_index_s_text_but_the_name() {
    let renamed = [("qty".to_string(), "amount".to_string())].into();
    assert_eq!(
        super::read::rename_words(
            "CREATE INDEX big ON orders (qty) WHERE qty >= 10.5 AND note <> 'qty'",
            &renamed
        ),
        "CREATE INDEX big ON orders (\"amount\") WHERE \"amount\" >= 10.5 AND note <> 'qty'"
    );
}

#[test]
fn versions_past_what_sqlx_reads_are_refused_not_overflowed() {
    assert_eq!(super::owner::version_of("18446744073709551615_x.sql"), None);
    assert_eq!(super::owner::next_version(i64::MAX as u64), None);
    assert_eq!(super::owner::next_version(41), Some(42));
    let mut disk = Disk::default();
    disk.files
        .insert(format!("{}_x.sql", i64::MAX), String::new());
    let p = project(SEQUENCE[0].0, "");
    let err = plan_for(&p, Dialect::Postgres, &disk).unwrap_err();
    assert!(
        err[0].message.contains("no migration version is left"),
        "{}",
        err[0]
    );
}

#[test]
fn without_its_record_msgen_reads_its_own_migrations_back_to_the_same_schema() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let (last, files) = evolve_through(dialect, SEQUENCE);
        let disk = Disk {
            record: None,
            files: files.iter().cloned().collect(),
            ours: files.iter().map(|(f, _)| f.clone()).collect(),
        };
        let p = project(SEQUENCE[SEQUENCE.len() - 1].0, "");
        let op = plan_for(&p, dialect, &disk).unwrap_or_else(|e| panic!("{dialect:?}: {e:?}"));
        assert!(op.new_files.is_empty(), "{dialect:?}: {:?}", op.new_files);
        assert_eq!(op.record.schema, last.record.schema, "{dialect:?}");
    }
}

#[test]
fn reading_msgen_s_rebuild_again_keeps_the_user_s_columns_the_user_s() {
    let (mut disk, _) = with_users_migration(
        Dialect::Sqlite,
        "ALTER TABLE orders ADD COLUMN code TEXT COLLATE NOCASE;",
    );
    // A change only a rebuild makes.
    let p = project(r#"{ title = "string", qty = "i32?" }"#, "");
    let op = plan_for(&p, Dialect::Sqlite, &disk).unwrap();
    assert!(
        op.new_files[0].1.contains("\"code\" TEXT COLLATE NOCASE"),
        "{}",
        op.new_files[0].1
    );
    for (f, sql) in &op.new_files {
        disk.files.insert(f.clone(), sql.clone());
    }
    // Without the record, everything is read again: the column is still the user's.
    disk.record = None;
    let again = plan_for(&p, Dialect::Sqlite, &disk).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(again.new_files.is_empty(), "{:?}", again.new_files);
    let code = again
        .record
        .schema
        .table("orders")
        .unwrap()
        .column("code")
        .unwrap()
        .clone();
    assert!(code.by_hand, "{code:?}");
}

#[test]
fn a_user_s_file_named_like_msgen_s_stays_the_user_s() {
    let (last, files) = evolve_through(Dialect::Postgres, &SEQUENCE[..1]);
    let mut disk = disk_of(&last, &files);
    // What `sqlx migrate add create_tags` gives, filled in as msgen would.
    disk.files.insert(
        "20240101120000_create_tags.sql".into(),
        "CREATE TABLE IF NOT EXISTS tags (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);".into(),
    );
    let p = project(SEQUENCE[0].0, "");
    let op = plan_for(&p, Dialect::Postgres, &disk).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(op.new_files.is_empty(), "{:?}", op.new_files);
    assert!(op.record.schema.table("tags").unwrap().by_hand);
}

#[test]
fn a_table_changed_in_ways_msgen_cannot_read_waits_for_the_user_s_word() {
    let (mut disk, op) = with_users_migration(
        Dialect::Sqlite,
        "-- my tag\nALTER TABLE orders ADD COLUMN tag TEXT NOT NULL ON CONFLICT REPLACE DEFAULT 'none';\nALTER TABLE orders ADD COLUMN up TEXT GENERATED ALWAYS AS (upper(title)) VIRTUAL;",
    );
    assert_eq!(op.unread.len(), 2, "{:?}", op.unread);
    assert!(
        op.unread[0].ends_with(
            "ALTER TABLE orders ADD COLUMN tag TEXT NOT NULL ON CONFLICT REPLACE DEFAULT 'none'"
        ),
        "{:?}",
        op.unread
    );
    // A change to that table (a SQLite rebuild would lose the column) is refused.
    let p = project(r#"{ title = "string", qty = "i32?" }"#, "");
    let err = plan_for(&p, Dialect::Sqlite, &disk).unwrap_err();
    assert!(err[0].message.contains("cannot read"), "{}", err[0]);
    assert!(err[0].help.contains("--accept-schema shop"), "{}", err[0]);
    // The user's word clears it; the next change is made.
    let op = plan(
        &wanted_of(&p),
        Dialect::Sqlite,
        &disk,
        Options::default(),
        true,
    )
    .unwrap();
    assert!(op.record.schema.table("orders").unwrap().unread.is_empty());
    disk.record = Some(op.record);
    let p = project(r#"{ title = "string", qty = "i32?", note = "text?" }"#, "");
    assert_eq!(
        plan_for(&p, Dialect::Sqlite, &disk)
            .unwrap()
            .new_files
            .len(),
        1
    );
}

#[test]
fn the_user_s_columns_and_constraints_are_kept_as_written() {
    let (disk, _) = with_users_migration(
        Dialect::Sqlite,
        "ALTER TABLE orders ADD COLUMN \"Order\" INTEGER DEFAULT 0 CHECK (\"Order\" >= 0);\nALTER TABLE orders ADD CONSTRAINT two UNIQUE (title, \"Order\");",
    );
    let p = project(r#"{ title = "string", qty = "i32?" }"#, "");
    let op = plan_for(&p, Dialect::Sqlite, &disk).unwrap();
    let sql = &op.new_files[0].1;
    assert!(
        sql.contains("    \"Order\" INTEGER DEFAULT 0 CHECK (\"Order\" >= 0),\n"),
        "{sql}"
    );
    assert!(
        sql.contains("    CONSTRAINT two UNIQUE (title, \"Order\")\n"),
        "{sql}"
    );
}

#[test]
fn dropped_tables_go_before_the_tables_they_refer_to() {
    let two = r#"{ title = "string", customer_id = "ref:customer" }"#;
    let (last, files) = evolve_through(Dialect::Postgres, &[(two, false)]);
    let disk = disk_of(&last, &files);
    let text = "[project]\nname = \"shop\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"note\"\n  fields = { body = \"text\" }\n";
    let p = Project::parse(text, Path::new("services.toml")).unwrap();
    let all = Options {
        allow_data_loss: true,
    };
    let op = plan(&wanted_of(&p), Dialect::Postgres, &disk, all, false).unwrap();
    let names: Vec<&str> = op.new_files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "0003_create_notes.sql",
            "0004_drop_orders.sql",
            "0005_drop_customers.sql"
        ]
    );
}

#[test]
fn tables_of_other_schemas_are_not_the_service_s() {
    let (last, files) = evolve_through(Dialect::Postgres, &SEQUENCE[..1]);
    let mut disk = disk_of(&last, &files);
    disk.files.insert(
        "0003_archive.sql".into(),
        "CREATE SCHEMA archive;\nCREATE TABLE archive.orders (LIKE public.orders);\nDROP TABLE archive.orders;\nALTER TABLE public.orders ADD COLUMN note TEXT;".into(),
    );
    let p = project(SEQUENCE[1].0, "");
    let op = plan_for(&p, Dialect::Postgres, &disk).unwrap();
    assert!(op.new_files.is_empty(), "{:?}", op.new_files);
    assert!(op
        .record
        .schema
        .table("orders")
        .unwrap()
        .column("note")
        .is_some());
}

#[test]
fn tables_that_refer_to_each_other_get_the_closing_key_afterwards() {
    let text = "[project]\nname = \"shop\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"tag\"\n  fields = { best_id = \"ref:note?\" }\n\n  [[services.resources]]\n  name = \"note\"\n  fields = { tag_id = \"ref:tag?\" }\n";
    let p = Project::parse(text, Path::new("services.toml")).unwrap();
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let w = wanted_of(&p);
        let op = plan(&w, dialect, &Disk::default(), Options::default(), false).unwrap();
        let names: Vec<&str> = op.new_files.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "0001_create_tags.sql",
                "0002_create_notes.sql",
                "0003_alter_tags.sql"
            ]
        );
        let mut replayed = Schema::default();
        for (_, sql) in &op.new_files {
            replay(&mut replayed, sql, dialect, &w, true);
        }
        assert_eq!(
            strip_hand(&replayed, dialect),
            strip_hand(&op.record.schema, dialect)
        );
    }
}

/// A SQLite retype to `i32` guards its migration with a temporary table; read
/// again (the record lost), the migration is about `orders` alone and the guard
/// leaves nothing in the schema.
#[test]
fn a_sqlite_guard_is_no_table_of_its_migration() {
    let (last, files) = evolve_through(
        Dialect::Sqlite,
        &[
            (r#"{ title = "string", qty = "i64" }"#, false),
            (r#"{ title = "string", qty = "i32" }"#, true),
        ],
    );
    let (name, sql) = files.last().unwrap();
    assert!(
        sql.contains("CREATE TEMP TABLE \"_msgen_guard_orders\""),
        "{sql}"
    );
    let mut disk = disk_of(&last, &files);
    disk.record = None;
    let p = project(r#"{ title = "string", qty = "i32" }"#, "");
    let op = plan_for(&p, Dialect::Sqlite, &disk).unwrap();
    assert!(op.new_files.is_empty(), "{:?}", op.new_files);
    assert_eq!(op.record.migrations[name.as_str()].tables, ["orders"]);
    assert!(op.record.schema.table("_msgen_guard_orders").is_none());
}
