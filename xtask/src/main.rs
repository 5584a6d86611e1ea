//! Project tasks: `cargo xtask lint` (crate layering). Further tasks (kernels, bench)
//! are added by the issues that need them.

mod layering;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lint") => layering::check(),
        Some(other) => bail!("unknown task {other:?}; available: lint"),
        None => bail!("usage: cargo xtask <lint>"),
    }
}
