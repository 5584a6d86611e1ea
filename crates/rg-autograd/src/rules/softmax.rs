use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of (log-)softmax over the last axis through the fused kernel.
struct Softmax {
    log: bool,
}

impl BackwardRule for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }

    fn backward(&self, g: &Tensor, _: &[Var], y: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(y.softmax_last_backward(g, self.log)?)])
    }
}

impl Var {
    pub fn softmax_last(&self) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().softmax_last()?,
            &[self],
            Softmax { log: false },
        ))
    }

    pub fn log_softmax_last(&self) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().log_softmax_last()?,
            &[self],
            Softmax { log: true },
        ))
    }
}
