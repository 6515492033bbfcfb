//! The database follows `services.toml`, checked on real databases: every
//! migration msgen writes, for every example and after each step of an evolution
//! sequence, is applied to a fresh PostgreSQL database (psql, each file in one
//! transaction, as sqlx does) and a SQLite file (each file in one transaction,
//! foreign keys off, as the generated `db.rs` does); the tables that result
//! (`information_schema`, `PRAGMA table_info`) must be the model's, and the rows
//! stored before must still be there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_ok, example, examples, msgen, psql, require_postgres, stderr, stdout, DropDb};
use msgen::model::Project;
use msgen::schema::{self, ColType, Dialect, Wanted};

/// A PostgreSQL database of the test's own, dropped at the end (passed or failed).
struct Pg {
    db: DropDb,
}

impl Pg {
    fn new(tag: &str) -> Self {
        require_postgres();
        let name = format!("msgen_schema_{tag}_{}", std::process::id());
        let out = psql(
            "postgres",
            &["-c", &format!("DROP DATABASE IF EXISTS \"{name}\"")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = psql("postgres", &["-c", &format!("CREATE DATABASE \"{name}\"")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { db: DropDb(name) }
    }

    fn apply(&self, file: &Path) {
        if let Err(err) = self.try_apply(file) {
            panic!(
                "{} failed on PostgreSQL:\n{err}\n{}",
                file.display(),
                std::fs::read_to_string(file).unwrap()
            );
        }
    }

    fn try_apply(&self, file: &Path) -> Result<(), String> {
        let out = psql(
            &self.db.0,
            &["-1", "-v", "ON_ERROR_STOP=1", "-f", file.to_str().unwrap()],
        );
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// Rows of `sql`, fields joined by `|`.
    fn rows(&self, sql: &str) -> Vec<String> {
        let out = psql(&self.db.0, &["-A", "-t", "-F", "|", "-c", sql]);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// SQLite through Python's sqlite3 (on every machine of this project).
const SQLITE: &str = r#"
import sqlite3, sys
db, mode = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, isolation_level=None)
if mode == "apply":
    c.execute("PRAGMA foreign_keys = OFF")
    for f in sys.argv[3:]:
        c.executescript("BEGIN;\n" + open(f).read() + "\nCOMMIT;")
    bad = c.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        sys.exit("foreign_key_check: %r" % bad)
else:
    c.execute("PRAGMA foreign_keys = ON")
    for row in c.execute(sys.argv[3]).fetchall():
        print("|".join("" if v is None else str(v) for v in row))
"#;

struct Lite {
    file: PathBuf,
}

impl Lite {
    fn run(&self, args: &[&str]) -> String {
        self.try_run(args)
            .unwrap_or_else(|err| panic!("sqlite {args:?}: {err}"))
    }

    fn try_run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("python3")
            .args(["-c", SQLITE, self.file.to_str().unwrap()])
            .args(args)
            .output()
            .expect("python3 runs");
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn apply(&self, file: &Path) {
        self.run(&["apply", file.to_str().unwrap()]);
    }

    fn rows(&self, sql: &str) -> Vec<String> {
        self.run(&["query", sql])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

enum Db {
    Pg(Pg),
    Lite(Lite),
}

impl Db {
    fn new(dialect: Dialect, tag: &str, dir: &Path) -> Self {
        match dialect {
            Dialect::Postgres => Db::Pg(Pg::new(tag)),
            Dialect::Sqlite => Db::Lite(Lite {
                file: dir.join(format!("{tag}.db")),
            }),
        }
    }
    fn apply(&self, file: &Path) {
        match self {
            Db::Pg(d) => d.apply(file),
            Db::Lite(d) => d.apply(file),
        }
    }
    fn try_apply(&self, file: &Path) -> Result<(), String> {
        match self {
            Db::Pg(d) => d.try_apply(file),
            Db::Lite(d) => d.try_run(&["apply", file.to_str().unwrap()]).map(drop),
        }
    }
    fn rows(&self, sql: &str) -> Vec<String> {
        match self {
            Db::Pg(d) => d.rows(sql),
            Db::Lite(d) => d.rows(sql),
        }
    }
    fn dialect(&self) -> Dialect {
        match self {
            Db::Pg(_) => Dialect::Postgres,
            Db::Lite(_) => Dialect::Sqlite,
        }
    }

    /// Tables and columns as the database has them, in the shape of the model's:
    /// `table.column type null|notnull default-or-- fk-or--`, sorted.
    fn shape(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            Db::Pg(d) => {
                let fks: Vec<String> = d.rows(
                    "SELECT tc.table_name || '.' || kcu.column_name, ccu.table_name FROM information_schema.table_constraints tc \
                     JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name \
                     JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name \
                     WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'",
                );
                for row in d.rows(
                    "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name IN (SELECT table_name FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE') ORDER BY table_name, column_name",
                ) {
                    let f: Vec<&str> = row.split('|').collect();
                    let key = format!("{}.{}", f[0], f[1]);
                    let fk = fks
                        .iter()
                        .find_map(|r| r.strip_prefix(&format!("{key}|")))
                        .unwrap_or("--");
                    // PostgreSQL adds the type to a string default: 'new'::text.
                    let default = match f[4] {
                        "" => "--".to_string(),
                        d => d.split("::").next().unwrap_or(d).to_string(),
                    };
                    let null = if f[3] == "YES" { "null" } else { "notnull" };
                    out.push(format!("{key} {} {null} {default} {fk}", f[2]));
                }
            }
            Db::Lite(d) => {
                let tables = d.rows(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                );
                for t in tables {
                    let fks = d.rows(&format!(
                        "SELECT \"from\", \"table\" FROM pragma_foreign_key_list('{t}')"
                    ));
                    for row in d.rows(&format!(
                        "SELECT name, lower(type), \"notnull\", coalesce(dflt_value, ''), pk FROM pragma_table_info('{t}')"
                    )) {
                        let f: Vec<&str> = row.split('|').collect();
                        let fk = fks
                            .iter()
                            .find_map(|r| r.strip_prefix(&format!("{}|", f[0])))
                            .unwrap_or("--");
                        // A primary key is never NULL, whatever the pragma says.
                        let null = if f[2] == "1" || f[4] != "0" { "notnull" } else { "null" };
                        let default = if f[3].is_empty() { "--" } else { f[3] };
                        out.push(format!("{t}.{} {} {null} {default} {fk}", f[0], f[1]));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// The shape `wanted` gives, as [`Db::shape`] reads a database.
fn model_shape(wanted: &[Wanted], dialect: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for w in wanted {
        for c in &w.table.columns {
            let ty = match (dialect, &c.ty) {
                (Dialect::Postgres, ColType::Id | ColType::I64) => "bigint".to_string(),
                (Dialect::Postgres, ColType::Datetime) => "timestamp with time zone".to_string(),
                (d, t) => t.sql(d).to_ascii_lowercase(),
            };
            let null = if c.nullable && !c.primary_key {
                "null"
            } else {
                "notnull"
            };
            let default = c.default.clone().unwrap_or_else(|| "--".into());
            let fk = c.references.clone().unwrap_or_else(|| "--".into());
            out.push(format!(
                "{}.{} {ty} {null} {default} {fk}",
                w.table.name, c.name
            ));
        }
    }
    out.sort();
    out
}

/// Each database owner of the project at `root`, as msgen renders them.
fn owners(root: &Path) -> Vec<schema::Owner> {
    schema::owners(&Project::load(&root.join("services.toml")).unwrap())
}

fn migration_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    files
}

#[test]
fn every_example_migrates_a_fresh_database_to_its_model() {
    for name in examples() {
        for database in ["postgres", "sqlite"] {
            let dir = tempfile::tempdir().unwrap();
            assert_ok(&msgen(
                dir.path(),
                &[
                    "new",
                    &name,
                    "--yes",
                    "--database",
                    database,
                    "--config",
                    example(&name).to_str().unwrap(),
                ],
            ));
            let root = dir.path().join(&name);
            for schema::Owner {
                name: owner,
                dir: owner_dir,
                dialect,
                wanted,
            } in owners(&root)
            {
                let mdir = root.join(owner_dir).join("migrations");
                let db = Db::new(
                    dialect,
                    &format!("{name}_{database}_{}", owner.replace('-', "_")),
                    dir.path(),
                );
                for f in migration_files(&mdir) {
                    db.apply(&f);
                }
                assert_eq!(
                    db.shape(),
                    model_shape(&wanted, dialect),
                    "{name} ({database}), {owner}: the database its migrations make is not the model"
                );
            }
        }
    }
}

const START: &str = r#"[project]
name = "evo"

[[services]]
name = "shop"
database = "DB"

  [[services.resources]]
  name = "customer"
  fields = { name = "string" }

  [[services.resources]]
  name = "order"
  fields = { title = "string", qty = "i32" }
"#;

/// The issue's evolution sequence, on one service, with one row stored at the
/// start: each step edits services.toml, renders, applies the new migrations to
/// the same database and compares it with the model.
fn evolve_on(dialect: Dialect) {
    let db_kind = schema::dialect_name(dialect);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evo.toml");
    std::fs::write(&config, START.replace("DB", db_kind)).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "evo", "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join("evo");
    let db = Db::new(dialect, &format!("evo_{db_kind}"), dir.path());
    let mut applied: Vec<PathBuf> = Vec::new();
    let mut step = |label: &str, fields: Option<&str>, args: &[&str]| {
        if let Some(fields) = fields {
            let toml = std::fs::read_to_string(root.join("services.toml")).unwrap();
            let start = toml.rfind("  fields = ").unwrap();
            let end = start + toml[start..].find('\n').unwrap();
            let new = format!("{}  fields = {fields}{}", &toml[..start], &toml[end..]);
            std::fs::write(root.join("services.toml"), new).unwrap();
        }
        let mut cmd = vec!["generate"];
        cmd.extend_from_slice(args);
        assert_ok(&msgen(&root, &cmd));
        for f in migration_files(&root.join("services/shop/migrations")) {
            if !applied.contains(&f) {
                db.apply(&f);
                applied.push(f);
            }
        }
        let wanted = owners(&root).remove(0).wanted;
        assert_eq!(
            db.shape(),
            model_shape(&wanted, dialect),
            "{db_kind}, after {label}"
        );
        assert_ok(&msgen(&root, &["generate", "--check"]));
    };
    step("the first render", None, &[]);
    // An index of the user's own, which SQLite's table rebuilds must keep.
    assert_ok(&msgen(&root, &["add-migration", "shop", "index_orders"]));
    let mine = root.join("services/shop/migrations/0003_index_orders.sql");
    let text = std::fs::read_to_string(&mine).unwrap();
    std::fs::write(
        &mine,
        text + "CREATE INDEX orders_by_qty ON orders (qty);\n\
                CREATE VIEW big AS SELECT id, title, qty FROM orders WHERE qty >= 10;\n\
                CREATE VIEW big_ids AS SELECT id FROM big;\n",
    )
    .unwrap();
    step("a migration of the user's", None, &[]);
    let now = if dialect == Dialect::Postgres {
        "now()"
    } else {
        "'2024-01-02T03:04:05Z'"
    };
    db.rows(&format!(
        "INSERT INTO orders (title, qty, created_at, updated_at) VALUES ('first', 3, {now}, {now})"
    ));
    step(
        "an optional field",
        Some(r#"{ title = "string", qty = "i32", note = "text?" }"#),
        &[],
    );
    step(
        "a required field with a default",
        Some(
            r#"{ title = "string", qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        ),
        &[],
    );
    step(
        "a rename",
        Some(
            r#"{ label = { type = "string", renamed_from = "title" }, qty = "i32", note = "text?", status = { type = "string", default = "new" } }"#,
        ),
        &[],
    );
    step(
        "a widening",
        Some(
            r#"{ label = "string", qty = "i64", note = "text?", status = { type = "string", default = "new" } }"#,
        ),
        &[],
    );
    step(
        "a reference and a required field with a default for the rows without",
        Some(
            r#"{ label = "string", qty = "i64", note = { type = "text", default = "" }, status = { type = "string", default = "new" }, customer_id = "ref:customer?" }"#,
        ),
        &[],
    );
    // Refused, and nothing written: a dropped field without confirmation.
    let toml = std::fs::read_to_string(root.join("services.toml")).unwrap();
    let dropped = toml.replace(", note = { type = \"text\", default = \"\" }", "");
    std::fs::write(root.join("services.toml"), &dropped).unwrap();
    let files_before = migration_files(&root.join("services/shop/migrations"));
    let refused = msgen(&root, &["generate"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("services.shop.resources.order.fields.note"),
        "{err}"
    );
    assert!(err.contains("--allow-data-loss"), "{err}");
    assert_eq!(
        migration_files(&root.join("services/shop/migrations")),
        files_before
    );
    std::fs::write(root.join("services.toml"), &toml).unwrap();
    step(
        "a dropped field, confirmed",
        Some(
            r#"{ label = "string", qty = "i64", status = { type = "string", default = "new" }, customer_id = "ref:customer?" }"#,
        ),
        &["--allow-data-loss"],
    );
    let indexes = match &db {
        Db::Pg(_) => "SELECT indexname FROM pg_indexes WHERE indexname = 'orders_by_qty'",
        Db::Lite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'orders_by_qty'"
        }
    };
    assert_eq!(
        db.rows(indexes),
        ["orders_by_qty"],
        "{db_kind}: the user's index is gone"
    );
    // The user's views, one reading the other, still answer (the renamed column too).
    assert_eq!(db.rows("SELECT count(*) FROM big_ids"), ["0"], "{db_kind}");
    assert_eq!(
        db.rows("SELECT count(*) FROM big WHERE label = 'first'"),
        ["0"],
        "{db_kind}"
    );
    // The row stored at the start kept its values through all of it.
    assert_eq!(
        db.rows("SELECT label, qty, status FROM orders"),
        ["first|3|new"],
        "{}",
        db.dialect() == Dialect::Postgres
    );
}

/// A narrowing confirmed with `--allow-data-loss`: a value beyond `i32` stops the
/// migration on either database (SQLite would keep it, and the service could then
/// read no row of the table), and the same migration goes through once no row
/// holds one.
fn narrowing_on(dialect: Dialect) {
    let db_kind = schema::dialect_name(dialect);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evo.toml");
    let start = START
        .replace("DB", db_kind)
        .replace("qty = \"i32\"", "qty = \"i64?\"");
    std::fs::write(&config, start).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "evo", "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join("evo");
    let migrations = root.join("services/shop/migrations");
    let db = Db::new(dialect, &format!("narrow_{db_kind}"), dir.path());
    let first = migration_files(&migrations);
    for f in &first {
        db.apply(f);
    }
    let now = match dialect {
        Dialect::Postgres => "now()",
        Dialect::Sqlite => "'2024-01-02T03:04:05Z'",
    };
    db.rows(&format!(
        "INSERT INTO orders (title, qty, created_at, updated_at) VALUES ('big', 3000000000, {now}, {now}), ('none', NULL, {now}, {now})"
    ));

    let toml = std::fs::read_to_string(root.join("services.toml")).unwrap();
    let narrowed = toml.replace("qty = \"i64?\"", "qty = \"i32?\"");
    std::fs::write(root.join("services.toml"), narrowed).unwrap();
    let refused = msgen(&root, &["generate"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert_ok(&msgen(&root, &["generate", "--allow-data-loss"]));
    // msgen reads its own migration back as the model it wrote it for.
    assert_ok(&msgen(&root, &["generate", "--check"]));
    let new: Vec<PathBuf> = migration_files(&migrations)
        .into_iter()
        .filter(|f| !first.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let err = db.try_apply(&new[0]).expect_err("3000000000 is no i32");
    let why = match dialect {
        Dialect::Postgres => "out of range",
        Dialect::Sqlite => "column qty of table orders has a value outside i32",
    };
    assert!(err.contains(why), "{db_kind}: {err}");
    assert_eq!(
        db.rows("SELECT qty FROM orders WHERE title = 'big'"),
        ["3000000000"]
    );

    db.rows("UPDATE orders SET qty = 2147483647 WHERE title = 'big'");
    db.apply(&new[0]);
    let wanted = owners(&root).remove(0).wanted;
    assert_eq!(db.shape(), model_shape(&wanted, dialect), "{db_kind}");
    assert_eq!(
        db.rows("SELECT title, qty FROM orders ORDER BY id"),
        ["big|2147483647", "none|"]
    );
}

/// A reference that becomes required: a default cannot help (`ref:` takes none,
/// and one of `i64` would drop the foreign key), so the help says what does.
#[test]
fn a_reference_made_required_is_refused_with_help_that_keeps_it_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evo.toml");
    let start = START.replace("DB", "sqlite").replace(
        "qty = \"i32\"",
        "qty = \"i32\", customer_id = \"ref:customer?\"",
    );
    std::fs::write(&config, start).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "evo", "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join("evo");
    let toml = std::fs::read_to_string(root.join("services.toml")).unwrap();
    let required = toml.replace("\"ref:customer?\"", "\"ref:customer\"");
    std::fs::write(root.join("services.toml"), required).unwrap();
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("field `customer_id` becomes required"),
        "{err}"
    );
    assert!(
        err.contains("a reference takes no default: fill `customer_id` in every row and make it NOT NULL in a migration of your own (`msgen add-migration shop NAME`"),
        "{err}"
    );
    assert!(!err.contains("type = \"i64\""), "{err}");
}

#[test]
fn a_narrowing_stops_at_a_value_beyond_i32_on_postgres() {
    narrowing_on(Dialect::Postgres);
}

#[test]
fn a_narrowing_stops_at_a_value_beyond_i32_on_sqlite() {
    narrowing_on(Dialect::Sqlite);
}

#[test]
fn an_evolving_model_keeps_postgres_in_step_and_every_row() {
    evolve_on(Dialect::Postgres);
}

#[test]
fn an_evolving_model_keeps_sqlite_in_step_and_every_row() {
    evolve_on(Dialect::Sqlite);
}

/// SQLite's table rebuild keeps what the user made on the table: a column with
/// its collation and check, a unique index over two columns, a view reading the
/// table, the AUTOINCREMENT counter; and it refuses to run over a trigger.
#[test]
fn a_sqlite_rebuild_keeps_what_the_user_made() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evo.toml");
    std::fs::write(&config, START.replace("DB", "sqlite")).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "evo", "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join("evo");
    let db = Db::new(Dialect::Sqlite, "rebuild", dir.path());
    let mdir = root.join("services/shop/migrations");
    let apply_new = |applied: &mut Vec<PathBuf>| {
        for f in migration_files(&mdir) {
            if !applied.contains(&f) {
                db.apply(&f);
                applied.push(f);
            }
        }
    };
    let mut applied = Vec::new();
    apply_new(&mut applied);
    assert_ok(&msgen(&root, &["add-migration", "shop", "mine"]));
    let mine = mdir.join("0003_mine.sql");
    std::fs::write(
        &mine,
        std::fs::read_to_string(&mine).unwrap()
            + "ALTER TABLE orders ADD COLUMN code TEXT COLLATE NOCASE CHECK (length(code) < 10);\n\
               CREATE UNIQUE INDEX orders_title_code ON orders (title, code);\n\
               CREATE VIEW big_orders AS SELECT id, title FROM orders WHERE qty >= 10;\n",
    )
    .unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    apply_new(&mut applied);
    for (title, qty) in [("a", 1), ("b", 20), ("c", 30)] {
        db.rows(&format!(
            "INSERT INTO orders (title, qty, code, created_at, updated_at) VALUES ('{title}', {qty}, 'X{title}', 't', 't')"
        ));
    }
    db.rows("DELETE FROM orders WHERE title = 'c'");

    // A change only a rebuild makes: a required field made from an optional one.
    common::edit_config(
        &root,
        "qty = \"i32\" }",
        "qty = \"i32\", note = \"text?\" }",
    );
    assert_ok(&msgen(&root, &["generate"]));
    common::edit_config(
        &root,
        "note = \"text?\" }",
        "note = { type = \"text\", default = \"-\" } }",
    );
    assert_ok(&msgen(&root, &["generate"]));
    let rebuild = std::fs::read_to_string(migration_files(&mdir).last().unwrap()).unwrap();
    assert!(
        rebuild.contains("CREATE TABLE \"_msgen_new_orders\""),
        "{rebuild}"
    );
    apply_new(&mut applied);

    let table = db
        .rows("SELECT sql FROM sqlite_master WHERE name = 'orders'")
        .join("\n")
        .to_lowercase();
    assert!(
        table.contains("collate nocase") && table.contains("check"),
        "{table}"
    );
    assert_eq!(db.rows("SELECT title FROM big_orders"), ["b"]);
    assert_eq!(
        db.rows(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'orders_title_code'"
        ),
        ["orders_title_code"]
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM orders WHERE code = 'xa'"),
        ["1"],
        "collation lost"
    );
    db.rows("INSERT INTO orders (title, qty, note, created_at, updated_at) VALUES ('d', 1, 'n', 't', 't')");
    assert_eq!(
        db.rows("SELECT id FROM orders WHERE title = 'd'"),
        ["4"],
        "an id was handed out twice"
    );
    assert_ok(&msgen(&root, &["generate", "--check"]));

    // A trigger would be lost by the next rebuild: refused, nothing written.
    assert_ok(&msgen(&root, &["add-migration", "shop", "touch"]));
    let touch = migration_files(&mdir).last().unwrap().clone();
    std::fs::write(
        &touch,
        "CREATE TRIGGER orders_touch AFTER UPDATE ON orders BEGIN UPDATE orders SET updated_at = 'u' WHERE id = NEW.id; END;\n",
    )
    .unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    apply_new(&mut applied);
    common::edit_config(&root, "qty = \"i32\",", "qty = \"i32?\",");
    let before = migration_files(&mdir);
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("trigger(s) orders_touch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(migration_files(&mdir), before);
}
