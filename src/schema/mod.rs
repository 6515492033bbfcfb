//! The database follows `services.toml` (SPEC §3.1).
//!
//! For every owner of a database (a service, or the monolith whose modules share
//! one) msgen keeps a [`Record`] in `.msgen/schema/<owner>.toml`: the tables and
//! columns its migrations produce and the migration files that account for them.
//! A render compares the record with the tables the model wants ([`wanted`]) and
//! writes new, numbered migrations for the difference ([`evolve`]), for PostgreSQL
//! and SQLite alike; what would lose data is refused until confirmed.
//!
//! - [`ddl`]: the SQL of a column, a table, and of each change, per dialect;
//! - [`diff`]: from a recorded schema to a wanted one, as steps, or problems;
//! - [`read`]: replays migration files (msgen's own, and the user's) onto a schema;
//! - [`record`]: the record's file format.

pub mod ddl;
pub mod diff;
pub mod owner;
pub mod queries;
pub mod read;
pub mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::context::ref_target;
use crate::model::{DatabaseKind, FieldType, Project, RefTarget, Service, Template, OWNER_COLUMN};

pub use diff::{evolve, Evolution, Options, Problem};
pub use record::Record;

/// What a render needs from disk and from the command line: for its schema work,
/// and whether code of the user's uses sqlx's macros.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Which crates' macros code of the user's uses (`crate::macro_uses`): the
    /// workspace keeps their `macros` features on.
    pub macros: crate::macro_uses::Uses,
    /// Per owner (a service's name, or `monolith`): its record and migrations.
    pub owners: BTreeMap<String, owner::Disk>,
    pub options: Options,
    /// Owners whose schema the user's own migrations brought where `services.toml`
    /// says (`--accept-schema`).
    pub accept: BTreeSet<String>,
}

pub fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "postgres",
        Dialect::Sqlite => "sqlite",
    }
}

/// Where a consumer remembers the events it handled, for idempotency.
pub const EVENTS_TABLE: &str = "processed_events";
/// The auth template's table; not `users`, which a `user` resource may want.
pub const AUTH_TABLE: &str = "auth_users";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn of(kind: DatabaseKind) -> Option<Self> {
        match kind {
            DatabaseKind::Postgres => Some(Self::Postgres),
            DatabaseKind::Sqlite => Some(Self::Sqlite),
            DatabaseKind::None => None,
        }
    }
}

/// A column's type as msgen thinks of it: the field type of `services.toml`, the
/// generated `id`, or a type msgen read in a migration and has no name for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColType {
    /// `BIGINT GENERATED ALWAYS AS IDENTITY` / `INTEGER ... AUTOINCREMENT` key.
    Id,
    String,
    Text,
    Email,
    I32,
    I64,
    F64,
    Bool,
    Datetime,
    /// Read from a migration, as the lower-cased SQL type (e.g. `jsonb`).
    Sql(String),
}

impl ColType {
    pub fn of(ty: &FieldType) -> Self {
        match ty {
            FieldType::String => Self::String,
            FieldType::Text => Self::Text,
            FieldType::Email => Self::Email,
            FieldType::I32 => Self::I32,
            FieldType::I64 | FieldType::Ref(_) => Self::I64,
            FieldType::F64 => Self::F64,
            FieldType::Bool => Self::Bool,
            FieldType::DateTime => Self::Datetime,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Id => "id".into(),
            Self::String => "string".into(),
            Self::Text => "text".into(),
            Self::Email => "email".into(),
            Self::I32 => "i32".into(),
            Self::I64 => "i64".into(),
            Self::F64 => "f64".into(),
            Self::Bool => "bool".into(),
            Self::Datetime => "datetime".into(),
            Self::Sql(t) => format!("sql:{t}"),
        }
    }

