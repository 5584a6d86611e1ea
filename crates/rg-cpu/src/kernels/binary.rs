//! Elementwise functions of two views of one shape (broadcast axes have stride 0).

use rg_core::backend::{BoxStorage, View};
use rg_core::{BinaryOp, DType, Result};

use super::map::map2;
use crate::math::Real;
use crate::view::{boxed, check_dims, common_dtype, typed, unsupported, Typed};

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

fn apply<T: Real>(op: BinaryOp, a: Typed<'_, T>, b: Typed<'_, T>) -> Vec<T> {
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
