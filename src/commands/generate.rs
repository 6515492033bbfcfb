//! `msgen generate`: re-render a project from its `services.toml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::{load, plan_changes, Kind, Printer, SchemaArgs, CONFIG_FILE};
use crate::apply::{self, Action, ConfigEdit, Staged};
use crate::model::Project;
use crate::CheckFailed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
    Check,
}

pub fn run(
    root: &Path,
    check: bool,
    dry_run: bool,
    schema: &SchemaArgs,
    out: Printer,
) -> Result<ExitCode> {
    let project = load(root)?;
    for w in majors_drift(root, &project) {
        crate::emit(&format!("warning: {w}\n"));
    }
    let mode = if check {
        Mode::Check
    } else if dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    render_into(root, &project, None, &Staged::default(), mode, schema, out)
}

/// Where an adopted monolith's axum or sqlx major is not the one generated code
/// is written for (`[project] axum`, `sqlx`): the workspace would build two.
fn majors_drift(root: &Path, project: &Project) -> Vec<String> {
    use crate::model::{dependency_major, AxumMajor, SqlxMajor};
    let Some(ext) = project.monolith.as_ref().and_then(|m| m.external.as_ref()) else {
        return Vec::new();
    };
    let manifest = format!("{}/Cargo.toml", ext.path);
    let Ok(doc) = std::fs::read_to_string(root.join(&manifest))
        .unwrap_or_default()
        .parse::<toml_edit::DocumentMut>()
    else {
        return Vec::new();
    };
    let major = |name: &str| dependency_major(&doc, name);
    let mut out = Vec::new();
    let mut drift = |name: &str, theirs: Option<String>, ours: &str, supported: bool| {
        if let Some(theirs) = theirs.filter(|t| t != ours) {
            let fix = if supported {
                format!("set `{name} = \"{theirs}\"` under [project] in {CONFIG_FILE}")
            } else {
                format!("msgen generates for other majors only; upgrade the monolith's {name}")
            };
            out.push(format!(
                "{manifest} asks for {name} {theirs}, the generated crates use {name} {ours}: the workspace builds both ({fix})"
            ));
        }
    };
    let axum = major("axum");
    let supported = axum.as_deref().and_then(AxumMajor::parse).is_some();
    drift("axum", axum, project.majors.axum.as_str(), supported);
    // sqlx matters only where generated code uses it beside the monolith's.
    if project
        .services
        .iter()
        .any(|s| !s.adopted() && s.database != crate::model::DatabaseKind::None)
    {
        let sqlx = major("sqlx");
        let supported = sqlx.as_deref().and_then(SqlxMajor::parse).is_some();
        drift("sqlx", sqlx, project.majors.sqlx.as_str(), supported);
    }
    out
}

