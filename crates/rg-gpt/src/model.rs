use std::collections::HashMap;
use std::sync::Arc;

use rg_autograd::{no_grad, Var};
use rg_core::{DType, Device, Error, Q8Matrix, Result, Tensor};
use rg_nn::{
    visit_child, Dropout, DropoutRng, Embedding, InitSource, LayerNorm, Module, ParamBuilder,
    ParamSource, TensorMapSource, Weight,
};

use crate::block::Block;
use crate::kv_cache::KvCache;
use crate::precision;
use crate::GptConfig;

/// The GPT-2 architecture: token + learned position embeddings, pre-LN blocks, final
/// LayerNorm, LM head tied to the token embedding. Parameter names are Hugging Face
/// GPT-2's without the `transformer.` prefix (`wte.weight`, `h.0.attn.c_attn.weight`).
#[derive(Clone, Debug)]
pub struct Gpt {
    config: GptConfig,
    wte: Embedding,
    wpe: Embedding,
    h: Vec<Block>,
    ln_f: LayerNorm,
    dropout: Dropout,
    /// Bytes of the Q8_0 weights (not parameters, so not visited as such).
    quantized_bytes: usize,
}

impl Gpt {
    pub fn new(config: GptConfig, source: &dyn ParamSource) -> Result<Self> {
        config.validate()?;
        let pb = ParamBuilder::new(source);
        let h = (0..config.n_layer)
            .map(|i| Block::new(&pb.push("h").push(i), &config))
            .collect::<Result<_>>()?;
        Ok(Gpt {
            wte: Embedding::new(&pb.push("wte"), config.vocab_size, config.n_embd, 0.02)?,
            wpe: Embedding::new(&pb.push("wpe"), config.block_size, config.n_embd, 0.01)?,
            h,
            ln_f: LayerNorm::new(&pb.push("ln_f"), config.n_embd, config.layer_norm_eps)?,
            dropout: Dropout::new(config.dropout)?,
            quantized_bytes: 0,
            config,
        })
    }

    /// Fresh weights, deterministic for `seed`.
    pub fn init(config: GptConfig, seed: u64, device: Device) -> Result<Self> {
        Gpt::new(config, &InitSource::new(seed, DType::F32, device))
    }

    /// Weights from named tensors in our names or Hugging Face's (`transformer.`
    /// prefix, `attn.bias`/`attn.masked_bias` buffers and a tied `lm_head.weight`
    /// are accepted); a missing or misshapen tensor is an error naming it, and a
    /// tensor the model does not use is reported as unexpected.
    pub fn from_tensors(config: GptConfig, tensors: HashMap<String, Tensor>) -> Result<Self> {
        Gpt::from_weights(config, tensors, HashMap::new())
    }

    /// [`Gpt::from_tensors`] plus Q8_0 matrices (`crate::quantized`) by the same kind
    /// of name, used for the weights they name instead of dense tensors (inference).
    pub fn from_weights(
        config: GptConfig,
        tensors: HashMap<String, Tensor>,
        quantized: HashMap<String, Arc<Q8Matrix>>,
    ) -> Result<Self> {
        let quantized: HashMap<String, Arc<Q8Matrix>> = quantized
            .into_iter()
            .map(|(name, q)| {
                let name = name
                    .strip_prefix("transformer.")
                    .unwrap_or(&name)
                    .to_string();
                (name, q)
            })
            .collect();
        let quantized_bytes = quantized.values().map(|q| q.byte_len()).sum();
        let mut ours = HashMap::new();
        for (name, t) in tensors {
            let name = name
                .strip_prefix("transformer.")
                .unwrap_or(&name)
                .to_string();
            if name.ends_with(".attn.bias")
                || name.ends_with(".attn.masked_bias")
                || name == "lm_head.weight"
            {
                continue;
            }
            let t = precision::for_compute(&name, t)?;
            ours.insert(name, t);
        }
        let source = TensorMapSource::with_quantized(ours, quantized);
        let mut model = Gpt::new(config, &source)?;
        model.quantized_bytes = quantized_bytes;
        let unexpected = source.unused();
        if !unexpected.is_empty() {
            return Err(Error::invalid(
                "load gpt",
                format!("unexpected tensors: {}", unexpected.join(", ")),
            ));
        }
        Ok(model)
    }

