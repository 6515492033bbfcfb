//! What msgen prints on stdout: headers, a summary of the files a command created,
//! changed, merged or removed, and next steps. Coloured through anstream, which
//! drops the colours when stdout is not a terminal or `NO_COLOR` is set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};

use crate::apply::{Action, Outcome};
use crate::model::{DatabaseKind, Project};

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const HEADER: Style = AnsiColor::Green.on_default().bold();
const NOTE: Style = AnsiColor::Yellow.on_default().bold();

/// Where output goes; `--quiet` keeps only errors (which go to stderr elsewhere).
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
}

/// What happened to one file, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Created,
    Updated,
    Merged,
    Removed,
    Kept,
    KeptMigration,
    Conflict,
}

impl Kind {
    /// `None` for what the user does not need to hear about.
    pub fn of(action: &Action) -> Option<Kind> {
        Some(match action {
            Action::Create { .. } => Kind::Created,
            Action::Update { .. } => Kind::Updated,
            Action::Merge { .. } => Kind::Merged,
            Action::Conflict { .. } | Action::Foreign { .. } => Kind::Conflict,
            Action::Delete { .. } => Kind::Removed,
            Action::KeepEdited => Kind::Kept,
            Action::KeepMigration => Kind::KeptMigration,
            Action::Record | Action::Unchanged => return None,
        })
    }

    fn verb(self) -> &'static str {
        match self {
            Kind::Created => "create",
            Kind::Updated => "update",
            Kind::Merged => "merge",
            Kind::Removed => "remove",
            Kind::Kept | Kind::KeptMigration => "keep",
            Kind::Conflict => "CONFLICT",
        }
    }

    fn counted(self, n: usize) -> String {
        match self {
            Kind::Created => format!("{n} created"),
            Kind::Updated => format!("{n} updated"),
            Kind::Merged => format!("{n} merged"),
            Kind::Removed => format!("{n} removed"),
            Kind::Kept => format!("{n} kept (edited by you)"),
            Kind::KeptMigration => format!("{n} migration(s) kept (they may have run)"),
            Kind::Conflict if n == 1 => "1 conflict".to_string(),
            Kind::Conflict => format!("{n} conflicts"),
        }
    }

    fn style(self) -> Style {
        match self {
            Kind::Created => AnsiColor::Green.on_default(),
            Kind::Updated => AnsiColor::Cyan.on_default(),
            Kind::Merged => AnsiColor::Magenta.on_default(),
            Kind::Removed => AnsiColor::Red.on_default(),
            Kind::Kept | Kind::KeptMigration => AnsiColor::Yellow.on_default(),
            Kind::Conflict => AnsiColor::Red.on_default().bold(),
        }
    }
}

/// The files of `outcome` the user should hear about, with `services.toml` first
/// when the command wrote it.
pub fn entries(outcome: &Outcome, config: Option<Kind>) -> Vec<(Kind, String)> {
    config
        .map(|k| (k, super::CONFIG_FILE.to_string()))
        .into_iter()
        .chain(
            outcome
                .pending()
                .filter_map(|c| Kind::of(&c.action).map(|k| (k, c.path.clone()))),
        )
        .collect()
}

