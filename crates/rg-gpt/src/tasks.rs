//! Built-in tasks: data the program generates itself, so `rgrad train` works with no
//! download.
//!
//! [`AdditionTask`]: `aaa+bbb=ssss` problems. The sum is written least-significant
//! digit first (`123+045=8610` means 168), which lets a causal model produce each
//! digit after the carry it depends on; every problem ends with a newline.
//! About a tenth of all `(a, b)` pairs never appear in training; held-out accuracy
//! is exact match of greedy answers on them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_core::{Device, Tensor};
use rg_tokenize::{CharTokenizer, Tokenizer};
use serde_json::{json, Value};

use crate::data::{Batch, DataSource};
use crate::generate::{generate_batch, GenerateOptions, Sampling};
use crate::train::{ScheduleKind, TrainConfig};
use crate::{rng_state, Gpt, GptConfig, GptError, Result};

/// Targets at prompt positions: not scored.
const IGNORE: i64 = -1;
const ALPHABET: &str = "0123456789+=\n";

/// Held-out problems of the built-in task (its accuracy is measured on them).
pub const ADDITION_TEST_PROBLEMS: usize = 500;

/// Settings of the built-in 3-digit addition task: a model and schedule that reach
/// high held-out accuracy in a couple of minutes on two cores. `rgrad train` and the
/// browser build both start from these, so the same seed trains the same model.
pub fn addition_defaults() -> (GptConfig, TrainConfig) {
    let model = GptConfig {
        vocab_size: 13,
        block_size: 16,
        n_layer: 2,
        n_head: 4,
        n_embd: 96,
        layer_norm_eps: 1e-5,
        dropout: 0.0,
    };
    let train = TrainConfig {
        batch_size: 64,
        seq_len: 12,
        steps: 2500,
        lr: 1e-3,
        min_lr: 1e-4,
        lr_schedule: ScheduleKind::Cosine,
        warmup: 50,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        grad_clip: 1.0,
        grad_accum: 1,
        seed: 1337,
        eval_every: 500,
        eval_iters: 4,
        save_every: 0,
        keep_last: 0,
        precision: Default::default(),
    };
    (model, train)
}

pub struct AdditionTask {
    digits: usize,
    tokenizer: CharTokenizer,
    rng: ChaCha8Rng,
    test: Vec<(u64, u64)>,
}

