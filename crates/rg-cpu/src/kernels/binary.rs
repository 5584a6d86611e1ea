//! Elementwise functions of two views of one shape (broadcast axes have stride 0).

use rayon::prelude::*;
use rg_core::backend::{BackendStorage, BoxStorage, View};
use rg_core::{BinaryOp, DType, Device, Error, Result};

use super::map::map2;
use crate::aligned::AlignedVec;
use crate::math::Real;
use crate::parallel::chunk_len;
use crate::simd::multiversion;
use crate::view::{boxed, check_dims, common_dtype, cpu_storage_mut, typed, unsupported, Typed};

pub fn binary(op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
    let name = op.name();
    check_dims(name, "rhs", rhs.dims(), lhs.dims())?;
    match common_dtype(name, &[lhs, rhs])? {
        DType::F32 => Ok(boxed(apply(
            op,
            typed::<f32>(lhs, name)?,
            typed::<f32>(rhs, name)?,
        ))),
        DType::F64 => Ok(boxed(apply(
            op,
            typed::<f64>(lhs, name)?,
            typed::<f64>(rhs, name)?,
        ))),
        other => Err(unsupported(name, other, "f32 or f64")),
    }
}

fn apply<T: Real>(op: BinaryOp, a: Typed<'_, T>, b: Typed<'_, T>) -> AlignedVec<T> {
    match op {
        BinaryOp::Add => map2(a, b, |x: T, y: T| x + y),
        BinaryOp::Sub => map2(a, b, |x: T, y: T| x - y),
        BinaryOp::Mul => map2(a, b, |x: T, y: T| x * y),
        BinaryOp::Div => map2(a, b, |x: T, y: T| x / y),
        // Comparisons rather than `max`/`min` so a NaN operand propagates.
        BinaryOp::Maximum => map2(a, b, |x: T, y: T| if x >= y || x.is_nan() { x } else { y }),
        BinaryOp::Minimum => map2(a, b, |x: T, y: T| if x <= y || x.is_nan() { x } else { y }),
    }
}

/// `dst += src` in place over contiguous `dst`.
pub fn add_assign(dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
    const OP: &str = "add_assign";
    check_dims(OP, "destination", &[dst.len()], &[src.layout.elem_count()])?;
    if dst.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: dst.dtype(),
            rhs: src.dtype(),
        });
    }
    fn run<T: Real>(dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
        let src = typed::<T>(src, OP)?.contiguous();
        let dst = cpu_storage_mut(dst, OP)?
            .as_mut_slice::<T>()
            .ok_or_else(|| Error::backend(Device::Cpu, OP, "storage dtype changed"))?;
        let chunk = chunk_len(dst.len());
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| add_run(d, s));
        Ok(())
    }
    match dst.dtype() {
        DType::F32 => run::<f32>(dst, src),
        DType::F64 => run::<f64>(dst, src),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

multiversion! {
    fn add_run<T>(dst: &mut [T], src: &[T]) where [T: Real] {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = *d + s;
        }
    }
}
