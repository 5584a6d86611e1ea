//! Dtype conversion of a view into new contiguous storage, any dtype to any dtype.
//!
//! Floats to integers truncate toward zero and saturate (NaN becomes 0), as Rust's `as`
//! does. f32 <-> bf16/f16 convert directly; other pairs go through f64, which is exact
//! for every value these dtypes hold except i64 beyond 2^53.

use half::{bf16, f16};
use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Result};

use super::copy::materialise;
use super::map::map1;
use crate::storage::CpuElement;
use crate::view::{boxed, typed};

const OP: &str = "cast";

pub fn cast(src: View<'_>, dtype: DType) -> Result<BoxStorage> {
    match (src.dtype(), dtype) {
        (DType::F32, DType::BF16) => direct(src, |x: f32| bf16::from_bits(bf16_bits(x))),
        (DType::F32, DType::F16) => direct(src, f16::from_f32),
        (DType::BF16, DType::F32) => direct(src, bf16_to_f32),
        (DType::F16, DType::F32) => direct(src, f16::to_f32),
        (from, to) if from == to => same(src),
        (DType::F32, to) => via_f64::<f32>(src, to),
        (DType::F64, to) => via_f64::<f64>(src, to),
        (DType::BF16, to) => via_f64::<bf16>(src, to),
        (DType::F16, to) => via_f64::<f16>(src, to),
        (DType::U32, to) => via_f64::<u32>(src, to),
        (DType::I64, to) => via_f64::<i64>(src, to),
    }
}

/// A closure (not a function pointer) so that the elementwise loop inlines it and
/// vectorises: through `half`'s functions as pointers each bf16 element was a call,
/// and the casts of a bf16 training step took a fifth of it.
fn direct<S: CpuElement, D: CpuElement>(
    src: View<'_>,
    f: impl Fn(S) -> D + Sync,
) -> Result<BoxStorage> {
    Ok(boxed(map1(typed::<S>(src, OP)?, f)))
}

/// `f32::from(x)`, exact (a bf16 is an f32's upper half), written on the bits so that
/// the loops it is passed to vectorise.
#[inline(always)]
pub(crate) fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// `half::bf16::from_f32`'s bits without its branches: round to nearest, ties to even
/// (adding `0x7fff` plus the kept part's lowest bit carries exactly when the dropped
/// half is above one half, or one half with an odd kept part); NaN stays NaN, quiet.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b >> 16) | 0x40;
    (if b & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }) as u16
}

fn same(src: View<'_>) -> Result<BoxStorage> {
    fn run<T: CpuElement>(src: View<'_>) -> Result<BoxStorage> {
        Ok(boxed(materialise(typed::<T>(src, OP)?)))
    }
    match src.dtype() {
        DType::F32 => run::<f32>(src),
        DType::F64 => run::<f64>(src),
        DType::BF16 => run::<bf16>(src),
        DType::F16 => run::<f16>(src),
        DType::U32 => run::<u32>(src),
        DType::I64 => run::<i64>(src),
    }
}

fn via_f64<S: CpuElement>(src: View<'_>, to: DType) -> Result<BoxStorage> {
    fn run<S: CpuElement, D: CpuElement>(src: View<'_>) -> Result<BoxStorage> {
        Ok(boxed(map1(typed::<S>(src, OP)?, |x: S| {
            D::from_f64(x.to_f64())
        })))
    }
    match to {
        DType::F32 => run::<S, f32>(src),
        DType::F64 => run::<S, f64>(src),
        DType::BF16 => run::<S, bf16>(src),
        DType::F16 => run::<S, f16>(src),
        DType::U32 => run::<S, u32>(src),
        DType::I64 => run::<S, i64>(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 bit pattern's high half, with low halves around the rounding
    /// boundaries and at random.
    #[test]
    fn bf16_bits_matches_half_on_rounding_boundaries_nan_and_infinity() {
        let lows = [0u32, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234, 0xc0de];
        for high in 0..=u16::MAX as u32 {
            for low in lows {
                let x = f32::from_bits(high << 16 | low);
                assert_eq!(
                    bf16_bits(x),
                    bf16::from_f32(x).to_bits(),
                    "bits {:#010x}",
                    x.to_bits()
                );
            }
        }
    }
}
