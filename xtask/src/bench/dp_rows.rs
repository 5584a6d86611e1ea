//! The data-parallel training rows: `rgrad train` (built here with `--features mpi`)
//! under `mpirun -n 2`, one thread per rank, against one process with one thread in
//! the same run (the peer column: the speed-up of two ranks on two cores); and the
//! same over TCP between two network namespaces whose link is limited to 1 Gbit/s,
//! with the gradient exchange overlapped against exchanging after the backward pass
//! (the peer column: what overlapping gains, and how much of the exchange it hides).
//! Step times come from the `step` events of `--log-format json` (tokens over tokens/s);
//! the first steps are warm-up. Without `mpirun`, an MPI library to build against, or
//! (two-namespace row) root and iproute2, a row is skipped with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::matrix::{Reps, Row};
use super::mpi_rows::{build_with_mpi, check_mpirun};
use super::peers::PeerResult;
use super::report::load_average;
use super::run::Ours;
use super::stats::Stats;

pub fn is_dp_row(row: &Row) -> bool {
    row.workload.starts_with("dp_train")
}

/// The `rgrad` these rows run, built once (`Err`: why the rows are skipped).
#[derive(Default)]
pub struct DpRows {
    rgrad: Option<Result<PathBuf, String>>,
}

/// One `rgrad train` run's step times and exchange times (warm-up dropped).
struct Run {
    step_s: Vec<f64>,
    exchange_s: Vec<f64>,
    tokens_per_step: f64,
}

impl DpRows {
    pub fn run_row(&mut self, root: &Path, shared: &Path, row: &Row) -> (Ours, Vec<PeerResult>) {
        let rgrad = match self
            .rgrad
            .get_or_insert_with(|| build_with_mpi(root, &["-p", "rg-cli", "--bin"], "rgrad"))
        {
            Ok(path) => path.clone(),
            Err(why) => return (Ours::skipped(why.clone()), Vec::new()),
        };
        let measured = if row.workload.contains("2hosts") {
            two_hosts(&rgrad, shared, row)
        } else {
            one_host(&rgrad, shared, row)
        };
        measured.unwrap_or_else(|why| (Ours::skipped(why), Vec::new()))
    }
}

/// The model and data of a row, as `rgrad train` flags, and the batch per rank.
fn model_args(row: &Row, shared: &Path) -> Result<(Vec<String>, usize, usize), String> {
    let data = shared.join("data/tinyshakespeare.txt");
    if !data.is_file() {
        return Err(format!("{} is missing", data.display()));
    }
    let data = data.display().to_string();
    let (args, batch, seq): (Vec<String>, usize, usize) = if row.workload.contains("gpt2") {
        let tokenizer = shared.join("data/gpt2-tokenizer").display().to_string();
        let args = [
            "--config",
            "gpt2",
            "--tokenizer",
            &tokenizer,
            "--data",
            &data,
        ];
        (args.iter().map(|s| s.to_string()).collect(), 4, 64)
    } else {
        // nanoGPT's shakespeare_char at CPU size (the `rgrad train --help` example).
        let args = ["--data", &data, "--block-size", "64"];
        (args.iter().map(|s| s.to_string()).collect(), 12, 64)
    };
    let mut all = args;
    all.extend(
        [
            "--seq-len",
            &seq.to_string(),
            "--batch-size",
            &batch.to_string(),
        ]
        .map(String::from),
    );
    Ok((all, batch, seq))
}

/// Warm-up steps and timed steps of a row.
fn steps(row: &Row, reps: Reps) -> (usize, usize) {
    if row.workload.contains("gpt2") {
        (1, reps.max_reps.max(3))
    } else {
        // Tens of milliseconds a step: enough steps to get past first-touch effects.
        (5, reps.max_reps.max(20))
    }
}

/// `rgrad train` flags of a row's runs; also the warm-up steps and tokens per rank
/// and step.
fn train_args(row: &Row, shared: &Path, out: &Path) -> Result<(Vec<String>, usize, f64), String> {
    let (model, batch, seq) = model_args(row, shared)?;
    let (warm, timed) = steps(row, row.reps);
    let mut args = vec!["train".to_string()];
    args.extend(model);
    let steps = (warm + timed).to_string();
    let out = out.display().to_string();
    let run = [
        "--steps",
        &steps,
        "--eval-every",
        "0",
        "--eval-iters",
        "1",
        "--log-format",
        "json",
        "--out",
        &out,
    ];
    args.extend(run.map(String::from));
    Ok((args, warm, (batch * seq) as f64))
}

