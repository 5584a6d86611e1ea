//! Where the project's shared data and reference fixtures live, for tests, examples and
//! benchmarks: `$RG_SHARED_DIR`, else `../shared` beside the workspace root.

use std::path::PathBuf;

/// The shared data directory when it exists (holding `subdir`). When it is absent this
/// prints why the caller skips and returns `None`, except under CI (env `CI` set),
/// where a missing directory is a failure.
pub fn shared_dir_or_skip(subdir: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    if dir.join(subdir).exists() {
        return Some(dir);
    }
    let reason = format!(
        "skipped: shared data {subdir:?} not found under {} (set RG_SHARED_DIR)",
        dir.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason}; CI must provide it"
    );
    println!("{reason}");
    None
}
