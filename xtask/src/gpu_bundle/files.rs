//! Copying into the bundle: binaries with their debug info stripped, fixture trees,
//! and the sizes that must stay under the bundle's limit.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Copies `src` to `dest` and strips its debug info (symbols stay, for backtraces).
pub fn copy_binary(src: &Path, dest: &Path) -> Result<()> {
    std::fs::copy(src, dest)
        .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
    strip_debug(dest)
}

/// `strip --strip-debug` in place. Without binutils the file stays as it is and the
/// size check decides.
fn strip_debug(path: &Path) -> Result<()> {
    let flag = "--strip-debug";
    match Command::new("strip").arg(flag).arg(path).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("strip {flag} {} failed ({s})", path.display()),
        Err(e) => {
            eprintln!(
                "gpu-bundle: WARNING: strip not available ({e}); {} keeps its debug info",
                path.display()
            );
            Ok(())
        }
    }
}

/// `tar -czf archive -C dir .`: every file of `dir`, modes kept (binaries stay
/// executable).
pub fn archive(dir: &Path, archive: &Path) -> Result<()> {
    let status = Command::new("tar")
        .arg("-czf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -czf {} failed ({status})", archive.display());
    }
    Ok(())
}

/// Copies a file or a directory tree.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    if src.is_file() {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
        return Ok(());
    }
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("listing {}", src.display()))? {
        let entry = entry?;
        copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            out.extend(walk(&entry?.path())?);
        }
    }
    Ok(out)
}

/// Every file under `dir` with its size, by path relative to `dir`, sorted.
pub fn sizes(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for path in walk(dir)? {
        if path.is_file() {
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            out.push((rel, std::fs::metadata(&path)?.len()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn tree_size(dir: &Path) -> Result<u64> {
    Ok(sizes(dir)?.iter().map(|(_, n)| n).sum())
}
