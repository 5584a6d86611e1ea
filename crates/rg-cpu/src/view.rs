//! Turning the trait's `View`s into typed slices, with the checks that keep kernels from
//! panicking: right backend, right dtype, layout inside the storage.

use std::borrow::Cow;

use rg_core::backend::{BackendStorage, BoxStorage, View};
use rg_core::{DType, Device, Error, Layout, Result};

use crate::storage::{CpuElement, CpuStorage};
use crate::strided;

/// A checked view: `layout` only touches indices inside `data`.
#[derive(Clone, Copy)]
pub struct Typed<'a, T> {
    pub data: &'a [T],
    pub layout: &'a Layout,
}

impl<'a, T: CpuElement> Typed<'a, T> {
    pub fn dims(&self) -> &'a [usize] {
        self.layout.dims()
    }

    /// Row-major elements, borrowed when contiguous.
    pub fn contiguous(&self) -> Cow<'a, [T]> {
        strided::contiguous(self.data, self.layout)
    }
}

/// Downcasts and type-checks a view for op `op`.
pub fn typed<'a, T: CpuElement>(view: View<'a>, op: &'static str) -> Result<Typed<'a, T>> {
    let storage = cpu_storage(view.storage, op)?;
    let data = storage.as_slice::<T>().ok_or(Error::DTypeMismatch {
        op,
        lhs: storage.dtype(),
        rhs: T::DTYPE,
    })?;
    check_bounds(op, view.layout, data.len())?;
    Ok(Typed {
        data,
        layout: view.layout,
    })
}

pub fn cpu_storage<'a>(
    storage: &'a dyn BackendStorage,
    op: &'static str,
) -> Result<&'a CpuStorage> {
    CpuStorage::downcast(storage).ok_or_else(|| foreign_storage(storage.device(), op))
}

pub fn cpu_storage_mut<'a>(
    storage: &'a mut dyn BackendStorage,
    op: &'static str,
) -> Result<&'a mut CpuStorage> {
    let device = storage.device();
    CpuStorage::downcast_mut(storage).ok_or_else(|| foreign_storage(device, op))
}

fn foreign_storage(device: Device, op: &'static str) -> Error {
    Error::backend(
        device,
        op,
        "storage belongs to another backend than the CPU",
    )
}

/// Errors unless every index `layout` can reach lies below `len`.
pub fn check_bounds(op: &'static str, layout: &Layout, len: usize) -> Result<()> {
    if layout.max_storage_index() > len {
        return Err(Error::backend(
            Device::Cpu,
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

/// Errors unless `dims` are the expected ones (rg-core checks shapes; this keeps a
/// kernel from indexing out of bounds should a caller not).
pub fn check_dims(op: &'static str, what: &str, dims: &[usize], expected: &[usize]) -> Result<()> {
    if dims != expected {
        return Err(Error::backend(
            Device::Cpu,
            op,
            format!("{what} has shape {dims:?}, expected {expected:?}"),
        ));
    }
    Ok(())
}

pub fn unsupported(op: &'static str, dtype: DType, expected: &'static str) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        expected,
    }
}

/// Wraps a fresh vector as boxed storage.
pub fn boxed<T: CpuElement>(data: impl Into<crate::aligned::AlignedVec<T>>) -> BoxStorage {
    Box::new(CpuStorage::from_vec(data))
}

/// The dtype of the first view, after checking that all views share it.
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

/// Rows and columns of a view whose last axis is the row: `(product of the others, last)`.
pub fn rows_cols(op: &'static str, dims: &[usize]) -> Result<(usize, usize)> {
    match dims.split_last() {
        Some((&cols, rest)) => Ok((rest.iter().product(), cols)),
        None => Err(Error::backend(
            Device::Cpu,
            op,
            "expected at least one axis, got a scalar",
        )),
    }
}
