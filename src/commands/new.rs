//! `msgen new NAME`: create a project directory and render it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use super::edit;
use super::generate::{render_into, Mode};
use super::{Printer, CONFIG_FILE};
use crate::cli::DatabaseArg;
use crate::model::{Project, ProjectName};
use crate::UsageError;

/// The article's system: what `msgen new NAME --yes` renders.
pub const BUILTIN_EXAMPLE: &str = include_str!("../../examples/blogsys.toml");

pub struct NewArgs {
    pub name: PathBuf,
    pub config: Option<PathBuf>,
    pub yes: bool,
    pub database: Option<DatabaseArg>,
    pub monolith: bool,
    pub dry_run: bool,
}

pub fn run(cwd: &Path, args: NewArgs, out: Printer) -> Result<ExitCode> {
    let project_name = args
        .name
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            UsageError(format!(
                "{}: not a usable project name",
                args.name.display()
            ))
        })?;
    let name =
        ProjectName::parse(project_name).map_err(|m| UsageError(format!("project name: {m}")))?;
    let root = cwd.join(&args.name);
    if root.exists() {
        let empty = root
            .read_dir()
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            bail!(
                "{} already exists and is not empty; pick another name or remove it",
                root.display()
            );
        }
    }

    let (text, source) = match &args.config {
        Some(path) => {
            let path = cwd.join(path);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            // Validate the user's file as written, so messages point into it.
            Project::parse_bytes(&bytes, &path)?;
            (String::from_utf8(bytes).unwrap_or_default(), path)
        }
        None => (
            BUILTIN_EXAMPLE.to_string(),
            PathBuf::from("<built-in example>"),
        ),
    };
    let database = match args.database {
        Some(d) => Some(d),
        None if !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            Some(ask_database()?)
        }
        None => None,
    };

    let mut doc = edit::parse(&text)?;
    edit::set_project_name(&mut doc, name.as_str())?;
    if let Some(d) = database {
        edit::set_default_database(&mut doc, d.as_str())?;
    }
    if args.monolith {
        edit::make_monolith(&mut doc, crate::model::DEFAULT_MONOLITH_PORT)?;
    }
    let config = doc.to_string();
    let project = Project::parse(&config, &source)?;

    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    if mode == Mode::Apply {
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        crate::apply::write_atomic(&root.join(CONFIG_FILE), config.as_bytes())?;
        out.line(format!("Creating {} in {}", name.as_str(), root.display()));
    }
    let code = render_into(&root, &project, None, mode, out)?;
    if mode == Mode::Apply {
        let dir = args.name.display();
        out.line(format!(
            "\nDone. Next steps:\n  cd {dir}\n  cargo build\n  cargo test           # needs PostgreSQL on 127.0.0.1:5432 for the postgres services\n  cp .env.example .env && docker compose up --build"
        ));
    }
    Ok(code)
}

fn ask_database() -> Result<DatabaseArg> {
    let items = ["postgres", "sqlite", "none"];
    let choice = dialoguer::Select::new()
        .with_prompt("Database for each service")
        .items(&items)
        .default(0)
        .interact()
        .context("reading the answer")?;
    Ok(match choice {
        1 => DatabaseArg::Sqlite,
        2 => DatabaseArg::None,
        _ => DatabaseArg::Postgres,
    })
}
