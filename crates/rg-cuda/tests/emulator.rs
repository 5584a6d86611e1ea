//! The kernels compiled for the CPU with the host emulator (`emu/`), each family
//! against a double-precision reference: a check of the kernels' logic that needs no
//! GPU. Needs a C++20 compiler (`$CXX`, else `c++`) and about a minute, so it is opt-in:
//! `cargo test -p rg-cuda --test emulator -- --ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "compiles kernels/*.cu as C++ for the host emulator (needs c++, about a minute)"]
fn kernels_match_references_on_the_host_emulator() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emu = crate_dir.join("emu");
    let kernels = crate_dir.join("../../kernels");
    let out = std::env::temp_dir().join(format!("rg-cuda-emu-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    for name in ["elementwise", "misc", "reduce", "rows", "attention"] {
        let exe = out.join(name);
        let build = Command::new(&cxx)
            .args(["-std=c++20", "-O2", "-pthread", "-w"])
            .arg(format!("-I{}", emu.join("include").display()))
            .arg(format!("-I{}", emu.display()))
            .arg(format!("-I{}", kernels.display()))
            .arg("-o")
            .arg(&exe)
            .arg(emu.join(format!("{name}.cpp")))
            .output()
            .unwrap_or_else(|e| panic!("running {cxx}: {e}"));
        assert!(
            build.status.success(),
            "compiling emu/{name}.cpp:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let run = Command::new(&exe).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("{name}:\n{stdout}");
        assert!(run.status.success(), "emu/{name}.cpp failed:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
