use rg_autograd::Var;
use rg_core::Result;

use crate::{Init, Module, ParamBuilder};

/// `y = x W + b` with `W` stored `[in, out]`, the layout of GPT-2's Conv1D, so
/// Hugging Face GPT-2 weights load without a transpose.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
}

impl Linear {
    /// Weights drawn from N(0, `std`), bias zeros.
    pub fn new(pb: &ParamBuilder, d_in: usize, d_out: usize, bias: bool, std: f64) -> Result<Self> {
        let weight = pb.param("weight", [d_in, d_out], Init::Normal { mean: 0.0, std })?;
        let bias = if bias {
            Some(pb.param("bias", [d_out], Init::Zeros)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// `x` is `[..., in]`; leading axes are folded into one 2-D matmul.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        let dims = x.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        let x2 = if dims.len() == 2 {
            x.clone()
        } else {
            x.reshape([rows, d_in])?
        };
        let mut y = crate::autocast::matmul(&x2, &self.weight)?;
        if let Some(b) = &self.bias {
            y = y.add(b)?;
        }
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dims()[1];
        }
        if out_dims.len() == 2 {
            Ok(y)
        } else {
            y.reshape(out_dims)
        }
    }
}

impl Module for Linear {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit("weight", &self.weight);
        if let Some(b) = &self.bias {
            visit("bias", b);
        }
    }
}
