//! The validated model of a `services.toml`.
//!
//! [`Project::parse`] turns raw serde structs into newtypes whose invariants hold by
//! construction: a [`ServiceName`] is a safe path component and a valid crate name, a
//! [`Port`] is in range and unique, every dependency and reference points at something
//! that exists. Every problem is collected, so one run of `msgen validate` lists them
//! all. Name variants (snake, Pascal, upper case, crate, host) are derived here once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::diagnostic::{did_you_mean, utf8_error, ConfigError};
use indexmap::IndexMap;

use crate::raw::RawConfig;

mod syntax;
mod validate;

use syntax::{blank_entry, syntax_diagnostic};

pub const DEFAULT_GATEWAY_PORT: u16 = 8080;
pub const DEFAULT_MONOLITH_PORT: u16 = 3000;
pub const FIRST_SERVICE_PORT: u16 = 3001;
pub const DEFAULT_GATEWAY_TIMEOUT_SECS: u64 = 30;

/// Names a service may not take: they are crates or directories of the workspace
/// itself, or words that break the Rust code derived from them.
const RESERVED_NAMES: &[&str] = &[
    "gateway", "common", "monolith", "std", "core", "alloc", "test", "tests", "target", "services",
    "docs", "deploy", "config", "db", "routes", "startup", "state", "clients", "handlers",
    "models", "repo", "api", "main", "lib", "events",
];

/// Packages of the generated system's dependency graph named like a service's
/// package (`<name>-service`); tests/names.rs checks the list against Cargo.lock.
pub const DEPENDENCY_PACKAGES: &[&str] = &["tower-service"];

/// Resource names that would collide with generated modules, and plurals that would
/// collide with generated tables.
const RESERVED_RESOURCES: &[&str] = &[
    "health", "events", "auth", "users", "mod", "handlers", "models", "repo",
];
/// Resources whose type would shadow a type of Rust's prelude, which derive macros
/// (serde, sqlx, utoipa) and the generated code name without a path.
const PRELUDE_TYPES: &[&str] = &["option", "result", "string", "vec"];
const RESERVED_TABLES: &[&str] = &["auth_users", "processed_events"];

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen", "union",
];

/// Columns every resource table has already.
const RESERVED_FIELDS: &[&str] = &["id", "created_at", "updated_at"];
/// PostgreSQL's system columns: no table may have a column of these names.
const SYSTEM_COLUMNS: &[&str] = &["tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"];

/// PostgreSQL's limits: 1600 columns a table (SQLite's default is 2000), and
/// identifiers of at most 63 bytes, longer ones being silently cut (two databases
/// whose names differ after byte 63 would be one).
const MAX_COLUMNS: usize = 1600;
const MAX_IDENTIFIER_BYTES: usize = 63;
/// Fields a resource may have: fewer than the columns, because the OpenAPI schema
/// that utoipa derives is built in one stack frame of about 5 KiB a field in a debug
/// build, and a test thread has 2 MiB (330 fields overflowed it; tests/names.rs
/// builds and runs a resource at this limit).
pub const MAX_FIELDS: usize = 250;

pub const DATABASE_KINDS: &[&str] = &["postgres", "sqlite", "none"];
pub const TEMPLATES: &[&str] = &["crud", "auth"];
pub const FIELD_TYPES: &[&str] = &[
    "string",
    "text",
    "email",
    "i32",
    "i64",
    "f64",
    "bool",
    "datetime",
    "ref:<resource>",
];

/// A validated project name: lower-case letters, digits and single inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_kebab(s)?;
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn snake(&self) -> String {
        self.0.replace('-', "_")
    }
}

