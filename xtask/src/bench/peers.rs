//! Running `scripts/bench_peers.py` (PyTorch, transformers, numpy, tiktoken,
//! safetensors) over the same rows, in the same invocation, row by row after ours.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::matrix::Row;
use super::stats::Stats;

/// One peer's measurement of one row's workload and size.
#[derive(Clone)]
pub struct PeerResult {
    pub peer: String,
    pub stats: Option<Stats>,
    /// The repetition times `stats` summarises (pooled over `--rounds`).
    pub times_s: Vec<f64>,
    pub work: f64,
    pub peak_rss_bytes: Option<u64>,
    pub skipped: Option<String>,
}

impl PeerResult {
    /// PyTorch proper (any of its entry points, e.g. "torch sdpa"), or a library built
    /// on it (transformers' `generate`).
    pub fn is_pytorch(&self) -> bool {
        self.peer == "torch" || self.peer.starts_with("torch ") || self.peer == "transformers"
    }
}

/// Which Python and peer libraries measured.
#[derive(Clone)]
pub struct PeerRun {
    pub python: String,
    pub versions: Value,
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

/// The peer script in `--serve` mode: one row in, that row's peer results out, so each
/// peer row runs right after ours under the same machine load, and Python's imports
/// are paid once. Its output lines arrive through a reader thread, so a row can be
/// given up after a timeout (the script is then stopped and later rows are skipped).
pub struct PeerServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    /// Why the script no longer answers, once it does not.
    dead: Option<String>,
    pub info: PeerRun,
}

impl PeerServer {
    pub fn start(python: &str, root: &Path, shared: &Path) -> Result<PeerServer> {
        let script: PathBuf = root.join("scripts/bench_peers.py");
        eprintln!(
            "bench: starting peers: {python} {} --serve",
            script.display()
        );
        let mut child = Command::new(python)
            .arg(&script)
            .arg("--serve")
            .env("RG_SHARED_DIR", shared)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {python} {}", script.display()))?;
        let stdin = child.stdin.take().context("peer script stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer script stdout")?);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let hello = read_json_line(&lines, None).context("the peer script did not start")?;
        Ok(PeerServer {
            child,
            stdin: Some(stdin),
            lines,
            dead: None,
            info: PeerRun {
                python: python.to_string(),
                versions: hello["versions"].clone(),
            },
        })
    }

    /// The peers' results for `row`; with a `timeout`, a row that takes longer is
    /// reported as skipped and the script is stopped.
    pub fn run(&mut self, row: &Row, timeout: Option<Duration>) -> Result<Vec<PeerResult>> {
        if let Some(why) = &self.dead {
            return Ok(vec![skipped_result(why.clone())]);
        }
        let stdin = self.stdin.as_mut().context("peer script stdin")?;
        writeln!(stdin, "{}", row.peer_spec())?;
        stdin.flush()?;
        let v = match read_json_line(&self.lines, timeout) {
            Ok(v) => v,
            Err(e) if timeout.is_some() => {
                let why = format!("peer script stopped at {}: {e:#}", row.label());
                let _ = self.child.kill();
                self.dead = Some(why.clone());
                return Ok(vec![skipped_result(why)]);
            }
            Err(e) => return Err(e.context(format!("the peer script stopped at {}", row.label()))),
        };
        self.wait_until_idle();
        Ok(v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parse_result)
            .collect())
    }

    /// Returns once the script has stopped using the CPU. PyTorch's OpenMP workers
    /// keep spinning for a while after its last parallel op (measured here: our next
    /// row, started at once, ran at 0.35x its speed for about a second), so the row
    /// after a peer would otherwise share the cores with it. Polls the process's CPU
    /// time (`/proc/<pid>/stat`, all threads): idle is under 10 ms of CPU in 100 ms
    /// of wall time; gives up after 5 s, and at once where `/proc` is absent.
    fn wait_until_idle(&self) {
        let stat = format!("/proc/{}/stat", self.child.id());
        let cpu_ticks = || -> Option<u64> {
            let text = std::fs::read_to_string(&stat).ok()?;
            // Fields after the command name (which may hold spaces) start at state;
            // utime and stime are the 12th and 13th of those.
            let rest = &text[text.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some(utime + stime)
        };
        let Some(mut before) = cpu_ticks() else {
            return;
        };
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            let Some(now) = cpu_ticks() else { return };
            // Clock ticks are 10 ms on Linux (USER_HZ = 100).
            if now - before <= 1 {
                if start.elapsed() > Duration::from_millis(150) {
                    eprintln!(
                        "       (the peer script kept the CPU busy {:.1} s after its row; waited)",
                        start.elapsed().as_secs_f64()
                    );
                }
                return;
            }
            before = now;
        }
    }

    /// Whether the script was stopped after a row timed out.
    pub fn is_dead(&self) -> bool {
        self.dead.is_some()
    }

    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

fn skipped_result(why: String) -> PeerResult {
    PeerResult {
        peer: "torch".into(),
        stats: None,
        times_s: Vec::new(),
        work: 0.0,
        peak_rss_bytes: None,
        skipped: Some(why),
    }
}

fn read_json_line(
    lines: &Receiver<std::io::Result<String>>,
    timeout: Option<Duration>,
) -> Result<Value> {
    let line = match timeout {
        Some(t) => match lines.recv_timeout(t) {
            Ok(line) => line?,
            Err(RecvTimeoutError::Timeout) => bail!("no answer within {:.0} s", t.as_secs_f64()),
            Err(RecvTimeoutError::Disconnected) => bail!("no output (see its errors above)"),
        },
        None => match lines.recv() {
            Ok(line) => line?,
            Err(_) => bail!("no output (see its errors above)"),
        },
    };
    serde_json::from_str(&line).context("reading the peer script's JSON")
}

fn parse_result(r: &Value) -> PeerResult {
    let times: Vec<f64> = r["times_s"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    PeerResult {
        peer: r["peer"].as_str().unwrap_or("none").to_string(),
        stats: Stats::of(&times),
        times_s: times,
        work: r["work"].as_f64().unwrap_or(0.0),
        peak_rss_bytes: r["peak_rss_bytes"].as_u64(),
        skipped: r["skipped"].as_str().map(str::to_string),
    }
}
