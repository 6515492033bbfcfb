//! `msgen status`: where the project stands against its `services.toml` and
//! msgen's records, as `git status` does for a repository: the generated files
//! with hand edits, conflicts not yet resolved, what `generate` would change, and
//! schema changes waiting for a migration. Reads only; exit 1 when `generate` has
//! something to do or a conflict is open, so CI can gate on it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::{load, plan_changes, Printer, SchemaArgs};
use crate::apply::{self, Action, HandEdit, Staged};

/// Everything `status` reports, gathered before anything is printed.
#[derive(Debug, Default)]
pub struct Status {
    /// Generated files edited (or removed) by hand; `generate` keeps them.
    pub edits: Vec<HandEdit>,
    /// Files still holding conflict markers, with the lines their hunks start at.
    pub conflicts: Vec<(String, Vec<usize>)>,
    /// What `generate` would do to the tree: (verb, path).
    pub pending: Vec<(&'static str, String)>,
    /// Schema changes `services.toml` asks for that no migration makes yet.
    pub schema: Vec<String>,
    /// Schema changes `generate` refuses without a flag, and why.
    pub warnings: Vec<String>,
    /// An interrupted msgen run is waiting to be finished.
    pub interrupted: bool,
    /// The runtime the project carries ("runtime 0.1.0", or that none is recorded),
    /// when it is not the one this msgen renders.
    pub other_runtime: Option<String>,
}

/// The runtime version the workspace's `Cargo.toml` records, if any.
fn carried_runtime(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("workspace")?
        .get("metadata")?
        .get("msgen")?
        .get("runtime")?
        .as_str()
        .map(str::to_string)
}

impl Status {
    pub fn gather(root: &Path) -> Result<Status> {
        let project = load(root)?;
        let (plan, outcome) =
            plan_changes(root, &project, &Staged::default(), &SchemaArgs::default())?;
        let conflicts = apply::unresolved_conflicts(root)?;
        let pending: Vec<(&'static str, String)> = outcome
            .pending()
            .filter(|c| !matches!(c.action, Action::Record | Action::Unchanged))
            .filter(|c| !conflicts.iter().any(|(p, _)| *p == c.path))
            .map(|c| (apply::verb(&c.action), c.path.clone()))
            .collect();
        // A file removed by hand that `generate` writes again is said once, there.
        let edits = apply::hand_edits(root)?
            .into_iter()
            .filter(|e| !conflicts.iter().any(|(p, _)| *p == e.path))
            .filter(|e| e.current.is_some() || !pending.iter().any(|(_, p)| *p == e.path))
            .collect();
        Ok(Status {
            edits,
            conflicts,
            pending,
            schema: plan
                .schema_changes
                .iter()
                .map(ToString::to_string)
                .collect(),
            warnings: plan.schema_warnings.clone(),
            interrupted: crate::txn::pending(root),
            other_runtime: match carried_runtime(root) {
                Some(v) if v == crate::render::runtime_version() => None,
                Some(v) => Some(format!("runtime {v}")),
                None => Some("a runtime from before msgen recorded its version".into()),
            },
        })
    }

    /// Whether `generate` has nothing to do and nothing waits on the user.
    pub fn is_settled(&self) -> bool {
        self.conflicts.is_empty()
            && self.pending.is_empty()
            && self.schema.is_empty()
            && self.warnings.is_empty()
            && !self.interrupted
    }

    /// The report, as printed.
    pub fn report(&self, with_diff: bool) -> String {
        let mut out = String::new();
        if self.interrupted {
            out.push_str(
                "An interrupted msgen run has not finished (`msgen generate` finishes it).\n",
            );
        }
        if let Some(carried) = &self.other_runtime {
            out.push_str(&format!(
                "The project carries {carried}; this msgen renders runtime {} (`msgen generate` moves it there, your edits to it merged).\n",
                crate::render::runtime_version()
            ));
        }
        let section = |out: &mut String, title: &str, lines: Vec<String>| {
            if lines.is_empty() {
                return;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(title);
            out.push('\n');
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
        };
        section(
            &mut out,
            "Unresolved conflicts (fix the lines between <<<<<<< and >>>>>>>, then run `msgen generate`):",
            self.conflicts
                .iter()
                .map(|(path, lines)| {
                    let at: Vec<String> = lines.iter().map(ToString::to_string).collect();
                    format!("{path}: {} hunk(s) at line(s) {}", lines.len(), at.join(", "))
                })
                .collect(),
        );
        section(
            &mut out,
            "Not yet generated from services.toml (`msgen generate` does it; `--dry-run` shows the diff):",
            self.pending
                .iter()
                .map(|(verb, path)| format!("{verb:<14} {path}"))
                .collect(),
        );
        section(
            &mut out,
            "Schema changes waiting for a migration (`msgen generate` writes it):",
            self.schema.clone(),
        );
        section(
            &mut out,
            "Refused until you confirm:",
            self.warnings.clone(),
        );
        section(
            &mut out,
            if with_diff {
                "Hand edits (kept and merged by `msgen generate`), against what msgen last wrote:"
            } else {
                "Hand edits (kept and merged by `msgen generate`; `msgen status --diff` shows them):"
            },
            self.edits
                .iter()
                .map(|e| {
                    let what = if e.current.is_some() {
                        "edited"
                    } else {
                        "deleted"
                    };
                    format!("{what:<14} {}", e.path)
                })
                .collect(),
        );
        if with_diff {
            for e in &self.edits {
                let old = String::from_utf8_lossy(&e.record);
                let new = String::from_utf8_lossy(e.current.as_deref().unwrap_or_default());
                out.push('\n');
                out.push_str(&apply::unified_diff(&e.path, &old, &new));
            }
        }
        if self.is_settled() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(
                "The tree is what services.toml renders: `msgen generate` has nothing to do.\n",
            );
        }
        out
    }
}

pub fn run(root: &Path, with_diff: bool, out: Printer) -> Result<ExitCode> {
    let status = Status::gather(root)?;
    if !out.quiet {
        crate::emit(&status.report(with_diff));
    }
    Ok(if status.is_settled() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
