//! `msgen split MODULE`: extract a module of the modular monolith into a service.
//!
//! The strangler fig, as the article's "Monolith → Microservice": the module's code
//! moves into `services/<module>/` (hand edits carried over by a three-way merge
//! against what msgen generated for the module), its tables' migrations move with it,
//! it gets its own port and database, in-process calls across the cut become HTTP
//! clients, and the gateway sends the module's paths (old and versioned) to the new
//! service while everything else still reaches the monolith. Everything is planned
//! first; nothing is written until the plan is complete.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use super::edit;
use super::generate::{render_into, Mode};
use super::SchemaArgs;
use super::{files_under, load, schema_inputs, Printer, CONFIG_FILE};
use crate::adopt;
use crate::apply::{ConfigEdit, Staged};
use crate::model::{Project, ProjectName, Service, ServiceName, Template};
use crate::render::Renderer;
use crate::schema::{self, AUTH_TABLE};
use crate::UsageError;

const BASE: &str = ".msgen/base";

/// A file to write, and what to record as msgen's base for it: bytes, so that a
/// moved file arrives exactly as it left (an image, a Latin-1 comment).
#[derive(Debug)]
struct Write {
    path: String,
    contents: Vec<u8>,
    base: Option<Vec<u8>>,
}

/// Everything a split does, worked out before anything is written.
#[derive(Debug, Default)]
struct SplitPlan {
    writes: Vec<Write>,
    /// Files (and their base records) that leave the monolith.
    removals: Vec<String>,
    report: Report,
    /// The schema records and migrations as the split leaves them.
    schema: crate::schema::Inputs,
    /// Moved files written with conflict markers, and the user's version of each.
    conflicts: Vec<(String, Vec<u8>)>,
    /// What the split read of the files it removes: they go only if still so.
    read: std::collections::BTreeMap<String, Vec<u8>>,
    /// Files that leave the monolith, each with where its contents go (a migration,
    /// or a module file the service's render replaces): (from, to).
    pairs: Vec<(String, String)>,
}

impl SplitPlan {
    /// The plan's writes and removals, as files staged for the render's transaction.
    fn staged(&self) -> Staged {
        let mut staged = Staged::default();
        for w in &self.writes {
            staged.write(w.path.clone(), w.contents.clone(), w.base.clone());
        }
        for r in &self.removals {
            match self.read.get(r) {
                Some(read) => staged.remove_as_read(r.clone(), read.clone()),
                None => staged.remove(r.clone()),
            }
        }
        for (p, ours) in &self.conflicts {
            staged.conflict(p.clone(), ours.clone());
        }
        for (from, to) in self.report.moved.iter().chain(&self.pairs) {
            staged.moved(from.clone(), to.clone());
        }
        staged
    }
}

#[derive(Debug, Default)]
struct Report {
    moved: Vec<(String, String)>,
    carried_edits: Vec<String>,
    conflicts: Vec<String>,
    tables: Vec<String>,
    migrations: Vec<String>,
    remote_calls: Vec<String>,
    human: Vec<String>,
}

