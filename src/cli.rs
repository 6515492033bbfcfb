//! Command-line arguments (clap derive). Parsing only: commands live in `commands/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "msgen",
    version,
    about = "Scaffold, regenerate and split Rust microservice workspaces from a services.toml",
    after_help = "Examples:\n  msgen new blogsys                  ask which services, database, layout and port\n  msgen new blogsys --yes            render the built-in example (gateway, auth, user, blog)\n  msgen -C blogsys add-service billing --resource invoice --depends-on user\n  msgen -C blogsys generate --check  fail when the tree drifted from services.toml\n  msgen -C blogsys graph             print the architecture as Mermaid\n  msgen completions bash > ~/.local/share/bash-completion/completions/msgen"
)]
pub struct Cli {
    /// Run as if msgen was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DatabaseArg {
    Postgres,
    Sqlite,
    None,
}

impl DatabaseArg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TemplateArg {
    Crud,
    Auth,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum GraphFormat {
    #[default]
    Mermaid,
    Dot,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create directory NAME with a services.toml and render the whole project.
    #[command(
        after_help = "On a terminal, without --yes, msgen asks what no flag answered: the services\n(auth, user, blog and names of your own), the layout, the database and the gateway port.\n\nExamples:\n  msgen new blogsys                    answer the questions\n  msgen new blogsys --yes              the built-in example as it is\n  msgen new shop --config my-services.toml\n  msgen new local --database sqlite --yes"
    )]
    New {
        /// Directory to create; its last component is the project name.
        name: PathBuf,
        /// Start from this services.toml instead of the built-in example.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Ask nothing; take the defaults.
        #[arg(short, long)]
        yes: bool,
        /// Database of every service that does not name one.
        #[arg(long, value_enum)]
        database: Option<DatabaseArg>,
        /// Render a modular monolith instead of services.
        #[arg(long)]
        monolith: bool,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Render the project from its services.toml, merging hand edits.
    #[command(
        after_help = "A change to a resource in services.toml (a field added, removed, renamed with\n`renamed_from`, retyped; a resource added or removed) gets a new numbered migration\nin the service's migrations/ folder. Changes that would lose data are refused\nuntil confirmed with --allow-data-loss.\n\nExamples:\n  msgen generate\n  msgen generate --dry-run   show the diff, write nothing\n  msgen generate --check     exit 1 when generated files or migrations drifted (CI)\n  msgen generate --allow-data-loss   drop a removed field's column\n  msgen generate --accept-schema blog   your own migration did it: record, write none"
    )]
    Generate {
        /// Write nothing; exit 1 and list the files when the tree is not what services.toml renders.
        #[arg(long, conflicts_with = "dry_run")]
        check: bool,
        /// Print what would be created, changed (as a diff) or removed; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Confirm schema changes that lose data: dropped fields and resources, type
        /// changes that may not keep every value.
        #[arg(long)]
        allow_data_loss: bool,
        /// SERVICE's own migrations already bring its database where services.toml
        /// says: record that schema, write no migration for it (repeatable).
        #[arg(long, value_name = "SERVICE", value_delimiter = ',')]
        accept_schema: Vec<String>,
    },
    /// Add an empty, numbered migration to a service's migrations/ for SQL of your own.
    #[command(
        after_help = "msgen numbers it after every migration of the service and never edits it.\nmsgen reads what it does to tables it knows (CREATE/ALTER/DROP TABLE); for\nanything it cannot read, run `msgen generate --accept-schema SERVICE` once\nservices.toml says the same.\n\nExamples:\n  msgen add-migration blog add_search_index\n  msgen add-migration monolith backfill_slugs"
    )]
    AddMigration {
        /// The service (or `monolith`) whose database it changes.
        service: String,
        /// What it does, in lower-case words joined by '_' (the file name's end).
        name: String,
        /// Print the file it would write; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the whole system here: build, start every service and the gateway,
    /// rebuild and restart on every saved change.
    #[command(
        after_help = "Needs what the services need (PostgreSQL on 127.0.0.1:5432, NATS on 127.0.0.1:4222\nwhere events are declared), no Docker. Each process gets `.env`, PORT and the\naddresses of the others on 127.0.0.1; each creates its database and applies its\nmigrations. Logs are prefixed with the process's name. A change to services.toml\nruns `msgen generate` first; a change to code rebuilds, and only the binaries cargo\nrebuilt restart. A process that stops is named with its last lines; the others keep\nrunning. Ctrl-C stops them all.\n\nExamples:\n  msgen dev\n  msgen -C blogsys dev"
    )]
    Dev,
    /// Show where the project stands: hand edits, open conflicts, what `generate`
    /// would change, schema changes waiting for a migration.
    #[command(
        after_help = "Reads only. Exit status: 0 when `msgen generate` has nothing to do (hand edits\nare yours and fine), 1 when it has (files to write, a migration to add), when a\nconflict is not resolved or a schema change waits for a flag.\n\nExamples:\n  msgen status\n  msgen status --diff    each hand edit against what msgen last wrote\n  msgen status --quiet   the exit status only (CI)"
    )]
    Status {
        /// Print each hand edit as a unified diff against what msgen last wrote.
        #[arg(long)]
        diff: bool,
    },
    /// Check services.toml and report every problem at once.
    #[command(after_help = "Examples:\n  msgen validate\n  msgen -C blogsys validate")]
    Validate,
    /// Print the architecture: gateway, services, databases and calls.
    #[command(
        after_help = "Examples:\n  msgen graph                 Mermaid, as in docs/architecture.md\n  msgen graph --format dot | dot -Tsvg > architecture.svg"
    )]
    Graph {
        /// mermaid (as in docs/architecture.md) or dot (Graphviz).
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
    },
    /// Add a service to services.toml (keeping its comments) and render it.
    #[command(
        after_help = "Examples:\n  msgen add-service auth            the auth template (register/login/JWT)\n  msgen add-service billing --resource invoice --depends-on user"
    )]
    AddService {
        /// The new service's name: lower-case letters, digits and single '-'.
        name: String,
        /// Port to listen on (1024-65535); the next free one by default.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1024..))]
        port: Option<u16>,
        /// Its database; the project's default when not given.
        #[arg(long, value_enum)]
        database: Option<DatabaseArg>,
        /// crud (default), or auth for a service named "auth".
        #[arg(long, value_enum)]
        template: Option<TemplateArg>,
        /// Services this one calls over REST, comma separated.
        #[arg(long, value_delimiter = ',')]
        depends_on: Vec<String>,
        /// A CRUD resource to start with.
        #[arg(long)]
        resource: Option<String>,
        /// A field of that resource, NAME:TYPE (e.g. title:string, age:i32?); repeat
        /// or separate with ','. Without any: one `name` field (string).
        #[arg(
            long = "field",
            value_name = "NAME:TYPE",
            value_delimiter = ',',
            requires = "resource"
        )]
        fields: Vec<String>,
        /// Print the services.toml change and the files it would write; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Extract a module of the monolith into a service of its own (strangler fig).
    #[command(
        after_help = "Examples:\n  msgen new shop --monolith --yes && cd shop\n  msgen split blog            blog becomes a service; the gateway routes its paths to it\n  msgen split blog --dry-run  show what would move\n  msgen split catalog --from legacy   adopt the axum + sqlx crate in ./legacy\n  msgen split catalog --own-database  then: catalog leaves the monolith's database"
    )]
    Split {
        /// The module to extract.
        module: String,
        /// Adopt a monolith msgen did not generate (an axum + sqlx crate in DIR,
        /// inside the project directory): the gateway and the service go beside it.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// For a service split `--from` a monolith: move it out of its schema of
        /// the monolith's database into a database of its own (refused, listing
        /// each site, while anything reads across the cut).
        #[arg(long, conflicts_with = "from")]
        own_database: bool,
        /// Print what would move, change and be removed (with diffs); write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a service; files you edited are kept and reported.
    #[command(
        after_help = "Examples:\n  msgen remove-service billing --dry-run   show what would be removed\n  msgen remove-service billing"
    )]
    RemoveService {
        /// The service to remove.
        name: String,
        /// For a module of the monolith: drop its tables from the monolith's
        /// database (a new migration). A service's own database is left alone.
        #[arg(long)]
        allow_data_loss: bool,
        /// Print what would be removed or kept; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Examples:\n  msgen completions bash > ~/.local/share/bash-completion/completions/msgen\n  msgen completions zsh > ~/.zfunc/_msgen        (with fpath+=~/.zfunc before compinit)\n  msgen completions fish > ~/.config/fish/completions/msgen.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print msgen's man page, or a command's (msgen-new(1) ...), in roff on stdout.
    #[command(
        after_help = "Examples:\n  msgen man | man -l -\n  msgen man split | man -l -\n  for p in '' new generate validate graph add-service split remove-service completions; do\n    msgen man $p > ~/.local/share/man/man1/msgen${p:+-$p}.1; done"
    )]
    Man {
        /// The command whose page to print; msgen's own without it.
        command: Option<String>,
    },
}
