//! Checkpoints under `mpirun -n 2`: 10 steps straight equal 5 + `--resume` + 5 bit for
//! bit, with and without `--zero 1` (each rank saves its optimizer shard); a `--zero 1`
//! checkpoint resumed by another world size is refused naming both; killing a rank ends
//! the job quickly with a message naming it, and the last checkpoint resumes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod mpi_support;
use mpi_support::{mpirun, shared_text, skip_reason};

fn args(data: &Path, out: &Path, steps: usize, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
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
        "--sampler",
        "random",
        "--dropout",
        "0.1",
        "--eval-every",
        "0",
        "--batch-size",
        "2",
        "--lr",
        "1e-2",
        "--warmup",
        "2",
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["--data".into(), data.display().to_string()]);
    a.extend(["--out".into(), out.display().to_string()]);
    a.extend(["--steps".into(), steps.to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn step_losses(out: std::process::Output) -> Vec<u64> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "step")
        .map(|e| e["loss"].as_f64().unwrap().to_bits())
        .collect()
}

/// 10 steps straight against 5 + `--resume` + 5, both under `mpirun -n 2` with `extra`.
fn check_resume(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    // A constant rate: the cosine schedule depends on --steps, which differs between
    // the 5-step run and its continuation.
    let mut settings = vec!["--lr-schedule", "constant"];
    settings.extend(extra);
    let straight = dir.path().join("straight");
    let all = step_losses(
        mpirun(2)
            .arg(rgrad)
            .args(args(&data, &straight, 10, &settings))
            .output()
            .unwrap(),
    );
    assert_eq!(all.len(), 10);
    let split = dir.path().join("split");
    let first = step_losses(
        mpirun(2)
            .arg(rgrad)
            .args(args(&data, &split, 5, &settings))
            .output()
            .unwrap(),
    );
    assert_eq!(first, all[..5]);
    let ckpt = split.join("checkpoints/step-000005");
    let zero = extra.contains(&"--zero");
    for rank in 0..2 {
        let shard = ckpt.join(format!("optimizer-rank-{rank}-of-2.safetensors"));
        assert_eq!(shard.is_file(), zero, "{}", shard.display());
    }
    assert_eq!(ckpt.join("optimizer.safetensors").is_file(), !zero);
    let mut resume = vec!["--resume", ckpt.to_str().unwrap()];
    resume.extend(&settings);
    let rest = step_losses(
        mpirun(2)
            .arg(rgrad)
            .args(args(&data, &split, 10, &resume))
            .output()
            .unwrap(),
    );
    assert_eq!(
        rest,
        all[5..],
        "{extra:?}: resumed losses differ from the uninterrupted run"
    );
}

#[test]
fn resuming_under_mpirun_continues_bit_exactly() {
    if skip_reason().is_none() {
        check_resume(&[]);
    }
}

#[test]
fn resuming_with_zero_stage_1_continues_bit_exactly() {
    if skip_reason().is_none() {
        check_resume(&["--zero", "1"]);
    }
}

#[test]
fn a_zero_checkpoint_is_refused_by_another_world_size_naming_both() {
    if skip_reason().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    let out = dir.path().join("zero");
    let first = mpirun(2)
        .arg(rgrad)
        .args(args(&data, &out, 3, &["--zero", "1"]))
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let ckpt = out.join("checkpoints/step-000003");
    let resume = ["--resume", ckpt.to_str().unwrap(), "--zero", "1"];
    // One process: a world of one.
    let again = Command::new(rgrad)
        .args(args(&data, &out, 6, &resume))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an error, not a panic: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("--zero 1 run of 2 ranks"), "{stderr}");
    assert!(stderr.contains("this run has 1 rank"), "{stderr}");
}

/// The process of `rank` among `mpirun`'s children (OpenMPI sets the rank in each
/// child's environment).
fn rank_pid(mpirun_pid: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Field 4 is the parent pid; the command name (field 2) may hold spaces.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(mpirun_pid) {
            continue;
        }
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killing_a_rank_ends_the_job_naming_it_and_the_last_checkpoint_resumes() {
    if skip_reason().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    let out = dir.path().join("fault");
    let mut job = mpirun(2)
        .arg(rgrad)
        .args(args(&data, &out, 100_000, &["--save-every", "2"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !out.join("checkpoints/step-000004").exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = rank_pid(job.id(), 1).expect("rank 1 among mpirun's children");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let output = loop {
        if job.try_wait().unwrap().is_some() {
            break job.wait_with_output().unwrap();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the job outlived its rank by 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "job ended {:.1} s after rank 1 was killed",
        killed.elapsed().as_secs_f64()
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rank 1"), "{stderr}");

    // Every step directory present is complete (written atomically); the newest resumes.
    let mut steps: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") && !n.contains(".tmp"))
        .collect();
    steps.sort();
    let last = steps.last().unwrap();
    let step: usize = last["step-".len()..].parse().unwrap();
    let ckpt = out.join("checkpoints").join(last);
    let resume = ["--resume", ckpt.to_str().unwrap()];
    let resumed = step_losses(
        mpirun(2)
            .arg(rgrad)
            .args(args(&data, &out, step + 2, &resume))
            .output()
            .unwrap(),
    );
    assert_eq!(resumed.len(), 2);
}

#[test]
fn a_checkpoint_that_rank_0_cannot_write_ends_every_rank_with_an_error() {
    if skip_reason().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = shared_text(dir.path());
    let rgrad = env!("CARGO_BIN_EXE_rgrad");
    for zero in [&[][..], &["--zero", "1"][..]] {
        let out = dir.path().join(format!("blocked-{}", zero.len()));
        std::fs::create_dir_all(&out).unwrap();
        // A file where the checkpoints directory goes: every write into it fails.
        std::fs::write(out.join("checkpoints"), b"not a directory").unwrap();
        let mut job = mpirun(2)
            .arg(rgrad)
            .args(args(&data, &out, 2, zero))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let output = loop {
            if job.try_wait().unwrap().is_some() {
                break job.wait_with_output().unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{zero:?}: a rank waited forever after the failed write"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{zero:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{zero:?}: {stderr}");
        assert!(stderr.contains("rank 0 of 2"), "{zero:?}: {stderr}");
        assert!(stderr.contains("checkpoints"), "{zero:?}: {stderr}");
    }
}