pub fn run(
    root: &Path,
    module: &str,
    from: Option<PathBuf>,
    dry_run: bool,
    out: Printer,
) -> Result<ExitCode> {
    if let Some(dir) = from {
        return run_from(root, module, &dir, dry_run, out);
    }
    let project = load(root)?;
    let Some(monolith) = &project.monolith else {
        bail!(
            "{CONFIG_FILE} declares no [monolith]: msgen split extracts a module of a modular monolith (made with `msgen new NAME --monolith`); for an axum application msgen did not generate, use `msgen split MODULE --from DIR`"
        );
    };
    let modules: Vec<&Service> = project.modules().collect();
    let Some(target) = modules.iter().find(|m| m.name.as_str() == module).copied() else {
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        let already = project
            .service(module)
            .map(|_| format!(" (`{module}` is already a service of its own)"))
            .unwrap_or_default();
        let hint = crate::diagnostic::did_you_mean(module, &names)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        bail!(
            "no module `{module}` in the monolith{already}; modules found: {}{hint}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };

    // services.toml, as it will be.
    let config_path = root.join(CONFIG_FILE);
    let (text, mut config) = ConfigEdit::read(&config_path)?;
    let mut doc = edit::parse(&text)?;
    edit::split_out(&mut doc, module, target.port.get())?;
    if modules.len() == 1 {
        // The last module leaves: nothing remains of the monolith.
        doc.remove("monolith");
    }
    config.text = doc.to_string();
    let new_project = Project::parse(&config.text, &config_path)?;

    let plan = plan_split(root, &project, &new_project, target)?;
    // Never over a file msgen did not write: whatever is already in the new
    // service's directory stays, and the split waits until it is moved away (as
    // `split --from` does).
    let service_dir = format!("services/{module}");
    let mut taken: Vec<String> = files_under(&root.join(&service_dir))
        .into_iter()
        .map(|f| format!("{service_dir}/{f}"))
        .collect();
    if std::fs::symlink_metadata(root.join(&service_dir)).is_ok_and(|m| !m.is_dir()) {
        taken.push(service_dir.clone());
    }
    if !taken.is_empty() {
        let shown: Vec<&str> = taken.iter().take(5).map(String::as_str).collect();
        let more = taken.len().saturating_sub(shown.len());
        bail!(
            "{service_dir}/ already holds {}{}, where the split would write; move it away first (nothing was written)",
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    let report = render_report(&project, target, monolith.port.get(), &plan.report);
    let report_path = report_path(root, module);
    let mut staged = plan.staged();
    staged.write(report_path.clone(), report.clone().into_bytes(), None);

    out.line(format!(
        "{} module `{module}` out of the monolith:",
        if dry_run { "Would split" } else { "Splitting" }
    ));
    for w in &plan.writes {
        out.line(format!("  {:<14} {}", "move", w.path));
    }
    for r in &plan.removals {
        out.line(format!("  {:<14} {r}", "remove"));
    }
    let schema = SchemaArgs {
        inputs: Some(plan.schema.clone()),
        ..Default::default()
    };
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    // One transaction: services.toml, the moved files, the removals, the report
    // and the new render land together, or nothing does.
    let code = render_into(
        root,
        &new_project,
        Some(&config),
        &staged,
        mode,
        &schema,
        out,
    );
    let code = with_report(root, code, &report, &report_path, out)?;
    if !dry_run && !plan.report.conflicts.is_empty() {
        return Err(crate::CheckFailed(format!(
            "merge conflicts while moving hand edits; fix: {}",
            plan.report.conflicts.join(", ")
        ))
        .into());
    }
    Ok(code)
}

/// Prints the report after the render, whether it went through or stopped on a
/// file it would not overwrite, and passes the render's result on.
fn with_report(
    root: &Path,
    rendered: Result<ExitCode>,
    report: &str,
    report_path: &str,
    out: Printer,
) -> Result<ExitCode> {
    out.line(format!("\n{report}"));
    // Written only by an apply that went through (a dry run writes nothing).
    if root.join(report_path).is_file() {
        out.line(format!("(this report is in {report_path})"));
    }
    rendered
}

/// Where the report of a split goes: `docs/split-<name>.md`, or a name next to it
/// when that file exists (a report of an earlier split is the user's to keep).
fn report_path(root: &Path, name: &str) -> String {
    report_path_for(root, &format!("split-{name}"))
}

/// The names a report takes in turn: `docs/<stem>.md`, `docs/<stem>-2.md`, ...
fn report_names(stem: &str) -> impl Iterator<Item = String> + '_ {
    (1..).map(move |n| match n {
        1 => format!("docs/{stem}.md"),
        n => format!("docs/{stem}-{n}.md"),
    })
}

/// The newest report of `stem` (the last name taken), or `docs/<stem>.md`.
fn latest_report(root: &Path, stem: &str) -> String {
    report_names(stem)
        .take_while(|p| !fs_entry_missing(&root.join(p)))
        .last()
        .unwrap_or_else(|| format!("docs/{stem}.md"))
}

/// `docs/<stem>.md`, or `docs/<stem>-<n>.md` when that file exists.
pub(super) fn report_path_for(root: &Path, stem: &str) -> String {
    report_names(stem)
        .find(|p| fs_entry_missing(&root.join(p)))
        .unwrap_or_else(|| format!("docs/{stem}.md"))
}

/// Nothing at all is at `path`: no file, directory or symbolic link.
fn fs_entry_missing(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The tables a module owns in the monolith's database.
fn tables_of(m: &Service) -> Vec<String> {
    let auth = (m.template == Template::Auth).then(|| AUTH_TABLE.to_string());
    auth.into_iter()
        .chain(m.resources.iter().map(|r| r.plural.clone()))
        .collect()
}

/// The schema records after the split: the module's tables leave the monolith's
/// record for the service's, with every migration file that touched only them.
/// Returns the render inputs of the new project, the files that move and the
/// monolith files that stay.
fn split_schema(
    root: &Path,
    old: &Project,
    new: &Project,
    target: &Service,
    tables: &[String],
) -> Result<(schema::Inputs, Vec<String>, Vec<String>)> {
    let name = target.name.as_str();
    let old_inputs = schema_inputs(root, old, &Default::default())?;
    let disk = old_inputs
        .owners
        .get("monolith")
        .cloned()
        .unwrap_or_default();
    let monolith = schema::owners(old)
        .into_iter()
        .find(|o| o.name == "monolith");
    let mono = match monolith {
        Some(o) => schema::owner::plan(&o.wanted, o.dialect, &disk, Default::default(), false).map_err(|p| {
            crate::CheckFailed(format!(
                "the monolith's database is not what services.toml describes ({} problem(s)); run `msgen generate` and settle that first:\n  {}",
                p.len(),
                p.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
            ))
        })?,
        None => Default::default(),
    };
    if !mono.new_files.is_empty() {
        return Err(crate::CheckFailed(format!(
            "services.toml changed the monolith's tables since the last render ({}): run `msgen generate` first, so that the split moves migrations that exist",
            mono.changes.join("; ")
        ))
        .into());
    }
    let mut record = mono.record;
    let (mut moving, mut staying) = (Vec::new(), Vec::new());
    for (f, r) in record
        .migrations
        .iter()
        .filter(|(f, _)| disk.files.contains_key(*f))
    {
        if !r.tables.is_empty() && r.tables.iter().all(|t| tables.contains(t)) {
            moving.push(f.clone());
        } else {
            staying.push(f.clone());
        }
    }
    let mut service_record = schema::Record {
        dialect: new
            .service(name)
            .and_then(|s| schema::Dialect::of(s.database)),
        ..Default::default()
    };
    for f in &moving {
        if let Some(t) = record.migrations.remove(f) {
            service_record.migrations.insert(f.clone(), t);
        }
    }
    service_record.last_version = moving
        .iter()
        .filter_map(|f| schema::owner::version_of(f))
        .max()
        .unwrap_or(0);
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut record.schema.tables)
        .into_iter()
        .partition(|t| tables.contains(&t.name));
    record.schema.tables = kept;
    service_record.schema.tables = gone;

    let mut inputs = schema::Inputs::default();
    for (owner, d) in old_inputs.owners {
        if owner != "monolith" {
            inputs.owners.insert(owner, d);
        }
    }
    let file_map = |files: &[String]| -> std::collections::BTreeMap<String, String> {
        files
            .iter()
            .filter_map(|f| disk.files.get(f).map(|c| (f.clone(), c.clone())))
            .collect()
    };
    if new.monolith.is_some() {
        inputs.owners.insert(
            "monolith".into(),
            schema::owner::Disk {
                record: Some(record),
                files: file_map(&staying),
                ours: disk.ours.clone(),
            },
        );
    }
    inputs.owners.insert(
        name.to_string(),
        schema::owner::Disk {
            record: Some(service_record),
            files: file_map(&moving),
            ours: disk.ours.clone(),
        },
    );
    Ok((inputs, moving, staying))
}

fn plan_split(root: &Path, old: &Project, new: &Project, target: &Service) -> Result<SplitPlan> {
    let name = target.name.as_str();
    let snake = target.name.snake();
    let mut plan = SplitPlan::default();

    // The module's tables, and every migration that shaped them (evolved columns
    // included), by the monolith's schema record.
    let tables = tables_of(target);
    let (inputs, moving, staying) = split_schema(root, old, new, target, &tables)?;
    for f in &moving {
        let from = format!("monolith/migrations/{f}");
        let to = format!("services/{name}/migrations/{f}");
        let contents =
            read_bytes(&root.join(&from)).with_context(|| format!("cannot read {from}"))?;
        plan.read.insert(from.clone(), contents.clone());
        plan.writes.push(Write {
            path: to.clone(),
            base: read_bytes(&root.join(BASE).join(&from)),
            contents,
        });
        plan.removals.push(from.clone());
        plan.report.migrations.push(format!("{from} → {to}"));
        plan.pairs.push((from.clone(), to.clone()));
    }
    for owner in ["monolith", name] {
        if let Some(record) = inputs.owners.get(owner).and_then(|d| d.record.as_ref()) {
            let dir = if owner == "monolith" {
                "monolith".to_string()
            } else {
                format!("services/{name}")
            };
            let text = record.to_toml(&dir).into_bytes();
            plan.writes.push(Write {
                path: schema::record::path(owner),
                contents: text.clone(),
                base: Some(text),
            });
        }
    }
    plan.report.tables = tables.clone();

    // Hand-written migrations left in the monolith that touch a moving table.
    for f in &staying {
        let file = format!("monolith/migrations/{f}");
        let sql = read_opt(&root.join(&file)).unwrap_or_default();
        // A function's or a `DO` block's body is SQL too.
        let named: std::collections::BTreeSet<String> = crate::sql::with_bodies(&sql)
            .into_iter()
            .flat_map(|(_, text)| crate::sql::statements(text))
            .flat_map(|stmt| crate::sql::tables_in(&stmt))
            .collect();
        if let Some(t) = tables.iter().find(|t| named.contains(*t)) {
            plan.report.human.push(format!(
                "{file}: mentions table `{t}`, which moved to `{name}`'s database: apply that change there too (as a migration of services/{name})"
            ));
        }
    }

    // Foreign keys across the cut need a human: the databases are now separate.
    let staying_tables: Vec<String> = old
        .modules()
        .filter(|m| m.name != target.name)
        .flat_map(tables_of)
        .collect();
    let sides = [(&moving, &staying_tables), (&staying, &tables)];
    for (files, other_tables) in sides {
        for f in files {
            let file = format!("monolith/migrations/{f}");
            let sql = read_opt(&root.join(&file)).unwrap_or_default();
            let references = crate::sql::with_bodies(&sql)
                .into_iter()
                .flat_map(|(at, text)| {
                    let found = crate::sql::references(text);
                    found.into_iter().map(move |(i, t)| (at + i, t))
                });
            for (at, t) in references {
                if other_tables.contains(&t) {
                    let line = sql[..at].matches('\n').count() + 1;
                    plan.report.human.push(format!(
                        "{file}:{line}: a foreign key to table `{t}` crosses the cut; the tables now live in different databases: drop the constraint and check the reference through the owning service's API"
                    ));
                }
            }
        }
    }

    // The module's code, with the user's edits carried over.
    let rendered = Renderer::new()
        .context("loading the embedded templates")?
        .plan(new, &inputs)?;
    plan.schema = inputs;
    let module_dir = format!("monolith/src/{snake}");
    let prefix = format!("crate::{snake}::");
    // The monolith's modules: a moved file's use of another one is reported.
    let crate_modules: Vec<String> = old.modules().map(|m| m.name.snake()).collect();
    for rel in files_under(&root.join(&module_dir)) {
        let from = format!("{module_dir}/{rel}");
        let current_bytes = read_bytes(&root.join(&from)).unwrap_or_default();
        plan.read.insert(from.clone(), current_bytes.clone());
        let base_bytes = read_bytes(&root.join(BASE).join(&from));
        let edited = base_bytes.as_deref() != Some(current_bytes.as_slice());
        if rel == "mod.rs" || rel == "routes.rs" {
            if edited {
                // Kept where it is (no longer compiled), so the edits are not lost.
                plan.report.human.push(format!(
                    "{from}: your edits of the module's glue were not moved and the file was kept; carry them over to services/{name}/src/lib.rs or routes.rs, then delete it"
                ));
            } else {
                plan.removals.push(from.clone());
                let to = if rel == "mod.rs" {
                    "lib.rs"
                } else {
                    rel.as_str()
                };
                plan.pairs
                    .push((from.clone(), format!("services/{name}/src/{to}")));
            }
            continue;
        }
        // Text only when every version of it is: anything else moves byte for byte.
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let (current, base) = match (text(&current_bytes), base_bytes.as_deref().map(text)) {
            (Some(c), None) => (c, None),
            (Some(c), Some(Some(b))) => (c, Some(b)),
            _ => {
                let to = format!("services/{name}/src/{rel}");
                plan.removals.push(from.clone());
                plan.writes.push(Write {
                    path: to.clone(),
                    contents: current_bytes,
                    base: None,
                });
                plan.report.human.push(format!(
                    "{to}: not UTF-8 text, so moved byte for byte: nothing in it was rewritten"
                ));
                plan.report.moved.push((from, to));
                continue;
            }
        };
        plan.removals.push(from.clone());
        let to = format!("services/{name}/src/{rel}");
        // Moved code uses other modules directly: it will not build as a service.
        if rel.ends_with(".rs") {
            // The module's files are `src/<snake>/..` of the monolith's crate.
            let in_crate = format!("src/{snake}/{rel}");
            match crate::adopt::module_uses(&in_crate, &current, &crate_modules) {
                Ok(refs) => {
                    for r in refs {
                        plan.report.human.push(format!(
                            "{to}:{}: `{}` reaches into the `{}` module, which stays in the monolith: call it through its client (state.{}) instead",
                            r.line, r.path, r.module, r.module
                        ));
                    }
                }
                Err(e) => plan.report.human.push(format!(
                    "{from}: could not be read as Rust ({e}); moved as is"
                )),
            }
        }
        if !edited {
            plan.pairs.push((from.clone(), to.clone()));
            continue;
        }
        let ours = current.replace(&prefix, "crate::");
        let theirs = rendered.files.get(&to).map(|f| f.contents.clone());
        match (base, theirs) {
            (Some(base), Some(theirs)) => {
                let base = base.replace(&prefix, "crate::");
                match diffy::merge(&base, &ours, &theirs) {
                    Ok(merged) => {
                        plan.writes.push(Write {
                            path: to.clone(),
                            contents: merged.into_bytes(),
                            base: Some(theirs.into_bytes()),
                        });
                        plan.report.carried_edits.push(to.clone());
                    }
                    Err(marked) => {
                        plan.conflicts.push((to.clone(), ours.clone().into_bytes()));
                        plan.writes.push(Write {
                            path: to.clone(),
                            contents: marked.into_bytes(),
                            base: Some(theirs.into_bytes()),
                        });
                        plan.report.conflicts.push(to.clone());
                    }
                }
            }
            // Written by hand: it moves as it is, and stays the user's.
            _ => {
                plan.writes.push(Write {
                    path: to.clone(),
                    contents: ours.into_bytes(),
                    base: None,
                });
                plan.report.carried_edits.push(to.clone());
            }
        }
        plan.report.moved.push((from, to));
    }

    // Code elsewhere in the monolith that uses the module directly.
    let mono_src = root.join("monolith/src");
    for rel in files_under(&mono_src) {
        if rel.starts_with(&format!("{snake}/")) || !rel.ends_with(".rs") {
            continue;
        }
        let path = format!("monolith/src/{rel}");
        // Generated clients are rewritten by the render itself.
        if rel.starts_with("clients/") {
            continue;
        }
        let source = read_opt(&root.join(&path)).unwrap_or_default();
        if let Ok(refs) = crate::adopt::module_uses(&format!("src/{rel}"), &source, &crate_modules)
            .map(|refs| refs.into_iter().filter(|r| r.module == snake))
        {
            let generated = read_opt(&root.join(BASE).join(&path));
            let new_render = rendered.files.get(&path).map(|f| f.contents.as_str());
            // Lines msgen itself wrote and will rewrite are not the user's.
            if generated.as_deref() == Some(source.as_str()) && new_render.is_some() {
                continue;
            }
            for r in refs {
                plan.report.human.push(format!(
                    "{path}:{}: `{}` uses the extracted module directly; after the split it is a service: call it through crate::clients::{snake} (HTTP) instead",
                    r.line, r.path
                ));
            }
        }
    }

    // Calls that became remote.
    for m in new.modules() {
        if m.depends_on.iter().any(|d| d.as_str() == name) {
            plan.report.remote_calls.push(format!(
                "module `{}` → `{name}`: was in process, now HTTP through crate::clients::{snake} ({}_SERVICE_URL)",
                m.name.as_str(),
                target.name.upper()
            ));
        }
    }
    for s in new.standalone() {
        if s.name != target.name && s.depends_on.iter().any(|d| d.as_str() == name) {
            plan.report.remote_calls.push(format!(
                "service `{}` → `{name}`: {}_SERVICE_URL now points at {} instead of the monolith",
                s.name.as_str(),
                target.name.upper(),
                format_args!("http://{}:{}", target.name.crate_name(), target.port.get())
            ));
        }
    }
    for d in &target.depends_on {
        if new.service(d.as_str()).is_some_and(|s| s.in_monolith()) {
            plan.report.remote_calls.push(format!(
                "`{name}` → module `{}`: was in process, now HTTP to the monolith ({}_SERVICE_URL)",
                d.as_str(),
                d.upper()
            ));
        }
    }
    Ok(plan)
}

fn render_report(old: &Project, target: &Service, monolith_port: u16, r: &Report) -> String {
    let name = target.name.as_str();
    let mut s = String::new();
    let _ = writeln!(s, "# Split of `{name}` out of the monolith\n");
    let _ = writeln!(
        s,
        "`{name}` is now the service `{}` on port {} with a database of its own. The gateway sends \
         `/api/v1/...` and the monolith's old `/api/...` paths of `{name}` to it; all other traffic \
         still reaches the monolith (port {monolith_port}).\n",
        target.name.crate_name(),
        target.port.get()
    );
    let section = |s: &mut String, title: &str, items: &[String], empty: &str| {
        let _ = writeln!(s, "## {title}\n");
        if items.is_empty() {
            let _ = writeln!(s, "- {empty}");
        }
        for i in items {
            let _ = writeln!(s, "- {i}");
        }
        s.push('\n');
    };
    let moved: Vec<String> = r.moved.iter().map(|(a, b)| format!("{a} → {b}")).collect();
    section(
        &mut s,
        "Code with your edits, moved",
        &moved,
        "no hand edits to move: the service's code was generated afresh",
    );
    section(
        &mut s,
        "Tables",
        &r.tables
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>(),
        "none",
    );
    section(&mut s, "Migrations moved", &r.migrations, "none");
    section(&mut s, "Calls that became remote", &r.remote_calls, "none");
    let mut human = r.human.clone();
    for c in &r.conflicts {
        human.push(format!("{c}: your edits collided with the service's code; resolve the <<<<<<< / >>>>>>> markers"));
    }
    if !r.tables.is_empty() {
        let db = old.default_database.as_str();
        human.push(format!(
            "copy the rows of {} from the monolith's database into `{name}`'s ({db}), e.g. `pg_dump --data-only {} monolith | psql {}` once the service has created its tables; then drop them from the monolith",
            r.tables.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
            r.tables.iter().map(|t| format!("-t {t}")).collect::<Vec<_>>().join(" "),
            target.name.snake()
        ));
    }
    section(&mut s, "Needs a human", &human, "nothing");
    s
}

/// `msgen split MODULE --from DIR`: adopt a monolith msgen did not generate.
///
/// The project directory (`-C`, the current one) gets the gateway, the new service
/// in `services/<module>/` and a `services.toml` recording the monolith as the
/// gateway's catch-all upstream; the monolith in DIR loses only the module and the
/// router calls mounting it. [`crate::adopt::plan`] decides everything before any
/// file is written.
fn run_from(
    root: &Path,
    module: &str,
    from: &Path,
    dry_run: bool,
    out: Printer,
) -> Result<ExitCode> {
    let root_abs = root
        .canonicalize()
        .with_context(|| format!("cannot open the project directory {}", root.display()))?;
    let dir = if from.is_absolute() {
        from.to_path_buf()
    } else {
        root.join(from)
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open the monolith directory {}", from.display()))?;
    let rel = match dir.strip_prefix(&root_abs) {
        Ok(r) if !r.as_os_str().is_empty() => r.to_string_lossy().replace('\\', "/"),
        _ => {
            return Err(UsageError(format!(
                "--from {}: the monolith must be a directory inside the project directory ({}), which gets the gateway and the new service beside it; run msgen from its parent (or pass -C)",
                from.display(),
                root_abs.display()
            ))
            .into())
        }
    };
    let mut src = read_monolith(&dir)?;

    let config_path = root.join(CONFIG_FILE);
    let existing = if config_path.is_file() {
        let project = load(root)?;
        match project.monolith.as_ref().and_then(|m| m.external.as_ref()) {
            Some(e) if e.path == rel => {}
            _ => bail!(
                "{CONFIG_FILE} here does not describe the monolith in {rel}/ (no `[monolith] path = \"{rel}\"`): split --from adopts a monolith into a project of its own"
            ),
        }
        Some(project)
    } else {
        None
    };
    let service = module.replace('_', "-");
    if let Err(msg) = ServiceName::parse(&service) {
        bail!("module `{module}` cannot name a service: {msg}");
    }
    if existing
        .as_ref()
        .is_some_and(|p| p.service(&service).is_some())
    {
        bail!("`{service}` is already a service of this project");
    }
    let service_dir = format!("services/{service}");
    // An empty directory holds nothing to lose: only one with contents is refused.
    let taken = std::fs::read_dir(root.join(&service_dir)).map_or_else(
        |e| e.kind() != std::io::ErrorKind::NotFound,
        |mut entries| entries.next().is_some(),
    );
    if taken {
        bail!("{service_dir}/ already exists; move it away first");
    }
    if let Some(project) = &existing {
        src.owned_elsewhere = tables_of_adopted_services(root, project, &src.migrations_dir)?;
        // Tables earlier splits moved into a schema belong to its service.
        for (table, schema) in adopt::moved_tables(&src.migrations) {
            if let Some(s) = project
                .services
                .iter()
                .find(|s| s.schema.as_deref() == Some(schema.as_str()))
            {
                src.owned_elsewhere.insert(table, s.name.clone());
            }
        }
        src.earlier_services = sources_of_adopted_services(root, project)?;
        src.schemas = project
            .services
            .iter()
            .filter_map(|s| s.schema.clone())
            .collect();
        src.service_routes = project
            .services
            .iter()
            .flat_map(|s| s.route_prefixes().into_iter().chain(s.routes.clone()))
            .collect();
    }

    // The monolith's own port is known only after reading its listener.
    let first =
        adopt::plan(&src, module, &service, 0, None).map_err(|r| refusal(module, &rel, &r))?;
    // On PostgreSQL the service's tables move to a schema of its own in the
    // monolith's database (named after it, clear of PostgreSQL's own).
    let schema = (first.database == Some(adopt::Db::Postgres)).then(|| {
        let s = service.replace('-', "_");
        if s == "public" || s == "information_schema" || s.starts_with("pg_") {
            format!("{s}_svc")
        } else {
            s
        }
    });
    let port = match &existing {
        Some(project) => project.next_free_port_besides(&[first.monolith_port]),
        // A new services.toml: the gateway on its default port, and the monolith.
        None => crate::model::free_port(|p| {
            p == first.monolith_port || p == adopted_gateway_port(first.monolith_port)
        }),
    };
    let cut = adopt::plan(&src, module, &service, port, schema.as_deref())
        .map_err(|r| refusal(module, &rel, &r))?;
    let database = match cut.database {
        Some(adopt::Db::Postgres) => "postgres",
        Some(adopt::Db::Sqlite) => "sqlite",
        None => bail!(
            "{rel}/Cargo.toml: sqlx has neither the \"postgres\" nor the \"sqlite\" feature; split --from adopts axum + sqlx applications"
        ),
    };

    // services.toml, as it will be.
    let (mut config, mut doc) = if existing.is_some() {
        let (text, config) = ConfigEdit::read(&config_path)?;
        (config, edit::parse(&text)?)
    } else {
        let config = ConfigEdit {
            seen: None,
            text: String::new(),
        };
        (
            config,
            adopted_config(&cut.package, &rel, cut.monolith_port, database),
        )
    };
    let services = doc
        .entry("services")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let Some(services) = services.as_array_of_tables_mut() else {
        bail!("`services` in {CONFIG_FILE} must be written as [[services]] tables");
    };
    let mut t = toml_edit::Table::new();
    t["name"] = toml_edit::value(&service);
    t["port"] = toml_edit::value(i64::from(port));
    t["database"] = toml_edit::value(database);
    t["adopted"] = toml_edit::value(true);
    if let Some(schema) = &schema {
        t["schema"] = toml_edit::value(schema);
    }
    let mut paths = toml_edit::Array::new();
    for p in &cut.paths {
        paths.push(p.as_str());
    }
    if !paths.is_empty() {
        t["paths"] = toml_edit::value(paths);
    }
    if !cut.routes.is_empty() {
        let mut routes = toml_edit::Array::new();
        for r in &cut.routes {
            routes.push(r.as_str());
        }
        t["routes"] = toml_edit::value(routes);
    }
    if !cut.service_env.is_empty() {
        t["env"] = toml_edit::value(env_array(&cut.service_env));
    }
    t.decor_mut().set_prefix(format!(
        "\n# Moved out of {rel}/ by `msgen split {module} --from {rel}`: its code is yours.\n"
    ));
    services.push(t);
    // What the monolith reads after the cut, kept in step with its code.
    if let Some(m) = doc.get_mut("monolith").and_then(|m| m.as_table_like_mut()) {
        if cut.monolith_env.is_empty() {
            m.remove("env");
        } else {
            m.insert("env", toml_edit::value(env_array(&cut.monolith_env)));
        }
    }
    let versions = follow_majors(&mut doc, &cut);
    config.text = doc.to_string();
    let new_project = Project::parse(&config.text, &config_path)?;

    let mut report = adopted_report(module, &service, &rel, port, schema.as_deref(), &cut);
    if !versions.is_empty() {
        report.push_str("\n## Versions\n\n");
        for v in &versions {
            let _ = writeln!(report, "- {v}");
        }
    }
    let report_path = report_path(root, &service);
    let mut staged = Staged::default();
    for (p, text) in &cut.service_files {
        staged.write(
            format!("{service_dir}/{p}"),
            text.clone().into_bytes(),
            None,
        );
    }
    // symlink_metadata: a link at the root's Cargo.lock, even a dangling one, is
    // something there, never a path to write through.
    let lock = dir.join("Cargo.lock");
    if lock.is_file() && fs_entry_missing(&root.join("Cargo.lock")) {
        // The monolith's locked versions are the ones its code was built with.
        let bytes =
            std::fs::read(&lock).with_context(|| format!("cannot read {}", lock.display()))?;
        staged.write("Cargo.lock", bytes, None);
    }
    // The monolith's files change only if they are still what the cut was made from.
    let read_as = |p: &str| src.files.get(p).map(|t| t.clone().into_bytes());
    for (p, text) in &cut.monolith_edits {
        match read_as(p) {
            Some(read) => staged.write_over(format!("{rel}/{p}"), text.clone().into_bytes(), read),
            None => staged.write(format!("{rel}/{p}"), text.clone().into_bytes(), None),
        }
    }
    for p in &cut.monolith_removals {
        match read_as(p) {
            Some(read) => staged.remove_as_read(format!("{rel}/{p}"), read),
            None => staged.remove(format!("{rel}/{p}")),
        }
        if cut.service_files.contains_key(p) {
            staged.moved(format!("{rel}/{p}"), format!("{service_dir}/{p}"));
        }
    }
    staged.write(report_path.clone(), report.clone().into_bytes(), None);
    // A service split earlier that reads a table this split moves hears of it in
    // its own report too.
    for (earlier, lines) in &cut.report.earlier_reads {
        let path = latest_report(root, &format!("split-{earlier}"));
        let read = std::fs::read(root.join(&path)).ok();
        let mut text = String::from_utf8_lossy(read.as_deref().unwrap_or_default()).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = writeln!(text, "\n## Since `msgen split {module} --from {rel}`\n");
        for l in lines {
            let _ = writeln!(text, "- {l}");
        }
        match read {
            // Never over an edit made while this split ran.
            Some(read) => staged.write_over(path, text.into_bytes(), read),
            None => staged.write(path, text.into_bytes(), None),
        }
    }

    out.line(format!(
        "{} module `{module}` out of {rel}/ into {service_dir}/:",
        if dry_run { "Would split" } else { "Splitting" }
    ));
    for p in cut.service_files.keys() {
        out.line(format!("  {:<14} {service_dir}/{p}", "create"));
    }
    for p in cut.monolith_edits.keys() {
        let verb = if src.files.contains_key(p) {
            "change"
        } else {
            "create"
        };
        out.line(format!("  {verb:<14} {rel}/{p}"));
    }
    for p in &cut.monolith_removals {
        out.line(format!("  {:<14} {rel}/{p}", "remove"));
    }
    // One transaction: the service, the monolith's changes, services.toml, the
    // report and the render land together, or nothing does.
    apply_with_report(
        root,
        &new_project,
        &config,
        &staged,
        dry_run,
        (&report, &report_path),
        out,
    )
}

/// Renders `project` with `config` and the `staged` files in one transaction
/// (or as a dry run), then prints the report (text, path).
pub(super) fn apply_with_report(
    root: &Path,
    project: &Project,
    config: &ConfigEdit,
    staged: &Staged,
    dry_run: bool,
    (report, report_path): (&str, &str),
    out: Printer,
) -> Result<ExitCode> {
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let code = render_into(
        root,
        project,
        Some(config),
        staged,
        mode,
        &SchemaArgs::default(),
        out,
    );
    with_report(root, code, report, report_path, out)
}

/// Sets `[project] axum` and `sqlx` to the monolith's majors, so that the crates
/// msgen generates build against the same axum and sqlx as the adopted code: one
/// version of each in the workspace. Says what it did, and what it could not.
fn follow_majors(doc: &mut toml_edit::DocumentMut, cut: &adopt::Cut) -> Vec<String> {
    use crate::model::{AxumMajor, SqlxMajor, SQLX_MAJORS};
    let mut notes = Vec::new();
    let Some(project) = doc.get_mut("project").and_then(|p| p.as_table_like_mut()) else {
        return notes;
    };
    let mut follow = |key: &str, want: Option<&'static str>, default: &str| {
        let had = project
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let Some(want) = want else { return };
        if want == default {
            project.remove(key);
        } else {
            project.insert(key, toml_edit::value(want));
        }
        if had.as_deref().unwrap_or(default) != want {
            notes.push(format!(
                "the crates msgen generates (gateway, common, and any service you add) now use the monolith's {key} {want} (`[project] {key}` in services.toml), so the workspace builds one {key}"
            ));
        }
    };
    let axum = cut.axum_major.as_deref().and_then(AxumMajor::parse);
    follow(
        "axum",
        axum.map(AxumMajor::as_str),
        AxumMajor::default().as_str(),
    );
    let sqlx = cut.sqlx_major.as_deref().and_then(SqlxMajor::parse);
    follow(
        "sqlx",
        sqlx.map(SqlxMajor::as_str),
        SqlxMajor::default().as_str(),
    );
    if let (Some(m), None) = (&cut.sqlx_major, sqlx) {
        notes.push(format!(
            "the monolith uses sqlx {m}; msgen generates code for sqlx {} only, so a service you add with a database brings a second sqlx into the workspace (upgrading the monolith's sqlx avoids it)",
            SQLX_MAJORS.join(" or ")
        ));
    }
    notes
}

/// `env = ["NAME", "NAME=default"]` as services.toml writes it.
fn env_array(vars: &[crate::model::EnvVar]) -> toml_edit::Array {
    let mut a = toml_edit::Array::new();
    for v in vars {
        match &v.default {
            Some(d) => a.push(format!("{}={d}", v.name)),
            None => a.push(v.name.as_str()),
        }
    }
    a
}

fn refusal(module: &str, rel: &str, r: &adopt::Refusal) -> anyhow::Error {
    crate::CheckFailed(format!(
        "cannot split `{module}` out of {rel}/ (nothing was changed):\n{}",
        r.0.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
    .into()
}

/// The tables the services split out of the monolith earlier create in their
/// migrations, with the service owning each.
fn tables_of_adopted_services(
    root: &Path,
    project: &Project,
    migrations_dir: &str,
) -> Result<std::collections::BTreeMap<String, ServiceName>> {
    let mut owned = std::collections::BTreeMap::new();
    for s in project.services.iter().filter(|s| s.adopted()) {
        let dir = root
            .join("services")
            .join(s.name.as_str())
            .join(migrations_dir);
        for rel in files_under(&dir) {
            if !rel.ends_with(".sql") {
                continue;
            }
            let path = dir.join(&rel);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            // Only CREATE TABLE names matter here: a stray byte in a comment may stay.
            let sql = String::from_utf8_lossy(&bytes);
            for stmt in crate::sql::statements(&sql) {
                if let Some(table) = crate::sql::created_table(&stmt) {
                    owned.insert(table, s.name.clone());
                }
            }
        }
    }
    Ok(owned)
}

/// The `.rs` files of the services split out of the monolith earlier.
pub(super) fn sources_of_adopted_services(
    root: &Path,
    project: &Project,
) -> Result<Vec<(ServiceName, String, String)>> {
    let mut out = Vec::new();
    for s in project.services.iter().filter(|s| s.adopted()) {
        let dir = root.join("services").join(s.name.as_str());
        for rel in files_under(&dir.join("src")) {
            if !rel.ends_with(".rs") {
                continue;
            }
            let path = dir.join("src").join(&rel);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            // Only its SQL strings matter here.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            out.push((s.name.clone(), format!("src/{rel}"), text));
        }
    }
    Ok(out)
}

/// Reads what `split --from` looks at: Cargo.toml, `src/**/*.rs`, `migrations/*.sql`.
pub(super) fn read_monolith(dir: &Path) -> Result<adopt::Source> {
    let manifest_path = dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {} (is this a Cargo crate?)",
            manifest_path.display()
        )
    })?;
    let mut files = std::collections::BTreeMap::new();
    for rel in files_under(&dir.join("src")) {
        if rel.ends_with(".rs") {
            let path = dir.join("src").join(&rel);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} as UTF-8", path.display()))?;
            files.insert(format!("src/{rel}"), text);
        }
    }
    let migrations_dir = migrations_dir(&files);
    let migrations = read_flat(&dir.join(&migrations_dir), ".sql")?;
    // sqlx's offline data, for the service's compile-time checked queries.
    let offline_queries = read_flat(&dir.join(".sqlx"), ".json")?;
    Ok(adopt::Source {
        manifest,
        files,
        migrations,
        has_build_script: dir.join("build.rs").is_file(),
        has_dockerfile: std::fs::symlink_metadata(dir.join("Dockerfile")).is_ok(),
        has_lock: dir.join("Cargo.lock").is_file(),
        has_dockerignore: std::fs::symlink_metadata(dir.join(".dockerignore")).is_ok(),
        owned_elsewhere: std::collections::BTreeMap::new(),
        earlier_services: Vec::new(),
        offline_queries,
        migrations_dir,
        service_routes: Vec::new(),
        schemas: Vec::new(),
    })
}

/// The directory `sqlx::migrate!("..")` names in the monolith's code, relative to
/// its crate (`migrations` when it names none).
fn migrations_dir(files: &std::collections::BTreeMap<String, String>) -> String {
    for text in files.values() {
        for (at, _) in text.match_indices("migrate!(") {
            let rest = text[at + "migrate!(".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                if let Some(end) = lit.find('"') {
                    let dir = lit[..end].trim_start_matches("./").trim_end_matches('/');
                    let plain = !dir.is_empty()
                        && !dir.starts_with('/')
                        && !dir.split('/').any(|p| p == ".." || p.is_empty());
                    if plain {
                        return dir.to_string();
                    }
                }
            }
        }
    }
    "migrations".into()
}

/// The files directly in `dir` whose names end with `ext`, by name.
fn read_flat(dir: &Path, ext: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for rel in files_under(dir) {
        if rel.ends_with(ext) && !rel.contains('/') {
            let path = dir.join(&rel);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} as UTF-8", path.display()))?;
            out.insert(rel, text);
        }
    }
    Ok(out)
}

