//! Mixed precision: inside [`autocast`], matrix products and attention run in a lower
//! precision (bf16) while parameters, optimizer state, normalisation, softmax of the
//! classifier and the residual stream stay f32, as with PyTorch's `torch.autocast`.
//! The casts are recorded ops, so gradients flow back to the f32 master weights.
//!
//! [`matmul`] is the one place a product of activations and a weight picks its
//! precision: the autocast dtype when one is active (f32 activations and weights are
//! rounded to it, multiplied with f32 accumulation, and the product and both
//! gradients come back in f32 unrounded: [`Var::matmul_mixed`]), else a
//! half-precision weight's own dtype (bf16/f16 inference weights: f32 activations are
//! rounded to it, the backend accumulates in f32, and the product comes back in f32).
//! A Q8_0 weight
//! ([`Weight::Q8`]) always goes to the backend's `matmul_q8` with f32 activations (its
//! kernels pick their own internal precision); it has no gradient, so the product is
//! an error while gradients are being recorded for `x`.

use std::cell::Cell;

use rg_autograd::{is_grad_enabled, Var};
use rg_core::{DType, Error, Result};

use crate::Weight;

thread_local! {
    static COMPUTE: Cell<Option<DType>> = const { Cell::new(None) };
}

/// Runs `f` with matmuls and attention computed in `dtype` (`None`: as stored).
pub fn autocast<R>(dtype: Option<DType>, f: impl FnOnce() -> R) -> R {
    let previous = COMPUTE.with(|c| c.replace(dtype));
    let out = f();
    COMPUTE.with(|c| c.set(previous));
    out
}

/// The compute dtype of the innermost [`autocast`], if any.
pub fn autocast_dtype() -> Option<DType> {
    COMPUTE.with(Cell::get)
}

/// `x` converted to the autocast dtype when one is active and `x` is wider f32;
/// otherwise `x` itself.
pub fn for_compute(x: &Var) -> Result<Var> {
    match autocast_dtype() {
        Some(dtype) if x.dtype() == DType::F32 && dtype != DType::F32 => x.to_dtype(dtype),
        _ => Ok(x.clone()),
    }
}

/// `x @ w` (or `x · qᵀ` for a Q8_0 weight) in the precision described in the module
/// documentation; the result has `x`'s dtype.
pub fn matmul(x: &Var, w: &Weight) -> Result<Var> {
    let w = match w {
        Weight::Dense(w) => w,
        Weight::Q8(q) => {
            if is_grad_enabled() && x.requires_grad() {
                return Err(Error::invalid(
                    "matmul",
                    "q8_0 weights are for inference only (wrap the call in no_grad)",
                ));
            }
            let x32 = x.tensor().to_dtype(DType::F32)?;
            let y = x32.matmul_q8(q)?.to_dtype(x.dtype())?;
            return Ok(Var::constant(y));
        }
    };
    if let Some(compute) = autocast_product(x, w) {
        return x.matmul_mixed(w, None, compute);
    }
    match lower_precision(x, w) {
        Some(compute) => x
            .to_dtype(compute)?
            .matmul(&w.to_dtype(compute)?)?
            .to_dtype(x.dtype()),
        None => x.matmul(w),
    }
}

/// `x @ w + bias` (a linear layer), precision as [`matmul`]. The bias is folded into
/// the product (one op, no second pass over the output) when the product is computed
/// in `x`'s own dtype or is an autocast product of f32 vars; otherwise it is added to
/// the product cast back.
pub fn linear(x: &Var, w: &Weight, bias: Option<&Var>) -> Result<Var> {
    if let (Weight::Dense(dense), Some(b)) = (w, bias) {
        if let Some(compute) = autocast_product(x, dense).filter(|_| b.dtype() == DType::F32) {
            return x.matmul_mixed(dense, Some(b), compute);
        }
        if lower_precision(x, dense).is_none() && b.dtype() == x.dtype() {
            return x.matmul_bias(dense, b);
        }
    }
    match bias {
        Some(b) => matmul(x, w)?.add(b),
        None => matmul(x, w),
    }
}

/// The compute dtype when `x @ w` is an autocast product of f32 vars, which
/// [`Var::matmul_mixed`] computes in one op.
fn autocast_product(x: &Var, w: &Var) -> Option<DType> {
    lower_precision(x, w).filter(|_| w.dtype() == DType::F32)
}

/// The dtype a product of `x` and the dense weight `w` is computed in, when it is
/// not `x`'s own.
fn lower_precision(x: &Var, w: &Var) -> Option<DType> {
    match autocast_dtype() {
        Some(dtype) if x.dtype() == DType::F32 && dtype != DType::F32 => Some(dtype),
        _ if x.dtype() == DType::F32 && matches!(w.dtype(), DType::BF16 | DType::F16) => {
            Some(w.dtype())
        }
        _ => None,
    }
}

/// A compute result back in f32 when autocast produced it in a lower precision.
pub fn to_f32(x: &Var) -> Result<Var> {
    if autocast_dtype().is_some() && x.dtype() != DType::F32 && x.dtype().is_float() {
        x.to_dtype(DType::F32)
    } else {
        Ok(x.clone())
    }
}
