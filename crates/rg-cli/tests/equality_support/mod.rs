//! The equality check of the acceptance, shared by the tests that start two ranks in
//! different ways (`mpirun -n 2` on this host; two network namespaces).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::mpi_support::shared_text;

/// A model small enough for debug builds; every setting the acceptance names.
fn train_args(data: &Path, out: &Path, batch: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--block-size",
        "32",
        "--seq-len",
        "32",
        "--steps",
        "20",
        "--sampler",
        "random",
        "--dropout",
        "0.1",
        "--grad-clip",
        "1.0",
        "--lr",
        "1e-2",
        "--warmup",
        "2",
        "--eval-every",
        "10",
        "--eval-iters",
        "2",
        "--log-format",
        "json",
        "--seed",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A flag in `extra` replaces its default above.
    let mut i = 1;
    while i < args.len() {
        if extra.contains(&args[i].as_str()) {
            args.drain(i..i + 2);
        } else {
            i += 2;
        }
    }
    args.extend(["--data".into(), data.display().to_string()]);
    args.extend(["--out".into(), out.display().to_string()]);
    args.extend(["--batch-size".into(), batch.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn events(out: Output, what: &str) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .collect()
}

fn losses(events: &[Value]) -> Vec<f64> {
    events
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["loss"].as_f64().unwrap())
        .collect()
}

/// Trains 20 steps in one process with `--batch-size 4` and with two ranks of
/// `--batch-size 2`, started by `two_ranks` (given rgrad and its arguments), and checks
/// that the losses agree within 1e-4 at every step and both ranks end with the same
/// parameters.
pub fn compare_two_ranks_with_one_process(
    extra: &[&str],
    two_ranks: impl FnOnce(&str, Vec<String>) -> Output,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    let single = Command::new(rgrad)
        .args(train_args(&data, &dir.path().join("one"), 4, extra))
        .output()
        .unwrap();
    let single = events(single, "single process");
    let pair = two_ranks(rgrad, train_args(&data, &dir.path().join("two"), 2, extra));
    let pair = events(pair, "two ranks");

    let (a, b) = (losses(&single), losses(&pair));
    assert_eq!(
        (a.len(), b.len()),
        (20, 20),
        "one line per step from rank 0 only"
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    eprintln!("{extra:?}: largest per-step loss difference {worst:e}");
    assert!(worst < 1e-4, "losses differ by {worst}: {a:?} vs {b:?}");

    let done = pair.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["world_size"], 2);
    // Present only when both ranks reported the same hash of their final parameters.
    assert!(done["param_hash"].is_string(), "{done}");
    let eval = |ev: &[Value]| {
        ev.iter().rev().find(|e| e["event"] == "eval").unwrap()["eval_loss"]
            .as_f64()
            .unwrap()
    };
    // The held-out loss follows the last update, so it carries the rounding
    // differences of 20 steps (sums over 2 ranks vs one batch of 4) a little further.
    let eval_diff = (eval(&single) - eval(&pair)).abs();
    eprintln!("{extra:?}: held-out loss difference {eval_diff:e}");
    assert!(eval_diff < 1e-3, "held-out losses differ by {eval_diff}");
    let rows = std::fs::read_to_string(dir.path().join("two/metrics.jsonl")).unwrap();
    assert_eq!(rows.lines().filter(|l| l.contains("\"step\"")).count(), 22);
}

/// Two runs of two ranks that must agree bit for bit: the same losses at every step
/// and the same final parameters (e.g. the exchange overlapped with backward or after
/// it; ZeRO or not). `common` is given to both, `a` and `b` to one each. Returns the
/// step events of the first.
// Used by distributed.rs only; the two-namespace test shares this module.
#[allow(dead_code)]
pub fn two_rank_runs_agree_bitwise(
    common: &[&str],
    a: &[&str],
    b: &[&str],
    two_ranks: impl Fn(&str, Vec<String>) -> Output,
) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    let run = |name: &str, extra: &[&str]| {
        let all: Vec<&str> = common.iter().chain(extra).copied().collect();
        let out = two_ranks(rgrad, train_args(&data, &dir.path().join(name), 2, &all));
        events(out, name)
    };
    let (first, second) = (run("a", a), run("b", b));
    assert_eq!(losses(&first), losses(&second), "{a:?} vs {b:?}");
    let hash = |ev: &[Value]| ev.last().unwrap()["param_hash"].clone();
    assert!(hash(&first).is_string());
    assert_eq!(hash(&first), hash(&second), "{a:?} vs {b:?}");
    first.into_iter().filter(|e| e["event"] == "step").collect()
}
