//! [`AdditionTrainer`]: the built-in addition task, trained one step per call.

use rg_core::Device;
use rg_gpt::generate::{generate, GenerateOptions, Sampling};
use rg_gpt::tasks::{addition_defaults, AdditionTask, ADDITION_TEST_PROBLEMS};
use rg_gpt::{Gpt, GptConfig, Trainer};
use rg_tokenize::Tokenizer;
use wasm_bindgen::prelude::*;

use crate::{ensure_backend, js_error};

/// The 3-digit addition task with `rgrad train`'s model and schedule: with the same
/// `steps` and `seed`, step `n` reports the loss `rgrad train --steps <steps> --seed
/// <seed>` reports at step `n` (up to kernel rounding).
#[wasm_bindgen]
pub struct AdditionTrainer {
    trainer: Trainer,
    task: AdditionTask,
    steps: usize,
}

#[wasm_bindgen]
impl AdditionTrainer {
    /// `steps`: the schedule's length (as `--steps`; the learning rate decays over it).
    /// `seed`: initialisation and data order (as `--seed`, default 1337).
    #[wasm_bindgen(constructor)]
    pub fn new(steps: u32, seed: u32) -> Result<AdditionTrainer, JsError> {
        ensure_backend();
        if steps == 0 {
            return Err(JsError::new("steps: must be at least 1"));
        }
        let (model_cfg, mut train) = addition_defaults();
        train.steps = steps as usize;
        train.seed = u64::from(seed);
        // Only the final evaluation in `rgrad train` happens after the last step; it
        // does not touch the training stream, so the losses do not depend on it.
        let task = AdditionTask::new(3, ADDITION_TEST_PROBLEMS, train.seed).map_err(js_error)?;
        let data = AdditionTask::new(3, ADDITION_TEST_PROBLEMS, train.seed).map_err(js_error)?;
        let model_cfg = GptConfig {
            vocab_size: task.tokenizer().vocab_size(),
            ..model_cfg
        };
        let model = Gpt::init(model_cfg, train.seed, Device::Cpu).map_err(js_error)?;
        let tokenizer: Box<dyn Tokenizer> = Box::new(task.tokenizer().clone());
        let trainer =
            Trainer::new(model, Box::new(data), tokenizer, train, None).map_err(js_error)?;
        Ok(AdditionTrainer {
            trainer,
            task,
            steps: steps as usize,
        })
    }

    /// Runs one optimizer step and returns its training loss.
    #[wasm_bindgen(js_name = trainStep)]
    pub fn train_step(&mut self) -> Result<f64, JsError> {
        if self.trainer.step_count() >= self.steps {
            return Err(JsError::new(&format!(
                "all {} steps are done (create a trainer with more steps)",
                self.steps
            )));
        }
        Ok(self.trainer.step().map_err(js_error)?.loss)
    }

    /// Steps taken so far.
    #[wasm_bindgen(getter, js_name = stepCount)]
    pub fn step_count(&self) -> u32 {
        self.trainer.step_count() as u32
    }

    /// The model's answer to `a + b` (greedy), as the sum's digits in normal order;
    /// `a` and `b` are 0 to 999.
    pub fn answer(&self, a: u32, b: u32) -> Result<String, JsError> {
        if a > 999 || b > 999 {
            return Err(JsError::new(&format!(
                "{a} + {b}: the task adds numbers from 0 to 999"
            )));
        }
        let tok = self.task.tokenizer();
        let prompt = tok.encode(&self.task.prompt(u64::from(a), u64::from(b)));
        let options = GenerateOptions {
            max_new_tokens: self.task.answer_len(),
            sampling: Sampling::greedy(),
            ..GenerateOptions::default()
        };
        let generation =
            generate(self.trainer.model(), &prompt, &options, |_| Ok(true)).map_err(js_error)?;
        let reversed = tok.decode(&generation.generated_ids).map_err(js_error)?;
        // The task writes sums least-significant digit first, ending with a newline.
        Ok(reversed.trim_end().chars().rev().collect())
    }

    /// Exact-match accuracy of greedy answers on the task's 500 held-out problems.
    pub fn accuracy(&self) -> Result<f64, JsError> {
        self.task.accuracy(self.trainer.model()).map_err(js_error)
    }
}