/// Counts, then the files grouped under their top-level directory:
///
/// ```text
/// 2 created, 1 updated
///   ./
///     update   Cargo.toml
///   services/
///     create   billing/Cargo.toml
///     create   billing/src/main.rs
/// ```
///
/// With ANSI styles; anstream removes them where colour is off.
pub fn summary(entries: &[(Kind, String)]) -> String {
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for (k, _) in entries {
        *counts.entry(*k).or_default() += 1;
    }
    let mut out = counts
        .iter()
        .map(|(k, n)| {
            let s = k.style();
            format!("{s}{}{s:#}", k.counted(*n))
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.push('\n');

    // Top-level files first (under "./"), then each directory in name order.
    let mut groups: BTreeMap<(bool, &str), Vec<(Kind, &str)>> = BTreeMap::new();
    for (k, path) in entries {
        let (key, rest) = match path.split_once('/') {
            Some((dir, rest)) => ((true, dir), rest),
            None => ((false, "."), path.as_str()),
        };
        groups.entry(key).or_default().push((*k, rest));
    }
    for ((_, dir), mut files) in groups {
        files.sort_by(|a, b| a.1.cmp(b.1));
        let _ = writeln!(out, "  {BOLD}{dir}/{BOLD:#}");
        for (k, rest) in files {
            let s = k.style();
            let _ = writeln!(out, "    {s}{:<8}{s:#} {rest}", k.verb());
        }
    }
    out
}

impl Printer {
    pub fn line(&self, s: impl AsRef<str>) {
        if !self.quiet {
            crate::emit(&format!("{}\n", s.as_ref()));
        }
    }

    /// `Creating demo in ./demo`, the verb in bold green as cargo does.
    pub fn header(&self, verb: &str, rest: &str) {
        self.line(format!("{HEADER}{verb}{HEADER:#} {rest}"));
    }

    /// A remark after the summary, e.g. about a file that was kept.
    pub fn note(&self, text: &str) {
        self.line(format!("{NOTE}note:{NOTE:#} {text}"));
    }

    /// A counter for writing `total` files: shown on a terminal for large renders.
    pub fn progress(&self, total: usize) -> Progress {
        Progress {
            total,
            shown: None,
            enabled: !self.quiet && total >= Progress::THRESHOLD && std::io::stderr().is_terminal(),
        }
    }

    /// The summary of what changed; "up to date" when nothing did.
    pub fn outcome(&self, outcome: &Outcome, config: Option<Kind>) {
        let entries = entries(outcome, config);
        if entries.is_empty() {
            self.line("up to date");
        } else {
            self.line(summary(&entries).trim_end());
        }
    }

    /// What to do after `msgen new`.
    pub fn next_steps(&self, dir: &str, project: &Project) {
        let postgres = project
            .services
            .iter()
            .any(|s| s.database == DatabaseKind::Postgres)
            || (project.monolith.is_some() && project.default_database == DatabaseKind::Postgres);
        let test_note = if postgres {
            format!("   {DIM}# the postgres services need PostgreSQL on 127.0.0.1:5432{DIM:#}")
        } else {
            String::new()
        };
        let env = if project.auth_service().is_some() {
            "with .env, which holds a fresh JWT_SECRET"
        } else {
            "with .env"
        };
        self.line(format!(
            "\n{BOLD}Next steps:{BOLD:#}\n  cd {dir}\n  cargo build\n  cargo test{test_note}\n  docker compose up --build   {DIM}# {env}; or without Docker: README.md, \"Develop\"{DIM:#}"
        ));
    }
}

/// One line on stderr, rewritten in place, while a large render is written; gone
/// when it is done. Only on a terminal, so logs and pipes never see it.
pub struct Progress {
    total: usize,
    shown: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// Renders with fewer changes are over before a counter could be read.
    const THRESHOLD: usize = 200;

    pub fn tick(&mut self, done: usize) {
        if !self.enabled {
            return;
        }
        let due = match self.shown {
            None => true,
            Some(at) => at.elapsed() >= Duration::from_millis(100),
        };
        if due {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r  writing files {done}/{}", self.total);
            let _ = err.flush();
            self.shown = Some(Instant::now());
        }
    }

    pub fn finish(&mut self) {
        if self.enabled && self.shown.take().is_some() {
            let mut err = std::io::stderr().lock();
            // Back to the start of the line and clear it.
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    /// Also when writing failed: the error then starts on a clean line.
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn groups_files_under_their_top_level_directory() {
        let entries = vec![
            (Kind::Updated, "services.toml".to_string()),
            (Kind::Created, "services/billing/src/main.rs".to_string()),
            (Kind::Updated, "Cargo.toml".to_string()),
            (Kind::Created, "services/billing/Cargo.toml".to_string()),
            (Kind::Merged, "gateway/src/routes.rs".to_string()),
        ];
        assert_eq!(
            plain(&summary(&entries)),
            "2 created, 2 updated, 1 merged\n  ./\n    update   Cargo.toml\n    update   services.toml\n  gateway/\n    merge    src/routes.rs\n  services/\n    create   billing/Cargo.toml\n    create   billing/src/main.rs\n"
        );
    }
}
