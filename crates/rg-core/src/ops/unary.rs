use crate::{Result, Tensor, UnaryOp};

impl Tensor {
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.check_float(op.name())?;
        let storage = self.with_view(|b, v| b.unary(op, v))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU with GPT-2's tanh approximation.
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu)
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.check_float("affine")?;
        let storage = self.with_view(|b, v| b.affine(v, mul, add))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    pub fn scale(&self, factor: f64) -> Result<Tensor> {
        self.affine(factor, 0.0)
    }

    pub fn add_scalar(&self, value: f64) -> Result<Tensor> {
        self.affine(1.0, value)
    }

    pub fn powf(&self, exponent: f64) -> Result<Tensor> {
        self.check_float("powf")?;
        let storage = self.with_view(|b, v| b.powf(v, exponent))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// Fused GELU backward: `dy * gelu'(self)`.
    pub fn gelu_backward(&self, dy: &Tensor) -> Result<Tensor> {
        self.check_float("gelu_backward")?;
        self.check_same("gelu_backward", dy)?;
        self.check_same_shape("gelu_backward", dy)?;
        let storage = Tensor::with_views("gelu_backward", [self, dy], |b, [x, dy]| {
            b.gelu_backward(x, dy)
        })?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