impl AdditionTask {
    pub fn new(digits: usize, test_problems: usize, seed: u64) -> Result<Self> {
        if !(1..=9).contains(&digits) {
            return Err(GptError::setting(
                "task",
                format!("{digits} digits: supported are 1 to 9"),
            ));
        }
        let tokenizer = CharTokenizer::from_chars(ALPHABET.chars().collect(), &[], None)?;
        let mut test_rng = ChaCha8Rng::seed_from_u64(0x7E57);
        let limit = 10u64.pow(digits as u32);
        let mut test = Vec::with_capacity(test_problems);
        let mut guard = 0;
        while test.len() < test_problems && guard < 100 * test_problems + 1000 {
            guard += 1;
            let pair = (
                test_rng.random_range(0..limit),
                test_rng.random_range(0..limit),
            );
            if is_held_out(pair) && !test.contains(&pair) {
                test.push(pair);
            }
        }
        Ok(AdditionTask {
            digits,
            tokenizer,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xADD),
            test,
        })
    }

    pub fn tokenizer(&self) -> &CharTokenizer {
        &self.tokenizer
    }

    /// Characters of a prompt (`aaa+bbb=`).
    pub fn prompt_len(&self) -> usize {
        2 * self.digits + 2
    }

    /// Characters of the answer including its newline.
    pub fn answer_len(&self) -> usize {
        self.digits + 2
    }

    /// Tokens per training row (the whole problem minus the last character).
    pub fn seq_len(&self) -> usize {
        self.prompt_len() + self.answer_len() - 1
    }

    pub fn prompt(&self, a: u64, b: u64) -> String {
        format!("{a:0w$}+{b:0w$}=", w = self.digits)
    }

    pub fn answer(&self, a: u64, b: u64) -> String {
        let sum = format!("{:0w$}", a + b, w = self.digits + 1);
        sum.chars().rev().chain(['\n']).collect()
    }

    pub fn test_problems(&self) -> &[(u64, u64)] {
        &self.test
    }

    fn encode_problem(&self, a: u64, b: u64) -> Vec<u32> {
        self.tokenizer
            .encode(&(self.prompt(a, b) + &self.answer(a, b)))
    }

    fn batch_of(&self, pairs: &[(u64, u64)], device: &Device) -> Result<Batch> {
        let t = self.seq_len();
        let (mut x, mut y) = (
            Vec::with_capacity(pairs.len() * t),
            Vec::with_capacity(pairs.len() * t),
        );
        for &(a, b) in pairs {
            let tokens = self.encode_problem(a, b);
            x.extend(tokens[..t].iter().copied());
            for (i, &tok) in tokens[1..].iter().enumerate() {
                // Position i predicts character i + 1; only answer characters count.
                y.push(if i + 1 >= self.prompt_len() {
                    tok as i64
                } else {
                    IGNORE
                });
            }
        }
        Ok(Batch {
            ids: Tensor::from_vec(x, [pairs.len(), t], device)?,
            targets: Tensor::from_vec(y, [pairs.len(), t], device)?,
            ignore_index: Some(IGNORE),
        })
    }

    /// Exact-match accuracy of greedy answers on the held-out problems.
    pub fn accuracy(&self, model: &Gpt) -> Result<f64> {
        if self.test.is_empty() {
            return Ok(0.0);
        }
        let prompts: Vec<Vec<u32>> = self
            .test
            .iter()
            .map(|&(a, b)| self.tokenizer.encode(&self.prompt(a, b)))
            .collect();
        let options = GenerateOptions {
            max_new_tokens: self.answer_len(),
            sampling: Sampling::greedy(),
            stop_token: None,
            truncate: false,
            slide_context: true,
        };
        // All prompts have one length, so this is one batched prefill and decode.
        let generations = generate_batch(model, &prompts, &options)?;
        let mut correct = 0;
        for (&(a, b), g) in self.test.iter().zip(&generations) {
            if self.tokenizer.decode(&g.generated_ids)? == self.answer(a, b) {
                correct += 1;
            }
        }
        Ok(correct as f64 / self.test.len() as f64)
    }
}

/// Whether a pair belongs to the held-out tenth (a fixed hash, so the split never
/// depends on the seed).
fn is_held_out((a, b): (u64, u64)) -> bool {
    let h = (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .rotate_left(29);
    h.wrapping_mul(0x1656_67B1_9E37_79F9) >> 60 < 2 // 2 of 16 buckets: 12.5 %
}

impl DataSource for AdditionTask {
    fn next_train(&mut self, b: usize, _t: usize, device: &Device) -> Result<Batch> {
        let limit = 10u64.pow(self.digits as u32);
        let mut pairs = Vec::with_capacity(b);
        while pairs.len() < b {
            let pair = (
                self.rng.random_range(0..limit),
                self.rng.random_range(0..limit),
            );
            if !is_held_out(pair) {
                pairs.push(pair);
            }
        }
        self.batch_of(&pairs, device)
    }

    fn eval_batch(&self, i: usize, b: usize, _t: usize, device: &Device) -> Result<Option<Batch>> {
        if self.test.is_empty() {
            return Ok(None);
        }
        let pairs: Vec<(u64, u64)> = (0..b)
            .map(|r| self.test[(i * b + r) % self.test.len()])
            .collect();
        self.batch_of(&pairs, device).map(Some)
    }

    fn state(&self) -> Value {
        json!({ "kind": "addition", "rng": rng_state::to_json(&self.rng) })
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        self.rng = state
            .get("rng")
            .and_then(rng_state::from_json)
            .ok_or_else(|| GptError::setting("trainer_state.json", "task state is malformed"))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "built-in task: {d}-digit addition ({n} held-out problems never trained on)",
            d = self.digits,
            n = self.test.len()
        )
    }
}
