//! Model-level rows: a training step (forward, loss, backward, clipping, AdamW) through
//! the library's `Trainer`, and generation's prefill and decode phases. Models are
//! randomly initialised (nothing is downloaded): speed does not depend on the weights.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use rusty_gradients::gpt::data::{SamplerKind, TextData};
use rusty_gradients::gpt::generate::{generate, GenerateOptions, Sampling};
use rusty_gradients::gpt::{Gpt, GptConfig, Precision, ScheduleKind, TrainConfig, Trainer};
use rusty_gradients::nn::Module;
use rusty_gradients::tokenize::CharTokenizer;
use rusty_gradients::{DType, Device};

use crate::target::Target;
use crate::{Measured, Reps};

/// A reproducible token stream in `[0, vocab)` (a 64-bit LCG; quality is irrelevant).
fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// `"B4xT64"` -> `(4, 64)`.
fn batch_dims(size: &str) -> Result<(usize, usize)> {
    let bad = || format!("size {size:?} is not BnxTn");
    let (b, t) = size.split_once('x').with_context(bad)?;
    let b = b
        .strip_prefix('B')
        .with_context(bad)?
        .parse()
        .with_context(bad)?;
    let t = t
        .strip_prefix('T')
        .with_context(bad)?
        .parse()
        .with_context(bad)?;
    Ok((b, t))
}

/// One optimizer step of `preset` ("gpt2" or "nano") at batch `BxT`, as `rgrad train`
/// runs it (constant LR, weight decay on matrices, clipping at 1.0, no dropout), on
/// `target`'s device, synchronised after each step; `bf16` is mixed precision (bf16
/// autocast of matmuls and attention, f32 master weights: `rgrad train --dtype bf16`).
pub fn train_step_on(preset: &str, size: &str, reps: &Reps, target: &Target) -> Result<Measured> {
    let precision = if target.dtype == "bf16" {
        Precision::Bf16
    } else {
        Precision::F32
    };
    let (b, t) = batch_dims(size)?;
    let config = GptConfig::preset(preset)?;
    let vocab = config.vocab_size;
    let model = Gpt::init(config, 1337, target.device())?;
    // Enough tokens that random batches never run short.
    let tokens = random_tokens((b * t + 1) * 64, vocab, 7);
    let data = TextData::new(tokens, 0.0, SamplerKind::Random, 7)?;
    // The trainer wants a tokenizer only for checkpoints; any will do.
    let tokenizer = CharTokenizer::from_text("abcdefghijklmnopqrstuvwxyz", &[]);
    let train = TrainConfig {
        batch_size: b,
        seq_len: t,
        steps: usize::MAX / 2,
        lr: 6e-4,
        min_lr: 0.0,
        lr_schedule: ScheduleKind::Constant,
        warmup: 0,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 1.0,
        grad_accum: 1,
        seed: 1337,
        eval_every: 0,
        eval_iters: 1,
        save_every: 0,
        keep_last: 0,
        precision,
    };
    let mut trainer = Trainer::new(model, Box::new(data), Box::new(tokenizer), train, None)?;
    let times = reps.run(|| {
        trainer.step()?;
        target.sync()
    })?;
    Ok(Measured::new(times, (b * t) as f64, "token"))
}

/// Bytes of weights one decoded token reads: every weight once in its stored form (the
/// tied `wte` as the LM head, Q8_0 matrices as int8 plus scales), except the position
/// table, of which it reads one row.
fn weight_bytes_per_token(model: &Gpt) -> f64 {
    let mut position_table = 0usize;
    model.visit_params(&mut |name, var| {
        if name.ends_with("wpe.weight") {
            position_table += var.elem_count() * var.dtype().size_in_bytes();
        }
    });
    (model.weight_bytes() - position_table) as f64
}

fn gpt2() -> Result<Gpt> {
    gpt2_on(Device::Cpu)
}

fn gpt2_on(device: Device) -> Result<Gpt> {
    Ok(Gpt::init(GptConfig::preset("gpt2")?, 1337, device)?)
}

/// GPT-2 with its weights in `dtype`, as `load_model_with_dtype` builds it (the
/// matmul weights stay in `dtype`, the rest is widened to f32).
fn gpt2_in(dtype: DType) -> Result<Gpt> {
    let model = gpt2()?;
    let mut tensors = HashMap::new();
    let mut failed = None;
    model.visit_params(&mut |name, var| match var.tensor().to_dtype(dtype) {
        Ok(t) => {
            tensors.insert(name.to_string(), t);
        }
        Err(e) => failed = Some(e),
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(Gpt::from_tensors(model.config().clone(), tensors)?)
}

fn options(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        sampling: Sampling::greedy(),
        stop_token: None,
        truncate: false,
        slide_context: true,
    }
}

/// Prefill of an `n`-token prompt (batch 1): the whole call that produces the first
/// new token (KV-cache allocation, the prompt's forward pass, sampling), which is what
/// the peer's `generate(max_new_tokens=1)` does too.
pub fn prefill(size: &str, reps: &Reps) -> Result<Measured> {
    let n: usize = size.parse().context("prefill size is the prompt length")?;
    let model = gpt2()?;
    let prompt = random_tokens(n, 50257, 3);
    let times = reps.run(|| {
        generate(&model, &prompt, &options(1), |_| Ok(true))?;
        Ok(())
    })?;
    Ok(Measured::new(times, n as f64, "token"))
}

/// Decode at batch 1: `"64+32"` is a 64-token prompt then 32 new tokens; a repetition's
/// time is the mean seconds per decoded token (generate's own decode timing). `dtype`
/// is the weights' (bf16: bf16 matmul weights, f32 compute).
pub fn decode(size: &str, dtype: DType, reps: &Reps) -> Result<Measured> {
    decode_model(size, reps, gpt2_in(dtype)?)
}

/// Decode at batch 1 on `target`'s device (f32 weights). Each decoded token is read
/// back to the host to pick the next, so the timing includes the device's work.
pub fn decode_on(size: &str, reps: &Reps, target: &Target) -> Result<Measured> {
    decode_model(size, reps, gpt2_on(target.device())?)
}

/// Decode with `wte` and the Linear weights quantized to Q8_0 (int8, an f16 scale per
/// 32), the rest f32: what `rgrad convert --dtype q8_0` produces.
pub fn decode_q8_0(size: &str, reps: &Reps) -> Result<Measured> {
    use rusty_gradients::cpu::q8;
    let model = rusty_gradients::gpt::quantized::quantize_model(&gpt2()?)?;
    let mut m = decode_model(size, reps, model)?;
    m.engine = Some(match rusty_gradients::cpu::q8::kernel() {
        q8::Kernel::Vnni => "rg-q8-vnni",
        q8::Kernel::Avx2 => "rg-q8-avx2",
        q8::Kernel::Widen => "rg-q8-widen",
    });
    Ok(m)
}

fn decode_model(size: &str, reps: &Reps, model: Gpt) -> Result<Measured> {
    let Some((p, n)) = size.split_once('+') else {
        bail!("decode size is PROMPT+NEW, got {size:?}");
    };
    let (p, n): (usize, usize) = (p.parse()?, n.parse()?);
    let prompt = random_tokens(p, 50257, 5);
    let weight_bytes = weight_bytes_per_token(&model);
    let times = reps.run_timed(|| {
        let g = generate(&model, &prompt, &options(n), |_| Ok(true))?;
        Ok(1.0 / g.decode_tokens_per_s)
    })?;
    let mut m = Measured::new(times, 1.0, "token");
    m.weight_bytes_per_token = Some(weight_bytes);
    Ok(m)
}
