//! Optimizers. Updates run outside the graph and write parameters in place, so the
//! vars a model holds stay the same objects across steps.

mod adamw;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use sgd::Sgd;

use rg_autograd::{Gradients, Var};
use rg_core::Result;

pub trait Optimizer {
    /// Applies one update from `grads`; parameters without a gradient are left alone.
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        self.step_with_grad_scale(grads, 1.0)
    }
    /// One update from `grads` multiplied by `scale` (see [`crate::clip_coefficient`]):
    /// clipping applied inside the update, without rewriting every gradient first.
    fn step_with_grad_scale(&mut self, grads: &Gradients, scale: f64) -> Result<()>;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// Parameters that share settings; `weight_decay` overrides the optimizer's.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub params: Vec<(String, Var)>,
    pub weight_decay: f64,
}

impl ParamGroup {
    /// The usual GPT split: decay on parameters of two or more dimensions (matrices,
    /// embeddings), none on biases and norm parameters.
    pub fn decay_matrices_only(named: Vec<(String, Var)>, weight_decay: f64) -> Vec<ParamGroup> {
        let (decay, no_decay): (Vec<_>, Vec<_>) =
            named.into_iter().partition(|(_, v)| v.rank() >= 2);
        vec![
            ParamGroup {
                params: decay,
                weight_decay,
            },
            ParamGroup {
                params: no_decay,
                weight_decay: 0.0,
            },
        ]
    }
}
