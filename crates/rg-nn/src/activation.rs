use rg_autograd::Var;
use rg_core::Result;

/// GELU with GPT-2's tanh approximation (fused forward and backward kernels).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gelu;

impl Gelu {
    pub fn forward(&self, x: &Var) -> Result<Var> {
        x.gelu()
    }
}
