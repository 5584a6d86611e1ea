use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of the fused layer norm; keeps the forward's per-row mean and rstd.
struct LayerNorm {
    mean: Tensor,
    rstd: Tensor,
}

impl BackwardRule for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma) = (inputs[0].tensor(), inputs[1].tensor());
        let (dx, dgamma, dbeta) = x.layer_norm_backward(g, gamma, &self.mean, &self.rstd)?;
        Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
    }
}

impl Var {
    /// Layer norm over the last axis with learned `gamma` and `beta`.
    pub fn layer_norm(&self, gamma: &Var, beta: &Var, eps: f64) -> Result<Var> {
        let out = self
            .tensor()
            .layer_norm(gamma.tensor(), beta.tensor(), eps)?;
        let rule = LayerNorm {
            mean: out.mean,
            rstd: out.rstd,
        };
        Ok(Var::from_op(out.y, &[self, gamma, beta], rule))
    }
}
