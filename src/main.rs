//! The `msgen` binary: parse arguments, run, print any error once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = msgen::cli::Cli::parse();
    match msgen::run(cli) {
        Ok(code) => code,
        Err(err) => {
            msgen::report_error(&err);
            msgen::exit_code_for(&err)
        }
    }
}
