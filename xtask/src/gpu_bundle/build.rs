//! The cargo invocations of the bundle: test binaries (`cargo test --no-run`) and the
//! programs, all in release mode, read back from cargo's JSON messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The crate whose every test needs CUDA.
const CUDA_CRATE: &str = "rg-cuda";

/// One test binary to run on the GPU machine.
pub struct TestBin {
    /// `<package>.<kind>.<target>`, unique and the file name in the bundle.
    pub name: String,
    pub package: String,
    /// The package's directory relative to the workspace root: cargo runs a test
    /// binary there, so it is the working directory on the GPU machine too.
    pub package_dir: String,
    pub executable: PathBuf,
}

/// Runs cargo with `args` plus JSON messages; returns each compiler artifact that has
/// an executable as (package name, target kind, target name, executable).
fn cargo_artifacts(root: &Path, args: &[&str]) -> Result<Vec<(String, String, String, PathBuf)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("gpu-bundle: cargo {}", args.join(" "));
    let out = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        bail!("cargo {} failed (see above)", args.join(" "));
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(m) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if m["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = m["executable"].as_str() else {
            continue;
        };
        // package_id looks like "path+file:///.../crates/rg-cuda#0.1.0" or
        // "rg-cuda 0.1.0 (path+file://...)"; the manifest path is unambiguous.
        let package = package_name(&m);
        let kind = m["target"]["kind"][0].as_str().unwrap_or("?").to_string();
        let target = m["target"]["name"].as_str().unwrap_or("?").to_string();
        found.push((package, kind, target, PathBuf::from(exe)));
    }
    Ok(found)
}

/// The package of an artifact message: the directory name of its manifest, which in
/// this workspace is the package name except for `benches/` and `xtask/`.
fn package_name(m: &Value) -> String {
    let id = m["package_id"].as_str().unwrap_or_default();
    // "path+file:///x/crates/rg-cuda#0.1.0" and "path+file:///x/benches#rg-benches@0.1.0"
    if let Some((_, rest)) = id.rsplit_once('#') {
        if let Some((name, _)) = rest.split_once('@') {
            return name.to_string();
        }
        let path = id.split('#').next().unwrap_or_default();
        return path.rsplit('/').next().unwrap_or_default().to_string();
    }
    id.split_whitespace().next().unwrap_or_default().to_string()
}

/// A workspace package as the bundle sees it.
struct Package {
    name: String,
    /// Relative to the workspace root.
    dir: String,
    /// The features its CUDA tests are built with: `cuda` and `nccl` where it has them.
    gpu_features: Vec<&'static str>,
    /// Test targets whose name contains "cuda".
    cuda_tests: Vec<String>,
}

fn packages(root: &Path) -> Result<Vec<Package>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let mut list = Vec::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().unwrap_or(root);
        let rel = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        let gpu_features = ["cuda", "nccl"]
            .into_iter()
            .filter(|f| p["features"].get(f).is_some())
            .collect();
        let cuda_tests = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "test"))
            })
            .filter_map(|t| t["name"].as_str())
            .filter(|n| n.contains("cuda"))
            .map(str::to_string)
            .collect();
        list.push(Package {
            name,
            dir: rel,
            gpu_features,
            cuda_tests,
        });
    }
    Ok(list)
}

/// Every CUDA test binary, built in release mode.
pub fn test_binaries(root: &Path) -> Result<Vec<TestBin>> {
    let pkgs = packages(root)?;
    let dir_of = |name: &str| {
        pkgs.iter()
            .find(|p| p.name == name)
            .map(|p| p.dir.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut add = |found: Vec<(String, String, String, PathBuf)>| {
        for (package, kind, target, exe) in found {
            let name = format!("{package}.{kind}.{target}");
            if !out.iter().any(|t: &TestBin| t.name == name) {
                out.push(TestBin {
                    package_dir: dir_of(&package),
                    name,
                    package,
                    executable: exe,
                });
            }
        }
    };
    if pkgs.iter().any(|p| p.name == CUDA_CRATE) {
        add(cargo_artifacts(
            root,
            &[
                "test",
                "--release",
                "--no-run",
                "-p",
                CUDA_CRATE,
                "--lib",
                "--tests",
            ],
        )?);
    }
    for p in &pkgs {
        if p.name == CUDA_CRATE || p.cuda_tests.is_empty() {
            continue;
        }
        let mut args: Vec<&str> = vec!["test", "--release", "--no-run", "-p", &p.name];
        for t in &p.cuda_tests {
            args.extend(["--test", t.as_str()]);
        }
        let features = p.gpu_features.join(",");
        if !features.is_empty() {
            args.extend(["--features", features.as_str()]);
        }
        add(cargo_artifacts(root, &args)?);
    }
    Ok(out)
}

/// `rg-bench` (`--features cuda`), `rgrad` (`--features cuda,nccl`: the GPU check trains
/// with and without NCCL; not `mpi`, so it needs no MPI library on the GPU machine) and
/// the xtask, as (name, executable).
pub fn binaries(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let found = cargo_artifacts(
        root,
        &[
            "build",
            "--release",
            "-p",
            "rg-benches",
            "-p",
            "rg-cli",
            "-p",
            "xtask",
            "--bin",
            "rg-bench",
            "--bin",
            "rgrad",
            "--bin",
            "xtask",
            "--features",
            "rg-benches/cuda,rg-cli/cuda,rg-cli/nccl",
        ],
    )?;
    let mut out = Vec::new();
    for want in ["rg-bench", "rgrad", "xtask"] {
        let exe = found
            .iter()
            .find(|(_, kind, target, _)| kind == "bin" && target == want)
            .map(|f| f.3.clone())
            .with_context(|| format!("cargo reported no {want} executable"))?;
        out.push((want.to_string(), exe));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn package_names_from_both_id_formats() {
        let m = |id: &str| json!({ "package_id": id });
        assert_eq!(
            package_name(&m("path+file:///w/crates/rg-cuda#0.1.0")),
            "rg-cuda"
        );
        assert_eq!(
            package_name(&m("path+file:///w/benches#rg-benches@0.1.0")),
            "rg-benches"
        );
        assert_eq!(
            package_name(&m("rg-cuda 0.1.0 (path+file:///w/crates/rg-cuda)")),
            "rg-cuda"
        );
    }
}
