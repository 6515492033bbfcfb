//! The `msgen` binary: parse arguments, run, print any error once.

use std::process::ExitCode;

use clap::Parser;

/// Stack of the thread that runs the command. Reading foreign Rust (`split`)
/// recurses as deep as its expressions nest, and so do visiting and dropping the
/// syntax tree: the main thread's 8 MiB overflowed on a generated deep expression.
/// This is address space, committed only as it is used.
const STACK: usize = 1 << 30;

fn main() -> ExitCode {
    let cli = msgen::cli::Cli::parse();
    let run = std::thread::Builder::new()
        .name("msgen".into())
        .stack_size(STACK)
        .spawn(move || match msgen::run(cli) {
            Ok(code) => code,
            Err(err) => {
                msgen::report_error(&err);
                msgen::exit_code_for(&err)
            }
        });
    match run.map(|handle| handle.join()) {
        Ok(Ok(code)) => code,
        // A panic has printed its message already.
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start msgen's worker thread: {e}");
            ExitCode::from(1)
        }
    }
}
