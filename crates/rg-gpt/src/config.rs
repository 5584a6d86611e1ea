use serde::{Deserialize, Serialize};

use rg_core::{Error, Result};

/// Sizes of a GPT-2-style model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Context length (learned position embeddings).
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub layer_norm_eps: f64,
    /// Dropout on embeddings, attention probabilities and residual branches.
    pub dropout: f64,
}

/// Named presets: GPT-2's four sizes and small ones for CPU work.
pub const PRESETS: &[&str] = &[
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "nano",
    "micro",
];

impl GptConfig {
    pub fn preset(name: &str) -> Result<GptConfig> {
        let (n_layer, n_head, n_embd, vocab_size, block_size) = match name {
            "gpt2" => (12, 12, 768, 50257, 1024),
            "gpt2-medium" => (24, 16, 1024, 50257, 1024),
            "gpt2-large" => (36, 20, 1280, 50257, 1024),
            "gpt2-xl" => (48, 25, 1600, 50257, 1024),
            // nanoGPT's shakespeare_char CPU settings (vocabulary set from the data).
            "nano" => (4, 4, 128, 65, 64),
            "micro" => (2, 4, 64, 65, 32),
            other => {
                return Err(Error::invalid(
                    "gpt config",
                    format!("unknown preset {other:?}; known: {}", PRESETS.join(", ")),
                ))
            }
        };
        Ok(GptConfig {
            vocab_size,
            block_size,
            n_layer,
            n_head,
            n_embd,
            layer_norm_eps: 1e-5,
            dropout: 0.0,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Errors on sizes the model cannot be built with, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("gpt config", msg));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.n_embd % self.n_head != 0 {
            return bad(format!(
                "n_embd ({}) must be divisible by n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Parameter count (the LM head is tied to the token embedding).
    pub fn param_count(&self) -> usize {
        let c = self.n_embd;
        let per_block =
            2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c);
        self.vocab_size * c + self.block_size * c + self.n_layer * per_block + 2 * c
    }

    /// `config.json` in Hugging Face GPT-2 form, so checkpoints load in `transformers`.
    pub fn to_hf_json(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": null,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": self.layer_norm_eps,
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "initializer_range": 0.02,
            "tie_word_embeddings": true,
            "bos_token_id": self.vocab_size.saturating_sub(1),
            "eos_token_id": self.vocab_size.saturating_sub(1),
            "scale_attn_weights": true,
            "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false,
        })
    }

    /// Reads a Hugging Face GPT-2 `config.json`; unsupported model types, activations
    /// or options are errors that say what is supported.
    pub fn from_hf_json(json: &serde_json::Value) -> Result<GptConfig> {
        let field = |name: &str| -> Result<usize> {
            json.get(name)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| {
                    Error::invalid(
                        "config.json",
                        format!("missing or non-integer field {name:?}"),
                    )
                })
        };
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("gpt2");
        if model_type != "gpt2" {
            return Err(Error::invalid(
                "config.json",
                format!("model_type {model_type:?} is not supported; supported: \"gpt2\""),
            ));
        }
        let activation = json
            .get("activation_function")
            .and_then(|v| v.as_str())
            .unwrap_or("gelu_new");
        if !matches!(activation, "gelu_new" | "gelu_pytorch_tanh") {
            return Err(Error::invalid(
                "config.json",
                format!("activation_function {activation:?} is not supported; supported: \"gelu_new\", \"gelu_pytorch_tanh\""),
            ));
        }
        let n_embd = field("n_embd")?;
        if let Some(inner) = json.get("n_inner").and_then(|v| v.as_u64()) {
            if inner as usize != 4 * n_embd {
                return Err(Error::invalid(
                    "config.json",
                    format!(
                        "n_inner {inner} is not supported; only 4 * n_embd ({})",
                        4 * n_embd
                    ),
                ));
            }
        }
        for flag in [
            "scale_attn_by_inverse_layer_idx",
            "reorder_and_upcast_attn",
            "add_cross_attention",
        ] {
            if json.get(flag).and_then(|v| v.as_bool()) == Some(true) {
                return Err(Error::invalid(
                    "config.json",
                    format!("{flag} = true is not supported"),
                ));
            }
        }
        let config = GptConfig {
            vocab_size: field("vocab_size")?,
            block_size: field("n_positions").or_else(|_| field("n_ctx"))?,
            n_layer: field("n_layer")?,
            n_head: field("n_head")?,
            n_embd,
            layer_norm_eps: json
                .get("layer_norm_epsilon")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-5),
            dropout: 0.0,
        };
        config.validate()?;
        Ok(config)
    }
}
