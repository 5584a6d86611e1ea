//! Layer norm over the last axis, forward (y, and per row mean and rstd) and fused
//! backward (dx, dgamma, dbeta), parallel over rows.
//!
//! Statistics use two passes over the row (mean, then the mean of squared deviations)
//! on data shifted by the row's first element: the one-pass `E[x^2] - E[x]^2` cancels
//! badly in f32, and a mean that is off by one ulp gets amplified by `rstd` when the
//! variance is tiny; the shift makes constant rows exact and keeps offset rows accurate. dgamma and dbeta are sums over rows: each task accumulates its own partial
//! sums, which are added at the end, so threads never contend.

use rayon::prelude::*;
use rg_core::backend::{LayerNormGrads, LayerNormOutput, View};
use rg_core::{DType, Result};

use super::lanes;
use crate::math::Real;
use crate::parallel::rows_per_task;
use crate::simd::multiversion;
use crate::view::{boxed, check_dims, common_dtype, rows_cols, typed, unsupported};

const OP: &str = "layer_norm";
const OP_BACKWARD: &str = "layer_norm_backward";

pub fn layer_norm(
    x: View<'_>,
    gamma: View<'_>,
    beta: View<'_>,
    eps: f64,
) -> Result<LayerNormOutput> {
    let (_, cols) = rows_cols(OP, x.dims())?;
    check_dims(OP, "gamma", gamma.dims(), &[cols])?;
    check_dims(OP, "beta", beta.dims(), &[cols])?;
    match common_dtype(OP, &[x, gamma, beta])? {
        DType::F32 => forward::<f32>(x, gamma, beta, eps),
        DType::F64 => forward::<f64>(x, gamma, beta, eps),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

fn forward<T: Real>(
    x: View<'_>,
    gamma: View<'_>,
    beta: View<'_>,
    eps: f64,
) -> Result<LayerNormOutput> {
    let (rows, cols) = rows_cols(OP, x.dims())?;
    let x = typed::<T>(x, OP)?.contiguous();
    let gamma = typed::<T>(gamma, OP)?.contiguous();
    let beta = typed::<T>(beta, OP)?.contiguous();
    let mut y = crate::pool::for_overwrite(rows * cols);
    let mut mean = crate::pool::zeroed(rows);
    let mut rstd = crate::pool::zeroed(rows);
    if rows > 0 && cols > 0 {
        let per_task = rows_per_task(rows, cols);
        y.par_chunks_mut(per_task * cols)
            .zip(mean.par_chunks_mut(per_task))
            .zip(rstd.par_chunks_mut(per_task))
            .zip(x.par_chunks(per_task * cols))
            .for_each(|(((y, mean), rstd), x)| {
                if !T::layer_norm_rows_native(x, &gamma, &beta, y, mean, rstd, eps) {
                    forward_rows(x, &gamma, &beta, y, mean, rstd, eps)
                }
            });
    }
    Ok(LayerNormOutput {
        y: boxed(y),
        mean: boxed(mean),
        rstd: boxed(rstd),
    })
}

multiversion! {
    fn forward_rows<T>(x: &[T], gamma: &[T], beta: &[T], y: &mut [T], mean: &mut [T], rstd: &mut [T], eps: f64)
    where [T: Real]
    {
        let cols = gamma.len();
        let (n, eps) = (T::from_f64(cols as f64), T::from_f64(eps));
        let rows = x.chunks_exact(cols).zip(y.chunks_exact_mut(cols));
        for ((x, y), (mean, rstd)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
            // Shifted by the row's first element: exact for constant rows, and no
            // cancellation when the row sits far from zero.
            let shift = x[0];
            let mu = shift + lanes::sum_map(x, |v| v - shift) / n;
            let var = lanes::sum_map(x, |v| (v - mu) * (v - mu)) / n;
            let r = (var + eps).sqrt().recip();
            for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                *y = (x - mu) * r * g + b;
            }
            *mean = mu;
            *rstd = r;
        }
    }
}

/// With `xhat = (x - mean) * rstd` and `g = dy * gamma`:
/// `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`, `dgamma = sum_rows(dy * xhat)`,
/// `dbeta = sum_rows(dy)`.
pub fn layer_norm_backward(
    dy: View<'_>,
    x: View<'_>,
    gamma: View<'_>,
    mean: View<'_>,
    rstd: View<'_>,
) -> Result<LayerNormGrads> {
    let (rows, cols) = rows_cols(OP_BACKWARD, x.dims())?;
    check_dims(OP_BACKWARD, "dy", dy.dims(), x.dims())?;
    check_dims(OP_BACKWARD, "gamma", gamma.dims(), &[cols])?;
    for (what, v) in [("mean", mean), ("rstd", rstd)] {
        if v.layout.elem_count() != rows {
            check_dims(OP_BACKWARD, what, v.dims(), &[rows])?;
        }
    }
    match common_dtype(OP_BACKWARD, &[dy, x, gamma, mean, rstd])? {
        DType::F32 => backward::<f32>(dy, x, gamma, mean, rstd),
        DType::F64 => backward::<f64>(dy, x, gamma, mean, rstd),
        other => Err(unsupported(OP_BACKWARD, other, "f32 or f64")),
    }
}

fn backward<T: Real>(
    dy: View<'_>,
    x: View<'_>,
    gamma: View<'_>,
    mean: View<'_>,
    rstd: View<'_>,
) -> Result<LayerNormGrads> {
    let (rows, cols) = rows_cols(OP_BACKWARD, x.dims())?;
    let dy = typed::<T>(dy, OP_BACKWARD)?.contiguous();
    let x = typed::<T>(x, OP_BACKWARD)?.contiguous();
    let gamma = typed::<T>(gamma, OP_BACKWARD)?.contiguous();
    let mean = typed::<T>(mean, OP_BACKWARD)?.contiguous();
    let rstd = typed::<T>(rstd, OP_BACKWARD)?.contiguous();
    let mut dx = crate::pool::for_overwrite(rows * cols);
    let zeros = || (crate::pool::zeroed(cols), crate::pool::zeroed(cols));
    let (dgamma, dbeta) = if rows == 0 || cols == 0 {
        zeros()
    } else {
        let per_task = rows_per_task(rows, cols);
        dx.par_chunks_mut(per_task * cols)
            .enumerate()
            .map(|(task, dx)| {
                let first = task * per_task;
                let n = dx.len() / cols;
                let range = first * cols..first * cols + dx.len();
                let (mut dgamma, mut dbeta) = zeros();
                backward_rows(
                    &x[range.clone()],
                    &dy[range],
                    &gamma,
                    &mean[first..first + n],
                    &rstd[first..first + n],
                    dx,
                    &mut dgamma,
                    &mut dbeta,
                );
                (dgamma, dbeta)
            })
            .reduce(zeros, |(mut ga, mut ba), (gb, bb)| {
                add_into(&mut ga, &gb);
                add_into(&mut ba, &bb);
                (ga, ba)
            })
    };
    Ok(LayerNormGrads {
        dx: boxed(dx),
        dgamma: boxed(dgamma),
        dbeta: boxed(dbeta),
    })
}

multiversion! {
    /// Rows of `dx`, and this task's partial `dgamma` and `dbeta` added into theirs.
    fn backward_rows<T>(
        x: &[T],
        dy: &[T],
        gamma: &[T],
        mean: &[T],
        rstd: &[T],
        dx: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
    ) where [T: Real] {
        let cols = gamma.len();
        let n = T::from_f64(cols as f64);
        let rows = x.chunks_exact(cols).zip(dy.chunks_exact(cols)).zip(dx.chunks_exact_mut(cols));
        for (((x, dy), dx), (&mu, &rs)) in rows.zip(mean.iter().zip(rstd)) {
            let xhat = |v: T| (v - mu) * rs;
            let mean_g = lanes::sum_zip(dy, gamma, |d, g| d * g) / n;
            let mean_gx = lanes::sum_zip3(dy, gamma, x, |d, g, v| d * g * xhat(v)) / n;
            let grads = dgamma.iter_mut().zip(dbeta.iter_mut());
            for ((((dx, &d), &g), &v), (dg, db)) in dx.iter_mut().zip(dy).zip(gamma).zip(x).zip(grads) {
                let h = xhat(v);
                *dx = rs * (d * g - mean_g - h * mean_gx);
                *dg = *dg + d * h;
                *db = *db + d;
            }
        }
    }
}

fn add_into<T: Real>(acc: &mut [T], other: &[T]) {
    for (a, &b) in acc.iter_mut().zip(other) {
        *a = *a + b;
    }
}
