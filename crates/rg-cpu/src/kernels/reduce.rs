//! Reductions along one axis: Sum, Max, Min and ArgMax (u32, first maximum wins).
//! The output has the input's shape with the axis removed.
//!
//! Two loop orders: when the reduced elements lie closer together than neighbouring
//! outputs (e.g. the last axis of a row-major tensor) each output reduces its own run;
//! otherwise (e.g. summing rows of a matrix) whole runs of outputs are accumulated at
//! once, one slice of the input after another, which keeps the inner loop unit-stride.
//! Max and Min propagate NaN; ArgMax treats NaN as the maximum.

use rayon::prelude::*;
use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Device, Error, FloatDType, ReduceOp, Result, Shape};

use super::lanes;
use super::map::drive_weighted;
use crate::aligned::AlignedVec;
use crate::math::Real;
use crate::parallel::{chunk_len, PAR_THRESHOLD};
use crate::simd::multiversion;
use crate::strided::Walk;
use crate::view::{boxed, typed, unsupported, Typed};

pub fn reduce(op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage> {
    let name = op.name();
    let dims = src.dims();
    if axis >= dims.len() {
        return Err(Error::AxisOutOfRange {
            op: name,
            axis: axis as isize,
            rank: dims.len(),
            shape: Shape::new(dims),
        });
    }
    let len = dims[axis];
    if len == 0 && op != ReduceOp::Sum {
        return Err(Error::backend(
            Device::Cpu,
            name,
            format!("axis {axis} of shape {dims:?} is empty"),
        ));
    }
    if op == ReduceOp::ArgMax && len > u32::MAX as usize {
        return Err(Error::backend(
            Device::Cpu,
            name,
            "axis too long for u32 indices",
        ));
    }
    match src.dtype() {
        DType::F32 => run::<f32>(op, typed(src, name)?, axis),
        DType::F64 => run::<f64>(op, typed(src, name)?, axis),
        other => Err(unsupported(name, other, "f32 or f64")),
    }
}

/// How one reduction step combines a running value with the next element.
#[derive(Clone, Copy)]
enum Fold {
    Sum,
    Max,
    Min,
}

impl Fold {
    #[inline(always)]
    fn step<T: FloatDType>(self, acc: T, x: T) -> T {
        match self {
            Fold::Sum => acc + x,
            // Once `acc` is NaN neither comparison holds, so NaN sticks.
            Fold::Max => {
                if x > acc || x.is_nan() {
                    x
                } else {
                    acc
                }
            }
            Fold::Min => {
                if x < acc || x.is_nan() {
                    x
                } else {
                    acc
                }
            }
        }
    }
}

/// Whether `x` (later) replaces `best` (earlier) as the arg-maximum.
#[inline(always)]
fn beats<T: FloatDType>(x: T, best: T) -> bool {
    x > best || (x.is_nan() && !best.is_nan())
}

fn run<T: Real>(op: ReduceOp, src: Typed<'_, T>, axis: usize) -> Result<BoxStorage> {
    let dims = src.dims();
    let len = dims[axis];
    let axis_stride = src.layout.strides()[axis];
    // The outputs seen as a view of the input: the reduced axis dropped.
    let out_layout = src.layout.squeeze(axis);
    let walk = Walk::new([&out_layout]);
    let [out_stride] = walk.inner_strides();
    let per_output = axis_stride <= out_stride || walk.len() == 1;
    let data = src.data;
    let fold = match op {
        ReduceOp::Sum => Fold::Sum,
        ReduceOp::Max => Fold::Max,
        ReduceOp::Min => Fold::Min,
        ReduceOp::ArgMax if per_output => {
            let mut out = crate::pool::zeroed::<u32>(walk.len());
            drive_weighted(&walk, &mut out, len, |o, [b]| {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = argmax_run(data, b + k * out_stride, len, axis_stride);
                }
            });
            return Ok(boxed(out));
        }
        ReduceOp::ArgMax => return Ok(boxed(argmax_across(data, &walk, len, axis_stride))),
    };
    let result = if per_output {
        let mut result = crate::pool::zeroed(walk.len());
        drive_weighted(&walk, &mut result, len, |o, [b]| {
            for (k, o) in o.iter_mut().enumerate() {
                *o = fold_run(fold, data, b + k * out_stride, len, axis_stride);
            }
        });
        result
    } else if let Some(parts) = axis_split(walk.len(), len) {
        fold_across_split(fold, data, &walk, len, axis_stride, parts)
    } else {
        let mut result = crate::pool::zeroed(walk.len());
        drive_weighted(&walk, &mut result, len, |o, [b]| {
            fold_across(fold, data, o, b, out_stride, len, axis_stride)
        });
        result
    };
    Ok(boxed(result))
}

/// How many pieces to cut the reduced axis into when few outputs accumulate many
/// slices (summing the rows of a tall matrix, e.g. a bias gradient): splitting the
/// outputs would give each task narrow, cache-unfriendly column strips, so instead each
/// task folds whole slices of its share of the axis and the partial results are merged.
/// `None` when the work is small or the outputs are many.
fn axis_split(outputs: usize, len: usize) -> Option<usize> {
    const MAX_OUTPUTS: usize = 1 << 16;
    let threads = rayon::current_num_threads();
    let total = outputs.saturating_mul(len);
    if !crate::parallel::worth_parallel(total) || outputs > MAX_OUTPUTS || len < 2 * threads {
        return None;
    }
    Some((total / chunk_len(total)).clamp(2, len))
}

