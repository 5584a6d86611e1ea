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
    /// Parameters this optimizer leaves alone (ZeRO: another rank owns their state).
    skipped: Vec<Vec<bool>>,
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
        let skipped = groups.iter().map(|g| vec![false; g.params.len()]).collect();
        Ok(AdamW {
            groups,
            config,
            moments,
            skipped,
            step: 0,
        })
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Keeps moments for, and updates, only the parameters whose names `owns` accepts
    /// (ZeRO stage 1: each rank holds the optimizer state of its share and sends the
    /// updated parameters to the others). Drops the moments of the others.
    pub fn own_only(&mut self, owns: impl Fn(&str) -> bool) {
        for ((group, moments), skipped) in self
            .groups
            .iter()
            .zip(self.moments.iter_mut())
            .zip(self.skipped.iter_mut())
        {
            for (((name, _), slot), skip) in group.params.iter().zip(moments).zip(skipped) {
                *skip = !owns(name);
                if *skip {
                    *slot = None;
                }
            }
        }
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
    /// Parameters left to another rank ([`AdamW::own_only`]) are not looked up, so a
    /// sharded run keeps only its share of a full checkpoint.
    pub fn load_moments(
        &mut self,
        step: u64,
        mut lookup: impl FnMut(&str) -> Option<(Tensor, Tensor)>,
    ) -> Result<()> {
        for ((group, moments), skipped) in self
            .groups
            .iter()
            .zip(self.moments.iter_mut())
            .zip(&self.skipped)
        {
            for (((name, p), slot), &skip) in
                group.params.iter().zip(moments.iter_mut()).zip(skipped)
            {
                if skip {
                    continue;
                }
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
            for ((group, moments), skipped) in self
                .groups
                .iter()
                .zip(self.moments.iter_mut())
                .zip(&self.skipped)
            {
                let params = AdamWParams {
                    lr: self.config.lr,
                    beta1: self.config.beta1,
                    beta2: self.config.beta2,
                    eps: self.config.eps,
                    weight_decay: group.weight_decay,
                    step: self.step,
                    grad_scale: scale,
                };
                for (((_, p), slot), &skip) in
                    group.params.iter().zip(moments.iter_mut()).zip(skipped)
                {
                    let Some(g) = grads.get(p).filter(|_| !skip) else {
                        continue;
                    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use rg_autograd::Var;
    use rg_core::Device;
    use rg_cpu as _;

    #[test]
    fn own_only_updates_and_keeps_state_for_owned_parameters() {
        let param =
            |v: f32| Var::parameter(Tensor::from_vec(vec![v; 3], [3], &Device::Cpu).unwrap());
        let (a, b) = (param(1.0), param(2.0));
        let group = ParamGroup {
            params: vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            weight_decay: 0.0,
        };
        let config = AdamWConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        };
        let mut opt = AdamW::new(vec![group], config).unwrap();
        opt.own_only(|name| name == "a");
        let mut grads = Gradients::default();
        for p in [&a, &b] {
            grads.insert(
                p,
                Tensor::from_vec(vec![0.5f32; 3], [3], &Device::Cpu).unwrap(),
            );
        }
        opt.step_with_grad_scale(&grads, 1.0).unwrap();
        // First AdamW step moves by lr * sign(g) (bias-corrected m / sqrt(v) = 1).
        for x in a.tensor().to_vec::<f32>().unwrap() {
            assert!((x - 0.9).abs() < 1e-6, "{x}");
        }
        assert_eq!(b.tensor().to_vec::<f32>().unwrap(), vec![2.0; 3]);
        let names: Vec<String> = opt.moments().into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(names, vec!["a".to_string()]);

        // Loading a full checkpoint keeps only the owned share: `b` is not looked up.
        let mut looked_up = Vec::new();
        opt.load_moments(7, |name| {
            looked_up.push(name.to_string());
            let t = Tensor::from_vec(vec![0.25f32; 3], [3], &Device::Cpu).unwrap();
            Some((t.clone(), t))
        })
        .unwrap();
        assert_eq!(looked_up, vec!["a".to_string()]);
        assert_eq!(opt.step_count(), 7);
        let loaded = opt.moments();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1.to_vec::<f32>().unwrap(), vec![0.25; 3]);
    }
}