fn one_host(rgrad: &Path, shared: &Path, row: &Row) -> Result<(Ours, Vec<PeerResult>), String> {
    check_mpirun()?;
    let dir = tempdir()?;
    let (args, warm, tokens) = train_args(row, shared, &dir.join("two"))?;
    let load = load_average();
    let pair = parse(
        run(mpirun(2).arg(rgrad).args(&args), "mpirun -n 2 rgrad train")?,
        warm,
        2.0 * tokens,
    )?;
    let (args, warm, tokens) = train_args(row, shared, &dir.join("one"))?;
    let single = parse(
        run(
            Command::new(rgrad)
                .args(&args)
                .env("RAYON_NUM_THREADS", "1"),
            "rgrad train",
        )?,
        warm,
        tokens,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((ours(&pair, load), vec![peer("1 rank x 1 thread", &single)]))
}

/// One rank in each of two network namespaces joined by a veth pair limited to
/// 1 Gbit/s: `--overlap on` (ours) against `--overlap off` (the peer).
fn two_hosts(rgrad: &Path, shared: &Path, row: &Row) -> Result<(Ours, Vec<PeerResult>), String> {
    check_mpirun()?;
    let net = netns::Pair::create()?;
    let link = net.limit_rate()?;
    let dir = tempdir()?;
    let agent = net.write_agent(&dir)?;
    let load = load_average();
    let mut runs = Vec::new();
    for overlap in [true, false] {
        let (mut args, warm, tokens) = train_args(row, shared, &dir.join(format!("{overlap}")))?;
        args.extend([
            "--overlap".into(),
            if overlap { "on" } else { "off" }.into(),
        ]);
        let mut cmd = net.mpirun(&agent);
        cmd.arg(rgrad).args(&args);
        runs.push(parse(
            run(&mut cmd, "mpirun across two namespaces")?,
            warm,
            2.0 * tokens,
        )?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (overlapped, after) = (&runs[0], &runs[1]);
    let median = |xs: &[f64]| Stats::of(xs).map_or(f64::NAN, |s| s.median);
    // What overlapping saved, over what the exchange costs when nothing hides it.
    let exchange = median(&after.exchange_s);
    let hidden = (median(&after.step_s) - median(&overlapped.step_s)) / exchange;
    eprint!(
        "(link: {link}; exchange after backward {exchange:.3} s, overlap hides {:.0}%) ",
        100.0 * hidden
    );
    let label = format!(
        "after backward ({link}; overlap hides {:.0}% of its {:.3} s exchange)",
        100.0 * hidden,
        exchange
    );
    Ok((ours(overlapped, load), vec![peer(&label, after)]))
}

fn ours(r: &Run, load_before: Option<[f64; 3]>) -> Ours {
    Ours {
        stats: Stats::of(&r.step_s),
        times_s: r.step_s.clone(),
        work: r.tokens_per_step,
        work_unit: "token".to_string(),
        peak_rss_bytes: None,
        matmul_path: None,
        weight_bytes_per_token: None,
        skipped: None,
        load_before,
    }
}

fn peer(name: &str, r: &Run) -> PeerResult {
    PeerResult {
        peer: name.to_string(),
        stats: Stats::of(&r.step_s),
        times_s: r.step_s.clone(),
        work: r.tokens_per_step,
        peak_rss_bytes: None,
        skipped: None,
    }
}

/// `mpirun -n N` on this host, one thread per rank, allowed as root and beyond the
/// core count.
fn mpirun(n: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &n.to_string(), "--oversubscribe"]);
    allow_root(&mut cmd);
    cmd
}

fn allow_root(cmd: &mut Command) {
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .args(["-x", "RAYON_NUM_THREADS"]);
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("starting {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Step times (tokens over tokens/s) and exchange times from the `step` events, after
/// `warm` steps.
fn parse(stdout: String, warm: usize, tokens_per_step: f64) -> Result<Run, String> {
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step")
        .collect();
    if steps.len() <= warm {
        return Err(format!("rgrad train reported {} steps", steps.len()));
    }
    let timed = &steps[warm..];
    let step_s = timed
        .iter()
        .filter_map(|e| e["tokens_per_s"].as_f64())
        .map(|rate| tokens_per_step / rate)
        .collect();
    let exchange_s = timed
        .iter()
        .filter_map(|e| e["exchange_s"].as_f64())
        .collect();
    Ok(Run {
        step_s,
        exchange_s,
        tokens_per_step,
    })
}

fn tempdir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("rg-bench-dp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Two network namespaces joined by a veth pair, as two hosts (the same layout as
/// rg-cli's `distributed_two_hosts` test).
mod netns {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const HOST_A: &str = "10.214.0.1";
    const HOST_B: &str = "10.214.0.2";
    const SUBNET: &str = "10.214.0.0/24";

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("running ip (install iproute2): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Deleted on drop, after killing what is left running inside.
    pub struct Pair {
        a: String,
        b: String,
        links: [(String, String); 2],
    }

    impl Pair {
        pub fn create() -> Result<Pair, String> {
            let id = std::process::id() % 100_000;
            let (a, b) = (format!("rgbench-a-{id}"), format!("rgbench-b-{id}"));
            let (va, vb) = (format!("rgba{id}"), format!("rgbb{id}"));
            for space in [&a, &b] {
                let _ = ip(&["netns", "del", space]);
            }
            ip(&["netns", "add", &a]).map_err(|e| {
                format!("cannot create network namespaces (needs root, CAP_NET_ADMIN): {e}")
            })?;
            let pair = Pair {
                links: [(a.clone(), va.clone()), (b.clone(), vb.clone())],
                a,
                b,
            };
            ip(&["netns", "add", &pair.b])?;
            ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
            for ((space, dev), addr) in pair.links.iter().zip([HOST_A, HOST_B]) {
                ip(&["link", "set", dev, "netns", space])?;
                ip(&[
                    "-n",
                    space,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    dev,
                ])?;
                ip(&["-n", space, "link", "set", dev, "up"])?;
                ip(&["-n", space, "link", "set", "lo", "up"])?;
            }
            Ok(pair)
        }

        /// Limits both directions of the veth to 1 Gbit/s: `netem rate 1gbit delay
        /// 1ms` where the kernel has netem, else a token bucket at the same rate (no
        /// added delay). Returns what it set, for the report.
        pub fn limit_rate(&self) -> Result<String, String> {
            let netem = ["netem", "rate", "1gbit", "delay", "1ms"];
            let tbf = ["tbf", "rate", "1gbit", "burst", "256kb", "latency", "200ms"];
            for (qdisc, label) in [
                (&netem[..], "netem rate 1gbit delay 1ms"),
                (
                    &tbf[..],
                    "tbf rate 1gbit, no added delay: this kernel has no netem",
                ),
            ] {
                let set = self.links.iter().try_for_each(|(space, dev)| {
                    let _ = tc(&["-n", space, "qdisc", "del", "dev", dev, "root"]);
                    let mut args = vec!["-n", space, "qdisc", "add", "dev", dev, "root"];
                    args.extend_from_slice(qdisc);
                    tc(&args)
                });
                if set.is_ok() {
                    return Ok(label.to_string());
                }
            }
            Err("tc could set neither netem nor tbf on the veth".to_string())
        }

        /// OpenMPI's rsh agent: starts the daemon of a "host" inside its namespace.
        pub fn write_agent(&self, dir: &Path) -> Result<PathBuf, String> {
            let path = dir.join("agent.sh");
            let script = format!(
                "#!/bin/sh\n\
                 while [ $# -gt 0 ]; do case \"$1\" in -*) shift;; *) break;; esac; done\n\
                 host=\"$1\"; shift\n\
                 case \"$host\" in\n\
                 \x20 {HOST_A}) ns={a} ;;\n\
                 \x20 {HOST_B}) ns={b} ;;\n\
                 \x20 *) echo \"agent.sh: unknown host $host\" >&2; exit 1 ;;\n\
                 esac\n\
                 exec ip netns exec \"$ns\" /bin/sh -c \"$*\"\n",
                a = self.a,
                b = self.b,
            );
            std::fs::write(&path, script).map_err(|e| format!("writing the agent: {e}"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("making the agent executable: {e}"))?;
            Ok(path)
        }

        /// `mpirun -n 2` in the first namespace, one rank per "host", TCP over the veth.
        pub fn mpirun(&self, agent: &Path) -> Command {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &self.a, "mpirun", "-n", "2"])
                .args(["--host", &format!("{HOST_A}:1,{HOST_B}:1")])
                .args(["--mca", "plm_rsh_agent", &agent.display().to_string()])
                .args(["--mca", "plm_rsh_no_tree_spawn", "1"])
                .args(["--mca", "btl", "self,tcp"])
                .args(["--mca", "btl_tcp_if_include", SUBNET])
                .args(["--mca", "oob_tcp_if_include", SUBNET]);
            super::allow_root(&mut cmd);
            cmd
        }
    }

    fn tc(args: &[&str]) -> Result<(), String> {
        let out = Command::new("tc")
            .args(args)
            .output()
            .map_err(|e| format!("running tc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            for space in [&self.a, &self.b] {
                if let Ok(out) = Command::new("ip").args(["netns", "pids", space]).output() {
                    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                }
                let _ = ip(&["netns", "del", space]);
            }
        }
    }
}
