use rg_core::{BinaryOp, CmpOp, Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of broadcasting binary ops; gradients are summed back to each operand's
/// shape.
struct Binary(BinaryOp);

impl BackwardRule for Binary {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (inputs[0].tensor(), inputs[1].tensor());
        let (da, db) = match self.0 {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), g.neg()?),
            BinaryOp::Mul => (
                if inputs[0].requires_grad() {
                    g.mul(b)?
                } else {
                    g.clone()
                },
                if inputs[1].requires_grad() {
                    g.mul(a)?
                } else {
                    g.clone()
                },
            ),
            BinaryOp::Div => {
                let da = g.div(b)?;
                let db = if inputs[1].requires_grad() {
                    da.mul(a)?.div(b)?.neg()?
                } else {
                    da.clone()
                };
                (da, db)
            }
            BinaryOp::Maximum | BinaryOp::Minimum => {
                // The gradient goes to the winning operand; ties go to `a`.
                let cmp = if self.0 == BinaryOp::Maximum {
                    CmpOp::Ge
                } else {
                    CmpOp::Le
                };
                let a_wins = a.cmp(cmp, b)?;
                let zero = Tensor::zeros((), g.dtype(), &g.device())?;
                (a_wins.where_cond(g, &zero)?, a_wins.where_cond(&zero, g)?)
            }
        };
        Ok(vec![
            Some(da.sum_to_shape(a.shape())?).filter(|_| inputs[0].requires_grad()),
            Some(db.sum_to_shape(b.shape())?).filter(|_| inputs[1].requires_grad()),
        ])
    }
}

impl Var {
    pub fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        let out = self.tensor().binary(op, rhs.tensor())?;
        Ok(Var::from_op(out, &[self, rhs], Binary(op)))
    }
    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Add, rhs)
    }
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, rhs)
    }
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, rhs)
    }
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Div, rhs)
    }
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Maximum, rhs)
    }
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Minimum, rhs)
    }
}
