//! The second step after `split --from` (`msgen split SERVICE --own-database`):
//! an adopted service leaves its schema of the monolith's database for a
//! database of its own. Pure: the command reads the files, this decides.
//!
//! It is refused, listing every site, while anything still reads across the cut:
//! SQL in the service's code naming another context's table, SQL elsewhere naming
//! the service's tables, and database objects (foreign keys, views, functions,
//! triggers) that tie the service's tables to others. Otherwise the service gets a
//! first migration that creates its tables as the monolith's migrations made them
//! (without their rows, which a script copies, sequences included).

use std::collections::{BTreeMap, BTreeSet};

use super::{sql_literals, Refusal};
use crate::sql::{
    created_table, created_tables, moved_table, object, statements, tables_in, Object,
};

/// What the step reads.
pub struct Input<'a> {
    pub service: &'a str,
    pub schema: &'a str,
    /// The monolith's migrations (file name → SQL).
    pub migrations: &'a BTreeMap<String, String>,
    /// Tables moved into a schema by earlier splits, with the schema.
    pub moved: &'a BTreeMap<String, String>,
    /// Schema → the service that has it.
    pub owners: &'a BTreeMap<String, String>,
    /// The service's `.rs` files (path shown in messages → text).
    pub service_files: &'a BTreeMap<String, String>,
    /// Every other `.rs` file: the monolith's and the other services'.
    pub other_files: &'a BTreeMap<String, String>,
}

/// What the step writes.
#[derive(Debug)]
pub struct OwnDb {
    pub tables: Vec<String>,
    /// The service's first migration on its own database.
    pub migration: String,
    /// The shell script that copies the rows and sequence positions.
    pub copy_script: String,
    /// Statements of the monolith's migrations left behind, with why.
    pub left_behind: Vec<String>,
}

/// Migrations in the order sqlx applies them: by their numeric version.
fn in_order(migrations: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<(&String, &String)> = migrations.iter().collect();
    v.sort_by_key(|(name, _)| {
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        (digits.parse::<u128>().unwrap_or(0), (*name).clone())
    });
    v
}

/// The first line of a statement, for messages.
fn head(stmt: &str) -> String {
    let line = crate::sql::first_line(stmt);
    if line.chars().count() > 120 {
        format!("{}...", line.chars().take(117).collect::<String>())
    } else {
        line.to_string()
    }
}

