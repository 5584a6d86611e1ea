use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// `cond != 0 ? on_true : on_false` with broadcasting; `self` is the u32 condition.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_cond";
        if self.dtype() != DType::U32 {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: self.dtype(),
                expected: "a u32 condition",
            });
        }
        on_true.check_same(OP, on_false)?;
        self.check_device(OP, on_true)?;
        let shape = self
            .shape()
            .broadcast_with(OP, on_true.shape())?
            .broadcast_with(OP, on_false.shape())?;
        let [c, t, f] = [self, on_true, on_false].map(|x| x.broadcast_to(shape.clone()));
        let (c, t, f) = (c?, t?, f?);
        let storage = Tensor::with_views(OP, [&c, &t, &f], |b, [c, t, f]| b.where_cond(c, t, f))?;
        Ok(on_true.wrap(storage, shape))
    }

    /// `value` where `mask != 0`, else `self`.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let fill = Tensor::full(value, (), self.dtype(), &self.device())?;
        mask.where_cond(&fill, self)
    }

    /// Fills the strictly-future positions of the last two axes `[t, s]` with `value`:
    /// `(i, j)` with `j > i + (s - t)`. With `s > t` the first `s - t` keys are a cache.
    pub fn causal_fill(&self, value: f64) -> Result<Tensor> {
        const OP: &str = "causal_fill";
        self.check_float(OP)?;
        if self.rank() < 2 || self.dims()[self.rank() - 1] < self.dims()[self.rank() - 2] {
            return Err(Error::RankMismatch {
                op: OP,
                expected: "at least 2 with [.., t, s] and s >= t".into(),
                shape: self.shape().clone(),
            });
        }
        let storage = self.with_view(|b, v| b.causal_fill(v, value))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
