//! `sum(x^2)` in one pass (gradient norms), without materialising the squares.

use rayon::prelude::*;
use rg_core::backend::View;
use rg_core::{DType, Result};

use super::lanes;
use crate::math::Real;
use crate::parallel::chunk_len;
use crate::simd::multiversion;
use crate::view::{typed, unsupported};

const OP: &str = "sum_squares";

/// Elements summed in the compute type before the partial sum joins the f64 total,
/// which keeps f32 rounding error independent of the tensor's size.
const BLOCK: usize = 4096;

pub fn sum_squares(src: View<'_>) -> Result<f64> {
    match src.dtype() {
        DType::F32 => run::<f32>(src),
        DType::F64 => run::<f64>(src),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

fn run<T: Real>(src: View<'_>) -> Result<f64> {
    let x = typed::<T>(src, OP)?.contiguous();
    if x.is_empty() {
        return Ok(0.0);
    }
    let chunk = chunk_len(x.len()).next_multiple_of(BLOCK);
    Ok(x.par_chunks(chunk).map(|c| sum_blocks(c)).sum())
}

multiversion! {
    fn sum_blocks<T>(x: &[T]) -> f64 where [T: Real] {
        x.chunks(BLOCK)
            .map(|b| lanes::sum_map(b, |v| v * v).to_f64())
            .sum()
    }
}
