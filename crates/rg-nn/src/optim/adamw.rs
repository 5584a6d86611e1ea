use rg_autograd::{no_grad, Gradients};
use rg_core::backend::AdamWParams;
use rg_core::{Error, Result, Tensor};

use super::{Optimizer, ParamGroup};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// AdamW with decoupled weight decay (Loshchilov & Hutter), one fused kernel per
/// parameter and step.
pub struct AdamW {
    groups: Vec<ParamGroup>,
    config: AdamWConfig,
    /// First and second moments, one pair per parameter, created on first use.
    moments: Vec<Vec<Option<(Tensor, Tensor)>>>,
    step: u64,
}

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let valid = config.lr >= 0.0
            && (0.0..1.0).contains(&config.beta1)
            && (0.0..1.0).contains(&config.beta2)
            && config.eps > 0.0;
        if !valid {
            return Err(Error::invalid(
                "adamw",
                format!("invalid settings {config:?}"),
            ));
        }
        let moments = groups.iter().map(|g| vec![None; g.params.len()]).collect();
        Ok(AdamW {
            groups,
            config,
            moments,
            step: 0,
        })
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// `(name, first moment, second moment)` of every parameter updated so far.
    pub fn moments(&self) -> Vec<(String, Tensor, Tensor)> {
        let mut out = Vec::new();
        for (group, moments) in self.groups.iter().zip(&self.moments) {
            for ((name, _), m) in group.params.iter().zip(moments) {
                if let Some((m, v)) = m {
                    out.push((name.clone(), m.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// Restores moments by parameter name and the step count (resuming a run).
    pub fn load_moments(
        &mut self,
        step: u64,
        mut lookup: impl FnMut(&str) -> Option<(Tensor, Tensor)>,
    ) -> Result<()> {
        for (group, moments) in self.groups.iter().zip(self.moments.iter_mut()) {
            for ((name, p), slot) in group.params.iter().zip(moments.iter_mut()) {
                if let Some((m, v)) = lookup(name) {
                    for t in [&m, &v] {
                        if t.shape() != p.shape() {
                            return Err(Error::invalid(
                                "adamw load",
                                format!(
                                    "moment for {name:?} has shape {}, parameter {}",
                                    t.shape(),
                                    p.shape()
                                ),
                            ));
                        }
                    }
                    *slot = Some((m.contiguous()?.copy()?, v.contiguous()?.copy()?));
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

impl Optimizer for AdamW {
    fn step_with_grad_scale(&mut self, grads: &Gradients, scale: f64) -> Result<()> {
        self.step += 1;
        no_grad(|| {
            for (group, moments) in self.groups.iter().zip(self.moments.iter_mut()) {
                let params = AdamWParams {
                    lr: self.config.lr,
                    beta1: self.config.beta1,
                    beta2: self.config.beta2,
                    eps: self.config.eps,
                    weight_decay: group.weight_decay,
                    step: self.step,
                    grad_scale: scale,
                };
                for ((_, p), slot) in group.params.iter().zip(moments.iter_mut()) {
                    let Some(g) = grads.get(p) else { continue };
                    if slot.is_none() {
                        *slot = Some((p.tensor().zeros_like()?, p.tensor().zeros_like()?));
                    }
                    let (m, v) = slot.as_ref().expect("moments were just created");
                    p.tensor().adamw_step_(g, m, v, &params)?;
                }
            }
            Ok(())
        })
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}
