//! `msgen new NAME`: create a project directory and render it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, MultiSelect, Select};
use toml_edit::DocumentMut;

use super::edit;
use super::generate::{render_into, Mode};
use super::SchemaArgs;
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
                "`{}` cannot name a project: `msgen new` creates a new directory, e.g. `msgen new shop`",
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
    let base = {
        let mut doc = edit::parse(&text)?;
        edit::set_project_name(&mut doc, name.as_str())?;
        doc
    };
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let answers = if interactive {
        ask(&base, &args, &source)?
    } else {
        Answers::from_flags(&args)
    };
    let mut doc = build(&base, &answers)?;
    let choices = answers.describe();
    let project = if choices.is_empty() {
        Project::parse(&doc.to_string(), &source)?
    } else {
        super::parse_edited(&doc.to_string(), &source, &choices)?
    };
    if args.config.is_none() && !choices.is_empty() {
        // The built-in example's opening comment describes the example, not this.
        edit::set_header(&mut doc, &edit::header(&project));
    }
    let config = doc.to_string();

    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    if mode == Mode::Apply {
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        out.header(
            "Creating",
            &format!("{} in {}", name.as_str(), root.display()),
        );
    }
    let edit = crate::apply::ConfigEdit {
        seen: std::fs::read(root.join(super::CONFIG_FILE)).ok(),
        text: config,
    };
    let code = render_into(
        &root,
        &project,
        Some(&edit),
        &crate::apply::Staged::default(),
        mode,
        &SchemaArgs::default(),
        out,
    )?;
    if answers.monolith {
        // Said, not done silently: the monolith leaves the file's events out.
        let with_events: Vec<String> = Project::parse(&base.to_string(), &source)
            .map(|p| {
                p.services
                    .iter()
                    .filter(|s| !answers.removed.iter().any(|r| r == s.name.as_str()))
                    .filter(|s| !s.publishes.is_empty() || !s.consumes.is_empty())
                    .map(|s| format!("`{}`", s.name.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if !with_events.is_empty() {
            out.note(&format!(
                "the modules of a monolith call each other in process: the events of {} are left out; declare them again on a service after `msgen split`",
                with_events.join(", ")
            ));
        }
    }
    if mode == Mode::Apply && code == ExitCode::SUCCESS {
        write_env(&root)?;
        out.next_steps(&args.name.display().to_string(), &project);
    }
    Ok(code)
}

/// Writes `.env` (git-ignored, owner-only) from the `.env.example` just rendered,
/// with a fresh random `JWT_SECRET`, so that `docker compose up` works as the next
/// steps say. Never printed, and outside msgen's records: the secret is the
/// user's alone. An existing `.env` is left as it is.
fn write_env(root: &Path) -> Result<()> {
    let path = root.join(".env");
    if std::fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let example = std::fs::read_to_string(root.join(".env.example"))
        .with_context(|| format!("cannot read {}", root.join(".env.example").display()))?;
    let text = with_secret(&example, &fresh_secret()?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// 32 bytes from the operating system's random source, in hex.
fn fresh_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random source for JWT_SECRET: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `.env.example` with its empty `JWT_SECRET=` line filled in.
fn with_secret(example: &str, secret: &str) -> String {
    example
        .split_inclusive('\n')
        .map(|line| {
            if line.trim_end() == "JWT_SECRET=" {
                format!("JWT_SECRET={secret}\n")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// The answers to `msgen new`'s questions; `None` keeps what the file says.
#[derive(Debug, Clone, Default)]
struct Answers {
    /// Services of the built-in example to drop.
    removed: Vec<String>,
    /// Services to add with the crud template and no resources, in order.
    custom: Vec<String>,
    database: Option<DatabaseArg>,
    gateway_port: Option<u16>,
    monolith: bool,
}

impl Answers {
    fn from_flags(args: &NewArgs) -> Self {
        Self {
            database: args.database,
            monolith: args.monolith,
            ..Self::default()
        }
    }

    /// The choices, as the flags that make them: `--database none, --monolith`;
    /// empty when the file is taken as it is.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.database {
            parts.push(format!("--database {}", d.as_str()));
        }
        if self.monolith {
            parts.push("--monolith".to_string());
        }
        if let Some(p) = self.gateway_port {
            parts.push(format!("gateway port {p}"));
        }
        for name in &self.removed {
            parts.push(format!("without `{name}`"));
        }
        for name in &self.custom {
            parts.push(format!("adding `{name}`"));
        }
        parts.join(", ")
    }
}

/// The `services.toml` that the answers give, built from `base` with the same edits
/// that `--database`, `--monolith`, `remove-service` and `add-service` make, so a
/// session of questions and the equivalent commands write the same file.
fn build(base: &DocumentMut, a: &Answers) -> Result<DocumentMut> {
    let mut doc = base.clone();
    if let Some(d) = a.database {
        edit::set_default_database(&mut doc, d.as_str())?;
    }
    for name in &a.removed {
        edit::remove_service(&mut doc, name)?;
    }
    if !edit::has_auth_service(&mut doc) {
        // A new project without the auth service: nobody's token to own a row.
        edit::drop_access_rules(&mut doc);
    }
    if let Some(port) = a.gateway_port {
        edit::set_gateway_port(&mut doc, port)?;
    }
    for name in &a.custom {
        // As `msgen add-service NAME` does: the next free port, crud, no resources.
        let current = Project::parse(&doc.to_string(), Path::new(CONFIG_FILE))?;
        if current.service(name).is_some() {
            bail!("service `{name}` is already in the project");
        }
        edit::add_service(
            &mut doc,
            &edit::NewService {
                name,
                port: current.next_free_port(),
                database: None,
                template: None,
                depends_on: &[],
                resource: None,
                fields: &[],
            },
        )?;
    }
    if a.monolith {
        edit::make_monolith(&mut doc, crate::model::DEFAULT_MONOLITH_PORT)?;
    }
    Ok(doc)
}

/// Builds and validates, giving a short message for a prompt.
fn check(base: &DocumentMut, a: &Answers) -> Result<Project, String> {
    let doc = build(base, a).map_err(|e| short_error(&e))?;
    Project::parse(&doc.to_string(), Path::new(CONFIG_FILE))
        .map_err(|e| super::problems(&e).join("; "))
}

fn short_error(e: &anyhow::Error) -> String {
    match e.downcast_ref::<crate::diagnostic::ConfigError>() {
        Some(c) if !c.diagnostics().is_empty() => c.diagnostics()[0].message.clone(),
        _ => format!("{e:#}"),
    }
}

/// An answer, or the end of the session: Esc or q (no answer) and Ctrl-C both
/// cancel it, the cursor shown again (the lists hide it while they are up).
fn answered<T>(answer: dialoguer::Result<Option<T>>) -> Result<T> {
    match answer {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(cancelled()),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            let term = dialoguer::console::Term::stderr();
            let _ = term.show_cursor();
            let _ = term.write_line("");
            Err(cancelled())
        }
        Err(e) => Err(anyhow::Error::new(e).context("reading the answer")),
    }
}

/// `msg` indented and broken into lines that fit the terminal: the prompts
/// count the lines they clear, and a line the terminal wraps itself is counted
/// as one.
fn wrapped(msg: &str) -> String {
    let (_, cols) = dialoguer::console::Term::stderr().size();
    let width = usize::from(cols).clamp(40, 120) - 2;
    textwrap::fill(
        msg,
        textwrap::Options::new(width)
            .initial_indent("  ")
            .subsequent_indent("  "),
    )
}

fn cancelled() -> anyhow::Error {
    UsageError("cancelled; nothing was written".into()).into()
}

/// Asks on the terminal what no flag answered. Each answer is checked against the
/// model at once, so a bad one is asked again rather than failing at the end.
fn ask(base: &DocumentMut, args: &NewArgs, source: &Path) -> Result<Answers> {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        dialoguer::console::set_colors_enabled_stderr(false);
    }
    // Ctrl-C between two reads (a read takes it as a key): the lists hide the
    // cursor, so it is shown again; nothing has been written yet.
    let _ = ctrlc::set_handler(|| {
        let term = dialoguer::console::Term::stderr();
        let _ = term.show_cursor();
        eprintln!("\nerror: cancelled; nothing was written");
        std::process::exit(2);
    });
    let theme = ColorfulTheme::default();
    let example = Project::parse(&base.to_string(), source)?;
    let mut a = Answers::from_flags(args);
    let from_file = args.config.is_some();

    if !from_file {
        let names: Vec<String> = example
            .services
            .iter()
            .map(|s| s.name.as_str().to_string())
            .collect();
        let items: Vec<String> = example
            .services
            .iter()
            .map(|s| describe(&example, s))
            .collect();
        let mut picked = vec![true; names.len()];
        loop {
            let chosen = MultiSelect::with_theme(&theme)
                .with_prompt(
                    "Services (space toggles, enter accepts; a service stays while another calls it or hears its events)",
                )
                .items(&items)
                .defaults(&picked)
                .interact_opt();
            let chosen = answered(chosen)?;
            picked = (0..names.len()).map(|i| chosen.contains(&i)).collect();
            a.removed = names
                .iter()
                .zip(&picked)
                .filter(|(_, keep)| !**keep)
                .map(|(n, _)| n.clone())
                .collect();
            match check(base, &a) {
                Ok(_) => break,
                Err(msg) => eprintln!("{}", wrapped(&format!("{msg}; choose again"))),
            }
        }
        let probe = a.clone();
        let custom = Input::<String>::with_theme(&theme)
            .with_prompt("Other services, comma separated (crud template), empty for none")
            .allow_empty(true)
            .validate_with(|text: &String| -> Result<(), String> {
                let mut p = probe.clone();
                p.custom = split_names(text);
                check(base, &p).map(|_| ()).map_err(|m| wrapped(&m))
            })
            .interact_text();
        let custom = answered(custom.map(Some))?;
        a.custom = split_names(&custom);
    }

    let has_monolith = base.get("monolith").is_some();
    if !args.monolith && !has_monolith {
        let mut default = 0;
        loop {
            let layout = Select::with_theme(&theme)
                .with_prompt("Layout")
                .items(&[
                    "services: a crate, a port and a database per service",
                    "modular monolith: one crate, one database; `msgen split` extracts services later",
                ])
                .default(default)
                .interact_opt();
            let layout = answered(layout)?;
            a.monolith = layout == 1;
            default = layout;
            match check(base, &a) {
                Ok(_) => break,
                Err(msg) => eprintln!("{}", wrapped(&format!("{msg}; choose again"))),
            }
        }
    }

    if args.database.is_none() && !from_file {
        let kinds = [
            DatabaseArg::Postgres,
            DatabaseArg::Sqlite,
            DatabaseArg::None,
        ];
        let current = example.default_database.as_str();
        let default = kinds
            .iter()
            .position(|k| k.as_str() == current)
            .unwrap_or(0);
        let prompt = if a.monolith {
            "Database of the monolith"
        } else {
            "Database of every service"
        };
        let mut default = default;
        loop {
            let choice = Select::with_theme(&theme)
                .with_prompt(prompt)
                .items(&["postgres", "sqlite (embedded, nothing to run)", "none"])
                .default(default)
                .interact_opt();
            let choice = answered(choice)?;
            // Choosing what the file already says leaves it untouched.
            a.database = Some(kinds[choice]).filter(|k| k.as_str() != current);
            default = choice;
            match check(base, &a) {
                Ok(_) => break,
                Err(msg) => eprintln!("{}", wrapped(&format!("{msg}; choose again"))),
            }
        }
    }

    if !from_file {
        let current = example.gateway.port.get();
        let probe = a.clone();
        let answer = Input::<String>::with_theme(&theme)
            .with_prompt("Gateway port")
            .default(current.to_string())
            .validate_with(|text: &String| -> Result<(), String> {
                gateway_port_ok(base, &probe, text).map_err(|m| wrapped(&m))
            })
            .interact_text();
        let answer = answered(answer.map(Some))?;
        let port = parse_port(&answer).map_err(|m| anyhow::anyhow!(m))?;
        a.gateway_port = Some(port).filter(|p| *p != current);
    }
    Ok(a)
}

/// Whether `text` is a port the gateway can take, given the other answers.
fn gateway_port_ok(base: &DocumentMut, probe: &Answers, text: &str) -> Result<(), String> {
    let port = parse_port(text)?;
    // Services with a port of their own (not the ones still to be numbered) and
    // the monolith cannot share the gateway's.
    let fixed = Answers {
        custom: Vec::new(),
        gateway_port: None,
        ..probe.clone()
    };
    if let Some(owner) = check(base, &fixed).ok().and_then(|p| port_owner(&p, port)) {
        return Err(format!("port {port} is taken by {owner}"));
    }
    let with_port = Answers {
        gateway_port: Some(port),
        ..probe.clone()
    };
    check(base, &with_port).map(|_| ())
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{text:?} is not a port; accepted: 1 to 65535")),
    }
}

/// What uses `port` in `project`, other than the gateway.
fn port_owner(project: &Project, port: u16) -> Option<String> {
    if project
        .monolith
        .as_ref()
        .is_some_and(|m| m.port.get() == port)
    {
        return Some("the monolith".into());
    }
    project
        .services
        .iter()
        .find(|s| s.port.get() == port)
        .map(|s| format!("service `{}`", s.name.as_str()))
}

/// `blog (resource post; calls user)`: what a service of the example brings.
fn describe(project: &Project, s: &crate::model::Service) -> String {
    let mut parts = Vec::new();
    if s.template == crate::model::Template::Auth {
        parts.push("register, login, JWTs".to_string());
    }
    if !s.resources.is_empty() {
        let r: Vec<&str> = s.resources.iter().map(|r| r.name.as_str()).collect();
        let word = if r.len() == 1 {
            "resource"
        } else {
            "resources"
        };
        parts.push(format!("{word} {}", r.join(", ")));
    }
    if !s.depends_on.is_empty() {
        let d: Vec<&str> = s.depends_on.iter().map(|d| d.as_str()).collect();
        parts.push(format!("calls {}", d.join(", ")));
    }
    for subject in &s.consumes {
        let from: Vec<&str> = project
            .services
            .iter()
            .filter(|p| p.publishes.contains(subject))
            .map(|p| p.name.as_str())
            .collect();
        parts.push(format!("hears {subject} from {}", from.join(", ")));
    }
    if parts.is_empty() {
        s.name.as_str().to_string()
    } else {
        format!("{} ({})", s.name.as_str(), parts.join("; "))
    }
}

fn split_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}
