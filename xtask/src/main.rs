//! Project tasks: `cargo xtask lint` (crate layering) and `cargo xtask bench` (the
//! benchmark matrix; `cargo xtask bench --help`). Further tasks (kernels) are added by
//! the issues that need them.

mod bench;
mod layering;

use std::process::ExitCode;

use anyhow::{bail, Result};

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lint") => layering::check(),
        Some("bench") => bench::run(&args[1..]),
        Some(other) => bail!("unknown task {other:?}; available: lint, bench"),
        None => bail!("usage: cargo xtask <lint|bench>"),
    }
}

/// One `error: ...` line (with its causes), not a backtrace: these are user errors.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
