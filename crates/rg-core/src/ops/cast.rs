use crate::{DType, Result, Tensor};

impl Tensor {
    /// Converts to `dtype` (a copy; the same tensor when the dtype already matches).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let storage = self.with_view(|b, v| b.cast(v, dtype))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
