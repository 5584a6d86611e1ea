use rg_autograd::Var;
use rg_core::{DType, Error, Result, Tensor};

use crate::{Init, Module, ParamBuilder, Weight};

/// A `[vocab, dim]` lookup table: a parameter, or (when the source holds one) a Q8_0
/// matrix whose rows are widened to f32 as they are looked up (inference only).
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Weight,
}

impl Embedding {
    pub fn new(pb: &ParamBuilder, vocab: usize, dim: usize, std: f64) -> Result<Self> {
        let weight = match pb.quantized("weight", vocab, dim)? {
            Some(q) => Weight::Q8(q),
            None => {
                Weight::Dense(pb.param("weight", [vocab, dim], Init::Normal { mean: 0.0, std })?)
            }
        };
        Ok(Embedding { weight })
    }

    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    /// `ids` of any shape (u32 or i64) to `[..ids, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        match &self.weight {
            Weight::Dense(w) => w.embedding(ids),
            Weight::Q8(q) => {
                let flat: Vec<u32> = ids
                    .to_dtype(DType::I64)?
                    .to_vec::<i64>()?
                    .into_iter()
                    .map(|id| {
                        u32::try_from(id).map_err(|_| Error::IndexOutOfRange {
                            op: "embedding",
                            index: id,
                            size: q.rows(),
                        })
                    })
                    .collect::<Result<_>>()?;
                let mut dims = ids.dims().to_vec();
                dims.push(q.cols());
                let rows = q.gather_rows(&flat, &ids.device())?;
                Ok(Var::constant(rows.reshape(dims)?))
            }
        }
    }
}

impl Module for Embedding {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        if let Some(w) = self.weight.var() {
            visit("weight", w);
        }
    }
}
