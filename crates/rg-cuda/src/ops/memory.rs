//! Memory ops: fills, host transfers, strided copies and casts.

use rg_core::backend::{BackendStorage, BoxStorage, View};
use rg_core::{bf16, f16, DType, Error, HostBuffer, Layout, Result, SharedBytes};

use super::{
    alloc, boxed, check_bounds, check_dims, launch_1d, layouts, sfx, size_sfx, storage, storage_mut,
};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::check_count;
use crate::storage::CudaStorage;

/// The bit pattern of `value` converted to `dtype` as a cast would (integers truncate
/// and saturate), zero-extended to 64 bits.
pub fn fill_bits(dtype: DType, value: f64) -> u64 {
    match dtype {
        DType::F32 => (value as f32).to_bits() as u64,
        DType::F64 => value.to_bits(),
        DType::BF16 => bf16::from_f64(value).to_bits() as u64,
        DType::F16 => f16::from_f64(value).to_bits() as u64,
        DType::U32 => (value as u32) as u64,
        DType::I64 => (value as i64) as u64,
    }
}

pub fn full(gpu: &Gpu, dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
    const OP: &str = "full";
    let out = alloc(gpu, OP, dtype, len)?;
    let n = check_count(OP, len)?;
    let mut args = Args::new();
    args.push(n)
        .push(fill_bits(dtype, value))
        .push(out.device_ptr());
    launch_1d(
        gpu,
        OP,
        Module::Copy,
        &format!("fill_{}", size_sfx(dtype)),
        len,
        &args,
    )?;
    Ok(boxed(out))
}

pub fn from_host(gpu: &Gpu, data: HostBuffer) -> Result<BoxStorage> {
    const OP: &str = "from_host";
    let out = alloc(gpu, OP, data.dtype(), data.len())?;
    let dst = out.device_ptr();
    match &data {
        HostBuffer::F32(v) => gpu.upload(OP, dst, v)?,
        HostBuffer::F64(v) => gpu.upload(OP, dst, v)?,
        HostBuffer::BF16(v) => gpu.upload(OP, dst, v)?,
        HostBuffer::F16(v) => gpu.upload(OP, dst, v)?,
        HostBuffer::U32(v) => gpu.upload(OP, dst, v)?,
        HostBuffer::I64(v) => gpu.upload(OP, dst, v)?,
    }
    Ok(boxed(out))
}

/// Little-endian bytes go up as they are (the GPU is little-endian too).
pub fn from_shared_bytes(gpu: &Gpu, dtype: DType, bytes: SharedBytes) -> Result<BoxStorage> {
    const OP: &str = "from_shared_bytes";
    let raw = bytes.as_bytes();
    let size = dtype.size_in_bytes();
    if raw.len() % size != 0 {
        return Err(Error::backend(
            gpu.device,
            OP,
            format!(
                "{} bytes are not a whole number of {dtype} elements",
                raw.len()
            ),
        ));
    }
    let out = alloc(gpu, OP, dtype, raw.len() / size)?;
    gpu.upload(OP, out.device_ptr(), raw)?;
    Ok(boxed(out))
}

/// A contiguous copy of the view in new storage.
pub fn gather(gpu: &Gpu, src: View<'_>, op: &'static str) -> Result<CudaStorage> {
    let s = storage(gpu, src, op)?;
    let n = src.layout.elem_count();
    let out = alloc(gpu, op, src.dtype(), n)?;
    let dst_layout = Layout::contiguous(src.layout.shape().clone());
    copy_kernel(gpu, op, s, src.layout, out.device_ptr(), &dst_layout)?;
    Ok(out)
}

