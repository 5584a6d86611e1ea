//! `rgrad train --collectives`, end to end in whatever build runs the tests: a backend
//! the build lacks, NCCL on the CPU or a world of one under a launcher of several ranks
//! is a one-line error naming the flag; the `done` event says what a run used.

use std::process::{Command, Output};

use serde_json::Value;

fn rgrad(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rgrad"));
    // The tests' own environment may come from a launcher (CI under mpirun).
    for var in [
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "PMI_SIZE",
        "PMI_RANK",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("run rgrad")
}

/// Exit code 1 and a single `error: ...` line on stderr containing every needle.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} missing: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const ONE_STEP: &[&str] = &["train", "--steps", "1", "--out"];

fn one_step(out_dir: &str, more: &[&str]) -> Vec<String> {
    ONE_STEP
        .iter()
        .chain(&[out_dir])
        .chain(more)
        .map(|s| s.to_string())
        .collect()
}

fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rgrad(&args, env)
}

#[test]
fn nccl_is_refused_by_name_where_it_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = out.to_str().unwrap();
    let nccl_cpu = run(&one_step(out, &["--collectives", "nccl"]), &[]);
    if cfg!(feature = "nccl") {
        assert_one_line_error(&nccl_cpu, &["--collectives nccl", "--device cpu"]);
    } else {
        assert_one_line_error(&nccl_cpu, &["--collectives nccl", "--features nccl"]);
        let nccl_cuda = run(
            &one_step(out, &["--collectives", "nccl", "--device", "cuda"]),
            &[],
        );
        assert_one_line_error(&nccl_cuda, &["--collectives nccl", "--features nccl"]);
    }
    assert!(!tmp.path().join("run").exists(), "nothing may be written");
}

#[test]
fn auto_with_nccl_and_no_gpu_says_what_it_chose() {
    if !cfg!(feature = "nccl") || rusty_gradients::dist::find_libnccl().is_ok() {
        eprintln!("skipped: needs a build with nccl on a machine without NCCL");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = run(&one_step(out.to_str().unwrap(), &["--device", "cuda"]), &[]);
    assert_one_line_error(&out, &["--collectives auto chose nccl", "nccl: "]);
}

#[test]
fn mpi_without_the_feature_names_the_rebuild() {
    if cfg!(feature = "mpi") {
        eprintln!("skipped: this build has MPI");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = run(
        &one_step(out.to_str().unwrap(), &["--collectives", "mpi"]),
        &[],
    );
    assert_one_line_error(&out, &["--collectives mpi", "--features mpi"]);
}

#[test]
fn single_under_a_launcher_of_two_ranks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = run(
        &one_step(out.to_str().unwrap(), &["--collectives", "single"]),
        &[("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_RANK", "0")],
    );
    assert_one_line_error(&out, &["--collectives single", "2 ranks"]);
}

#[test]
fn the_done_event_names_the_device_and_the_collectives() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = run(
        &one_step(
            out_dir.to_str().unwrap(),
            &["--collectives", "single", "--log-format", "json"],
        ),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let done: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["collectives"], "single");
    assert_eq!(done["device"], "cpu");
    assert_eq!(done["world_size"], 1);
}
