//! Reading text inputs named on the command line; errors name the flag and the file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The files `paths` name, each directory replaced by its `*.txt` files in name order.
pub fn text_files(flag: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("{flag} {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|e| e == "txt"))
            .collect();
        if inside.is_empty() {
            bail!("{flag} {}: the directory has no *.txt files", p.display());
        }
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

/// A file's contents, which must be UTF-8 text.
pub fn read_utf8(flag: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
