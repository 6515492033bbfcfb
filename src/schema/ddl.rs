//! SQL for tables and their changes, in PostgreSQL and SQLite.
//!
//! Everything written here must be read back by [`super::read`] into the schema it
//! produces: a migration msgen wrote but did not record (a run killed between the
//! two) is replayed, not written twice.

use std::collections::BTreeMap;

use super::diff::{Change, Step};
use super::{ColType, Column, Dialect, Named, Table};

/// Identifiers are always quoted: field names such as `user` or `order` are reserved
/// words in SQL but fine in `services.toml`.
pub fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `"name" TYPE [PRIMARY KEY] [NOT NULL] [UNIQUE] [DEFAULT x] [REFERENCES ...]`.
pub fn column_def(c: &Column, dialect: Dialect) -> String {
    let mut def = format!("{} ", q(&c.name));
    if let (Dialect::Sqlite, Some(raw)) = (dialect, &c.raw) {
        def.push_str(raw);
        return def;
    }
    if c.ty == ColType::Id {
        def.push_str(match dialect {
            Dialect::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        });
        return def;
    }
    def.push_str(&c.ty.sql(dialect));
    if c.primary_key {
        def.push_str(" PRIMARY KEY");
    } else if !c.nullable {
        def.push_str(" NOT NULL");
    }
    if c.unique {
        def.push_str(" UNIQUE");
    }
    if let Some(d) = &c.default {
        def.push_str(&format!(" DEFAULT {d}"));
    }
    if let Some(t) = &c.references {
        def.push_str(&format!(" REFERENCES {} (\"id\") ON DELETE CASCADE", q(t)));
    }
    def
}

pub fn create_table(t: &Table, dialect: Dialect) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}",
        table_body(&q(&t.name), t, dialect)
    )
}

fn table_body(name: &str, t: &Table, dialect: Dialect) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("    {}", column_def(c, dialect)))
        .chain(t.constraints.iter().map(|c| format!("    {c}")))
        .collect();
    format!("{name} (\n{}\n);\n", cols.join(",\n"))
}

/// The file name's description and the SQL of one step.
pub fn migration(step: &Step, dialect: Dialect) -> (String, String) {
    match step {
        Step::Create(t) => (format!("create_{}", t.name), create_table(t, dialect)),
        Step::Drop(t) => (
            format!("drop_{}", t.name),
            format!(
                "-- Written by msgen: table {} is no longer in services.toml (dropped with --allow-data-loss).\nDROP TABLE IF EXISTS {};\n",
                q(&t.name),
                q(&t.name)
            ),
        ),
        Step::Alter {
            old,
            new,
            changes,
            views,
        } => {
            let what: Vec<String> = changes.iter().map(Change::describe).collect();
            let header = format!(
                "-- Written by msgen: services.toml changed table {}:\n--   {}\n-- msgen never edits this file again: later changes get migrations of their own.\n",
                q(&new.name),
                what.join("\n--   ")
            );
            let body = match dialect {
                Dialect::Postgres => {
                    // Views stop a column's type change or drop: dropped first,
                    // made again last.
                    let blocks = changes
                        .iter()
                        .any(|c| matches!(c, Change::Retype { .. } | Change::Drop(_)));
                    let views: &[Named] = if blocks { views } else { &[] };
                    format!(
                        "{}{}{}",
                        drop_views(views),
                        postgres_alter(&new.name, old, new, changes),
                        make_views(views)
                    )
                }
                Dialect::Sqlite if !sqlite_rebuilds(changes) => format!(
                    "{}{}",
                    sqlite_guards(&old.name, changes),
                    sqlite_alter(&new.name, changes)
                ),
                Dialect::Sqlite => format!(
                    "{}{}",
                    sqlite_guards(&old.name, changes),
                    sqlite_rebuild(old, new, changes, views)
                ),
            };
            (format!("alter_{}", new.name), format!("{header}{body}"))
        }
    }
}

