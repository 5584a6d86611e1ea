use crate::{Error, Result, Tensor};

/// Output of fused causal attention: `out` and the per-query log-sum-exp its backward
/// needs.
#[derive(Debug, Clone)]
pub struct AttentionForward {
    /// `[b, t, h, d]`, contiguous: reshaping to `[b, t, h * d]` merges the heads.
    pub out: Tensor,
    /// `[b, h, t]`.
    pub lse: Tensor,
}

/// Gradients of fused causal attention.
#[derive(Debug, Clone)]
pub struct AttentionBackward {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
}

impl Tensor {
    /// Causal scaled dot-product attention with `self` as the queries `[b, t, h, d]`
    /// and keys and values `[b, s, h, d]`, `s >= t`: query `i` sees keys
    /// `j <= i + (s - t)` (the last `t` of `s` positions are the queries' own). Heads
    /// stay interleaved, so slices of a fused QKV projection are passed as they are.
    pub fn attention(&self, k: &Tensor, v: &Tensor, scale: f64) -> Result<AttentionForward> {
        const OP: &str = "attention";
        let [b, t, h, _] = self.attention_dims(OP, k, v)?;
        let out = Tensor::with_views(OP, [self, k, v], |be, [q, k, v]| {
            be.attention(q, k, v, scale)
        })?;
        Ok(AttentionForward {
            out: self.wrap(out.out, self.shape().clone()),
            lse: self.wrap(out.lse, [b, h, t]),
        })
    }

    /// Gradients of [`Tensor::attention`] with respect to `self` (the queries), `k` and
    /// `v`, given the forward's `out` and `lse` and the gradient `dout` of `out`.
    pub fn attention_backward(
        &self,
        k: &Tensor,
        v: &Tensor,
        forward: &AttentionForward,
        dout: &Tensor,
        scale: f64,
    ) -> Result<AttentionBackward> {
        const OP: &str = "attention_backward";
        let [b, t, h, _] = self.attention_dims(OP, k, v)?;
        let AttentionForward { out, lse } = forward;
        for (what, x) in [("out", out), ("dout", dout)] {
            self.check_same(OP, x)?;
            if x.dims() != self.dims() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{what} has shape {}, expected the queries' {}",
                        x.shape(),
                        self.shape()
                    ),
                ));
            }
        }
        self.check_device(OP, lse)?;
        if lse.dims() != [b, h, t] {
            return Err(Error::invalid(
                OP,
                format!("lse has shape {}, expected [{b}, {h}, {t}]", lse.shape()),
            ));
        }
        let grads = Tensor::with_views(
            OP,
            [self, k, v, out, lse, dout],
            |be, [q, k, v, o, l, d]| be.attention_backward(q, k, v, o, l, d, scale),
        )?;
        Ok(AttentionBackward {
            dq: self.wrap(grads.dq, self.shape().clone()),
            dk: self.wrap(grads.dk, k.shape().clone()),
            dv: self.wrap(grads.dv, v.shape().clone()),
        })
    }

    /// `[b, t, h, d]` after checking that `self`, `k` and `v` fit together.
    fn attention_dims(&self, op: &'static str, k: &Tensor, v: &Tensor) -> Result<[usize; 4]> {
        self.check_float(op)?;
        self.check_same(op, k)?;
        self.check_same(op, v)?;
        let (qd, kd) = (self.dims(), k.dims());
        let fits = qd.len() == 4
            && kd.len() == 4
            && v.dims() == kd
            && (kd[0], kd[2], kd[3]) == (qd[0], qd[2], qd[3])
            && kd[1] >= qd[1];
        if !fits {
            return Err(Error::invalid(
                op,
                format!(
                    "q {}, k {}, v {}: expected q [b, t, h, d] and k, v [b, s, h, d] with s >= t",
                    self.shape(),
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        Ok([qd[0], qd[1], qd[2], qd[3]])
    }
}
