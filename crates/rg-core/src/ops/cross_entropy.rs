use crate::{Error, Result, Tensor};

/// Output of the fused cross-entropy: per-row losses and the log-sum-exp of each row.
#[derive(Debug, Clone)]
pub struct CrossEntropy {
    /// `[n]`; 0 for ignored rows.
    pub loss: Tensor,
    /// `[n]`, kept for the backward pass.
    pub lse: Tensor,
}

impl Tensor {
    /// Fused softmax + negative log-likelihood of `targets` over rows of `self`
    /// (`[n, v]` logits, `[n]` u32/i64 targets).
    pub fn cross_entropy(
        &self,
        targets: &Tensor,
        ignore_index: Option<i64>,
    ) -> Result<CrossEntropy> {
        const OP: &str = "cross_entropy";
        self.check_ce_shapes(OP, targets)?;
        let out = Tensor::with_views(OP, [self, targets], |b, [l, t]| {
            b.cross_entropy(l, t, ignore_index)
        })?;
        let n = self.dims()[0];
        Ok(CrossEntropy {
            loss: self.wrap(out.loss, n),
            lse: self.wrap(out.lse, n),
        })
    }

    /// Gradient of the per-row losses w.r.t. the logits `self`, given `dloss` (`[n]`).
    pub fn cross_entropy_backward(
        &self,
        lse: &Tensor,
        targets: &Tensor,
        dloss: &Tensor,
        ignore_index: Option<i64>,
    ) -> Result<Tensor> {
        const OP: &str = "cross_entropy_backward";
        self.check_ce_shapes(OP, targets)?;
        self.check_same(OP, lse)?;
        self.check_same(OP, dloss)?;
        let n = self.dims()[0];
        if lse.dims() != [n] || dloss.dims() != [n] {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().clone(),
                rhs: dloss.shape().clone(),
            });
        }
        let storage = Tensor::with_views(OP, [self, lse, targets, dloss], |b, [l, s, t, d]| {
            b.cross_entropy_backward(l, s, t, d, ignore_index)
        })?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    fn check_ce_shapes(&self, op: &'static str, targets: &Tensor) -> Result<()> {
        self.check_float(op)?;
        targets.check_index_dtype(op)?;
        self.check_device(op, targets)?;
        if self.rank() != 2 {
            return Err(Error::RankMismatch {
                op,
                expected: "2 ([rows, classes]) for the logits".into(),
                shape: self.shape().clone(),
            });
        }
        if targets.dims() != [self.dims()[0]] {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                rhs: targets.shape().clone(),
            });
        }
        Ok(())
    }
}
