//! Building the row runner (`rg-bench`, in `benches/`) and running our rows with it,
//! one process per row.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    match backend {
        Backend::CpuBlas => {
            cmd.args(["--features", "blas"]);
        }
        Backend::Cuda => {
            cmd.args(["--features", "cuda"]);
        }
        Backend::Cpu => {}
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
    /// Decode rows: bytes of weights one token reads.
    pub weight_bytes_per_token: Option<f64>,
    pub skipped: Option<String>,
    pub load_before: Option<[f64; 3]>,
}

impl Ours {
    /// A row that was not run, and why.
    pub fn skipped(why: String) -> Ours {
        Ours {
            stats: None,
            times_s: Vec::new(),
            work: 0.0,
            work_unit: String::new(),
            peak_rss_bytes: None,
            matmul_path: None,
            weight_bytes_per_token: None,
            skipped: Some(why),
            load_before: load_average(),
        }
    }
}

/// Runs one row in its own process. A failing row is reported as skipped with the
/// runner's error, so one broken workload does not lose the rest of the table; so is
/// a row still running after `timeout` (its process is killed).
pub fn run_row(runner: &Path, row: &Row, shared: &Path, timeout: Option<Duration>) -> Result<Ours> {
    let load_before = load_average();
    let r = row.reps;
    let mut cmd = Command::new(runner);
    cmd.args([row.workload, row.size])
        .args(["--warmup", &r.warmup.to_string()])
        .args(["--warmup-s", &r.warmup_s.to_string()])
        .args(["--min-reps", &r.min_reps.to_string()])
        .args(["--max-reps", &r.max_reps.to_string()])
        .args(["--budget-s", &r.budget_s.to_string()])
        .env("RG_SHARED_DIR", shared);
    if row.backend != Backend::Cuda && row.dtype == "bf16" {
        cmd.args(["--dtype", "bf16"]);
    }
    if row.backend == Backend::Cuda {
        cmd.args(["--device", "cuda", "--dtype", row.dtype])
            .args(["--inner", &row.inner.to_string()]);
        // rg-cuda's switch for TF32 matrix products; f32 rows must run without it.
        if row.dtype == "tf32" {
            cmd.env("RG_CUDA_TF32", "1");
        } else {
            cmd.env_remove("RG_CUDA_TF32");
        }
    }
    let out = output_within(&mut cmd, timeout)
        .with_context(|| format!("starting {}", runner.display()))?;
    let mut ours = Ours {
        stats: None,
        times_s: Vec::new(),
        work: 0.0,
        work_unit: String::new(),
        peak_rss_bytes: None,
        matmul_path: None,
        weight_bytes_per_token: None,
        skipped: None,
        load_before,
    };
    let Some(out) = out else {
        ours.skipped = Some(format!(
            "runner killed after {:.0} s (row timeout)",
            timeout.unwrap_or_default().as_secs_f64()
        ));
        return Ok(ours);
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
    ours.weight_bytes_per_token = v["weight_bytes_per_token"].as_f64();
    Ok(ours)
}

/// The command's output, or `None` if it was still running after `timeout` (then it
/// is killed). Output goes to temporary files, so a chatty child cannot block on a
/// full pipe while we wait.
fn output_within(
    cmd: &mut Command,
    timeout: Option<Duration>,
) -> Result<Option<std::process::Output>> {
    let Some(timeout) = timeout else {
        return Ok(Some(cmd.output()?));
    };
    let dir = std::env::temp_dir();
    let tag = format!("rg-bench-row-{}", std::process::id());
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = cmd
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let stderr = std::fs::read(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Ok(status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    }))
}
