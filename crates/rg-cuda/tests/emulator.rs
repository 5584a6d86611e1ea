//! The kernels compiled for the CPU with the host emulator (`emu/`), each family
//! against a double-precision reference: a check of the kernels' logic that needs no
//! GPU. Needs a C++20 compiler (`$CXX`, else `c++`) and about a minute on two cores,
//! so `cargo test` leaves it out and CI (`.ci/run`) asks for it by name:
//! `cargo test -p rg-cuda --test emulator -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

const FAMILIES: [&str; 5] = ["elementwise", "misc", "reduce", "rows", "attention"];

#[test]
#[ignore = "compiles kernels/*.cu as C++ for the host emulator (needs c++, about a minute); CI runs it"]
fn kernels_match_references_on_the_host_emulator() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emu = crate_dir.join("emu");
    let kernels = crate_dir.join("../../kernels");
    let out = std::env::temp_dir().join(format!("rg-cuda-emu-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    // Compiling is most of the time and each family is one compiler process: run them
    // side by side.
    let executables: Vec<PathBuf> = std::thread::scope(|scope| {
        let builds: Vec<_> = FAMILIES
            .iter()
            .map(|name| {
                let (emu, kernels, out, cxx) = (&emu, &kernels, &out, &cxx);
                scope.spawn(move || compile(cxx, emu, kernels, out, name))
            })
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    for (name, exe) in FAMILIES.iter().zip(&executables) {
        let run = Command::new(exe)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("{name}:\n{stdout}");
        assert!(
            run.status.success(),
            "emu/{name}.cpp failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            stdout.contains(" ok"),
            "emu/{name}.cpp checked nothing:\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Builds `emu/<name>.cpp` into `out/<name>`.
fn compile(cxx: &str, emu: &Path, kernels: &Path, out: &Path, name: &str) -> PathBuf {
    let exe = out.join(name);
    let build = Command::new(cxx)
        .args(["-std=c++20", "-O2", "-pthread", "-w"])
        .arg(format!("-I{}", emu.join("include").display()))
        .arg(format!("-I{}", emu.display()))
        .arg(format!("-I{}", kernels.display()))
        .arg("-o")
        .arg(&exe)
        .arg(emu.join(format!("{name}.cpp")))
        .output()
        .unwrap_or_else(|e| panic!("running {cxx} (set CXX to a C++20 compiler): {e}"));
    assert!(
        build.status.success(),
        "compiling emu/{name}.cpp:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    exe
}
