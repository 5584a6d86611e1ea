//! The weight of a matrix product: a dense parameter, or a Q8_0 matrix for inference.

use std::sync::Arc;

use rg_autograd::Var;
use rg_core::{Device, Q8Matrix};

/// What [`crate::autocast::matmul`] multiplies activations by.
///
/// - `Dense(w)`: `x @ w`, `w` `[k, n]` (any dtype and strides; a parameter).
/// - `Q8(q)`: `x · qᵀ`, `q` `[n, k]` with the reduction axis last (the Q8_0 layout,
///   `rg_core::quant`); constant, so inference only.
#[derive(Clone, Debug)]
pub enum Weight {
    Dense(Var),
    Q8(Arc<Q8Matrix>),
}

impl Weight {
    /// The dense parameter, `None` for a quantized weight.
    pub fn var(&self) -> Option<&Var> {
        match self {
            Weight::Dense(v) => Some(v),
            Weight::Q8(_) => None,
        }
    }

    /// Quantized matrices live in host memory.
    pub fn device(&self) -> Device {
        match self {
            Weight::Dense(v) => v.device(),
            Weight::Q8(_) => Device::Cpu,
        }
    }

    /// Size of the output axis of the product: `n`.
    pub fn out_features(&self) -> usize {
        match self {
            Weight::Dense(v) => v.dims().last().copied().unwrap_or(0),
            Weight::Q8(q) => q.rows(),
        }
    }
}
