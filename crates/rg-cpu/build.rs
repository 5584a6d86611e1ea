//! Enables the AVX-512 copies of the hot loops (`cfg(rg_cpu_avx512)`) only on compilers
//! where the `avx512f` target feature is stable (Rust 1.89+), so the crate still builds
//! on older toolchains, with AVX2 as its widest level there.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rg_cpu_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .and_then(|v| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()));
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=rg_cpu_avx512");
    }
}
