//! `rgrad inspect` and `rgrad convert`, end to end through the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusty_gradients::core::bf16;
use rusty_gradients::io::{serialize_safetensors, SafeTensorsFile, StoredDType, TensorEntry};
use serde_json::Value;

fn rgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rgrad"))
        .args(args)
        .output()
        .expect("run rgrad")
}

fn ok(args: &[&str]) -> String {
    let out = rgrad(args);
    assert!(
        out.status.success(),
        "rgrad {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The gpt2-tiny fixture model directory, or `None` (with the reason printed) when
/// the shared data is absent; under CI its absence is a failure.
fn fixture_model() -> Option<PathBuf> {
    let dir = std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let model = dir.join("fixtures/gpt2-tiny/model");
    if model.join("model.safetensors").is_file() {
        return Some(model);
    }
    let reason = format!(
        "skipped: fixture not found at {} (set RG_SHARED_DIR)",
        model.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason}; CI must have it"
    );
    println!("{reason}");
    None
}

/// Exit code 1 and a single `error: ...` line on stderr containing every needle.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

fn f32_values(file: &SafeTensorsFile, name: &str) -> Vec<f32> {
    let bytes = file.raw_bytes(name).unwrap();
    assert_eq!(file.get(name).unwrap().dtype(), StoredDType::F32);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (name, shape) of every tensor, sorted.
fn names_and_shapes(file: &SafeTensorsFile) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<_> = file
        .tensors()
        .iter()
        .map(|t| (t.name().to_string(), t.shape().to_vec()))
        .collect();
    v.sort();
    v
}

fn greedy_ids(model: &Path) -> Vec<u64> {
    let out = ok(&[
        "generate",
        "--model",
        s(model),
        "--prompt",
        "Hello there, world",
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(out.trim()).expect("generate json");
    v["generated_ids"]
        .as_array()
        .expect("generated_ids")
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn inspect_lists_fixture_tensors() {
    let Some(model) = fixture_model() else { return };
    let out = ok(&["inspect", s(&model.join("model.safetensors"))]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("transformer.wte.weight F32 [50257, 32]")),
        "{out}"
    );
    assert!(out.contains("metadata: format=pt"), "{out}");
    let total = out.lines().last().unwrap();
    assert!(total.starts_with("total: 28 tensors, "), "{total}");

    // A directory adds the config summary, and a checkpoint its step.
    let out = ok(&["inspect", s(&model)]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("config: 2 layers, 2 heads, n_embd 32")),
        "{out}"
    );
    let tmp = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(name), tmp.path().join(name)).unwrap();
    }
    std::fs::write(tmp.path().join("trainer_state.json"), r#"{"step": 7}"#).unwrap();
    let out = ok(&["inspect", s(tmp.path())]);
    assert!(out.lines().any(|l| l == "trainer_state: step 7"), "{out}");
    let v: Value =
        serde_json::from_str(&ok(&["inspect", s(tmp.path()), "--format", "json"])).unwrap();
    assert_eq!(v["step"], 7);
}

#[test]
fn inspect_json_is_one_object() {
    let Some(model) = fixture_model() else { return };
    let out = ok(&["inspect", s(&model), "--format", "json"]);
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).expect("inspect json");
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 28);
    let wte = tensors
        .iter()
        .find(|t| t["name"] == "transformer.wte.weight")
        .unwrap();
    assert_eq!(wte["dtype"], "F32");
    assert_eq!(wte["shape"], serde_json::json!([50257, 32]));
    assert_eq!(wte["bytes"], 50257 * 32 * 4);
    let params: u64 = tensors
        .iter()
        .map(|t| t["parameters"].as_u64().unwrap())
        .sum();
    assert_eq!(v["total"]["parameters"], params);
    assert_eq!(v["total"]["tensors"], 28);
    assert_eq!(v["config"]["n_layer"], 2);
    assert_eq!(v["metadata"]["format"], "pt");
}

