use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of `a @ b`: `da = g @ b^T`, `db = a^T @ g`, summed over broadcast batches.
/// The transposes are views: the matmul kernel reads them through strides.
struct Matmul;

impl BackwardRule for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (inputs[0].tensor(), inputs[1].tensor());
        let da = if inputs[0].requires_grad() {
            Some(g.matmul(&b.t()?)?.sum_to_shape(a.shape())?)
        } else {
            None
        };
        let db = if inputs[1].requires_grad() {
            Some(a.t()?.matmul(g)?.sum_to_shape(b.shape())?)
        } else {
            None
        };
        Ok(vec![da, db])
    }
}

impl Var {
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let out = self.tensor().matmul(rhs.tensor())?;
        Ok(Var::from_op(out, &[self, rhs], Matmul))
    }
}
