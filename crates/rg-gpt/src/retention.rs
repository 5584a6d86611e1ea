//! Which checkpoints of a run exist, which is the latest, and pruning to the newest N.
//!
//! Complete checkpoints are the directories `<out>/checkpoints/step-NNNNNN`; anything
//! with a `.tmp-`/`.old-` suffix is a write that a crash interrupted and is never
//! loaded.

use std::path::{Path, PathBuf};

use crate::{GptError, Result};

pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const BEST_DIR: &str = "best";

fn step_of(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("step-")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Complete step checkpoints of the run in `out`, oldest first.
pub fn complete_checkpoints(out: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = out.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| GptError::io(&dir, "list directory", e))? {
        let entry = entry.map_err(|e| GptError::io(&dir, "list directory", e))?;
        let name = entry.file_name();
        if let Some(step) = name.to_str().and_then(step_of) {
            if entry.path().is_dir() {
                found.push((step, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The newest complete checkpoint of the run in `out`.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    Ok(complete_checkpoints(out)?.pop().map(|(_, p)| p))
}

/// Deletes all but the newest `keep_last` step checkpoints (`best` is not a step
/// checkpoint and stays), and leftovers of interrupted writes. With fewer complete
/// checkpoints than `keep_last`, nothing complete is deleted.
pub fn prune(out: &Path, keep_last: usize) -> Result<()> {
    let keep_last = keep_last.max(1);
    let complete = complete_checkpoints(out)?;
    let excess = complete.len().saturating_sub(keep_last);
    for (_, path) in &complete[..excess] {
        std::fs::remove_dir_all(path)
            .map_err(|e| GptError::io(path, "remove old checkpoint", e))?;
    }
    remove_interrupted_writes(out)
}

/// Removes `*.tmp-*` / `*.old-*` directories a killed process left behind.
pub fn remove_interrupted_writes(out: &Path) -> Result<()> {
    let dir = out.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(&dir).map_err(|e| GptError::io(&dir, "list directory", e))? {
        let entry = entry.map_err(|e| GptError::io(&dir, "list directory", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || name.contains(".old-") {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| GptError::io(&path, "remove interrupted write", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_and_ignores_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let ck = tmp.path().join(CHECKPOINTS_DIR);
        for name in [
            "step-000001",
            "step-000002",
            "step-000003",
            "best",
            "step-000004.tmp-1-0",
        ] {
            std::fs::create_dir_all(ck.join(name)).unwrap();
        }
        assert_eq!(
            latest_checkpoint(tmp.path()).unwrap().unwrap(),
            ck.join("step-000003")
        );
        prune(tmp.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&ck)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["best", "step-000002", "step-000003"]);
        // Never below one complete checkpoint.
        prune(tmp.path(), 0).unwrap();
        assert_eq!(complete_checkpoints(tmp.path()).unwrap().len(), 1);
    }
}