/// A validated service name; see [`check_kebab`] for the rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_kebab(s)?;
        if RESERVED_NAMES.contains(&s) {
            return Err(format!(
                "`{s}` is reserved (the generated workspace uses it); reserved names: {}",
                RESERVED_NAMES.join(", ")
            ));
        }
        if DEPENDENCY_PACKAGES.contains(&format!("{s}-service").as_str()) {
            return Err(format!(
                "`{s}` is reserved: it would make a package `{s}-service`, the name of a crate the generated system depends on (cargo could not tell them apart)"
            ));
        }
        let snake = s.replace('-', "_");
        if RUST_KEYWORDS.contains(&snake.as_str()) {
            return Err(format!("`{s}` is a Rust keyword and cannot name a module"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `user-profile` → `user_profile` (modules, database names).
    pub fn snake(&self) -> String {
        self.0.replace('-', "_")
    }
    /// `user-profile` → `UserProfile`.
    pub fn pascal(&self) -> String {
        pascal(&self.0)
    }
    /// `user-profile` → `USER_PROFILE` (environment variables).
    pub fn upper(&self) -> String {
        self.snake().to_uppercase()
    }
    /// Package and binary name, also the compose/Kubernetes host name: `user-service`.
    pub fn crate_name(&self) -> String {
        format!("{}-service", self.0)
    }
}

/// A TCP port a generated binary listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Port(u16);

/// Ports no generated binary may listen on: the local run (the generated README,
/// `cargo test`) has PostgreSQL and NATS on them, and the gateway serves its metrics
/// on 9464 whatever its own port.
const RESERVED_PORTS: &[(u16, &str)] = &[
    (
        4222,
        "NATS, which the generated system's local run and tests use",
    ),
    (
        5432,
        "PostgreSQL, which the generated system's local run and tests use",
    ),
    (9464, "the gateway's metrics endpoint (its METRICS_PORT)"),
];

impl Port {
    pub fn parse(n: i64) -> Result<Self, String> {
        if !(1024..=65535).contains(&n) {
            return Err(format!(
                "{n} is out of range; accepted: 1024..=65535 (ports below 1024 need root, and the containers run as non-root)"
            ));
        }
        if let Some((_, what)) = RESERVED_PORTS.iter().find(|(p, _)| i64::from(*p) == n) {
            let taken: Vec<String> = RESERVED_PORTS.iter().map(|(p, _)| p.to_string()).collect();
            return Err(format!(
                "port {n} is taken by {what}; accepted: 1024..=65535 except {}",
                taken.join(", ")
            ));
        }
        Ok(Self(n as u16))
    }

    /// The first port from 3001 up that `taken` does not hold and that is not reserved.
    pub fn first_free(taken: impl Fn(u16) -> bool) -> Option<Self> {
        (FIRST_SERVICE_PORT..=u16::MAX)
            .find(|p| !taken(*p) && RESERVED_PORTS.iter().all(|(r, _)| r != p))
            .map(Self)
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

/// The port a new service gets: [`Port::first_free`], or 3001 when every port is
/// taken (validation then names the collision).
pub fn free_port(taken: impl Fn(u16) -> bool) -> u16 {
    Port::first_free(taken).map_or(FIRST_SERVICE_PORT, Port::get)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
    None,
}

impl DatabaseKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            "none" => Some(Self::None),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::None => "none",
        }
    }
}

/// Major versions of the crates whose types generated code is written against.
/// An adopted monolith brings its own, and one workspace should build one of each:
/// `split --from` sets these from the monolith's Cargo.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Majors {
    pub axum: AxumMajor,
    pub sqlx: SqlxMajor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AxumMajor {
    /// `:param` routes, no `serve::Listener`.
    V07,
    #[default]
    V08,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlxMajor {
    #[default]
    V08,
    /// Dynamic SQL must be asserted safe; otherwise as 0.8 for what msgen writes.
    V09,
}

pub const AXUM_MAJORS: &[&str] = &["0.7", "0.8"];
pub const SQLX_MAJORS: &[&str] = &["0.8", "0.9"];

impl AxumMajor {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0.7" => Some(Self::V07),
            "0.8" => Some(Self::V08),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V07 => "0.7",
            Self::V08 => "0.8",
        }
    }
    /// utoipa-axum's line for this axum.
    pub fn utoipa_axum(self) -> &'static str {
        match self {
            Self::V07 => "0.1",
            Self::V08 => "0.2",
        }
    }
}

