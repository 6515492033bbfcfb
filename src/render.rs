//! Renders a validated [`Project`] into a [`Plan`] with the embedded Tera templates.
//!
//! Template folders map onto the output tree:
//!
//! | folder          | rendered                         | into                         |
//! |-----------------|----------------------------------|------------------------------|
//! | `workspace/`    | once                             | the project root             |
//! | `common/`       | once                             | `common/`                    |
//! | `gateway/`      | once                             | `gateway/`                   |
//! | `service/`      | per service                      | `services/<name>/`           |
//! | `service-auth/` | per service with template "auth" | `services/<name>/`           |
//! | `resource/`     | per resource (`__resource__`)    | `services/<name>/`           |
//! | `client/`       | per dependency (`__dep__`)       | `services/<name>/`           |
//! | `per-service/`  | per service (`__service__`)      | the project root             |
//! | `monolith/`     | once, with `[monolith]`          | `monolith/`                  |
//! | `module/`       | per module of the monolith       | `monolith/src/<module>/`     |
//! | `inproc/`       | per dependency between modules   | `monolith/`                  |
//!
//! The monolith reuses the service templates listed in [`MONOLITH_FROM_SERVICE`]
//! (rendered with the monolith as the service), and each module renders the files of
//! [`MODULE_FILES`] from the service templates into its own directory, so that a
//! module's code and the service it becomes after `msgen split` differ only in their
//! `crate::` paths.
//!
//! Templates rendered per service, resource, dependency or module see `project`
//! without its lists (services, routes, ...): only its scalars.
//!
//! A template whose output is blank is skipped: that is how optional files (a
//! database module for a service without one) disappear. Migrations come from Rust,
//! since their file names must stay stable across renders.

use std::collections::BTreeMap;
use std::path::Path;

use include_dir::{include_dir, Dir};
use tera::{Context, Tera};

use crate::context::{ProjectCtx, ServiceCtx};
use crate::model::{Project, Template};
use crate::plan::{Ownership, Plan};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Service templates the monolith crate renders as its own.
const MONOLITH_FROM_SERVICE: &[&str] = &[
    "service/Dockerfile.tera",
    "service/src/clients/mod.rs.tera",
    "service/src/config.rs.tera",
    "service/src/db.rs.tera",
    "service/src/handlers/health.rs.tera",
    "service/src/handlers/mod.rs.tera",
    "service/src/main.rs.tera",
    "service/src/startup.rs.tera",
    "service/src/state.rs.tera",
    "service/tests/api.rs.tera",
];

/// The one service template an adopted service renders.
const ADOPTED_DOCKERFILE: &str = "service/Dockerfile.tera";

/// Files of a service (under `src/`) that a module of the monolith has too.
pub const MODULE_FILES: &[&str] = &[
    "src/handlers/__resource__.rs",
    "src/handlers/auth.rs",
    "src/handlers/mod.rs",
    "src/models/__resource__.rs",
    "src/models/mod.rs",
    "src/repo/__resource__.rs",
    "src/repo/mod.rs",
    "src/users.rs",
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
}

fn tera_error(name: &str, e: tera::Error) -> RenderError {
    // Tera nests the useful message in its source chain.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    RenderError::Template {
        name: name.to_string(),
        detail,
    }
}

/// Loads every embedded template once.
pub struct Renderer {
    tera: Tera,
    names: Vec<String>,
}

impl Renderer {
    pub fn new() -> Result<Self, RenderError> {
        let mut files = Vec::new();
        collect(&TEMPLATES, &mut files);
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        let mut names = Vec::new();
        for (name, body) in files {
            tera.add_raw_template(&name, body)
                .map_err(|e| tera_error(&name, e))?;
            names.push(name);
        }
        names.sort();
        Ok(Self { tera, names })
    }

    fn render(&self, name: &str, ctx: &Context) -> Result<String, RenderError> {
        self.tera.render(name, ctx).map_err(|e| tera_error(name, e))
    }

