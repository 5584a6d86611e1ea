//! Where the workspace and the shared data are, for every task.

use std::path::{Path, PathBuf};

/// The workspace this run is for. `cargo run` sets `CARGO_MANIFEST_DIR` at run time;
/// that, not the compile-time value, is right when two checkouts share one
/// `CARGO_TARGET_DIR` (cargo may then run the other checkout's xtask binary), and when
/// a bundled xtask binary runs in another checkout (`scripts/gpu-check.sh` sets it).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `RG_SHARED_DIR`, else `shared/` beside the workspace.
pub fn shared_dir(root: &Path) -> PathBuf {
    std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"))
}