/// Renders `project` into `root`. `config`, when given, is the command's edit of
/// `services.toml`, and `staged` the files it writes itself (`split`): both are
/// written in the same transaction as the render.
pub fn render_into(
    root: &Path,
    project: &Project,
    config: Option<&ConfigEdit>,
    staged: &Staged,
    mode: Mode,
    schema: &SchemaArgs,
    out: Printer,
) -> Result<ExitCode> {
    let (plan, mut outcome) = plan_changes(root, project, staged, schema)?;
    let config_path = root.join(CONFIG_FILE);
    // As it will be on disk: its line endings and byte order mark kept.
    let config_changes = config.and_then(ConfigEdit::changed_bytes);

    match mode {
        Mode::Check => {
            if crate::txn::pending(root) {
                return Err(CheckFailed(format!(
                    "an interrupted msgen run has not finished ({} is there): run `msgen generate` to finish it",
                    crate::txn::JOURNAL
                ))
                .into());
            }
            let drifted: Vec<_> = outcome.pending().collect();
            if drifted.is_empty() && plan.schema_warnings.is_empty() {
                out.line("generated files are up to date");
                return Ok(ExitCode::SUCCESS);
            }
            let mut msg = format!(
                "{} file(s) differ from what services.toml renders:",
                drifted.len()
            );
            for c in drifted {
                msg.push_str(&format!("\n  {:<14} {}", apply::verb(&c.action), c.path));
            }
            if !plan.schema_changes.is_empty() {
                msg.push_str("\nthe database schema services.toml describes is not what the migrations make; missing:");
                for c in &plan.schema_changes {
                    msg.push_str(&format!("\n  {c}"));
                }
            }
            for w in &plan.schema_warnings {
                msg.push_str(&format!("\n  {w}"));
            }
            msg.push_str("\nrun `msgen generate` (or `msgen generate --dry-run` to see the diff)");
            Err(CheckFailed(msg).into())
        }
        Mode::DryRun => {
            if let (Some(new), Some(edit)) = (&config_changes, config) {
                let old = String::from_utf8_lossy(edit.seen.as_deref().unwrap_or_default());
                let new = String::from_utf8_lossy(new);
                crate::emit(&apply::unified_diff(CONFIG_FILE, &old, &new));
            }
            for c in outcome.pending() {
                match &c.action {
                    Action::Record | Action::Unchanged => {}
                    Action::Foreign { record } => crate::emit(&format!(
                        "CONFLICT {}: {}\n",
                        c.path,
                        record.explain(&c.path)
                    )),
                    Action::KeepEdited => crate::emit(&format!(
                        "keep {}: no longer generated, but edited by you; it would be kept\n",
                        c.path
                    )),
                    Action::KeepMigration => crate::emit(&format!(
                        "keep {}: a migration no longer generated; it would be kept, since it may have run\n",
                        c.path
                    )),
                    _ => {
                        if let Some(d) = apply::render_diff(c) {
                            crate::emit(&d.to_string());
                        }
                    }
                }
            }
            for c in &plan.schema_changes {
                crate::emit(&format!("migration: {c}\n"));
            }
            for w in &plan.schema_warnings {
                crate::emit(&format!("warning: {w}\n"));
            }
            if outcome.is_clean() && config_changes.is_none() {
                out.line("nothing to do");
            }
            Ok(ExitCode::SUCCESS)
        }
        Mode::Apply => {
            let mut config_kind = None;
            if let Some(edit) = config {
                if outcome.set_config(root, &config_path, edit)? {
                    config_kind = Some(if edit.seen.is_some() {
                        Kind::Updated
                    } else {
                        Kind::Created
                    });
                }
            }
            // Counted in changes to the tree; records and unchanged files are quick.
            let writes = outcome
                .changes
                .iter()
                .filter(|c| c.writes_or_deletes())
                .count();
            // Before applying: said even if the apply stops on a file saved meanwhile.
            for n in &outcome.notes {
                out.note(n);
            }
            let mut progress = out.progress(writes);
            let mut written = 0;
            apply::apply_with_progress(root, &outcome, &mut |change| {
                if change.writes_or_deletes() {
                    progress.tick(written);
                    written += 1;
                }
            })?;
            progress.finish();
            out.outcome(&outcome, config_kind);
            if !plan.schema_changes.is_empty() {
                out.line("database changes in the new migrations:");
                for c in &plan.schema_changes {
                    out.line(format!("  {c}"));
                }
            }
            for w in &plan.schema_warnings {
                out.note(w);
            }
            let conflicts = outcome.conflicts();
            if !conflicts.is_empty() {
                let mut msg =
                    String::from("merge conflicts; fix these files and run msgen generate again:");
                for c in &outcome.changes {
                    match &c.action {
                        Action::Conflict { marked, .. } => {
                            let lines: Vec<String> = apply::conflict_starts(marked)
                                .iter()
                                .map(ToString::to_string)
                                .collect();
                            msg.push_str(&format!(
                                "\n  {}: {} conflicting hunk(s) at line(s) {}, marked with <<<<<<< / >>>>>>> (yours first, then the new render)",
                                c.path,
                                lines.len(),
                                lines.join(", ")
                            ));
                        }
                        Action::Foreign { record } => {
                            msg.push_str(&format!("\n  {}: {}", c.path, record.explain(&c.path)))
                        }
                        _ => {}
                    }
                }
                return Err(CheckFailed(msg).into());
            }
            for c in &outcome.changes {
                match c.action {
                    Action::KeepEdited => out.note(&format!(
                        "{} is no longer generated but you edited it, so it was kept",
                        c.path
                    )),
                    Action::KeepMigration => out.note(&format!(
                        "{} is no longer generated but was kept: it may have run against a database (delete it by hand once no database needs it)",
                        c.path
                    )),
                    _ => {}
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
