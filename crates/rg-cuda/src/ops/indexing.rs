//! Gather and scatter-add along one axis (kernels/indexing.cu), and reading index
//! tensors. Ids are copied to the host and checked there before any work, so a bad id
//! is an `IndexOutOfRange` error exactly as on the CPU, never an out-of-bounds read;
//! they go back up as u32 (for `index_add` with the bucket lists that make the sum
//! deterministic without atomics).

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Error, HostBuffer, Result};

use super::{alloc, boxed, check_dims, contiguous, float_sfx, memory, size_sfx};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::check_count;
use crate::storage::CudaStorage;

/// Row-major ids of a u32 or i64 view, on the host, as i64.
pub fn read_ids(gpu: &Gpu, ids: View<'_>, op: &'static str) -> Result<Vec<i64>> {
    match ids.dtype() {
        DType::U32 | DType::I64 => {}
        other => {
            return Err(Error::UnsupportedDType {
                op,
                dtype: other,
                expected: "u32 or i64 indices",
            })
        }
    }
    Ok(match memory::to_host(gpu, ids)? {
        HostBuffer::U32(v) => v.into_iter().map(i64::from).collect(),
        HostBuffer::I64(v) => v,
        _ => unreachable!("dtype checked above"),
    })
}

/// Ids checked against `0..size`.
pub fn checked_ids(ids: &[i64], size: usize, op: &'static str) -> Result<Vec<u32>> {
    ids.iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .filter(|&u| u < size)
                .map(|u| u as u32)
                .ok_or(Error::IndexOutOfRange { op, index: i, size })
        })
        .collect()
}

/// A u32 vector uploaded to new storage.
pub fn upload_u32(gpu: &Gpu, op: &'static str, v: &[u32]) -> Result<CudaStorage> {
    let s = alloc(gpu, op, DType::U32, v.len())?;
    gpu.upload(op, s.device_ptr(), v)?;
    Ok(s)
}

fn split_at_axis(
    gpu: &Gpu,
    dims: &[usize],
    axis: usize,
    op: &'static str,
) -> Result<(usize, usize, usize)> {
    if axis >= dims.len() {
        return Err(Error::backend(
            gpu.device,
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

pub fn index_select(gpu: &Gpu, src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "index_select";
    let (outer, size, inner) = split_at_axis(gpu, src.dims(), axis, OP)?;
    let ids = checked_ids(&read_ids(gpu, ids, OP)?, size, OP)?;
    let n = ids.len();
    let total = outer * n * inner;
    let out = alloc(gpu, OP, src.dtype(), total)?;
    if total == 0 {
        return Ok(boxed(out));
    }
    let x = contiguous(gpu, src, OP)?;
    let dev_ids = upload_u32(gpu, OP, &ids)?;
    let mut args = Args::new();
    args.push(check_count(OP, total)?)
        .push(n as u32)
        .push(check_count(OP, size)?)
        .push(check_count(OP, inner)?)
        .push(dev_ids.device_ptr())
        .push(x.ptr)
        .push(out.device_ptr());
    super::launch_1d(
        gpu,
        OP,
        Module::Indexing,
        &format!("index_select_{}", size_sfx(src.dtype())),
        total,
        &args,
    )?;
    Ok(boxed(out))
}

/// For each destination `d`, the positions `i` (ascending) with `ids[i] == d`, as a
/// counting sort: `(starts[size + 1], positions[n])`.
pub fn buckets(ids: &[u32], size: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; size + 1];
    for &d in ids {
        starts[d as usize + 1] += 1;
    }
    for d in 0..size {
        starts[d + 1] += starts[d];
    }
    let mut fill = starts.clone();
    let mut positions = vec![0u32; ids.len()];
    for (i, &d) in ids.iter().enumerate() {
        positions[fill[d as usize] as usize] = i as u32;
        fill[d as usize] += 1;
    }
    (starts, positions)
}

pub fn index_add(
    gpu: &Gpu,
    dst_dims: &[usize],
    axis: usize,
    ids: View<'_>,
    src: View<'_>,
) -> Result<BoxStorage> {
    const OP: &str = "index_add";
    let (outer, size, inner) = split_at_axis(gpu, dst_dims, axis, OP)?;
    let ids = checked_ids(&read_ids(gpu, ids, OP)?, size, OP)?;
    let mut expected = dst_dims.to_vec();
    expected[axis] = ids.len();
    check_dims(gpu, OP, "src", src.dims(), &expected)?;
    let t = float_sfx(OP, src.dtype())?;
    let total = outer * size * inner;
    let out = alloc(gpu, OP, src.dtype(), total)?;
    if total == 0 {
        return Ok(boxed(out));
    }
    let (starts, positions) = buckets(&ids, size);
    let x = contiguous(gpu, src, OP)?;
    let (dev_starts, dev_positions) = (
        upload_u32(gpu, OP, &starts)?,
        upload_u32(gpu, OP, &positions)?,
    );
    let mut args = Args::new();
    args.push(check_count(OP, total)?)
        .push(check_count(OP, ids.len())?)
        .push(size as u32)
        .push(check_count(OP, inner)?)
        .push(dev_starts.device_ptr())
        .push(dev_positions.device_ptr())
        .push(x.ptr)
        .push(out.device_ptr());
    super::launch_1d(
        gpu,
        OP,
        Module::Indexing,
        &format!("index_add_{t}"),
        total,
        &args,
    )?;
    Ok(boxed(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_list_sources_in_order() {
        let (starts, positions) = buckets(&[2, 0, 2, 1, 2], 4);
        assert_eq!(starts, vec![0, 1, 2, 5, 5]);
        assert_eq!(positions, vec![1, 3, 0, 2, 4]);
    }

    #[test]
    fn ids_out_of_range_are_errors() {
        assert_eq!(checked_ids(&[0, 3, 1], 4, "x").unwrap(), vec![0, 3, 1]);
        let err = checked_ids(&[0, 4], 4, "index_select").unwrap_err();
        assert_eq!(
            err,
            Error::IndexOutOfRange {
                op: "index_select",
                index: 4,
                size: 4
            }
        );
        assert!(checked_ids(&[-1], 4, "x").is_err());
    }
}
