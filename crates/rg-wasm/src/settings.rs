//! [`GenerateSettings`]: `rgrad generate`'s options, with its defaults.

use rg_gpt::generate::{GenerateOptions, Sampling};
use wasm_bindgen::prelude::*;

/// Largest integer a JavaScript number holds exactly: seeds above it would be rounded.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Generation options, named and defaulted as `rgrad generate`'s flags.
#[wasm_bindgen]
#[derive(Debug, Clone, Copy)]
pub struct GenerateSettings {
    /// Tokens to generate (`--max-new-tokens`, default 64).
    #[wasm_bindgen(js_name = maxNewTokens)]
    pub max_new_tokens: u32,
    /// 0 = greedy (`--temperature`, default 0.8).
    pub temperature: f64,
    /// `--top-k` (default: all tokens).
    #[wasm_bindgen(js_name = topK)]
    pub top_k: Option<u32>,
    /// `--top-p` in (0, 1] (default: all tokens).
    #[wasm_bindgen(js_name = topP)]
    pub top_p: Option<f64>,
    /// `--repetition-penalty` (default 1, off).
    #[wasm_bindgen(js_name = repetitionPenalty)]
    pub repetition_penalty: f64,
    /// `--seed`, a whole number from 0 to 2^53 - 1 (default 0).
    pub seed: f64,
    /// `--truncate`: keep the end of a prompt longer than the context.
    pub truncate: bool,
    /// `--no-slide`: stop when the context is full instead of sliding the window.
    #[wasm_bindgen(js_name = noSlide)]
    pub no_slide: bool,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings {
            max_new_tokens: 64,
            temperature: 0.8,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0.0,
            truncate: false,
            no_slide: false,
        }
    }
}

#[wasm_bindgen]
impl GenerateSettings {
    /// `rgrad generate`'s defaults.
    #[wasm_bindgen(constructor)]
    pub fn new() -> GenerateSettings {
        GenerateSettings::default()
    }
}

impl GenerateSettings {
    /// The generator's options, or an error naming the setting that is out of range.
    pub(crate) fn to_options(self, stop_token: Option<u32>) -> Result<GenerateOptions, String> {
        let seed = self.seed;
        if !((0.0..=MAX_SAFE_INTEGER).contains(&seed) && seed.fract() == 0.0) {
            return Err(format!(
                "seed: {seed} is not a whole number from 0 to 2^53 - 1"
            ));
        }
        let sampling = Sampling {
            temperature: self.temperature,
            top_k: self.top_k.map(|k| k as usize),
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed: seed as u64,
        };
        sampling.validate().map_err(|e| e.to_string())?;
        Ok(GenerateOptions {
            max_new_tokens: self.max_new_tokens as usize,
            sampling,
            stop_token,
            truncate: self.truncate,
            slide_context: !self.no_slide,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rgrad_generate() {
        let o = GenerateSettings::new().to_options(Some(50256)).unwrap();
        assert_eq!(o.max_new_tokens, 64);
        assert_eq!(o.sampling.temperature, 0.8);
        assert_eq!(o.sampling.top_k, None);
        assert_eq!(o.sampling.seed, 0);
        assert!(o.slide_context);
        assert_eq!(o.stop_token, Some(50256));
    }

    #[test]
    fn bad_values_are_named() {
        let mut s = GenerateSettings::new();
        s.seed = 1.5;
        assert!(s.to_options(None).unwrap_err().contains("seed"));
        let mut s = GenerateSettings::new();
        s.top_p = Some(1.5);
        assert!(s.to_options(None).unwrap_err().contains("--top-p"));
        let mut s = GenerateSettings::new();
        s.temperature = -1.0;
        assert!(s.to_options(None).unwrap_err().contains("--temperature"));
    }
}
