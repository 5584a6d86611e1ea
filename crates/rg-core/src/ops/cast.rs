use crate::backend::View;
use crate::{DType, Layout, Result, Tensor};

impl Tensor {
    /// Converts to `dtype` (a copy; the same tensor when the dtype already matches).
    ///
    /// A transposed or permuted contiguous tensor keeps its memory order, as
    /// PyTorch's `preserve_format` does: the conversion is one pass over the storage
    /// range, and the result has the same strides. Casting the tied LM head's `wte^T`
    /// for bf16 autocast was otherwise a transpose of 38.6M values each way, and its
    /// gradient reached `wte` column-major, to be added to the embedding's row-major
    /// one across layouts.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let layout = self.layout();
        if let Some(range) = layout.dense_range().filter(|_| !layout.is_contiguous()) {
            let flat = Layout::contiguous_with_offset([range.len()], range.start);
            let guard = self.read();
            let storage = self.backend().cast(View::new(&**guard, &flat), dtype)?;
            let strides = layout.strides().to_vec();
            return Ok(self.wrap(storage, [range.len()]).with_layout(Layout::new(
                self.shape().clone(),
                strides,
                0,
            )));
        }
        let storage = self.with_view(|b, v| b.cast(v, dtype))?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
