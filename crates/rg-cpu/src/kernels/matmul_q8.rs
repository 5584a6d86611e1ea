//! `x · Wᵀ` with a Q8_0 weight (`rg_core::quant`): the entry point of the backend op.
//!
//! - At most [`super::gemv::MAX_ROWS`] rows (decoding): [`super::gemv_q8`] reads the
//!   int8 weight in place, the only traffic being its 1.0625 bytes per weight.
//! - More rows (prefill): the product is compute-bound, so the weight is widened to
//!   bf16 one panel of rows at a time (a panel stays in L2) and handed to the packed
//!   GEMM exactly as a bf16 weight would be, with `x` rounded to bf16 once. Numerically
//!   this is the bf16 path; its cost over bf16 is one read of the int8 panel.

use half::bf16;
use rayon::prelude::*;
use rg_core::backend::{BoxStorage, MatmulDims, View};
use rg_core::{Device, Error, Layout, Q8Matrix, Result, Shape};

use crate::view::{boxed, typed};

const OP: &str = "matmul_q8";

/// Bytes of one bf16 weight panel in the prefill path: well inside a 2 MiB L2.
const PANEL_BYTES: usize = 1 << 20;

pub fn matmul_q8(x: View<'_>, w: &Q8Matrix) -> Result<BoxStorage> {
    let xs = typed::<f32>(x, OP)?;
    let (m, k) = match xs.dims() {
        &[m, k] if k == w.cols() => (m, k),
        dims => {
            return Err(Error::backend(
                Device::Cpu,
                OP,
                format!(
                    "activations {dims:?} against a q8_0 weight [{}, {}]",
                    w.rows(),
                    w.cols()
                ),
            ))
        }
    };
    let x = xs.contiguous();
    if m <= super::gemv::MAX_ROWS {
        return Ok(boxed(super::gemv_q8::product(&x, m, w)));
    }
    prefill(&x, m, k, w)
}

/// The product through the bf16 GEMM, one dequantized panel of weight rows at a time.
fn prefill(x: &[f32], m: usize, k: usize, w: &Q8Matrix) -> Result<BoxStorage> {
    let n = w.rows();
    let x_bf16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let x_storage = boxed(x_bf16);
    let x_layout = Layout::contiguous(Shape::new([1, m, k]));
    let panel_rows = (PANEL_BYTES / (2 * k)).max(64).div_ceil(64) * 64;
    let mut out = vec![0f32; m * n];
    for r0 in (0..n).step_by(panel_rows) {
        let rows = panel_rows.min(n - r0);
        let mut panel = vec![bf16::ZERO; rows * k];
        dequantize_rows(w, r0, &mut panel);
        // The panel is `[rows, k]`; the GEMM reads it as `[k, rows]` by strides.
        let storage = boxed(panel);
        let w_layout = Layout::new(Shape::new([1, k, rows]), vec![rows * k, 1, k], 0);
        let dims = MatmulDims {
            batch: 1,
            m,
            n: rows,
            k,
        };
        let product = super::matmul::matmul(
            View::new(&*x_storage, &x_layout),
            View::new(&*storage, &w_layout),
            dims,
        )?;
        let product_layout = Layout::contiguous(Shape::new([m, rows]));
        let product = typed::<bf16>(View::new(&*product, &product_layout), OP)?;
        for (i, row) in product.data.chunks_exact(rows).enumerate() {
            for (o, v) in out[i * n + r0..i * n + r0 + rows].iter_mut().zip(row) {
                *o = v.to_f32();
            }
        }
    }
    Ok(boxed(out))
}

/// Rows `r0..` of `w` widened to bf16 into `panel` (`[rows, k]`), split across the pool.
fn dequantize_rows(w: &Q8Matrix, r0: usize, panel: &mut [bf16]) {
    let k = w.cols();
    panel.par_chunks_mut(k * 16).enumerate().for_each_init(
        || vec![0f32; k],
        |row_f32, (chunk, rows)| {
            for (i, row) in rows.chunks_exact_mut(k).enumerate() {
                w.dequantize_row_into(r0 + chunk * 16 + i, row_f32);
                for (o, &v) in row.iter_mut().zip(row_f32.iter()) {
                    *o = bf16::from_f32(v);
                }
            }
        },
    );
}
