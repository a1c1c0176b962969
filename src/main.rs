//! The `symfeat` binary: parse, run, turn errors into exit code 2.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    symfeat::kernels::tune_allocator();
    default_sigpipe();
    let cli = symfeat::cli::Cli::parse();
    match symfeat::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Dies quietly on a closed pipe (`symfeat bench | head -1`) like other
/// command-line tools, instead of panicking in `println!`: Rust ignores
/// SIGPIPE by default. A no-op off Linux/glibc.
fn default_sigpipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: restoring the default disposition of one signal, before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
