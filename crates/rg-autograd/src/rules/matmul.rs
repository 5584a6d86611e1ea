use rg_core::{DType, Error, Result, Tensor};

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
        grads.push(row_bias_grad(g, &inputs[2])?);
        Ok(grads)
    }
}

/// `[da, db]` for `a @ b` with output gradient `g` (see [`Matmul`]).
fn product_grads(g: &Tensor, a: &Var, b: &Var) -> Result<Vec<Option<Tensor>>> {
    let (at, bt) = (a.tensor(), b.tensor());
    let (needed, mul) = ([a.requires_grad(), b.requires_grad()], Tensor::matmul);
    operand_grads(g, [at, bt], needed, mul)
}

/// The gradients of the operands `[a, b]` of a product computed by `mul`, each in its
/// operand's memory order (see [`Matmul`]), for those `needed`.
fn operand_grads(
    g: &Tensor,
    [a, b]: [&Tensor; 2],
    needed: [bool; 2],
    mul: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<Option<Tensor>>> {
    let da = if needed[0] {
        let da = if is_transposed(a) {
            mul(b, &g.t()?)?.t()?
        } else {
            mul(g, &b.t()?)?
        };
        Some(da.sum_to_shape(a.shape())?)
    } else {
        None
    };
    let db = if needed[1] {
        let db = if is_transposed(b) {
            mul(&g.t()?, a)?.t()?
        } else {
            mul(&a.t()?, g)?
        };
        Some(db.sum_to_shape(b.shape())?)
    } else {
        None
    };
    Ok(vec![da, db])
}

/// Backward of a mixed-precision product of f32 vars (autocast): the forward
/// multiplied their `compute`-dtype copies `a` and `b` (kept here) with f32
/// accumulation and an f32 result, plus an optional f32 bias. The gradient is
/// rounded to `compute` once and both operand gradients come back in f32 straight
/// from the products' accumulators: no rounded bf16 gradient, and no cast pass.
struct MixedMatmul {
    a: Tensor,
    b: Tensor,
    compute: DType,
}

impl BackwardRule for MixedMatmul {
    fn name(&self) -> &'static str {
        "matmul_mixed"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gc = g.to_dtype(self.compute)?;
        let needed = [inputs[0].requires_grad(), inputs[1].requires_grad()];
        let mul = |x: &Tensor, y: &Tensor| x.matmul_f32(y, None);
        let mut grads = operand_grads(&gc, [&self.a, &self.b], needed, mul)?;
        if let Some(bias) = inputs.get(2) {
            grads.push(row_bias_grad(g, bias)?);
        }
        Ok(grads)
    }
}

/// The gradient of a bias added to every row of a product: `g` summed over the rows.
fn row_bias_grad(g: &Tensor, bias: &Var) -> Result<Option<Tensor>> {
    if !bias.requires_grad() {
        return Ok(None);
    }
    Ok(Some(g.sum_to_shape(bias.tensor().shape())?))
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

    /// `self @ rhs (+ bias)` for f32 vars computed in `compute` (bf16 or f16) as
    /// autocast does: both operands are rounded to `compute`, multiplied with f32
    /// accumulation, and the product (plus the f32 `bias`) is returned in f32 without
    /// being rounded; gradients come back in f32 the same way (see [`MixedMatmul`]).
    pub fn matmul_mixed(&self, rhs: &Var, bias: Option<&Var>, compute: DType) -> Result<Var> {
        for (what, v) in [("lhs", self), ("rhs", rhs)]
            .into_iter()
            .chain(bias.map(|b| ("bias", b)))
        {
            if v.dtype() != DType::F32 {
                return Err(Error::invalid(
                    "matmul_mixed",
                    format!(
                        "{what} is {:?}; mixed-precision products take f32 vars",
                        v.dtype()
                    ),
                ));
            }
        }
        let (a, b) = (
            self.tensor().to_dtype(compute)?,
            rhs.tensor().to_dtype(compute)?,
        );
        let out = a.matmul_f32(&b, bias.map(Var::tensor))?;
        let rule = MixedMatmul { a, b, compute };
        Ok(match bias {
            Some(bias) => Var::from_op(out, &[self, rhs, bias], rule),
            None => Var::from_op(out, &[self, rhs], rule),
        })
    }

    /// `self @ rhs + bias` in one op, `bias` `[n]` on every row (see
    /// [`Tensor::matmul_bias`]).
    pub fn matmul_bias(&self, rhs: &Var, bias: &Var) -> Result<Var> {
        let out = self.tensor().matmul_bias(rhs.tensor(), bias.tensor())?;
        Ok(Var::from_op(out, &[self, rhs, bias], MatmulBias))
    }
}