impl SqlxMajor {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0.8" => Some(Self::V08),
            "0.9" => Some(Self::V09),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V08 => "0.8",
            Self::V09 => "0.9",
        }
    }
}

/// The major of a Cargo manifest's `[dependencies] <name>` requirement, if any.
pub fn dependency_major(manifest: &toml_edit::DocumentMut, name: &str) -> Option<String> {
    let dep = manifest.get("dependencies")?.get(name)?;
    let req = dep
        .as_str()
        .or_else(|| dep.get("version").and_then(|v| v.as_str()))?;
    requirement_major(req)
}

/// The major (`0.7`, `1`) of a Cargo version requirement such as `^0.7.4` or `1.2`.
pub fn requirement_major(req: &str) -> Option<String> {
    let v = req.trim().trim_start_matches(['^', '=', '~', ' ']);
    let mut parts = v.split('.');
    let first = parts.next()?.trim();
    first.parse::<u64>().ok()?;
    if first == "0" {
        let second = parts.next()?.trim();
        second.parse::<u64>().ok()?;
        Some(format!("0.{second}"))
    } else {
        Some(first.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    Crud,
    Auth,
}

impl Template {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crud" => Some(Self::Crud),
            "auth" => Some(Self::Auth),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crud => "crud",
            Self::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String,
    Text,
    Email,
    I32,
    I64,
    F64,
    Bool,
    DateTime,
    /// The id of a resource, in this service or in one it depends on.
    Ref(String),
}

impl FieldType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "text" => Self::Text,
            "email" => Self::Email,
            "i32" => Self::I32,
            "i64" => Self::I64,
            "f64" => Self::F64,
            "bool" => Self::Bool,
            "datetime" => Self::DateTime,
            _ => {
                let target = s.strip_prefix("ref:")?;
                check_snake(target).ok()?;
                Self::Ref(target.to_string())
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    /// What rows that exist get when the field is added or made required.
    pub default: Option<DefaultValue>,
    /// The field's former name (`renamed_from`): a rename, not a drop and an add.
    pub renamed_from: Option<String>,
}

/// A field's default, checked against its type.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Eq for DefaultValue {}

impl DefaultValue {
    /// The value as an SQL literal, written as the schema reader normalises it.
    pub fn sql(&self) -> String {
        match self {
            Self::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Self::Int(i) => i.to_string(),
            Self::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }

    /// Checks a TOML value against the field's type.
    fn parse(v: &toml::Value, ty: &FieldType) -> Result<Self, String> {
        use toml::Value as V;
        // No database keeps a NUL in text the same way (PostgreSQL refuses one).
        if let V::String(s) = v {
            if s.contains('\0') {
                return Err(
                    "a default cannot hold a NUL character (\\u0000): PostgreSQL's text refuses it"
                        .into(),
                );
            }
        }
        let what = match ty {
            FieldType::String => "a string of at most 255 characters",
            FieldType::Text => "a string of at most 65535 characters",
            FieldType::Email => "a string",
            FieldType::I32 => "an integer between -2147483648 and 2147483647",
            FieldType::I64 => "an integer",
            FieldType::F64 => "a number",
            FieldType::Bool => "true or false",
            FieldType::DateTime => {
                "an RFC 3339 date and time in a string, e.g. \"2024-01-01T00:00:00Z\""
            }
            FieldType::Ref(_) => {
                return Err("a reference takes no default: make it optional instead".into())
            }
        };
        let value = match (ty, v) {
            (FieldType::String, V::String(s)) if s.chars().count() <= 255 => {
                Some(Self::Str(s.clone()))
            }
            (FieldType::Text, V::String(s)) if s.chars().count() <= 65_535 => {
                Some(Self::Str(s.clone()))
            }
            (FieldType::Email, V::String(s)) => Some(Self::Str(s.clone())),
            (FieldType::DateTime, V::String(s)) if is_rfc3339(s) => Some(Self::Str(s.clone())),
            (FieldType::I32, V::Integer(i)) if i32::try_from(*i).is_ok() => Some(Self::Int(*i)),
            (FieldType::I64, V::Integer(i)) => Some(Self::Int(*i)),
            (FieldType::F64, V::Integer(i)) => Some(Self::Float(*i as f64)),
            (FieldType::F64, V::Float(f)) if f.is_finite() => Some(Self::Float(*f)),
            (FieldType::Bool, V::Boolean(b)) => Some(Self::Bool(*b)),
            _ => None,
        };
        value.ok_or_else(|| format!("default {v} does not fit the type: expected {what}"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, as chrono's `DateTime<Utc>` reads it.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    if !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// Where a `ref:` field points once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    /// A resource of the same service: a real foreign key.
    Local,
    /// A resource of another service: checked through its REST client.
    Remote(ServiceName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// snake_case singular, e.g. `blog_post`.
    pub name: String,
    /// snake_case plural, the URL segment and the table name, e.g. `blog_posts`.
    pub plural: String,
    pub fields: Vec<Field>,
    /// Rows carry their creator's user id (`owner_id`, from the token): only they
    /// or an admin update or delete them.
    pub owned: bool,
    /// The role each operation needs beyond a valid token (`user`, the default).
    pub roles: BTreeMap<Operation, Role>,
}

/// What a caller does to a resource, as `roles` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// List and get.
    Read,
    Create,
    /// PUT and PATCH.
    Update,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 4] = [Self::Read, Self::Create, Self::Update, Self::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// A role a token carries: every signed-in user has `user`; `admin` is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub const ALL: [Role; 2] = [Self::User, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// The column of an owned resource's rows that holds their creator's user id.
pub const OWNER_COLUMN: &str = "owner_id";

impl Resource {
    /// The role `op` needs.
    pub fn role(&self, op: Operation) -> Role {
        self.roles.get(&op).copied().unwrap_or(Role::User)
    }

    /// Whether the handlers need to know who calls: to record or check an owner,
    /// or to check a role.
    pub fn guarded(&self) -> bool {
        self.owned || self.roles.values().any(|r| *r == Role::Admin)
    }

    pub fn pascal(&self) -> String {
        pascal(&self.name)
    }
    /// The URL segment: `blog_posts` → `blog-posts`.
    pub fn path_segment(&self) -> String {
        self.plural.replace('_', "-")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    pub port: Port,
    pub database: DatabaseKind,
    pub template: Template,
    pub depends_on: Vec<ServiceName>,
    /// The gateway requires a valid JWT for this service's routes unless public.
    pub public: bool,
    /// What the service is to msgen: what it renders for it and how it is routed.
    pub kind: ServiceKind,
    /// For adopted services: the path prefixes the gateway forwards unchanged.
    pub paths: Vec<String>,
    /// For adopted services: exact routes (`/api/things/{id}/children`) the
    /// gateway forwards unchanged, more specific ones first.
    pub routes: Vec<String>,
    /// For adopted services: what the code reads from the environment.
    pub env: Vec<EnvVar>,
    /// For adopted services: the schema of the monolith's database that holds its
    /// tables; `None` is a database of its own.
    pub schema: Option<String>,
    /// Event subjects published / consumed over NATS JetStream.
    pub publishes: Vec<String>,
    pub consumes: Vec<String>,
    pub resources: Vec<Resource>,
}

/// What a service is to msgen, from its `monolith`, `split_from` and `adopted` keys
/// (which exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// A service msgen generates, deployed on its own.
    Service,
    /// A module of the generated monolith (`monolith = true`): its code lives in the
    /// monolith's crate until `msgen split` moves it out.
    Module,
    /// A service `msgen split` extracted from the generated monolith
    /// (`split_from = "monolith"`): the monolith's old paths still reach it.
    SplitFromMonolith,
    /// Code moved out of a monolith msgen did not generate (`adopted = true`): msgen
    /// renders its deployment and gateway routes, never its code.
    Adopted,
}

impl Service {
    /// A module of the monolith, not a service of its own (yet).
    pub fn in_monolith(&self) -> bool {
        self.kind == ServiceKind::Module
    }

    /// Moved out of a monolith msgen did not generate: its code is the user's.
    pub fn adopted(&self) -> bool {
        self.kind == ServiceKind::Adopted
    }

    /// Path prefixes under which the gateway forwards to this service.
    pub fn route_prefixes(&self) -> Vec<String> {
        if self.adopted() {
            return self.paths.clone();
        }
        self.route_segments()
            .into_iter()
            .map(|s| format!("/api/v1/{s}"))
            .collect()
    }

    /// The first path segment under `/api/v1/` of each route prefix, each once: a
    /// service `orders` with a resource `order` serves `/api/v1/orders` itself.
    pub fn route_segments(&self) -> Vec<String> {
        let mut segments = vec![self.name.as_str().to_string()];
        for r in &self.resources {
            let segment = r.path_segment();
            if !segments.contains(&segment) {
                segments.push(segment);
            }
        }
        segments
    }

    /// Where the service says which service it is: `/api/v1/<name>`, unless one of
    /// its resources is listed there (`orders` serving `order`), then below it.
    pub fn info_path(&self) -> String {
        let base = format!("/api/v1/{}", self.name.as_str());
        if self
            .resources
            .iter()
            .any(|r| r.path_segment() == self.name.as_str())
        {
            format!("{base}/info")
        } else {
            base
        }
    }

    /// Prefixes the monolith serves it under, without the version (`/api/posts`):
    /// the paths of the article's monolith, kept working after a split.
    pub fn legacy_prefixes(&self) -> Vec<String> {
        if !matches!(
            self.kind,
            ServiceKind::Module | ServiceKind::SplitFromMonolith
        ) {
            return Vec::new();
        }
        self.route_segments()
            .into_iter()
            .map(|s| format!("/api/{s}"))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monolith {
    pub port: Port,
    /// A monolith msgen did not generate, adopted by `msgen split --from`.
    pub external: Option<ExternalMonolith>,
}

/// Where an adopted monolith lives; msgen never renders into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMonolith {
    /// Relative to the project directory, `/`-separated.
    pub path: String,
    /// Its Cargo package and binary name.
    pub package: String,
    /// What its code reads from the environment (besides what msgen sets).
    pub env: Vec<EnvVar>,
}

/// An environment variable adopted code reads: compose, Kubernetes and
/// `.env.example` pass it on; without a default, it must be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// What the code uses when it is unset (as its source says).
    pub default: Option<String>,
}

impl Monolith {
    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub port: Port,
    pub timeout_secs: u64,
}

/// A whole validated `services.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: ProjectName,
    pub default_database: DatabaseKind,
    pub majors: Majors,
    pub gateway: Gateway,
    pub monolith: Option<Monolith>,
    pub services: Vec<Service>,
}

impl Project {
    /// Services deployed on their own (everything but the monolith's modules).
    pub fn standalone(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|s| !s.in_monolith())
    }

    /// The monolith's modules.
    pub fn modules(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|s| s.in_monolith())
    }

    /// Reads and validates a `services.toml` file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_bytes(&bytes, path)
    }

    pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Self, ConfigError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text, path),
            Err(e) => Err(ConfigError::Invalid(vec![utf8_error(path, bytes, &e)])),
        }
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // TOML syntax first: after a syntax error nothing else can be trusted.
        if let Err(e) = text.parse::<toml::Table>() {
            return Err(ConfigError::Invalid(vec![syntax_diagnostic(
                &e, text, text, path,
            )]));
        }
        // Shape errors (an unknown key, a string where a number goes) stop serde at
        // the first one; each is reported, its line blanked in a copy, and the copy
        // read again, so that one run reports them all. Blanking keeps every other
        // line and column where it was.
        let mut shape_errors = Vec::new();
        let mut current = text.to_string();
        let raw: RawConfig = loop {
            match toml::from_str::<RawConfig>(&current) {
                Ok(raw) => break raw,
                Err(e) => {
                    let d = syntax_diagnostic(&e, &current, text, path);
                    // A problem of the whole document (no `[project]`) comes back
                    // however the copy is blanked: once is enough.
                    if shape_errors.last() == Some(&d) {
                        return Err(ConfigError::Invalid(shape_errors));
                    }
                    shape_errors.push(d);
                    let blanked = e
                        .span()
                        .filter(|_| shape_errors.len() < 50)
                        .and_then(|span| blank_entry(&current, span.start))
                        .filter(|b| b.parse::<toml::Table>().is_ok());
                    match blanked {
                        Some(b) => current = b,
                        None => return Err(ConfigError::Invalid(shape_errors)),
                    }
                }
            }
        };
        validate::validate(raw, text, path, shape_errors).map_err(ConfigError::Invalid)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name.as_str() == name)
    }

    /// The service that owns the resource named `resource`.
    pub fn owner_of(&self, resource: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.resources.iter().any(|r| r.name == resource))
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.services
            .iter()
            .flat_map(|s| &s.resources)
            .find(|r| r.name == name)
    }

    pub fn auth_service(&self) -> Option<&Service> {
        self.services.iter().find(|s| s.template == Template::Auth)
    }

    /// The PostgreSQL database (or SQLite file stem) of a service: `<project>_<service>`.
    pub fn database_name(&self, s: &Service) -> String {
        Self::database_name_of(&self.name, s)
    }

    fn database_name_of(project: &ProjectName, s: &Service) -> String {
        database_name(project, &s.name)
    }

    /// The schemas of the adopted monolith's database, in the order in which
    /// PostgreSQL looks up a table for `s` (`None`: the monolith): its own first,
    /// then those of the other services split out of it, then the monolith's
    /// `public`. Table names are unique across them (they all come from the
    /// monolith's one schema), so a table another context owns is read where it is.
    pub fn search_path(&self, s: Option<&Service>) -> Vec<String> {
        let own = s.and_then(|s| s.schema.as_deref());
        let others = self
            .services
            .iter()
            .filter_map(|o| o.schema.clone())
            .filter(|o| Some(o.as_str()) != own);
        let public = std::iter::once("public".to_string());
        match s {
            None => monolith_search_path(others),
            Some(_) => own
                .map(str::to_string)
                .into_iter()
                .chain(others)
                .chain(public)
                .collect(),
        }
    }

    pub fn database_kinds(&self) -> BTreeSet<DatabaseKind> {
        self.services.iter().map(|s| s.database).collect()
    }

    /// The first port from 3001 up that neither the gateway, the monolith nor a
    /// service uses.
    pub fn next_free_port(&self) -> u16 {
        self.next_free_port_besides(&[])
    }

    /// [`Project::next_free_port`], also clear of `others` (ports of processes the
    /// file does not declare yet, e.g. a monolith being adopted).
    pub fn next_free_port_besides(&self, others: &[u16]) -> u16 {
        let used: BTreeSet<u16> = self
            .services
            .iter()
            .map(|s| s.port.get())
            .chain([self.gateway.port.get()])
            .chain(self.monolith.as_ref().map(|m| m.port.get()))
            .chain(others.iter().copied())
            .collect();
        free_port(|p| used.contains(&p))
    }
}

