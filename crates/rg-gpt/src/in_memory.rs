//! Models built from file contents instead of paths, for callers without a file system
//! (the browser build): the same checks and messages as [`load_model_dir`], with the
//! files named as they would be in a model directory.
//!
//! [`load_model_dir`]: crate::checkpoint::load_model_dir

use std::path::Path;

use rg_core::{DType, Device};
use rg_io::SafeTensorsFile;
use rg_tokenize::{Tokenizer, TokenizerTexts};

use crate::checkpoint::{tensors_from_file, CONFIG_FILE, MODEL_FILE};
use crate::{Gpt, GptConfig, GptError, Result};

/// The files of a model directory (ours or Hugging Face's GPT-2 layout), as contents.
pub struct ModelBytes<'a> {
    /// `config.json`.
    pub config_json: &'a str,
    /// `model.safetensors` (f32, f16 or bf16 tensors), owned: f32 tensors share it.
    pub safetensors: Vec<u8>,
    /// The tokenizer files the directory has.
    pub tokenizer: TokenizerTexts<'a>,
}

/// A model and its tokenizer, built in memory.
pub struct InMemoryModel {
    pub model: Gpt,
    pub tokenizer: Box<dyn Tokenizer>,
}

/// Builds the model with floating-point weights in `dtype` (f32, or bf16 for
/// half-precision inference) and its tokenizer.
pub fn load_model_from_bytes(
    files: ModelBytes<'_>,
    dtype: DType,
    device: &Device,
) -> Result<InMemoryModel> {
    let config_path = Path::new(CONFIG_FILE);
    let json: serde_json::Value = serde_json::from_str(files.config_json)
        .map_err(|e| GptError::bad_file(config_path, format!("invalid JSON: {e}")))?;
    let config = GptConfig::from_hf_json(&json)
        .map_err(|e| GptError::bad_file(config_path, e.to_string()))?;
    let weights = SafeTensorsFile::from_vec(MODEL_FILE, files.safetensors)?;
    let tensors = tensors_from_file(&weights, dtype, device)?;
    let model = Gpt::from_tensors(config, tensors)
        .map_err(|e| GptError::bad_file(Path::new(MODEL_FILE), e.to_string()))?;
    let tokenizer = rg_tokenize::tokenizer_from_texts(&files.tokenizer)?;
    Ok(InMemoryModel { model, tokenizer })
}
