//! What `split --from` does to the monolith's data: which tables the module owns,
//! where they go, and every query that reads across the cut.
//!
//! On PostgreSQL the service stays in the monolith's database, in a schema of its
//! own: a migration appended to the monolith's moves the module's tables there
//! (`ALTER TABLE .. SET SCHEMA` keeps rows, indexes, constraints, triggers and
//! sequences), and each side's search path reads what the other owns where it is.
//! Nothing is copied, so nothing can fail on a database that lacks another
//! context's tables, and the monolith's applied migrations are never rewritten.
//! On SQLite (no schemas) the service gets a database of its own and copies of
//! the statements about its tables.

use std::collections::{BTreeMap, BTreeSet};

use super::{sql_literals, CutReport, Parsed};
use crate::model::ServiceName;
use crate::sql::{
    created_tables, moved_table, public_names, statements, strip_foreign_keys, tables_in,
    written_tables,
};

/// The inputs of the data cut, gathered by [`super::plan`].
pub(super) struct DataCut<'a> {
    pub migrations: &'a BTreeMap<String, String>,
    /// Where they are, relative to the crate (`migrations`, or what
    /// `sqlx::migrate!("..")` names); the service keeps the same place.
    pub dir: &'a str,
    /// Tables services split out earlier own, with the service.
    pub owned_elsewhere: &'a BTreeMap<String, ServiceName>,
    /// Files of the services split out earlier (`services/<s>/src/..` → parsed).
    pub earlier: &'a [(ServiceName, Parsed)],
    pub parsed: &'a [Parsed],
    pub module: &'a str,
    pub service: &'a str,
    /// The service's schema in the monolith's database; `None`: a database of its own.
    pub schema: Option<&'a str>,
    /// The schemas of the services split out earlier, in `services.toml`'s order.
    pub earlier_schemas: &'a [String],
    /// Each module's routes, to point a read across the cut at the API that
    /// should replace it.
    pub routes: &'a BTreeMap<String, Vec<String>>,
}

/// What the data cut adds to the plan.
#[derive(Debug, Default)]
pub(super) struct DataChanges {
    /// New files of the service (its migrations).
    pub service_files: BTreeMap<String, String>,
    /// New files of the monolith (the migration that moves the tables).
    pub monolith_files: BTreeMap<String, String>,
}

/// One SQL string in code: where, and which tables it names and writes.
struct Site {
    at: String,
    reads: Vec<String>,
    writes: Vec<String>,
    /// Tables it names as `public.<table>`.
    pinned: Vec<String>,
}

fn sites(f: &Parsed, rel: &str, known: &dyn Fn(&String) -> bool) -> Vec<Site> {
    sql_literals(&f.ast)
        .into_iter()
        .map(|(line, sql)| Site {
            at: format!("{rel}:{line}"),
            reads: tables_in(&sql).into_iter().filter(|t| known(t)).collect(),
            writes: written_tables(&sql)
                .into_iter()
                .filter(|t| known(t))
                .collect(),
            pinned: public_names(&sql)
                .into_iter()
                .filter(|t| known(t))
                .collect(),
        })
        .filter(|s| !s.reads.is_empty())
        .collect()
}

