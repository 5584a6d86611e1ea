//! [`GenerationSession`]: `rg_gpt::generate::Generator` behind a JavaScript object.

use std::rc::Rc;

use rg_gpt::generate::{GenerateOptions, Generator};
use rg_gpt::Gpt;
use rg_tokenize::Tokenizer;
use wasm_bindgen::prelude::*;

use crate::js_error;

/// A model with its tokenizer, shared by the `WasmModel` and its sessions.
pub(crate) struct LoadedModel {
    pub model: Gpt,
    pub tokenizer: Box<dyn Tokenizer>,
}

/// One generation: the prompt is already prefilled; each `nextToken()` returns one
/// new id (or `undefined` when generation is over), as `rgrad generate` streams them.
#[wasm_bindgen]
pub struct GenerationSession {
    // Declared before `model` so it is dropped first: it borrows the model.
    generator: Generator<'static>,
    model: Rc<LoadedModel>,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
}

impl GenerationSession {
    pub(crate) fn start(
        model: Rc<LoadedModel>,
        prompt_ids: &[u32],
        options: GenerateOptions,
    ) -> rg_gpt::Result<GenerationSession> {
        // SAFETY: the `Gpt` lives in an `Rc` that this session holds for as long as the
        // generator exists (field order drops the generator first), and an `Rc`'s
        // contents never move, so the reference stays valid for the generator's life.
        // JavaScript cannot hold the generator apart from the session.
        let gpt: &'static Gpt = unsafe { &*(&model.model as *const Gpt) };
        let mut generator = Generator::new(gpt, options)?;
        let prompt_ids = generator.prefill(prompt_ids)?;
        Ok(GenerationSession {
            generator,
            model,
            prompt_ids,
            generated_ids: Vec::new(),
        })
    }
}

#[wasm_bindgen]
impl GenerationSession {
    /// The next token id, or `undefined` when generation is over (end-of-text
    /// returned last, `maxNewTokens` reached, or the context full with `noSlide`).
    #[wasm_bindgen(js_name = nextToken)]
    pub fn next_token(&mut self) -> Result<Option<u32>, JsError> {
        let id = self.generator.next_token().map_err(js_error)?;
        if let Some(id) = id {
            self.generated_ids.push(id);
        }
        Ok(id)
    }

    /// The prompt as used (its tail when `truncate` cut it).
    #[wasm_bindgen(getter, js_name = promptIds)]
    pub fn prompt_ids(&self) -> Vec<u32> {
        self.prompt_ids.clone()
    }

    #[wasm_bindgen(getter, js_name = generatedIds)]
    pub fn generated_ids(&self) -> Vec<u32> {
        self.generated_ids.clone()
    }

    /// The generated text so far (a character cut between tokens shows as U+FFFD
    /// until its last byte arrives).
    pub fn text(&self) -> Result<String, JsError> {
        let bytes = self
            .model
            .tokenizer
            .decode_bytes(&self.generated_ids)
            .map_err(js_error)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Prompt tokens per second of the prefill.
    #[wasm_bindgen(getter, js_name = prefillTokensPerS)]
    pub fn prefill_tokens_per_s(&self) -> f64 {
        let s = self.generator.stats();
        s.prompt_tokens as f64 / s.prefill_s.max(1e-9)
    }

    /// Tokens per second after the prefill, measured as `rgrad generate` measures it.
    #[wasm_bindgen(getter, js_name = decodeTokensPerS)]
    pub fn decode_tokens_per_s(&self) -> f64 {
        let s = self.generator.stats();
        s.decoded_tokens as f64 / s.decode_s.max(1e-9)
    }
}
