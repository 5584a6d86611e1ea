use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rusty_gradients::gpt::checkpoint::{read_json, CONFIG_FILE, MODEL_FILE, TRAINER_STATE_FILE};
use rusty_gradients::gpt::GptConfig;
use rusty_gradients::io::SafeTensorsFile;
use serde_json::{json, Value};

#[derive(Args)]
pub struct InspectArgs {
    /// A .safetensors file, or a model directory (its model.safetensors, with the
    /// config.json summary and the trainer_state.json step when present).
    path: PathBuf,
    /// text: one line per tensor and a total; json: one object.
    #[arg(long, default_value = "text")]
    format: String,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let json_out = match args.format.as_str() {
        "text" => false,
        "json" => true,
        other => bail!("--format: {other:?} is not one of text, json"),
    };
    let (dir, file_path) = if args.path.is_dir() {
        (Some(args.path.as_path()), args.path.join(MODEL_FILE))
    } else {
        (None, args.path.clone())
    };
    // The reader's errors name the file and the header field or tensor at fault.
    let file = SafeTensorsFile::open(&file_path)?;
    // Quantized weights are checked (pairs, shapes, scales, values) as loading would.
    let quantized = rusty_gradients::gpt::quantized::load_quantized(&file, &file_path)?;
    let quantized_weights: usize = quantized.values().map(|q| q.rows() * q.cols()).sum();
    let config = dir.map(config_summary).transpose()?.flatten();
    let step = dir.map(trainer_step).transpose()?.flatten();

    let tensors: Vec<Value> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name(),
                "dtype": t.dtype().name(),
                "shape": t.shape(),
                "parameters": t.elem_count(),
                "bytes": t.byte_len(),
            })
        })
        .collect();
    let params: usize = file.tensors().iter().map(|t| t.elem_count()).sum();
    let bytes: usize = file.tensors().iter().map(|t| t.byte_len()).sum();
    let file_len = std::fs::metadata(&file_path)
        .with_context(|| file_path.display().to_string())?
        .len();

    let mut out = Vec::new();
    if json_out {
        let mut obj = json!({
            "file": file_path,
            "file_bytes": file_len,
            "metadata": file.metadata(),
            "tensors": tensors,
            "total": {"tensors": file.len(), "parameters": params, "bytes": bytes},
        });
        if !quantized.is_empty() {
            obj["q8_0"] = json!({"matrices": quantized.len(), "weights": quantized_weights});
        }
        if let Some(dir) = dir {
            obj["dir"] = json!(dir);
            obj["config"] = config.unwrap_or(Value::Null);
            obj["step"] = json!(step);
        }
        writeln!(out, "{obj}")?;
        return print(&out);
    }

    writeln!(out, "file: {} ({file_len} bytes)", file_path.display())?;
    if file.metadata().is_empty() {
        writeln!(out, "metadata: (none)")?;
    } else {
        let pairs: Vec<String> = file
            .metadata()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "metadata: {}", pairs.join(", "))?;
    }
    if !quantized.is_empty() {
        writeln!(
            out,
            "q8_0: {} matrices, {quantized_weights} weights as int8 with an f16 scale per 32 (NAME.q8_0 + NAME.q8_0_scales)",
            quantized.len()
        )?;
    }
    if let Some(dir) = dir {
        match &config {
            Some(c) if c.get("unsupported").is_some() => writeln!(
                out,
                "config: model_type {} (not loadable here: {})",
                c["model_type"].as_str().unwrap_or_default(),
                c["unsupported"].as_str().unwrap_or_default()
            )?,
            Some(c) => writeln!(
                out,
                "config: {} layers, {} heads, n_embd {}, vocab {}, context {}, dtype {}, {} parameters",
                c["n_layer"],
                c["n_head"],
                c["n_embd"],
                c["vocab_size"],
                c["n_positions"],
                c["torch_dtype"].as_str().unwrap_or("unspecified"),
                c["parameters"],
            )?,
            None => writeln!(out, "config: no {CONFIG_FILE} in {}", dir.display())?,
        }
        if let Some(step) = step {
            writeln!(out, "trainer_state: step {step}")?;
        }
    }
    for t in file.tensors() {
        writeln!(
            out,
            "{} {} {:?} {} bytes",
            t.name(),
            t.dtype(),
            t.shape(),
            t.byte_len()
        )?;
    }
    writeln!(
        out,
        "total: {} tensors, {params} parameters, {bytes} bytes",
        file.len()
    )?;
    print(&out)
}

/// Writes `bytes` to stdout; a closed pipe (`rgrad inspect ... | head`) is not an error.
fn print(bytes: &[u8]) -> Result<()> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The sizes in `dir/config.json`, or `None` when the directory has none.
fn config_summary(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let value = read_json(&path)?;
    let model_type = value
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("gpt2");
    // Another architecture's config is still worth listing the tensors of.
    let config = match GptConfig::from_hf_json(&value) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Some(json!({
                "model_type": model_type,
                "unsupported": e.to_string(),
            })))
        }
    };
    Ok(Some(json!({
        "model_type": model_type,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "torch_dtype": value.get("torch_dtype").or_else(|| value.get("dtype")).cloned().unwrap_or(Value::Null),
        "parameters": config.param_count(),
    })))
}

/// The optimizer step recorded in `dir/trainer_state.json`, if there is one.
fn trainer_step(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(TRAINER_STATE_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(read_json(&path)?.get("step").and_then(Value::as_u64))
}
