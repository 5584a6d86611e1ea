use rg_autograd::Var;
use rg_core::Result;
use rg_nn::{visit_child, Dropout, DropoutRng, Linear, Module, ParamBuilder};

use crate::kv_cache::KvCache;
use crate::GptConfig;

/// Causal multi-head self-attention with a fused QKV projection (`c_attn`) and an
/// output projection (`c_proj`), as GPT-2.
#[derive(Clone, Debug)]
pub struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
    dropout: Dropout,
}

impl CausalSelfAttention {
    pub fn new(pb: &ParamBuilder, cfg: &GptConfig, proj_std: f64) -> Result<Self> {
        let c = cfg.n_embd;
        Ok(CausalSelfAttention {
            c_attn: Linear::new(&pb.push("c_attn"), c, 3 * c, true, 0.02)?,
            c_proj: Linear::new(&pb.push("c_proj"), c, c, true, proj_std)?,
            n_head: cfg.n_head,
            dropout: Dropout::new(cfg.dropout)?,
        })
    }

    /// `x` is `[b, t, c]`.
    pub fn forward(&self, x: &Var, mut rng: Option<&mut DropoutRng>) -> Result<Var> {
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let d = c / self.n_head;
        let [q, k, v] = self.qkv(x)?;
        let scale = 1.0 / (d as f64).sqrt();
        let y = if self.dropout.p() > 0.0 && rng.is_some() {
            // Dropout on the attention probabilities needs them materialised.
            let heads = |x: Var| x.permute(&[0, 2, 1, 3]);
            let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
            let scores = q.matmul(&k.t()?)?.scale(scale)?;
            let probs = scores.causal_fill(f64::NEG_INFINITY)?.softmax_last()?;
            let probs = self.dropout.forward(&probs, rng.as_deref_mut())?;
            probs.matmul(&v)?.permute(&[0, 2, 1, 3])?
        } else {
            let c = rg_nn::autocast::for_compute;
            rg_nn::autocast::to_f32(&c(&q)?.attention(&c(&k)?, &c(&v)?, scale)?)?
        };
        let y = self.c_proj.forward(&y.reshape([b, t, c])?)?;
        self.dropout.forward(&y, rng)
    }
}

impl CausalSelfAttention {
    /// Queries, keys and values of `x` (`[b, t, c]`) from the fused projection, each
    /// `[b, t, h, d]`: views of the projection's output, heads left interleaved.
    fn qkv(&self, x: &Var) -> Result<[Var; 3]> {
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let (h, d) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x)?;
        let head = |i: usize| qkv.narrow(2, i * c, c)?.reshape([b, t, h, d]);
        Ok([head(0)?, head(1)?, head(2)?])
    }

    /// Inference with a KV cache: `x` holds the new positions `[b, t, c]`; keys and
    /// values of earlier positions come from `cache`.
    pub fn forward_cached(&self, x: &Var, cache: &mut KvCache, layer: usize) -> Result<Var> {
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let d = c / self.n_head;
        let [q, k, v] = self.qkv(x)?;
        // The cache holds [b, h, s, d]; the fused op reads it back as [b, s, h, d] in
        // place. Query i of the new positions sees the cached keys and new keys up to
        // itself.
        let (k, v) = (k.permute(&[0, 2, 1, 3])?, v.permute(&[0, 2, 1, 3])?);
        let (k_all, v_all) = cache.append(layer, k.tensor(), v.tensor())?;
        let interleaved = |x: rg_core::Tensor| x.permute(&[0, 2, 1, 3]).map(Var::constant);
        let (k_all, v_all) = (interleaved(k_all)?, interleaved(v_all)?);
        let y = q
            .attention(&k_all, &v_all, 1.0 / (d as f64).sqrt())?
            .reshape([b, t, c])?;
        self.c_proj.forward(&y)
    }
}

impl Module for CausalSelfAttention {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_child("c_attn", &self.c_attn, visit);
        visit_child("c_proj", &self.c_proj, visit);
    }
}
