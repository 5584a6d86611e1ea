//! Held-out evaluation of a trained model on a token stream: mean next-token
//! cross-entropy, perplexity, and each position's greedy (argmax) prediction, so two
//! models (f32 and a quantized copy) can be compared token by token.
//!
//! The stream is cut into windows of at most the model's context; every token after
//! the first of its window is scored. Two ways to run a window:
//! - [`EvalMode::Forward`]: one forward pass over the window (the prefill path);
//! - [`EvalMode::Decode`]: one token at a time through the KV cache, the path (and the
//!   kernels) generation uses after the prompt.

use rg_autograd::no_grad;
use rg_core::Tensor;

use crate::{Gpt, GptError, KvCache, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    Forward,
    Decode,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone)]
pub struct EvalResult {
    /// Mean cross-entropy (nats) over the scored tokens.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// The greedy prediction at each scored position, in stream order.
    pub greedy: Vec<u32>,
}

/// Evaluates `model` on `tokens` in windows of `window` tokens (at most the context).
pub fn evaluate(model: &Gpt, tokens: &[u32], window: usize, mode: EvalMode) -> Result<EvalResult> {
    let context = model.config().block_size;
    if window < 2 || window > context {
        return Err(GptError::setting(
            "--window",
            format!("{window} must be between 2 and the model's context of {context}"),
        ));
    }
    if tokens.len() < 2 {
        return Err(GptError::setting(
            "--data",
            format!(
                "{} tokens held out; at least 2 are needed to score one",
                tokens.len()
            ),
        ));
    }
    let device = model.device();
    let mut cache = KvCache::new(model.config(), 1, window, &device)?;
    let (mut nll, mut scored) = (0f64, 0usize);
    let mut greedy = Vec::with_capacity(tokens.len());
    for chunk in tokens.chunks(window).filter(|c| c.len() >= 2) {
        let logits = no_grad(|| window_logits(model, chunk, mode, &mut cache))?;
        let vocab = model.config().vocab_size;
        for (row, &target) in logits.chunks_exact(vocab).zip(&chunk[1..]) {
            let (lse, best) = log_sum_exp_and_argmax(row);
            nll += lse - row[target as usize] as f64;
            greedy.push(best);
            scored += 1;
        }
    }
    let loss = nll / scored as f64;
    Ok(EvalResult {
        loss,
        perplexity: loss.exp(),
        greedy,
    })
}

/// Logits `[len - 1, vocab]` (row-major) predicting `chunk[1..]`.
fn window_logits(
    model: &Gpt,
    chunk: &[u32],
    mode: EvalMode,
    cache: &mut KvCache,
) -> Result<Vec<f32>> {
    let device = model.device();
    let inputs = &chunk[..chunk.len() - 1];
    match mode {
        EvalMode::Forward => {
            let ids = Tensor::from_vec(inputs.to_vec(), [1, inputs.len()], &device)?;
            Ok(model.forward(&ids, None)?.tensor().to_vec::<f32>()?)
        }
        EvalMode::Decode => {
            cache.reset();
            let mut out = Vec::new();
            for &id in inputs {
                let ids = Tensor::from_vec(vec![id], [1, 1], &device)?;
                let hidden = model.hidden_cached(&ids, cache)?;
                out.extend(model.lm_head(&hidden)?.tensor().to_vec::<f32>()?);
            }
            Ok(out)
        }
    }
}

fn log_sum_exp_and_argmax(row: &[f32]) -> (f64, u32) {
    let (best, max) = row
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        });
    let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
    (max as f64 + sum.ln(), best as u32)
}

/// Fraction of positions where two runs' greedy predictions agree.
pub fn greedy_agreement(a: &EvalResult, b: &EvalResult) -> Result<f64> {
    if a.greedy.len() != b.greedy.len() || a.greedy.is_empty() {
        return Err(GptError::setting(
            "--reference",
            format!(
                "the runs scored {} and {} tokens; compare runs over the same data and window",
                a.greedy.len(),
                b.greedy.len()
            ),
        ));
    }
    let same = a
        .greedy
        .iter()
        .zip(&b.greedy)
        .filter(|(x, y)| x == y)
        .count();
    Ok(same as f64 / a.greedy.len() as f64)
}
