use rg_autograd::Var;
use rg_core::Result;
use rg_nn::{visit_child, Dropout, DropoutRng, LayerNorm, Linear, Module, ParamBuilder};

use crate::attention::CausalSelfAttention;
use crate::kv_cache::KvCache;
use crate::GptConfig;

/// GPT-2's feed-forward: `c_fc` to 4x width, GELU (tanh), `c_proj` back.
#[derive(Clone, Debug)]
pub struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
    dropout: Dropout,
}

impl Mlp {
    pub fn new(pb: &ParamBuilder, cfg: &GptConfig, proj_std: f64) -> Result<Self> {
        let c = cfg.n_embd;
        Ok(Mlp {
            c_fc: Linear::new(&pb.push("c_fc"), c, 4 * c, true, 0.02)?,
            c_proj: Linear::new(&pb.push("c_proj"), 4 * c, c, true, proj_std)?,
            dropout: Dropout::new(cfg.dropout)?,
        })
    }

    pub fn forward(&self, x: &Var, rng: Option<&mut DropoutRng>) -> Result<Var> {
        let h = self.c_fc.forward(x)?.gelu()?;
        self.dropout.forward(&self.c_proj.forward(&h)?, rng)
    }
}

impl Module for Mlp {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_child("c_fc", &self.c_fc, visit);
        visit_child("c_proj", &self.c_proj, visit);
    }
}

/// A pre-LayerNorm transformer block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Clone, Debug)]
pub struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    pub fn new(pb: &ParamBuilder, cfg: &GptConfig) -> Result<Self> {
        // GPT-2 scales the init of residual projections by 1/sqrt(2 * n_layer).
        let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
        Ok(Block {
            ln_1: LayerNorm::new(&pb.push("ln_1"), cfg.n_embd, cfg.layer_norm_eps)?,
            attn: CausalSelfAttention::new(&pb.push("attn"), cfg, proj_std)?,
            ln_2: LayerNorm::new(&pb.push("ln_2"), cfg.n_embd, cfg.layer_norm_eps)?,
            mlp: Mlp::new(&pb.push("mlp"), cfg, proj_std)?,
        })
    }

    pub fn forward(&self, x: &Var, mut rng: Option<&mut DropoutRng>) -> Result<Var> {
        let x = x.add(
            &self
                .attn
                .forward(&self.ln_1.forward(x)?, rng.as_deref_mut())?,
        )?;
        x.add(&self.mlp.forward(&self.ln_2.forward(&x)?, rng)?)
    }
}

impl Block {
    pub fn forward_cached(&self, x: &Var, cache: &mut KvCache, layer: usize) -> Result<Var> {
        let x = x.add(
            &self
                .attn
                .forward_cached(&self.ln_1.forward(x)?, cache, layer)?,
        )?;
        x.add(&self.mlp.forward(&self.ln_2.forward(&x)?, None)?)
    }
}

impl Module for Block {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_child("ln_1", &self.ln_1, visit);
        visit_child("attn", &self.attn, visit);
        visit_child("ln_2", &self.ln_2, visit);
        visit_child("mlp", &self.mlp, visit);
    }
}
