use rg_core::{Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of `a @ b`: `da = g @ b^T`, `db = a^T @ g`, summed over broadcast batches.
/// The transposes are views: the matmul kernel reads them through strides.
///
/// Each gradient is produced in its operand's memory order: when `b` is a transposed
/// view (the tied LM head's `wte^T`), `db` is computed as `(g^T @ a)^T`, so it is a
/// transposed view of a row-major product and the transpose's own backward hands the
/// leaf a contiguous gradient. Otherwise the leaf would receive a column-major
/// gradient, and adding it to the embedding's row-major one would walk memory with a
/// stride of a whole row.
struct Matmul;

impl BackwardRule for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (inputs[0].tensor(), inputs[1].tensor());
        let da = if inputs[0].requires_grad() {
            let da = if is_transposed(a) {
                b.matmul(&g.t()?)?.t()?
            } else {
                g.matmul(&b.t()?)?
            };
            Some(da.sum_to_shape(a.shape())?)
        } else {
            None
        };
        let db = if inputs[1].requires_grad() {
            let db = if is_transposed(b) {
                g.t()?.matmul(a)?.t()?
            } else {
                a.t()?.matmul(g)?
            };
            Some(db.sum_to_shape(b.shape())?)
        } else {
            None
        };
        Ok(vec![da, db])
    }
}

/// Whether the last two axes are stored column-major (a transposed view).
fn is_transposed(x: &Tensor) -> bool {
    let (dims, strides) = (x.dims(), x.layout().strides());
    let r = dims.len();
    r >= 2 && dims[r - 2] > 1 && dims[r - 1] > 1 && strides[r - 2] == 1 && strides[r - 1] != 1
}

impl Var {
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let out = self.tensor().matmul(rhs.tensor())?;
        Ok(Var::from_op(out, &[self, rhs], Matmul))
    }
}
