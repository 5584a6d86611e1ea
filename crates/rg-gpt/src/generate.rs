//! Text generation: greedy or temperature sampling, one token at a time.
//!
//! Each step runs the model over the (context-cropped) sequence so far; the KV cache
//! and the full set of sampling controls arrive with the generation work.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_autograd::no_grad;
use rg_core::Tensor;

use crate::{Gpt, GptError, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
}

/// Picks the next token from one row of logits.
fn sample(logits: &[f32], sampling: &Sampling, rng: &mut ChaCha8Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / sampling.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        r -= w;
        if r <= 0.0 {
            return i as u32;
        }
    }
    argmax()
}

/// Generates up to `max_new_tokens` after `prompt_ids`, calling `on_token` with each
/// new id as soon as it is chosen; stops early at `stop_token`.
pub fn generate(
    model: &Gpt,
    prompt_ids: &[u32],
    max_new_tokens: usize,
    sampling: Sampling,
    stop_token: Option<u32>,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    if prompt_ids.is_empty() {
        return Err(GptError::setting(
            "--prompt",
            "the prompt encodes to no tokens",
        ));
    }
    let block = model.config().block_size;
    let device = model.device();
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut ids = prompt_ids.to_vec();
    let (mut prefill_s, mut decode_s) = (0.0, 0.0);
    for i in 0..max_new_tokens {
        let start = Instant::now();
        let context = &ids[ids.len().saturating_sub(block)..];
        let t = context.len();
        let x = Tensor::from_vec(context.to_vec(), [1, t], &device)?;
        let last = no_grad(|| -> Result<Vec<f32>> {
            let hidden = model.hidden(&x, None)?;
            let logits = model.lm_head(&hidden.narrow(1, t - 1, 1)?)?;
            Ok(logits
                .tensor()
                .to_dtype(rg_core::DType::F32)?
                .to_vec::<f32>()?)
        })?;
        let next = sample(&last, &sampling, &mut rng);
        if i == 0 {
            prefill_s += start.elapsed().as_secs_f64();
        } else {
            decode_s += start.elapsed().as_secs_f64();
        }
        ids.push(next);
        on_token(next)?;
        if Some(next) == stop_token {
            break;
        }
    }
    let generated = ids[prompt_ids.len()..].to_vec();
    Ok(Generation {
        prompt_ids: prompt_ids.to_vec(),
        prefill_tokens_per_s: prompt_ids.len() as f64 / prefill_s.max(1e-9),
        decode_tokens_per_s: generated.len().saturating_sub(1) as f64 / decode_s.max(1e-9),
        generated_ids: generated,
    })
}
