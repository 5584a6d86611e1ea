//! What the tests that launch `mpirun` share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `Some(reason)` when mpirun tests cannot run here (printed); a missing mpirun panics
/// under CI.
pub fn skip_reason() -> Option<String> {
    // Without the feature there is nothing to test: `cargo test --workspace` (the
    // README's command) builds without it, and CI runs these tests in a separate step
    // with `--features mpi`, where a missing mpirun must fail rather than skip.
    if !cfg!(feature = "mpi") {
        let r = "rgrad was built without the `mpi` feature (run with --features mpi)".to_string();
        eprintln!("skipped: {r}");
        return Some(r);
    }
    if Command::new("mpirun").arg("--version").output().is_ok() {
        return None;
    }
    let r = "mpirun is not on PATH (install openmpi-bin)".to_string();
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test: {r}"
    );
    eprintln!("skipped: {r}");
    Some(r)
}

pub fn shared_text(dir: &Path) -> PathBuf {
    let shared = std::env::var("RG_SHARED_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").to_string());
    let text = std::fs::read(Path::new(&shared).join("data/tinyshakespeare.txt"))
        .expect("tinyshakespeare.txt under RG_SHARED_DIR");
    let path = dir.join("text.txt");
    std::fs::write(&path, &text[..20_000]).unwrap();
    path
}

/// `mpirun -n N` allowed to run as root and to start more ranks than cores.
pub fn mpirun(n: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &n.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}