    /// Reads [`ColType::name`] back: a field type of `services.toml` (not `ref:`,
    /// which is stored as `i64`), `id`, or `sql:<type>`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "id" {
            return Some(Self::Id);
        }
        if let Some(t) = s.strip_prefix("sql:") {
            // SQLite lets a column have no type at all: `sql:`.
            return Some(Self::Sql(t.trim().to_ascii_lowercase()));
        }
        FieldType::parse(s)
            .filter(|t| !matches!(t, FieldType::Ref(_)))
            .map(|t| Self::of(&t))
    }

    /// The SQL type in `dialect` (for [`ColType::Id`], the type of its key column).
    pub fn sql(&self, dialect: Dialect) -> String {
        let pg = dialect == Dialect::Postgres;
        match self {
            Self::String | Self::Text | Self::Email => "TEXT",
            Self::I32 => "INTEGER",
            Self::Id | Self::I64 if pg => "BIGINT",
            Self::Id | Self::I64 => "INTEGER",
            Self::F64 if pg => "DOUBLE PRECISION",
            Self::F64 => "REAL",
            Self::Bool => "BOOLEAN",
            Self::Datetime if pg => "TIMESTAMPTZ",
            Self::Datetime => "TEXT",
            Self::Sql(t) => return t.to_ascii_uppercase(),
        }
        .to_string()
    }
}

impl fmt::Display for ColType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    pub nullable: bool,
    /// An SQL literal, as the schema reader normalises it (see [`read::literal`]).
    pub default: Option<String>,
    pub unique: bool,
    pub primary_key: bool,
    /// A foreign key to `<table>("id")`, `ON DELETE CASCADE`.
    pub references: Option<String>,
    /// Made by a hand-written migration, not declared in `services.toml`: msgen
    /// keeps it and never drops it.
    pub by_hand: bool,
    /// The user's definition as written, for a column msgen read in their SQL
    /// (`COLLATE`, `CHECK` ... kept when SQLite rebuilds the table).
    pub raw: Option<String>,
}

impl Column {
    pub fn new(name: &str, ty: ColType) -> Self {
        Self {
            name: name.to_string(),
            primary_key: ty == ColType::Id,
            ty,
            nullable: false,
            default: None,
            unique: false,
            references: None,
            by_hand: false,
            raw: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// Made by a hand-written migration, not declared in `services.toml`.
    pub by_hand: bool,
    /// Indexes made by hand-written migrations: a SQLite rebuild makes them again.
    pub indexes: Vec<Named>,
    /// Table constraints of the user's msgen has no flag for (a `UNIQUE` or `CHECK`
    /// over several columns ...), as written: a SQLite rebuild keeps them.
    pub constraints: Vec<String>,
    /// Triggers on the table (the user's): a SQLite rebuild would lose them, so
    /// it is refused while there are any.
    pub triggers: Vec<String>,
    /// Statements of the user's about the table that msgen could not read: no
    /// change is made to it until `--accept-schema` says what it is.
    pub unread: Vec<String>,
}

/// An index or a view, as a migration wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    /// The statement, without its `;`.
    pub sql: String,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Tables in the order their migrations created them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: Vec<Table>,
    /// Views of the user's: a SQLite rebuild of a table they read drops and makes
    /// them again.
    pub views: Vec<Named>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }
}

/// One database msgen keeps in step: a service's, or the monolith's (shared by its
/// modules).
#[derive(Debug, Clone)]
pub struct Owner {
    /// The record's name: the service's, or `monolith`.
    pub name: String,
    /// Where its `migrations/` folder is, relative to the project root.
    pub dir: String,
    pub dialect: Dialect,
    pub wanted: Vec<Wanted>,
}

/// Every owner of a database in `project` that msgen renders (not an adopted
/// service's, nor an adopted monolith's: their code is the user's).
pub fn owners(project: &Project) -> Vec<Owner> {
    let mut out = Vec::new();
    if project.monolith.as_ref().is_some_and(|m| !m.is_external()) {
        if let Some(dialect) = Dialect::of(project.default_database) {
            let modules: Vec<&Service> = project.modules().collect();
            out.push(Owner {
                name: "monolith".into(),
                dir: "monolith".into(),
                dialect,
                wanted: wanted(project, &modules),
            });
        }
    }
    for s in project.standalone().filter(|s| !s.adopted()) {
        if let Some(dialect) = Dialect::of(s.database) {
            out.push(Owner {
                name: s.name.as_str().to_string(),
                dir: format!("services/{}", s.name.as_str()),
                dialect,
                wanted: wanted(project, &[s]),
            });
        }
    }
    out
}

