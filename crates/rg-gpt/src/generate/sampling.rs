//! Choosing the next token from a row of logits: greedy, temperature, top-k, top-p
//! (nucleus), repetition penalty, with a seeded generator so runs repeat.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{GptError, Result};

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
