//! TEMPORARY: bf16 products of more than `gemv::MAX_ROWS` rows (a prompt's prefill with
//! bf16 weights) as f32: both operands are widened to contiguous f32 copies, multiplied
//! by the f32 GEMM, and the product rounded to bf16. Correct (f32 accumulation) but it
//! copies the weight on every call; the GEMM that packs bf16 panels directly replaces it.

use half::bf16;
use rg_core::backend::{BoxStorage, MatmulDims, View};
use rg_core::{DType, Error, Layout, Result};

use super::cast::cast;
use crate::view::{boxed, cpu_storage};

const OP: &str = "matmul";

/// `f32_gemm` is the f32 path of `matmul` (passed in so this file stays independent of
/// how that path is organised).
pub fn via_f32(
    lhs: View<'_>,
    rhs: View<'_>,
    dims: MatmulDims,
    f32_gemm: impl Fn(View<'_>, View<'_>, MatmulDims) -> Result<BoxStorage>,
) -> Result<BoxStorage> {
    let (a, b) = (cast(lhs, DType::F32)?, cast(rhs, DType::F32)?);
    let (la, lb) = (
        Layout::contiguous(lhs.layout.shape().clone()),
        Layout::contiguous(rhs.layout.shape().clone()),
    );
    let out = f32_gemm(View::new(&*a, &la), View::new(&*b, &lb), dims)?;
    let out = cpu_storage(&*out, OP)?
        .as_slice::<f32>()
        .ok_or(Error::DTypeMismatch {
            op: OP,
            lhs: DType::F32,
            rhs: out.dtype(),
        })?
        .iter()
        .map(|&v| bf16::from_f32(v))
        .collect::<Vec<_>>();
    Ok(boxed(out))
}
