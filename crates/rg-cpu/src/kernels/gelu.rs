//! GELU with GPT-2's tanh approximation, forward and fused backward. Matches
//! `rg_core::ops::gelu_reference`.

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, FloatDType, Result};

use super::map::map2;
use crate::storage::CpuElement;
use crate::view::{boxed, check_dims, common_dtype, typed, unsupported};

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const COEFF: f64 = 0.044715;

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[inline(always)]
pub fn gelu<T: FloatDType>(x: T) -> T {
    let c = T::from_f64(SQRT_2_OVER_PI);
    let a = T::from_f64(COEFF);
    let half = T::from_f64(0.5);
    half * x * (T::one() + (c * (x + a * x * x * x)).tanh())
}

/// `dy * gelu'(x)`, with `gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)`
/// where `t` is the tanh of the forward pass.
#[inline(always)]
fn gelu_grad<T: FloatDType>(x: T, dy: T) -> T {
    let c = T::from_f64(SQRT_2_OVER_PI);
    let a = T::from_f64(COEFF);
    let half = T::from_f64(0.5);
    let x2 = x * x;
    let t = (c * (x + a * x2 * x)).tanh();
    let du = c * (T::one() + T::from_f64(3.0 * COEFF) * x2);
    dy * (half * (T::one() + t) + half * x * (T::one() - t * t) * du)
}

pub fn gelu_backward(x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "gelu_backward";
    check_dims(OP, "dy", dy.dims(), x.dims())?;
    fn run<T: FloatDType + CpuElement>(x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
        Ok(boxed(map2(
            typed::<T>(x, OP)?,
            typed::<T>(dy, OP)?,
            gelu_grad::<T>,
        )))
    }
    match common_dtype(OP, &[x, dy])? {
        DType::F32 => run::<f32>(x, dy),
        DType::F64 => run::<f64>(x, dy),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}
