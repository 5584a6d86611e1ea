//! [`load_model`]: a `--model` argument to a GPT-2 model and its tokenizer.

use rg_core::{DType, Device};
use rg_gpt::checkpoint::{read_json, LoadedModel};
use rg_gpt::{Gpt, GptConfig};

use crate::weights::{check_compute, check_weight_dtype, load_quantized_weights, load_weights};
use crate::{resolve_model, HubError, HubOptions, ModelFiles, Result, WeightFiles};

/// Resolves `spec` ([`resolve_model`]) and loads it with f32 weights.
pub fn load_model(spec: &str, device: &Device, options: &HubOptions) -> Result<LoadedModel> {
    load_model_with_dtype(spec, device, options, DType::F32)
}

/// Resolves `spec` and loads it with weights in `dtype` (one of
/// [`crate::SUPPORTED_WEIGHT_DTYPES`]). That the device computes in `dtype` is checked
/// first, before anything is resolved or downloaded.
pub fn load_model_with_dtype(
    spec: &str,
    device: &Device,
    options: &HubOptions,
    dtype: DType,
) -> Result<LoadedModel> {
    check_weight_dtype(dtype)?;
    check_compute(dtype, device)?;
    let files = resolve_model(spec, options)?;
    load_model_files(&files, device, dtype)
}

/// Loads resolved files: `config.json` -> [`GptConfig`] (unsupported model types and
/// options are named), the weights in `dtype`, and the tokenizer.
pub fn load_model_files(files: &ModelFiles, device: &Device, dtype: DType) -> Result<LoadedModel> {
    let spec = files.spec.as_str();
    check_weight_dtype(dtype)?;
    check_compute(dtype, device)?;
    let json = read_json(&files.config).map_err(|e| HubError::gpt(spec, e))?;
    let config = GptConfig::from_hf_json(&json)
        .map_err(|e| HubError::bad_file(spec, &files.config, e.to_string()))?;
    let tensors = load_weights(files, device, dtype)?;
    let quantized = load_quantized_weights(files)?;
    let weights_path = match &files.weights {
        WeightFiles::Single(path) => path,
        WeightFiles::Sharded { index, .. } => &index.path,
    };
    let model = Gpt::from_weights(config, tensors, quantized)
        .map_err(|e| HubError::bad_file(spec, weights_path, e.to_string()))?;
    let tokenizer = rg_tokenize::load_tokenizer(&files.dir)
        .map_err(|e| HubError::gpt(spec, rg_gpt::GptError::from(e)))?;
    Ok(LoadedModel {
        model,
        tokenizer,
        dir: files.dir.clone(),
    })
}