impl DataCut<'_> {
    pub(super) fn run(&self, report: &mut CutReport) -> DataChanges {
        let created = created_tables(self.migrations.values());
        let known = |t: &String| created.is_empty() || created.contains(t);
        let by_module: Vec<(Option<&str>, Vec<Site>)> = self
            .parsed
            .iter()
            .map(|f| (f.top.as_deref(), sites(f, &f.rel, &known)))
            .collect();
        let mine: Vec<&Site> = by_module
            .iter()
            .filter(|(top, _)| *top == Some(self.module))
            .flat_map(|(_, s)| s)
            .collect();
        let theirs: Vec<(Option<&str>, &Site)> = by_module
            .iter()
            .filter(|(top, _)| *top != Some(self.module))
            .flat_map(|(top, s)| s.iter().map(move |s| (*top, s)))
            .collect();

        // The module's tables: those it writes, and those only it reads. A table it
        // only reads while the rest of the monolith uses it too stays behind.
        let writes: BTreeSet<&String> = mine.iter().flat_map(|s| &s.writes).collect();
        let used_elsewhere: BTreeSet<&String> = theirs.iter().flat_map(|(_, s)| &s.reads).collect();
        let target: BTreeSet<String> = mine
            .iter()
            .flat_map(|s| &s.reads)
            .filter(|t| !self.owned_elsewhere.contains_key(*t))
            .filter(|t| writes.contains(t) || !used_elsewhere.contains(t))
            .cloned()
            .collect();
        report.tables = target.iter().cloned().collect();

        // Who owns each table the monolith still has: the module that writes it.
        let mut writers: BTreeMap<&String, BTreeSet<&str>> = BTreeMap::new();
        for (top, s) in &theirs {
            for t in &s.writes {
                writers
                    .entry(t)
                    .or_default()
                    .insert(top.unwrap_or("(root)"));
            }
        }
        let owner_of = |t: &String| -> String {
            if let Some(s) = self.owned_elsewhere.get(t) {
                return format!(
                    "service `{s}`: call its API instead (through the gateway, or {}_SERVICE_URL)",
                    s.upper(),
                    s = s.as_str()
                );
            }
            match writers.get(t).map(|w| w.iter().collect::<Vec<_>>()) {
                Some(w) if w.len() == 1 && *w[0] != "(root)" => {
                    let m = *w[0];
                    let api = self
                        .routes
                        .get(m)
                        .filter(|r| !r.is_empty())
                        .map(|r| format!(": {}", r.join(", ")))
                        .unwrap_or_default();
                    format!("the monolith's module `{m}`: call its API instead{api}")
                }
                _ => "the monolith: call its API instead".into(),
            }
        };
        let here = |t: &str| {
            match self.schema {
            Some(_) => format!("read in place for now through the search path (`{t}` stays in the monolith's schema)"),
            None => format!("the service's database has no `{t}`"),
        }
        };
        for s in &mine {
            for t in s.reads.iter().filter(|t| !target.contains(*t)) {
                let (place, owner) = match self.owned_elsewhere.get(t) {
                    Some(o) if self.schema.is_some() => (
                        format!("read in place for now through the search path (schema of service `{}`)", o.as_str()),
                        owner_of(t),
                    ),
                    _ => (here(t), owner_of(t)),
                };
                report.cross_reads.push(format!(
                    "{}: the module reads `{t}`, owned by {owner}; {place}",
                    s.at
                ));
            }
        }
        let my_routes = self
            .routes
            .get(self.module)
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {}", r.join(", ")))
            .unwrap_or_default();
        let moved_to = match self.schema {
            Some(schema) => {
                format!("schema `{schema}`; it is read there through the search path for now")
            }
            None => "the service's database, where the monolith cannot read it".into(),
        };
        for (_, s) in &theirs {
            for t in s.reads.iter().filter(|t| target.contains(*t)) {
                report.cross_reads.push(format!(
                    "{}: the monolith reads `{t}`, which moves to {moved_to}: call service `{}`'s API instead{my_routes}",
                    s.at, self.service
                ));
            }
        }
        // A name pinned to `public.` is not found through the search path once its
        // table moves into the schema.
        let pin = |s: &Site, report: &mut CutReport| {
            let Some(schema) = self.schema else { return };
            for t in s.pinned.iter().filter(|t| target.contains(*t)) {
                report.human.push(format!(
                    "{}: names `public.{t}`, but `{t}` moves to schema `{schema}`, where that name no longer finds it: write `{t}` (the search path finds it) or `{schema}.{t}`",
                    s.at
                ));
            }
        };
        for s in &mine {
            pin(s, report);
        }
        for (_, s) in &theirs {
            pin(s, report);
        }
        // Services split out earlier that read a table that moves now.
        for (svc, f) in self.earlier {
            for s in sites(f, &format!("services/{}/{}", svc.as_str(), f.rel), &known) {
                pin(&s, report);
                for t in s.reads.iter().filter(|t| target.contains(*t)) {
                    let how = match self.schema {
                        Some(schema) => format!("its search path lists schema `{schema}` now (compose, Kubernetes, README), so it keeps reading it; add `{schema}` where you set its DATABASE_URL yourself"),
                        None => "its database has no copy".into(),
                    };
                    let line = format!(
                        "{}: service `{}` reads `{t}`, which moves to service `{}`: {how}; call `{}`'s API instead{my_routes}",
                        s.at,
                        svc.as_str(),
                        self.service,
                        self.service
                    );
                    report
                        .earlier_reads
                        .entry(svc.as_str().to_string())
                        .or_default()
                        .push(line.clone());
                    report.cross_reads.push(line);
                }
            }
        }

        match self.schema {
            Some(schema) => self.move_to_schema(schema, &target, report),
            None => self.copies(&target, report),
        }
    }

    /// PostgreSQL: a migration of the monolith moves the tables into the
    /// service's schema; the service's own history starts empty.
    fn move_to_schema(
        &self,
        schema: &str,
        target: &BTreeSet<String>,
        report: &mut CutReport,
    ) -> DataChanges {
        let mut out = DataChanges::default();
        let (version, reversible) = next_version(self.migrations);
        let name = format!("{version}_msgen_split_{schema}");
        let q = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
        let mut up = format!(
            "-- Written by `msgen split {} --from`: service `{}` owns these tables now.\n\
             -- They move into its schema with their rows, indexes, constraints, triggers\n\
             -- and sequences; the monolith and the other services read them there through\n\
             -- their search path (DATABASE_URL's `options`, set in compose and Kubernetes).\n\
             CREATE SCHEMA IF NOT EXISTS {};\n",
            self.module,
            self.service,
            q(schema)
        );
        for t in target {
            up.push_str(&format!(
                "ALTER TABLE IF EXISTS {} SET SCHEMA {};\n",
                q(t),
                q(schema)
            ));
        }
        // The monolith reads the moved tables where they are wherever it runs,
        // whatever its DATABASE_URL says: the database's own default search path
        // (new sessions), and this session's (sqlx migrates on a connection of
        // the pool it then serves with).
        let schemas = self
            .earlier_schemas
            .iter()
            .cloned()
            .chain([schema.to_string()]);
        let path: Vec<String> = crate::model::monolith_search_path(schemas)
            .iter()
            .map(|s| q(s))
            .collect();
        let path = path.join(", ");
        up.push_str(&format!(
            "DO $msgen$\nBEGIN\n    EXECUTE format('ALTER DATABASE %I SET search_path = %s', current_database(), '{}');\n\
             EXCEPTION WHEN insufficient_privilege THEN\n    RAISE WARNING 'msgen: not allowed to set the database''s search path; give the monolith''s DATABASE_URL options=-c search_path={}';\n\
             END\n$msgen$;\n\
             SET search_path = {path};\n",
            path.replace('\'', "''"),
            path.replace(['"', ' '], "").replace('\'', "''"),
        ));
        if reversible {
            let mut down = String::from("-- Moves the tables back into the monolith's schema.\n");
            for t in target {
                down.push_str(&format!(
                    "ALTER TABLE IF EXISTS {}.{} SET SCHEMA public;\n",
                    q(schema),
                    q(t)
                ));
            }
            out.monolith_files
                .insert(format!("{}/{name}.up.sql", self.dir), up);
            out.monolith_files
                .insert(format!("{}/{name}.down.sql", self.dir), down);
        } else {
            out.monolith_files
                .insert(format!("{}/{name}.sql", self.dir), up);
        }
        let file = if reversible {
            format!("{name}.up.sql")
        } else {
            format!("{name}.sql")
        };
        report.migrations.push(format!(
            "the monolith's `{}/{file}` (new) creates schema `{schema}` and moves {} into it",
            self.dir,
            if target.is_empty() {
                "no table (the module has none yet)".to_string()
            } else {
                target
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        out.service_files.insert(
            format!("{}/README.md", self.dir),
            format!(
                "# Migrations of the {service} service\n\n\
                 Its tables live in schema `{schema}` of the monolith's database; the monolith's\n\
                 migration `{file}` made the schema and moved them there. `{schema}` comes first\n\
                 in the service's search path (the `options` of its DATABASE_URL), so sqlx keeps\n\
                 this service's migration history in `{schema}._sqlx_migrations`, apart from the\n\
                 monolith's: versions here never clash with the monolith's. Add migrations as\n\
                 `<VERSION>_<DESCRIPTION>.sql`; tables they create land in `{schema}`.\n",
                service = self.service
            ),
        );
        out
    }

    /// SQLite: the service's own database gets copies of the statements about
    /// its tables.
    fn copies(&self, target: &BTreeSet<String>, report: &mut CutReport) -> DataChanges {
        let mut out = DataChanges::default();
        if !target.is_empty() {
            report.human.push(format!(
                "the monolith's database keeps its {} table(s) untouched: copy their rows into the service's database, then drop them from the monolith",
                report.tables.join(", ")
            ));
        }
        for (name, sql) in self.migrations {
            let mut kept = Vec::new();
            for stmt in statements(sql) {
                let tables = tables_in(&stmt);
                let mine: Vec<&String> = tables.iter().filter(|t| target.contains(*t)).collect();
                if tables.is_empty() && !target.is_empty() {
                    // Types, extensions, functions: the service's tables may need them.
                    report.human.push(format!(
                        "migrations/{name}: `{}` names no table; copied to the service too: remove it if the service does not need it",
                        crate::sql::first_line(&stmt)
                    ));
                    kept.push(stmt);
                    continue;
                }
                if mine.is_empty() {
                    continue;
                }
                let (stmt, dropped) = strip_foreign_keys(&stmt, target);
                for d in &dropped {
                    let owner = match self.owned_elsewhere.get(d) {
                        Some(service) => format!("`{d}` belongs to service `{}`", service.as_str()),
                        None => format!("`{d}` stays in the monolith"),
                    };
                    report.human.push(format!(
                        "migrations/{name}: foreign key to `{d}` dropped in the service's copy ({owner}): check the reference in code"
                    ));
                }
                if stmt.trim().is_empty() {
                    // A statement that only added such a foreign key.
                    continue;
                }
                let rest: Vec<String> = tables_in(&stmt)
                    .into_iter()
                    .filter(|t| !target.contains(t))
                    .collect();
                if !rest.is_empty() {
                    let list = |v: &[&String]| {
                        v.iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    report.human.push(format!(
                        "migrations/{name}: a statement uses {} and {}: not copied to the service",
                        list(&mine),
                        list(&rest.iter().collect::<Vec<_>>())
                    ));
                    continue;
                }
                kept.push(stmt);
            }
            if !kept.is_empty() {
                report
                    .migrations
                    .push(format!("{name}: {} statement(s)", kept.len()));
                let body = format!(
                    "-- Copied from the monolith's migrations/{name} by `msgen split --from`:\n-- only the statements about this service's tables.\n\n{};\n",
                    kept.join(";\n\n")
                );
                out.service_files
                    .insert(format!("{}/{name}", self.dir), body);
            }
        }
        if !self.migrations.is_empty() && out.service_files.is_empty() {
            // `sqlx::migrate!()` needs the directory even when nothing moves.
            out.service_files
                .insert(format!("{}/.gitkeep", self.dir), String::new());
        }
        out
    }
}

/// The version of a migration to append after `migrations` (one more than the
/// highest, as wide), and whether they are reversible (`.up.sql`/`.down.sql`).
fn next_version(migrations: &BTreeMap<String, String>) -> (String, bool) {
    let reversible = migrations.keys().any(|n| n.ends_with(".up.sql"));
    let highest = migrations
        .keys()
        .filter_map(|n| {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            let value: u128 = digits.parse().ok()?;
            Some((value, digits.len()))
        })
        .max();
    let version = match highest {
        Some((v, width)) => format!("{:0width$}", v + 1),
        None => "0001".into(),
    };
    (version, reversible)
}

/// Tables that migrations written by earlier splits moved into a schema, with
/// the schema (`ALTER TABLE .. SET SCHEMA ..`).
pub fn moved_tables(migrations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    migrations
        .values()
        .flat_map(|sql| statements(sql))
        .filter_map(|s| moved_table(&s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, top: &str, text: &str) -> Parsed {
        Parsed {
            rel: rel.into(),
            text: text.into(),
            ast: syn::parse_file(text).unwrap(),
            module_path: vec![top.into()],
            top: Some(top.into()),
        }
    }

    fn monolith() -> (BTreeMap<String, String>, Vec<Parsed>) {
        let migrations = BTreeMap::from([(
            "0001_init.sql".to_string(),
            "CREATE TABLE accounts (id BIGSERIAL PRIMARY KEY);\n\
             CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, account_id BIGINT REFERENCES accounts (id), body TEXT);\n\
             CREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql;\n\
             INSERT INTO posts (account_id) SELECT id FROM accounts;\n"
                .to_string(),
        )]);
        let parsed = vec![
            file(
                "src/posts.rs",
                "posts",
                "fn q() { let _ = (\"INSERT INTO posts (body) VALUES ($1)\", \"SELECT p.body FROM posts p JOIN accounts a ON a.id = p.account_id\"); }",
            ),
            file(
                "src/auth.rs",
                "auth",
                "fn q() {\n    let _ = \"INSERT INTO accounts DEFAULT VALUES\";\n    let _ = \"SELECT count(*) FROM public.posts\";\n}",
            ),
        ];
        (migrations, parsed)
    }

    fn cut(schema: Option<&str>) -> (DataChanges, CutReport) {
        let (migrations, parsed) = monolith();
        let routes = BTreeMap::from([
            ("auth".to_string(), vec!["/api/login".to_string()]),
            ("posts".to_string(), vec!["/api/posts".to_string()]),
        ]);
        let mut report = CutReport::default();
        let owned = BTreeMap::new();
        let changes = DataCut {
            migrations: &migrations,
            owned_elsewhere: &owned,
            earlier: &[],
            parsed: &parsed,
            module: "posts",
            service: "posts",
            dir: "migrations",
            schema,
            earlier_schemas: &[],
            routes: &routes,
        }
        .run(&mut report);
        (changes, report)
    }

    #[test]
    fn on_postgres_the_tables_move_into_the_schema_and_every_read_across_is_listed() {
        let (changes, report) = cut(Some("posts"));
        assert_eq!(report.tables, ["posts"]);
        let moves = &changes.monolith_files["migrations/0002_msgen_split_posts.sql"];
        assert!(
            moves.contains("CREATE SCHEMA IF NOT EXISTS \"posts\";\nALTER TABLE IF EXISTS \"posts\" SET SCHEMA \"posts\";\n"),
            "{moves}"
        );
        assert!(
            moves.contains(
                "ALTER DATABASE %I SET search_path = %s', current_database(), '\"public\", \"posts\"')"
            ) && moves.ends_with("SET search_path = \"public\", \"posts\";\n"),
            "{moves}"
        );
        assert!(changes.service_files.contains_key("migrations/README.md"));
        assert_eq!(
            report.cross_reads,
            [
                "src/posts.rs:1: the module reads `accounts`, owned by the monolith's module `auth`: call its API instead: /api/login; read in place for now through the search path (`accounts` stays in the monolith's schema)",
                "src/auth.rs:3: the monolith reads `posts`, which moves to schema `posts`; it is read there through the search path for now: call service `posts`'s API instead: /api/posts",
            ]
        );
        // A name pinned to `public.` would not follow its table.
        assert_eq!(
            report.human,
            ["src/auth.rs:3: names `public.posts`, but `posts` moves to schema `posts`, where that name no longer finds it: write `posts` (the search path finds it) or `posts.posts`"]
        );
    }

    #[test]
    fn on_sqlite_the_service_gets_copies_without_what_crosses_the_cut() {
        let (changes, report) = cut(None);
        let copy = &changes.service_files["migrations/0001_init.sql"];
        assert!(
            copy.contains(
                "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, account_id BIGINT, body TEXT)"
            ),
            "{copy}"
        );
        assert!(copy.contains("$$ BEGIN RETURN NEW; END $$"), "{copy}");
        assert!(!copy.contains("accounts"), "{copy}");
        let human = report.human.join("\n");
        for expected in [
            "foreign key to `accounts` dropped in the service's copy (`accounts` stays in the monolith)",
            "a statement uses `posts` and `accounts`: not copied",
            "`CREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql` names no table",
            "copy their rows into the service's database",
        ] {
            assert!(human.contains(expected), "{expected:?} not in:\n{human}");
        }
        assert!(changes.monolith_files.is_empty());
    }

    #[test]
    fn the_next_version_is_one_more_and_as_wide() {
        let m = |names: &[&str]| -> BTreeMap<String, String> {
            names
                .iter()
                .map(|n| (n.to_string(), String::new()))
                .collect()
        };
        assert_eq!(
            next_version(&m(&["0001_a.sql", "0009_b.sql"])),
            ("0010".into(), false)
        );
        assert_eq!(
            next_version(&m(&[
                "20240101120000_a.up.sql",
                "20240101120000_a.down.sql"
            ])),
            ("20240101120001".into(), true)
        );
        assert_eq!(next_version(&m(&["1_a.sql"])), ("2".into(), false));
        assert_eq!(next_version(&m(&[])), ("0001".into(), false));
    }
}
