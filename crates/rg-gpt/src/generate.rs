//! Text generation with a preallocated KV cache: the prompt is prefilled in one pass,
//! then each new token costs one single-position forward. Sampling: greedy,
//! temperature, top-k, top-p (nucleus), repetition penalty, seeded.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_core::{DType, Tensor};

use crate::{Gpt, GptError, KvCache, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax); top-k/top-p then play no part.
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p.
    pub top_p: Option<f64>,
    /// > 1 discourages tokens already in the context (CTRL's rule).
    pub repetition_penalty: f64,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl Sampling {
    pub fn greedy() -> Self {
        Sampling::default()
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(GptError::setting(
                "--temperature",
                format!("{} must be a number >= 0", self.temperature),
            ));
        }
        if self.top_k == Some(0) {
            return Err(GptError::setting("--top-k", "must be at least 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(GptError::setting(
                    "--top-p",
                    format!("{p} is not in (0, 1]"),
                ));
            }
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(GptError::setting(
                "--repetition-penalty",
                "must be a positive number",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends after this token (end-of-text).
    pub stop_token: Option<u32>,
    /// Keep the end of a prompt longer than the context instead of failing.
    pub truncate: bool,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The prompt as used (truncated when `truncate` cut it).
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
}

/// Picks the next token from one row of logits, given the tokens so far.
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(sampling: Sampling) -> Self {
        Sampler {
            rng: ChaCha8Rng::seed_from_u64(sampling.seed),
            sampling,
        }
    }

    pub fn next(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        let s = &self.sampling;
        if s.repetition_penalty != 1.0 {
            let p = s.repetition_penalty as f32;
            for &id in context {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / p } else { *l * p };
                }
            }
        }
        if s.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates by descending logit, cut by top-k, then by top-p on the
        // tempered distribution.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let k = s.top_k.unwrap_or(logits.len()).min(logits.len());
        if k < logits.len() {
            order.select_nth_unstable_by(k - 1, |&a, &b| {
                logits[b as usize].total_cmp(&logits[a as usize])
            });
            order.truncate(k);
        }
        order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let max = logits[order[0] as usize] as f64;
        let mut weights: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i as usize] as f64 - max) / s.temperature).exp())
            .collect();
        if let Some(p) = s.top_p {
            let total: f64 = weights.iter().sum();
            let mut acc = 0.0;
            let keep = weights
                .iter()
                .position(|w| {
                    acc += w / total;
                    acc >= p
                })
                .map_or(weights.len(), |i| i + 1);
            weights.truncate(keep);
        }
        let total: f64 = weights.iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (w, &id) in weights.iter().zip(&order) {
            r -= w;
            if r <= 0.0 {
                return id;
            }
        }
        order[weights.len() - 1]
    }
}

fn argmax(logits: &[f32]) -> u32 {
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
}

/// Logits of the last position of each row after running `ids` through the cache.
fn last_logits(model: &Gpt, ids: &Tensor, cache: &mut KvCache) -> Result<Vec<Vec<f32>>> {
    let t = ids.dims()[1];
    let hidden = model.hidden_cached(ids, cache)?;
    let logits = rg_autograd::no_grad(|| model.lm_head(&hidden.narrow(1, t - 1, 1)?))?;
    let v = model.config().vocab_size;
    let flat = logits.tensor().to_dtype(DType::F32)?.to_vec::<f32>()?;
    Ok(flat.chunks_exact(v).map(<[f32]>::to_vec).collect())
}

/// The prompt as it will be used: an error, or its tail with `truncate`, when it does
/// not fit the context with room for one new token.
fn fit_prompt(model: &Gpt, prompt: &[u32], truncate: bool) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(GptError::setting(
            "--prompt",
            "the prompt encodes to no tokens",
        ));
    }
    let block = model.config().block_size;
    if prompt.len() < block {
        return Ok(prompt.to_vec());
    }
    if !truncate {
        return Err(GptError::setting(
            "--prompt",
            format!(
                "{} tokens do not fit the context of {block} (pass --truncate to keep the end)",
                prompt.len()
            ),
        ));
    }
    Ok(prompt[prompt.len() - (block - 1)..].to_vec())
}

