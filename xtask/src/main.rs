//! Project tasks: `cargo xtask lint` (crate layering), `cargo xtask bench` (the
//! benchmark matrix), `cargo xtask kernels` (CUDA sources to committed PTX),
//! `cargo xtask gpu-bundle` (test and benchmark binaries for a GPU machine without a
//! package registry) and `cargo xtask wasm` (the browser build into `web/pkg/`). Each
//! takes `--help`.

mod bench;
mod gpu_bundle;
mod kernels;
mod layering;
mod paths;
mod wasm;

use std::process::ExitCode;

use anyhow::{bail, Result};

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lint") => layering::check(),
        Some("bench") => bench::run(&args[1..]),
        Some("kernels") => kernels::run(&args[1..]),
        Some("gpu-bundle") => gpu_bundle::run(&args[1..]),
        Some("wasm") => wasm::run(&args[1..]),
        Some(other) => {
            bail!("unknown task {other:?}; available: lint, bench, kernels, gpu-bundle, wasm")
        }
        None => bail!("usage: cargo xtask <lint|bench|kernels|gpu-bundle|wasm>"),
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
