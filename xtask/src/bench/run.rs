//! Building the row runner (`rg-bench`, in `benches/`) and running our rows with it,
//! one process per row.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::matrix::{Backend, Row};
use super::report::load_average;
use super::stats::Stats;

/// Builds `rg-bench` in release mode (with `--features blas` for the BLAS backend) and
/// copies it under `bin_dir`, so that both builds can exist at once: cargo writes both
/// to the same `target/release/rg-bench`.
pub fn build_runner(root: &Path, backend: Backend, bin_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args([
        "build",
        "--release",
        "-p",
        "rg-benches",
        "--bin",
        "rg-bench",
        "--message-format=json-render-diagnostics",
    ]);
    if backend == Backend::CpuBlas {
        cmd.args(["--features", "blas"]);
    }
    eprintln!("bench: building rg-bench ({}, release)", backend.name());
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "building rg-bench for {} failed (see above){}",
            backend.name(),
            if backend == Backend::CpuBlas {
                "; the blas build needs the system OpenBLAS (libopenblas-dev)"
            } else {
                ""
            }
        );
    }
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "rg-bench")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo reported no rg-bench executable")?;
    std::fs::create_dir_all(bin_dir)?;
    let dest = bin_dir.join(format!("rg-bench-{}", backend.name()));
    std::fs::copy(&exe, &dest).with_context(|| format!("copying {}", exe.display()))?;
    Ok(dest)
}

/// What our runner reported for one row.
pub struct Ours {
    pub stats: Option<Stats>,
    pub times_s: Vec<f64>,
    pub work: f64,
    pub work_unit: String,
    pub peak_rss_bytes: Option<u64>,
    pub matmul_path: Option<String>,
    pub skipped: Option<String>,
    pub load_before: Option<[f64; 3]>,
}

/// Runs one row in its own process. A failing row is reported as skipped with the
/// runner's error, so one broken workload does not lose the rest of the table.
pub fn run_row(runner: &Path, row: &Row, shared: &Path) -> Result<Ours> {
    let load_before = load_average();
    let r = row.reps;
    let out = Command::new(runner)
        .args([row.workload, row.size])
        .args(["--warmup", &r.warmup.to_string()])
        .args(["--min-reps", &r.min_reps.to_string()])
        .args(["--max-reps", &r.max_reps.to_string()])
        .args(["--budget-s", &r.budget_s.to_string()])
        .env("RG_SHARED_DIR", shared)
        .output()
        .with_context(|| format!("starting {}", runner.display()))?;
    let mut ours = Ours {
        stats: None,
        times_s: Vec::new(),
        work: 0.0,
        work_unit: String::new(),
        peak_rss_bytes: None,
        matmul_path: None,
        skipped: None,
        load_before,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output").trim().to_string();
        ours.skipped = Some(format!("runner failed: {last}"));
        return Ok(ours);
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("reading rg-bench output")?;
    if let Some(why) = v["skipped"].as_str() {
        ours.skipped = Some(why.to_string());
        return Ok(ours);
    }
    ours.times_s = v["times_s"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    ours.stats = Stats::of(&ours.times_s);
    ours.work = v["work"].as_f64().unwrap_or(0.0);
    ours.work_unit = v["work_unit"].as_str().unwrap_or_default().to_string();
    ours.peak_rss_bytes = v["peak_rss_bytes"].as_u64();
    ours.matmul_path = v["matmul"].as_str().map(str::to_string);
    Ok(ours)
}
