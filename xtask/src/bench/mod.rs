//! `cargo xtask bench`: the benchmark matrix.
//!
//! Builds the row runner (`benches/src/bin/rg-bench`) in release mode, runs every row
//! of the matrix in its own process (so each row's peak RSS is its own), optionally
//! runs the same rows through `scripts/bench_peers.py` (PyTorch & co.), and writes
//! `target/bench/results.json`, the table between the markers of
//! `docs/PERFORMANCE.md`, and `docs/perf.svg`.
//!
//! Layout: `matrix.rs` (rows and repetition plans), `run.rs` (building and running our
//! runner), `peers.rs` (the Python peers), `stats.rs`, `report.rs` (JSON, Markdown,
//! machine and commit), `chart.rs` (the SVG).

mod chart;
mod matrix;
mod peers;
mod report;
mod run;
mod stats;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::paths::{shared_dir, workspace_root};
use matrix::Backend;
use report::RowResult;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--filter SUBSTR] [--device cpu|cuda] [--peers] [--python PATH] [--blas]

  --quick          fewer repetitions and sizes (the whole run in about 3 minutes on 2 cores)
  --filter SUBSTR  only rows whose \"workload size backend dtype\" contains SUBSTR
  --device D       cpu (default) or cuda (no CUDA backend exists yet: prints so and exits)
  --peers          also run scripts/bench_peers.py (PyTorch, transformers, numpy, tiktoken)
                   and add our/peer ratio columns
  --python PATH    the Python with torch for --peers (else $RG_PEERS_PYTHON, else python3)
  --blas           also build the runner with --features blas and add cpu-blas matmul rows";

struct Options {
    quick: bool,
    filter: Option<String>,
    device: String,
    peers: bool,
    python: Option<String>,
    blas: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        filter: None,
        device: "cpu".into(),
        peers: false,
        python: None,
        blas: false,
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
    Ok(o)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    if o.device == "cuda" {
        println!("bench: no CUDA backend exists yet (crates/rg-cuda registers nothing); skipping the cuda matrix");
        return Ok(());
    }
    let rows = matrix::rows(o.quick, o.blas, o.filter.as_deref());
    if rows.is_empty() {
        bail!("no row matches --filter {:?}", o.filter.unwrap_or_default());
    }
    let root = workspace_root();
    let shared = shared_dir(&root);
    let out_dir = root.join("target/bench");
    let python = peers::python(o.python.as_deref());
    let peers_off = if o.peers { peers::check(&python) } else { None };
    if let Some(why) = &peers_off {
        eprintln!("bench: WARNING: peers skipped: {why}");
    }

    let build_start = Instant::now();
    let mut runners = Vec::new();
    for backend in [Backend::Cpu, Backend::CpuBlas] {
        if rows.iter().any(|r| r.backend == backend) {
            runners.push((
                backend,
                run::build_runner(&root, backend, &out_dir.join("bin"))?,
            ));
        }
    }
    let build_s = build_start.elapsed().as_secs_f64();

    let start = Instant::now();
    let load_start = report::load_average();
    let mut server = match (o.peers, &peers_off) {
        (true, None) => Some(peers::PeerServer::start(&python, &root, &shared)?),
        _ => None,
    };
    let mut results: Vec<RowResult> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let runner = &runners
            .iter()
            .find(|(b, _)| *b == row.backend)
            .expect("built")
            .1;
        eprint!("bench: [{}/{}] {} ... ", i + 1, rows.len(), row.label());
        let ours = run::run_row(runner, row, &shared)?;
        match (&ours.skipped, ours.stats) {
            (Some(why), _) => eprintln!("skipped: {why}"),
            (None, Some(s)) => eprintln!("median {}", report::fmt_time(s.median)),
            (None, None) => eprintln!("no repetitions"),
        }
        // Peers right after ours, so both see the same load; a workload and size
        // measured already (matmul's second backend) reuses the peers' figures.
        let done = results
            .iter()
            .find(|r| r.row.workload == row.workload && r.row.size == row.size);
        let peers = match (done, server.as_mut()) {
            (Some(r), _) => r.peers.clone(),
            (None, Some(s)) => s.run(row)?,
            (None, None) => Vec::new(),
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
        results.push(RowResult {
            row: row.clone(),
            ours,
            peers,
        });
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
    let load_end = report::load_average();

    let commit = report::commit(&root);
    let machine = report::machine();
    let date = report::now_utc(&root);
    let mode = if o.quick { "quick" } else { "full" };
    let results_json = json!({
        "commit": commit,
        "date": date,
        "mode": mode,
        "filter": o.filter,
        "blas": o.blas,
        "machine": machine,
        "load_average": { "start": load_start, "end": load_end },
        "seconds": { "build": build_s, "measured": wall_s },
        "peers": peer_run.as_ref().map(|p| json!({ "python": p.python, "versions": p.versions })),
        "peers_skipped": peers_off,
        "rows": results.iter().map(report::row_json).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&out_dir)?;
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results_json)?)?;

    let with_peers = peer_run.is_some();
    let table = report::table(&results, with_peers);
    let section = report::section_text(&report::SectionInfo {
        args,
        commit: &commit,
        date: &date,
        machine: &machine,
        load_start,
        load_end,
        wall_s,
        peers: peer_run.as_ref(),
        peers_skipped: peers_off.as_deref(),
        table: &table,
    });
    let docs = root.join("docs");
    report::write_section(&docs.join("PERFORMANCE.md"), &section)?;
    let title = format!(
        "cargo xtask bench {} — {} — {}, load {}",
        args.join(" "),
        commit,
        machine["cpu_model"].as_str().unwrap_or("?"),
        load_start.map(|l| report::sig3(l[0])).unwrap_or_default()
    );
    chart::draw(&docs.join("perf.svg"), &results, with_peers, &title)?;

    println!("{section}");
    eprintln!(
        "bench: {} rows measured in {:.0} s (build {:.0} s before that); wrote {}, docs/PERFORMANCE.md, docs/perf.svg",
        results.len(),
        wall_s,
        build_s,
        json_path.display()
    );
    Ok(())
}
