//! The external tools `cargo xtask wasm` runs, found and checked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Runs `cmd`, failing with `what` and its exit status.
pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {what} ({cmd:?})"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The version of `package` that `Cargo.lock` pins.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let at = lock
        .find(&needle)
        .with_context(|| format!("Cargo.lock has no package {package}"))?;
    let rest = &lock[at + needle.len()..];
    Ok(rest[..rest.find('"').unwrap_or(0)].to_string())
}

/// The `wasm-bindgen` CLI, checked to be the version of the crate in `Cargo.lock`.
pub fn wasm_bindgen(root: &Path) -> Result<PathBuf> {
    let want = locked_version(root, "wasm-bindgen")?;
    let install = format!("cargo install wasm-bindgen-cli --version {want}");
    let bin = PathBuf::from("wasm-bindgen");
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .with_context(|| format!("no wasm-bindgen on PATH: install it with `{install}`"))?;
    let shown = String::from_utf8_lossy(&out.stdout);
    let have = shown.split_whitespace().nth(1).unwrap_or("").to_string();
    if have != want {
        bail!(
            "wasm-bindgen {have} is installed but Cargo.lock has the crate at {want}: `{install}`"
        );
    }
    Ok(bin)
}

/// `wasm-opt` from the npm `binaryen` package installed under `web/`, if any.
pub fn npm_wasm_opt(root: &Path) -> Option<PathBuf> {
    let p = root.join("web/node_modules/.bin/wasm-opt");
    p.is_file().then_some(p)
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR` and the configuration).
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// Size of `file` in bytes, and gzip -9's size of it (what a server sends compressed).
pub fn sizes(file: &Path) -> Result<(u64, u64)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting gzip")?;
    let mut stdin = gzip.stdin.take().context("gzip stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = gzip.wait_with_output().context("running gzip")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))?
        .context("feeding gzip")?;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    let raw = std::fs::metadata(file)?.len();
    Ok((raw, out.stdout.len() as u64))
}
