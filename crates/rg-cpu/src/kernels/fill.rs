//! New storage filled with one value: `zeros` and `full`, every dtype.

use half::{bf16, f16};
use rg_core::backend::BoxStorage;
use rg_core::{DType, Device, Error, Result};

use crate::storage::CpuElement;
use crate::view::boxed;

pub fn zeros(dtype: DType, len: usize) -> Result<BoxStorage> {
    full(dtype, len, 0.0)
}

/// `value` converted to `dtype` the way a cast would (integers truncate and saturate).
pub fn full(dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
    fn run<T: CpuElement>(len: usize, value: f64) -> Result<BoxStorage> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b <= isize::MAX as usize);
        let too_big = || {
            Error::backend(
                Device::Cpu,
                "alloc",
                format!("cannot allocate {len} elements of {}", T::DTYPE),
            )
        };
        match bytes {
            None => Err(too_big()),
            Some(b) if b < LARGE_ALLOC => {
                let mut v = crate::pool::with_capacity(len);
                v.resize(len, T::from_f64(value));
                Ok(boxed(v))
            }
            // Large ones may not fit in memory: ask first, so that failing is an error
            // rather than an abort.
            Some(_) => {
                let mut v = Vec::new();
                v.try_reserve_exact(len).map_err(|_| too_big())?;
                v.resize(len, T::from_f64(value));
                Ok(boxed(v))
            }
        }
    }
    match dtype {
        DType::F32 => run::<f32>(len, value),
        DType::F64 => run::<f64>(len, value),
        DType::BF16 => run::<bf16>(len, value),
        DType::F16 => run::<f16>(len, value),
        DType::U32 => run::<u32>(len, value),
        DType::I64 => run::<i64>(len, value),
    }
}

/// Allocations from this size on are checked before they are made.
const LARGE_ALLOC: usize = 1 << 30;
