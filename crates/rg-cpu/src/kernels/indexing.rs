//! Gather and scatter-add along one axis: `index_select` and `index_add` (the backward
//! of `index_select` and of an embedding lookup). Ids are u32 or i64 and are all
//! checked before any work, so a bad id is an error and never a panic.

use half::{bf16, f16};
use rg_core::backend::{BackendStorage, BoxStorage, View};
use rg_core::{DType, Device, Error, Result};

use crate::math::Real;
use crate::parallel::for_rows;
use crate::simd::multiversion;
use crate::storage::CpuElement;
use crate::view::{boxed, check_dims, cpu_storage_mut, typed, unsupported};

/// Row-major ids of a u32 or i64 view, as i64.
pub fn read_ids(ids: View<'_>, op: &'static str) -> Result<Vec<i64>> {
    Ok(match ids.dtype() {
        DType::U32 => typed::<u32>(ids, op)?
            .contiguous()
            .iter()
            .map(|&i| i as i64)
            .collect(),
        DType::I64 => typed::<i64>(ids, op)?.contiguous().into_owned(),
        other => return Err(unsupported(op, other, "u32 or i64 indices")),
    })
}

/// Ids checked against `0..size`, as `usize`.
fn checked_ids(ids: View<'_>, size: usize, op: &'static str) -> Result<Vec<usize>> {
    read_ids(ids, op)?
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&u| u < size)
                .ok_or(Error::IndexOutOfRange { op, index: i, size })
        })
        .collect()
}

/// `(outer, size, inner)`: the axis's size and the products of the axes around it.
fn split_at_axis(dims: &[usize], axis: usize, op: &'static str) -> Result<(usize, usize, usize)> {
    if axis >= dims.len() {
        return Err(Error::backend(
            Device::Cpu,
            op,
            format!("axis {axis} is out of range for shape {dims:?}"),
        ));
    }
    Ok((
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    ))
}

/// Output `[.., ids.len(), ..]`: slice `ids[i]` of `src` along `axis` becomes slice `i`.
pub fn index_select(src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "index_select";
    let (outer, size, inner) = split_at_axis(src.dims(), axis, OP)?;
    let ids = checked_ids(ids, size, OP)?;
    fn run<T: CpuElement>(
        src: View<'_>,
        ids: &[usize],
        outer: usize,
        size: usize,
        inner: usize,
    ) -> Result<BoxStorage> {
        let src = typed::<T>(src, OP)?.contiguous();
        let n = ids.len();
        let mut out = crate::pool::for_overwrite(outer * n * inner);
        // Each output row (one `inner` slice) is a copy of one source row.
        for_rows(&mut out, inner, |first, rows| {
            for (r, row) in rows.chunks_exact_mut(inner).enumerate() {
                let (o, i) = ((first + r) / n, (first + r) % n);
                let start = (o * size + ids[i]) * inner;
                row.copy_from_slice(&src[start..start + inner]);
            }
        });
        Ok(boxed(out))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, &ids, outer, size, inner),
        DType::F64 => run::<f64>(src, &ids, outer, size, inner),
        DType::BF16 => run::<bf16>(src, &ids, outer, size, inner),
        DType::F16 => run::<f16>(src, &ids, outer, size, inner),
        DType::U32 => run::<u32>(src, &ids, outer, size, inner),
        DType::I64 => run::<i64>(src, &ids, outer, size, inner),
    }
}

/// Zeros of `dst_dims`, then slice `i` of `src` along `axis` added into slice `ids[i]`.
pub fn index_add(
    dst_dims: &[usize],
    axis: usize,
    ids: View<'_>,
    src: View<'_>,
) -> Result<BoxStorage> {
    let scatter = Scatter::new(dst_dims, axis, ids, src.dims())?;
    fn run<T: Real>(scatter: &Scatter, src: View<'_>) -> Result<BoxStorage> {
        let src = typed::<T>(src, OP_ADD)?.contiguous();
        let mut out = crate::pool::zeroed(scatter.dst_len());
        scatter.add(&mut out, &src);
        Ok(boxed(out))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(&scatter, src),
        DType::F64 => run::<f64>(&scatter, src),
        other => Err(unsupported(OP_ADD, other, "f32 or f64")),
    }
}

