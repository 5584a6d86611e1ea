use rg_core::{DType, Result, Tensor};

use crate::{BackwardRule, Var};

/// Backward of a dtype conversion: the gradient converted back to the input's dtype
/// (mixed precision: a bf16 matmul's gradient reaches the f32 master weight as f32).
struct Cast {
    from: DType,
}

impl BackwardRule for Cast {
    fn name(&self) -> &'static str {
        "cast"
    }

    fn backward(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to_dtype(self.from)?)])
    }
}

impl Var {
    /// Converts to `dtype`; the same var when the dtype already matches.
    pub fn to_dtype(&self, dtype: DType) -> Result<Var> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let out = self.tensor().to_dtype(dtype)?;
        Ok(Var::from_op(out, &[self], Cast { from: self.dtype() }))
    }
}
