//! Moving elements between layouts: `to_host` (gather a view into row-major host
//! memory) and `copy_strided` (write a view into existing storage through any layout).

use half::{bf16, f16};
use rg_core::backend::{BackendStorage, View};
use rg_core::{DType, Device, Error, HostBuffer, Layout, Result};

use super::map::{drive, map1};
use crate::storage::CpuElement;
use crate::strided::Walk;
use crate::view::{check_bounds, check_dims, cpu_storage_mut, typed, Typed};

/// Row-major elements of a view: a plain copy when contiguous, a (parallel) gather
/// otherwise.
pub fn materialise<T: CpuElement>(src: Typed<'_, T>) -> Vec<T> {
    match src.layout.contiguous_range() {
        Some(range) => src.data[range].to_vec(),
        None => map1(src, |x: T| x),
    }
}

pub fn to_host(src: View<'_>) -> Result<HostBuffer> {
    const OP: &str = "to_host";
    fn run<T: CpuElement>(src: View<'_>) -> Result<HostBuffer> {
        Ok(T::into_host(materialise(typed::<T>(src, OP)?)))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src),
        DType::F64 => run::<f64>(src),
        DType::BF16 => run::<bf16>(src),
        DType::F16 => run::<f16>(src),
        DType::U32 => run::<u32>(src),
        DType::I64 => run::<i64>(src),
    }
}

pub fn copy_strided(
    src: View<'_>,
    dst: &mut dyn BackendStorage,
    dst_layout: &Layout,
) -> Result<()> {
    const OP: &str = "copy_strided";
    check_dims(OP, "destination", dst_layout.dims(), src.dims())?;
    if dst.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: src.dtype(),
            rhs: dst.dtype(),
        });
    }
    fn run<T: CpuElement>(
        src: View<'_>,
        dst: &mut dyn BackendStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        let src = typed::<T>(src, OP)?;
        let dst = cpu_storage_mut(dst, OP)?;
        // Writing makes borrowed (memory-mapped) data an owned copy first.
        let dst = dst
            .as_mut_slice::<T>()
            .ok_or_else(|| Error::backend(Device::Cpu, OP, "destination dtype does not match"))?;
        check_bounds(OP, dst_layout, dst.len())?;
        if let Some(range) = dst_layout.contiguous_range() {
            let walk = Walk::new([src.layout]);
            let [s] = walk.inner_strides();
            let data = src.data;
            drive(&walk, &mut dst[range], |o, [b]| match s {
                1 => o.copy_from_slice(&data[b..b + o.len()]),
                s => {
                    for (k, o) in o.iter_mut().enumerate() {
                        *o = data[b + k * s];
                    }
                }
            });
            return Ok(());
        }
        // A strided destination is written on one thread: disjointness of its elements
        // is not something the layout guarantees (stride 0 repeats one element).
        let walk = Walk::new([src.layout, dst_layout]);
        let [ss, ds] = walk.inner_strides();
        walk.for_runs(0, walk.len(), |_, [bs, bd], run| {
            if (ss, ds) == (1, 1) {
                // Rows of a slice, e.g. a gradient written into its columns of a
                // fused projection's gradient: one copy per run.
                dst[bd..bd + run].copy_from_slice(&src.data[bs..bs + run]);
                return;
            }
            for k in 0..run {
                dst[bd + k * ds] = src.data[bs + k * ss];
            }
        });
        Ok(())
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, dst, dst_layout),
        DType::F64 => run::<f64>(src, dst, dst_layout),
        DType::BF16 => run::<bf16>(src, dst, dst_layout),
        DType::F16 => run::<f16>(src, dst, dst_layout),
        DType::U32 => run::<u32>(src, dst, dst_layout),
        DType::I64 => run::<i64>(src, dst, dst_layout),
    }
}
