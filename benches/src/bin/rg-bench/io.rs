//! Rows outside the tensor math: GPT-2 tokenizer encode speed and safetensors open time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use rusty_gradients::io::{save_safetensors, SafeTensorsFile};
use rusty_gradients::tokenize::load_tokenizer;
use rusty_gradients::{DType, Device, Tensor};

use crate::{Measured, Outcome, Reps};

/// `RG_SHARED_DIR`, else `shared/` beside the workspace (`../shared` from its root).
fn shared_dir() -> PathBuf {
    match std::env::var_os("RG_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Single-thread GPT-2 byte-level BPE encode of Tiny Shakespeare; work is its bytes.
pub fn tokenizer_encode(size: &str, reps: &Reps) -> Result<Outcome> {
    if size != "tinyshakespeare" {
        bail!("tokenizer_encode size is tinyshakespeare");
    }
    let data = shared_dir().join("data");
    let (text_path, tok_path) = (
        data.join("tinyshakespeare.txt"),
        data.join("gpt2-tokenizer"),
    );
    if !text_path.is_file() || !tok_path.is_dir() {
        return Ok(Outcome::Skipped(format!(
            "{} or {} is absent (set RG_SHARED_DIR)",
            text_path.display(),
            tok_path.display()
        )));
    }
    let text = std::fs::read_to_string(&text_path)?;
    let tokenizer = load_tokenizer(&tok_path)?;
    let times = reps.run(|| {
        std::hint::black_box(tokenizer.encode(&text));
        Ok(())
    })?;
    Ok(Outcome::Measured(Measured::new(
        times,
        text.len() as f64,
        "byte",
    )))
}

/// GPT-2 124M's tensors as its safetensors files name and shape them (LM head tied).
fn gpt2_shapes() -> Vec<(String, Vec<usize>)> {
    let c = 768;
    let mut out = vec![
        ("wte.weight".to_string(), vec![50257, c]),
        ("wpe.weight".to_string(), vec![1024, c]),
        ("ln_f.weight".to_string(), vec![c]),
        ("ln_f.bias".to_string(), vec![c]),
    ];
    for i in 0..12 {
        let layer: [(&str, Vec<usize>); 12] = [
            ("ln_1.weight", vec![c]),
            ("ln_1.bias", vec![c]),
            ("attn.c_attn.weight", vec![c, 3 * c]),
            ("attn.c_attn.bias", vec![3 * c]),
            ("attn.c_proj.weight", vec![c, c]),
            ("attn.c_proj.bias", vec![c]),
            ("ln_2.weight", vec![c]),
            ("ln_2.bias", vec![c]),
            ("mlp.c_fc.weight", vec![c, 4 * c]),
            ("mlp.c_fc.bias", vec![4 * c]),
            ("mlp.c_proj.weight", vec![4 * c, c]),
            ("mlp.c_proj.bias", vec![c]),
        ];
        out.extend(layer.into_iter().map(|(n, s)| (format!("h.{i}.{n}"), s)));
    }
    out
}

/// Opening a GPT-2 124M-sized safetensors file (about 500 MB of f32, page cache warm)
/// and taking every tensor as a CPU `Tensor` (f32 maps without copying). Work is the
/// file's bytes, so the rate says how close "open" is to free. The file holds zeros:
/// opening does not look at values, and random weights would only slow the set-up.
pub fn safetensors_open(size: &str, reps: &Reps) -> Result<Measured> {
    if size != "124M" {
        bail!("safetensors_open size is 124M");
    }
    let dir = std::env::temp_dir().join(format!("rg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model.safetensors");
    let result = (|| -> Result<Measured> {
        {
            let tensors = gpt2_shapes()
                .into_iter()
                .map(|(name, shape)| Ok((name, Tensor::zeros(shape, DType::F32, &Device::Cpu)?)))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
            save_safetensors(&path, &refs, &BTreeMap::new())?;
        }
        let bytes = std::fs::metadata(&path)?.len() as f64;
        let times = reps.run(|| {
            let file = SafeTensorsFile::open(&path)?;
            for info in file.tensors() {
                std::hint::black_box(file.tensor(info.name(), &Device::Cpu)?);
            }
            Ok(())
        })?;
        Ok(Measured::new(times, bytes, "byte"))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
