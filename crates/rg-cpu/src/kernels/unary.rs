//! Elementwise functions of one tensor: `UnaryOp`s, `affine` and `powf`.

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Result, UnaryOp};

use super::gelu::gelu;
use super::map::{map1, map1_runs};
use crate::aligned::AlignedVec;
use crate::math::Real;
use crate::view::{boxed, typed, unsupported, Typed};

pub fn unary(op: UnaryOp, src: View<'_>) -> Result<BoxStorage> {
    let name = op.name();
    match src.dtype() {
        DType::F32 => Ok(boxed(apply(op, typed::<f32>(src, name)?))),
        DType::F64 => Ok(boxed(apply(op, typed::<f64>(src, name)?))),
        other => Err(unsupported(name, other, "f32 or f64")),
    }
}

/// One monomorphised loop per op, so each inner loop is a straight-line body.
fn apply<T: Real>(op: UnaryOp, src: Typed<'_, T>) -> AlignedVec<T> {
    let zero = T::zero();
    match op {
        UnaryOp::Neg => map1(src, |x: T| -x),
        UnaryOp::Exp => map1(src, |x: T| x.exp_v()),
        UnaryOp::Log => map1(src, |x: T| x.ln()),
        UnaryOp::Tanh => map1(src, |x: T| x.tanh()),
        UnaryOp::Sqrt => map1(src, |x: T| x.sqrt()),
        // `max` would turn NaN into 0; a comparison keeps it.
        UnaryOp::Relu => map1(src, |x: T| if x < zero { zero } else { x }),
        UnaryOp::Gelu => map1_runs(src, gelu::<T>, |y, x| T::gelu_native(x, y)),
        UnaryOp::Square => map1(src, |x: T| x * x),
        UnaryOp::Recip => map1(src, |x: T| x.recip()),
        UnaryOp::Abs => map1(src, |x: T| x.abs()),
    }
}

/// `x * mul + add`.
pub fn affine(src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
    const OP: &str = "affine";
    fn run<T: Real>(src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
        let (m, a) = (T::from_f64(mul), T::from_f64(add));
        Ok(boxed(map1(typed::<T>(src, OP)?, |x: T| x * m + a)))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, mul, add),
        DType::F64 => run::<f64>(src, mul, add),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

/// `x ^ exponent`; integral exponents use repeated multiplication (exact for negative
/// bases, as `powf` is not).
pub fn powf(src: View<'_>, exponent: f64) -> Result<BoxStorage> {
    const OP: &str = "powf";
    fn run<T: Real>(src: View<'_>, exponent: f64) -> Result<BoxStorage> {
        let src = typed::<T>(src, OP)?;
        let e = T::from_f64(exponent);
        let out = if exponent == 2.0 {
            map1(src, |x: T| x * x)
        } else if exponent.fract() == 0.0 && exponent.abs() <= i32::MAX as f64 {
            let n = exponent as i32;
            map1(src, move |x: T| x.powi(n))
        } else {
            map1(src, move |x: T| x.powf(e))
        };
        Ok(boxed(out))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, exponent),
        DType::F64 => run::<f64>(src, exponent),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}
