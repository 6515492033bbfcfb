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

use include_dir::{include_dir, Dir};
use tera::{Context, Tera};

use crate::context::ProjectCtx;
use crate::model::{Project, Template};
use crate::plan::{Ownership, Plan};
use crate::schema::{self, owner};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The runtime: modules that are the same in every project, kept as real crates in
/// msgen's workspace (`runtime/`) where they are compiled, linted and tested, and
/// written into projects byte for byte, each `runtime/<crate>/src/<file>` as
/// `<crate>/src/<file>`. Their `lib.rs` only gathers them for that build: a
/// project's own comes from a template.
static RUNTIME: &[(&str, Dir<'static>)] = &[
    (
        "common",
        include_dir!("$CARGO_MANIFEST_DIR/runtime/common/src"),
    ),
    (
        "gateway",
        include_dir!("$CARGO_MANIFEST_DIR/runtime/gateway/src"),
    ),
];

/// How every runtime file's module documentation says what it is.
pub const RUNTIME_NOTICE: &str = "//! Part of the msgen runtime";

/// The version of the runtime a project is rendered with, as its workspace's
/// `Cargo.toml` records it (`[workspace.metadata.msgen] runtime`).
pub fn runtime_version() -> &'static str {
    const MANIFEST: &str = include_str!("../runtime/common/Cargo.toml");
    MANIFEST
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or("0.0.0")
}

/// Runtime files only some projects carry, with the condition: the rest of the
/// runtime is in every project. The runtime crate's own `lib.rs` declares each
/// of them under the feature of the same meaning.
fn runtime_file_wanted(path: &str, project: &ProjectCtx) -> bool {
    match path {
        "common/src/auth.rs" | "common/src/jwt.rs" | "common/src/limit.rs" => project.has_auth,
        "common/src/client.rs" => project.has_clients,
        "common/src/db.rs" | "common/src/query_spans.rs" => project.generated_db,
        "common/src/events.rs" => project.has_events,
        _ => true,
    }
}

/// The runtime modules of `krate` that `project` carries, sorted: what the
/// crate's `lib.rs` declares.
pub fn runtime_modules(krate: &str, project: &ProjectCtx) -> Vec<String> {
    let prefix = format!("{krate}/src/");
    let mut modules: Vec<String> = runtime_files()
        .filter(|(path, _)| runtime_file_wanted(path, project))
        .filter_map(|(path, _)| {
            let file = path.strip_prefix(&prefix)?;
            Some(file.strip_suffix(".rs")?.to_string())
        })
        .collect();
    modules.sort();
    modules
}

/// The runtime's files, as `(path in the project, contents)`.
fn runtime_files() -> impl Iterator<Item = (String, &'static str)> {
    RUNTIME.iter().flat_map(|(krate, dir)| {
        dir.files().filter_map(move |f| {
            let name = f.path().to_str()?;
            (name != "lib.rs").then(|| Some((format!("{krate}/src/{name}"), f.contents_utf8()?)))?
        })
    })
}

/// Service templates the monolith crate renders as its own.
const MONOLITH_FROM_SERVICE: &[&str] = &[
    "service/Dockerfile.tera",
    "service/build.rs.tera",
    "service/migrations/README.md.tera",
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
    /// Schema changes `services.toml` asks for that msgen will not make alone.
    #[error("{}", schema_refusal(.0))]
    Schema(Vec<schema::Problem>),
}

