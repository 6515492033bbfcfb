//! One module per command; each turns typed arguments into a plan and applies it.

mod edit;
mod generate;
mod new;
mod output;
mod service;
mod split;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::apply::{self, Outcome};
use crate::cli::{Cli, Command, GraphFormat};
use crate::model::Project;
use crate::render::{existing_migrations, Renderer};

pub use generate::render_into;
pub use output::{Kind, Printer};

pub const CONFIG_FILE: &str = "services.toml";

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cwd = match &cli.dir {
        Some(d) => d.clone(),
        None => PathBuf::from("."),
    };
    if let Some(d) = &cli.dir {
        if !d.is_dir() {
            return Err(crate::UsageError(format!("-C {}: no such directory", d.display())).into());
        }
    }
    let out = Printer { quiet: cli.quiet };
    match cli.command {
        Command::New {
            name,
            config,
            yes,
            database,
            monolith,
            dry_run,
        } => new::run(
            &cwd,
            new::NewArgs {
                name,
                config,
                yes,
                database,
                monolith,
                dry_run,
            },
            out,
        ),
        Command::Generate { check, dry_run } => generate::run(&cwd, check, dry_run, out),
        Command::Validate => {
            let project = load(&cwd)?;
            out.line(format!(
                "{}: ok ({} services, gateway on {})",
                cwd.join(CONFIG_FILE).display(),
                project.services.len(),
                project.gateway.port.get()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { format } => {
            let project = load(&cwd)?;
            let text = match format {
                GraphFormat::Mermaid => crate::graph::mermaid(&project),
                GraphFormat::Dot => crate::graph::dot(&project),
            };
            crate::emit(&text);
            Ok(ExitCode::SUCCESS)
        }
        Command::AddService {
            name,
            port,
            database,
            template,
            depends_on,
            resource,
            dry_run,
        } => service::add(
            &cwd,
            service::AddArgs {
                name,
                port,
                database,
                template,
                depends_on,
                resource,
            },
            dry_run,
            out,
        ),
        Command::RemoveService { name, dry_run } => service::remove(&cwd, &name, dry_run, out),
        Command::Split {
            module,
            from,
            dry_run,
        } => split::run(&cwd, &module, from, dry_run, out),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "msgen", &mut script);
            crate::emit(&String::from_utf8_lossy(&script));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { command } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let cmd = match command {
                None => cmd,
                Some(name) => {
                    let names: Vec<String> = cmd
                        .get_subcommands()
                        .map(|c| c.get_name().to_string())
                        .collect();
                    let Some(sub) = cmd.find_subcommand(&name).cloned() else {
                        return Err(crate::UsageError(format!(
                            "no command `{name}`; commands: {}",
                            names.join(", ")
                        ))
                        .into());
                    };
                    // The page's name, as the main page refers to it. clap takes a
                    // static name; this runs once per process.
                    let page: &'static str = Box::leak(format!("msgen-{name}").into_boxed_str());
                    sub.name(page)
                }
            };
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("writing the man page")?;
            crate::emit(&String::from_utf8_lossy(&page));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads and validates `services.toml` in `root`.
pub fn load(root: &Path) -> Result<Project> {
    let path = root.join(CONFIG_FILE);
    if !path.is_file() {
        anyhow::bail!(
            "{} not found: run msgen inside a project (or pass -C DIR), or create one with `msgen new NAME`",
            path.display()
        );
    }
    Ok(Project::load(&path)?)
}

/// Renders `project` and works out the changes to the tree at `root`.
pub fn plan_changes(root: &Path, project: &Project) -> Result<Outcome> {
    let renderer = Renderer::new().context("loading the embedded templates")?;
    let plan = renderer.plan(project, &existing_migrations(root, project))?;
    apply::diff(root, &plan)
}
