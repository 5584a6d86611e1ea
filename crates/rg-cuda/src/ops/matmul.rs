//! Batched matrix products through cuBLAS (`blas.rs`). Operands are handed over in
//! place whenever cuBLAS can read them (one unit-stride axis per matrix, one stride
//! between batch entries, which may be 0 for a broadcast operand); otherwise they are
//! gathered into a contiguous copy first.

use rg_core::backend::{BoxStorage, MatmulDims, View};
use rg_core::{Error, Layout, Result, Shape};

use super::{alloc, boxed, common_dtype, float_sfx, memory, storage};
use crate::blas::{gemm_operand, Gemm, GemmOperand};
use crate::gpu::Gpu;
use crate::layout::coalesce;
use crate::storage::CudaStorage;

const OP: &str = "matmul";

/// How one operand goes to cuBLAS: its address, layout and batch stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub offset: usize,
    pub op: GemmOperand,
    pub batch_stride: usize,
}

/// Reads `layout` as `[.., rows, cols]` holding `batch` matrices (or one matrix
/// broadcast over the batch). `Ok(None)`: valid, but cuBLAS cannot read it in place.
pub fn place(
    layout: &Layout,
    batch: usize,
    rows: usize,
    cols: usize,
    what: &str,
) -> std::result::Result<Option<Placed>, String> {
    let dims = layout.dims();
    let strides = layout.strides();
    let rank = dims.len();
    if rank < 2 || dims[rank - 2] != rows || dims[rank - 1] != cols {
        return Err(format!("{what} has shape {dims:?}, expected [{batch}, {rows}, {cols}] (or a broadcast of [{rows}, {cols}])"));
    }
    let count: usize = dims[..rank - 2].iter().product();
    let batch_stride = if count == batch {
        let (bd, bs) = coalesce(&dims[..rank - 2], &[&strides[..rank - 2]]);
        match bd.len() {
            0 => 0,
            1 => bs[0][0],
            _ => return Ok(None),
        }
    } else if count == 1 {
        0
    } else {
        return Err(format!(
            "{what} has shape {dims:?}: {count} matrices for a batch of {batch}"
        ));
    };
    Ok(
        gemm_operand(rows, cols, strides[rank - 2], strides[rank - 1]).map(|op| Placed {
            offset: layout.offset(),
            op,
            batch_stride,
        }),
    )
}

pub fn matmul(gpu: &Gpu, lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
    let dtype = common_dtype(OP, &[lhs, rhs])?;
    float_sfx(OP, dtype)?;
    let MatmulDims { batch, m, n, k } = dims;
    let len = batch * m * n;
    let out = alloc(gpu, OP, dtype, len)?;
    if len == 0 {
        return Ok(boxed(out));
    }
    if k == 0 {
        return memory::full(gpu, dtype, len, 0.0);
    }
    let prepare = |v: View<'_>,
                   rows: usize,
                   cols: usize,
                   what: &str|
     -> Result<(u64, Placed, Option<CudaStorage>)> {
        let s = storage(gpu, v, OP)?;
        match place(v.layout, batch, rows, cols, what)
            .map_err(|e| Error::backend(gpu.device, OP, e))?
        {
            Some(p) => Ok((s.device_ptr(), p, None)),
            None => {
                // Gathered as [batch', rows, cols] row-major.
                let copy = memory::gather(gpu, v, OP)?;
                let count = v.layout.elem_count() / (rows * cols).max(1);
                let l = Layout::contiguous(Shape::new(vec![count, rows, cols]));
                let p = place(&l, batch, rows, cols, what)
                    .map_err(|e| Error::backend(gpu.device, OP, e))?
                    .ok_or_else(|| {
                        Error::backend(gpu.device, OP, "contiguous copy not readable by cuBLAS")
                    })?;
                Ok((copy.device_ptr(), p, Some(copy)))
            }
        }
    };
    let (lptr, lp, _lcopy) = prepare(lhs, m, k, "lhs")?;
    let (rptr, rp, _rcopy) = prepare(rhs, k, n, "rhs")?;
    let size = dtype.size_in_bytes() as u64;
    gpu.bind(OP)?;
    gpu.blas.gemm(
        OP,
        &Gemm {
            dtype,
            batch,
            m,
            n,
            k,
            lhs: lptr + lp.offset as u64 * size,
            lhs_op: lp.op,
            lhs_batch_stride: lp.batch_stride,
            rhs: rptr + rp.offset as u64 * size,
            rhs_op: rp.op,
            rhs_batch_stride: rp.batch_stride,
            out: out.device_ptr(),
        },
    )?;
    Ok(boxed(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dims: &[usize], strides: &[usize], offset: usize) -> Layout {
        Layout::new(Shape::new(dims.to_vec()), strides.to_vec(), offset)
    }

    #[test]
    fn contiguous_batches_and_broadcasts_go_in_place() {
        let p = place(&layout(&[4, 3, 5], &[15, 5, 1], 2), 4, 3, 5, "lhs")
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            Placed {
                offset: 2,
                op: GemmOperand {
                    transposed: false,
                    ld: 5
                },
                batch_stride: 15
            }
        );
        // A weight broadcast over the batch.
        let p = place(&layout(&[5, 7], &[7, 1], 0), 4, 5, 7, "rhs")
            .unwrap()
            .unwrap();
        assert_eq!(p.batch_stride, 0);
        // Heads of attention: [b, h, t, d] from a [b, t, h, d] tensor, transposed.
        let (b, t, h, d) = (2, 8, 4, 16);
        let q = layout(&[b, h, t, d], &[t * h * d, d, h * d, 1], 0);
        let p = place(&q, b * h, t, d, "lhs").unwrap();
        assert_eq!(p, None, "batch axes b and h do not merge: copied");
        let kt = layout(&[b * h, d, t], &[t * d, 1, d], 0);
        let p = place(&kt, b * h, d, t, "rhs").unwrap().unwrap();
        assert_eq!(
            p.op,
            GemmOperand {
                transposed: true,
                ld: d
            }
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let err = place(&layout(&[3, 5], &[5, 1], 0), 1, 3, 4, "rhs").unwrap_err();
        assert!(err.contains("rhs has shape [3, 5]"), "{err}");
        let err = place(&layout(&[2, 3, 5], &[15, 5, 1], 0), 4, 3, 5, "lhs").unwrap_err();
        assert!(err.contains("2 matrices for a batch of 4"), "{err}");
    }
}