/// The gateway's port in front of an adopted monolith: the usual one, unless the
/// monolith listens there itself.
fn adopted_gateway_port(monolith_port: u16) -> u16 {
    let usual = crate::model::DEFAULT_GATEWAY_PORT;
    if monolith_port == usual {
        usual + 1
    } else {
        usual
    }
}

/// `services.toml` of a project adopting the monolith at `rel`.
fn adopted_config(package: &str, rel: &str, port: u16, database: &str) -> toml_edit::DocumentMut {
    let mut name: String = package
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    let name = if ProjectName::parse(name).is_ok() {
        name.to_string()
    } else {
        "system".to_string()
    };
    let gateway = adopted_gateway_port(port);
    let text = format!(
        "# The system around the monolith in {rel}/, adopted by `msgen split --from`.\n\
         # msgen renders the gateway, the extracted services' deployment and this\n\
         # project's compose/Kubernetes files. Only `msgen split M --from {rel}` changes\n\
         # {rel}/ (to take a module out); `msgen generate` never touches it.\n\n\
         [project]\nname = \"{name}\"\ndatabase = \"{database}\"\n\n\
         [gateway]\nport = {gateway}\n\n\
         # Every path no service claims goes here.\n\
         [monolith]\nport = {port}\npath = \"{rel}\"\npackage = \"{package}\"\n"
    );
    text.parse()
        .expect("the adopted services.toml is valid TOML")
}

