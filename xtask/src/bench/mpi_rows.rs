//! The all-reduce rows: rg-dist's `allreduce_bench` example under `mpirun -n 2` times
//! our bucketed all-reduce of GPT-2 124M's gradients and one raw `MPI_Allreduce` of a
//! buffer of the same size, alternating, in one run. Both rows come from that run, so
//! their ratio compares like with like. Without `mpirun` or an MPI library to build
//! against, the rows are skipped with the reason.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::matrix::{Reps, Row};
use super::report::load_average;
use super::run::Ours;
use super::stats::Stats;

const RANKS: usize = 2;

pub fn is_mpi_row(row: &Row) -> bool {
    row.workload.starts_with("allreduce_mpi")
}

/// The one run both rows read (`Err`: why they are skipped).
#[derive(Default)]
pub struct MpiRows {
    result: Option<Result<Value, String>>,
}

impl MpiRows {
    pub fn run_row(&mut self, root: &Path, row: &Row) -> Ours {
        let result = self.result.get_or_insert_with(|| measure(root, row.reps));
        let v = match result {
            Ok(v) => v,
            Err(why) => return Ours::skipped(why.clone()),
        };
        let key = if row.workload.ends_with("_raw") {
            "raw_times_s"
        } else {
            "bucketed_times_s"
        };
        let times_s: Vec<f64> = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        Ours {
            stats: Stats::of(&times_s),
            times_s,
            // Bus bytes of a ring all-reduce: 2(N-1)/N of the buffer per rank.
            work: v["ring_bytes"].as_f64().unwrap_or(0.0),
            work_unit: "byte".to_string(),
            peak_rss_bytes: None,
            matmul_path: None,
            weight_bytes_per_token: None,
            skipped: None,
            load_before: load_average(),
        }
    }
}

fn measure(root: &Path, reps: Reps) -> Result<Value, String> {
    check_mpirun()?;
    let exe = build(root)?;
    let out = Command::new("mpirun")
        .args(["-n", &RANKS.to_string(), "--oversubscribe"])
        .arg(&exe)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("RG_BENCH_REPS", reps.min_reps.max(3).to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting mpirun: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mpirun -n {RANKS} allreduce_bench failed ({})",
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("allreduce_bench printed no JSON line: {text}"))?;
    eprint!(
        "(ours/raw {} with {} buckets) ",
        v["ratio_raw_over_bucketed"], v["buckets"]
    );
    Ok(v)
}

/// Builds the example in release mode; a failure (no MPI library or libclang) skips
/// the rows rather than the whole bench.
fn build(root: &Path) -> Result<std::path::PathBuf, String> {
    build_with_mpi(root, &["-p", "rg-dist", "--example"], "allreduce_bench")
}

/// `cargo build --release --features mpi` of one program of `package_args` (e.g.
/// `-p rg-dist --example`) named `name`; returns its executable.
pub fn build_with_mpi(
    root: &Path,
    package_args: &[&str],
    name: &str,
) -> Result<std::path::PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprint!("(building {name} --features mpi) ");
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--features", "mpi"])
        .args(package_args)
        .args([name, "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {name} with --features mpi failed (needs libopenmpi-dev and libclang-dev)"
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .ok_or_else(|| format!("cargo reported no {name} executable"))
}

/// Why `mpirun` cannot be used here, if it cannot.
pub fn check_mpirun() -> Result<(), String> {
    match Command::new("mpirun").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => Err("mpirun is not on PATH (install openmpi-bin)".to_string()),
    }
}
