use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of `where_cond`: the gradient flows to the branch each element came from.
struct Where {
    cond: Tensor,
}

impl BackwardRule for Where {
    fn name(&self) -> &'static str {
        "where_cond"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let zero = Tensor::zeros((), g.dtype(), &g.device())?;
        let on_true = self
            .cond
            .where_cond(g, &zero)?
            .sum_to_shape(inputs[0].shape())?;
        let on_false = self
            .cond
            .where_cond(&zero, g)?
            .sum_to_shape(inputs[1].shape())?;
        Ok(vec![Some(on_true), Some(on_false)])
    }
}

/// Backward of the causal fill: masked positions were constants.
struct CausalFill;

impl BackwardRule for CausalFill {
    fn name(&self) -> &'static str {
        "causal_fill"
    }

    fn backward(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.causal_fill(0.0)?)])
    }
}

impl Var {
    /// `cond != 0 ? on_true : on_false` with broadcasting; `cond` is a u32 tensor.
    pub fn where_cond(cond: &Tensor, on_true: &Var, on_false: &Var) -> Result<Var> {
        let out = cond.where_cond(on_true.tensor(), on_false.tensor())?;
        Ok(Var::from_op(
            out,
            &[on_true, on_false],
            Where { cond: cond.clone() },
        ))
    }

    /// `value` where `mask != 0`, else `self`.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Var> {
        let fill = Var::constant(Tensor::full(value, (), self.dtype(), &self.device())?);
        Var::where_cond(mask, &fill, self)
    }

    /// Fills strictly-future positions of the last two axes with `value` (attention).
    pub fn causal_fill(&self, value: f64) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().causal_fill(value)?,
            &[self],
            CausalFill,
        ))
    }
}