/// The monolith's search path given the schemas of the services split out of it:
/// its own `public` first, then theirs.
pub fn monolith_search_path(schemas: impl IntoIterator<Item = String>) -> Vec<String> {
    std::iter::once("public".to_string())
        .chain(schemas)
        .collect()
}

/// `<project>_<service>`, in snake case.
fn database_name(project: &ProjectName, service: &ServiceName) -> String {
    format!("{}_{}", project.snake(), service.snake())
}

/// Lower-case letters, digits and inner single hyphens, starting with a letter.
fn check_kebab(s: &str) -> Result<(), String> {
    let accepted = "accepted: lower-case letters, digits and single '-' between them, starting with a letter, at most 40 characters";
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a valid name; {accepted}", s))
    }
}

/// snake_case identifiers for resources and fields.
fn check_snake(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.ends_with('_')
        && !s.contains("__");
    if !ok {
        return Err(format!(
            "{s:?} is not a valid identifier; accepted: snake_case (lower-case letters, digits and single '_'), starting with a letter, at most 40 characters"
        ));
    }
    if RUST_KEYWORDS.contains(&s) {
        return Err(format!("`{s}` is a Rust keyword"));
    }
    Ok(())
}

/// `user-profile` or `user_profile` → `UserProfile`.
pub(crate) fn pascal(s: &str) -> String {
    heck::ToUpperCamelCase::to_upper_camel_case(s)
}