    /// Bytes of every weight in its stored form: parameters and Q8_0 matrices.
    pub fn weight_bytes(&self) -> usize {
        let mut total = self.quantized_bytes;
        self.visit_params(&mut |_, var| total += var.elem_count() * var.dtype().size_in_bytes());
        total
    }

    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        match self.wte.weight() {
            Weight::Dense(w) => w.device(),
            // A quantized table lives on the host; the blocks' tensors say where
            // activations are.
            Weight::Q8(_) => self.wpe.weight().device(),
        }
    }

    /// Final hidden states `[b, t, c]` for token ids `[b, t]` (u32).
    pub fn hidden(&self, ids: &Tensor, mut rng: Option<&mut DropoutRng>) -> Result<Var> {
        if ids.rank() != 2 {
            return Err(Error::RankMismatch {
                op: "gpt forward",
                expected: "2 ([batch, time]) for the token ids".into(),
                shape: ids.shape().clone(),
            });
        }
        let t = ids.dims()[1];
        if t > self.config.block_size {
            return Err(Error::invalid(
                "gpt forward",
                format!(
                    "sequence of {t} tokens exceeds the context of {}",
                    self.config.block_size
                ),
            ));
        }
        let positions = Tensor::arange(t, DType::U32, &ids.device())?;
        let x = precision::embed(&self.wte, ids)?.add(&self.wpe.forward(&positions)?)?;
        let mut x = self.dropout.forward(&x, rng.as_deref_mut())?;
        for block in &self.h {
            x = block.forward(&x, rng.as_deref_mut())?;
        }
        self.ln_f.forward(&x)
    }

    /// Final hidden states of new positions `ids` (`[b, t]`) that follow the
    /// `cache.len()` positions already in `cache`; appends their keys and values.
    /// Inference only: no graph is recorded.
    pub fn hidden_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Var> {
        no_grad(|| {
            let t = ids.dims().get(1).copied().unwrap_or(0);
            let start = cache.len();
            if ids.rank() != 2 || start + t > self.config.block_size {
                return Err(Error::invalid(
                    "gpt forward",
                    format!(
                        "ids of shape {} after {start} cached positions exceed the context of {}",
                        ids.shape(),
                        self.config.block_size
                    ),
                ));
            }
            let positions = Tensor::from_vec(
                (start as u32..(start + t) as u32).collect::<Vec<_>>(),
                t,
                &ids.device(),
            )?;
            let mut x = precision::embed(&self.wte, ids)?.add(&self.wpe.forward(&positions)?)?;
            for (layer, block) in self.h.iter().enumerate() {
                x = block.forward_cached(&x, cache, layer)?;
            }
            cache.advance(t);
            self.ln_f.forward(&x)
        })
    }

    /// Logits `[b, t, vocab]` through the tied LM head.
    pub fn forward(&self, ids: &Tensor, rng: Option<&mut DropoutRng>) -> Result<Var> {
        let x = self.hidden(ids, rng)?;
        self.lm_head(&x)
    }

    /// `x @ wte^T` for hidden states `[..., c]`; the transpose is a strided view (a
    /// Q8_0 `wte` is already `[vocab, c]` with the reduction axis last, as it wants).
    pub fn lm_head(&self, x: &Var) -> Result<Var> {
        let c = self.config.n_embd;
        let mut dims = x.dims().to_vec();
        let rows = x.elem_count() / c;
        let head = match self.wte.weight() {
            Weight::Dense(w) => Weight::Dense(w.t()?),
            q8 => q8.clone(),
        };
        let logits = rg_nn::autocast::matmul(&x.reshape([rows, c])?, &head)?;
        if let Some(last) = dims.last_mut() {
            *last = self.config.vocab_size;
        }
        logits.reshape(dims)
    }

    /// Mean cross-entropy of next-token predictions: `ids` and `targets` are `[b, t]`;
    /// targets equal to `ignore_index` are not scored.
    pub fn loss(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        ignore_index: Option<i64>,
        rng: Option<&mut DropoutRng>,
    ) -> Result<Var> {
        let logits = self.forward(ids, rng)?;
        rg_nn::loss::cross_entropy(&logits, targets, ignore_index)
    }
}

impl Module for Gpt {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_child("wte", &self.wte, visit);
        visit_child("wpe", &self.wpe, visit);
        visit_child("h", &self.h, visit);
        visit_child("ln_f", &self.ln_f, visit);
    }
}