    fn group<'a>(&'a self, folder: &'a str) -> impl Iterator<Item = (&'a str, String)> + 'a {
        let prefix = format!("{folder}/");
        self.names.iter().filter_map(move |n| {
            n.strip_prefix(&prefix)
                .map(|rest| (n.as_str(), rest.trim_end_matches(".tera").to_string()))
        })
    }

    /// Renders the whole project. `existing_migrations` lists the migration file
    /// names already in each service (`services/<name>/migrations`), so that a
    /// resource keeps the migration it was created with.
    pub fn plan(
        &self,
        project: &Project,
        existing_migrations: &BTreeMap<String, Vec<String>>,
    ) -> Result<Plan, RenderError> {
        let pctx = ProjectCtx::new(project);
        let mut plan = Plan::default();
        let mut base = Context::new();
        base.insert("project", &pctx);

        for folder in ["workspace", "common", "gateway"] {
            for (name, rel) in self.group(folder) {
                let out = if folder == "workspace" {
                    rel
                } else {
                    format!("{folder}/{rel}")
                };
                self.emit(&mut plan, name, out, &base)?;
            }
        }

        // New migrations are numbered after every migration of the project: a version
        // a split moved away must never be reused in the database it came from.
        let last_version = existing_migrations
            .values()
            .flatten()
            .filter_map(|n| n.split('_').next()?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);

        // Per-service templates see the project without its lists: cloning those into
        // every service's context made rendering quadratic in the number of services.
        let mut per_service = Context::new();
        per_service.insert("project", &pctx.without_lists());

        if let Some(mctx) = &pctx.monolith {
            let mut ctx = base.clone();
            ctx.insert("service", mctx);
            for name in MONOLITH_FROM_SERVICE {
                let rel = name
                    .trim_start_matches("service/")
                    .trim_end_matches(".tera");
                self.emit(&mut plan, name, format!("monolith/{rel}"), &ctx)?;
            }
            for (name, rel) in self.group("monolith") {
                self.emit(&mut plan, name, format!("monolith/{rel}"), &ctx)?;
            }
            for (name, rel) in self.group("per-service") {
                self.emit(
                    &mut plan,
                    name,
                    rel.replace("__service__", "monolith"),
                    &ctx,
                )?;
            }
            for dctx in &mctx.depends_on {
                let mut dc = ctx.clone();
                dc.insert("dep", dctx);
                let folder = if dctx.in_process { "inproc" } else { "client" };
                for (name, rel) in self.group(folder) {
                    let rel = rel.replace("__dep__", &dctx.snake);
                    self.emit(&mut plan, name, format!("monolith/{rel}"), &dc)?;
                }
            }
            for (module, sctx) in project.modules().zip(&pctx.modules) {
                let mut ctx = per_service.clone();
                ctx.insert("service", sctx);
                let dir = format!("monolith/src/{}", module.name.snake());
                let mut folders = vec!["service", "resource"];
                if module.template == Template::Auth {
                    folders.push("service-auth");
                }
                for folder in folders {
                    for (name, rel) in self.group(folder) {
                        if !MODULE_FILES.contains(&rel.as_str()) {
                            continue;
                        }
                        let rel = rel.trim_start_matches("src/");
                        if rel.contains("__resource__") {
                            for rctx in &sctx.resources {
                                let mut rc = ctx.clone();
                                rc.insert("resource", rctx);
                                let out = rel.replace("__resource__", &rctx.name);
                                self.emit(&mut plan, name, format!("{dir}/{out}"), &rc)?;
                            }
                        } else {
                            self.emit(&mut plan, name, format!("{dir}/{rel}"), &ctx)?;
                        }
                    }
                }
                for (name, rel) in self.group("module") {
                    self.emit(&mut plan, name, format!("{dir}/{rel}"), &ctx)?;
                }
            }
            let existing = existing_migrations
                .get("monolith")
                .cloned()
                .unwrap_or_default();
            for (file, sql) in migrations(&pctx.modules, &existing, last_version) {
                plan.add(
                    format!("monolith/migrations/{file}"),
                    sql,
                    Ownership::CreateOnly,
                );
            }
        }

        for (svc, sctx) in project.standalone().zip(&pctx.services) {
            let mut ctx = per_service.clone();
            ctx.insert("service", sctx);
            let dir = &sctx.dir;
            if svc.adopted {
                // Its code is the user's (moved by `split --from`): msgen renders
                // only what deploys it.
                self.emit(
                    &mut plan,
                    ADOPTED_DOCKERFILE,
                    format!("{dir}/Dockerfile"),
                    &ctx,
                )?;
                for (name, rel) in self.group("per-service") {
                    let rel = rel.replace("__service__", svc.name.as_str());
                    self.emit(&mut plan, name, rel, &ctx)?;
                }
                continue;
            }
            let mut folders = vec!["service"];
            if svc.template == Template::Auth {
                folders.push("service-auth");
            }
            for folder in folders {
                for (name, rel) in self.group(folder) {
                    self.emit(&mut plan, name, format!("{dir}/{rel}"), &ctx)?;
                }
            }
            for rctx in &sctx.resources {
                let mut rc = ctx.clone();
                rc.insert("resource", rctx);
                for (name, rel) in self.group("resource") {
                    let rel = rel.replace("__resource__", &rctx.name);
                    self.emit(&mut plan, name, format!("{dir}/{rel}"), &rc)?;
                }
            }
            for dctx in &sctx.depends_on {
                let mut dc = ctx.clone();
                dc.insert("dep", dctx);
                for (name, rel) in self.group("client") {
                    let rel = rel.replace("__dep__", &dctx.snake);
                    self.emit(&mut plan, name, format!("{dir}/{rel}"), &dc)?;
                }
            }
            for (name, rel) in self.group("per-service") {
                let rel = rel.replace("__service__", svc.name.as_str());
                self.emit(&mut plan, name, rel, &ctx)?;
            }
            let existing = existing_migrations
                .get(svc.name.as_str())
                .cloned()
                .unwrap_or_default();
            for (file, sql) in migrations(std::slice::from_ref(sctx), &existing, last_version) {
                plan.add(
                    format!("{dir}/migrations/{file}"),
                    sql,
                    Ownership::CreateOnly,
                );
            }
        }
        Ok(plan)
    }

    fn emit(
        &self,
        plan: &mut Plan,
        name: &str,
        out: String,
        ctx: &Context,
    ) -> Result<(), RenderError> {
        let text = self.render(name, ctx)?;
        if text.trim().is_empty() {
            return Ok(());
        }
        plan.add(out, text, Ownership::Managed);
        Ok(())
    }
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<(String, &'a str)>) {
    for f in dir.files() {
        if let (Some(path), Some(body)) = (f.path().to_str(), f.contents_utf8()) {
            out.push((path.replace('\\', "/"), body));
        }
    }
    for d in dir.dirs() {
        collect(d, out);
    }
}

