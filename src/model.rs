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
use toml::Spanned;

use crate::diagnostic::{did_you_mean, utf8_error, ConfigError, Diagnostic, LineIndex};
use indexmap::IndexMap;

use crate::raw::{RawConfig, RawMonolith, RawResource, RawService};

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
        let what = match ty {
            FieldType::String | FieldType::Text | FieldType::Email => "a string",
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
            (FieldType::String | FieldType::Text | FieldType::Email, V::String(s)) => {
                Some(Self::Str(s.clone()))
            }
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
        let mut v = Validator {
            diags: shape_errors,
            index: LineIndex::new(text),
            path,
            dep_spans: BTreeMap::new(),
            published: Vec::new(),
            consumed: Vec::new(),
            project: None,
            subject_names: BTreeMap::new(),
            schemas: BTreeMap::new(),
            guarded: BTreeMap::new(),
        };
        let project = v.project(raw);
        match project {
            Some(p) if v.diags.is_empty() => Ok(p),
            _ => Err(ConfigError::Invalid(v.diags)),
        }
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

/// `text` with the entry at byte `at` replaced by spaces: its line, or a whole
/// `[table]` (header to the next header). `None` when there is nothing to blank.
fn blank_entry(text: &str, at: usize) -> Option<String> {
    let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = |from: usize| text[from..].find('\n').map_or(text.len(), |i| from + i);
    let first = &text[start..line_end(start)];
    if first.trim().is_empty() {
        return None;
    }
    let mut end = line_end(start);
    if first.trim_start().starts_with('[') {
        while end < text.len() {
            let next = end + 1;
            if text[next..].trim_start().starts_with('[') {
                break;
            }
            end = line_end(next);
        }
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    // One space per byte: every later offset stays where it was.
    for c in text[start..end].chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.push_str(&" ".repeat(c.len_utf8()));
        }
    }
    out.push_str(&text[end..]);
    Some(out)
}

/// `text` is the document serde read, `original` the file as written: blanking keeps
/// every offset, and only the original still has every table header.
fn syntax_diagnostic(err: &toml::de::Error, text: &str, original: &str, path: &Path) -> Diagnostic {
    // A problem of the whole document (a missing table) is placed at its start.
    let location = Some(
        err.span()
            .map_or((1, 1), |s| LineIndex::new(text).locate(s.start)),
    );
    // serde names Rust types; the user wrote TOML.
    let mut message = err
        .message()
        .trim()
        .replace("expected i64", "expected a whole number")
        .replace("expected u16", "expected a whole number");
    let at = err.span().map(|s| s.start.min(text.len()));
    if message.is_empty() {
        // The parser said nothing: name what it stopped at.
        let found = at
            .and_then(|i| text.get(i..))
            .and_then(|t| t.chars().next());
        message = match found {
            Some(c) if c.is_control() => format!(
                "the control character {} is not allowed in TOML, not even in a comment or a string; accepted: tab, and printable characters (escape it in a string, e.g. \\u0000)",
                c.escape_unicode()
            ),
            Some(c) => format!("unexpected {c:?}; this is not TOML"),
            None => "unexpected end of the file; this is not TOML".into(),
        };
    }
    let (mut key, mut help) = unknown_field_help(&message);
    if key.is_empty() && message.contains("number too large") {
        // The value does not fit a 64-bit integer; name the key and its range.
        if let Some(i) = at {
            let start = text[..i].rfind('\n').map_or(0, |j| j + 1);
            let line = text[start..].lines().next().unwrap_or_default();
            if let Some((k, _)) = line.split_once('=') {
                key = k.trim().trim_matches('"').to_string();
            }
        }
        let accepted = if key.ends_with("port") {
            "1024..=65535".to_string()
        } else if key.ends_with("timeout_secs") {
            "1..=3600".to_string()
        } else {
            format!("a whole number between {} and {}", i64::MIN, i64::MAX)
        };
        message = format!("the number is too large; accepted: {accepted}");
    }
    if key.is_empty() && message.starts_with("invalid type") {
        // serde names the types, not the key: the key is the line's own.
        if let Some(span) = err.span() {
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line = text[start..].lines().next().unwrap_or_default();
            if let Some((k, _)) = line.split_once('=') {
                key = k.trim().trim_matches('"').to_string();
            }
        }
        help = if message.contains("expected a whole number") {
            Some("write a whole number without quotes, e.g. 3001".into())
        } else if message.contains("expected a boolean") {
            Some("write true or false, without quotes".into())
        } else if message.contains("expected a sequence") {
            Some("write a list, e.g. [\"a\", \"b\"]".into())
        } else if message.contains("expected a string") {
            Some("write a string in double quotes".into())
        } else {
            None
        };
    }
    if !key.is_empty() {
        // serde names the key alone: put it in its table, as other messages do.
        if let Some(section) = err.span().and_then(|s| section_at(original, s.start, &key)) {
            key = format!("{section}.{key}");
        }
    }
    Diagnostic {
        file: path.to_path_buf(),
        location,
        key,
        message,
        help,
    }
}

