//! The statements the generated code runs, in one place: a resource's reads and
//! writes, the consumer's record of handled events, and the auth service's users.
//! Each is written for its dialect (placeholders `$1` or `?`); the tables they
//! run on are [`super::ddl`]'s. Layout is for the reader of the generated repo:
//! one clause and one column per line where a hand edit to one column should
//! merge with a later field change.

use super::ddl::q;
use super::Dialect;
use crate::model::{Resource, OWNER_COLUMN};

/// The `i`-th bind parameter (from 1).
fn placeholder(dialect: Dialect, i: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${i}"),
        Dialect::Sqlite => "?".into(),
    }
}

/// A resource's statements.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResourceQueries {
    pub insert: String,
    pub select_one: String,
    /// Every row: the list's filters, order and page are added to it.
    pub select_all: String,
    pub count: String,
    pub update: String,
    pub delete: String,
}

impl ResourceQueries {
    /// The statements by the names of their `const` items in the repo.
    pub fn named(&self) -> [(&'static str, &str); 6] {
        [
            ("INSERT", &self.insert),
            ("SELECT_ONE", &self.select_one),
            ("SELECT_ALL", &self.select_all),
            ("COUNT", &self.count),
            ("UPDATE", &self.update),
            ("DELETE", &self.delete),
        ]
    }
}

/// Columns one per line, indented.
fn column_lines(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("    {c}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// The statements of resource `r` (its table is `r.plural`). The bind order is
/// the fields', then the owner (inserts), `created_at` and `updated_at`; an update
/// binds the fields, `updated_at`, then the id.
pub fn resource(dialect: Dialect, r: &Resource) -> ResourceQueries {
    let ph = |i: usize| placeholder(dialect, i);
    let table = q(&r.plural);
    let owner = r.owned.then(|| OWNER_COLUMN.to_string());
    let all_cols: Vec<String> = std::iter::once("id".to_string())
        .chain(r.fields.iter().map(|f| f.name.clone()))
        .chain(owner.clone())
        .chain(["created_at".to_string(), "updated_at".to_string()])
        .map(|c| q(&c))
        .collect();
    let select_list = column_lines(&all_cols);
    let n = r.fields.len();
    let insert_cols: Vec<String> = r
        .fields
        .iter()
        .map(|f| q(&f.name))
        .chain(owner.as_deref().map(q))
        .chain([q("created_at"), q("updated_at")])
        .collect();
    let insert_vals: Vec<String> = (1..=insert_cols.len()).map(ph).collect();
    let insert = format!(
        "INSERT INTO {table} (\n{}\n)\nVALUES ({})\nRETURNING\n{select_list}",
        column_lines(&insert_cols),
        insert_vals.join(", ")
    );
    let sets: Vec<String> = r
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .chain(["updated_at"])
        .enumerate()
        .map(|(i, c)| format!("{} = {}", q(c), ph(i + 1)))
        .collect();
    let update = format!(
        "UPDATE {table}\nSET\n{}\nWHERE \"id\" = {}\nRETURNING\n{select_list}",
        column_lines(&sets),
        ph(n + 2)
    );
    ResourceQueries {
        insert,
        select_one: format!(
            "SELECT\n{select_list}\nFROM {table}\nWHERE \"id\" = {}",
            ph(1)
        ),
        select_all: format!("SELECT\n{select_list}\nFROM {table}"),
        count: format!("SELECT COUNT(*)\nFROM {table}"),
        update,
        delete: format!("DELETE FROM {table}\nWHERE \"id\" = {}", ph(1)),
    }
}

/// The `ORDER BY` list of a sort on `column`; the id breaks ties, so that pages
/// never overlap.
pub fn order_by(column: &str, descending: bool) -> String {
    let dir = if descending { " DESC" } else { "" };
    if column == "id" {
        format!("{}{dir}", q(column))
    } else {
        format!("{}{dir}, \"id\"{dir}", q(column))
    }
}

/// A consumer's record of the events it handled (table `processed_events`):
/// whether one was seen, recording one (once), and how many were.
pub fn events(dialect: Dialect) -> [(&'static str, String); 3] {
    let ph = |i: usize| placeholder(dialect, i);
    [
        (
            "SEEN",
            format!(
                r#"SELECT COUNT(*) FROM "processed_events" WHERE "event_id" = {}"#,
                ph(1)
            ),
        ),
        (
            "RECORD",
            format!(
                r#"INSERT INTO "processed_events" ("event_id", "subject", "handled_at") VALUES ({}, {}, {}) ON CONFLICT ("event_id") DO NOTHING"#,
                ph(1),
                ph(2),
                ph(3)
            ),
        ),
        (
            "HANDLED",
            r#"SELECT COUNT(*) FROM "processed_events""#.into(),
        ),
    ]
}

/// The auth service's users (table `auth_users`): sign-up, look-up by email, and
/// making one an admin.
pub fn auth(dialect: Dialect) -> [(&'static str, String); 3] {
    let ph = |i: usize| placeholder(dialect, i);
    let cols = r#""id", "email", "password_hash", "created_at", "role""#;
    [
        (
            "INSERT",
            format!(
                r#"INSERT INTO "auth_users" ("email", "password_hash", "created_at") VALUES ({}, {}, {}) RETURNING {cols}"#,
                ph(1),
                ph(2),
                ph(3)
            ),
        ),
        (
            "BY_EMAIL",
            format!(
                r#"SELECT {cols} FROM "auth_users" WHERE "email" = {}"#,
                ph(1)
            ),
        ),
        (
            "GRANT_ADMIN",
            format!(
                r#"UPDATE "auth_users" SET "role" = 'admin' WHERE "email" = {}"#,
                ph(1)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(owned: bool) -> Resource {
        let p = crate::model::Project::parse(
            &format!("[project]\nname = \"x\"\n[[services]]\nname = \"auth\"\ntemplate = \"auth\"\n[[services]]\nname = \"a\"\n[[services.resources]]\nname = \"post\"\nowned = {owned}\nfields = {{ title = \"string\", views = \"i32\" }}\n"),
            std::path::Path::new("services.toml"),
        )
        .unwrap();
        p.service("a").unwrap().resources[0].clone()
    }

    #[test]
    fn a_resources_statements_bind_in_the_order_the_repo_binds() {
        let pg = resource(Dialect::Postgres, &post(false));
        assert_eq!(
            pg.insert,
            "INSERT INTO \"posts\" (\n    \"title\",\n    \"views\",\n    \"created_at\",\n    \"updated_at\"\n)\nVALUES ($1, $2, $3, $4)\nRETURNING\n    \"id\",\n    \"title\",\n    \"views\",\n    \"created_at\",\n    \"updated_at\""
        );
        assert!(pg.update.starts_with("UPDATE \"posts\"\nSET\n    \"title\" = $1,\n    \"views\" = $2,\n    \"updated_at\" = $3\nWHERE \"id\" = $4\n"), "{}", pg.update);
        assert_eq!(pg.delete, "DELETE FROM \"posts\"\nWHERE \"id\" = $1");
        let lite = resource(Dialect::Sqlite, &post(false));
        assert!(
            lite.insert.contains("VALUES (?, ?, ?, ?)"),
            "{}",
            lite.insert
        );
        assert!(!lite.named().iter().any(|(_, s)| s.contains('$')));
        let owned = resource(Dialect::Postgres, &post(true));
        assert!(
            owned
                .insert
                .contains(&format!("    \"{OWNER_COLUMN}\",\n    \"created_at\"")),
            "{}",
            owned.insert
        );
        assert!(
            owned.insert.contains("VALUES ($1, $2, $3, $4, $5)"),
            "{}",
            owned.insert
        );
        let set = owned.update.split("WHERE").next().unwrap();
        assert!(
            !set.contains(OWNER_COLUMN),
            "an owner is never changed: {set}"
        );
    }

    #[test]
    fn an_order_breaks_ties_by_id() {
        assert_eq!(order_by("id", false), "\"id\"");
        assert_eq!(order_by("id", true), "\"id\" DESC");
        assert_eq!(order_by("title", true), "\"title\" DESC, \"id\" DESC");
        assert_eq!(order_by("title", false), "\"title\", \"id\"");
    }

    #[test]
    fn events_and_users_take_their_dialects_placeholders() {
        let [_, (_, record), _] = events(Dialect::Sqlite);
        assert!(record.contains("VALUES (?, ?, ?) ON CONFLICT"), "{record}");
        let [(_, insert), (_, by_email), _] = auth(Dialect::Postgres);
        assert!(insert.contains("VALUES ($1, $2, $3) RETURNING"), "{insert}");
        assert!(by_email.ends_with("WHERE \"email\" = $1"), "{by_email}");
    }
}
