use rg_autograd::Var;
use rg_core::{Result, Tensor};

use crate::{Init, Module, ParamBuilder};

/// A `[vocab, dim]` lookup table.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Var,
}

impl Embedding {
    pub fn new(pb: &ParamBuilder, vocab: usize, dim: usize, std: f64) -> Result<Self> {
        let weight = pb.param("weight", [vocab, dim], Init::Normal { mean: 0.0, std })?;
        Ok(Embedding { weight })
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// `ids` of any shape (u32 or i64) to `[..ids, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        self.weight.embedding(ids)
    }
}

impl Module for Embedding {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit("weight", &self.weight);
    }
}
