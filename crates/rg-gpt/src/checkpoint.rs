//! Checkpoints and model directories. A checkpoint is a directory that is also a
//! Hugging Face GPT-2 model directory: `model.safetensors` (names with the
//! `transformer.` prefix, Conv1D `[in, out]` weights), `config.json`, the tokenizer,
//! plus `optimizer.safetensors` (AdamW moments; under ZeRO one
//! `optimizer-rank-R-of-N.safetensors` per rank instead) and `trainer_state.json` for
//! resuming.
//! It is written to a temporary sibling and renamed, so it is complete or absent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rg_core::{DType, Device, Tensor};
use rg_io::{save_safetensors, AtomicDir, SafeTensorsFile, StoredDType};
use rg_nn::{AdamW, Module};
use rg_tokenize::Tokenizer;
use serde_json::Value;

use crate::{Gpt, GptConfig, GptError, Result};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";

/// Everything a training run needs to continue exactly where it stopped.
pub struct TrainingState<'a> {
    pub optimizer: &'a AdamW,
    /// Step, data position, RNG states and run settings.
    pub trainer_state: Value,
    /// ZeRO: the directory where every rank wrote its optimizer shard and the world
    /// size; the shards are moved into the checkpoint instead of writing `optimizer`'s
    /// moments (which are only this rank's), and `trainer_state` lists them.
    pub optimizer_shards: Option<(&'a Path, usize)>,
}

/// Writes `model` (and, when given, the training state) as a complete directory `dir`.
pub fn save_checkpoint(
    dir: &Path,
    model: &Gpt,
    tokenizer: &dyn Tokenizer,
    training: Option<TrainingState<'_>>,
) -> Result<PathBuf> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| GptError::io(parent, "create directory", e))?;
    }
    let staging_dir = AtomicDir::new(dir)?;
    let tmp = staging_dir.path().to_path_buf();

    let params = model.named_params();
    let names: Vec<String> = params
        .iter()
        .map(|(n, _)| format!("transformer.{n}"))
        .collect();
    let entries: Vec<(&str, &Tensor)> = names
        .iter()
        .map(String::as_str)
        .zip(params.iter().map(|(_, v)| v.tensor()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    save_safetensors(tmp.join(MODEL_FILE), &entries, &meta)?;

    write_json(&tmp.join(CONFIG_FILE), &model.config().to_hf_json())?;
    tokenizer.save(&tmp)?;

    if let Some(mut training) = training {
        if let Some((staging, world)) = training.optimizer_shards {
            let names = crate::zero_shards::adopt_shards(staging, &tmp, world)?;
            training.trainer_state["optimizer_shards"] = serde_json::json!(names);
            write_json(&tmp.join(TRAINER_STATE_FILE), &training.trainer_state)?;
            return Ok(staging_dir.commit()?);
        }
        let moments = training.optimizer.moments();
        let names: Vec<(String, String)> = moments
            .iter()
            .map(|(n, _, _)| (format!("{n}.exp_avg"), format!("{n}.exp_avg_sq")))
            .collect();
        let mut entries: Vec<(&str, &Tensor)> = Vec::with_capacity(2 * moments.len());
        for ((m_name, v_name), (_, m, v)) in names.iter().zip(&moments) {
            entries.push((m_name, m));
            entries.push((v_name, v));
        }
        save_safetensors(tmp.join(OPTIMIZER_FILE), &entries, &BTreeMap::new())?;
        write_json(&tmp.join(TRAINER_STATE_FILE), &training.trainer_state)?;
    }
    Ok(staging_dir.commit()?)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    rg_io::atomic_write(path, text.as_bytes())?;
    Ok(())
}

pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| GptError::io(path, "read", e))?;
    serde_json::from_str(&text).map_err(|e| GptError::bad_file(path, format!("invalid JSON: {e}")))
}

/// Every tensor of a safetensors file on `device`, floating-point ones as f32
/// (f16/bf16 are converted; f32 on the CPU is mapped, not copied). A NaN or infinite
/// weight is an error naming the tensor and the element.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    tensors_from_file(&SafeTensorsFile::open(path)?, DType::F32, device)
}

/// Every tensor of an opened safetensors file (mapped or held in memory) on `device`:
/// floating-point tensors as `float_dtype` (f32 or bf16; f32 data on the CPU is
/// shared, not copied), integer tensors as stored. A NaN or infinite weight is an
/// error naming the tensor and the element.
pub fn tensors_from_file(
    file: &SafeTensorsFile,
    float_dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let path = file.path();
    if !matches!(float_dtype, DType::F32 | DType::BF16) {
        return Err(GptError::bad_file(
            path,
            format!("weights load as f32 or bf16, not {float_dtype}"),
        ));
    }
    let mut out = HashMap::with_capacity(file.len());
    for info in file.tensors() {
        // Read by `quantized::load_quantized`, not as tensors.
        if crate::quantized::is_quantized_part(info.name()) {
            continue;
        }
        if let Some(index) = first_non_finite(info.dtype(), file.raw_bytes(info.name())?) {
            return Err(GptError::bad_file(
                path,
                format!(
                    "tensor {:?} holds a non-finite value at element {index}",
                    info.name()
                ),
            ));
        }
        let t = match info.dtype().load_dtype() {
            Some(d) if d.is_float() => file.load_as(info.name(), float_dtype, device)?,
            _ => file.tensor(info.name(), device)?,
        };
        out.insert(info.name().to_string(), t);
    }
    Ok(out)
}

/// Index of the first NaN or infinity in little-endian float data (an all-ones
/// exponent), read from the bits so no copy is made.
fn first_non_finite(dtype: StoredDType, bytes: &[u8]) -> Option<usize> {
    fn scan<const N: usize>(bytes: &[u8], is_special: impl Fn([u8; N]) -> bool) -> Option<usize> {
        bytes
            .chunks_exact(N)
            .position(|c| is_special(c.try_into().expect("chunks_exact yields N bytes")))
    }
    match dtype {
        StoredDType::F32 => scan(bytes, |b: [u8; 4]| {
            u32::from_le_bytes(b) & 0x7F80_0000 == 0x7F80_0000
        }),
        StoredDType::F64 => scan(bytes, |b: [u8; 8]| {
            u64::from_le_bytes(b) & 0x7FF0_0000_0000_0000 == 0x7FF0_0000_0000_0000
        }),
        StoredDType::BF16 => scan(bytes, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7F80 == 0x7F80),
        StoredDType::F16 => scan(bytes, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7C00 == 0x7C00),
        _ => None,
    }
}

/// A model directory (ours or Hugging Face's) loaded for training or generation.
pub struct LoadedModel {
    pub model: Gpt,
    pub tokenizer: Box<dyn Tokenizer>,
    pub dir: PathBuf,
}

/// Loads `config.json`, `model.safetensors` and the tokenizer of `dir`.
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<LoadedModel> {
    if !dir.is_dir() {
        return Err(GptError::bad_file(
            dir,
            "not a model directory (expected config.json, model.safetensors and tokenizer files)",
        ));
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = GptConfig::from_hf_json(&read_json(&config_path)?)
        .map_err(|e| GptError::bad_file(&config_path, e.to_string()))?;
    let weights = dir.join(MODEL_FILE);
    let tensors = load_tensors(&weights, device)?;
    let quantized = crate::quantized::load_quantized_file(&weights)?;
    let model = Gpt::from_weights(config, tensors, quantized)
        .map_err(|e| GptError::bad_file(&weights, e.to_string()))?;
    let tokenizer = rg_tokenize::load_tokenizer(dir)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        dir: dir.to_path_buf(),
    })
}
