use rg_core::ops::AttentionForward;
use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of fused causal attention; keeps the per-query log-sum-exp, from which the
/// probabilities are recomputed instead of stored.
struct Attention {
    lse: Tensor,
    scale: f64,
}

impl BackwardRule for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], out: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (q, k, v) = (inputs[0].tensor(), inputs[1].tensor(), inputs[2].tensor());
        let forward = AttentionForward {
            out: out.clone(),
            lse: self.lse.clone(),
        };
        let grads = q.attention_backward(k, v, &forward, g, self.scale)?;
        Ok(vec![Some(grads.dq), Some(grads.dk), Some(grads.dv)])
    }
}

impl Var {
    /// Fused causal attention with `self` as the queries `[b, t, h, d]` and keys and
    /// values `[b, s, h, d]` (see [`Tensor::attention`]); returns `[b, t, h, d]`.
    pub fn attention(&self, k: &Var, v: &Var, scale: f64) -> Result<Var> {
        let forward = self.tensor().attention(k.tensor(), v.tensor(), scale)?;
        let rule = Attention {
            lse: forward.lse,
            scale,
        };
        Ok(Var::from_op(forward.out, &[self, k, v], rule))
    }
}
