//! One module per command; each turns typed arguments into a plan and applies it.

mod dev;
mod edit;
mod generate;
mod migration;
mod new;
mod output;
mod own_database;
mod service;
mod split;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::apply::{self, Outcome};
use crate::cli::{Cli, Command, GraphFormat};
use crate::model::Project;
use crate::plan::Plan;
use crate::render::Renderer;
use crate::schema;

pub use generate::render_into;
pub use output::{Kind, Printer};

pub const CONFIG_FILE: &str = "services.toml";

/// Whether the command may write the project in the current directory (`new`
/// writes a new directory of its own).
fn writes(command: &Command) -> bool {
    match command {
        Command::Generate { check, dry_run, .. } => !check && !dry_run,
        Command::AddMigration { dry_run, .. }
        | Command::AddService { dry_run, .. }
        | Command::RemoveService { dry_run, .. }
        | Command::Split { dry_run, .. } => !dry_run,
        _ => false,
    }
}

/// `split --from`: the project may not have a `services.toml` yet.
fn is_adoption(command: &Command) -> bool {
    matches!(command, Command::Split { from: Some(_), .. })
}

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
    // Held until the command returns: one writer per project (see crate::lock).
    let _lock = if writes(&cli.command)
        && (cwd.join(CONFIG_FILE).exists()
            || is_adoption(&cli.command)
            || crate::txn::pending(&cwd))
    {
        let lock = crate::lock::ProjectLock::acquire(&cwd)?;
        // A run killed after its commit is finished before anything is read.
        let left = crate::txn::recover(&cwd)?;
        if !left.is_empty() {
            out.note(&format!(
                "finished an interrupted msgen run, except for {} (changed since)",
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(lock)
    } else {
        None
    };
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
        Command::Generate {
            check,
            dry_run,
            allow_data_loss,
            accept_schema,
        } => generate::run(
            &cwd,
            check,
            dry_run,
            &SchemaArgs {
                allow_data_loss,
                accept: accept_schema,
                inputs: None,
            },
            out,
        ),
        Command::AddMigration {
            service,
            name,
            dry_run,
        } => migration::add(&cwd, &service, &name, dry_run, out),
        Command::Status { diff } => status::run(&cwd, diff, out),
        Command::Dev => dev::run(&cwd, out),
        Command::Validate => {
            let project = load(&cwd)?;
            // The schema changes services.toml asks for must be ones msgen makes
            // (a required field added needs a default, ...): found here too.
            let renderer = Renderer::new().context("loading the embedded templates")?;
            let inputs = schema_inputs(&cwd, &project, &SchemaArgs::default())?;
            renderer.plan(&project, &inputs)?;
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
            fields,
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
                fields,
            },
            dry_run,
            out,
        ),
        Command::RemoveService {
            name,
            allow_data_loss,
            dry_run,
        } => service::remove(&cwd, &name, allow_data_loss, dry_run, out),
        Command::Split {
            module,
            own_database: true,
            dry_run,
            ..
        } => own_database::run(&cwd, &module, dry_run, out),
        Command::Split {
            module,
            from,
            dry_run,
            ..
        } => split::run(&cwd, &module, from, dry_run, out),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "msgen", &mut script);
            crate::emit(&String::from_utf8_lossy(&script));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { command } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Built first, so each command's page lists the global options too.
            cmd.build();
            let (cmd, invoked_as) = match command {
                None => (cmd, "msgen".to_string()),
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
                    let sub = sub.name(page).version(env!("CARGO_PKG_VERSION"));
                    (sub, format!("msgen {name}"))
                }
            };
            let page = man_page(cmd, &invoked_as).context("writing the man page")?;
            crate::emit(&String::from_utf8_lossy(&page));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The man page of `cmd`: clap_mangen's sections, with a synopsis of our own that
/// shows every option's value (`[-C DIR]`), which clap_mangen's leaves out.
fn man_page(mut cmd: clap::Command, invoked_as: &str) -> std::io::Result<Vec<u8>> {
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    page.extend_from_slice(synopsis(&cmd, invoked_as).as_bytes());
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut page)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    // Each section rendered alone repeats roff's two-line preamble: keep the first.
    let text = String::from_utf8_lossy(&page).into_owned();
    let mut seen = std::collections::HashSet::new();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            (!l.starts_with(".ie \\n(.g") && !l.starts_with(".el .ds Aq")) || seen.insert(*l)
        })
        .collect();
    Ok((lines.join("\n") + "\n").into_bytes())
}

/// `.SH SYNOPSIS` in roff: `msgen [-C DIR] [-q|--quiet] ... <command>`.
fn synopsis(cmd: &clap::Command, invoked_as: &str) -> String {
    let roff = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let mut line = format!("\\fB{}\\fR", roff(invoked_as));
    let value = |arg: &clap::Arg| {
        let names = arg.get_value_names().map_or_else(
            || arg.get_id().as_str().to_uppercase(),
            |names| {
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
        format!("\\fI{}\\fR", roff(&names))
    };
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", roff(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff(l)),
            (None, None) => continue,
        };
        let flag = if arg.get_action().takes_values() {
            format!("{flag} {}", value(arg))
        } else {
            flag
        };
        let (open, close) = if arg.is_required_set() {
            ("<", ">")
        } else {
            ("[", "]")
        };
        line.push_str(&format!(" {open}{flag}{close}"));
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (open, close) = if arg.is_required_set() {
            ("<", ">")
        } else {
            ("[", "]")
        };
        line.push_str(&format!(" {open}{}{close}", value(arg)));
    }
    if cmd.has_subcommands() {
        line.push_str(" <\\fIcommand\\fR>");
    }
    format!(".SH SYNOPSIS\n{line}\n")
}

