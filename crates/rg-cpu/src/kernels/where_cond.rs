//! `cond != 0 ? on_true : on_false`, elementwise; `cond` is u32, the values any dtype.

use half::{bf16, f16};
use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Result};

use super::map::map3;
use crate::storage::CpuElement;
use crate::view::{boxed, check_dims, common_dtype, typed, unsupported};

const OP: &str = "where_cond";

pub fn where_cond(cond: View<'_>, on_true: View<'_>, on_false: View<'_>) -> Result<BoxStorage> {
    check_dims(OP, "on_true", on_true.dims(), cond.dims())?;
    check_dims(OP, "on_false", on_false.dims(), cond.dims())?;
    if cond.dtype() != DType::U32 {
        return Err(unsupported(OP, cond.dtype(), "u32 for the condition"));
    }
    fn run<T: CpuElement>(cond: View<'_>, t: View<'_>, f: View<'_>) -> Result<BoxStorage> {
        let c = typed::<u32>(cond, OP)?;
        let out = map3(
            c,
            typed::<T>(t, OP)?,
            typed::<T>(f, OP)?,
            |c: u32, t: T, f: T| {
                if c != 0 {
                    t
                } else {
                    f
                }
            },
        );
        Ok(boxed(out))
    }
    match common_dtype(OP, &[on_true, on_false])? {
        DType::F32 => run::<f32>(cond, on_true, on_false),
        DType::F64 => run::<f64>(cond, on_true, on_false),
        DType::BF16 => run::<bf16>(cond, on_true, on_false),
        DType::F16 => run::<f16>(cond, on_true, on_false),
        DType::U32 => run::<u32>(cond, on_true, on_false),
        DType::I64 => run::<i64>(cond, on_true, on_false),
    }
}
