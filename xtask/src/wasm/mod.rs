//! `cargo xtask wasm`: builds `crates/rg-wasm` for the browser into `web/pkg/`.
//!
//! 1. `cargo build --release --target wasm32-unknown-unknown -p rg-wasm` (SIMD128 comes
//!    from `.cargo/config.toml`, for that target only);
//! 2. `wasm-bindgen --target web`, whose CLI must be the exact version of the
//!    `wasm-bindgen` crate in `Cargo.lock` (its output format changes between
//!    versions);
//! 3. `wasm-opt -O3` when the npm `binaryen` package is installed under `web/` (Debian's
//!    `wasm-opt` 108 breaks current wasm-bindgen output, so it is never used, and
//!    features are enabled one by one: `--all-features` emits instructions browsers
//!    reject);
//! 4. prints the size of the `.wasm`, raw and gzip-compressed.

mod tools;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::paths::workspace_root;

const HELP: &str = "\
usage: cargo xtask wasm [--debug] [--no-opt]

Builds crates/rg-wasm for wasm32-unknown-unknown (release, SIMD128), runs
wasm-bindgen --target web into web/pkg/, optimises with wasm-opt from the npm
binaryen package when web/node_modules has it, and prints the .wasm size (raw, gzip).

  --debug    debug build (faster to compile, much slower to run)
  --no-opt   skip wasm-opt

Needs: rustup target add wasm32-unknown-unknown;
       cargo install wasm-bindgen-cli --version <the wasm-bindgen version in Cargo.lock>";

/// The `.wasm` wasm-bindgen writes.
pub const WASM_FILE: &str = "rg_wasm_bg.wasm";

pub fn run(args: &[String]) -> Result<()> {
    let mut release = true;
    let mut optimise = true;
    for a in args {
        match a.as_str() {
            "--debug" => release = false,
            "--no-opt" => optimise = false,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("unknown option {other:?}\n{HELP}"),
        }
    }
    let root = workspace_root();
    let bindgen = tools::wasm_bindgen(&root)?;
    let profile = if release { "release" } else { "debug" };
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(&root).args([
        "build",
        "-p",
        "rg-wasm",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
    ]);
    if release {
        build.arg("--release");
    }
    tools::run(&mut build, "cargo build (wasm32)")?;
    let target_dir = tools::target_dir(&root)?;
    let input = target_dir
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join("rg_wasm.wasm");
    let out_dir = root.join("web").join("pkg");
    tools::run(
        Command::new(&bindgen)
            .arg("--target")
            .arg("web")
            .arg("--out-dir")
            .arg(&out_dir)
            .arg(&input),
        "wasm-bindgen",
    )?;
    let wasm = out_dir.join(WASM_FILE);
    if optimise && release {
        match tools::npm_wasm_opt(&root) {
            Some(wasm_opt) => optimise_in_place(&wasm_opt, &wasm)?,
            None => eprintln!(
                "note: no web/node_modules/.bin/wasm-opt (npm install --prefix web binaryen); skipping wasm-opt"
            ),
        }
    }
    let (raw, gzip) = tools::sizes(&wasm)?;
    println!(
        "{}: {raw} bytes, {gzip} bytes gzip -9 ({:.2} MB)",
        wasm.strip_prefix(&root).unwrap_or(&wasm).display(),
        gzip as f64 / 1e6
    );
    Ok(())
}

/// `wasm-opt -O3` with the features rustc's wasm32 output uses, written to a temporary
/// file and renamed over the input.
fn optimise_in_place(wasm_opt: &Path, wasm: &Path) -> Result<()> {
    let tmp = wasm.with_extension("opt.tmp");
    tools::run(
        Command::new(wasm_opt)
            .arg("-O3")
            .args([
                "--enable-simd",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
            ])
            .arg(wasm)
            .arg("-o")
            .arg(&tmp),
        "wasm-opt",
    )?;
    std::fs::rename(&tmp, wasm).with_context(|| format!("renaming {} into place", tmp.display()))
}
