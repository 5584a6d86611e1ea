//! What the tests that launch `mpirun` share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `Some(reason)` when mpirun tests cannot run here (printed); panics under CI.
pub fn skip_reason() -> Option<String> {
    let reason = if !cfg!(feature = "mpi") {
        Some("rgrad was built without the `mpi` feature".to_string())
    } else if Command::new("mpirun").arg("--version").output().is_err() {
        Some("mpirun is not on PATH (install openmpi-bin)".to_string())
    } else {
        None
    };
    if let Some(r) = &reason {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test: {r}"
        );
        eprintln!("skipped: {r}");
    }
    reason
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
