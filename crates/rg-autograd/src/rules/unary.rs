use rg_core::{CmpOp, Result, Tensor, UnaryOp};

use crate::{BackwardRule, Var};

/// Backward of the elementwise functions of one input; each arm is `d out / d x`.
struct Unary(UnaryOp);

impl BackwardRule for Unary {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], y: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = inputs[0].tensor();
        let dx = match self.0 {
            UnaryOp::Neg => g.neg()?,
            UnaryOp::Exp => g.mul(y)?,
            UnaryOp::Log => g.div(x)?,
            // 1 - tanh^2
            UnaryOp::Tanh => g.mul(&y.sqr()?.affine(-1.0, 1.0)?)?,
            UnaryOp::Sqrt => g.div(&y.scale(2.0)?)?,
            UnaryOp::Relu => {
                let zero = Tensor::zeros((), x.dtype(), &x.device())?;
                x.cmp(CmpOp::Gt, &zero)?.where_cond(g, &zero)?
            }
            UnaryOp::Gelu => x.gelu_backward(g)?,
            UnaryOp::Square => g.mul(&x.scale(2.0)?)?,
            UnaryOp::Recip => g.mul(&y.sqr()?)?.neg()?,
            UnaryOp::Abs => {
                let zero = Tensor::zeros((), x.dtype(), &x.device())?;
                x.cmp(CmpOp::Lt, &zero)?.where_cond(&g.neg()?, g)?
            }
        };
        Ok(vec![Some(dx)])
    }
}

/// Backward of `x * mul + add`.
struct Affine {
    mul: f64,
}

impl BackwardRule for Affine {
    fn name(&self) -> &'static str {
        "affine"
    }

    fn backward(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.scale(self.mul)?)])
    }
}

/// Backward of `x ^ e`: `e * x^(e-1)`.
struct Powf {
    exponent: f64,
}

impl BackwardRule for Powf {
    fn name(&self) -> &'static str {
        "powf"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = inputs[0].tensor();
        let d = x.powf(self.exponent - 1.0)?.scale(self.exponent)?;
        Ok(vec![Some(g.mul(&d)?)])
    }
}

impl Var {
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        Ok(Var::from_op(self.tensor().unary(op)?, &[self], Unary(op)))
    }
    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU, tanh approximation (fused forward and backward kernels).
    pub fn gelu(&self) -> Result<Var> {
        self.unary(UnaryOp::Gelu)
    }
    pub fn sqr(&self) -> Result<Var> {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Result<Var> {
        self.unary(UnaryOp::Recip)
    }
    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().affine(mul, add)?,
            &[self],
            Affine { mul },
        ))
    }

    pub fn scale(&self, factor: f64) -> Result<Var> {
        self.affine(factor, 0.0)
    }

    pub fn add_scalar(&self, value: f64) -> Result<Var> {
        self.affine(1.0, value)
    }

    pub fn powf(&self, exponent: f64) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().powf(exponent)?,
            &[self],
            Powf { exponent },
        ))
    }
}
