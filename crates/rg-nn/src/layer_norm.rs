use rg_autograd::Var;
use rg_core::Result;

use crate::{Init, Module, ParamBuilder};

/// Layer norm over the last axis with learned scale (`weight`) and shift (`bias`).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Var,
    bias: Var,
    eps: f64,
}

impl LayerNorm {
    pub fn new(pb: &ParamBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: pb.param("weight", [dim], Init::Ones)?,
            bias: pb.param("bias", [dim], Init::Zeros)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit("weight", &self.weight);
        visit("bias", &self.bias);
    }
}
