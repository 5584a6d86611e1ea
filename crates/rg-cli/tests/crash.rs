//! SIGKILL while the trainer saves: every checkpoint directory is complete or absent,
//! and the latest one loads.
//!
//! The kills are aimed, not timed: the test watches the checkpoint directory and kills
//! the trainer once a save is seen in progress (a `.tmp-` entry), at a few offsets into
//! it. A wide, shallow model with one short row per step makes each save (about 80 MB
//! of model and optimizer state, fsynced) far longer than a step, so a fast machine
//! cannot finish the save between the sighting and the kill.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusty_gradients::gpt::checkpoint::{load_model_dir, read_json};
use rusty_gradients::gpt::retention::{complete_checkpoints, latest_checkpoint, CHECKPOINTS_DIR};
use rusty_gradients::Device;

/// Names under `<out>/checkpoints` that are interrupted writes.
fn leftovers(out: &Path) -> usize {
    std::fs::read_dir(out.join(CHECKPOINTS_DIR))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            })
            .count()
        })
        .unwrap_or(0)
}

fn spawn_trainer(out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(["train", "--steps", "100000", "--save-every", "1"])
        .args(["--eval-every", "0", "--log-format", "json"])
        .args(["--n-layer", "2", "--n-head", "8", "--n-embd", "768"])
        .args(["--batch-size", "1", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls until `ready` holds; kills the child and panics after `limit`.
fn wait_for(child: &mut Child, limit: Duration, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("waited {limit:?} for {what}");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the trainer exited ({status}) before {what}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn sigkill_while_saving_leaves_the_previous_complete_checkpoint() {
    const TRIALS: u64 = 4;
    let mut interrupted_saves = 0;
    for trial in 0..TRIALS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let mut child = spawn_trainer(&out);
        let limit = Duration::from_secs(120);
        wait_for(&mut child, limit, "a first complete checkpoint", || {
            complete_checkpoints(&out).is_ok_and(|c| !c.is_empty())
        });
        wait_for(&mut child, limit, "a save in progress", || {
            leftovers(&out) > 0
        });
        // Different offsets into the save: model file, optimizer file, commit.
        std::thread::sleep(Duration::from_millis(trial * trial * 4));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if leftovers(&out) > 0 {
            interrupted_saves += 1;
        }
        let complete = complete_checkpoints(&out).unwrap();
        assert!(
            !complete.is_empty(),
            "trial {trial}: no complete checkpoint"
        );
        for (step, dir) in &complete {
            let state = read_json(&dir.join("trainer_state.json")).unwrap();
            assert_eq!(
                state["step"].as_u64(),
                Some(*step as u64),
                "{}",
                dir.display()
            );
            for f in ["model.safetensors", "optimizer.safetensors", "config.json"] {
                assert!(
                    dir.join(f).is_file(),
                    "trial {trial}: {} lacks {f}",
                    dir.display()
                );
            }
        }
        let latest = latest_checkpoint(&out).unwrap().unwrap();
        assert_eq!(latest, complete.last().unwrap().1);
        load_model_dir(&latest, &Device::Cpu).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
    }
    println!("{interrupted_saves} of {TRIALS} kills landed inside a save");
    assert!(
        interrupted_saves > 0,
        "no kill interrupted a save; the test proved nothing"
    );
}
