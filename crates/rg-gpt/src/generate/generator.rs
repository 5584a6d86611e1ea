//! [`Generator`]: streaming generation, one token per call, over a preallocated KV
//! cache. Every other way of generating (`generate`, `generate_batch`, `rgrad
//! generate`) drives one of these.
//!
//! Context beyond the model's window: GPT-2's position embeddings are learned and
//! absolute, so cached keys cannot be shifted to new positions. When the cache is full
//! and another token must be fed, the generator keeps the last
//! [`slide_keep`]`(context)` tokens (half the window, rounded up), resets the cache
//! and prefills them at positions `0..keep` in one pass. Each token after the first
//! slide is therefore predicted from between `keep` and `context` preceding tokens
//! (nanoGPT's `sample.py` recomputes the full last `context` tokens for every token;
//! this costs one `keep`-token prefill per `context - keep` tokens instead). With
//! `slide_context` off, generation stops when the window is full.

use web_time::Instant;

use rg_core::{DType, Tensor};

use super::sampling::Sampler;
use super::{fit_prompt, GenerateOptions, Generation};
use crate::{Gpt, GptError, KvCache, Result};

/// How many of the newest tokens stay in the window when it slides.
pub fn slide_keep(context: usize) -> usize {
    context.div_ceil(2).max(1)
}

/// What happened to the context and how long the forwards took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens per row in the first prefill.
    pub prompt_tokens: usize,
    pub prefill_s: f64,
    /// Tokens fed after the prompt, per row (re-prefilled windows not counted).
    pub decoded_tokens: usize,
    /// Wall time of everything after the first prefill (slides included).
    pub decode_s: f64,
    /// Times the window was full and slid (see the module documentation).
    pub context_slides: usize,
    /// Generation ended because the window was full and sliding was off.
    pub stopped_at_context: bool,
}

/// Generates for `rows` prompts of one length in lockstep: `prefill` once, then
/// `next_token` (one row) or `next_tokens` (all rows) until `None`.
pub struct Generator<'m> {
    model: &'m Gpt,
    options: GenerateOptions,
    /// Sized at prefill: the whole context only when generation can reach it.
    cache: Option<KvCache>,
    samplers: Vec<Sampler>,
    /// Per row: the prompt as used and everything sampled since (the window's source).
    tokens: Vec<Vec<u32>>,
    /// Per row: tokens produced up to and including its stop token.
    outputs: Vec<Vec<u32>>,
    done: Vec<bool>,
    /// Logits of the next position per row, once the prompt is prefilled.
    logits: Option<Vec<Vec<f32>>>,
    /// Tokens sampled but not yet fed: fed on the next call, so the last token
    /// costs no forward pass.
    pending: Option<Vec<u32>>,
    steps: usize,
    finished: bool,
    stats: GenerationStats,
}

impl<'m> Generator<'m> {
    /// One row.
    pub fn new(model: &'m Gpt, options: GenerateOptions) -> Result<Self> {
        Self::batched(model, options, 1)
    }

    /// `rows` prompts of equal length, sharing each forward pass.
    pub fn batched(model: &'m Gpt, options: GenerateOptions, rows: usize) -> Result<Self> {
        options.sampling.validate()?;
        if rows == 0 {
            return Err(GptError::setting("generate", "no prompts to generate for"));
        }
        Ok(Generator {
            cache: None,
            samplers: (0..rows).map(|_| Sampler::new(options.sampling)).collect(),
            tokens: vec![Vec::new(); rows],
            outputs: vec![Vec::new(); rows],
            done: vec![false; rows],
            logits: None,
            pending: None,
            steps: 0,
            finished: false,
            stats: GenerationStats::default(),
            model,
            options,
        })
    }

    /// Runs the prompt through the model; returns it as used (its tail when
    /// `truncate` cut it).
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<u32>> {
        Ok(self.prefill_batch(&[prompt.to_vec()])?.remove(0))
    }

