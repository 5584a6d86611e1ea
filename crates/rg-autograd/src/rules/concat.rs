use rg_core::{Error, Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of concat: each input gets its slice of the gradient.
struct Concat {
    axis: usize,
}

impl BackwardRule for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(inputs.len());
        for input in inputs {
            let len = input.dims()[self.axis];
            grads.push(Some(g.narrow(self.axis as isize, start, len)?));
            start += len;
        }
        Ok(grads)
    }
}

impl Var {
    pub fn concat(vars: &[Var], axis: isize) -> Result<Var> {
        let first = vars
            .first()
            .ok_or_else(|| Error::invalid("concat", "needs at least one tensor"))?;
        let a = first.shape().axis("concat", axis)?;
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.tensor().clone()).collect();
        let out = Tensor::concat(&tensors, axis)?;
        let refs: Vec<&Var> = vars.iter().collect();
        Ok(Var::from_op(out, &refs, Concat { axis: a }))
    }
}
