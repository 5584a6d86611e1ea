//! Training data: batches of token ids and next-token targets.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{rng_state, GptError, Result};

/// `[b, t]` inputs and `[b, t]` targets; targets equal to `ignore_index` do not count.
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub ignore_index: Option<i64>,
}

impl Batch {
    pub fn from_tokens(
        x: Vec<u32>,
        y: Vec<u32>,
        b: usize,
        t: usize,
        device: &Device,
    ) -> Result<Batch> {
        Ok(Batch {
            ids: Tensor::from_vec(x, [b, t], device)?,
            targets: Tensor::from_vec(y, [b, t], device)?,
            ignore_index: None,
        })
    }

    pub fn tokens(&self) -> usize {
        self.ids.elem_count()
    }
}

/// Where training batches come from. Implementations are deterministic given their
/// state, which a checkpoint saves.
pub trait DataSource: Send {
    fn next_train(&mut self, b: usize, t: usize, device: &Device) -> Result<Batch>;
    /// The `i`-th held-out batch (deterministic), or `None` without held-out data.
    fn eval_batch(&self, i: usize, b: usize, t: usize, device: &Device) -> Result<Option<Batch>>;
    fn state(&self) -> Value;
    fn restore(&mut self, state: &Value) -> Result<()>;
    /// One line for logs: what the data is.
    fn describe(&self) -> String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Contiguous batches walking the stream (see `ARCHITECTURE.md`).
    Sequential,
    /// Rows starting at seeded random offsets.
    Random,
}

impl std::str::FromStr for SamplerKind {
    type Err = GptError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sequential" => Ok(SamplerKind::Sequential),
            "random" => Ok(SamplerKind::Random),
            other => Err(GptError::setting(
                "--sampler",
                format!("{other:?} is not one of: sequential, random"),
            )),
        }
    }
}

/// One token stream cut into a training part and a held-out tail.
pub struct TextData {
    train: Vec<u32>,
    eval: Vec<u32>,
    sampler: SamplerKind,
    /// Next sequential position in `train`.
    position: usize,
    rng: ChaCha8Rng,
}

impl TextData {
    /// Holds out the last `eval_fraction` of `tokens` (0 disables evaluation).
    pub fn new(
        tokens: Vec<u32>,
        eval_fraction: f64,
        sampler: SamplerKind,
        seed: u64,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&eval_fraction) {
            return Err(GptError::setting(
                "--eval-fraction",
                format!("{eval_fraction} is not in [0, 1)"),
            ));
        }
        if tokens.is_empty() {
            return Err(GptError::setting(
                "--data",
                "the text encodes to no tokens (is it empty?)",
            ));
        }
        let n_eval = (tokens.len() as f64 * eval_fraction).round() as usize;
        let mut train = tokens;
        let eval = train.split_off(train.len() - n_eval);
        Ok(TextData {
            train,
            eval,
            sampler,
            position: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5A4D_504C),
        })
    }

    pub fn train_tokens(&self) -> usize {
        self.train.len()
    }

    pub fn eval_tokens(&self) -> usize {
        self.eval.len()
    }

    fn check_len(&self, what: &str, len: usize, needed: usize) -> Result<()> {
        if len < needed {
            return Err(GptError::setting(
                "--data",
                format!("the {what} split has {len} tokens, fewer than the {needed} one batch needs (lower --batch-size or --seq-len)"),
            ));
        }
        Ok(())
    }
}

/// Rows `tokens[start + r*t ..][..t]` and their shifted targets.
fn contiguous_rows(tokens: &[u32], start: usize, b: usize, t: usize) -> (Vec<u32>, Vec<u32>) {
    let x = tokens[start..start + b * t].to_vec();
    let y = tokens[start + 1..start + b * t + 1].to_vec();
    (x, y)
}

impl DataSource for TextData {
    fn next_train(&mut self, b: usize, t: usize, device: &Device) -> Result<Batch> {
        match self.sampler {
            SamplerKind::Sequential => {
                self.check_len("training", self.train.len(), b * t + 1)?;
                if self.position + b * t + 1 > self.train.len() {
                    self.position = 0;
                }
                let (x, y) = contiguous_rows(&self.train, self.position, b, t);
                self.position += b * t;
                Batch::from_tokens(x, y, b, t, device)
            }
            SamplerKind::Random => {
                self.check_len("training", self.train.len(), t + 1)?;
                let (mut x, mut y) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
                for _ in 0..b {
                    let start = self.rng.random_range(0..=self.train.len() - t - 1);
                    x.extend_from_slice(&self.train[start..start + t]);
                    y.extend_from_slice(&self.train[start + 1..start + t + 1]);
                }
                Batch::from_tokens(x, y, b, t, device)
            }
        }
    }

    fn eval_batch(&self, i: usize, b: usize, t: usize, device: &Device) -> Result<Option<Batch>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        // Rows of t tokens walk the held-out stream, wrapping; each row is whole.
        let rows_available = (self.eval.len() - 1) / t;
        if rows_available == 0 {
            self.check_len("held-out", self.eval.len(), t + 1)?;
        }
        let (mut x, mut y) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for r in 0..b {
            let start = ((i * b + r) % rows_available) * t;
            x.extend_from_slice(&self.eval[start..start + t]);
            y.extend_from_slice(&self.eval[start + 1..start + t + 1]);
        }
        Batch::from_tokens(x, y, b, t, device).map(Some)
    }

    fn state(&self) -> Value {
        json!({
            "kind": "text",
            "sampler": self.sampler,
            "position": self.position,
            "rng": rng_state::to_json(&self.rng),
        })
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        let bad = || GptError::setting("trainer_state.json", "data state is malformed");
        self.position = state
            .get("position")
            .and_then(Value::as_u64)
            .ok_or_else(bad)? as usize;
        self.rng = rng_state::from_json(state.get("rng").ok_or_else(bad)?).ok_or_else(bad)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} training tokens, {} held out",
            self.train.len(),
            self.eval.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rg_cpu as _;

    #[test]
    fn sequential_sampler_follows_the_architecture_definition() {
        let tokens: Vec<u32> = (0..20).collect();
        let mut d = TextData::new(tokens, 0.0, SamplerKind::Sequential, 0).unwrap();
        let dev = Device::Cpu;
        let b0 = d.next_train(2, 3, &dev).unwrap();
        assert_eq!(b0.ids.to_vec::<u32>().unwrap(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(b0.targets.to_vec::<u32>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let b1 = d.next_train(2, 3, &dev).unwrap();
        assert_eq!(b1.ids.to_vec::<u32>().unwrap(), vec![6, 7, 8, 9, 10, 11]);
        let b2 = d.next_train(2, 3, &dev).unwrap();
        assert_eq!(b2.ids.to_vec::<u32>().unwrap()[0], 12);
        // 18 + 7 > 20: the stream starts again at 0.
        let b3 = d.next_train(2, 3, &dev).unwrap();
        assert_eq!(b3.ids.to_vec::<u32>().unwrap()[0], 0);
    }
}