/// Generates after `prompt_ids`, calling `on_token` with each new id as soon as it is
/// chosen; `on_token` returns `false` to stop (e.g. a stop string appeared).
/// Generation also ends at `stop_token`, after `max_new_tokens`, or when the context
/// is full.
pub fn generate(
    model: &Gpt,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<Generation> {
    options.sampling.validate()?;
    let prompt = fit_prompt(model, prompt_ids, options.truncate)?;
    let device = model.device();
    let block = model.config().block_size;
    let mut cache = KvCache::new(model.config(), 1, block, &device)?;
    let mut sampler = Sampler::new(options.sampling);
    let mut context = prompt.clone();

    let start = Instant::now();
    let ids = Tensor::from_vec(prompt.clone(), [1, prompt.len()], &device)?;
    let mut logits = last_logits(model, &ids, &mut cache)?.remove(0);
    let prefill_s = start.elapsed().as_secs_f64();

    let decode_start = Instant::now();
    let mut generated = Vec::new();
    while generated.len() < options.max_new_tokens {
        let next = sampler.next(&mut logits, &context);
        generated.push(next);
        context.push(next);
        let go_on = on_token(next)?;
        if !go_on
            || Some(next) == options.stop_token
            || generated.len() == options.max_new_tokens
            || cache.len() == block
        {
            break;
        }
        let ids = Tensor::from_vec(vec![next], [1, 1], &device)?;
        logits = last_logits(model, &ids, &mut cache)?.remove(0);
    }
    let decoded = generated.len().saturating_sub(1);
    Ok(Generation {
        prompt_ids: prompt.clone(),
        generated_ids: generated,
        prefill_tokens_per_s: prompt.len() as f64 / prefill_s.max(1e-9),
        decode_tokens_per_s: decoded as f64 / decode_start.elapsed().as_secs_f64().max(1e-9),
    })
}

/// Generates for several prompts; prompts of equal length share batched forwards
/// (one prefill and one decode step per token for the whole group). Each row stops
/// on its own; finished rows ride along until their group is done.
pub fn generate_batch(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
) -> Result<Vec<Generation>> {
    options.sampling.validate()?;
    let fitted: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| fit_prompt(model, p, options.truncate))
        .collect::<Result<_>>()?;
    let mut results: Vec<Option<Generation>> = vec![None; prompts.len()];
    let mut lengths: Vec<usize> = fitted.iter().map(Vec::len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let device = model.device();
    let block = model.config().block_size;
    for len in lengths {
        let rows: Vec<usize> = (0..fitted.len())
            .filter(|&i| fitted[i].len() == len)
            .collect();
        let b = rows.len();
        let mut cache = KvCache::new(model.config(), b, block, &device)?;
        let mut samplers: Vec<Sampler> = rows
            .iter()
            .map(|_| Sampler::new(options.sampling))
            .collect();
        let mut contexts: Vec<Vec<u32>> = rows.iter().map(|&i| fitted[i].clone()).collect();
        let start = Instant::now();
        let ids = Tensor::from_vec(contexts.concat(), [b, len], &device)?;
        let mut logits = last_logits(model, &ids, &mut cache)?;
        let prefill_s = start.elapsed().as_secs_f64();
        let decode_start = Instant::now();
        let mut done = vec![false; b];
        let mut steps = 0;
        while steps < options.max_new_tokens && done.iter().any(|d| !d) {
            let mut next_ids = Vec::with_capacity(b);
            for r in 0..b {
                let next = samplers[r].next(&mut logits[r], &contexts[r]);
                if !done[r] {
                    contexts[r].push(next);
                    done[r] = Some(next) == options.stop_token;
                }
                next_ids.push(next);
            }
            steps += 1;
            if steps == options.max_new_tokens || cache.len() == block || done.iter().all(|&d| d) {
                break;
            }
            let ids = Tensor::from_vec(next_ids, [b, 1], &device)?;
            logits = last_logits(model, &ids, &mut cache)?;
        }
        let decode_s = decode_start.elapsed().as_secs_f64();
        for (r, &i) in rows.iter().enumerate() {
            let generated = contexts[r][len..].to_vec();
            results[i] = Some(Generation {
                prompt_ids: fitted[i].clone(),
                prefill_tokens_per_s: (b * len) as f64 / prefill_s.max(1e-9),
                decode_tokens_per_s: (b * steps.saturating_sub(1)) as f64 / decode_s.max(1e-9),
                generated_ids: generated,
            });
        }
    }
    Ok(results
        .into_iter()
        .map(|g| g.expect("every prompt belongs to a group"))
        .collect())
}
