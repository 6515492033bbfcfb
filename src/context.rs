//! What templates see: plain serializable structs computed from the model.
//!
//! All decisions (SQL text, Rust types, environment variables, which crates a
//! workspace needs) are made here in Rust so that templates stay dumb loops and
//! substitutions.

use serde::Serialize;

use crate::model::{
    DatabaseKind, Field, FieldType, Project, RefTarget, Resource, Service, Template,
};

#[derive(Debug, Clone, Serialize)]
pub struct ProjectCtx {
    pub name: String,
    pub name_snake: String,
    pub gateway_port: u16,
    pub gateway_timeout_secs: u64,
    pub has_postgres: bool,
    pub has_sqlite: bool,
    pub has_db: bool,
    pub has_auth: bool,
    pub has_clients: bool,
    /// Some service publishes or consumes events: NATS is part of the system.
    pub has_events: bool,
    /// Feature list of the workspace's sqlx dependency, e.g. `"postgres", "sqlite"`.
    pub sqlx_features: String,
    /// Services deployed on their own (not modules of the monolith).
    pub services: Vec<ServiceCtx>,
    /// Modules of the monolith, rendered into `monolith/src/<module>/`.
    pub modules: Vec<ServiceCtx>,
    /// The monolith as one more deployable crate, when `[monolith]` is declared.
    pub monolith: Option<ServiceCtx>,
    /// Standalone services, then the monolith: every crate with a binary, container
    /// and database of its own.
    pub deployables: Vec<ServiceCtx>,
    /// What the gateway forwards to.
    pub upstreams: Vec<UpstreamCtx>,
    /// Gateway routing table, longest prefix first.
    pub routes: Vec<RouteCtx>,
    pub mermaid: String,
}

