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
        product_grads(g, &inputs[0], &inputs[1])
    }
}

/// Backward of `a @ b + bias` (a linear layer): the product's gradients as
/// [`Matmul`]'s, and `dbias = g` summed over every row.
struct MatmulBias;

impl BackwardRule for MatmulBias {
    fn name(&self) -> &'static str {
        "matmul_bias"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut grads = product_grads(g, &inputs[0], &inputs[1])?;
        let bias = &inputs[2];
        grads.push(if bias.requires_grad() {
            Some(g.sum_to_shape(bias.tensor().shape())?)
        } else {
            None
        });
        Ok(grads)
    }
}

/// `[da, db]` for `a @ b` with output gradient `g` (see [`Matmul`]).
fn product_grads(g: &Tensor, a: &Var, b: &Var) -> Result<Vec<Option<Tensor>>> {
    let (at, bt) = (a.tensor(), b.tensor());
    let da = if a.requires_grad() {
        let da = if is_transposed(at) {
            bt.matmul(&g.t()?)?.t()?
        } else {
            g.matmul(&bt.t()?)?
        };
        Some(da.sum_to_shape(at.shape())?)
    } else {
        None
    };
    let db = if b.requires_grad() {
        let db = if is_transposed(bt) {
            g.t()?.matmul(at)?.t()?
        } else {
            at.t()?.matmul(g)?
        };
        Some(db.sum_to_shape(bt.shape())?)
    } else {
        None
    };
    Ok(vec![da, db])
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

    /// `self @ rhs + bias` in one op, `bias` `[n]` on every row (see
    /// [`Tensor::matmul_bias`]).
    pub fn matmul_bias(&self, rhs: &Var, bias: &Var) -> Result<Var> {
        let out = self.tensor().matmul_bias(rhs.tensor(), bias.tensor())?;
        Ok(Var::from_op(out, &[self, rhs, bias], MatmulBias))
    }
}
