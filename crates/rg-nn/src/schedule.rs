use rg_core::{Error, Result};

/// Learning rate as a function of the optimizer step (0-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    Constant {
        lr: f64,
    },
    /// Linear warmup to `max_lr` over `warmup` steps, then cosine decay to `min_lr` at
    /// `decay_steps`, and `min_lr` afterwards (nanoGPT's schedule).
    WarmupCosine {
        max_lr: f64,
        min_lr: f64,
        warmup: usize,
        decay_steps: usize,
    },
}

impl LrSchedule {
    pub fn warmup_cosine(
        max_lr: f64,
        min_lr: f64,
        warmup: usize,
        decay_steps: usize,
    ) -> Result<Self> {
        if min_lr > max_lr || max_lr <= 0.0 || min_lr < 0.0 {
            return Err(Error::invalid(
                "lr schedule",
                format!("need 0 <= min_lr ({min_lr}) <= max_lr ({max_lr}) and max_lr > 0"),
            ));
        }
        Ok(LrSchedule::WarmupCosine {
            max_lr,
            min_lr,
            warmup,
            decay_steps: decay_steps.max(warmup),
        })
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::WarmupCosine {
                max_lr,
                min_lr,
                warmup,
                decay_steps,
            } => {
                if step < warmup {
                    return max_lr * (step + 1) as f64 / (warmup + 1) as f64;
                }
                if step >= decay_steps {
                    return min_lr;
                }
                let ratio = (step - warmup) as f64 / (decay_steps - warmup).max(1) as f64;
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
                min_lr + coeff * (max_lr - min_lr)
            }
        }
    }
}
