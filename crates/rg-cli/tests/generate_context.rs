//! Issue #18, generation: a 64-token model writes 500 tokens by sliding its window
//! (or stops at it with --no-slide, saying so), and prompt characters outside a char
//! vocabulary are an error that names them (or dropped with --skip-unknown).

use std::path::Path;
use std::process::{Command, Output};

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

/// A char model with a 64-token context, trained for two steps on a short text.
fn char_model(dir: &Path) -> String {
    let data = dir.join("text.txt");
    let text = "ROMEO: But soft, what light through yonder window breaks?\n".repeat(40);
    std::fs::write(&data, text).unwrap();
    let out_dir = dir.join("run");
    #[rustfmt::skip]
    let out = rgrad(&[
        "train", "--data", data.to_str().unwrap(), "--block-size", "64", "--n-layer", "1",
        "--n-embd", "32", "--n-head", "2", "--batch-size", "2", "--steps", "2",
        "--eval-iters", "1", "--log-format", "json", "--out", out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    out_dir.to_str().unwrap().to_string()
}

fn generate_json(model: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "generate", "--model", model, "--format", "json", "--seed", "3",
    ];
    args.extend_from_slice(extra);
    let out = rgrad(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_64_token_model_writes_500_tokens_by_sliding_and_stops_with_no_slide() {
    let tmp = tempfile::tempdir().unwrap();
    let model = char_model(tmp.path());

    let slid = generate_json(&model, &["--prompt", "ROMEO:", "--max-new-tokens", "500"]);
    assert_eq!(slid["generated_ids"].as_array().unwrap().len(), 500);
    assert_eq!(slid["text"].as_str().unwrap().chars().count(), 500);
    assert_eq!(slid["context_length"], 64);
    assert_eq!(slid["stopped_at_context"], false);
    // 6 prompt tokens, then 499 fed ones (the last new token is not fed): the 59th fed
    // token finds the window of 64 full and slides it to its newest 32; from then on
    // 32 more fill it and every 33rd slides it again.
    let slides = slid["context_slides"].as_u64().unwrap();
    assert_eq!(slides, 1 + (499 - 59) / 33, "{slid}");

    let stopped = generate_json(
        &model,
        &[
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "500",
            "--no-slide",
        ],
    );
    // The 6-token prompt and 58 fed tokens fill the window; the 59th is its last.
    assert_eq!(stopped["generated_ids"].as_array().unwrap().len(), 59);
    assert_eq!(stopped["stopped_at_context"], true);
    assert_eq!(stopped["context_slides"], 0);

    // The text output says on stderr what happened to the context.
    let out = rgrad(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("the window slid"), "{}", stderr(&out));
    let out = rgrad(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "100",
        "--no-slide",
    ]);
    assert!(
        stderr(&out).contains("stopped at the context of 64 tokens after 59 of 100"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn prompt_characters_outside_the_vocabulary_are_named_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let model = char_model(tmp.path());
    let out = rgrad(&["generate", "--model", &model, "--prompt", "ROMEO: ü{"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("--prompt: characters not in the model's vocabulary: 'ü' (U+00FC), '{'"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let skipped = rgrad(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "ROMEO: ü{",
        "--skip-unknown",
        "--max-new-tokens",
        "4",
        "--format",
        "json",
    ]);
    assert!(skipped.status.success(), "{}", stderr(&skipped));
    assert!(stderr(&skipped).contains("warning: --prompt: dropped 2 characters"));
    let json: Value = serde_json::from_slice(&skipped.stdout).unwrap();
    // "ROMEO: " is 7 characters of the vocabulary.
    assert_eq!(json["prompt_ids"].as_array().unwrap().len(), 7);
}

#[test]
fn fine_tuning_data_outside_the_init_vocabulary_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = char_model(tmp.path());
    let checkpoint = std::fs::read_dir(Path::new(&model).join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "best")
        .unwrap();
    let data = tmp.path().join("new.txt");
    std::fs::write(&data, "ROMEO: {ü} and ROMEO\n".repeat(100)).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--init",
            checkpoint.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--eval-iters",
            "1",
            "--log-format",
            "json",
        ];
        let out_dir = tmp.path().join("ft");
        args.extend_from_slice(&["--out", out_dir.to_str().unwrap()]);
        args.extend_from_slice(extra);
        rgrad(&args)
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("--data: characters not in the model's vocabulary: '{', 'ü' (U+00FC), '}'"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--skip-unknown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: --data: dropped 300 characters"));
}
