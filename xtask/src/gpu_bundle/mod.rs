//! `cargo xtask gpu-bundle`: everything a GPU machine without a package registry (or a
//! Rust toolchain) needs to run the CUDA tests and the CUDA benchmark rows, in one
//! ignored folder `gpu-bundle/` of at most 60 MiB that travels beside the checkout.
//! `bundle.tar.gz` holds (gzip: the binaries shrink to about 40%):
//!
//! - `tests/<package>.<kind>.<target>`: every test binary of `rg-cuda`, and every test
//!   target named `*cuda*` of the other workspace packages (built with their `cuda`
//!   and `nccl` features where they have them), release build, debug info stripped;
//! - `bin/rg-bench` (`--features cuda`), `bin/rgrad` (`--features cuda,nccl`, without
//!   `mpi`: the GPU machine has no MPI library), `bin/xtask` (which reports the
//!   benchmark rows);
//! - `shared/`: the small fixtures the tests read (`RG_SHARED_DIR` points there).
//!
//! Beside it, `tests.tsv` (name, package dir, binary) for `scripts/gpu-check.sh`, which
//! unpacks the archive, and `manifest.json` (commit, date, sizes).
//!
//! Layout: `build.rs` (cargo invocations), `files.rs` (copying, stripping, sizes).

mod build;
mod files;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::bench::report;
use crate::paths::{shared_dir, workspace_root};

/// The folder's limit: it travels with the working tree to the GPU machine, whose
/// transfer limit is 64 MiB for the tree and everything carried.
pub const MAX_BYTES: u64 = 60 * 1024 * 1024;

/// Paths under the shared folder that CUDA tests read (fixtures of a few MiB).
const SHARED_ITEMS: &[&str] = &["fixtures/gpt2-tiny", "data/tinyshakespeare.txt"];

const USAGE: &str = "usage: cargo xtask gpu-bundle [--out DIR]

Builds the CUDA test binaries, rg-bench (release, --features cuda), rgrad (--features
cuda,nccl) and the xtask, and copies them with the small shared fixtures into gpu-bundle/ (at most 60 MiB),
for `bash scripts/gpu-check.sh` on a GPU machine (carry gpu-bundle with the checkout).";

pub fn run(args: &[String]) -> Result<()> {
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(it.next().context("--out needs a value")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let out = out.unwrap_or_else(|| root.join("gpu-bundle"));
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    // What goes into the archive, staged then removed.
    let stage = out.join("stage");
    std::fs::create_dir_all(stage.join("tests"))?;
    std::fs::create_dir_all(stage.join("bin"))?;

    let tests = build::test_binaries(&root)?;
    if tests.is_empty() {
        eprintln!("gpu-bundle: WARNING: no CUDA test binaries found");
    }
    let bins = build::binaries(&root)?;

    let mut tsv = String::from("# name\tpackage_dir\tbinary\n");
    for t in &tests {
        let rel = format!("tests/{}", t.name);
        files::copy_binary(&t.executable, &stage.join(&rel))?;
        tsv.push_str(&format!("{}\t{}\t{rel}\n", t.name, t.package_dir));
    }
    for (name, exe) in &bins {
        files::copy_binary(exe, &stage.join("bin").join(name))?;
    }
    std::fs::write(out.join("tests.tsv"), tsv)?;

    let shared = shared_dir(&root);
    let mut shared_items = Vec::new();
    for item in SHARED_ITEMS {
        let src = shared.join(item);
        if src.exists() {
            files::copy_tree(&src, &stage.join("shared").join(item))?;
            shared_items.push(*item);
        } else {
            eprintln!(
                "gpu-bundle: WARNING: {} is absent (set RG_SHARED_DIR); tests that need it will skip or fail there",
                src.display()
            );
        }
    }

    let sizes = files::sizes(&stage)?;
    files::archive(&stage, &out.join("bundle.tar.gz"))?;
    std::fs::remove_dir_all(&stage)?;
    // manifest.json is a few kB more.
    let total = files::tree_size(&out)? + 4096;
    let manifest = json!({
        "commit": report::commit(&root),
        "date": report::now_utc(&root),
        "built_on": report::machine()["cpu_model"],
        "profile": "release",
        "tests": tests.iter().map(|t| json!({"name": t.name, "package": t.package, "package_dir": t.package_dir})).collect::<Vec<_>>(),
        "bins": bins.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "shared": shared_items,
        "bytes": total,
        "unpacked_bytes": sizes.iter().map(|(_, n)| n).sum::<u64>(),
        "files": sizes.iter().map(|(p, n)| json!({"path": p, "bytes": n})).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    for (path, bytes) in &sizes {
        println!("{:>8.2} MiB  {path}", files::mib(*bytes));
    }
    println!(
        "gpu-bundle: {} test binaries, {} programs, {:.1} MiB unpacked, {:.1} MiB in {}",
        tests.len(),
        bins.len(),
        files::mib(sizes.iter().map(|(_, n)| n).sum()),
        files::mib(total),
        out.display()
    );
    if total > MAX_BYTES {
        bail!(
            "{} is {:.1} MiB, over the {:.0} MiB limit (unpacked sizes above)",
            out.display(),
            files::mib(total),
            files::mib(MAX_BYTES)
        );
    }
    println!("gpu-bundle: on the GPU machine: run(command=\"bash scripts/gpu-check.sh\", carry=[\"gpu-bundle\"])");
    Ok(())
}