fn schema_refusal(problems: &[schema::Problem]) -> String {
    let mut msg = format!(
        "services.toml asks for {} database change(s) msgen will not make on its own; nothing was written:",
        problems.len()
    );
    for p in problems {
        msg.push_str(&format!("\n  {p}"));
    }
    msg
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

    /// Renders the whole project. `schema` holds each database owner's record and
    /// migration files, from which the new migrations are worked out.
    pub fn plan(&self, project: &Project, schema: &schema::Inputs) -> Result<Plan, RenderError> {
        let pctx = ProjectCtx::new(project, schema.macros);
        let mut plan = Plan::default();
        let mut base = Context::new();
        base.insert("project", &pctx);

        for (path, text) in runtime_files().filter(|(p, _)| runtime_file_wanted(p, &pctx)) {
            plan.add(path, text.to_string(), Ownership::Managed);
        }
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
        }

        for (svc, sctx) in project.standalone().zip(&pctx.services) {
            let mut ctx = per_service.clone();
            ctx.insert("service", sctx);
            let dir = &sctx.dir;
            if svc.adopted() {
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
        }
        plan_schema(&mut plan, schema, schema::owners(project))?;
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

/// Each owner's new migrations, the files it keeps, and its record.
fn plan_schema(
    plan: &mut Plan,
    inputs: &schema::Inputs,
    owners: Vec<schema::Owner>,
) -> Result<(), RenderError> {
    let mut problems = Vec::new();
    for schema::Owner {
        name,
        dir,
        dialect,
        wanted,
    } in owners
    {
        let disk = inputs.owners.get(&name).cloned().unwrap_or_default();
        if let Some(r) = disk.record.as_ref().filter(|r| r.dialect != Some(dialect)) {
            if let Some(was) = r.dialect {
                problems.push(schema::Problem {
                    key: format!("services.{name}.database"),
                    message: format!(
                        "the migrations in {dir}/migrations are written for {}, not {}: msgen does not translate them",
                        schema::dialect_name(was),
                        schema::dialect_name(dialect)
                    ),
                    help: format!(
                        "to start the new database from nothing, move {dir}/migrations away and delete {}",
                        schema::record::path(&name)
                    ),
                });
                continue;
            }
        }
        let accept = inputs.accept.contains(&name);
        match owner::plan(&wanted, dialect, &disk, inputs.options, accept) {
            Err(p) => problems.extend(p),
            Ok(op) => {
                for (file, sql) in op.new_files {
                    plan.add(
                        format!("{dir}/migrations/{file}"),
                        sql,
                        Ownership::CreateOnly,
                    );
                }
                for file in op.kept {
                    plan.add(
                        format!("{dir}/migrations/{file}"),
                        String::new(),
                        Ownership::Existing,
                    );
                }
                plan.schema_changes
                    .extend(op.changes.iter().map(|c| format!("{dir}: {c}")));
                plan.schema_warnings.extend(op.unread.iter().map(|u| {
                    format!("{dir}/migrations/{u}: msgen cannot tell what this does to the tables; if it changes one services.toml declares, run `msgen generate --accept-schema {name}` once services.toml says the same")
                }));
                plan.schema_warnings.extend(op.changed.iter().map(|m| {
                    format!("{dir}/migrations/{m} changed since msgen recorded it: msgen read every migration of {name} again (a migration that already ran must not change: sqlx refuses it)")
                }));
                plan.schema_warnings.extend(op.missing.iter().map(|m| {
                    format!("{dir}/migrations/{m} is missing, but msgen recorded it: restore it (git, or .msgen/base/{dir}/migrations/{m}); a database made from scratch would lack what it did")
                }));
                plan.add_last(schema::record::path(&name), op.record.to_toml(&dir));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RenderError::Schema(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_version_is_its_crates_version() {
        for manifest in [
            include_str!("../runtime/common/Cargo.toml"),
            include_str!("../runtime/gateway/Cargo.toml"),
        ] {
            let doc: toml::Table = manifest.parse().unwrap();
            assert_eq!(doc["package"]["version"].as_str(), Some(runtime_version()));
        }
    }

    #[test]
    fn runtime_files_are_rendered_and_no_template_shadows_them() {
        let files: Vec<(String, &str)> = runtime_files().collect();
        assert!(files.iter().any(|(p, _)| p == "common/src/error.rs"));
        assert!(files.iter().any(|(p, _)| p == "gateway/src/pool.rs"));
        assert!(files.iter().all(|(p, _)| !p.ends_with("/lib.rs")));
        let mut names = Vec::new();
        collect(&TEMPLATES, &mut names);
        for (path, text) in &files {
            let template = format!("{}.tera", path);
            assert!(
                names.iter().all(|(n, _)| *n != template),
                "{template} would render over the runtime's {path}"
            );
            assert!(
                text.contains(RUNTIME_NOTICE),
                "{path} does not say it is runtime"
            );
        }
    }
}