/// The table holding byte `offset` of `text`, as key paths name it: `project`,
/// `services[2]`, `services[0].resources[1]`; `None` at the top level.
/// `key` must be the first thing on `offset`'s line: a key inside an inline table
/// or a dotted key is named alone rather than put in the wrong table.
fn section_at(text: &str, offset: usize, key: &str) -> Option<String> {
    let line_start = text
        .get(..offset.min(text.len()))?
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].trim_start();
    let direct = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
        .is_some_and(|rest| rest.trim_start().starts_with('='));
    if !direct {
        return None;
    }
    let mut path: Vec<(String, Option<usize>)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        // Only the headers of lines before `offset`'s own: an unknown table is
        // named by its header, not inside itself.
        pos += line.len();
        if pos > offset {
            break;
        }
        let l = line.trim();
        let (header, array) = if let Some(h) = l.strip_prefix("[[") {
            (h.split("]]").next().unwrap_or_default(), true)
        } else if let Some(h) = l.strip_prefix('[') {
            (h.split(']').next().unwrap_or_default(), false)
        } else {
            continue;
        };
        let parts: Vec<String> = header
            .split('.')
            .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .collect();
        // A new `[[services]]` restarts the count of the `[[services.resources]]` in it.
        let full = parts.join(".");
        seen.retain(|k, _| !k.starts_with(&format!("{full}.")));
        let index = array.then(|| {
            let n = seen.entry(full.clone()).or_insert(0);
            *n += 1;
            *n - 1
        });
        // Keep the enclosing tables this header is inside of, by name.
        let keep = path
            .iter()
            .zip(&parts)
            .take_while(|((name, _), part)| name == *part)
            .count()
            .min(parts.len().saturating_sub(1));
        path.truncate(keep);
        while path.len() + 1 < parts.len() {
            path.push((parts[path.len()].clone(), None));
        }
        path.push((parts.last().cloned().unwrap_or_default(), index));
    }
    (!path.is_empty()).then(|| {
        path.iter()
            .map(|(name, index)| match index {
                Some(i) => format!("{name}[{i}]"),
                None => name.clone(),
            })
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a suggestion.
fn unknown_field_help(message: &str) -> (String, Option<String>) {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return (String::new(), None);
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return (String::new(), None);
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let help = did_you_mean(field, &candidates).map(|c| format!("did you mean `{c}`?"));
    (field.to_string(), help)
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

struct Validator<'a> {
    diags: Vec<Diagnostic>,
    index: LineIndex<'a>,
    path: &'a Path,
    /// (service, dependency) → where the dependency is written.
    dep_spans: BTreeMap<(String, String), Spanned<String>>,
    /// Every subject some service publishes, and (service, subject) consumed.
    published: Vec<String>,
    consumed: Vec<(String, Spanned<String>)>,
    /// The project's name once valid: databases are named after it.
    project: Option<ProjectName>,
    /// Every subject seen, by its name with dots as underscores.
    subject_names: BTreeMap<String, String>,
    /// Adopted services' schemas, with the service that has each.
    schemas: BTreeMap<String, String>,
    /// Resources that declare `owned` or `roles`, with where: they need a service
    /// that checks tokens, known only once every service is read.
    guarded: BTreeMap<String, (String, Spanned<()>)>,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, key: &str, message: String, help: Option<String>) {
        let location = Some(self.index.locate(at.span().start));
        self.diags.push(Diagnostic {
            file: self.path.to_path_buf(),
            location,
            key: key.to_string(),
            message,
            help,
        });
    }

    /// `[monolith] path/package`: `Some(None)` for a generated monolith, `None` on error.
    fn external_monolith(&mut self, m: &RawMonolith) -> Option<Option<ExternalMonolith>> {
        let path_ok = m.path.as_ref().is_none_or(|path| {
            let p = path.get_ref();
            let ok = !p.is_empty()
                && !p.starts_with('/')
                && p.split('/').all(|c| {
                    !c.is_empty()
                        && c != "."
                        && c != ".."
                        && c.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
                });
            if !ok {
                self.err(
                    path,
                    "monolith.path",
                    format!("{p:?} is not a directory inside the project; accepted: a relative path of letters, digits, `_`, `-`, `.`, without `..`"),
                    None,
                );
            }
            ok
        });
        let package_ok = m.package.as_ref().is_none_or(|package| {
            let k = package.get_ref();
            let ok = !k.is_empty()
                && k.len() <= 64
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.err(
                    package,
                    "monolith.package",
                    format!("{k:?} is not a Cargo package name; accepted: letters, digits, `_` and `-`, starting with a letter"),
                    None,
                );
            }
            ok
        });
        if m.path.is_none() {
            if let Some(e) = m.env.first() {
                self.err(
                    e,
                    "monolith.env",
                    "`env` is only for an adopted monolith (`path` and `package`): msgen sets what a monolith it generates reads".into(),
                    None,
                );
            }
        }
        match (&m.path, &m.package) {
            (None, None) => Some(None),
            (Some(path), Some(package)) => {
                let env = self.env_list(&m.env, "monolith.env");
                (path_ok && package_ok).then(|| {
                    Some(ExternalMonolith {
                        path: path.get_ref().clone(),
                        package: package.get_ref().clone(),
                        env,
                    })
                })
            }
            (Some(path), None) => {
                self.err(
                    path,
                    "monolith.package",
                    "`path` names an adopted monolith, which also needs `package` (its Cargo package name)".into(),
                    None,
                );
                None
            }
            (None, Some(package)) => {
                self.err(
                    package,
                    "monolith.path",
                    "`package` is only for an adopted monolith, which also needs `path` (its directory)".into(),
                    None,
                );
                None
            }
        }
    }

    /// `env` of adopted code: `NAME` (required) or `NAME=default`, each name once.
    fn env_list(&mut self, list: &[Spanned<String>], key: &str) -> Vec<EnvVar> {
        let mut out: Vec<EnvVar> = Vec::new();
        for (j, e) in list.iter().enumerate() {
            let v = e.get_ref();
            let (name, default) = match v.split_once('=') {
                Some((n, d)) => (n, Some(d)),
                None => (v.as_str(), None),
            };
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let default_ok =
                default.is_none_or(|d| d.len() <= 200 && !d.chars().any(char::is_control));
            if !name_ok || !default_ok {
                self.err(
                    e,
                    &format!("{key}[{j}]"),
                    format!("{v:?} is not an environment variable; accepted: `NAME` (required) or `NAME=default`, NAME of capitals, digits and `_`, a default of at most 200 characters on one line"),
                    None,
                );
            } else if out.iter().any(|o| o.name == name) {
                self.err(
                    e,
                    &format!("{key}[{j}]"),
                    format!("`{name}` is listed twice"),
                    None,
                );
            } else {
                out.push(EnvVar {
                    name: name.to_string(),
                    default: default.map(str::to_string),
                });
            }
        }
        out
    }

    /// The valid, distinct entries of an adopted service's `paths` (prefixes) or
    /// `routes` (exact routes, with `{param}` segments).
    fn path_list(
        &mut self,
        list: &[Spanned<String>],
        field: &str,
        key: &dyn Fn(&str) -> String,
    ) -> Vec<String> {
        let routes = field == "routes";
        let mut out = Vec::new();
        for (j, p) in list.iter().enumerate() {
            let v = p.get_ref();
            let segments: Vec<&str> = v.split('/').skip(1).collect();
            let literal = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~'))
            };
            let param = |s: &str, last: bool| {
                let inner = s.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
                let inner = match inner {
                    Some(i) if last => i.strip_prefix('*').unwrap_or(i),
                    Some(i) => i,
                    None => return false,
                };
                !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            let ok = v.len() > 1
                && v.len() <= 200
                && v.starts_with('/')
                && segments.iter().enumerate().all(|(k, s)| {
                    !s.is_empty() && (literal(s) || param(s, k + 1 == segments.len()))
                });
            if !ok {
                let what = if routes {
                    "is not a route; accepted: `/` then segments of letters, digits, `_`, `-`, `.`, `~` or a `{name}` parameter (`{*name}` last), no trailing `/`, not `/` alone"
                } else {
                    "is not a path prefix; accepted: `/` then segments of letters, digits, `_`, `-`, `.`, `~` or a `{name}` parameter (`{*name}` last), no trailing `/`, not `/` alone"
                };
                self.err(
                    p,
                    &key(&format!("{field}[{j}]")),
                    format!("{v:?} {what}"),
                    None,
                );
            } else if out.contains(v) {
                self.err(
                    p,
                    &key(&format!("{field}[{j}]")),
                    format!("{v:?} is listed twice"),
                    None,
                );
            } else {
                out.push(v.clone());
            }
        }
        out
    }

    /// `adopted` and `paths` of a service: only together, and then without anything
    /// msgen would have to render into the service's code.
    fn adopted(
        &mut self,
        rs: &RawService,
        key: &dyn Fn(&str) -> String,
    ) -> (bool, Vec<String>, Vec<String>) {
        let adopted = rs.adopted.as_ref().is_some_and(|a| *a.get_ref());
        let paths = self.path_list(&rs.paths, "paths", key);
        let routes = self.path_list(&rs.routes, "routes", key);
        if !adopted {
            for (field, list) in [("paths", &rs.paths), ("routes", &rs.routes)] {
                if let Some(p) = list.first() {
                    self.err(
                        p,
                        &key(field),
                        format!("`{field}` is only for adopted services (`adopted = true`); msgen derives the others' paths"),
                        None,
                    );
                }
            }
            return (false, paths, routes);
        }
        let at = rs.adopted.as_ref().expect("adopted is set");
        if rs.paths.is_empty() && rs.routes.is_empty() {
            self.err(
                at,
                &key("paths"),
                "an adopted service needs `paths` (the prefixes the gateway sends to it) or `routes` (exact routes)".into(),
                Some("e.g. paths = [\"/api/posts\"]".into()),
            );
        }
        let renders_code = [
            ("resources", !rs.resources.is_empty()),
            ("template", rs.template.is_some()),
            ("depends_on", !rs.depends_on.is_empty()),
            ("publishes", !rs.publishes.is_empty()),
            ("consumes", !rs.consumes.is_empty()),
            (
                "monolith",
                rs.monolith.as_ref().is_some_and(|m| *m.get_ref()),
            ),
            ("split_from", rs.split_from.is_some()),
        ];
        for (k, set) in renders_code {
            if set {
                self.err(
                    at,
                    &key(k),
                    format!(
                        "an adopted service's code is its own: msgen cannot render `{k}` into it"
                    ),
                    Some(format!("remove `{k}`")),
                );
            }
        }
        (true, paths, routes)
    }

    /// `schema` of an adopted PostgreSQL service: a plain PostgreSQL identifier
    /// that is not one of the server's own schemas.
    fn schema(
        &mut self,
        rs: &RawService,
        adopted: bool,
        database: Option<DatabaseKind>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<String> {
        let v = rs.schema.as_ref()?;
        let name = v.get_ref();
        if !adopted {
            let msg = "`schema` is only for services adopted from a monolith (`adopted = true`, and `[monolith] path`): the schema is one of the monolith's database; a service msgen generates has a database of its own".into();
            self.err(v, &key("schema"), msg, Some("remove `schema`".into()));
            return None;
        }
        if database.is_some_and(|d| d != DatabaseKind::Postgres) {
            let msg = "`schema` needs `database = \"postgres\"`: SQLite has no schemas".into();
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        let plain = name.len() <= MAX_IDENTIFIER_BYTES
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let reserved = name == "public" || name == "information_schema" || name.starts_with("pg_");
        if !plain || reserved {
            let msg = format!(
                "`{name}` cannot be the service's schema; accepted: lower-case letters, digits and `_`, at most {MAX_IDENTIFIER_BYTES} bytes, not starting with a digit, and not `public`, `information_schema` or `pg_*`"
            );
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        if let Some(other) = self.schemas.insert(name.clone(), rs.name.get_ref().clone()) {
            let msg = format!("service `{other}` has schema `{name}` already; each service's tables need a schema of their own");
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        Some(name.clone())
    }

    fn database(&mut self, v: &Spanned<String>, key: &str) -> Option<DatabaseKind> {
        let kind = DatabaseKind::parse(v.get_ref());
        if kind.is_none() {
            let help =
                did_you_mean(v.get_ref(), DATABASE_KINDS).map(|c| format!("did you mean `{c}`?"));
            self.err(
                v,
                key,
                format!(
                    "unknown database kind {:?}; accepted: {}",
                    v.get_ref(),
                    DATABASE_KINDS.join(", ")
                ),
                help,
            );
        }
        kind
    }

    /// `project.axum` / `project.sqlx`: `None` when unset or (reported) invalid.
    fn major<T>(
        &mut self,
        raw: &Option<Spanned<String>>,
        key: &str,
        accepted: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let v = raw.as_ref()?;
        let parsed = parse(v.get_ref());
        if parsed.is_none() {
            let list: Vec<String> = accepted.iter().map(|a| format!("\"{a}\"")).collect();
            self.err(
                v,
                key,
                format!(
                    "{:?} is not a supported major version; accepted: {}",
                    v.get_ref(),
                    list.join(", ")
                ),
                None,
            );
        }
        parsed
    }

    fn project(&mut self, raw: RawConfig) -> Option<Project> {
        let rp = raw.project.into_inner();
        let name = match ProjectName::parse(rp.name.get_ref()) {
            Ok(n) => {
                self.project = Some(n.clone());
                Some(n)
            }
            Err(m) => {
                self.err(&rp.name, "project.name", m, None);
                None
            }
        };
        let default_database = match &rp.database {
            Some(d) => self
                .database(d, "project.database")
                .unwrap_or(DatabaseKind::Postgres),
            None => DatabaseKind::Postgres,
        };

        let majors = Majors {
            axum: self
                .major(&rp.axum, "project.axum", AXUM_MAJORS, AxumMajor::parse)
                .unwrap_or_default(),
            sqlx: self
                .major(&rp.sqlx, "project.sqlx", SQLX_MAJORS, SqlxMajor::parse)
                .unwrap_or_default(),
        };

        let (gateway_port, timeout_secs) = match raw.gateway {
            Some(g) => {
                let g = g.into_inner();
                let port = match &g.port {
                    Some(p) => Port::parse(*p.get_ref())
                        .map_err(|m| self.err(p, "gateway.port", m, None))
                        .ok(),
                    None => Some(Port(DEFAULT_GATEWAY_PORT)),
                };
                let timeout = match &g.timeout_secs {
                    Some(t) if !(1..=3600).contains(t.get_ref()) => {
                        self.err(
                            t,
                            "gateway.timeout_secs",
                            format!("{} is out of range; accepted: 1..=3600", t.get_ref()),
                            None,
                        );
                        DEFAULT_GATEWAY_TIMEOUT_SECS
                    }
                    Some(t) => *t.get_ref() as u64,
                    None => DEFAULT_GATEWAY_TIMEOUT_SECS,
                };
                (port, timeout)
            }
            None => (
                Some(Port(DEFAULT_GATEWAY_PORT)),
                DEFAULT_GATEWAY_TIMEOUT_SECS,
            ),
        };

        // Ports taken so far, with who took them, for collision messages.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        if let Some(p) = gateway_port {
            ports.insert(p.get(), "the gateway".into());
        }
        let monolith = match &raw.monolith {
            Some(m) => {
                let m = m.get_ref();
                let port = match &m.port {
                    Some(p) => Port::parse(*p.get_ref())
                        .map_err(|msg| self.err(p, "monolith.port", msg, None))
                        .ok(),
                    None => Some(Port(DEFAULT_MONOLITH_PORT)),
                };
                if let Some(port) = port {
                    if let Some(owner) = ports.get(&port.get()) {
                        let at = m.port.clone().unwrap_or_else(|| Spanned::new(0..0, 0));
                        let msg = format!("port {} is already used by {owner}", port.get());
                        self.err(&at, "monolith.port", msg, None);
                    } else {
                        ports.insert(port.get(), "the monolith".into());
                    }
                }
                let external = self.external_monolith(m);
                Some(port.and_then(|port| {
                    Some(Monolith {
                        port,
                        external: external?,
                    })
                }))
            }
            None => None,
        };
        // Explicit ports first so that defaults fill the gaps around them.
        let mut collisions = Vec::new();
        for (i, rs) in raw.services.iter().enumerate() {
            let rs = rs.get_ref();
            if let Some(p) = &rs.port {
                if let Ok(port) = Port::parse(*p.get_ref()) {
                    match ports.get(&port.get()) {
                        Some(owner) => collisions.push((i, p, owner.clone())),
                        None => {
                            ports.insert(port.get(), format!("service `{}`", rs.name.get_ref()));
                        }
                    }
                }
            }
        }
        // Each colliding service is offered a port of its own, clear of every
        // explicit port (also those declared after it) and of the other offers.
        let mut offered = BTreeSet::new();
        for (i, p, owner) in collisions {
            let free = free_port(|p| ports.contains_key(&p) || offered.contains(&p));
            offered.insert(free);
            let msg = format!("port {} is already used by {owner}", p.get_ref());
            let key = format!("services[{i}].port");
            self.err(p, &key, msg, Some(format!("the next free port is {free}")));
        }

        let mut services = Vec::new();
        let declared_services = raw.services.len();
        let mut seen_names: BTreeMap<String, Spanned<String>> = BTreeMap::new();
        for (i, rs) in raw.services.into_iter().enumerate() {
            let rs = rs.into_inner();
            if let Some(first) = seen_names.get(rs.name.get_ref()) {
                let (line, _) = self.index.locate(first.span().start);
                self.err(
                    &rs.name,
                    &format!("services[{i}].name"),
                    format!(
                        "duplicate service name {:?} (first declared on line {line})",
                        rs.name.get_ref()
                    ),
                    None,
                );
            } else {
                seen_names.insert(rs.name.get_ref().clone(), rs.name.clone());
            }
            if let Some(s) = self.service(i, rs, default_database, monolith.as_ref(), &mut ports) {
                services.push(s);
            }
        }

        // Dependencies are checked against every declared name, even of services
        // that failed validation, so that one bad service hides no other problem.
        let declared: Vec<&str> = seen_names.keys().map(String::as_str).collect();
        let deps: Vec<_> = self
            .dep_spans
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((svc, dep), span) in deps {
            let key = format!("{svc}.depends_on");
            if dep == svc {
                self.err(
                    &span,
                    &key,
                    "a service cannot depend on itself".into(),
                    None,
                );
            } else if !declared.contains(&dep.as_str()) {
                let help = did_you_mean(&dep, &declared).map(|c| format!("did you mean `{c}`?"));
                let msg = format!(
                    "depends on {dep:?}, which is not a service; services: {}",
                    declared.join(", ")
                );
                self.err(&span, &key, msg, help);
            }
        }
        let consumed = std::mem::take(&mut self.consumed);
        let published = self.published.clone();
        for (svc, subject) in consumed {
            if !published.contains(subject.get_ref()) {
                let all: Vec<&str> = published.iter().map(String::as_str).collect();
                let help =
                    did_you_mean(subject.get_ref(), &all).map(|c| format!("did you mean `{c}`?"));
                let msg = format!(
                    "consumes {:?}, which no service publishes; published: {}",
                    subject.get_ref(),
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                );
                self.err(&subject, &format!("{svc}.consumes"), msg, help);
            }
        }
        // A service that failed validation is missing from `services`: references to
        // its resources would be reported again, wrongly.
        let all_valid = services.len() == declared_services;
        self.cross_checks(&services, &seen_names, all_valid);
        self.guarded_checks(&services);
        self.diags.sort_by_key(|d| d.location);

        let monolith = match monolith {
            Some(m) => Some(m?),
            None => None,
        };
        Some(Project {
            name: name?,
            default_database,
            majors,
            gateway: Gateway {
                port: gateway_port?,
                timeout_secs,
            },
            monolith,
            services,
        })
    }

    fn service(
        &mut self,
        i: usize,
        rs: RawService,
        default_database: DatabaseKind,
        monolith: Option<&Option<Monolith>>,
        ports: &mut BTreeMap<u16, String>,
    ) -> Option<Service> {
        let has_monolith = monolith.is_some();
        let external_monolith =
            monolith.is_some_and(|m| m.as_ref().is_some_and(Monolith::is_external));
        let key = |k: &str| format!("services[{i}].{k}");
        let (adopted, paths, routes) = self.adopted(&rs, &key);
        let env = self.env_list(&rs.env, &key("env"));
        if !adopted {
            if let Some(e) = rs.env.first() {
                self.err(
                    e,
                    &key("env"),
                    "`env` is only for adopted services (`adopted = true`): msgen sets what the services it generates read".into(),
                    None,
                );
            }
        }
        let name = ServiceName::parse(rs.name.get_ref())
            .map_err(|m| self.err(&rs.name, &key("name"), m, None))
            .ok();
        let port = match &rs.port {
            Some(p) => Port::parse(*p.get_ref())
                .map_err(|m| self.err(p, &key("port"), m, None))
                .ok(),
            None => {
                let free = Port::first_free(|p| ports.contains_key(&p));
                if let Some(p) = free {
                    ports.insert(p.get(), format!("service `{}`", rs.name.get_ref()));
                }
                free
            }
        };
        let database = match &rs.database {
            Some(d) => self.database(d, &key("database")),
            None => Some(default_database),
        };
        let in_monolith = rs.monolith.as_ref().is_some_and(|m| *m.get_ref());
        let schema = self.schema(&rs, adopted && external_monolith, database, &key);
        if let (Some(project), Some(service), Some(DatabaseKind::Postgres), false, None) =
            (&self.project, &name, database, in_monolith, &schema)
        {
            let db = database_name(project, service);
            if db.len() > MAX_IDENTIFIER_BYTES {
                let msg = format!(
                    "its database would be named `{db}`, {} bytes; accepted: at most {MAX_IDENTIFIER_BYTES} bytes for `<project>_<service>` (PostgreSQL's limit)",
                    db.len()
                );
                let help = Some("shorten the service's or the project's name".into());
                self.err(&rs.name, &key("name"), msg, help);
            }
        }
        let template = match &rs.template {
            Some(t) => {
                let parsed = Template::parse(t.get_ref());
                if parsed.is_none() {
                    let help = did_you_mean(t.get_ref(), TEMPLATES)
                        .map(|c| format!("did you mean `{c}`?"));
                    self.err(
                        t,
                        &key("template"),
                        format!(
                            "unknown template {:?}; accepted: {}",
                            t.get_ref(),
                            TEMPLATES.join(", ")
                        ),
                        help,
                    );
                }
                parsed
            }
            None => Some(Template::Crud),
        };

        let mut depends_on = Vec::new();
        for (j, d) in rs.depends_on.iter().enumerate() {
            match ServiceName::parse(d.get_ref()) {
                Ok(n) if depends_on.iter().any(|(x, _)| x == &n) => self.err(
                    d,
                    &key(&format!("depends_on[{j}]")),
                    format!("{:?} is listed twice", d.get_ref()),
                    None,
                ),
                Ok(n) => depends_on.push((n, d.clone())),
                Err(m) => self.err(d, &key(&format!("depends_on[{j}]")), m, None),
            }
        }

        let mut resources = Vec::new();
        for (j, rr) in rs.resources.into_iter().enumerate() {
            if let Some(r) = self.resource(&key(&format!("resources[{j}]")), rr) {
                resources.push(r);
            }
        }

        if let (Some(db), Some(tpl)) = (database, template) {
            if db == DatabaseKind::None && (tpl == Template::Auth || !resources.is_empty()) {
                let what = if tpl == Template::Auth {
                    "the auth template stores users"
                } else {
                    "resources are stored in the service's database"
                };
                let at = rs.database.as_ref().unwrap_or(&rs.name);
                self.err(
                    at,
                    &key("database"),
                    format!("database = \"none\" but {what}"),
                    Some("use \"postgres\" or \"sqlite\"".into()),
                );
            }
            if tpl == Template::Auth && !resources.is_empty() {
                self.err(
                    &rs.name,
                    &key("resources"),
                    "the auth template takes no resources".into(),
                    Some("keep profile data in a separate crud service (as the article's user service)".into()),
                );
            }
        }

        // The cross checks point at the `depends_on` entry itself.
        for (n, span) in &depends_on {
            self.dep_spans.insert(
                (rs.name.get_ref().clone(), n.as_str().to_string()),
                span.clone(),
            );
        }

        let publishes = self.subjects(&rs.publishes, &key("publishes"));
        let consumes = self.subjects(&rs.consumes, &key("consumes"));
        for (list, what) in [(&rs.publishes, "publishes"), (&rs.consumes, "consumes")] {
            if in_monolith && !list.is_empty() {
                self.err(
                    &list[0],
                    &key(what),
                    "modules of the monolith do not take events yet; split the module out first"
                        .into(),
                    None,
                );
            }
        }
        if !rs.consumes.is_empty() && database == Some(DatabaseKind::None) {
            self.err(
                &rs.consumes[0],
                &key("consumes"),
                "consuming events needs a database, to remember which events were handled".into(),
                Some("use database = \"postgres\" or \"sqlite\"".into()),
            );
        }
        for c in &rs.consumes {
            self.consumed.push((rs.name.get_ref().clone(), c.clone()));
        }
        for p in &publishes {
            if !self.published.contains(p) {
                self.published.push(p.clone());
            }
        }
        if let Some(m) = &rs.monolith {
            if in_monolith && !has_monolith {
                self.err(
                    m,
                    &key("monolith"),
                    "`monolith = true` but there is no [monolith] section".into(),
                    Some("add `[monolith]` with `port = 3000`".into()),
                );
            }
        }
        if let (Some(m), true) = (&rs.monolith, in_monolith && external_monolith) {
            self.err(
                m,
                &key("monolith"),
                "the monolith is adopted (`[monolith] path`): msgen does not render modules into it"
                    .into(),
                Some("remove `monolith = true`".into()),
            );
        }
        if in_monolith {
            if let (Some(d), Some(kind)) = (&rs.database, database) {
                if kind != default_database {
                    self.err(
                        d,
                        &key("database"),
                        format!(
                            "modules of the monolith share its database ({}); {:?} is only possible once the service is split out",
                            default_database.as_str(),
                            d.get_ref()
                        ),
                        Some("remove the key, or set project.database".into()),
                    );
                }
            }
        }
        let split_from_monolith = match &rs.split_from {
            Some(v) if v.get_ref() == "monolith" => true,
            Some(v) => {
                self.err(
                    v,
                    &key("split_from"),
                    format!("unknown value {:?}; accepted: \"monolith\"", v.get_ref()),
                    None,
                );
                false
            }
            None => false,
        };

        if let (true, true, Some(split)) = (in_monolith, split_from_monolith, &rs.split_from) {
            self.err(
                split,
                &key("split_from"),
                "a module of the monolith (`monolith = true`) is not split from it yet".into(),
                Some("keep `monolith = true` while it is a module, `split_from` once it is a service".into()),
            );
        }
        let kind = if adopted {
            ServiceKind::Adopted
        } else if in_monolith {
            ServiceKind::Module
        } else if split_from_monolith {
            ServiceKind::SplitFromMonolith
        } else {
            ServiceKind::Service
        };
        Some(Service {
            name: name?,
            port: port?,
            database: database?,
            template: template?,
            depends_on: depends_on.into_iter().map(|(n, _)| n).collect(),
            public: rs.public.map(|p| p.into_inner()).unwrap_or(false),
            kind,
            paths,
            routes,
            env,
            schema,
            publishes,
            consumes,
            resources,
        })
    }

    /// Event subjects: dot-separated lower-case tokens (`post.created`), no wildcards.
    fn subjects(&mut self, raw: &[Spanned<String>], key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let v = s.get_ref();
            let ok = v.len() <= 64
                && v.split('.').count() >= 2
                && v.split('.').all(|t| {
                    t.starts_with(|c: char| c.is_ascii_lowercase())
                        && t.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if !ok {
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} is not a valid event subject; accepted: two or more dot-separated lower-case tokens, e.g. \"post.created\" (no wildcards, at most 64 characters)"),
                    None,
                );
            } else if out.contains(v) {
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} is listed twice"),
                    None,
                );
            } else if let Some(other) = self
                .subject_names
                .insert(v.replace('.', "_"), v.clone())
                .filter(|other| other != v)
            {
                // The stream, the payload type and the publish function are named
                // after the subject with dots as underscores.
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} and {other:?} clash: both give the stream `{}`; accepted: subjects that differ in more than '.' and '_'", v.replace('.', "_").to_uppercase()),
                    None,
                );
            } else {
                out.push(v.clone());
            }
        }
        out
    }

    fn resource(&mut self, key: &str, rr: Spanned<RawResource>) -> Option<Resource> {
        let at = rr.span();
        let rr = rr.into_inner();
        let name = check_snake(rr.name.get_ref())
            .map_err(|m| self.err(&rr.name, &format!("{key}.name"), m, None))
            .ok()
            .map(|_| rr.name.get_ref().clone());
        let name = name.filter(|n| {
            let reserved = RESERVED_RESOURCES.contains(&n.as_str());
            if reserved {
                self.err(
                    &rr.name,
                    &format!("{key}.name"),
                    format!(
                        "`{n}` is reserved for a generated module; reserved: {}",
                        RESERVED_RESOURCES.join(", ")
                    ),
                    None,
                );
            }
            if PRELUDE_TYPES.contains(&n.as_str()) {
                self.err(
                    &rr.name,
                    &format!("{key}.name"),
                    format!(
                        "`{n}` would make a type `{}`, which would hide Rust's own; reserved: {}",
                        pascal(n),
                        PRELUDE_TYPES.join(", ")
                    ),
                    Some(format!("e.g. `{n}_entry`, with `plural` to keep the path")),
                );
            }
            !reserved && !PRELUDE_TYPES.contains(&n.as_str())
        });
        let plural = match &rr.plural {
            Some(p) => check_snake(p.get_ref())
                .map_err(|m| self.err(p, &format!("{key}.plural"), m, None))
                .ok()
                .map(|_| p.get_ref().clone()),
            None => name.as_deref().map(pluralize),
        };
        if let Some(p) = plural.as_deref().filter(|p| RESERVED_TABLES.contains(p)) {
            let at = rr.plural.clone().unwrap_or_else(|| rr.name.clone());
            self.err(
                &at,
                &format!("{key}.plural"),
                format!(
                    "table `{p}` is reserved for msgen's own tables; reserved: {}",
                    RESERVED_TABLES.join(", ")
                ),
                Some("set another `plural`".into()),
            );
        }
        if rr.fields.is_empty() {
            self.err(
                &Spanned::new(at.clone(), ()),
                &format!("{key}.fields"),
                "a resource needs at least one field".into(),
                Some(r#"e.g. fields = { title = "string", published = "bool?" }"#.into()),
            );
        }
        let mut fields = Vec::new();
        for (fname, fty) in &rr.fields {
            let fkey = format!("{key}.fields.{fname}");
            if let Err(m) = check_snake(fname) {
                self.err(fty, &fkey, format!("field name: {m}"), None);
                continue;
            }
            if RESERVED_FIELDS.contains(&fname.as_str()) {
                self.err(
                    fty,
                    &fkey,
                    format!("`{fname}` is a column every resource has already"),
                    Some(format!(
                        "reserved field names: {}",
                        RESERVED_FIELDS.join(", ")
                    )),
                );
                continue;
            }
            if SYSTEM_COLUMNS.contains(&fname.as_str()) {
                self.err(
                    fty,
                    &fkey,
                    format!("`{fname}` is a system column of every PostgreSQL table"),
                    Some(format!(
                        "reserved field names: {}",
                        SYSTEM_COLUMNS.join(", ")
                    )),
                );
                continue;
            }
            let raw = fty.get_ref();
            let text = raw.ty.trim();
            let (base, optional) = match text.strip_suffix('?') {
                Some(b) => (b, true),
                None => (text, false),
            };
            let Some(ty) = FieldType::parse(base) else {
                let help = did_you_mean(base, FIELD_TYPES).map(|c| format!("did you mean `{c}`?"));
                self.err(
                    fty,
                    &fkey,
                    format!(
                        "unknown field type {:?}; accepted: {} (add `?` for an optional field)",
                        raw.ty,
                        FIELD_TYPES.join(", ")
                    ),
                    help,
                );
                continue;
            };
            let default = match &raw.default {
                None => None,
                Some(v) => match DefaultValue::parse(v, &ty) {
                    Ok(d) => Some(d),
                    Err(m) => {
                        self.err(fty, &format!("{fkey}.default"), m, None);
                        None
                    }
                },
            };
            let renamed_from = match &raw.renamed_from {
                None => None,
                Some(old) => {
                    let problem = if let Err(m) = check_snake(old) {
                        Some(m)
                    } else if old == fname {
                        Some("is the field's own name".to_string())
                    } else if rr.fields.contains_key(old) {
                        Some(format!("`{old}` is still a field of this resource"))
                    } else {
                        fields
                            .iter()
                            .find(|f: &&Field| f.renamed_from.as_deref() == Some(old.as_str()))
                            .map(|other| {
                                format!(
                                    "field `{}` is already renamed from `{old}`: one column becomes one field",
                                    other.name
                                )
                            })
                    };
                    match problem {
                        Some(m) => {
                            self.err(
                                fty,
                                &format!("{fkey}.renamed_from"),
                                m,
                                Some("`renamed_from` names the field's former name, e.g. { type = \"string\", renamed_from = \"name\" }".into()),
                            );
                            None
                        }
                        None => Some(old.clone()),
                    }
                }
            };
            fields.push(Field {
                name: fname.clone(),
                ty,
                optional,
                default,
                renamed_from,
            });
        }
        if fields.len() > MAX_FIELDS {
            self.err(
                &Spanned::new(at.clone(), ()),
                &format!("{key}.fields"),
                format!(
                    "{} fields; accepted: at most {MAX_FIELDS} (the schema code generated for a wider resource overflows a 2 MiB thread stack in a debug build; PostgreSQL's own limit is {MAX_COLUMNS} columns)",
                    fields.len()
                ),
                Some("split the resource in two, joined by a `ref:` field".into()),
            );
        }
        if let Some(o) = &rr.owned {
            if *o.get_ref() && fields.iter().any(|f| f.name == OWNER_COLUMN) {
                self.err(
                    o,
                    &format!("{key}.owned"),
                    format!("an owned resource's rows get a column `{OWNER_COLUMN}` (the creator's user id, from the token), and a field has that name"),
                    Some(format!("rename the field, or drop it: `owned` fills `{OWNER_COLUMN}` itself")),
                );
            }
        }
        let roles = self.roles(key, rr.roles.as_ref());
        let owned = rr.owned.as_ref().is_some_and(|o| *o.get_ref());
        let name = name?;
        if owned || !roles.is_empty() {
            let (which, at) = match (&rr.owned, &rr.roles) {
                (Some(o), _) if owned => ("owned", o.span()),
                (_, Some(r)) => ("roles", r.span()),
                _ => ("owned", at),
            };
            let at = Spanned::new(at, ());
            self.guarded
                .insert(name.clone(), (format!("{key}.{which}"), at));
        }
        Some(Resource {
            name,
            plural: plural?,
            fields,
            owned,
            roles,
        })
    }

    /// `roles = { delete = "admin" }`: each key an operation, each value a role.
    fn roles(
        &mut self,
        key: &str,
        raw: Option<&Spanned<IndexMap<String, Spanned<String>>>>,
    ) -> BTreeMap<Operation, Role> {
        let mut out = BTreeMap::new();
        for (op, role) in raw.map(|r| r.get_ref().iter()).into_iter().flatten() {
            let rkey = format!("{key}.roles.{op}");
            let names = |all: &[&str]| all.join(", ");
            let Some(o) = Operation::ALL.into_iter().find(|o| o.as_str() == op) else {
                let all: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
                self.err(
                    role,
                    &rkey,
                    format!("unknown operation {op:?}; accepted: {}", names(&all)),
                    did_you_mean(op, &all).map(|c| format!("did you mean `{c}`?")),
                );
                continue;
            };
            let Some(r) = Role::ALL.into_iter().find(|r| r.as_str() == role.get_ref()) else {
                let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                self.err(
                    role,
                    &rkey,
                    format!("unknown role {:?}; accepted: {}", role.get_ref(), names(&all)),
                    Some("every signed-in user has `user`; `admin` is granted (see the auth service's `grant-admin`)".into()),
                );
                continue;
            };
            out.insert(o, r);
        }
        out
    }

    /// `owned` and `roles` mean something only where the service checks tokens:
    /// the project has an auth service, and the service is not public.
    fn guarded_checks(&mut self, services: &[Service]) {
        let has_auth = services.iter().any(|s| s.template == Template::Auth);
        for s in services {
            for r in &s.resources {
                let Some((key, at)) = self.guarded.get(&r.name).cloned() else {
                    continue;
                };
                let problem = if !has_auth {
                    Some((
                        "no service of the project issues tokens".to_string(),
                        "add an auth service (`msgen add-service auth`), or drop `owned` and `roles`",
                    ))
                } else if s.public {
                    Some((
                        format!(
                            "service `{}` is public: no token is checked there",
                            s.name.as_str()
                        ),
                        "remove `public = true`, or drop `owned` and `roles`",
                    ))
                } else {
                    None
                };
                if let Some((why, help)) = problem {
                    self.err(
                        &at,
                        &key,
                        format!("`owned` and `roles` need a caller's token, and {why}"),
                        Some(help.into()),
                    );
                }
            }
        }
    }

    /// Checks across services: dependencies, references, routes, cycles.
    fn cross_checks(
        &mut self,
        services: &[Service],
        spans: &BTreeMap<String, Spanned<String>>,
        all_valid: bool,
    ) {
        let at = |n: &str| spans.get(n).cloned();

        for s in services {
            let Some(span) = at(s.name.as_str()) else {
                continue;
            };
            for r in &s.resources {
                for f in &r.fields {
                    let FieldType::Ref(target) = &f.ty else {
                        continue;
                    };
                    let key = format!("{}.resources.{}.fields.{}", s.name.as_str(), r.name, f.name);
                    let owner = services
                        .iter()
                        .find(|o| o.resources.iter().any(|x| &x.name == target));
                    match owner {
                        None if !all_valid => {}
                        None => {
                            let all: Vec<&str> = services
                                .iter()
                                .flat_map(|o| o.resources.iter().map(|x| x.name.as_str()))
                                .collect();
                            let help = did_you_mean(target, &all)
                                .map(|c| format!("did you mean `ref:{c}`?"));
                            self.err(
                                &span,
                                &key,
                                format!(
                                    "refers to resource {target:?}, which no service declares; resources: {}",
                                    all.join(", ")
                                ),
                                help,
                            );
                        }
                        Some(o) if o.name != s.name && !s.depends_on.contains(&o.name) => {
                            self.err(
                                &span,
                                &key,
                                format!(
                                    "refers to `{target}` of service `{}`, which `{}` does not depend on",
                                    o.name.as_str(),
                                    s.name.as_str()
                                ),
                                Some(format!("add depends_on = [\"{}\"]", o.name.as_str())),
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
        }

        // Route prefixes must be unique across the whole gateway.
        let mut routes: BTreeMap<String, String> = BTreeMap::new();
        let mut resource_names: BTreeMap<String, String> = BTreeMap::new();
        for s in services {
            let Some(span) = at(s.name.as_str()) else {
                continue;
            };
            for r in &s.resources {
                if let Some(other) = resource_names.insert(r.name.clone(), s.name.as_str().into()) {
                    self.err(
                        &span,
                        &format!("{}.resources.{}", s.name.as_str(), r.name),
                        format!("resource `{}` is also declared by service `{other}`; resource names are unique in a system", r.name),
                        None,
                    );
                }
            }
            for prefix in s.route_prefixes().into_iter().chain(s.legacy_prefixes()) {
                if let Some(other) = routes.insert(prefix.clone(), s.name.as_str().into()) {
                    self.err(
                        &span,
                        s.name.as_str(),
                        format!("route {prefix} is also served by `{other}`"),
                        Some("rename the service or the resource (or set `plural`)".into()),
                    );
                }
            }
        }
        if services
            .iter()
            .filter(|s| s.template == Template::Auth)
            .count()
            > 1
        {
            if let Some(span) = services
                .iter()
                .filter(|s| s.template == Template::Auth)
                .nth(1)
                .and_then(|s| at(s.name.as_str()))
            {
                self.err(
                    &span,
                    "template",
                    "only one service may use the auth template".into(),
                    None,
                );
            }
        }

        if let Some(cycle) = find_cycle(services) {
            if let Some(span) = at(&cycle[0]) {
                self.err(
                    &span,
                    "depends_on",
                    format!("dependency cycle: {}", cycle.join(" → ")),
                    Some("synchronous calls must form a tree; use events for the way back".into()),
                );
            }
        }
    }
}

/// A dependency cycle, as a list of names whose first and last are the same.
fn find_cycle(services: &[Service]) -> Option<Vec<String>> {
    fn visit<'a>(
        s: &'a str,
        services: &'a [Service],
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|x| *x == s) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|x| x.to_string()).collect();
            cycle.push(s.to_string());
            return Some(cycle);
        }
        if done.contains(s) {
            return None;
        }
        stack.push(s);
        if let Some(svc) = services.iter().find(|x| x.name.as_str() == s) {
            // Depending on itself is reported on its own, not as a cycle.
            for d in svc.depends_on.iter().filter(|d| d.as_str() != s) {
                if let Some(c) = visit(d.as_str(), services, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(s);
        None
    }
    let mut done = BTreeSet::new();
    for s in services {
        if let Some(c) = visit(s.name.as_str(), services, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
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
    fn sections_are_named_as_key_paths() {
        let text = "top = 1\n[project]\nname = \"x\"\n\n[[services]]\nname = \"a\"\n\n[[services]]\nname = \"b\"\n  [[services.resources]]\n  name = \"r\"\n  [[services.resources]]\n  name = \"s\"\n[[services]]\n  [[services.resources]]\n  x = 1\n";
        let at = |needle: &str, key: &str| section_at(text, text.find(needle).unwrap(), key);
        assert_eq!(at("top", "top"), None);
        assert_eq!(at("name = \"x\"", "name").as_deref(), Some("project"));
        assert_eq!(at("name = \"a\"", "name").as_deref(), Some("services[0]"));
        assert_eq!(at("name = \"b\"", "name").as_deref(), Some("services[1]"));
        assert_eq!(
            at("name = \"r\"", "name").as_deref(),
            Some("services[1].resources[0]")
        );
        assert_eq!(
            at("name = \"s\"", "name").as_deref(),
            Some("services[1].resources[1]")
        );
        assert_eq!(
            at("x = 1", "x").as_deref(),
            Some("services[2].resources[0]")
        );
        // Not the key that starts the line (an inline table, a header): named alone.
        assert_eq!(at("x = 1", "y"), None);
        assert_eq!(at("[[services.resources]]\n  x", "services"), None);
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
