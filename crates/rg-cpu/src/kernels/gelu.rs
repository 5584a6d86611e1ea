//! GELU with GPT-2's tanh approximation, forward and fused backward. Matches
//! `rg_core::ops::gelu_reference`.
//!
//! Computed through the identity `0.5 (1 + tanh(z)) = sigmoid(2z)`: one exponential
//! (vectorisable, see `math`) instead of a tanh, and no cancellation near zero.

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Result};

use super::map::map2_runs;
use crate::math::Real;
use crate::view::{boxed, check_dims, common_dtype, typed, unsupported};

pub(crate) const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
pub(crate) const COEFF: f64 = 0.044715;

/// `0.5 x (1 + tanh(z))` with `z = sqrt(2/pi) (x + 0.044715 x^3)`, as `x sigmoid(2z)`.
#[inline(always)]
pub fn gelu<T: Real>(x: T) -> T {
    let two_c = T::from_f64(2.0 * SQRT_2_OVER_PI);
    let a = T::from_f64(COEFF);
    x * (two_c * (x + a * x * x * x)).sigmoid_v()
}

/// `dy * gelu'(x)`. With `s = sigmoid(2z)` (so `tanh(z) = 2s - 1`):
/// `gelu'(x) = s + 2 x s (1 - s) z'`, `z' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)`.
#[inline(always)]
fn gelu_grad<T: Real>(x: T, dy: T) -> T {
    let c = T::from_f64(SQRT_2_OVER_PI);
    let a = T::from_f64(COEFF);
    let x2 = x * x;
    let s = ((c + c) * (x + a * x2 * x)).sigmoid_v();
    let dz = c * (T::one() + T::from_f64(3.0 * COEFF) * x2);
    dy * (s + (x + x) * s * (T::one() - s) * dz)
}

pub fn gelu_backward(x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "gelu_backward";
    check_dims(OP, "dy", dy.dims(), x.dims())?;
    fn run<T: Real>(x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
        Ok(boxed(map2_runs(
            typed::<T>(x, OP)?,
            typed::<T>(dy, OP)?,
            gelu_grad::<T>,
            |dx, x, dy| T::gelu_backward_native(x, dy, dx),
        )))
    }
    match common_dtype(OP, &[x, dy])? {
        DType::F32 => run::<f32>(x, dy),
        DType::F64 => run::<f64>(x, dy),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}
