use rg_autograd::{no_grad, Gradients};
use rg_core::{Error, Result, Tensor};

use super::{Optimizer, ParamGroup};

/// Stochastic gradient descent with optional momentum (PyTorch's formulation:
/// `v = momentum * v + g`, `p -= lr * v`) and L2 weight decay added to the gradient.
pub struct Sgd {
    groups: Vec<ParamGroup>,
    lr: f64,
    momentum: f64,
    velocity: Vec<Vec<Option<Tensor>>>,
}

impl Sgd {
    pub fn new(groups: Vec<ParamGroup>, lr: f64, momentum: f64) -> Result<Self> {
        if lr < 0.0 || !(0.0..1.0).contains(&momentum) {
            return Err(Error::invalid(
                "sgd",
                format!("invalid lr {lr} or momentum {momentum}"),
            ));
        }
        let velocity = groups.iter().map(|g| vec![None; g.params.len()]).collect();
        Ok(Sgd {
            groups,
            lr,
            momentum,
            velocity,
        })
    }
}

impl Optimizer for Sgd {
    fn step_with_grad_scale(&mut self, grads: &Gradients, scale: f64) -> Result<()> {
        no_grad(|| {
            for (group, velocity) in self.groups.iter().zip(self.velocity.iter_mut()) {
                for ((_, p), slot) in group.params.iter().zip(velocity.iter_mut()) {
                    let Some(g) = grads.get(p) else { continue };
                    let p = p.tensor();
                    let mut d = if scale == 1.0 {
                        g.clone()
                    } else {
                        g.scale(scale)?
                    };
                    if group.weight_decay != 0.0 {
                        d = d.add(&p.scale(group.weight_decay)?)?;
                    }
                    if self.momentum > 0.0 {
                        d = match slot.take() {
                            Some(v) => v.scale(self.momentum)?.add(&d)?,
                            None => d.copy()?,
                        };
                        *slot = Some(d.clone());
                    }
                    p.copy_from(&p.sub(&d.scale(self.lr)?)?)?;
                }
            }
            Ok(())
        })
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