fn fold_across_split<T: Real>(
    fold: Fold,
    data: &[T],
    walk: &Walk<1>,
    len: usize,
    axis_stride: usize,
    parts: usize,
) -> AlignedVec<T> {
    let [out_stride] = walk.inner_strides();
    let per_part = len.div_ceil(parts);
    let partials: Vec<AlignedVec<T>> = (0..len.div_ceil(per_part))
        .into_par_iter()
        .map(|p| {
            let (start, end) = (p * per_part, ((p + 1) * per_part).min(len));
            let mut part = crate::pool::zeroed(walk.len());
            walk.for_runs(0, walk.len(), |pos, [b], run| {
                let o = &mut part[pos..pos + run];
                fold_across(
                    fold,
                    data,
                    o,
                    b + start * axis_stride,
                    out_stride,
                    end - start,
                    axis_stride,
                );
            });
            part
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut acc = parts
        .next()
        .unwrap_or_else(|| crate::pool::zeroed(walk.len()));
    for part in parts {
        accumulate(&mut acc, &part, fold);
    }
    acc
}

/// Folds `len` elements at `base + j * stride`; long runs split across the pool.
fn fold_run<T: FloatDType>(fold: Fold, data: &[T], base: usize, len: usize, stride: usize) -> T {
    if len >= 2 * PAR_THRESHOLD {
        let chunk = chunk_len(len);
        let partials: Vec<T> = (0..len.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let start = c * chunk;
                fold_run_serial(
                    fold,
                    data,
                    base + start * stride,
                    chunk.min(len - start),
                    stride,
                )
            })
            .collect();
        let mut acc = partials[0];
        for &p in &partials[1..] {
            acc = fold.step(acc, p);
        }
        return acc;
    }
    fold_run_serial(fold, data, base, len, stride)
}

fn fold_run_serial<T: FloatDType>(
    fold: Fold,
    data: &[T],
    base: usize,
    len: usize,
    stride: usize,
) -> T {
    if len == 0 {
        return T::zero();
    }
    match (fold, stride) {
        (Fold::Sum, 1) => sum_unit(&data[base..base + len]),
        (Fold::Max, 1) => max_unit(&data[base..base + len]),
        _ => {
            let mut acc = data[base];
            for j in 1..len {
                acc = fold.step(acc, data[base + j * stride]);
            }
            acc
        }
    }
}

/// Folds the input slices `j = 0..len` into a run of outputs `o` at once.
fn fold_across<T: FloatDType>(
    fold: Fold,
    data: &[T],
    o: &mut [T],
    base: usize,
    out_stride: usize,
    len: usize,
    axis_stride: usize,
) {
    let n = o.len();
    if len == 0 {
        o.fill(T::zero());
        return;
    }
    for (k, o) in o.iter_mut().enumerate() {
        *o = data[base + k * out_stride];
    }
    for j in 1..len {
        let b = base + j * axis_stride;
        if out_stride == 1 {
            accumulate(o, &data[b..b + n], fold);
        } else {
            for (k, o) in o.iter_mut().enumerate() {
                *o = fold.step(*o, data[b + k * out_stride]);
            }
        }
    }
}

fn argmax_run<T: FloatDType>(data: &[T], base: usize, len: usize, stride: usize) -> u32 {
    let (mut best, mut at) = (data[base], 0);
    for j in 1..len {
        let x = data[base + j * stride];
        if beats(x, best) {
            best = x;
            at = j;
        }
    }
    at as u32
}

fn argmax_across<T: Real>(
    data: &[T],
    walk: &Walk<1>,
    len: usize,
    axis_stride: usize,
) -> AlignedVec<u32> {
    let [out_stride] = walk.inner_strides();
    let mut out = crate::pool::zeroed::<u32>(walk.len());
    drive_weighted(walk, &mut out, len, |o, [base]| {
        let mut best: Vec<T> = (0..o.len()).map(|k| data[base + k * out_stride]).collect();
        for j in 1..len {
            let b = base + j * axis_stride;
            for (k, (o, best)) in o.iter_mut().zip(&mut best).enumerate() {
                let x = data[b + k * out_stride];
                if beats(x, *best) {
                    *best = x;
                    *o = j as u32;
                }
            }
        }
    });
    out
}

multiversion! {
    fn sum_unit<T>(xs: &[T]) -> T where [T: FloatDType] {
        lanes::sum(xs)
    }
}

multiversion! {
    fn max_unit<T>(xs: &[T]) -> T where [T: FloatDType] {
        lanes::max(xs)
    }
}

multiversion! {
    /// `acc[k] = step(acc[k], xs[k])`, one loop per fold so each is branch-free.
    fn accumulate<T>(acc: &mut [T], xs: &[T], fold: Fold) where [T: FloatDType] {
        match fold {
            Fold::Sum => {
                for (a, &x) in acc.iter_mut().zip(xs) {
                    *a = Fold::Sum.step(*a, x);
                }
            }
            Fold::Max => {
                for (a, &x) in acc.iter_mut().zip(xs) {
                    *a = Fold::Max.step(*a, x);
                }
            }
            Fold::Min => {
                for (a, &x) in acc.iter_mut().zip(xs) {
                    *a = Fold::Min.step(*a, x);
                }
            }
        }
    }
}