/// English plural good enough for URL segments; `plural = "..."` overrides it.
pub fn pluralize(s: &str) -> String {
    if s.ends_with('s') || s.ends_with('x') || s.ends_with("ch") || s.ends_with("sh") {
        format!("{s}es")
    } else if let Some(stem) = s.strip_suffix('y') {
        if stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            format!("{s}s")
        } else {
            format!("{stem}ies")
        }
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_of_version_requirements() {
        for (req, major) in [
            ("0.7", Some("0.7")),
            ("^0.7.4", Some("0.7")),
            ("=0.8.1", Some("0.8")),
            ("~0.9", Some("0.9")),
            ("1.2", Some("1")),
            ("*", None),
            ("", None),
            ("0", None),
        ] {
            assert_eq!(requirement_major(req).as_deref(), major, "{req}");
        }
    }

    #[test]
    fn the_field_limit_is_within_postgresql_s() {
        assert!(MAX_FIELDS + RESERVED_FIELDS.len() <= MAX_COLUMNS);
    }

    #[test]
    fn ports_picked_by_msgen_skip_the_reserved_ones() {
        let below = |limit: u16| move |p: u16| p < limit;
        assert_eq!(Port::first_free(below(4222)).map(Port::get), Some(4223));
        assert_eq!(Port::first_free(below(5432)).map(Port::get), Some(5433));
        assert_eq!(Port::first_free(below(9464)).map(Port::get), Some(9465));
        assert_eq!(Port::first_free(|_| false).map(Port::get), Some(3001));
        assert_eq!(Port::first_free(|_| true), None);
        assert!(Port::parse(4222).is_err() && Port::parse(4223).is_ok());
    }

    #[test]
    fn plurals() {
        assert_eq!(pluralize("user"), "users");
        assert_eq!(pluralize("category"), "categories");
        assert_eq!(pluralize("key"), "keys");
        assert_eq!(pluralize("box"), "boxes");
        assert_eq!(pluralize("address"), "addresses");
    }

    #[test]
    fn name_variants() {
        let n = ServiceName::parse("user-profile").unwrap();
        assert_eq!(n.snake(), "user_profile");
        assert_eq!(n.pascal(), "UserProfile");
        assert_eq!(n.upper(), "USER_PROFILE");
        assert_eq!(n.crate_name(), "user-profile-service");
    }

    #[test]
    fn names_cannot_escape() {
        for bad in [
            "../x", "a/b", "", "A", "1abc", "a--b", "a-", "gateway", "self", "a b",
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