fn alter(table: &str, action: String) -> String {
    format!("ALTER TABLE {} {action};\n", q(table))
}

/// Drops the foreign key on one column, whatever PostgreSQL named it (a renamed
/// column keeps its constraint's old name). The marker comment is what
/// [`super::read`] recognises.
fn drop_foreign_key(table: &str, column: &str) -> String {
    format!(
        "DO $msgen$\nDECLARE c name;\nBEGIN\n    -- msgen: drop foreign key {} {}\n    FOR c IN SELECT con.conname FROM pg_constraint con JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey) WHERE con.conrelid = '{}'::regclass AND con.contype = 'f' AND a.attname = '{}' LOOP\n        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', '{}', c);\n    END LOOP;\nEND\n$msgen$;\n",
        q(table),
        q(column),
        q(table).replace('\'', "''"),
        column.replace('\'', "''"),
        table.replace('\'', "''"),
    )
}

fn postgres_alter(table: &str, old: &Table, new: &Table, changes: &[Change]) -> String {
    let mut sql = String::new();
    // Columns whose SQL type changes while they have a default: USING does not
    // convert a default, so it is dropped first and the new one set after.
    let reset: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Retype { column, from, to }
                if from.sql(Dialect::Postgres) != to.sql(Dialect::Postgres)
                    && old_default(old, changes, column).is_some() =>
            {
                Some(column.as_str())
            }
            _ => None,
        })
        .collect();
    // Renames first: every later statement names columns as they will be.
    for c in changes {
        if let Change::Rename { from, to } = c {
            sql.push_str(&alter(
                table,
                format!("RENAME COLUMN {} TO {}", q(from), q(to)),
            ));
        }
    }
    for c in changes {
        match c {
            Change::References { column, .. } if old_refs(old, changes, column) => {
                sql.push_str(&drop_foreign_key(table, column))
            }
            Change::Drop(name) => sql.push_str(&alter(table, format!("DROP COLUMN {}", q(name)))),
            _ => {}
        }
    }
    for c in changes {
        match c {
            Change::Add(column) => sql.push_str(&alter(
                table,
                format!("ADD COLUMN {}", column_def(column, Dialect::Postgres)),
            )),
            Change::Retype { column, from, to } => {
                let (from, to) = (from.sql(Dialect::Postgres), to.sql(Dialect::Postgres));
                if from != to {
                    let had_default = reset.contains(&column.as_str());
                    if had_default {
                        sql.push_str(&alter(
                            table,
                            format!("ALTER COLUMN {} DROP DEFAULT", q(column)),
                        ));
                    }
                    sql.push_str(&alter(
                        table,
                        format!(
                            "ALTER COLUMN {} TYPE {to} USING CAST({} AS {to})",
                            q(column),
                            q(column)
                        ),
                    ));
                    let default = new.column(column).and_then(|c| c.default.as_ref());
                    if let (true, Some(d)) = (had_default, default) {
                        sql.push_str(&alter(
                            table,
                            format!("ALTER COLUMN {} SET DEFAULT {d}", q(column)),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    for c in changes {
        match c {
            Change::Nullable {
                column,
                nullable: true,
                ..
            } => sql.push_str(&alter(
                table,
                format!("ALTER COLUMN {} DROP NOT NULL", q(column)),
            )),
            Change::Nullable {
                column,
                nullable: false,
                fill,
            } => {
                if let Some(fill) = fill {
                    sql.push_str(&format!(
                        "UPDATE {} SET {} = {fill} WHERE {} IS NULL;\n",
                        q(table),
                        q(column),
                        q(column)
                    ));
                }
                sql.push_str(&alter(
                    table,
                    format!("ALTER COLUMN {} SET NOT NULL", q(column)),
                ));
            }
            Change::Default { column, default } => {
                if reset.contains(&column.as_str()) {
                    continue;
                }
                let action = match default {
                    Some(d) => format!("ALTER COLUMN {} SET DEFAULT {d}", q(column)),
                    None => format!("ALTER COLUMN {} DROP DEFAULT", q(column)),
                };
                sql.push_str(&alter(table, action));
            }
            Change::References {
                column,
                to: Some(t),
            } => sql.push_str(&alter(
                table,
                format!(
                    "ADD FOREIGN KEY ({}) REFERENCES {} (\"id\") ON DELETE CASCADE",
                    q(column),
                    q(t)
                ),
            )),
            Change::Unique {
                column,
                unique: true,
            } => sql.push_str(&alter(table, format!("ADD UNIQUE ({})", q(column)))),
            _ => {}
        }
    }
    sql
}

/// The column's name before this migration's renames.
fn old_name<'a>(changes: &'a [Change], column: &'a str) -> &'a str {
    changes
        .iter()
        .find_map(|c| match c {
            Change::Rename { from, to } if to == column => Some(from.as_str()),
            _ => None,
        })
        .unwrap_or(column)
}

fn old_refs(old: &Table, changes: &[Change], column: &str) -> bool {
    old.column(old_name(changes, column))
        .is_some_and(|c| c.references.is_some())
}

fn old_default(old: &Table, changes: &[Change], column: &str) -> Option<String> {
    old.column(old_name(changes, column))
        .and_then(|c| c.default.clone())
}

/// The temporary table a SQLite migration's guard of a table counts rows in.
pub const GUARD_PREFIX: &str = "_msgen_guard_";

/// Where a column becomes an `i32`: SQLite keeps any integer in its INTEGER column,
/// and the service could not read one beyond `i32` back (every read of the table
/// would fail). As PostgreSQL's CAST does, the migration stops at such a value,
/// and its error names the column: a CHECK of a temporary table counts them.
fn sqlite_guards(table: &str, changes: &[Change]) -> String {
    let mut sql = String::new();
    for c in changes {
        let Change::Retype { column, from, to } = c else {
            continue;
        };
        if *to != ColType::I32 || *from == ColType::I32 {
            continue;
        }
        let source = q(old_name(changes, column));
        let guard = q(&format!("{GUARD_PREFIX}{table}"));
        let check = q(&format!(
            "column {column} of table {table} has a value outside i32 (-2147483648 to 2147483647)"
        ));
        sql.push_str(&format!(
            "CREATE TEMP TABLE {guard} (\"rows\" INTEGER, CONSTRAINT {check} CHECK (\"rows\" = 0));\n\
             INSERT INTO {guard} SELECT COUNT(*) FROM {} WHERE {source} IS NOT NULL AND CAST({source} AS INTEGER) NOT BETWEEN -2147483648 AND 2147483647;\n\
             DROP TABLE {guard};\n",
            q(table)
        ));
    }
    sql
}

/// Whether SQLite needs its table-rebuild procedure for `changes`.
pub fn sqlite_rebuilds(changes: &[Change]) -> bool {
    !changes.iter().all(sqlite_alters)
}

/// Whether SQLite's own `ALTER TABLE` does this change (else: a rebuild).
fn sqlite_alters(c: &Change) -> bool {
    match c {
        Change::Rename { .. } => true,
        // SQLite adds a column only without a key or UNIQUE, NOT NULL only with a
        // default, and a foreign key only with a NULL default.
        Change::Add(col) => {
            !col.primary_key
                && !col.unique
                && (col.nullable || col.default.is_some())
                && (col.references.is_none() || col.default.is_none())
        }
        // Same declared type: nothing in the database changes.
        Change::Retype { from, to, .. } => from.sql(Dialect::Sqlite) == to.sql(Dialect::Sqlite),
        _ => false,
    }
}

fn sqlite_alter(table: &str, changes: &[Change]) -> String {
    let mut sql = String::new();
    for c in changes {
        match c {
            Change::Rename { from, to } => sql.push_str(&alter(
                table,
                format!("RENAME COLUMN {} TO {}", q(from), q(to)),
            )),
            Change::Add(column) => sql.push_str(&alter(
                table,
                format!("ADD COLUMN {}", column_def(column, Dialect::Sqlite)),
            )),
            _ => {}
        }
    }
    sql
}

/// The new table's name while a SQLite rebuild copies the rows into it.
pub const REBUILD_PREFIX: &str = "_msgen_new_";

/// SQLite's `ALTER TABLE` cannot do the rest: the procedure of
/// sqlite.org/lang_altertable.html (a new table, the rows copied, the old one
/// dropped, the new one renamed). It needs foreign keys off, which cannot change
/// inside sqlx's transaction: the generated `db.rs` runs the migrations on a
/// connection of its own with foreign keys off, then checks them.
fn sqlite_rebuild(old: &Table, new: &Table, changes: &[Change], views: &[Named]) -> String {
    let tmp = q(&format!("{REBUILD_PREFIX}{}", new.name));
    let mut sql = format!("CREATE TABLE {}", table_body(&tmp, new, Dialect::Sqlite));
    let renamed: BTreeMap<&str, &str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Rename { from, to } => Some((to.as_str(), from.as_str())),
            _ => None,
        })
        .collect();
    let mut into = Vec::new();
    let mut from = Vec::new();
    for c in &new.columns {
        let source = renamed.get(c.name.as_str()).copied().unwrap_or(&c.name);
        let Some(before) = old.column(source) else {
            // A new column: its default fills it.
            continue;
        };
        let mut expr = q(source);
        if before.ty.sql(Dialect::Sqlite) != c.ty.sql(Dialect::Sqlite) {
            expr = format!("CAST({expr} AS {})", c.ty.sql(Dialect::Sqlite));
        }
        if before.nullable && !c.nullable {
            if let Some(fill) = changes.iter().find_map(|x| match x {
                Change::Nullable {
                    column,
                    fill: Some(f),
                    ..
                } if column == &c.name => Some(f),
                _ => None,
            }) {
                expr = format!("COALESCE({expr}, {fill})");
            }
        }
        into.push(q(&c.name));
        from.push(expr);
    }
    sql.push_str(&format!(
        "INSERT INTO {tmp} ({}) SELECT {} FROM {};\n",
        into.join(", "),
        from.join(", "),
        q(&old.name)
    ));
    if new.columns.iter().any(|c| c.ty == ColType::Id) {
        // AUTOINCREMENT never hands out an id again, deleted rows' included: the
        // new table carries on from the old one's counter.
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let (old_lit, tmp_lit) = (
            lit(&old.name),
            lit(&format!("{REBUILD_PREFIX}{}", new.name)),
        );
        sql.push_str(&format!(
            "INSERT INTO sqlite_sequence (name, seq) SELECT {tmp_lit}, seq FROM sqlite_sequence WHERE name = {old_lit} AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {tmp_lit});\n"
        ));
        sql.push_str(&format!(
            "UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM sqlite_sequence WHERE name IN ({old_lit}, {tmp_lit})) WHERE name = {tmp_lit};\n"
        ));
    }
    // Views that read the table would stop the rename: dropped, then made again.
    sql.push_str(&drop_views(views));
    sql.push_str(&format!("DROP TABLE {};\n", q(&old.name)));
    sql.push_str(&format!("ALTER TABLE {tmp} RENAME TO {};\n", q(&new.name)));
    // The old table's indexes went with it.
    for i in &new.indexes {
        sql.push_str(&format!("{};\n", i.sql));
    }
    sql.push_str(&make_views(views));
    sql
}

/// `views`, those that read others last, dropped in the reverse order.
fn drop_views(views: &[Named]) -> String {
    views
        .iter()
        .rev()
        .map(|v| format!("DROP VIEW IF EXISTS {};\n", q(&v.name)))
        .collect()
}

fn make_views(views: &[Named]) -> String {
    views.iter().map(|v| format!("{};\n", v.sql)).collect()
}
