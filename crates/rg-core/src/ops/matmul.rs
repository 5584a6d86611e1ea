use crate::backend::MatmulDims;
use crate::{Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// Matrix product over the last two axes, `[..., m, k] x [..., k, n]`, with the
    /// leading (batch) axes broadcast. Transposed operands are read through their
    /// strides, not copied.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        self.check_same(OP, rhs)?;
        self.check_float(OP)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::RankMismatch {
                op: OP,
                expected: format!("at least 2 for both operands (rhs shape {})", rhs.shape()),
                shape: self.shape().clone(),
            });
        }
        let (m, k) = last_two(self.dims());
        let (k2, n) = last_two(rhs.dims());
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
            });
        }
        let lhs_batch = Shape::new(&self.dims()[..self.rank() - 2]);
        let rhs_batch = Shape::new(&rhs.dims()[..rhs.rank() - 2]);
        let batch_shape =
            lhs_batch
                .broadcast_with(OP, &rhs_batch)
                .map_err(|_| Error::ShapeMismatch {
                    op: OP,
                    lhs: self.shape().clone(),
                    rhs: rhs.shape().clone(),
                })?;
        let batch = batch_shape.elem_count();
        let lhs = self.as_batched(&batch_shape, m, k)?;
        let rhs = rhs.as_batched(&batch_shape, k, n)?;
        let dims = MatmulDims { batch, m, n, k };
        let storage = Tensor::with_views(OP, [&lhs, &rhs], |b, [l, r]| b.matmul(l, r, dims))?;
        let mut out_dims = batch_shape.dims().to_vec();
        out_dims.extend([m, n]);
        Ok(self.wrap(storage, out_dims))
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