pub fn plan(input: &Input) -> Result<OwnDb, Refusal> {
    let mine: BTreeSet<&String> = input
        .moved
        .iter()
        .filter(|(_, s)| s.as_str() == input.schema)
        .map(|(t, _)| t)
        .collect();
    let known = created_tables(input.migrations.values());
    let owner = |t: &String| match input.moved.get(t) {
        Some(schema) => match input.owners.get(schema) {
            Some(s) => format!("service `{s}`"),
            None => format!("schema `{schema}`"),
        },
        None => "the monolith".to_string(),
    };
    let mut crossing = Vec::new();

    // SQL in code.
    let literals = |files: &BTreeMap<String, String>| -> Vec<(String, Vec<String>)> {
        files
            .iter()
            .filter_map(|(rel, text)| Some((rel, syn::parse_file(text).ok()?)))
            .flat_map(|(rel, ast)| {
                sql_literals(&ast)
                    .into_iter()
                    .map(move |(line, sql)| (format!("{rel}:{line}"), tables_in(&sql)))
            })
            .collect()
    };
    for (at, tables) in literals(input.service_files) {
        for t in tables
            .iter()
            .filter(|t| known.contains(*t) && !mine.contains(t))
        {
            crossing.push(format!("{at}: reads `{t}`, which {} owns", owner(t)));
        }
    }
    for (at, tables) in literals(input.other_files) {
        for t in tables.iter().filter(|t| mine.contains(t)) {
            crossing.push(format!(
                "{at}: reads `{t}`, which moves with service `{}`",
                input.service
            ));
        }
    }

    // Database objects, and what the service's database gets.
    let mut functions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stmts: Vec<(&String, String, Object)> = Vec::new();
    for (name, sql) in in_order(input.migrations) {
        for stmt in statements(sql) {
            // What earlier splits wrote: the moves themselves.
            if moved_table(&stmt).is_some()
                || head(&stmt)
                    .to_ascii_lowercase()
                    .starts_with("create schema")
            {
                continue;
            }
            let o = object(&stmt);
            if let Object::Function { name, tables } = &o {
                functions.insert(name.clone(), tables.clone());
            }
            stmts.push((name, stmt, o));
        }
    }
    let split = |tables: &[String]| -> (bool, Vec<String>) {
        let has_mine = tables.iter().any(|t| mine.contains(t));
        let others: Vec<String> = tables
            .iter()
            .filter(|t| !mine.contains(t) && (known.contains(*t) || input.moved.contains_key(*t)))
            .cloned()
            .collect();
        (has_mine, others)
    };
    let mut copied: Vec<String> = Vec::new();
    let mut left_behind = Vec::new();
    let mut untabled: Vec<(&String, &String)> = Vec::new();
    let mut used_functions: BTreeSet<String> = BTreeSet::new();
    for (file, stmt, o) in &stmts {
        let tables = match o {
            Object::Function { tables, .. } | Object::Other { tables } => tables.clone(),
            Object::Trigger { table, function } => {
                let mut t = vec![table.clone()];
                t.extend(functions.get(function).cloned().unwrap_or_default());
                t
            }
        };
        let (has_mine, others) = split(&tables);
        if has_mine && !others.is_empty() {
            let what = match o {
                Object::Trigger { table, function } => {
                    format!("trigger on `{table}` runs `{function}()`, which uses")
                }
                Object::Function { name, .. } => format!("function `{name}()` uses"),
                Object::Other { .. } => {
                    // The line that names the service's table says most.
                    let line = stmt
                        .lines()
                        .map(str::trim)
                        .find(|l| {
                            crate::sql::word_ranges(l)
                                .iter()
                                .any(|(_, w)| mine.contains(w))
                        })
                        .map(|l| head(l).trim_end_matches(',').to_string())
                        .unwrap_or_else(|| head(stmt));
                    format!("`{line}` ties")
                }
            };
            let mut all: Vec<String> = tables
                .iter()
                .filter(|t| mine.contains(t))
                .cloned()
                .collect();
            all.extend(others.iter().map(|t| format!("{t} ({})", owner(t))));
            crossing.push(format!(
                "migrations/{file}: {what} {}",
                all.iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
            continue;
        }
        if !has_mine {
            if tables.is_empty() {
                untabled.push((file, stmt));
            }
            continue;
        }
        let first = head(stmt).to_ascii_lowercase();
        if ["insert", "update", "delete", "copy"]
            .iter()
            .any(|k| first.starts_with(k))
        {
            left_behind.push(format!(
                "migrations/{file}: `{}`: rows come with the copy script, not as statements",
                head(stmt)
            ));
            continue;
        }
        if let Object::Trigger { function, .. } = o {
            used_functions.insert(function.clone());
        }
        copied.push(stmt.clone());
    }
    if !crossing.is_empty() {
        crossing.insert(
            0,
            format!(
                "service `{}` cannot have a database of its own yet: these still read across the cut (make each a call to the owner's API, or move the table to its owner), then run this again:",
                input.service
            ),
        );
        return Err(Refusal(crossing));
    }

    // Functions the service's triggers run, types and extensions its tables name:
    // they go first, in the monolith's order.
    let words_used: BTreeSet<String> = copied
        .iter()
        .flat_map(|s| crate::sql::word_ranges(s).into_iter().map(|(_, w)| w))
        .collect();
    let mut prelude = Vec::new();
    // Sequences the tables use by name only (`DEFAULT nextval('numbers')`).
    let mut sequences = Vec::new();
    for (file, stmt) in untabled {
        let defined = match object(stmt) {
            Object::Function { name, .. } => Some(("function".to_string(), name)),
            _ => {
                let words: Vec<String> = crate::sql::word_ranges(stmt)
                    .into_iter()
                    .map(|(_, w)| w)
                    .filter(|w| !matches!(w.as_str(), "if" | "not" | "exists" | "or" | "replace"))
                    .collect();
                match words.as_slice() {
                    [c, kind, name, ..]
                        if c == "create"
                            && matches!(
                                kind.as_str(),
                                "type" | "domain" | "extension" | "sequence"
                            ) =>
                    {
                        Some((kind.clone(), name.clone()))
                    }
                    _ => None,
                }
            }
        };
        let named = |name: &str| copied.iter().any(|c| c.contains(&format!("'{name}'")));
        match defined {
            Some((kind, name))
                if used_functions.contains(&name) || words_used.contains(&name) || named(&name) =>
            {
                if kind == "sequence" {
                    sequences.push(name);
                }
                prelude.push(stmt.clone())
            }
            _ => left_behind.push(format!(
                "migrations/{file}: `{}`: nothing of the service's uses it",
                head(stmt)
            )),
        }
    }
    let mut body: Vec<String> = prelude;
    body.extend(copied);
    let tables: Vec<String> = mine.iter().map(|t| t.to_string()).collect();
    let migration = format!(
        "-- Written by `msgen split {svc} --own-database`: the {svc} service's tables as\n\
         -- the monolith's migrations made them, for its own database (without rows:\n\
         -- db/copy-rows.sh copies those, sequences included). Version 0 runs first.\n\n{}\n",
        if body.is_empty() {
            "SELECT 1;".to_string()
        } else {
            format!("{};", body.join(";\n\n"))
        },
        svc = input.service
    );
    Ok(OwnDb {
        copy_script: copy_script(
            input.service,
            input.schema,
            &tables,
            &sequences,
            input.migrations,
        ),
        migration,
        tables,
        left_behind,
    })
}

/// Tables in the order the monolith's migrations create them: a table another
/// references is created (and so copied) first.
fn creation_order(tables: &[String], migrations: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, sql) in in_order(migrations) {
        for t in statements(sql).iter().filter_map(|s| created_table(s)) {
            if tables.contains(&t) && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    let rest: Vec<String> = tables
        .iter()
        .filter(|t| !out.contains(t))
        .cloned()
        .collect();
    out.extend(rest);
    out
}

fn copy_script(
    service: &str,
    schema: &str,
    tables: &[String],
    sequences: &[String],
    migrations: &BTreeMap<String, String>,
) -> String {
    let order: Vec<String> = creation_order(tables, migrations);
    let lit = |s: &str| s.replace('\'', "''");
    format!(
        r#"#!/bin/sh
# Written by `msgen split {service} --own-database`: copies the rows of the
# {service} service's tables, and the positions of their sequences, from schema
# `{schema}` of the monolith's database into the service's own database. Every
# table of the schema is copied: the ones the monolith made first (parents before
# children), then those the service's own migrations added; generated columns are
# left to the database. Run it once, after the service's migrations have made the
# tables on its new database and before anything writes there. Needs psql.
#   MONOLITH_DATABASE_URL=postgres://...   SERVICE_DATABASE_URL=postgres://... #   sh services/{service}/db/copy-rows.sh
set -eu
from="${{MONOLITH_DATABASE_URL:?set MONOLITH_DATABASE_URL (the monolith's database)}}"
to="${{SERVICE_DATABASE_URL:?set SERVICE_DATABASE_URL (the service's own database)}}"
schema='{schema_lit}'
tables='{order}'
for t in $(psql "$from" -X -A -t -v ON_ERROR_STOP=1 -c "SELECT tablename FROM pg_tables WHERE schemaname = '$schema' AND tablename <> '_sqlx_migrations' ORDER BY tablename"); do
    case " $tables " in *" $t "*) ;; *) tables="$tables $t" ;; esac
done
for t in $tables; do
    cols=$(psql "$from" -X -A -t -v ON_ERROR_STOP=1 -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = format('%I.%I', '$schema', '$t')::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''")
    psql "$from" -X -q -v ON_ERROR_STOP=1 -c "\copy (SELECT $cols FROM \"$schema\".\"$t\") TO STDOUT" \
        | psql "$to" -X -q -v ON_ERROR_STOP=1 -c "\copy \"$t\" ($cols) FROM STDIN"
    echo "copied $t"
done
# Each sequence continues where it stood.
psql "$from" -X -A -t -v ON_ERROR_STOP=1 -c "SELECT format('SELECT setval(%L, %s, true);', quote_ident(sequencename), last_value) FROM pg_sequences WHERE schemaname = '$schema' AND last_value IS NOT NULL" \
    | psql "$to" -X -q -v ON_ERROR_STOP=1 >/dev/null
for s in {sequences}; do
    v=$(psql "$from" -X -A -t -v ON_ERROR_STOP=1 -c "SELECT last_value FROM \"$s\"")
    psql "$to" -X -q -v ON_ERROR_STOP=1 -c "SELECT setval('\"$s\"', $v, true)" >/dev/null
done
"#,
        schema_lit = lit(schema),
        order = order.join(" "),
        sequences = sequences.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "0001_accounts.sql".to_string(),
                "CREATE TYPE kind AS ENUM ('a', 'b');\nCREATE TABLE accounts (id BIGSERIAL PRIMARY KEY, k kind);\nINSERT INTO accounts (k) VALUES ('a');\n".to_string(),
            ),
            (
                "0002_entries.sql".to_string(),
                "CREATE TABLE entries (id BIGSERIAL PRIMARY KEY, account_id BIGINT REFERENCES accounts (id));\n\
                 CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, what TEXT);\n\
                 CREATE FUNCTION log_entry() RETURNS trigger AS $$ BEGIN INSERT INTO audit_log (what) VALUES ('x'); RETURN NEW; END $$ LANGUAGE plpgsql;\n\
                 CREATE FUNCTION stamp() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql;\n\
                 CREATE TRIGGER entries_audit AFTER INSERT ON entries FOR EACH ROW EXECUTE FUNCTION log_entry();\n\
                 CREATE TRIGGER accounts_stamp BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION stamp();\n\
                 CREATE EXTENSION IF NOT EXISTS pgcrypto;\n".to_string(),
            ),
            (
                "0003_msgen_split_accounts.sql".to_string(),
                "CREATE SCHEMA IF NOT EXISTS \"accounts\";\nALTER TABLE IF EXISTS \"accounts\" SET SCHEMA \"accounts\";\n".to_string(),
            ),
        ])
    }

    fn run(
        migrations: &BTreeMap<String, String>,
        service: &str,
        moved: &[(&str, &str)],
        others: &[(&str, &str)],
    ) -> Result<OwnDb, Refusal> {
        let moved: BTreeMap<String, String> = moved
            .iter()
            .map(|(t, s)| (t.to_string(), s.to_string()))
            .collect();
        let owners: BTreeMap<String, String> =
            moved.values().map(|s| (s.clone(), s.clone())).collect();
        let other_files: BTreeMap<String, String> = others
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        plan(&Input {
            service,
            schema: service,
            migrations,
            moved: &moved,
            owners: &owners,
            service_files: &BTreeMap::from([(
                format!("services/{service}/src/lib.rs"),
                "fn f() { let _ = \"SELECT id FROM accounts\"; }".to_string(),
            )]),
            other_files: &other_files,
        })
    }

    #[test]
    fn every_tie_across_the_cut_is_listed() {
        let m = ledger();
        let err = run(
            &m,
            "accounts",
            &[("accounts", "accounts")],
            &[(
                "legacy/src/e.rs",
                "fn g() {\n    let _ = \"SELECT a.id FROM accounts a\";\n}",
            )],
        )
        .unwrap_err()
        .0
        .join("\n");
        for expected in [
            "legacy/src/e.rs:2: reads `accounts`, which moves with service `accounts`",
            "migrations/0002_entries.sql: `CREATE TABLE entries (id BIGSERIAL PRIMARY KEY, account_id BIGINT REFERENCES accounts (id))` ties `accounts` and `entries (the monolith)`",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        // A trigger whose function writes another context's table.
        let moved = [("accounts", "accounts"), ("entries", "entries")];
        let err = run(&m, "entries", &moved, &[]).unwrap_err().0.join("\n");
        assert!(
            err.contains("migrations/0002_entries.sql: trigger on `entries` runs `log_entry()`, which uses `entries` and `audit_log (the monolith)`"),
            "{err}"
        );
    }

    #[test]
    fn a_service_with_nothing_across_gets_its_tables_functions_and_types() {
        let mut m = ledger();
        // Without the entries that reference accounts.
        m.insert(
            "0002_entries.sql".into(),
            "CREATE FUNCTION stamp() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql;\n\
             CREATE TRIGGER accounts_stamp BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION stamp();\n\
             CREATE EXTENSION IF NOT EXISTS pgcrypto;\n\
             CREATE SEQUENCE account_numbers;\n\
             ALTER TABLE accounts ADD COLUMN number BIGINT DEFAULT nextval('account_numbers');\n"
                .into(),
        );
        let own = run(&m, "accounts", &[("accounts", "accounts")], &[]).unwrap();
        assert_eq!(own.tables, ["accounts"]);
        let body = &own.migration;
        let at = |s: &str| {
            body.find(s)
                .unwrap_or_else(|| panic!("{s:?} not in:\n{body}"))
        };
        assert!(at("CREATE TYPE kind") < at("CREATE TABLE accounts"));
        assert!(at("CREATE FUNCTION stamp()") < at("CREATE TRIGGER accounts_stamp"));
        // A sequence used by name only comes first, and the script sets it.
        assert!(at("CREATE SEQUENCE account_numbers") < at("nextval('account_numbers')"));
        assert!(
            own.copy_script.contains("for s in account_numbers; do"),
            "{}",
            own.copy_script
        );
        assert!(
            !body.contains("INSERT") && !body.contains("SET SCHEMA") && !body.contains("pgcrypto"),
            "{body}"
        );
        let behind = own.left_behind.join("\n");
        assert!(
            behind.contains("rows come with the copy script"),
            "{behind}"
        );
        assert!(
            behind.contains(
                "CREATE EXTENSION IF NOT EXISTS pgcrypto`: nothing of the service's uses it"
            ),
            "{behind}"
        );
        assert!(
            own.copy_script.contains("tables='accounts'\n"),
            "{}",
            own.copy_script
        );
        assert!(
            own.copy_script.contains("schema='accounts'"),
            "{}",
            own.copy_script
        );
    }
}