/// One event subject, as a publisher or a consumer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EventCtx {
    pub subject: String,
    /// `post.created` → `post_created`, `PostCreated`.
    pub snake: String,
    pub pascal: String,
    /// The JetStream stream that stores it: one per subject, so publisher and
    /// consumer can both create it with the same configuration.
    pub stream: String,
    /// What the payload is: `record` (a resource after create/update), `id` (after
    /// delete) or `json` (any other subject).
    pub payload: &'static str,
    /// For `record` payloads: the resource's fields.
    pub fields: Vec<FieldCtx>,
    /// Durable consumer name of the consuming service.
    pub durable: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamCtx {
    pub name: String,
    pub env: String,
    pub url: String,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteCtx {
    pub prefix: String,
    /// Rust expression for the gateway's `rewrite` field: `None` or `Some("/api/v1/x")`.
    pub rewrite: String,
    pub service: String,
    pub upper: String,
    pub protected: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceCtx {
    pub name: String,
    pub snake: String,
    pub pascal: String,
    pub upper: String,
    pub crate_name: String,
    pub lib_name: String,
    pub dir: String,
    pub port: u16,
    pub database: &'static str,
    pub has_db: bool,
    pub is_postgres: bool,
    pub is_sqlite: bool,
    pub is_auth: bool,
    pub public: bool,
    /// `crate::db::Db`'s concrete pool type.
    pub pool_type: &'static str,
    pub pool_options: &'static str,
    pub db_name: String,
    /// DATABASE_URL default, matching compose.
    pub database_url: String,
    pub depends_on: Vec<DepCtx>,
    pub resources: Vec<ResourceCtx>,
    pub routes: Vec<String>,
    /// A module of the monolith: its code lives in `monolith/src/<snake>/`.
    pub in_monolith: bool,
    /// Path of the crate root as its code sees it: `crate`, or `crate::<module>`.
    pub crate_root: String,
    /// Dependencies reached over HTTP (the others are modules called in process).
    pub http_deps: Vec<DepCtx>,
    /// `mod` items of the monolith's `lib.rs`, sorted.
    pub lib_modules: Vec<String>,
    pub publishes: Vec<EventCtx>,
    pub consumes: Vec<EventCtx>,
    /// Publishes or consumes: connects to NATS.
    pub has_events: bool,
    /// Payload types of every subject published or consumed, once each.
    pub event_types: Vec<EventCtx>,
    /// SQL of the processed-events table (consumers), as Rust `const` items.
    pub events_sql_consts: String,
    /// `mod` items of a module's `mod.rs`, sorted.
    pub module_mods: Vec<String>,
    /// What a module re-exports from the monolith's root: `db, state` or `state`.
    pub module_reexports: String,
    /// Modules of `handlers/`, sorted as rustfmt orders `mod` items.
    pub handler_modules: Vec<String>,
    /// Modules of `models/` and `repo/`, sorted.
    pub resource_modules: Vec<String>,
    /// Modules of `clients/`, sorted.
    pub client_modules: Vec<String>,
    /// SQL of the auth template's users table, as Rust `const` items.
    pub auth_sql_consts: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DepCtx {
    pub name: String,
    pub snake: String,
    pub pascal: String,
    pub upper: String,
    pub crate_name: String,
    pub port: u16,
    pub url: String,
    /// Compose / Kubernetes host serving it: its own, or `monolith`.
    pub host: String,
    /// Called in process: both sides are modules of the monolith.
    pub in_process: bool,
    pub resources: Vec<ResourceCtx>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceCtx {
    pub name: String,
    pub pascal: String,
    pub plural: String,
    pub segment: String,
    pub path: String,
    pub table: String,
    pub fields: Vec<FieldCtx>,
    /// Whether any field has a check (else the error list stays immutable).
    pub has_checks: bool,
    /// Whether any field refers to another resource (local or remote).
    pub has_refs: bool,
    pub remote_refs: Vec<RemoteRefCtx>,
    /// Some reference is checked over HTTP (else in process, or a foreign key).
    pub http_refs: bool,
    /// Events the owning service publishes on this resource's writes.
    pub publish_created: bool,
    pub publish_updated: bool,
    pub publish_deleted: bool,
    pub sql: SqlCtx,
    /// The SQL as Rust `const` items, laid out as rustfmt would.
    pub sql_consts: String,
    /// `VALID` and `INVALID` request bodies as Rust `const` items, for generated tests.
    pub sample_consts: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldCtx {
    pub name: String,
    pub rust_type: String,
    pub optional: bool,
    /// The `common::validate::Errors` method that checks the value, if any.
    pub check: Option<String>,
    /// How `input.<name>` is handed to `.bind()`: by value when the type is Copy.
    pub bind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteRefCtx {
    pub field: String,
    pub optional: bool,
    pub service_snake: String,
    pub service_name: String,
    pub resource: String,
    pub client_type: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SqlCtx {
    pub create_table: String,
    pub insert: String,
    pub select_one: String,
    pub select_page: String,
    pub count: String,
    pub update: String,
    pub delete: String,
}

impl ProjectCtx {
    pub fn new(p: &Project) -> Self {
        let kinds = p.database_kinds();
        let has_postgres = kinds.contains(&DatabaseKind::Postgres);
        let has_sqlite = kinds.contains(&DatabaseKind::Sqlite);
        let mut features = vec!["runtime-tokio", "macros", "migrate", "chrono"];
        if has_postgres {
            features.push("postgres");
        }
        if has_sqlite {
            features.push("sqlite");
        }
        let has_auth = p.auth_service().is_some();
        let services: Vec<ServiceCtx> = p.standalone().map(|s| service_ctx(p, s)).collect();
        let modules: Vec<ServiceCtx> = p.modules().map(|s| service_ctx(p, s)).collect();
        let monolith = p
            .monolith
            .as_ref()
            .map(|m| monolith_ctx(p, m.port.get(), &modules));
        let mut deployables = services.clone();
        deployables.extend(monolith.clone());
        let mut upstreams: Vec<UpstreamCtx> = services
            .iter()
            .map(|s| UpstreamCtx {
                name: s.name.clone(),
                env: format!("{}_SERVICE_URL", s.upper),
                url: format!("http://{}:{}", s.crate_name, s.port),
                host: s.crate_name.clone(),
            })
            .collect();
        if let Some(m) = &monolith {
            upstreams.push(UpstreamCtx {
                name: "monolith".into(),
                env: "MONOLITH_URL".into(),
                url: format!("http://monolith:{}", m.port),
                host: "monolith".into(),
            });
        }
        let mut routes: Vec<RouteCtx> = Vec::new();
        for s in &p.services {
            // The auth service guards its own routes: login must be reachable.
            let protected = has_auth && !s.public && s.template != Template::Auth;
            let upstream = if s.in_monolith {
                "monolith".to_string()
            } else {
                s.name.as_str().to_string()
            };
            let upper = if s.in_monolith {
                "MONOLITH".to_string()
            } else {
                s.name.upper()
            };
            for prefix in s.route_prefixes() {
                routes.push(RouteCtx {
                    prefix,
                    rewrite: "None".into(),
                    service: upstream.clone(),
                    upper: upper.clone(),
                    protected,
                });
            }
            for (legacy, versioned) in s.legacy_prefixes().into_iter().zip(s.route_prefixes()) {
                // Extracted services only serve the versioned path: the gateway rewrites.
                let rewrite = if s.in_monolith {
                    "None".to_string()
                } else {
                    format!("Some(\"{versioned}\")")
                };
                routes.push(RouteCtx {
                    prefix: legacy,
                    rewrite,
                    service: upstream.clone(),
                    upper: upper.clone(),
                    protected,
                });
            }
        }
        if p.monolith.is_some() {
            // Strangler fig: whatever no service claims still goes to the monolith.
            routes.push(RouteCtx {
                prefix: "/api".into(),
                rewrite: "None".into(),
                service: "monolith".into(),
                upper: "MONOLITH".into(),
                protected: false,
            });
        }
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        ProjectCtx {
            name: p.name.as_str().to_string(),
            name_snake: p.name.snake(),
            gateway_port: p.gateway.port.get(),
            gateway_timeout_secs: p.gateway.timeout_secs,
            has_postgres,
            has_sqlite,
            has_db: has_postgres || has_sqlite,
            has_auth,
            has_events: p
                .services
                .iter()
                .any(|s| !s.publishes.is_empty() || !s.consumes.is_empty()),
            has_clients: p
                .services
                .iter()
                .any(|s| s.depends_on.iter().any(|d| !in_process(p, s, d.as_str()))),
            sqlx_features: features
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect::<Vec<_>>()
                .join(", "),
            services,
            modules,
            monolith,
            deployables,
            upstreams,
            routes,
            mermaid: crate::graph::mermaid(p),
        }
    }
}

impl ProjectCtx {
    /// The project's scalars only (name, flags, ports): what per-service templates use.
    pub fn without_lists(&self) -> ProjectCtx {
        ProjectCtx {
            services: Vec::new(),
            modules: Vec::new(),
            monolith: None,
            deployables: Vec::new(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            mermaid: String::new(),
            ..self.clone()
        }
    }
}

fn service_ctx(p: &Project, s: &Service) -> ServiceCtx {
    let db_name = s.name.snake();
    let database_url = match s.database {
        DatabaseKind::Postgres => format!(
            "postgres://postgres:postgres@{}-db:5432/{db_name}",
            s.name.as_str()
        ),
        DatabaseKind::Sqlite => format!("sqlite://data/{db_name}.db"),
        DatabaseKind::None => String::new(),
    };
    let depends_on = s
        .depends_on
        .iter()
        .filter_map(|d| p.service(d.as_str()))
        .map(|d| dep_ctx(p, s, d))
        .collect::<Vec<DepCtx>>();
    let http_deps = depends_on
        .iter()
        .filter(|d| !d.in_process)
        .cloned()
        .collect();
    ServiceCtx {
        name: s.name.as_str().to_string(),
        snake: s.name.snake(),
        pascal: s.name.pascal(),
        upper: s.name.upper(),
        crate_name: s.name.crate_name(),
        lib_name: s.name.crate_name().replace('-', "_"),
        dir: format!("services/{}", s.name.as_str()),
        port: s.port.get(),
        database: s.database.as_str(),
        has_db: s.database != DatabaseKind::None,
        is_postgres: s.database == DatabaseKind::Postgres,
        is_sqlite: s.database == DatabaseKind::Sqlite,
        is_auth: s.template == Template::Auth,
        public: s.public,
        pool_type: match s.database {
            DatabaseKind::Sqlite => "sqlx::SqlitePool",
            _ => "sqlx::PgPool",
        },
        pool_options: match s.database {
            DatabaseKind::Sqlite => "sqlx::sqlite::SqlitePoolOptions",
            _ => "sqlx::postgres::PgPoolOptions",
        },
        db_name,
        database_url,
        depends_on,
        resources: s.resources.iter().map(|r| resource_ctx(p, s, r)).collect(),
        routes: s.route_prefixes(),
        auth_sql_consts: auth_sql_consts(s.database),
        in_monolith: s.in_monolith,
        crate_root: if s.in_monolith {
            format!("crate::{}", s.name.snake())
        } else {
            "crate".into()
        },
        http_deps,
        lib_modules: Vec::new(),
        publishes: s.publishes.iter().map(|e| event_ctx(p, s, e)).collect(),
        consumes: s.consumes.iter().map(|e| event_ctx(p, s, e)).collect(),
        has_events: !s.publishes.is_empty() || !s.consumes.is_empty(),
        event_types: {
            let mut seen: Vec<String> = Vec::new();
            s.publishes
                .iter()
                .chain(&s.consumes)
                .filter(|e| {
                    let new = !seen.contains(e);
                    seen.push((*e).clone());
                    new
                })
                .map(|e| event_ctx(p, s, e))
                .collect()
        },
        events_sql_consts: events_sql_consts(s.database),
        module_mods: sorted(
            ["handlers", "routes"]
                .into_iter()
                .chain((!s.resources.is_empty()).then_some("models"))
                .chain((!s.resources.is_empty()).then_some("repo"))
                .chain((s.template == Template::Auth).then_some("users"))
                .map(str::to_string),
        ),
        module_reexports: if s.database == DatabaseKind::None {
            "state".into()
        } else {
            "db, state".into()
        },
        handler_modules: sorted(
            ["health".to_string()]
                .into_iter()
                .filter(|_| !s.in_monolith)
                .chain((!s.consumes.is_empty()).then(|| "events".to_string()))
                .chain((s.template == Template::Auth).then(|| "auth".to_string()))
                .chain(s.resources.iter().map(|r| r.name.clone())),
        ),
        resource_modules: sorted(s.resources.iter().map(|r| r.name.clone())),
        client_modules: sorted(s.depends_on.iter().map(|d| d.snake())),
    }
}

fn event_ctx(p: &Project, s: &Service, subject: &str) -> EventCtx {
    let snake = subject.replace('.', "_");
    let mut tokens = subject.splitn(2, '.');
    let (first, rest) = (
        tokens.next().unwrap_or_default(),
        tokens.next().unwrap_or_default(),
    );
    let resource = p.resource(first);
    let (payload, fields) = match (resource, rest) {
        (Some(r), "created" | "updated") => ("record", r.fields.iter().map(field_ctx).collect()),
        (Some(_), "deleted") => ("id", Vec::new()),
        _ => ("json", Vec::new()),
    };
    EventCtx {
        subject: subject.to_string(),
        pascal: pascal_of(&snake),
        stream: snake.to_uppercase(),
        durable: format!("{}-{}", s.name.as_str(), subject.replace(['.', '_'], "-")),
        snake,
        payload,
        fields,
    }
}

fn pascal_of(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Whether `s` calls `dep` in process: both are modules of the monolith.
fn in_process(p: &Project, s: &Service, dep: &str) -> bool {
    s.in_monolith && p.service(dep).is_some_and(|d| d.in_monolith)
}

fn dep_ctx(p: &Project, s: &Service, d: &Service) -> DepCtx {
    let (host, port) = match (&p.monolith, d.in_monolith) {
        (Some(m), true) => ("monolith".to_string(), m.port.get()),
        _ => (d.name.crate_name(), d.port.get()),
    };
    DepCtx {
        name: d.name.as_str().to_string(),
        snake: d.name.snake(),
        pascal: d.name.pascal(),
        upper: d.name.upper(),
        crate_name: d.name.crate_name(),
        port,
        url: format!("http://{host}:{port}"),
        host,
        in_process: in_process(p, s, d.name.as_str()),
        resources: d.resources.iter().map(|r| resource_ctx(p, d, r)).collect(),
    }
}

/// The monolith as a deployable crate: one database, the modules' dependencies as
/// clients (in process between modules, HTTP to extracted services).
fn monolith_ctx(p: &Project, port: u16, modules: &[ServiceCtx]) -> ServiceCtx {
    let kind = p.default_database;
    let mut depends_on: Vec<DepCtx> = Vec::new();
    for m in p.modules() {
        for d in &m.depends_on {
            if depends_on.iter().any(|x| x.name == d.as_str()) {
                continue;
            }
            if let Some(dep) = p.service(d.as_str()) {
                depends_on.push(dep_ctx(p, m, dep));
            }
        }
    }
    let http_deps: Vec<DepCtx> = depends_on
        .iter()
        .filter(|d| !d.in_process)
        .cloned()
        .collect();
    let mut lib_modules: Vec<String> = ["config", "handlers", "routes", "startup", "state"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if kind != DatabaseKind::None {
        lib_modules.push("db".into());
    }
    if !depends_on.is_empty() {
        lib_modules.push("clients".into());
    }
    lib_modules.extend(modules.iter().map(|m| m.snake.clone()));
    let database_url = match kind {
        DatabaseKind::Postgres => "postgres://postgres:postgres@monolith-db:5432/monolith".into(),
        DatabaseKind::Sqlite => "sqlite://data/monolith.db".into(),
        DatabaseKind::None => String::new(),
    };
    ServiceCtx {
        name: "monolith".into(),
        snake: "monolith".into(),
        pascal: "Monolith".into(),
        upper: "MONOLITH".into(),
        crate_name: "monolith".into(),
        lib_name: "monolith".into(),
        dir: "monolith".into(),
        port,
        database: kind.as_str(),
        has_db: kind != DatabaseKind::None,
        is_postgres: kind == DatabaseKind::Postgres,
        is_sqlite: kind == DatabaseKind::Sqlite,
        is_auth: modules.iter().any(|m| m.is_auth),
        public: false,
        pool_type: if kind == DatabaseKind::Sqlite {
            "sqlx::SqlitePool"
        } else {
            "sqlx::PgPool"
        },
        pool_options: if kind == DatabaseKind::Sqlite {
            "sqlx::sqlite::SqlitePoolOptions"
        } else {
            "sqlx::postgres::PgPoolOptions"
        },
        db_name: "monolith".into(),
        database_url,
        client_modules: sorted(depends_on.iter().map(|d| d.snake.clone())),
        depends_on,
        http_deps,
        // Every module's resources: the monolith's tests exercise them all.
        resources: modules.iter().flat_map(|m| m.resources.clone()).collect(),
        routes: modules.iter().flat_map(|m| m.routes.clone()).collect(),
        auth_sql_consts: auth_sql_consts(kind),
        in_monolith: false,
        crate_root: "crate".into(),
        lib_modules: sorted(lib_modules),
        publishes: Vec::new(),
        consumes: Vec::new(),
        has_events: false,
        event_types: Vec::new(),
        events_sql_consts: String::new(),
        module_mods: Vec::new(),
        module_reexports: String::new(),
        handler_modules: vec!["health".into()],
        resource_modules: Vec::new(),
    }
}

fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().collect();
    v.sort();
    v
}

pub fn ref_target(p: &Project, s: &Service, target: &str) -> RefTarget {
    match p.owner_of(target) {
        Some(o) if o.name != s.name => RefTarget::Remote(o.name.clone()),
        _ => RefTarget::Local,
    }
}

fn resource_ctx(p: &Project, s: &Service, r: &Resource) -> ResourceCtx {
    let remote_refs = r
        .fields
        .iter()
        .filter_map(|f| match &f.ty {
            FieldType::Ref(target) => match ref_target(p, s, target) {
                RefTarget::Remote(owner) => Some(RemoteRefCtx {
                    field: f.name.clone(),
                    optional: f.optional,
                    service_snake: owner.snake(),
                    service_name: owner.as_str().to_string(),
                    resource: target.clone(),
                    client_type: format!("{}Client", owner.pascal()),
                }),
                RefTarget::Local => None,
            },
            _ => None,
        })
        .collect();
    let fields: Vec<FieldCtx> = r.fields.iter().map(field_ctx).collect();
    let sql = sql_ctx(p, s, r);
    let http_refs = r.fields.iter().any(|f| match &f.ty {
        FieldType::Ref(t) => {
            matches!(ref_target(p, s, t), RefTarget::Remote(o) if !in_process(p, s, o.as_str()))
        }
        _ => false,
    });
    let publishes = |action: &str| s.publishes.contains(&format!("{}.{action}", r.name));
    ResourceCtx {
        http_refs,
        publish_created: publishes("created"),
        publish_updated: publishes("updated"),
        publish_deleted: publishes("deleted"),
        has_checks: fields.iter().any(|f| f.check.is_some()),
        has_refs: r.fields.iter().any(|f| matches!(f.ty, FieldType::Ref(_))),
        name: r.name.clone(),
        pascal: r.pascal(),
        plural: r.plural.clone(),
        segment: r.path_segment(),
        path: format!("/api/v1/{}", r.path_segment()),
        table: r.plural.clone(),
        fields,
        remote_refs,
        sql_consts: sql_consts(&sql),
        sql,
        sample_consts: [
            rust_str_const("    ", "VALID", &sample_json(r, false)),
            rust_str_const("    ", "INVALID", &sample_json(r, true)),
        ]
        .join("\n"),
    }
}

fn rust_base_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::String | FieldType::Text | FieldType::Email => "String",
        FieldType::I32 => "i32",
        FieldType::I64 | FieldType::Ref(_) => "i64",
        FieldType::F64 => "f64",
        FieldType::Bool => "bool",
        FieldType::DateTime => "chrono::DateTime<chrono::Utc>",
    }
}

fn field_ctx(f: &Field) -> FieldCtx {
    let base = rust_base_type(&f.ty);
    let rust_type = if f.optional {
        format!("Option<{base}>")
    } else {
        base.to_string()
    };
    // The method of `common::validate::Errors` that checks this type, if any.
    let check = match f.ty {
        FieldType::String => Some("string"),
        FieldType::Text => Some("text"),
        FieldType::Email => Some("email"),
        FieldType::F64 => Some("finite"),
        FieldType::Ref(_) => Some("positive_id"),
        _ => None,
    };
    FieldCtx {
        name: f.name.clone(),
        rust_type,
        optional: f.optional,
        check: check.map(str::to_string),
        bind: if matches!(f.ty, FieldType::String | FieldType::Text | FieldType::Email) {
            format!("&input.{}", f.name)
        } else {
            format!("input.{}", f.name)
        },
    }
}

fn sql_type(kind: DatabaseKind, ty: &FieldType) -> &'static str {
    let pg = kind == DatabaseKind::Postgres;
    match ty {
        FieldType::String | FieldType::Text | FieldType::Email => "TEXT",
        FieldType::I32 => "INTEGER",
        FieldType::I64 | FieldType::Ref(_) => {
            if pg {
                "BIGINT"
            } else {
                "INTEGER"
            }
        }
        FieldType::F64 => {
            if pg {
                "DOUBLE PRECISION"
            } else {
                "REAL"
            }
        }
        FieldType::Bool => "BOOLEAN",
        FieldType::DateTime => {
            if pg {
                "TIMESTAMPTZ"
            } else {
                "TEXT"
            }
        }
    }
}

/// Identifiers are always quoted: field names such as `user` or `order` are reserved
/// words in SQL but fine in `services.toml`.
fn q(ident: &str) -> String {
    format!("\"{ident}\"")
}

fn sql_ctx(p: &Project, s: &Service, r: &Resource) -> SqlCtx {
    let kind = s.database;
    let pg = kind == DatabaseKind::Postgres;
    let ph = |i: usize| if pg { format!("${i}") } else { "?".to_string() };
    let table = q(&r.plural);
    let id_col = if pg {
        "\"id\" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    } else {
        "\"id\" INTEGER PRIMARY KEY AUTOINCREMENT"
    };
    let ts_type = if pg { "TIMESTAMPTZ" } else { "TEXT" };
    let mut cols = vec![format!("    {id_col}")];
    for f in &r.fields {
        let mut col = format!("    {} {}", q(&f.name), sql_type(kind, &f.ty));
        if !f.optional {
            col.push_str(" NOT NULL");
        }
        if let FieldType::Ref(target) = &f.ty {
            if ref_target(p, s, target) == RefTarget::Local {
                if let Some(t) = p.resource(target) {
                    col.push_str(&format!(
                        " REFERENCES {} (\"id\") ON DELETE CASCADE",
                        q(&t.plural)
                    ));
                }
            }
        }
        cols.push(col);
    }
    cols.push(format!("    \"created_at\" {ts_type} NOT NULL"));
    cols.push(format!("    \"updated_at\" {ts_type} NOT NULL"));
    let create_table = format!(
        "CREATE TABLE IF NOT EXISTS {table} (\n{}\n);\n",
        cols.join(",\n")
    );

    let all_cols: Vec<String> = std::iter::once("id".to_string())
        .chain(r.fields.iter().map(|f| f.name.clone()))
        .chain(["created_at".to_string(), "updated_at".to_string()])
        .map(|c| q(&c))
        .collect();
    let select_list = all_cols.join(", ");
    let n = r.fields.len();
    let insert_cols: Vec<String> = r
        .fields
        .iter()
        .map(|f| q(&f.name))
        .chain([q("created_at"), q("updated_at")])
        .collect();
    let insert_vals: Vec<String> = (1..=n + 2).map(ph).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({}) RETURNING {select_list}",
        insert_cols.join(", "),
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
        "UPDATE {table} SET {} WHERE \"id\" = {} RETURNING {select_list}",
        sets.join(", "),
        ph(n + 2)
    );
    SqlCtx {
        create_table,
        insert,
        select_one: format!("SELECT {select_list} FROM {table} WHERE \"id\" = {}", ph(1)),
        select_page: format!(
            "SELECT {select_list} FROM {table} ORDER BY \"id\" LIMIT {} OFFSET {}",
            ph(1),
            ph(2)
        ),
        count: format!("SELECT COUNT(*) FROM {table}"),
        update,
        delete: format!("DELETE FROM {table} WHERE \"id\" = {}", ph(1)),
    }
}

/// A JSON object for tests: valid values, or (`invalid`) values the checks reject.
fn sample_json(r: &Resource, invalid: bool) -> String {
    let mut parts = Vec::new();
    for f in &r.fields {
        let value = match (&f.ty, invalid) {
            (FieldType::String, false) => format!("\"sample {}\"", f.name),
            (FieldType::String, true) => "\"  \"".into(),
            (FieldType::Text, false) => format!("\"sample {} text\"", f.name),
            (FieldType::Text, true) => "\"\"".into(),
            (FieldType::Email, false) => "\"someone@example.com\"".into(),
            (FieldType::Email, true) => "\"not-an-email\"".into(),
            (FieldType::I32 | FieldType::I64, _) => "7".into(),
            (FieldType::F64, _) => "1.5".into(),
            (FieldType::Bool, _) => "true".into(),
            (FieldType::DateTime, _) => "\"2024-01-02T03:04:05Z\"".into(),
            (FieldType::Ref(_), false) => "1".into(),
            (FieldType::Ref(_), true) => "0".into(),
        };
        parts.push(format!("\"{}\": {value}", f.name));
    }
    format!("{{{}}}", parts.join(", "))
}

/// `const NAME: &str = r#"..."#;`, broken after `=` when longer than rustfmt's 100
/// columns, exactly as `cargo fmt` lays it out.
pub fn rust_str_const(indent: &str, name: &str, value: &str) -> String {
    let one_line = format!("{indent}const {name}: &str = r#\"{value}\"#;");
    let broken_tail = format!("{indent}    r#\"{value}\"#;");
    if one_line.chars().count() <= 100 || broken_tail.chars().count() > 100 {
        // rustfmt keeps a line it cannot bring under the limit either way.
        one_line
    } else {
        format!("{indent}const {name}: &str =\n{broken_tail}")
    }
}

fn events_sql_consts(kind: DatabaseKind) -> String {
    let ph = |i: usize| {
        if kind == DatabaseKind::Sqlite {
            "?".to_string()
        } else {
            format!("${i}")
        }
    };
    [
        rust_str_const(
            "",
            "SEEN",
            &format!(r#"SELECT COUNT(*) FROM "processed_events" WHERE "event_id" = {}"#, ph(1)),
        ),
        rust_str_const(
            "",
            "RECORD",
            &format!(
                r#"INSERT INTO "processed_events" ("event_id", "subject", "handled_at") VALUES ({}, {}, {}) ON CONFLICT ("event_id") DO NOTHING"#,
                ph(1),
                ph(2),
                ph(3)
            ),
        ),
        rust_str_const("", "HANDLED", r#"SELECT COUNT(*) FROM "processed_events""#),
    ]
    .join("\n")
}

fn auth_sql_consts(kind: DatabaseKind) -> String {
    let ph = |i: usize| {
        if kind == DatabaseKind::Sqlite {
            "?".to_string()
        } else {
            format!("${i}")
        }
    };
    let cols = r#""id", "email", "password_hash", "created_at""#;
    let insert = format!(
        r#"INSERT INTO "auth_users" ("email", "password_hash", "created_at") VALUES ({}, {}, {}) RETURNING {cols}"#,
        ph(1),
        ph(2),
        ph(3)
    );
    let by_email = format!(
        r#"SELECT {cols} FROM "auth_users" WHERE "email" = {}"#,
        ph(1)
    );
    [
        rust_str_const("", "INSERT", &insert),
        rust_str_const("", "BY_EMAIL", &by_email),
    ]
    .join("\n")
}

fn sql_consts(sql: &SqlCtx) -> String {
    [
        ("INSERT", &sql.insert),
        ("SELECT_ONE", &sql.select_one),
        ("SELECT_PAGE", &sql.select_page),
        ("COUNT", &sql.count),
        ("UPDATE", &sql.update),
        ("DELETE", &sql.delete),
    ]
    .iter()
    .map(|(n, v)| rust_str_const("", n, v))
    .collect::<Vec<_>>()
    .join("\n")
}