    /// Runs one prompt per row through the model; all must have the same length
    /// once fitted to the context.
    pub fn prefill_batch(&mut self, prompts: &[Vec<u32>]) -> Result<Vec<Vec<u32>>> {
        if self.logits.is_some() {
            return Err(GptError::setting(
                "generate",
                "the prompt was already prefilled",
            ));
        }
        if prompts.len() != self.rows() {
            return Err(GptError::setting(
                "generate",
                format!("{} prompts for {} rows", prompts.len(), self.rows()),
            ));
        }
        let fitted: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| fit_prompt(self.model, p, self.options.truncate))
            .collect::<Result<_>>()?;
        let len = fitted[0].len();
        if fitted.iter().any(|p| p.len() != len) {
            return Err(GptError::setting(
                "generate",
                "batched prompts must have one length",
            ));
        }
        // Room for the prompt and every token that will be fed back (the last new
        // token never is): a batch of short answers needs no full-context cache.
        let context = self.model.config().block_size;
        let needed = len + self.options.max_new_tokens.saturating_sub(1);
        let capacity = needed.min(context);
        self.cache = Some(KvCache::new(
            self.model.config(),
            self.rows(),
            capacity,
            &self.model.device(),
        )?);
        let start = Instant::now();
        self.logits = Some(self.forward(&fitted)?);
        self.stats.prefill_s = start.elapsed().as_secs_f64();
        self.stats.prompt_tokens = len;
        self.tokens = fitted.clone();
        Ok(fitted)
    }

    /// The next token of the only row, or `None` when generation is over (stop
    /// token returned last time, `max_new_tokens` reached, or the window full with
    /// sliding off).
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        if self.rows() != 1 {
            return Err(GptError::setting(
                "generate",
                format!("next_token on {} rows (use next_tokens)", self.rows()),
            ));
        }
        Ok(self.next_tokens()?.map(|ids| ids[0]))
    }

    /// The next token of every row (rows past their stop token ride along; their
    /// tokens are not part of their output), or `None` when all rows are done.
    pub fn next_tokens(&mut self) -> Result<Option<Vec<u32>>> {
        if self.logits.is_none() {
            return Err(GptError::setting("generate", "prefill the prompt first"));
        }
        if self.finished
            || self.steps == self.options.max_new_tokens
            || self.done.iter().all(|&d| d)
        {
            self.finished = true;
            return Ok(None);
        }
        if let Some(ids) = self.pending.take() {
            let start = Instant::now();
            let fed = self.feed(ids);
            self.stats.decode_s += start.elapsed().as_secs_f64();
            if !fed? {
                self.finished = true;
                return Ok(None);
            }
        }
        let window = self.cache_mut().len();
        let logits = self.logits.as_mut().expect("checked above");
        let mut next = Vec::with_capacity(logits.len());
        for (r, row) in logits.iter_mut().enumerate() {
            let seen = &self.tokens[r][self.tokens[r].len() - window..];
            next.push(self.samplers[r].next(row, seen));
        }
        for (r, &id) in next.iter().enumerate() {
            self.tokens[r].push(id);
            if !self.done[r] {
                self.outputs[r].push(id);
                self.done[r] = Some(id) == self.options.stop_token;
            }
        }
        self.steps += 1;
        self.pending = Some(next.clone());
        Ok(Some(next))
    }

    pub fn stats(&self) -> &GenerationStats {
        &self.stats
    }

    pub fn rows(&self) -> usize {
        self.samplers.len()
    }

    /// The result of each row: prompt as used, tokens generated, speeds, context events.
    pub fn finish(self) -> Vec<Generation> {
        let s = self.stats;
        let b = self.rows();
        let prompt_len = s.prompt_tokens;
        self.tokens
            .into_iter()
            .zip(self.outputs)
            .map(|(tokens, generated_ids)| Generation {
                prompt_ids: tokens[..prompt_len].to_vec(),
                generated_ids,
                prefill_tokens_per_s: (b * prompt_len) as f64 / s.prefill_s.max(1e-9),
                decode_tokens_per_s: (b * s.decoded_tokens) as f64 / s.decode_s.max(1e-9),
                context_slides: s.context_slides,
                stopped_at_context: s.stopped_at_context,
            })
            .collect()
    }

    /// Feeds the newest token of each row; slides the window first when it is full.
    /// `false`: the window is full and sliding is off.
    fn feed(&mut self, ids: Vec<u32>) -> Result<bool> {
        let cache = self.cache_mut();
        // The cache is smaller than the context only when no feed can overflow it.
        let logits = if cache.len() < cache.capacity() {
            self.forward(&ids.into_iter().map(|id| vec![id]).collect::<Vec<_>>())?
        } else if self.options.slide_context {
            // `tokens` already ends with `ids`: the kept tail includes them.
            let keep = slide_keep(self.model.config().block_size);
            let tails: Vec<Vec<u32>> = self
                .tokens
                .iter()
                .map(|t| t[t.len() - keep..].to_vec())
                .collect();
            self.cache_mut().reset();
            self.stats.context_slides += 1;
            self.forward(&tails)?
        } else {
            self.stats.stopped_at_context = true;
            return Ok(false);
        };
        self.logits = Some(logits);
        self.stats.decoded_tokens += 1;
        Ok(true)
    }

    fn cache_mut(&mut self) -> &mut KvCache {
        self.cache.as_mut().expect("allocated by prefill")
    }

    /// Logits of the last position of each row after appending `rows` to the cache.
    fn forward(&mut self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let t = rows[0].len();
        let ids = Tensor::from_vec(rows.concat(), [rows.len(), t], &self.model.device())?;
        let cache = self.cache.as_mut().expect("allocated by prefill");
        let hidden = self.model.hidden_cached(&ids, cache)?;
        let logits = rg_autograd::no_grad(|| self.model.lm_head(&hidden.narrow(1, t - 1, 1)?))?;
        let v = self.model.config().vocab_size;
        let flat = logits.tensor().to_dtype(DType::F32)?.to_vec::<f32>()?;
        Ok(flat.chunks_exact(v).map(<[f32]>::to_vec).collect())
    }
}
