//! SIGKILL while the trainer saves: every checkpoint directory is complete or absent,
//! and the latest one loads.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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

#[test]
fn sigkill_while_saving_leaves_the_previous_complete_checkpoint() {
    let mut interrupted_saves = 0;
    for trial in 0..8u64 {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        // Saving every step keeps the trainer inside a save most of the time.
        let mut child = Command::new(env!("CARGO_BIN_EXE_rgrad"))
            .args([
                "train",
                "--steps",
                "100000",
                "--save-every",
                "1",
                "--eval-every",
                "0",
                "--log-format",
                "json",
            ])
            .args(["--batch-size", "8", "--out", out.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1200 + 137 * trial));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if leftovers(&out) > 0 {
            interrupted_saves += 1;
        }
        let complete = complete_checkpoints(&out).unwrap();
        assert!(
            !complete.is_empty(),
            "trial {trial}: no checkpoint completed before the kill"
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
    println!("{interrupted_saves} of 8 kills landed inside a save");
    assert!(
        interrupted_saves > 0,
        "no kill interrupted a save; the test proved nothing"
    );
}
