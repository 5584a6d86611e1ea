use crate::{Error, Result, Tensor};

/// Output of the fused layer norm: `y` and the per-row statistics its backward needs.
#[derive(Debug, Clone)]
pub struct LayerNormForward {
    pub y: Tensor,
    /// Shape of `x` without its last axis.
    pub mean: Tensor,
    /// `1 / sqrt(var + eps)`, same shape as `mean`.
    pub rstd: Tensor,
}

impl Tensor {
    /// Layer norm over the last axis with per-feature `gamma` and `beta` (both `[c]`).
    pub fn layer_norm(&self, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<LayerNormForward> {
        const OP: &str = "layer_norm";
        self.check_float(OP)?;
        self.check_same(OP, gamma)?;
        self.check_same(OP, beta)?;
        let (_, c) = self.shape().rows_cols(OP)?;
        for p in [gamma, beta] {
            if p.dims() != [c] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: self.shape().clone(),
                    rhs: p.shape().clone(),
                });
            }
        }
        let out = Tensor::with_views(OP, [self, gamma, beta], |b, [x, g, bt]| {
            b.layer_norm(x, g, bt, eps)
        })?;
        let stats_dims = &self.dims()[..self.rank() - 1];
        Ok(LayerNormForward {
            y: self.wrap(out.y, self.shape().clone()),
            mean: self.wrap(out.mean, stats_dims),
            rstd: self.wrap(out.rstd, stats_dims),
        })
    }

    /// Fused layer-norm backward: returns `(dx, dgamma, dbeta)`. `self` is `x`.
    pub fn layer_norm_backward(
        &self,
        dy: &Tensor,
        gamma: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "layer_norm_backward";
        self.check_same_shape(OP, dy)?;
        for t in [dy, gamma, mean, rstd] {
            self.check_same(OP, t)?;
        }
        let (rows, c) = self.shape().rows_cols(OP)?;
        if gamma.dims() != [c] || mean.elem_count() != rows || rstd.elem_count() != rows {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().clone(),
                rhs: gamma.shape().clone(),
            });
        }
        let grads =
            Tensor::with_views(OP, [dy, self, gamma, mean, rstd], |b, [dy, x, g, m, r]| {
                b.layer_norm_backward(dy, x, g, m, r)
            })?;
        Ok((
            self.wrap(grads.dx, self.shape().clone()),
            self.wrap(grads.dgamma, c),
            self.wrap(grads.dbeta, c),
        ))
    }
}