fn adopted_report(
    module: &str,
    service: &str,
    rel: &str,
    port: u16,
    schema: Option<&str>,
    cut: &adopt::Cut,
) -> String {
    let r = &cut.report;
    let mut s = String::new();
    let list = |s: &mut String, title: &str, items: &[String]| {
        let _ = writeln!(s, "\n## {title}\n");
        if items.is_empty() {
            let _ = writeln!(s, "- none");
        }
        for i in items {
            let _ = writeln!(s, "- {i}");
        }
    };
    let _ = writeln!(s, "# Split report: `{module}` out of {rel}/\n");
    let served: Vec<String> = cut
        .paths
        .iter()
        .map(|p| format!("`{p}`"))
        .chain(cut.routes.iter().map(|r| format!("`{r}` (exactly)")))
        .collect();
    let _ = writeln!(
        s,
        "Module `{module}` of the monolith in `{rel}/` is now the `{service}` service in `services/{service}/`, on port {port}, {}. The gateway sends {} to it and every other path to the monolith (port {}).",
        match schema {
            Some(schema) => format!("with its tables in schema `{schema}` of the monolith's database (services.toml `schema`): a new migration of the monolith moves them there, rows included, and each side reads the other's tables in place through its search path (DATABASE_URL's `options`, which compose, Kubernetes and the README set) until the reads below become API calls"),
            None => "with a database of its own".into(),
        },
        served.join(", "),
        cut.monolith_port
    );
    let moved: Vec<String> = cut
        .monolith_removals
        .iter()
        .map(|p| format!("`{rel}/{p}` → `services/{service}/{p}`"))
        .collect();
    list(&mut s, "Moved", &moved);
    let unmounted: Vec<String> = r.unmounted.iter().map(|u| format!("`{rel}/{u}`")).collect();
    list(&mut s, "Unmounted from the monolith", &unmounted);
    list(
        &mut s,
        "Copied along (the service needs them)",
        &r.copied_modules,
    );
    let tables: Vec<String> = r.tables.iter().map(|t| format!("`{t}`")).collect();
    list(&mut s, "Tables that move", &tables);
    list(
        &mut s,
        "Reads across the cut (each query site; replace each with a call to the owner's API)",
        &r.cross_reads,
    );
    list(&mut s, "Migrations", &r.migrations);
    if !r.offline.is_empty() {
        list(&mut s, "Compile-time checked queries", &r.offline);
    }
    let env = |vars: &[crate::model::EnvVar]| -> Vec<String> {
        vars.iter()
            .map(|v| match &v.default {
                Some(d) => format!("`{}` (default `{d}`)", v.name),
                None => format!(
                    "`{}` (required: set it in `.env`; a Secret in Kubernetes)",
                    v.name
                ),
            })
            .collect()
    };
    list(
        &mut s,
        "Environment the service reads (services.toml `env`: compose, Kubernetes and .env.example pass it on)",
        &env(&cut.service_env),
    );
    list(
        &mut s,
        "Environment the monolith reads (`[monolith] env`: compose and .env.example pass it on)",
        &env(&cut.monolith_env),
    );
    let mut human = r.human.clone();
    human.push(format!(
        "the service keeps the monolith's start-up code (`services/{service}/src/`): it now listens on HOST (default 0.0.0.0) and PORT (default {port}) and answers GET /health; remove what it does not need"
    ));
    human.push(format!(
        "tests of the monolith that call {} now need the gateway (or the service)",
        served.join(", ")
    ));
    human.push(format!(
        "compose builds the monolith from `{rel}/` (its Dockerfile); the Kubernetes files do not deploy it: point the gateway's MONOLITH_URL at it"
    ));
    list(&mut s, "Needs a human", &human);
    s
}
