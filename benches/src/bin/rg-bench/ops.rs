//! Kernel-level rows: matmul, row ops, attention forward+backward, the fused AdamW step.

use anyhow::{bail, Context, Result};
use rusty_gradients::autograd::Var;
use rusty_gradients::core::backend::AdamWParams;
use rusty_gradients::{DType, Device, Tensor};

use crate::target::Target;
use crate::{Measured, Reps};

/// `"4096x768"` -> `[4096, 768]`; a bare number is one dimension.
pub fn dims(size: &str) -> Result<Vec<usize>> {
    size.split('x')
        .map(|d| d.parse().with_context(|| format!("bad size {size:?}")))
        .collect()
}

/// A deterministic pattern in [-1, 1): values matter little for timing, NaNs would.
pub fn pattern(dims: &[usize], seed: usize) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i + seed) * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Ok(Tensor::from_vec(data, dims.to_vec(), &Device::Cpu)?)
}

/// Square matmul on `target`'s device and dtype (`tf32`: f32 data, TF32 products).
/// A repetition is `target.inner` products then one synchronisation; its time is the
/// mean per product. Work is 2n^3 FLOPs.
pub fn matmul_on(size: &str, reps: &Reps, target: &Target) -> Result<Measured> {
    let n = size.parse::<usize>().context("matmul size is n")?;
    let a = target.place(pattern(&[n, n], 0)?)?;
    let b = target.place(pattern(&[n, n], 1)?)?;
    target.sync()?;
    let inner = target.inner;
    let times = reps.run(|| {
        for _ in 0..inner {
            a.matmul(&b)?;
        }
        target.sync()
    })?;
    let per_product = times.iter().map(|t| t / inner as f64).collect();
    Ok(Measured::new(per_product, 2.0 * (n as f64).powi(3), "flop"))
}

/// Forward row ops read their input and write their output once: work is those bytes.
fn row_op(size: &str, reps: &Reps, op: impl Fn(&Tensor) -> Result<()>) -> Result<Measured> {
    let d = dims(size)?;
    let x = pattern(&d, 0)?;
    let times = reps.run(|| op(&x))?;
    Ok(Measured::new(
        times,
        2.0 * 4.0 * x.elem_count() as f64,
        "byte",
    ))
}

pub fn softmax(size: &str, reps: &Reps) -> Result<Measured> {
    row_op(size, reps, |x| {
        x.softmax_last()?;
        Ok(())
    })
}

pub fn layer_norm(size: &str, reps: &Reps) -> Result<Measured> {
    let cols = *dims(size)?.last().context("layer norm size")?;
    let gamma = Tensor::ones([cols], DType::F32, &Device::Cpu)?;
    let beta = Tensor::zeros([cols], DType::F32, &Device::Cpu)?;
    row_op(size, reps, |x| {
        x.layer_norm(&gamma, &beta, 1e-5)?;
        Ok(())
    })
}

pub fn gelu(size: &str, reps: &Reps) -> Result<Measured> {
    row_op(size, reps, |x| {
        x.gelu()?;
        Ok(())
    })
}

/// Causal attention as the GPT model composes it (q@k^T, scale, causal fill, softmax,
/// @v) with autograd's backward through all of it, for `BxHxTxD` inputs. Work: the
/// two forward and four backward batched matmuls, 12*B*H*T*T*D FLOPs.
pub fn attention(size: &str, reps: &Reps) -> Result<Measured> {
    let [b, h, t, d] = dims(size)?[..] else {
        bail!("attention size is BxHxTxD, got {size:?}");
    };
    let shape = [b, h, t, d];
    let q = Var::parameter(pattern(&shape, 0)?);
    let k = Var::parameter(pattern(&shape, 1)?);
    let v = Var::parameter(pattern(&shape, 2)?);
    let scale = 1.0 / (d as f64).sqrt();
    let times = reps.run(|| {
        let probs = q
            .matmul(&k.t()?)?
            .scale(scale)?
            .causal_fill(f64::NEG_INFINITY)?
            .softmax_last()?;
        let y = probs.matmul(&v)?;
        y.sum_all()?.backward()?;
        Ok(())
    })?;
    let flops = 12.0 * (b * h * t * t * d) as f64;
    Ok(Measured::new(times, flops, "flop"))
}

/// The fused causal attention op (`Var::attention`, one kernel each way) forward and
/// backward, on the same `BxHxTxD` sizes as `attention_fwd_bwd` (inputs `[b, t, h, d]`
/// as the models pass them). Work: that row's count over the causal half only, i.e.
/// `12 d` FLOPs per visible (query, key) pair per head, the recomputation of the
/// scores in the backward pass not counted.
pub fn fused_attention(size: &str, reps: &Reps) -> Result<Measured> {
    let [b, h, t, d] = dims(size)?[..] else {
        bail!("attention size is BxHxTxD, got {size:?}");
    };
    let shape = [b, t, h, d];
    let q = Var::parameter(pattern(&shape, 0)?);
    let k = Var::parameter(pattern(&shape, 1)?);
    let v = Var::parameter(pattern(&shape, 2)?);
    let scale = 1.0 / (d as f64).sqrt();
    let times = reps.run(|| {
        q.attention(&k, &v, scale)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let pairs = (t * (t + 1) / 2) as f64;
    Ok(Measured::new(
        times,
        12.0 * (b * h * d) as f64 * pairs,
        "flop",
    ))
}

/// Parameters of GPT-2 124M (the tied LM head counted once).
pub const GPT2_PARAMS: usize = 124_439_808;

/// One fused AdamW update of a 124M-element parameter (the whole of GPT-2 small as
/// one tensor). Work: bytes moved, reading p, g, m, v and writing p, m, v.
pub fn adamw(size: &str, reps: &Reps) -> Result<Measured> {
    if size != "124M" {
        bail!("adamw_step size is 124M");
    }
    let n = GPT2_PARAMS;
    let p = pattern(&[n], 0)?;
    let g = pattern(&[n], 1)?.scale(1e-3)?;
    let m = Tensor::zeros([n], DType::F32, &Device::Cpu)?;
    let v = Tensor::zeros([n], DType::F32, &Device::Cpu)?;
    let mut step = 0u64;
    let times = reps.run(|| {
        step += 1;
        let params = AdamWParams {
            grad_scale: 1.0,
            lr: 6e-4,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            step,
        };
        p.adamw_step_(&g, &m, &v, &params)?;
        Ok(())
    })?;
    Ok(Measured::new(times, 7.0 * 4.0 * n as f64, "byte"))
}
