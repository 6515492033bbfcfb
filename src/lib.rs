//! msgen: turns a `services.toml` into a Rust microservices workspace and keeps it in
//! step without losing hand edits.
//!
//! The pipeline: [`raw`] (serde) → [`model`] (validated) → [`render`] (a [`plan::Plan`]
//! of files) → [`apply`] (the only code that writes). Commands in [`commands`] wire
//! them together for each subcommand of [`cli`].

pub mod adopt;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod context;
pub mod dev;
pub mod diagnostic;
pub mod graph;
pub mod layout;
pub mod lock;
pub mod macro_uses;
pub mod model;
pub mod plan;
pub mod raw;
pub mod render;
pub mod rust_refs;
pub mod schema;
pub mod sql;
pub mod txn;

use std::process::ExitCode;

pub use commands::run;

/// An error that is a failed check (drift, invalid input, a merge conflict), as
/// opposed to a failure to run: exit status 1 either way, but printed as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

pub fn report_error(err: &anyhow::Error) {
    if let Some(cfg) = err.downcast_ref::<diagnostic::ConfigError>() {
        for d in cfg.diagnostics() {
            eprintln!("error: {d}");
        }
        if cfg.diagnostics().len() > 1 {
            eprintln!("error: {} problems found", cfg.diagnostics().len());
        }
        if cfg.diagnostics().is_empty() {
            eprintln!("error: {cfg}");
        }
        return;
    }
    eprintln!("error: {err:#}");
}

pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// A mistake in the command line that clap cannot see (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Writes `text` to standard output. A reader that went away (`msgen ... | head`)
/// ends the program quietly instead of panicking, as other command-line tools do.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = anstream::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
