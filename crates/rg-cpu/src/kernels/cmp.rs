//! Elementwise comparisons: u32 1 where the comparison holds, else 0. Every dtype.

use half::{bf16, f16};
use rg_core::backend::{BoxStorage, View};
use rg_core::{CmpOp, DType, Result};

use super::map::map2;
use crate::aligned::AlignedVec;
use crate::storage::CpuElement;
use crate::view::{boxed, check_dims, common_dtype, typed, Typed};

const OP: &str = "cmp";

pub fn cmp(op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
    check_dims(OP, "rhs", rhs.dims(), lhs.dims())?;
    fn run<T: CpuElement + PartialOrd>(
        op: CmpOp,
        lhs: View<'_>,
        rhs: View<'_>,
    ) -> Result<BoxStorage> {
        Ok(boxed(apply(op, typed::<T>(lhs, OP)?, typed::<T>(rhs, OP)?)))
    }
    match common_dtype(OP, &[lhs, rhs])? {
        DType::F32 => run::<f32>(op, lhs, rhs),
        DType::F64 => run::<f64>(op, lhs, rhs),
        DType::BF16 => run::<bf16>(op, lhs, rhs),
        DType::F16 => run::<f16>(op, lhs, rhs),
        DType::U32 => run::<u32>(op, lhs, rhs),
        DType::I64 => run::<i64>(op, lhs, rhs),
    }
}

fn apply<T: CpuElement + PartialOrd>(
    op: CmpOp,
    a: Typed<'_, T>,
    b: Typed<'_, T>,
) -> AlignedVec<u32> {
    match op {
        CmpOp::Eq => map2(a, b, |x: T, y: T| (x == y) as u32),
        CmpOp::Ne => map2(a, b, |x: T, y: T| (x != y) as u32),
        CmpOp::Lt => map2(a, b, |x: T, y: T| (x < y) as u32),
        CmpOp::Le => map2(a, b, |x: T, y: T| (x <= y) as u32),
        CmpOp::Gt => map2(a, b, |x: T, y: T| (x > y) as u32),
        CmpOp::Ge => map2(a, b, |x: T, y: T| (x >= y) as u32),
    }
}
