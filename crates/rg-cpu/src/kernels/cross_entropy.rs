//! Cross-entropy of rows of logits against integer targets, fused with the softmax:
//! forward gives each row's loss and log-sum-exp, backward
//! `dlogits = dloss * (softmax(logits) - onehot(target))`. Rows whose target equals
//! `ignore_index` have loss 0 and zero gradient; any other target outside `0..v` is an
//! `IndexOutOfRange` error, reported before any work.

use rayon::prelude::*;
use rg_core::backend::{BoxStorage, CrossEntropyOutput, View};
use rg_core::{DType, Device, Error, Result};

use super::indexing::read_ids;
use super::softmax::log_sum_exp;
use crate::math::Real;
use crate::parallel::{for_rows, rows_per_task};
use crate::simd::multiversion;
use crate::view::{boxed, common_dtype, typed, unsupported};

const OP: &str = "cross_entropy";
const OP_BACKWARD: &str = "cross_entropy_backward";

/// Each row's target column, `None` where the row is ignored.
fn row_targets(
    targets: View<'_>,
    rows: usize,
    cols: usize,
    ignore: Option<i64>,
    op: &'static str,
) -> Result<Vec<Option<usize>>> {
    let ids = read_ids(targets, op)?;
    if ids.len() != rows {
        return Err(Error::backend(
            Device::Cpu,
            op,
            format!("{} targets for {rows} rows of logits", ids.len()),
        ));
    }
    ids.into_iter()
        .map(|t| match usize::try_from(t) {
            _ if Some(t) == ignore => Ok(None),
            Ok(c) if c < cols => Ok(Some(c)),
            _ => Err(Error::IndexOutOfRange {
                op,
                index: t,
                size: cols,
            }),
        })
        .collect()
}

fn logits_shape(logits: View<'_>, op: &'static str) -> Result<(usize, usize)> {
    match logits.dims() {
        &[n, v] => Ok((n, v)),
        dims => Err(Error::backend(
            Device::Cpu,
            op,
            format!("logits must be [n, v], got {dims:?}"),
        )),
    }
}

pub fn cross_entropy(
    logits: View<'_>,
    targets: View<'_>,
    ignore_index: Option<i64>,
) -> Result<CrossEntropyOutput> {
    let (rows, cols) = logits_shape(logits, OP)?;
    let targets = row_targets(targets, rows, cols, ignore_index, OP)?;
    fn run<T: Real>(
        logits: View<'_>,
        targets: &[Option<usize>],
        cols: usize,
    ) -> Result<CrossEntropyOutput> {
        let x = typed::<T>(logits, OP)?.contiguous();
        let rows = targets.len();
        let mut loss = crate::pool::zeroed(rows);
        let mut lse = crate::pool::zeroed(rows);
        if rows > 0 && cols > 0 {
            let per_task = rows_per_task(rows, cols);
            loss.par_chunks_mut(per_task)
                .zip(lse.par_chunks_mut(per_task))
                .zip(x.par_chunks(per_task * cols))
                .zip(targets.par_chunks(per_task))
                .for_each(|(((loss, lse), x), targets)| forward_rows(x, targets, loss, lse, cols));
        }
        Ok(CrossEntropyOutput {
            loss: boxed(loss),
            lse: boxed(lse),
        })
    }
    match logits.dtype() {
        DType::F32 => run::<f32>(logits, &targets, cols),
        DType::F64 => run::<f64>(logits, &targets, cols),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

pub fn cross_entropy_backward(
    logits: View<'_>,
    lse: View<'_>,
    targets: View<'_>,
    dloss: View<'_>,
    ignore_index: Option<i64>,
) -> Result<BoxStorage> {
    let (rows, cols) = logits_shape(logits, OP_BACKWARD)?;
    let targets = row_targets(targets, rows, cols, ignore_index, OP_BACKWARD)?;
    for (what, v) in [("lse", lse), ("dloss", dloss)] {
        if v.layout.elem_count() != rows {
            return Err(Error::backend(
                Device::Cpu,
                OP_BACKWARD,
                format!("{what} has shape {:?}, expected [{rows}]", v.dims()),
            ));
        }
    }
    fn run<T: Real>(
        logits: View<'_>,
        lse: View<'_>,
        dloss: View<'_>,
        targets: &[Option<usize>],
        cols: usize,
    ) -> Result<BoxStorage> {
        let x = typed::<T>(logits, OP_BACKWARD)?.contiguous();
        let lse = typed::<T>(lse, OP_BACKWARD)?.contiguous();
        let dloss = typed::<T>(dloss, OP_BACKWARD)?.contiguous();
        let mut dx = crate::pool::zeroed(x.len());
        for_rows(&mut dx, cols, |first, dx| {
            let rows = first..first + dx.len() / cols;
            let x = &x[first * cols..first * cols + dx.len()];
            backward_rows(
                x,
                &lse[rows.clone()],
                &dloss[rows.clone()],
                &targets[rows],
                dx,
                cols,
            );
        });
        Ok(boxed(dx))
    }
    match common_dtype(OP_BACKWARD, &[logits, lse, dloss])? {
        DType::F32 => run::<f32>(logits, lse, dloss, &targets, cols),
        DType::F64 => run::<f64>(logits, lse, dloss, &targets, cols),
        other => Err(unsupported(OP_BACKWARD, other, "f32 or f64")),
    }
}

multiversion! {
    fn forward_rows<T>(x: &[T], targets: &[Option<usize>], loss: &mut [T], lse: &mut [T], cols: usize)
    where [T: Real]
    {
        let rows = loss.iter_mut().zip(lse).zip(x.chunks_exact(cols)).zip(targets);
        for (((loss, lse), x), t) in rows {
            let l = log_sum_exp(x);
            *lse = l;
            *loss = t.map_or(T::zero(), |t| l - x[t]);
        }
    }
}

multiversion! {
    fn backward_rows<T>(x: &[T], lse: &[T], dloss: &[T], targets: &[Option<usize>], dx: &mut [T], cols: usize)
    where [T: Real]
    {
        let rows = dx.chunks_exact_mut(cols).zip(x.chunks_exact(cols));
        for ((((dx, x), &l), &g), t) in rows.zip(lse).zip(dloss).zip(targets) {
            let Some(t) = *t else {
                continue; // ignored: the gradient stays zero
            };
            for (dx, &x) in dx.iter_mut().zip(x) {
                *dx = g * (x - l).exp_v();
            }
            dx[t] = dx[t] - g;
        }
    }
}