/// [`index_add`] added into `dst` in place; slices no id names are not touched.
pub fn index_add_assign(
    dst: &mut dyn BackendStorage,
    dst_dims: &[usize],
    axis: usize,
    ids: View<'_>,
    src: View<'_>,
) -> Result<()> {
    let scatter = Scatter::new(dst_dims, axis, ids, src.dims())?;
    check_dims(OP_ADD, "destination", &[dst.len()], &[scatter.dst_len()])?;
    if dst.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP_ADD,
            lhs: dst.dtype(),
            rhs: src.dtype(),
        });
    }
    fn run<T: Real>(scatter: &Scatter, dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
        let src = typed::<T>(src, OP_ADD)?.contiguous();
        let dst = cpu_storage_mut(dst, OP_ADD)?
            .as_mut_slice::<T>()
            .ok_or_else(|| Error::backend(Device::Cpu, OP_ADD, "storage dtype changed"))?;
        scatter.add(dst, &src);
        Ok(())
    }
    match src.dtype() {
        DType::F32 => run::<f32>(&scatter, dst, src),
        DType::F64 => run::<f64>(&scatter, dst, src),
        other => Err(unsupported(OP_ADD, other, "f32 or f64")),
    }
}

const OP_ADD: &str = "index_add";

/// Where an `index_add` sends each slice of its source, checked against both shapes.
///
/// Repeated ids must accumulate, so instead of scattering (which would need atomics or
/// locks to run in parallel) every destination row gathers the source rows that point
/// at it, found through a bucket list built once. Destination rows are disjoint, so
/// they are computed in parallel without synchronisation. Each row's sources are summed
/// in increasing order before the sum is added to the row, so the result depends
/// neither on the thread count nor on whether the destination started as zeros.
struct Scatter {
    outer: usize,
    size: usize,
    inner: usize,
    /// Source slices per outer index (the number of ids).
    n: usize,
    sources: Buckets,
}

impl Scatter {
    fn new(dst_dims: &[usize], axis: usize, ids: View<'_>, src_dims: &[usize]) -> Result<Self> {
        let (outer, size, inner) = split_at_axis(dst_dims, axis, OP_ADD)?;
        let ids = checked_ids(ids, size, OP_ADD)?;
        let mut expected = dst_dims.to_vec();
        expected[axis] = ids.len();
        check_dims(OP_ADD, "src", src_dims, &expected)?;
        Ok(Scatter {
            outer,
            size,
            inner,
            n: ids.len(),
            sources: Buckets::new(&ids, size),
        })
    }

    fn dst_len(&self) -> usize {
        self.outer * self.size * self.inner
    }

    /// Adds the source slices into `dst` (contiguous `src`).
    fn add<T: Real>(&self, dst: &mut [T], src: &[T]) {
        let (size, inner, n) = (self.size, self.inner, self.n);
        for_rows(dst, inner, |first, rows| {
            let mut sum = vec![T::zeroed(); inner];
            for (r, row) in rows.chunks_exact_mut(inner).enumerate() {
                let (o, d) = ((first + r) / size, (first + r) % size);
                let mine = self.sources.of(d);
                if mine.is_empty() {
                    continue;
                }
                sum.fill(T::zeroed());
                for &i in mine {
                    let start = (o * n + i) * inner;
                    add_into(&mut sum, &src[start..start + inner]);
                }
                add_into(row, &sum);
            }
        });
    }
}

/// For each destination `d`, the positions `i` (ascending) with `ids[i] == d`, stored
/// compactly (counting sort).
struct Buckets {
    starts: Vec<usize>,
    positions: Vec<usize>,
}

impl Buckets {
    fn new(ids: &[usize], size: usize) -> Self {
        let mut starts = vec![0usize; size + 1];
        for &d in ids {
            starts[d + 1] += 1;
        }
        for d in 0..size {
            starts[d + 1] += starts[d];
        }
        let mut fill = starts.clone();
        let mut positions = vec![0usize; ids.len()];
        for (i, &d) in ids.iter().enumerate() {
            positions[fill[d]] = i;
            fill[d] += 1;
        }
        Buckets { starts, positions }
    }

    fn of(&self, d: usize) -> &[usize] {
        &self.positions[self.starts[d]..self.starts[d + 1]]
    }
}

multiversion! {
    fn add_into<T>(acc: &mut [T], src: &[T]) where [T: Real] {
        for (a, &v) in acc.iter_mut().zip(src) {
            *a = *a + v;
        }
    }
}