fn copy_kernel(
    gpu: &Gpu,
    op: &'static str,
    src: &CudaStorage,
    src_layout: &Layout,
    dst: u64,
    dst_layout: &Layout,
) -> Result<()> {
    let (n, [ls, ld]) = layouts(op, [src_layout, dst_layout])?;
    let mut args = Args::new();
    args.push(n)
        .push(ls)
        .push(src.device_ptr())
        .push(ld)
        .push(dst);
    launch_1d(
        gpu,
        op,
        Module::Copy,
        &format!("copy_{}", size_sfx(src.dtype())),
        n as usize,
        &args,
    )
}

pub fn to_host(gpu: &Gpu, src: View<'_>) -> Result<HostBuffer> {
    const OP: &str = "to_host";
    let s = storage(gpu, src, OP)?;
    let n = src.layout.elem_count();
    let (ptr, _copy) = match src.layout.contiguous_range() {
        Some(range) => (s.ptr_at(range.start), None),
        None => {
            let c = gather(gpu, src, OP)?;
            (c.device_ptr(), Some(c))
        }
    };
    fn read<T: Clone + Default>(gpu: &Gpu, n: usize, ptr: u64) -> Result<Vec<T>> {
        let mut v = vec![T::default(); n];
        gpu.download(OP, &mut v, ptr)?;
        Ok(v)
    }
    Ok(match src.dtype() {
        DType::F32 => HostBuffer::F32(read(gpu, n, ptr)?),
        DType::F64 => HostBuffer::F64(read(gpu, n, ptr)?),
        DType::BF16 => HostBuffer::BF16(read(gpu, n, ptr)?),
        DType::F16 => HostBuffer::F16(read(gpu, n, ptr)?),
        DType::U32 => HostBuffer::U32(read(gpu, n, ptr)?),
        DType::I64 => HostBuffer::I64(read(gpu, n, ptr)?),
    })
}

/// Writes the view element by element into `dst` through `dst_layout`. A destination
/// that repeats an element (stride 0) gets one of the values written to it.
pub fn copy_strided(
    gpu: &Gpu,
    src: View<'_>,
    dst: &mut dyn BackendStorage,
    dst_layout: &Layout,
) -> Result<()> {
    const OP: &str = "copy_strided";
    check_dims(gpu, OP, "destination", dst_layout.dims(), src.dims())?;
    if dst.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: src.dtype(),
            rhs: dst.dtype(),
        });
    }
    let s = storage(gpu, src, OP)?;
    let d = storage_mut(gpu, dst, OP)?;
    check_bounds(gpu, OP, dst_layout, d.len())?;
    let dst_ptr = d.device_ptr();
    copy_kernel(gpu, OP, s, src.layout, dst_ptr, dst_layout)
}

pub fn cast(gpu: &Gpu, src: View<'_>, dtype: DType) -> Result<BoxStorage> {
    const OP: &str = "cast";
    if src.dtype() == dtype {
        return Ok(boxed(gather(gpu, src, OP)?));
    }
    let s = storage(gpu, src, OP)?;
    let (n, [l]) = layouts(OP, [src.layout])?;
    let out = alloc(gpu, OP, dtype, n as usize)?;
    let mut args = Args::new();
    args.push(n)
        .push(l)
        .push(s.device_ptr())
        .push(out.device_ptr());
    launch_1d(
        gpu,
        OP,
        Module::Copy,
        &format!("cast_{}_{}", sfx(src.dtype()), sfx(dtype)),
        n as usize,
        &args,
    )?;
    Ok(boxed(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_bits_convert_like_a_cast() {
        assert_eq!(fill_bits(DType::F32, 1.5), 1.5f32.to_bits() as u64);
        assert_eq!(fill_bits(DType::BF16, 1.0), 0x3f80);
        assert_eq!(fill_bits(DType::U32, -3.0), 0);
        assert_eq!(fill_bits(DType::U32, 1e12), u32::MAX as u64);
        assert_eq!(fill_bits(DType::I64, -2.7), (-2i64) as u64);
        assert_eq!(
            fill_bits(DType::F64, f64::NEG_INFINITY),
            f64::NEG_INFINITY.to_bits()
        );
    }
}
