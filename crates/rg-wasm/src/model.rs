//! [`WasmModel`]: a GPT model and its tokenizer, built from file contents.

use std::rc::Rc;

use rg_core::{DType, Device};
use rg_gpt::{load_model_from_bytes, ModelBytes};
use rg_tokenize::TokenizerTexts;
use wasm_bindgen::prelude::*;

use crate::session::{GenerationSession, LoadedModel};
use crate::{ensure_backend, js_error, GenerateSettings};

/// A loaded model. Generation sessions share it (they keep it alive).
#[wasm_bindgen]
pub struct WasmModel {
    inner: Rc<LoadedModel>,
}

#[wasm_bindgen]
impl WasmModel {
    /// Builds a model from a model directory's files: `config.json`,
    /// `model.safetensors` (as bytes) and the tokenizer files present
    /// (`tokenizer.json`, or `vocab.json` + `merges.txt`, or `char_tokenizer.json`;
    /// pass `undefined` for the others). `dtype`: `"f32"` or `"bf16"` (weights kept in
    /// bf16, f32 accumulation), as `rgrad generate --dtype`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &str,
        safetensors: Vec<u8>,
        tokenizer_json: Option<String>,
        vocab_json: Option<String>,
        merges_txt: Option<String>,
        char_tokenizer_json: Option<String>,
        dtype: &str,
    ) -> Result<WasmModel, JsError> {
        ensure_backend();
        let dtype = match dtype {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            other => {
                return Err(JsError::new(&format!(
                    "dtype: {other:?} is not supported (use \"f32\" or \"bf16\")"
                )))
            }
        };
        let files = ModelBytes {
            config_json,
            safetensors,
            tokenizer: TokenizerTexts {
                tokenizer_json: tokenizer_json.as_deref(),
                vocab_json: vocab_json.as_deref(),
                merges_txt: merges_txt.as_deref(),
                char_tokenizer_json: char_tokenizer_json.as_deref(),
            },
        };
        let loaded = load_model_from_bytes(files, dtype, &Device::Cpu).map_err(js_error)?;
        Ok(WasmModel {
            inner: Rc::new(LoadedModel {
                model: loaded.model,
                tokenizer: loaded.tokenizer,
            }),
        })
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner.tokenizer.encode(text)
    }

    /// Text of `ids` (invalid UTF-8 from a token cut mid-character is replaced).
    pub fn decode(&self, ids: &[u32]) -> Result<String, JsError> {
        let bytes = self.inner.tokenizer.decode_bytes(ids).map_err(js_error)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Parameters in the model.
    #[wasm_bindgen(js_name = paramCount)]
    pub fn param_count(&self) -> f64 {
        rg_gpt::GptConfig::param_count(self.inner.model.config()) as f64
    }

    /// Context length in tokens.
    #[wasm_bindgen(js_name = contextLength)]
    pub fn context_length(&self) -> u32 {
        self.inner.model.config().block_size as u32
    }

    /// Encodes `prompt`, runs it through the model (prefill) and returns a session
    /// that yields one new token per `nextToken()` call.
    pub fn generate(
        &self,
        prompt: &str,
        settings: &GenerateSettings,
    ) -> Result<GenerationSession, JsError> {
        let ids = self.inner.tokenizer.encode(prompt);
        self.generate_ids(&ids, settings)
    }

    /// As `generate`, from token ids.
    #[wasm_bindgen(js_name = generateIds)]
    pub fn generate_ids(
        &self,
        prompt_ids: &[u32],
        settings: &GenerateSettings,
    ) -> Result<GenerationSession, JsError> {
        let options = settings
            .to_options(self.inner.tokenizer.eot_token())
            .map_err(|e| JsError::new(&e))?;
        GenerationSession::start(self.inner.clone(), prompt_ids, options).map_err(js_error)
    }
}
