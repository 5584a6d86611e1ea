//! The Hugging Face cache layout, read directly (no network, no `hf-hub`):
//! `<cache>/models--owner--name/refs/<revision>` holds a commit hash, and
//! `<cache>/models--owner--name/snapshots/<commit>/` holds the files (usually
//! symlinks into `blobs/`).

use std::path::{Path, PathBuf};

/// `models--owner--name` for `owner/name`.
pub fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// The snapshot directory of `repo` at `revision` (a ref such as `main`, or a commit
/// hash), when the cache has one.
pub fn cached_snapshot(cache: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let root = cache.join(repo_folder(repo));
    let commit = match std::fs::read_to_string(root.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return None;
    }
    let snapshot = root.join("snapshots").join(commit);
    snapshot.is_dir().then_some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_lead_to_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("models--openai-community--gpt2");
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::create_dir_all(root.join("snapshots/abc123")).unwrap();
        std::fs::write(root.join("refs/main"), "abc123\n").unwrap();
        let snap = cached_snapshot(tmp.path(), "openai-community/gpt2", "main").unwrap();
        assert_eq!(snap, root.join("snapshots/abc123"));
        assert_eq!(
            cached_snapshot(tmp.path(), "openai-community/gpt2", "abc123").unwrap(),
            snap
        );
        assert!(cached_snapshot(tmp.path(), "openai-community/gpt2", "v2").is_none());
        assert!(cached_snapshot(tmp.path(), "gpt2", "main").is_none());
    }
}
