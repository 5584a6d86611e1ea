//! Softmax and log-softmax over the last axis, forward and fused backward, parallel
//! over rows. Forward subtracts each row's maximum before exponentiating, so large
//! logits do not overflow.

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Result};

use super::lanes;
use crate::math::Real;
use crate::parallel::for_rows;
use crate::simd::multiversion;
use crate::view::{boxed, check_dims, common_dtype, rows_cols, typed, unsupported};

pub fn softmax_last(src: View<'_>, log: bool) -> Result<BoxStorage> {
    let op = if log { "log_softmax" } else { "softmax" };
    fn run<T: Real>(src: View<'_>, log: bool, op: &'static str) -> Result<BoxStorage> {
        let (_, cols) = rows_cols(op, src.dims())?;
        let x = typed::<T>(src, op)?.contiguous();
        let mut out = crate::pool::for_overwrite(x.len());
        for_rows(&mut out, cols, |first, out| {
            let x = &x[first * cols..first * cols + out.len()];
            if log {
                log_softmax_rows(x, out, cols);
            } else if !T::softmax_rows_native(x, out, cols) {
                softmax_rows(x, out, cols);
            }
        });
        Ok(boxed(out))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, log, op),
        DType::F64 => run::<f64>(src, log, op),
        other => Err(unsupported(op, other, "f32 or f64")),
    }
}

multiversion! {
    fn softmax_rows<T>(x: &[T], y: &mut [T], cols: usize) where [T: Real] {
        for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
            let m = lanes::max(x);
            let inv = lanes::map_sum(x, y, |x| (x - m).exp_v()).recip();
            for y in y.iter_mut() {
                *y = *y * inv;
            }
        }
    }
}

multiversion! {
    fn log_softmax_rows<T>(x: &[T], y: &mut [T], cols: usize) where [T: Real] {
        for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
            let lse = log_sum_exp(x);
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x - lse;
            }
        }
    }
}

/// `log(sum(exp(x)))`, computed as `m + log(sum(exp(x - m)))` with `m` the maximum.
#[inline(always)]
pub fn log_sum_exp<T: Real>(x: &[T]) -> T {
    let m = lanes::max(x);
    if m.is_infinite() {
        // All -inf (or some +inf): the shifted form would compute inf - inf.
        return m;
    }
    m + lanes::sum_map(x, |v| (v - m).exp_v()).ln()
}

/// Softmax: `dx = y * (dy - sum(dy * y))`. Log-softmax: `dx = dy - exp(y) * sum(dy)`.
pub fn softmax_last_backward(y: View<'_>, dy: View<'_>, log: bool) -> Result<BoxStorage> {
    let op = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    check_dims(op, "dy", dy.dims(), y.dims())?;
    fn run<T: Real>(y: View<'_>, dy: View<'_>, log: bool, op: &'static str) -> Result<BoxStorage> {
        let (_, cols) = rows_cols(op, y.dims())?;
        let y = typed::<T>(y, op)?.contiguous();
        let dy = typed::<T>(dy, op)?.contiguous();
        let mut dx = crate::pool::for_overwrite(y.len());
        for_rows(&mut dx, cols, |first, dx| {
            let range = first * cols..first * cols + dx.len();
            backward_rows(&y[range.clone()], &dy[range], dx, cols, log);
        });
        Ok(boxed(dx))
    }
    match common_dtype(op, &[y, dy])? {
        DType::F32 => run::<f32>(y, dy, log, op),
        DType::F64 => run::<f64>(y, dy, log, op),
        other => Err(unsupported(op, other, "f32 or f64")),
    }
}

multiversion! {
    fn backward_rows<T>(y: &[T], dy: &[T], dx: &mut [T], cols: usize, log: bool) where [T: Real] {
        let rows = y.chunks_exact(cols).zip(dy.chunks_exact(cols));
        for ((y, dy), dx) in rows.zip(dx.chunks_exact_mut(cols)) {
            if log {
                let s = lanes::sum(dy);
                for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = g - y.exp_v() * s;
                }
            } else {
                let s = lanes::sum_zip(y, dy, |a, b| a * b);
                for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = y * (g - s);
                }
            }
        }
    }
}