/// One migration per table of `owners` (a service, or the monolith's modules that
/// share its database), numbered in declaration order. A table whose migration
/// already exists keeps its file; new tables are numbered after the last one.
fn migrations(
    owners: &[ServiceCtx],
    existing: &[String],
    last_version: u32,
) -> Vec<(String, String)> {
    let mut tables: Vec<(String, String)> = Vec::new();
    for s in owners.iter().filter(|s| s.has_db) {
        if s.is_auth {
            tables.push((AUTH_TABLE.into(), auth_users_sql(s.is_postgres)));
        }
        for r in &s.resources {
            tables.push((r.table.clone(), r.sql.create_table.clone()));
        }
        if !s.consumes.is_empty() {
            tables.push((EVENTS_TABLE.into(), processed_events_sql(s.is_postgres)));
        }
    }
    let version_of = |name: &str| -> Option<u32> { name.split('_').next()?.parse().ok() };
    let mut next = last_version + 1;
    let mut out = Vec::new();
    for (table, sql) in tables {
        let suffix = format!("_create_{table}.sql");
        let file = match existing
            .iter()
            .find(|n| n.ends_with(&suffix) && version_of(n).is_some())
        {
            Some(f) => f.clone(),
            None => {
                let f = format!("{next:04}{suffix}");
                next += 1;
                f
            }
        };
        out.push((file, sql));
    }
    out
}

/// Where a consumer remembers the events it handled, for idempotency.
pub const EVENTS_TABLE: &str = "processed_events";

fn processed_events_sql(pg: bool) -> String {
    let ts = if pg { "TIMESTAMPTZ" } else { "TEXT" };
    format!(
        "CREATE TABLE IF NOT EXISTS \"processed_events\" (\n    \"event_id\" TEXT PRIMARY KEY,\n    \"subject\" TEXT NOT NULL,\n    \"handled_at\" {ts} NOT NULL\n);\n"
    )
}

/// The auth template's table; not `users`, which a `user` resource may want.
pub const AUTH_TABLE: &str = "auth_users";

fn auth_users_sql(pg: bool) -> String {
    let (id, ts) = if pg {
        (
            "\"id\" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "TIMESTAMPTZ",
        )
    } else {
        ("\"id\" INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")
    };
    format!(
        "CREATE TABLE IF NOT EXISTS \"auth_users\" (\n    {id},\n    \"email\" TEXT NOT NULL UNIQUE,\n    \"password_hash\" TEXT NOT NULL,\n    \"created_at\" {ts} NOT NULL\n);\n"
    )
}

/// Lists `services/<name>/migrations/*.sql` under `root`, per service name.
pub fn existing_migrations(root: &Path, project: &Project) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let dirs = project
        .standalone()
        .map(|s| {
            let dir = root.join("services").join(s.name.as_str());
            (s.name.as_str().to_string(), dir)
        })
        .chain(std::iter::once((
            "monolith".to_string(),
            root.join("monolith"),
        )));
    for (name, dir) in dirs {
        let dir = dir.join("migrations");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        out.insert(name, names);
    }
    out
}