#[test]
fn bf16_round_trip_keeps_names_shapes_and_values() {
    let Some(model) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (half, back) = (tmp.path().join("bf16"), tmp.path().join("f32"));
    ok(&[
        "convert",
        "--input",
        s(&model),
        "--output",
        s(&half),
        "--dtype",
        "bf16",
    ]);
    ok(&[
        "convert",
        "--input",
        s(&half),
        "--output",
        s(&back),
        "--dtype",
        "f32",
    ]);

    let orig = SafeTensorsFile::open(model.join("model.safetensors")).unwrap();
    let half_file = SafeTensorsFile::open(half.join("model.safetensors")).unwrap();
    let back_file = SafeTensorsFile::open(back.join("model.safetensors")).unwrap();
    assert!(half_file
        .tensors()
        .iter()
        .all(|t| t.dtype() == StoredDType::BF16));
    assert_eq!(names_and_shapes(&orig), names_and_shapes(&back_file));
    assert_eq!(names_and_shapes(&orig), names_and_shapes(&half_file));
    for name in orig.names() {
        let (a, b) = (f32_values(&orig, name), f32_values(&back_file, name));
        for (&x, &y) in a.iter().zip(&b) {
            // bf16 keeps 8 significant bits: rounding to nearest errs by at most half
            // a unit in the last place, 2^-8 relative; and it is half's rounding.
            assert!(
                (x - y).abs() <= x.abs() * 2f32.powi(-8),
                "{name}: {x} -> {y}"
            );
            assert_eq!(y, bf16::from_f32(x).to_f32(), "{name}: {x}");
        }
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(half.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    assert!(half.join("tokenizer.json").is_file());
    // The bf16 directory is a model rgrad runs.
    assert_eq!(greedy_ids(&half).len(), 12);
}

#[test]
fn plain_layout_back_to_hf_generates_the_same_ids() {
    let Some(model) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (plain, hf) = (tmp.path().join("plain"), tmp.path().join("hf"));
    ok(&[
        "convert",
        "--input",
        s(&model),
        "--output",
        s(&plain),
        "--layout",
        "plain",
    ]);
    let plain_file = SafeTensorsFile::open(plain.join("model.safetensors")).unwrap();
    assert!(plain_file.get("wte.weight").is_some());
    assert!(plain_file.names().all(|n| !n.starts_with("transformer.")));
    ok(&[
        "convert",
        "--input",
        s(&plain),
        "--output",
        s(&hf),
        "--layout",
        "hf",
    ]);
    // Back in the Hugging Face layout, the file is the original byte for byte.
    let orig = std::fs::read(model.join("model.safetensors")).unwrap();
    let again = std::fs::read(hf.join("model.safetensors")).unwrap();
    assert!(orig == again, "hf -> plain -> hf changed model.safetensors");
    assert_eq!(greedy_ids(&hf), greedy_ids(&model));
}

/// Older Hugging Face GPT-2 files carry `attn.bias` / `attn.masked_bias` buffers and
/// an explicit tied `lm_head.weight`; convert drops them, and an untied head is
/// refused.
#[test]
fn hf_buffers_are_dropped_and_an_untied_head_refused() {
    let Some(model) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for name in ["config.json", "tokenizer.json", "vocab.json", "merges.txt"] {
        std::fs::copy(model.join(name), old.join(name)).unwrap();
    }
    let orig = SafeTensorsFile::open(model.join("model.safetensors")).unwrap();
    let mask: Vec<u8> = (0..64 * 64)
        .flat_map(|i| f32::from(u8::from(i % 64 <= i / 64)).to_le_bytes())
        .collect();
    let write_old = |head: &[u8]| {
        let mut entries: Vec<TensorEntry> = orig
            .tensors()
            .iter()
            .map(|t| {
                TensorEntry::new(
                    t.name(),
                    t.dtype(),
                    t.shape().to_vec(),
                    orig.raw_bytes(t.name()).unwrap(),
                )
            })
            .collect();
        for i in 0..2 {
            entries.push(TensorEntry::new(
                format!("transformer.h.{i}.attn.bias"),
                StoredDType::F32,
                vec![1, 1, 64, 64],
                mask.as_slice(),
            ));
            entries.push(TensorEntry::new(
                format!("transformer.h.{i}.attn.masked_bias"),
                StoredDType::F32,
                vec![],
                (-1e4f32).to_le_bytes().to_vec(),
            ));
        }
        entries.push(TensorEntry::new(
            "lm_head.weight",
            StoredDType::F32,
            vec![50257, 32],
            head.to_vec(),
        ));
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let bytes = serialize_safetensors(entries, &meta).unwrap();
        std::fs::write(old.join("model.safetensors"), bytes).unwrap();
    };

    write_old(orig.raw_bytes("transformer.wte.weight").unwrap());
    let out_dir = tmp.path().join("converted");
    let report = ok(&[
        "convert",
        "--input",
        s(&old),
        "--output",
        s(&out_dir),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["dropped"].as_array().unwrap().len(), 5);
    let converted = SafeTensorsFile::open(out_dir.join("model.safetensors")).unwrap();
    assert_eq!(names_and_shapes(&converted), names_and_shapes(&orig));
    assert_eq!(greedy_ids(&out_dir), greedy_ids(&model));

    let mut untied = orig.raw_bytes("transformer.wte.weight").unwrap().to_vec();
    untied[0] ^= 1;
    write_old(&untied);
    let refused = tmp.path().join("refused");
    let out = rgrad(&["convert", "--input", s(&old), "--output", s(&refused)]);
    assert_one_line_error(&out, &["model.safetensors", "lm_head.weight", "untied"]);
    assert!(!refused.exists());
}

#[test]
fn single_file_conversion() {
    let Some(model) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("sub/model-f16.safetensors");
    let input = model.join("model.safetensors");
    ok(&[
        "convert",
        "--input",
        s(&input),
        "--output",
        s(&out_file),
        "--dtype",
        "f16",
    ]);
    let listing = ok(&["inspect", s(&out_file)]);
    assert!(
        listing.contains("transformer.wte.weight F16 [50257, 32] 3216448 bytes"),
        "{listing}"
    );
    // Without --overwrite an existing output is left alone; with it, replaced.
    let again = [
        "convert",
        "--input",
        s(&input),
        "--output",
        s(&out_file),
        "--dtype",
        "bf16",
    ];
    assert_one_line_error(&rgrad(&again), &[s(&out_file), "--overwrite"]);
    let mut with_overwrite = again.to_vec();
    with_overwrite.push("--overwrite");
    ok(&with_overwrite);
    assert!(ok(&["inspect", s(&out_file)]).contains("transformer.wte.weight BF16"));
    // A directory never replaces a file.
    let out = rgrad(&[
        "convert",
        "--input",
        s(&model),
        "--output",
        s(&out_file),
        "--overwrite",
    ]);
    assert_one_line_error(&out, &["model-f16.safetensors", "is a file"]);
    assert!(ok(&["inspect", s(&out_file)]).contains("transformer.wte.weight BF16"));
}

/// A small valid safetensors image (no fixture needed).
fn small_file() -> Vec<u8> {
    let values: Vec<u8> = (0..24).flat_map(|i| (i as f32).to_le_bytes()).collect();
    serialize_safetensors(
        [TensorEntry::new(
            "layer.weight",
            StoredDType::F32,
            vec![4, 6],
            values,
        )],
        &BTreeMap::new(),
    )
    .unwrap()
}

#[test]
fn malformed_input_gives_one_line_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = small_file();

    // Truncated inside the data: the reader names the file and the tensor.
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() - 10]).unwrap();
    let out = rgrad(&["inspect", s(&truncated)]);
    assert_one_line_error(&out, &["truncated.safetensors", "layer.weight"]);
    let out = rgrad(&[
        "convert",
        "--input",
        s(&truncated),
        "--output",
        s(&tmp.path().join("x.safetensors")),
    ]);
    assert_one_line_error(&out, &["truncated.safetensors", "layer.weight"]);
    assert!(!tmp.path().join("x.safetensors").exists());

    // Truncated inside the 8-byte header length.
    let stub = tmp.path().join("stub.safetensors");
    std::fs::write(&stub, &good[..5]).unwrap();
    assert_one_line_error(&rgrad(&["inspect", s(&stub)]), &["stub.safetensors"]);

    // Missing paths.
    let missing = tmp.path().join("no-such-model");
    assert_one_line_error(&rgrad(&["inspect", s(&missing)]), &["no-such-model"]);
    let out = rgrad(&[
        "convert",
        "--input",
        s(&missing),
        "--output",
        s(&tmp.path().join("out")),
    ]);
    assert_one_line_error(&out, &["--input", "no-such-model"]);

    // A directory without model files.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_one_line_error(
        &rgrad(&["inspect", s(&empty)]),
        &["empty/model.safetensors"],
    );
    let out = rgrad(&[
        "convert",
        "--input",
        s(&empty),
        "--output",
        s(&tmp.path().join("out")),
    ]);
    assert_one_line_error(&out, &["empty/config.json"]);
    assert!(!tmp.path().join("out").exists());

    // Bad flag values name the flag.
    let file = tmp.path().join("good.safetensors");
    std::fs::write(&file, &good).unwrap();
    let out = rgrad(&[
        "convert",
        "--input",
        s(&file),
        "--output",
        s(&tmp.path().join("y.safetensors")),
        "--dtype",
        "f8",
    ]);
    assert_one_line_error(&out, &["--dtype", "f8"]);
    assert_one_line_error(
        &rgrad(&["inspect", s(&file), "--format", "yaml"]),
        &["--format"],
    );

    // The input is never overwritten, nor a directory holding it.
    let out = rgrad(&["convert", "--input", s(&file), "--output", s(&file)]);
    assert_one_line_error(&out, &["good.safetensors", "is the input"]);
    let out = rgrad(&[
        "convert",
        "--input",
        s(&file),
        "--output",
        s(tmp.path()),
        "--overwrite",
    ]);
    assert_one_line_error(&out, &["holds the input"]);
    assert_eq!(std::fs::read(&file).unwrap(), good);
}

/// A directory whose weights do not fit its config fails before anything is
/// written: the output is absent and no temporary is left behind.
#[test]
fn failed_directory_conversion_leaves_nothing() {
    let Some(model) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for name in ["tokenizer.json", "vocab.json", "merges.txt"] {
        std::fs::copy(model.join(name), bad.join(name)).unwrap();
    }
    // The config asks for 3 layers; the weights have 2.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    config["n_layer"] = 3.into();
    std::fs::write(bad.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        model.join("model.safetensors"),
        bad.join("model.safetensors"),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let out = rgrad(&["convert", "--input", s(&bad), "--output", s(&out_dir)]);
    assert_one_line_error(
        &out,
        &["bad/model.safetensors", "missing tensor", "h.2.ln_1.weight"],
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["bad"], "only the input remains");
}
