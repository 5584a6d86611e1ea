use crate::backend::MatmulDims;
use crate::{DType, Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// Matrix product over the last two axes, `[..., m, k] x [..., k, n]`, with the
    /// leading (batch) axes broadcast. Transposed operands are read through their
    /// strides, not copied.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let p = self.plan_product("matmul", rhs)?;
        let storage = Tensor::with_views("matmul", [&p.lhs, &p.rhs], |b, [l, r]| {
            b.matmul(l, r, p.dims)
        })?;
        Ok(self.wrap(storage, p.out_dims))
    }

    /// `self @ rhs + bias`, `bias` `[n]` added to every row of the product: a linear
    /// layer's forward in one pass (PyTorch's `addmm` with a row bias). Shapes as
    /// [`Tensor::matmul`].
    pub fn matmul_bias(&self, rhs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul_bias";
        let p = self.plan_product(OP, rhs)?;
        self.check_same(OP, bias)?;
        p.check_row_bias(OP, bias)?;
        let storage = Tensor::with_views(OP, [&p.lhs, &p.rhs, bias], |b, [l, r, c]| {
            b.matmul_bias(l, r, c, p.dims)
        })?;
        Ok(self.wrap(storage, p.out_dims))
    }

    /// `self @ rhs (+ bias)` with an f32 result whatever the operands' float dtype:
    /// half-precision operands (an autocast product) are multiplied with f32
    /// accumulation and the product is not rounded back to their dtype. `bias`, when
    /// given, is f32 `[n]`. Shapes as [`Tensor::matmul`].
    pub fn matmul_f32(&self, rhs: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        const OP: &str = "matmul_f32";
        let p = self.plan_product(OP, rhs)?;
        let Some(bias) = bias else {
            let storage = Tensor::with_views(OP, [&p.lhs, &p.rhs], |b, [l, r]| {
                b.matmul_f32(l, r, None, p.dims)
            })?;
            return Ok(self.wrap(storage, p.out_dims));
        };
        if bias.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: DType::F32,
                rhs: bias.dtype(),
            });
        }
        p.check_row_bias(OP, bias)?;
        let storage = Tensor::with_views(OP, [&p.lhs, &p.rhs, bias], |b, [l, r, c]| {
            b.matmul_f32(l, r, Some(c), p.dims)
        })?;
        Ok(self.wrap(storage, p.out_dims))
    }

    /// Checks a product's operands and views both as `[batch, rows, cols]`.
    fn plan_product(&self, op: &'static str, rhs: &Tensor) -> Result<Product> {
        self.check_same(op, rhs)?;
        self.check_float(op)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::RankMismatch {
                op,
                expected: format!("at least 2 for both operands (rhs shape {})", rhs.shape()),
                shape: self.shape().clone(),
            });
        }
        let (m, k) = last_two(self.dims());
        let (k2, n) = last_two(rhs.dims());
        let mismatch = || Error::ShapeMismatch {
            op,
            lhs: self.shape().clone(),
            rhs: rhs.shape().clone(),
        };
        if k != k2 {
            return Err(mismatch());
        }
        let lhs_batch = Shape::new(&self.dims()[..self.rank() - 2]);
        let rhs_batch = Shape::new(&rhs.dims()[..rhs.rank() - 2]);
        let batch_shape = lhs_batch
            .broadcast_with(op, &rhs_batch)
            .map_err(|_| mismatch())?;
        let batch = batch_shape.elem_count();
        let mut out_dims = batch_shape.dims().to_vec();
        out_dims.extend([m, n]);
        Ok(Product {
            lhs: self.as_batched(&batch_shape, m, k)?,
            rhs: rhs.as_batched(&batch_shape, k, n)?,
            dims: MatmulDims { batch, m, n, k },
            out_dims,
        })
    }

    /// This tensor broadcast to `batch x rows x cols` and viewed as 3-D, copying only
    /// when the batch axes cannot be expressed with one stride.
    fn as_batched(&self, batch_shape: &Shape, rows: usize, cols: usize) -> Result<Tensor> {
        let mut full = batch_shape.dims().to_vec();
        full.extend([rows, cols]);
        let view = self.broadcast_to(full)?;
        if let Some(layout) = collapse_batch(view.layout()) {
            return Ok(view.with_layout(layout));
        }
        let copy = view.contiguous()?;
        let layout = collapse_batch(copy.layout()).expect("contiguous batch axes collapse");
        Ok(copy.with_layout(layout))
    }
}

/// A product's operands as `[batch, rows, cols]` views, and the output's shape.
struct Product {
    lhs: Tensor,
    rhs: Tensor,
    dims: MatmulDims,
    out_dims: Vec<usize>,
}

impl Product {
    /// A bias added to every row of the product must be `[n]`.
    fn check_row_bias(&self, op: &'static str, bias: &Tensor) -> Result<()> {
        if bias.dims() == [self.dims.n] {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            op,
            lhs: Shape::new([self.dims.n]),
            rhs: bias.shape().clone(),
        })
    }
}

fn last_two(dims: &[usize]) -> (usize, usize) {
    (dims[dims.len() - 2], dims[dims.len() - 1])
}

/// `[b1, .., bj, r, c]` as `[b1*..*bj, r, c]` when the batch axes step uniformly.
fn collapse_batch(layout: &Layout) -> Option<Layout> {
    let dims = layout.dims();
    let strides = layout.strides();
    let nb = dims.len() - 2;
    let batch: usize = dims[..nb].iter().product();
    // Stride of the merged batch axis: that of the innermost non-trivial batch axis.
    let mut batch_stride = 0;
    let mut expected: Option<usize> = None;
    for i in (0..nb).rev() {
        if dims[i] == 1 {
            continue;
        }
        match expected {
            None => batch_stride = strides[i],
            Some(e) if e != strides[i] => return None,
            Some(_) => {}
        }
        expected = Some(strides[i] * dims[i]);
    }
    Some(Layout::new(
        Shape::new([batch, dims[nb], dims[nb + 1]]),
        vec![batch_stride, strides[nb], strides[nb + 1]],
        layout.offset(),
    ))
}
