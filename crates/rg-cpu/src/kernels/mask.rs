//! The causal mask of attention: `causal_fill` sets element `(i, j)` of the last two
//! axes `[t, s]` to a value where `j > i + (s - t)` (query `i` may not see key `j`;
//! `s - t` positions are already cached).

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Device, Error, Result};

use super::copy::materialise;
use crate::math::Real;
use crate::parallel::for_rows;
use crate::view::{boxed, typed, unsupported};

const OP: &str = "causal_fill";

pub fn causal_fill(src: View<'_>, value: f64) -> Result<BoxStorage> {
    let dims = src.dims();
    if dims.len() < 2 {
        return Err(Error::backend(
            Device::Cpu,
            OP,
            format!("needs at least two axes [.., t, s], got shape {dims:?}"),
        ));
    }
    let (t, s) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    fn run<T: Real>(src: View<'_>, value: f64, t: usize, s: usize) -> Result<BoxStorage> {
        let mut out = materialise(typed::<T>(src, OP)?);
        let value = T::from_f64(value);
        for_rows(&mut out, s, |first, rows| {
            for (r, row) in rows.chunks_exact_mut(s).enumerate() {
                let i = (first + r) % t;
                // First masked column: i + (s - t) + 1, clamped into 0..=s.
                let visible = (i + 1 + s).saturating_sub(t).min(s);
                row[visible..].fill(value);
            }
        });
        Ok(boxed(out))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src, value, t, s),
        DType::F64 => run::<f64>(src, value, t, s),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}
