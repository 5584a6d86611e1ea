//! Running `scripts/bench_peers.py` (PyTorch, transformers, numpy, tiktoken,
//! safetensors) over the same rows, in the same invocation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::matrix::Row;
use super::stats::Stats;

/// One peer's measurement of one (workload, size).
#[derive(Clone)]
pub struct PeerResult {
    pub workload: String,
    pub size: String,
    pub peer: String,
    pub stats: Option<Stats>,
    pub work: f64,
    pub peak_rss_bytes: Option<u64>,
    pub skipped: Option<String>,
}

impl PeerResult {
    /// PyTorch proper, or a library built on it (transformers' `generate`).
    pub fn is_pytorch(&self) -> bool {
        matches!(self.peer.as_str(), "torch" | "transformers")
    }
}

pub struct PeerRun {
    pub python: String,
    pub versions: Value,
    pub results: Vec<PeerResult>,
}

/// `--python PATH`, else `RG_PEERS_PYTHON`, else `python3`.
pub fn python(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("RG_PEERS_PYTHON").ok())
        .unwrap_or_else(|| "python3".into())
}

/// Why `python` cannot run the peers, if it cannot (no interpreter, no torch).
pub fn check(python: &str) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import torch"])
        .stdout(Stdio::null())
        .output();
    match out {
        Err(e) => Some(format!("cannot run {python}: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "{python} cannot import torch ({}); pass --python PATH or set RG_PEERS_PYTHON",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
        Ok(_) => None,
    }
}

/// Runs the peer script once for all distinct (workload, size) pairs of `rows`.
pub fn run(python: &str, root: &Path, rows: &[Row], shared: &Path) -> Result<PeerRun> {
    let mut specs: Vec<Value> = Vec::new();
    for row in rows {
        let spec = row.peer_spec();
        if !specs
            .iter()
            .any(|s| s["workload"] == spec["workload"] && s["size"] == spec["size"])
        {
            specs.push(spec);
        }
    }
    let script: PathBuf = root.join("scripts/bench_peers.py");
    eprintln!("bench: running peers with {python} ({} rows)", specs.len());
    let mut child = Command::new(python)
        .arg(&script)
        .env("RG_SHARED_DIR", shared)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {python} {}", script.display()))?;
    child
        .stdin
        .take()
        .context("peer script stdin")?
        .write_all(serde_json::to_string(&specs)?.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("reading the peer script's JSON")?;
    let results = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(parse_result)
        .collect();
    Ok(PeerRun {
        python: python.to_string(),
        versions: v["versions"].clone(),
        results,
    })
}

fn parse_result(r: &Value) -> PeerResult {
    let times: Vec<f64> = r["times_s"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    PeerResult {
        workload: r["workload"].as_str().unwrap_or_default().to_string(),
        size: r["size"].as_str().unwrap_or_default().to_string(),
        peer: r["peer"].as_str().unwrap_or("none").to_string(),
        stats: Stats::of(&times),
        work: r["work"].as_f64().unwrap_or(0.0),
        peak_rss_bytes: r["peak_rss_bytes"].as_u64(),
        skipped: r["skipped"].as_str().map(str::to_string),
    }
}
