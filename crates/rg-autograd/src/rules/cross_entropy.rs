use rg_core::{Error, Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of the mean cross-entropy through the fused kernel.
struct CrossEntropy {
    targets: Tensor,
    lse: Tensor,
    ignore_index: Option<i64>,
    /// Number of rows whose target is not ignored (the mean's denominator).
    counted: usize,
}

impl BackwardRule for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let logits = inputs[0].tensor();
        let rows = logits.dims()[0];
        // d(mean)/d(loss_r) = 1/counted for every row, scaled by the upstream gradient.
        let dloss = g
            .reshape([1])?
            .broadcast_to([rows])?
            .scale(1.0 / self.counted.max(1) as f64)?;
        let dlogits =
            logits.cross_entropy_backward(&self.lse, &self.targets, &dloss, self.ignore_index)?;
        Ok(vec![Some(dlogits)])
    }
}

impl Var {
    /// Mean cross-entropy of `[n, v]` logits against `[n]` integer targets (rows whose
    /// target equals `ignore_index` are left out of the mean).
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: Option<i64>) -> Result<Var> {
        let out = self.tensor().cross_entropy(targets, ignore_index)?;
        let counted = match ignore_index {
            None => targets.elem_count(),
            Some(ignored) => targets
                .to_f64_vec()?
                .iter()
                .filter(|&&t| t != ignored as f64)
                .count(),
        };
        if counted == 0 {
            return Err(Error::invalid("cross_entropy", "every target is ignored"));
        }
        let mean = out.loss.sum_all()?.scale(1.0 / counted as f64)?;
        let rule = CrossEntropy {
            targets: targets.clone(),
            lse: out.lse,
            ignore_index,
            counted,
        };
        Ok(Var::from_op(mean, &[self], rule))
    }
}
