//! Text generation with a preallocated KV cache: the prompt is prefilled in one pass,
//! then each new token costs one single-position forward. [`Generator`] is the one
//! mechanism (one token per call, sliding past the context); [`generate`] and
//! [`generate_batch`] drive it. Sampling: greedy, temperature, top-k, top-p (nucleus),
//! repetition penalty, seeded (`sampling.rs`).

mod generator;
mod sampling;

pub use generator::{slide_keep, GenerationStats, Generator};
pub use sampling::{Sampler, Sampling};

use crate::{Gpt, GptError, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends after this token (end-of-text).
    pub stop_token: Option<u32>,
    /// Keep the end of a prompt longer than the context instead of failing.
    pub truncate: bool,
    /// Keep generating when the context is full by sliding the window (see
    /// [`Generator`]); off, generation stops there.
    pub slide_context: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 64,
            sampling: Sampling::default(),
            stop_token: None,
            truncate: false,
            slide_context: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The prompt as used (truncated when `truncate` cut it).
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    /// Times the context window was full and slid.
    pub context_slides: usize,
    /// Generation ended because the context was full (sliding off).
    pub stopped_at_context: bool,
}

/// The prompt as it will be used: an error, or its tail with `truncate`, when it does
/// not fit the context with room for one new token.
pub(crate) fn fit_prompt(model: &Gpt, prompt: &[u32], truncate: bool) -> Result<Vec<u32>> {
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
/// Generation also ends after `stop_token` (which is included), after
/// `max_new_tokens`, or at a full context when `slide_context` is off.
pub fn generate(
    model: &Gpt,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<Generation> {
    let mut generator = Generator::new(model, *options)?;
    generator.prefill(prompt_ids)?;
    while let Some(id) = generator.next_token()? {
        if !on_token(id)? {
            break;
        }
    }
    Ok(generator.finish().remove(0))
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
    for len in lengths {
        let rows: Vec<usize> = (0..fitted.len())
            .filter(|&i| fitted[i].len() == len)
            .collect();
        let group: Vec<Vec<u32>> = rows.iter().map(|&i| fitted[i].clone()).collect();
        let mut generator = Generator::batched(model, *options, rows.len())?;
        generator.prefill_batch(&group)?;
        while generator.next_tokens()?.is_some() {}
        for (&i, generation) in rows.iter().zip(generator.finish()) {
            results[i] = Some(generation);
        }
    }
    Ok(results
        .into_iter()
        .map(|g| g.expect("every prompt belongs to a group"))
        .collect())
}