/// A table the model wants, with what the messages about it need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub table: Table,
    /// The service (or module) that declares it.
    pub service: String,
    /// Whose migrations make it: the service, or `monolith` for a module's
    /// (what `msgen add-migration` takes).
    pub owner: String,
    /// The resource it stores, if any (not msgen's own tables).
    pub resource: Option<String>,
    /// New column name → the name it had (`renamed_from`).
    pub renamed: BTreeMap<String, String>,
}

impl Wanted {
    /// Where a column is declared in `services.toml`, for messages.
    pub fn key(&self, column: &str) -> String {
        match &self.resource {
            Some(r) => format!("services.{}.resources.{r}.fields.{column}", self.service),
            None => format!("services.{} (table `{}`)", self.service, self.table.name),
        }
    }
}

/// The tables `owners` (a service, or the modules sharing the monolith's database)
/// want, in the order their migrations create them.
pub fn wanted(project: &Project, owners: &[&Service]) -> Vec<Wanted> {
    let mut out = Vec::new();
    for s in owners {
        if s.database == DatabaseKind::None {
            continue;
        }
        let service = s.name.as_str().to_string();
        let owner = match s.in_monolith() {
            true => "monolith".to_string(),
            false => service.clone(),
        };
        if s.template == Template::Auth {
            out.push(Wanted {
                table: auth_table(),
                service: service.clone(),
                owner: owner.clone(),
                resource: None,
                renamed: BTreeMap::new(),
            });
        }
        for r in &s.resources {
            let mut columns = vec![Column::new("id", ColType::Id)];
            let mut renamed = BTreeMap::new();
            for f in &r.fields {
                let mut c = Column::new(&f.name, ColType::of(&f.ty));
                c.nullable = f.optional;
                c.default = f.default.as_ref().map(|d| d.sql());
                if let FieldType::Ref(target) = &f.ty {
                    if ref_target(project, s, target) == RefTarget::Local {
                        c.references = project.resource(target).map(|t| t.plural.clone());
                    }
                }
                if let Some(old) = &f.renamed_from {
                    renamed.insert(f.name.clone(), old.clone());
                }
                columns.push(c);
            }
            if r.owned {
                // Nullable: rows made before the resource was owned have no owner,
                // and only an admin changes them.
                let mut owner = Column::new(OWNER_COLUMN, ColType::String);
                owner.nullable = true;
                columns.push(owner);
            }
            columns.push(Column::new("created_at", ColType::Datetime));
            columns.push(Column::new("updated_at", ColType::Datetime));
            out.push(Wanted {
                table: Table {
                    name: r.plural.clone(),
                    columns,
                    by_hand: false,
                    indexes: Vec::new(),
                    constraints: Vec::new(),
                    triggers: Vec::new(),
                    unread: Vec::new(),
                },
                service: service.clone(),
                owner: owner.clone(),
                resource: Some(r.name.clone()),
                renamed,
            });
        }
        if !s.consumes.is_empty() && !out.iter().any(|w| w.table.name == EVENTS_TABLE) {
            out.push(Wanted {
                table: events_table(),
                service,
                owner,
                resource: None,
                renamed: BTreeMap::new(),
            });
        }
    }
    out
}

fn auth_table() -> Table {
    let mut email = Column::new("email", ColType::String);
    email.unique = true;
    Table {
        name: AUTH_TABLE.into(),
        columns: vec![
            Column::new("id", ColType::Id),
            email,
            Column::new("password_hash", ColType::String),
            Column::new("created_at", ColType::Datetime),
            role_column(),
        ],
        by_hand: false,
        indexes: Vec::new(),
        constraints: Vec::new(),
        triggers: Vec::new(),
        unread: Vec::new(),
    }
}

/// `admin` or `user`: what the auth service puts in its tokens. Every account
/// starts as `user`; `grant-admin` makes an admin.
fn role_column() -> Column {
    let mut role = Column::new("role", ColType::String);
    role.default = Some("'user'".into());
    role
}

fn events_table() -> Table {
    let mut id = Column::new("event_id", ColType::String);
    id.primary_key = true;
    Table {
        name: EVENTS_TABLE.into(),
        columns: vec![
            id,
            Column::new("subject", ColType::String),
            Column::new("handled_at", ColType::Datetime),
        ],
        by_hand: false,
        indexes: Vec::new(),
        constraints: Vec::new(),
        triggers: Vec::new(),
        unread: Vec::new(),
    }
}
