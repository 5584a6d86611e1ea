//! Issue #18, training: Ctrl-C/SIGTERM leave a checkpoint that resumes bit-exactly,
//! the memory pre-flight refuses an impossible run at once and estimates a real one
//! within 25% of its peak RSS, and empty --data is an error that says so.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

fn rgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(args)
        .output()
        .expect("run rgrad")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn losses(lines: &[Value]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l["event"] == "step")
        .map(|l| l["loss"].as_f64().unwrap())
        .collect()
}

/// The built-in task, small and with a schedule that does not depend on --steps, so
/// a shorter uninterrupted run is the same run.
const TASK: &[&str] = &[
    "train",
    "--lr-schedule",
    "constant",
    "--warmup",
    "0",
    "--eval-every",
    "0",
    "--eval-iters",
    "1",
    "--log-format",
    "json",
];

/// Starts a long run, sends `signal` once step 4 is logged, and returns the exit code,
/// the JSON lines and stderr.
fn interrupted_run(out_dir: &str, signal: &str) -> (Option<i32>, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(TASK)
        .args(["--batch-size", "16", "--steps", "100000", "--out", out_dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut sent = false;
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if !sent && v["event"] == "step" && v["step"].as_u64().unwrap() >= 4 {
            let pid = child.id().to_string();
            assert!(Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success());
            sent = true;
        }
        lines.push(v);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ctrl_c_checkpoints_the_last_step_and_resume_continues_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("interrupted");
    let (code, lines, err) = interrupted_run(out_dir.to_str().unwrap(), "-INT");
    assert_eq!(code, Some(130), "{err}");
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done", "{lines:?}");
    assert_eq!(done["interrupted"], true);
    let stopped_at = done["steps"].as_u64().unwrap() as usize;
    assert!((4..100).contains(&stopped_at), "{stopped_at}");
    let ckpt = out_dir.join(format!("checkpoints/step-{stopped_at:06}"));
    assert!(ckpt.join("model.safetensors").is_file(), "{err}");
    assert!(
        err.contains(&format!(
            "resume with: rgrad train --resume {}",
            ckpt.display()
        )),
        "{err}"
    );

    // The same run uninterrupted, to 5 steps past the interruption.
    let total = (stopped_at + 5).to_string();
    let whole_dir = tmp.path().join("whole");
    let mut args = TASK.to_vec();
    args.extend_from_slice(&["--batch-size", "16", "--steps", &total]);
    args.extend_from_slice(&["--out", whole_dir.to_str().unwrap()]);
    let whole = rgrad(&args);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let whole = losses(&json_lines(&whole.stdout));

    let resumed_dir = tmp.path().join("resumed");
    let resumed = rgrad(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--steps",
        &total,
        "--log-format",
        "json",
        "--out",
        resumed_dir.to_str().unwrap(),
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let mut split = losses(&lines);
    assert_eq!(split.len(), stopped_at);
    split.extend(losses(&json_lines(&resumed.stdout)));
    assert_eq!(split.len(), whole.len());
    for (k, (a, b)) in split.iter().zip(&whole).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "step {}: interrupted+resumed {a} vs uninterrupted {b}",
            k + 1
        );
    }
}

#[test]
fn sigterm_also_checkpoints_and_exits_143() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let (code, lines, err) = interrupted_run(out_dir.to_str().unwrap(), "-TERM");
    assert_eq!(code, Some(143), "{err}");
    let stopped_at = lines.last().unwrap()["steps"].as_u64().unwrap();
    assert!(out_dir
        .join(format!(
            "checkpoints/step-{stopped_at:06}/model.safetensors"
        ))
        .is_file());
    assert!(err.contains("SIGTERM: stopped after step"), "{err}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_last_complete_checkpoint_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(TASK)
        .args([
            "--batch-size",
            "16",
            "--steps",
            "100000",
            "--save-every",
            "2",
        ])
        .args(["--out", out_dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let pid = child.id().to_string();
    let mut sent = false;
    // Read to the end: a closed pipe would make the run fail on its next line.
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if !sent && v["event"] == "step" && v["step"].as_u64().unwrap() >= 4 {
            for _ in 0..2 {
                Command::new("kill").args(["-INT", &pid]).status().unwrap();
            }
            sent = true;
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // The run directory resolves to its newest complete checkpoint (an interrupted
    // write is a `.tmp-` directory that is never picked).
    let out = rgrad(&[
        "generate",
        "--model",
        out_dir.to_str().unwrap(),
        "--prompt",
        "12+34=",
        "--max-new-tokens",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn preflight_refuses_an_impossible_run_at_once() {
    let start = Instant::now();
    // GPT-2 XL with 4096 rows per batch needs hundreds of GiB.
    let out = rgrad(&[
        "train",
        "--config",
        "gpt2-xl",
        "--batch-size",
        "4096",
        "--steps",
        "1",
    ]);
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("1477.") && err.contains("parameters"), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: not enough memory: this run needs about")
            && last.contains("available")
            && last.contains("--batch-size")
            && last.contains("--dtype bf16")
            && last.contains("--force"),
        "{err}"
    );
    assert!(
        elapsed < 2.0,
        "took {elapsed:.2}s: it must refuse before allocating"
    );
}

#[test]
fn preflight_estimate_is_within_25_percent_of_the_peak_rss() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let mut args = TASK.to_vec();
    args.extend_from_slice(&[
        "--batch-size",
        "64",
        "--steps",
        "5",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let out = rgrad(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out.stdout);
    let estimate = lines[0]["memory_estimate_bytes"].as_f64().unwrap();
    assert_eq!(lines[0]["event"], "preflight");
    assert!(lines[0]["params"].as_u64().unwrap() > 0);
    let Some(peak) = lines.last().unwrap()["peak_rss_bytes"].as_f64() else {
        return; // no /proc: nothing to compare with
    };
    let ratio = estimate / peak;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "estimate {estimate} vs peak RSS {peak}: ratio {ratio:.2}"
    );
}

#[test]
fn empty_or_whitespace_data_is_an_error_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let blank = tmp.path().join("blank.txt");
    std::fs::write(&blank, " \n\t\n").unwrap();
    let dir = tmp.path().join("texts");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "\n").unwrap();
    std::fs::write(dir.join("b.txt"), "").unwrap();
    for (path, says) in [
        (&empty, "the file is empty"),
        (&blank, "the file is only whitespace"),
        (
            &dir,
            "the *.txt files in this directory are only whitespace",
        ),
    ] {
        let out = rgrad(&["train", "--data", path.to_str().unwrap(), "--steps", "1"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: --data {}: {says}", path.display())),
            "{err}"
        );
    }
}

/// `rgrad train --log-format json | head -1`: the reader goes away after the first
/// line; the run must still finish, keep its checkpoint and write every step to
/// `metrics.jsonl`, saying once on stderr that stdout is gone.
#[test]
fn a_closed_stdout_does_not_end_training() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(["train", "--steps", "20", "--log-format", "json", "--out"])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the next write gets EPIPE.
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(first.contains("\"event\":\"preflight\""), "{first}");
    assert_eq!(err.matches("cannot write the JSON log").count(), 1, "{err}");
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    let steps = metrics.lines().filter(|l| l.contains("\"step\"")).count();
    assert!(
        steps >= 20,
        "metrics.jsonl has {steps} step lines:\n{metrics}"
    );
    assert!(out_dir.join("checkpoints").is_dir());
}
