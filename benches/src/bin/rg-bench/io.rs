//! Rows outside the tensor math: GPT-2 tokenizer encode speed and safetensors open time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use rusty_gradients::gpt::{Gpt, GptConfig};
use rusty_gradients::io::{save_safetensors, SafeTensorsFile};
use rusty_gradients::nn::Module;
use rusty_gradients::tokenize::load_tokenizer;
use rusty_gradients::Device;

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

/// Opening a GPT-2 124M-sized safetensors file (about 500 MB of f32, page cache warm)
/// and taking every tensor as a CPU `Tensor` (f32 maps without copying). Work is the
/// file's bytes, so the rate says how close "open" is to free.
pub fn safetensors_open(size: &str, reps: &Reps) -> Result<Measured> {
    if size != "124M" {
        bail!("safetensors_open size is 124M");
    }
    let dir = std::env::temp_dir().join(format!("rg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model.safetensors");
    let result = (|| -> Result<Measured> {
        {
            let model = Gpt::init(GptConfig::preset("gpt2")?, 1, Device::Cpu)?;
            let named = model.named_params();
            let tensors: Vec<(&str, &rusty_gradients::Tensor)> = named
                .iter()
                .map(|(n, v)| (n.as_str(), v.tensor()))
                .collect();
            save_safetensors(&path, &tensors, &BTreeMap::new())?;
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
