//! The ops, one file per family, as free functions over a [`Gpu`]: check the views,
//! pick the kernel by dtype, launch. Each file mirrors the rg-cpu kernel of the same
//! name (same dtype rules and errors), with bf16 added to every compute op (f32
//! accumulation inside the kernels).

pub mod adamw;
pub mod attention;
pub mod cross_entropy;
pub mod elementwise;
pub mod indexing;
pub mod layer_norm;
pub mod matmul;
pub mod memory;
pub mod reduce;
pub mod softmax;

use rg_core::backend::{BackendStorage, BoxStorage, View};
use rg_core::{DType, Error, Layout, Result};

use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::{check_count, grid_for, kernel_layouts, KernelLayout, BLOCK};
use crate::storage::CudaStorage;

/// The CUDA storage behind a view, after checking that its layout stays inside it.
pub fn storage<'a>(gpu: &Gpu, v: View<'a>, op: &'static str) -> Result<&'a CudaStorage> {
    let s = CudaStorage::downcast(v.storage).ok_or_else(|| {
        Error::backend(
            gpu.device,
            op,
            "storage belongs to another backend than CUDA",
        )
    })?;
    if s.device() != gpu.device {
        return Err(Error::DeviceMismatch {
            op,
            lhs: gpu.device,
            rhs: s.device(),
        });
    }
    check_bounds(gpu, op, v.layout, s.len())?;
    Ok(s)
}

pub fn storage_mut<'a>(
    gpu: &Gpu,
    s: &'a mut dyn BackendStorage,
    op: &'static str,
) -> Result<&'a mut CudaStorage> {
    let device = s.device();
    if device != gpu.device {
        return Err(Error::DeviceMismatch {
            op,
            lhs: gpu.device,
            rhs: device,
        });
    }
    CudaStorage::downcast_mut(s).ok_or_else(|| {
        Error::backend(
            gpu.device,
            op,
            "storage belongs to another backend than CUDA",
        )
    })
}

pub fn check_bounds(gpu: &Gpu, op: &'static str, layout: &Layout, len: usize) -> Result<()> {
    if layout.max_storage_index() > len {
        return Err(Error::backend(
            gpu.device,
            op,
            format!(
                "layout {:?} (strides {:?}, offset {}) reaches past the storage's {len} elements",
                layout.dims(),
                layout.strides(),
                layout.offset()
            ),
        ));
    }
    Ok(())
}

pub fn check_dims(
    gpu: &Gpu,
    op: &'static str,
    what: &str,
    dims: &[usize],
    expected: &[usize],
) -> Result<()> {
    if dims != expected {
        return Err(Error::backend(
            gpu.device,
            op,
            format!("{what} has shape {dims:?}, expected {expected:?}"),
        ));
    }
    Ok(())
}

/// Fresh (uninitialised, or poisoned) storage of `len` elements.
pub fn alloc(gpu: &Gpu, op: &'static str, dtype: DType, len: usize) -> Result<CudaStorage> {
    let bytes = len.checked_mul(dtype.size_in_bytes()).ok_or_else(|| {
        Error::backend(
            gpu.device,
            op,
            format!("cannot allocate {len} elements of {dtype}"),
        )
    })?;
    Ok(CudaStorage::new(
        gpu.alloc(op, bytes)?,
        dtype,
        len,
        gpu.device,
    ))
}

pub fn boxed(s: CudaStorage) -> BoxStorage {
    Box::new(s)
}

/// Kernel-name suffix of a dtype.
pub fn sfx(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// Suffix of the element size, for dtype-agnostic kernels (copies, gathers, where).
pub fn size_sfx(dtype: DType) -> &'static str {
    match dtype.size_in_bytes() {
        2 => "b2",
        4 => "b4",
        _ => "b8",
    }
}

/// The compute dtypes: f32, f64 and bf16.
pub fn float_sfx(op: &'static str, dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 | DType::F64 | DType::BF16 => Ok(sfx(dtype)),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other,
            expected: "f32, f64 or bf16",
        }),
    }
}

pub fn common_dtype(op: &'static str, views: &[View<'_>]) -> Result<DType> {
    let first = views.first().map(View::dtype).unwrap_or(DType::F32);
    for v in views {
        if v.dtype() != first {
            return Err(Error::DTypeMismatch {
                op,
                lhs: first,
                rhs: v.dtype(),
            });
        }
    }
    Ok(first)
}

pub fn rows_cols(gpu: &Gpu, op: &'static str, dims: &[usize]) -> Result<(usize, usize)> {
    match dims.split_last() {
        Some((&cols, rest)) => Ok((rest.iter().product(), cols)),
        None => Err(Error::backend(
            gpu.device,
            op,
            "expected at least one axis, got a scalar",
        )),
    }
}

/// A view made contiguous: its own storage when it already was (no copy), else a
/// gathered copy kept alive here.
pub struct Contiguous<'a> {
    pub ptr: u64,
    _copy: Option<CudaStorage>,
    _view: std::marker::PhantomData<&'a CudaStorage>,
}

pub fn contiguous<'a>(gpu: &Gpu, v: View<'a>, op: &'static str) -> Result<Contiguous<'a>> {
    let s = storage(gpu, v, op)?;
    if let Some(range) = v.layout.contiguous_range() {
        return Ok(Contiguous {
            ptr: s.ptr_at(range.start),
            _copy: None,
            _view: std::marker::PhantomData,
        });
    }
    let copy = memory::gather(gpu, v, op)?;
    Ok(Contiguous {
        ptr: copy.device_ptr(),
        _copy: Some(copy),
        _view: std::marker::PhantomData,
    })
}

/// Launches an elementwise kernel over `n` output elements with the grid-stride
/// configuration; `args` already holds the kernel's arguments.
pub fn launch_1d(
    gpu: &Gpu,
    op: &'static str,
    module: Module,
    name: &str,
    n: usize,
    args: &Args,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    gpu.launch(
        op,
        module,
        name,
        (grid_for(n, gpu.max_blocks), 1, 1),
        (BLOCK, 1, 1),
        args,
    )
}

/// Kernel layouts of views of one shape, and the element count as u32.
pub fn layouts<const N: usize>(
    op: &'static str,
    views: [&Layout; N],
) -> Result<(u32, [KernelLayout; N])> {
    let n = check_count(op, views[0].elem_count())?;
    Ok((n, kernel_layouts(op, views)?))
}
