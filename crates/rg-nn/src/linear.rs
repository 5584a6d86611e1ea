use rg_autograd::Var;
use rg_core::Result;

use crate::{Init, Module, ParamBuilder, Weight};

/// `y = x W + b` with `W` stored `[in, out]`, the layout of GPT-2's Conv1D, so
/// Hugging Face GPT-2 weights load without a transpose; or, when the source holds a
/// Q8_0 matrix for the weight, `W` quantized and stored `[out, in]` (inference only).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Weight,
    bias: Option<Var>,
}

impl Linear {
    /// Weights drawn from N(0, `std`) (or the source's), bias zeros.
    pub fn new(pb: &ParamBuilder, d_in: usize, d_out: usize, bias: bool, std: f64) -> Result<Self> {
        let weight = match pb.quantized("weight", d_out, d_in)? {
            Some(q) => Weight::Q8(q),
            None => {
                Weight::Dense(pb.param("weight", [d_in, d_out], Init::Normal { mean: 0.0, std })?)
            }
        };
        let bias = if bias {
            Some(pb.param("bias", [d_out], Init::Zeros)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn weight(&self) -> &Weight {
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
        let y = crate::autocast::linear(&x2, &self.weight, self.bias.as_ref())?;
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.out_features();
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
        if let Some(w) = self.weight.var() {
            visit("weight", w);
        }
        if let Some(b) = &self.bias {
            visit("bias", b);
        }
    }
}
