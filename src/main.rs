//! The `symfeat` binary: parse, run, turn errors into exit code 2.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    symfeat::backend::tune_allocator();
    let cli = symfeat::cli::Cli::parse();
    match symfeat::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
