//! New storage filled with one value: `zeros` and `full`, every dtype.

use half::{bf16, f16};
use rg_core::backend::BoxStorage;
use rg_core::{DType, Result};

use crate::storage::CpuElement;
use crate::view::boxed;

pub fn zeros(dtype: DType, len: usize) -> Result<BoxStorage> {
    full(dtype, len, 0.0)
}

/// `value` converted to `dtype` the way a cast would (integers truncate and saturate).
pub fn full(dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
    fn run<T: CpuElement>(len: usize, value: f64) -> BoxStorage {
        // `vec!` of a zero float or integer asks the allocator for zeroed pages rather
        // than writing them.
        boxed(vec![T::from_f64(value); len])
    }
    Ok(match dtype {
        DType::F32 => run::<f32>(len, value),
        DType::F64 => run::<f64>(len, value),
        DType::BF16 => run::<bf16>(len, value),
        DType::F16 => run::<f16>(len, value),
        DType::U32 => run::<u32>(len, value),
        DType::I64 => run::<i64>(len, value),
    })
}
