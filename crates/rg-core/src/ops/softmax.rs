use crate::{Result, Tensor};

impl Tensor {
    /// Softmax over the last axis (fused, numerically stable).
    pub fn softmax_last(&self) -> Result<Tensor> {
        self.softmax_impl("softmax", false)
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax_last(&self) -> Result<Tensor> {
        self.softmax_impl("log_softmax", true)
    }

    fn softmax_impl(&self, op: &'static str, log: bool) -> Result<Tensor> {
        self.check_float(op)?;
        self.shape().rows_cols(op)?;
        let storage = self.with_view(|b, v| b.softmax_last(v, log))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// Fused backward of (log-)softmax: `self` is the forward output `y`, `dy` its
    /// gradient.
    pub fn softmax_last_backward(&self, dy: &Tensor, log: bool) -> Result<Tensor> {
        const OP: &str = "softmax_backward";
        self.check_same(OP, dy)?;
        self.check_same_shape(OP, dy)?;
        self.check_float(OP)?;
        let storage = Tensor::with_views(OP, [self, dy], |b, [y, dy]| {
            b.softmax_last_backward(y, dy, log)
        })?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
