//! Mixed precision: inside [`autocast`], matrix products and attention run in a lower
//! precision (bf16) while parameters, optimizer state, normalisation, softmax of the
//! classifier and the residual stream stay f32, as with PyTorch's `torch.autocast`.
//! The casts are recorded ops, so gradients flow back to the f32 master weights.
//!
//! [`matmul`] is the one place a product of activations and a weight picks its
//! precision: the autocast dtype when one is active, else a half-precision weight's
//! own dtype (bf16/f16 inference weights: f32 activations are rounded to it, the
//! backend accumulates in f32, and the product comes back in f32).

use std::cell::Cell;

use rg_autograd::Var;
use rg_core::{DType, Result};

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

/// `x @ w` in the precision described in the module documentation; the result has
/// `x`'s dtype.
pub fn matmul(x: &Var, w: &Var) -> Result<Var> {
    let compute = match autocast_dtype() {
        Some(dtype) if x.dtype() == DType::F32 && dtype != DType::F32 => dtype,
        _ if x.dtype() == DType::F32 && matches!(w.dtype(), DType::BF16 | DType::F16) => w.dtype(),
        _ => return x.matmul(w),
    };
    x.to_dtype(compute)?
        .matmul(&w.to_dtype(compute)?)?
        .to_dtype(x.dtype())
}

/// A compute result back in f32 when autocast produced it in a lower precision.
pub fn to_f32(x: &Var) -> Result<Var> {
    if autocast_dtype().is_some() && x.dtype() != DType::F32 && x.dtype().is_float() {
        x.to_dtype(DType::F32)
    } else {
        Ok(x.clone())
    }
}
