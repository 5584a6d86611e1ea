use rg_core::{Error, Result, Tensor};

use crate::{BackwardRule, InputGrad, Var};

/// Backward of `index_select`: scatter-add the gradient back to the selected entries
/// (this is also the embedding backward; repeated ids accumulate).
struct IndexSelect {
    axis: usize,
    ids: Tensor,
}

impl BackwardRule for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = Tensor::index_add(inputs[0].shape(), self.axis as isize, &self.ids, g)?;
        Ok(vec![Some(dx)])
    }

    fn input_grads(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<InputGrad>>> {
        Ok(vec![Some(InputGrad::IndexAdd {
            axis: self.axis,
            ids: self.ids.clone(),
            src: g.clone(),
        })])
    }
}

impl Var {
    pub fn index_select(&self, axis: isize, ids: &Tensor) -> Result<Var> {
        let a = self.shape().axis("index_select", axis)?;
        let out = self.tensor().index_select(axis, ids)?;
        let rule = IndexSelect {
            axis: a,
            ids: ids.clone(),
        };
        Ok(Var::from_op(out, &[self], rule))
    }

    /// Rows of a `[vocab, dim]` table for ids of any shape: `[..ids, dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Var> {
        if self.rank() != 2 {
            return Err(Error::RankMismatch {
                op: "embedding",
                expected: "2 ([vocab, dim]) for the table".into(),
                shape: self.shape().clone(),
            });
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.dims()[1]);
        self.index_select(0, &ids.flatten_all()?)?.reshape(dims)
    }
}