/// Validates `text`, a `services.toml` that command-line options produced from a
/// file. Its problems are the options' doing, so they are told as such (a usage
/// error), without line numbers of a file that was never written.
pub fn parse_edited(text: &str, file: &Path, options: &str) -> Result<Project> {
    Project::parse(text, file).map_err(|e| {
        crate::UsageError(format!(
            "{options} would make {} invalid; nothing was written:\n  {}",
            file.display(),
            problems(&e).join("\n  ")
        ))
        .into()
    })
}

/// The problems of a file that was never written, without its line numbers: one
/// line each (key, message, help), each said once.
pub fn problems(e: &crate::diagnostic::ConfigError) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for d in e.diagnostics() {
        let key = if d.key.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", d.key)
        };
        let line = match &d.help {
            Some(h) => format!("{key}{} ({h})", d.message),
            None => format!("{key}{}", d.message),
        };
        let line = crate::diagnostic::clean(&line);
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

/// Files under `dir`, relative to it, sorted. Symbolic links are neither followed
/// (they could lead outside the project) nor listed.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?;
            Some(rel.to_string_lossy().replace('\\', "/"))
        })
        .collect();
    out.sort();
    out
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
pub fn plan_changes(
    root: &Path,
    project: &Project,
    staged: &apply::Staged,
    schema: &SchemaArgs,
) -> Result<(Plan, Outcome)> {
    let renderer = Renderer::new().context("loading the embedded templates")?;
    let mut inputs = match &schema.inputs {
        Some(i) => i.clone(),
        None => schema_inputs(root, project, schema)?,
    };
    inputs.macros = crate::macro_uses::used_under(root, project);
    let plan = renderer
        .plan(project, &inputs)
        .map_err(|err| located(root, err))?;
    let outcome = apply::diff_staged(root, &plan, staged)?;
    Ok((plan, outcome))
}

/// The schema problems of `err` with where their keys are in `services.toml`.
fn located(root: &Path, err: crate::render::RenderError) -> crate::render::RenderError {
    let crate::render::RenderError::Schema(mut problems) = err else {
        return err;
    };
    let path = root.join("services.toml");
    if let Ok(text) = std::fs::read_to_string(&path) {
        for p in &mut problems {
            if let Some((line, col)) = crate::diagnostic::locate_key(&text, &p.key) {
                p.key = format!("{}:{line}:{col}: `{}`", path.display(), p.key);
            }
        }
    }
    crate::render::RenderError::Schema(problems)
}

/// What the command line says about schema changes.
#[derive(Debug, Clone, Default)]
pub struct SchemaArgs {
    pub allow_data_loss: bool,
    pub accept: Vec<String>,
    /// The records and migrations as a command will leave them (`split` moves
    /// them before it renders), instead of as they are on disk.
    pub inputs: Option<schema::Inputs>,
}

/// The owner of a database named `name` on the command line (`flag` names the
/// option, for the message), or a usage error listing the ones there are.
pub fn owner_named(project: &Project, name: &str, flag: &str) -> Result<schema::Owner> {
    let owners = schema::owners(project);
    let names: Vec<&str> = owners.iter().map(|o| o.name.as_str()).collect();
    if let Some(o) = owners.iter().find(|o| o.name == name) {
        return Ok(o.clone());
    }
    Err(crate::UsageError(format!(
        "{flag}{name}: no service with a database msgen renders has that name; those with one: {}{}",
        none_or_list(&names),
        crate::diagnostic::did_you_mean(name, &names)
            .map(|m| format!(" (did you mean `{m}`?)"))
            .unwrap_or_default()
    ))
    .into())
}

/// `a, b, c`, or `none`.
pub fn none_or_list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Reads each owner's schema record and migration files.
pub fn schema_inputs(root: &Path, project: &Project, args: &SchemaArgs) -> Result<schema::Inputs> {
    let mut inputs = schema::Inputs {
        options: schema::Options {
            allow_data_loss: args.allow_data_loss,
        },
        ..Default::default()
    };
    for name in &args.accept {
        owner_named(project, name, "--accept-schema ")?;
        inputs.accept.insert(name.clone());
    }
    for schema::Owner { name, dir, .. } in schema::owners(project) {
        let mut disk = schema::owner::Disk::default();
        let record_path = apply::safe_path(root, &schema::record::path(&name))?;
        // A deleted record comes back from msgen's copy of what it last wrote: it
        // remembers versions that moved away, which the files no longer show.
        let base_copy = apply::safe_path(
            root,
            &format!(".msgen/base/{}", schema::record::path(&name)),
        )?;
        let read = std::fs::read(&record_path).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => std::fs::read(&base_copy),
            _ => Err(e),
        });
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let record = schema::Record::parse(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: {e}\n  help: this is msgen's record of what the migrations in {dir}/migrations produce: restore it (git, or msgen's copy in {})",
                        record_path.display(),
                        base_copy.display()
                    )
                })?;
                disk.record = Some(record);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", record_path.display()))
            }
        }
        let mdir = apply::safe_path(root, &format!("{dir}/migrations"))?;
        for file in files_under(&mdir) {
            if file.contains('/') || schema::owner::version_of(&file).is_none() {
                continue;
            }
            let bytes = std::fs::read(mdir.join(&file))
                .with_context(|| format!("cannot read {dir}/migrations/{file}"))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // msgen wrote it if its record of what it wrote is the same: what the
            // file creates is then msgen's to change (the user's file may look alike).
            let base = apply::safe_path(root, &format!(".msgen/base/{dir}/migrations/{file}"))?;
            if std::fs::read(&base).is_ok_and(|b| b == bytes) {
                disk.ours.insert(file.clone());
            }
            disk.files.insert(file, text);
        }
        inputs.owners.insert(name, disk);
    }
    Ok(inputs)
}
