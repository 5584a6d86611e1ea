//! `cargo xtask bench`: the benchmark matrix.
//!
//! Builds the row runner (`benches/src/bin/rg-bench`) in release mode, runs every row
//! of the matrix in its own process (so each row's peak RSS is its own), optionally
//! runs the same rows through `scripts/bench_peers.py` (PyTorch & co.), and writes
//! `target/bench/results.json`, the table between the markers of
//! `docs/PERFORMANCE.md`, and `docs/perf.svg`.
//!
//! Layout: `matrix.rs` (rows and repetition plans), `run.rs` (building and running our
//! runner), `mpi_rows.rs` (the all-reduce rows under `mpirun`), `dp_rows.rs` (`rgrad
//! train` data-parallel rows: 2 ranks against 1, two namespaces on a limited link),
//! `peers.rs` (the Python peers), `stats.rs`, `report.rs` (JSON, Markdown, machine and
//! commit), `chart.rs` (the SVG).

mod chart;
mod dp_rows;
mod matrix;
mod mpi_rows;
mod peers;
pub mod report;
mod roofline;
mod rounds;
mod run;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::paths::{shared_dir, workspace_root};
use matrix::Backend;
use report::RowResult;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--filter SUBSTR] [--device cpu|cuda] [--peers] [--python PATH] [--blas]
                         [--runner PATH] [--out DIR] [--row-timeout S] [--deadline-s S] [--rounds N]
                         [--section-from FILE]

  --quick           fewer repetitions and sizes (the whole run in about 3 minutes on 2 cores)
  --filter SUBSTR   only rows whose \"workload size backend dtype\" contains SUBSTR
  --device D        cpu (default) or cuda: the CUDA rows (matmul f32/TF32/bf16 at 4096 and
                    8192, GPT-2 124M training B16xT1024, decode at batch 1) on Device::cuda(0);
                    without a GPU they are reported as skipped with the reason
  --peers           also run scripts/bench_peers.py (PyTorch, transformers, numpy, tiktoken)
                    and add our/peer ratio columns
  --python PATH     the Python with torch for --peers (else $RG_PEERS_PYTHON, else python3)
  --blas            also build the runner with --features blas and add cpu-blas matmul rows
  --runner PATH     an rg-bench already built for the device (gpu-bundle's bin/rg-bench); no build
  --out DIR         write results.json and bench.md (the section) into DIR, after every row,
                    instead of target/bench and docs/
  --row-timeout S   give up a row (ours, and each peer row) after S seconds
  --deadline-s S    skip the rows that would start more than S seconds after the start
  --rounds N        measure each row N times, ours then its peers, alternating, and pool
                    the repetitions (a shared machine's drift lands on both sides alike)
  --section-from F  only copy F (a bench.md from --out, e.g. a GPU machine's) between this
                    device's markers in docs/PERFORMANCE.md";

struct Options {
    quick: bool,
    filter: Option<String>,
    device: String,
    peers: bool,
    python: Option<String>,
    blas: bool,
    runner: Option<PathBuf>,
    out: Option<PathBuf>,
    row_timeout: Option<Duration>,
    deadline: Option<Duration>,
    rounds: usize,
    section_from: Option<PathBuf>,
}

fn seconds(flag: &str, v: &str) -> Result<Duration> {
    let s: f64 = v
        .parse()
        .with_context(|| format!("{flag}: {v:?} is not a number of seconds"))?;
    if !(s > 0.0 && s.is_finite()) {
        bail!("{flag}: {v:?} must be positive");
    }
    Ok(Duration::from_secs_f64(s))
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        filter: None,
        device: "cpu".into(),
        peers: false,
        python: None,
        blas: false,
        runner: None,
        out: None,
        row_timeout: None,
        deadline: None,
        rounds: 1,
        section_from: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--peers" => o.peers = true,
            "--blas" => o.blas = true,
            "--filter" => o.filter = Some(value()?.clone()),
            "--device" => o.device = value()?.clone(),
            "--python" => o.python = Some(value()?.clone()),
            "--runner" => o.runner = Some(PathBuf::from(value()?)),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--row-timeout" => o.row_timeout = Some(seconds(a, value()?)?),
            "--deadline-s" => o.deadline = Some(seconds(a, value()?)?),
            "--rounds" => {
                let v = value()?;
                o.rounds = v
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1)
                    .with_context(|| {
                        format!("--rounds: {v:?} is not a whole number of at least 1")
                    })?;
            }
            "--section-from" => o.section_from = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if !matches!(o.device.as_str(), "cpu" | "cuda") {
        bail!("--device: {:?} is not one of: cpu, cuda", o.device);
    }
    if o.blas && o.device == "cuda" {
        bail!("--blas adds CPU rows; it does not go with --device cuda");
    }
    Ok(o)
}

/// Where a run's outputs go.
struct Outputs {
    json: PathBuf,
    /// `docs/PERFORMANCE.md` (between this device's markers), or `DIR/bench.md`.
    section: PathBuf,
    in_docs: bool,
    chart: Option<PathBuf>,
}

fn outputs(root: &std::path::Path, o: &Options) -> Outputs {
    let cuda = o.device == "cuda";
    match &o.out {
        Some(dir) => Outputs {
            json: dir.join("results.json"),
            section: dir.join("bench.md"),
            in_docs: false,
            chart: None,
        },
        None => Outputs {
            json: root.join(if cuda {
                "target/bench/results-cuda.json"
            } else {
                "target/bench/results.json"
            }),
            section: root.join("docs/PERFORMANCE.md"),
            in_docs: true,
            chart: Some(root.join(if cuda {
                "docs/perf-cuda.svg"
            } else {
                "docs/perf.svg"
            })),
        },
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = workspace_root();
    let machine = report::machine();
    let markers = report::Markers::for_device(&o.device, &report::cpu_label(&machine));
    if let Some(file) = &o.section_from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let docs = root.join("docs/PERFORMANCE.md");
        report::write_section(&docs, &text, &markers)?;
        println!(
            "bench: copied {} into {} ({} section)",
            file.display(),
            docs.display(),
            o.device
        );
        return Ok(());
    }
    let rows = if o.device == "cuda" {
        matrix::cuda_rows(o.quick, o.filter.as_deref())
    } else {
        matrix::rows(o.quick, o.blas, o.filter.as_deref())
    };
    if rows.is_empty() {
        bail!(
            "no row matches --filter {:?}",
            o.filter.clone().unwrap_or_default()
        );
    }
    let shared = shared_dir(&root);
    let outs = outputs(&root, &o);
    let bin_dir = root.join("target/bench/bin");
    let python = peers::python(o.python.as_deref());
    let peers_off = if o.peers { peers::check(&python) } else { None };
    if let Some(why) = &peers_off {
        eprintln!("bench: WARNING: peers skipped: {why}");
    }

    let build_start = Instant::now();
    let mut runners = Vec::new();
    for backend in [Backend::Cpu, Backend::CpuBlas, Backend::Cuda] {
        if rows
            .iter()
            .any(|r| r.backend == backend && !runs_own_program(r))
        {
            let runner = match &o.runner {
                Some(path) => path.clone(),
                None => run::build_runner(&root, backend, &bin_dir)?,
            };
            runners.push((backend, runner));
        }
    }
    let build_s = build_start.elapsed().as_secs_f64();

    let start = Instant::now();
    let load_start = report::load_average();
    let mut server = match (o.peers, &peers_off) {
        (true, None) => Some(peers::PeerServer::start(&python, &root, &shared)?),
        _ => None,
    };
    let commit = report::commit(&root);
    let date = report::now_utc(&root);
    let mode = if o.quick { "quick" } else { "full" };
    let mut results: Vec<RowResult> = Vec::new();
    let mut peer_restarts = 0;
    let mut mpi = mpi_rows::MpiRows::default();
    let mut dp = dp_rows::DpRows::default();
    for (i, row) in rows.iter().enumerate() {
        // None only for the all-reduce rows, which run an example of their own.
        let runner = runners
            .iter()
            .find(|(b, _)| *b == row.backend)
            .map(|r| &r.1);
        eprint!("bench: [{}/{}] {} ... ", i + 1, rows.len(), row.label());
        if let Some(deadline) = o.deadline.filter(|d| start.elapsed() >= *d) {
            let why = format!("out of time (--deadline-s {:.0})", deadline.as_secs_f64());
            eprintln!("skipped: {why}");
            results.push(RowResult {
                row: row.clone(),
                ours: run::Ours::skipped(why),
                peers: Vec::new(),
            });
            continue;
        }
        let (mut ours_rounds, mut peer_rounds) = (Vec::new(), Vec::new());
        for round in 0..o.rounds {
            if round > 0 {
                eprint!("       round {}/{}: ", round + 1, o.rounds);
            }
            // The data-parallel rows measure their peer (one process) themselves.
            let mut own_peers = Vec::new();
            let ours = match runner {
                Some(runner) if !runs_own_program(row) => {
                    run::run_row(runner, row, &shared, o.row_timeout)?
                }
                _ if dp_rows::is_dp_row(row) => {
                    let (ours, peers) = dp.run_row(&root, &shared, row);
                    own_peers = peers;
                    ours
                }
                _ => mpi.run_row(&root, row),
            };
            match (&ours.skipped, ours.stats) {
                (Some(why), _) => eprintln!("skipped: {why}"),
                (None, Some(s)) => eprintln!("median {}", report::fmt_time(s.median)),
                (None, None) => eprintln!("no repetitions"),
            }
            // Peers right after ours, so both see the same load; the same work measured
            // already (matmul's second CPU backend) reuses the peers' figures.
            let done = results.iter().find(|r| r.row.same_peer_work(row));
            // A peer script stopped after a timeout is started again (twice at most), so
            // one hanging row does not cost the peers of all the rows after it.
            if server.as_ref().is_some_and(|s| s.is_dead()) && peer_restarts < 2 {
                peer_restarts += 1;
                eprintln!("bench: restarting the peer script");
                server = Some(peers::PeerServer::start(&python, &root, &shared)?);
            }
            let peers = match (done, server.as_mut()) {
                (Some(r), _) => r.peers.clone(),
                // The peers have no MPI all-reduce or data-parallel run to compare with.
                (None, Some(s)) if !runs_own_program(row) => s.run(row, o.row_timeout)?,
                (None, _) => own_peers,
            };
            for p in &peers {
                match (&p.skipped, p.stats) {
                    (Some(why), _) => eprintln!("       peer {}: skipped: {why}", p.peer),
                    (None, Some(s)) => eprintln!(
                        "       peer {}: median {}",
                        p.peer,
                        report::fmt_time(s.median)
                    ),
                    (None, None) => {}
                }
            }
            // Another round cannot help a row that it or a peer skipped (a timeout would
            // only repeat), that reuses figures, or whose result is kept from its first
            // run (the all-reduce rows). Rows without any peer ("none") go on.
            let again = ours.skipped.is_none()
                && peers
                    .iter()
                    .all(|p| p.skipped.is_none() || p.peer == "none")
                && done.is_none()
                && !mpi_rows::is_mpi_row(row);
            ours_rounds.push(ours);
            peer_rounds.push(peers);
            if !again {
                break;
            }
        }
        let (ours, peers) = (
            rounds::merge_ours(ours_rounds),
            rounds::merge_peers(peer_rounds),
        );
        results.push(RowResult {
            row: row.clone(),
            ours,
            peers,
        });
        // With --out (a GPU machine, under a time limit), every row is saved as soon
        // as it is measured.
        if o.out.is_some() {
            let partial = Report {
                root: &root,
                args,
                o: &o,
                commit: &commit,
                date: &date,
                machine: &machine,
                mode,
                load_start,
                build_s,
                wall_s: start.elapsed().as_secs_f64(),
                peer_run: server.as_ref().map(|s| &s.info),
                peers_off: peers_off.as_deref(),
                results: &results,
            };
            partial.write(&outs, &markers, false)?;
        }
    }
    let peer_run = match server {
        Some(s) => {
            let info = s.info.clone();
            s.finish()?;
            Some(info)
        }
        None => None,
    };
    let wall_s = start.elapsed().as_secs_f64();
    let report = Report {
        root: &root,
        args,
        o: &o,
        commit: &commit,
        date: &date,
        machine: &machine,
        mode,
        load_start,
        build_s,
        wall_s,
        peer_run: peer_run.as_ref(),
        peers_off: peers_off.as_deref(),
        results: &results,
    };
    let section = report.write(&outs, &markers, true)?;
    println!("{section}");
    let measured = results.iter().any(|r| r.ours.stats.is_some());
    let mut wrote = vec![outs.json.display().to_string()];
    if measured || !outs.in_docs {
        wrote.push(outs.section.display().to_string());
        wrote.extend(outs.chart.as_ref().map(|c| c.display().to_string()));
    }
    eprintln!(
        "bench: {} rows measured in {:.0} s (build {:.0} s before that); wrote {}",
        results.len(),
        wall_s,
        build_s,
        wrote.join(", ")
    );
    Ok(())
}

/// Everything one run writes.
struct Report<'a> {
    root: &'a std::path::Path,
    args: &'a [String],
    o: &'a Options,
    commit: &'a str,
    date: &'a str,
    machine: &'a serde_json::Value,
    mode: &'a str,
    load_start: Option<[f64; 3]>,
    build_s: f64,
    wall_s: f64,
    peer_run: Option<&'a peers::PeerRun>,
    peers_off: Option<&'a str>,
    results: &'a [RowResult],
}

impl Report<'_> {
    /// Writes the JSON and the section (and, when `last`, the chart); returns the
    /// section's text.
    fn write(&self, outs: &Outputs, markers: &report::Markers, last: bool) -> Result<String> {
        let load_end = report::load_average();
        let roof = roofline::Roofline::of(self.results);
        let results_json = json!({
            "commit": self.commit,
            "date": self.date,
            "mode": self.mode,
            "device": self.o.device,
            "filter": self.o.filter,
            "blas": self.o.blas,
            "complete": last,
            "machine": self.machine,
            "load_average": { "start": self.load_start, "end": load_end },
            "seconds": { "build": self.build_s, "measured": self.wall_s },
            "peers": self.peer_run.map(|p| json!({ "python": p.python, "versions": p.versions })),
            "peers_skipped": self.peers_off,
            "roofline": roof.to_json(),
            "rows": self.results.iter().map(report::row_json).collect::<Vec<_>>(),
        });
        if let Some(dir) = outs.json.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&outs.json, serde_json::to_string_pretty(&results_json)?)?;

        // Rows that measure their own peer (data-parallel) need the columns too.
        let with_peers =
            self.peer_run.is_some() || self.results.iter().any(|r| !r.peers.is_empty());
        let table = report::table(self.results, with_peers, &roof);
        let roof_summary = roof.summary();
        let section = report::section_text(&report::SectionInfo {
            args: self.args,
            commit: self.commit,
            date: self.date,
            machine: self.machine,
            load_start: self.load_start,
            load_end,
            wall_s: self.wall_s,
            peers: self.peer_run,
            peers_skipped: self.peers_off,
            table: &table,
            roofline: &roof_summary,
            files_note: &match &outs.chart {
                Some(chart) => format!(
                    "the raw figures are in `{}`, the chart in `{}`",
                    outs.json
                        .strip_prefix(self.root)
                        .unwrap_or(&outs.json)
                        .display(),
                    chart.file_name().unwrap_or_default().to_string_lossy()
                ),
                None => "the raw figures are in the `results.json` written beside this section"
                    .to_string(),
            },
        });
        // A run that measured nothing (e.g. --device cuda without a GPU) must not
        // replace the figures in the docs with a table of skips.
        let measured = self.results.iter().any(|r| r.ours.stats.is_some());
        if outs.in_docs && !measured {
            if last {
                eprintln!(
                    "bench: no row was measured; {} and the chart are left as they were",
                    outs.section.display()
                );
            }
        } else if outs.in_docs {
            report::write_section(&outs.section, &section, markers)?;
        } else {
            if let Some(dir) = outs.section.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&outs.section, &section)?;
        }
        if let (true, true, Some(chart_path)) = (last, measured, &outs.chart) {
            let title = format!(
                "cargo xtask bench {} — {} — {}, load {}",
                self.args.join(" "),
                self.commit,
                report::machine_label(self.machine),
                self.load_start
                    .map(|l| report::sig3(l[0]))
                    .unwrap_or_default()
            );
            chart::draw(chart_path, self.results, with_peers, &title)?;
        }
        Ok(section)
    }
}

/// Rows measured by a program of their own under `mpirun` rather than by the runner.
fn runs_own_program(row: &matrix::Row) -> bool {
    mpi_rows::is_mpi_row(row) || dp_rows::is_dp_row(row)
}
