use rg_autograd::{Gradients, Var};
use rg_core::Result;

/// Global L2 norm of the gradients of `params` (missing gradients count as zero).
pub fn grad_norm(grads: &Gradients, params: &[Var]) -> Result<f64> {
    let mut total = 0.0;
    for p in params {
        if let Some(g) = grads.get(p) {
            total += g.sum_squares()?;
        }
    }
    Ok(total.sqrt())
}

/// Scales all gradients so that their global norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Gradients, params: &[Var], max_norm: f64) -> Result<f64> {
    let norm = grad_norm(grads, params)?;
    let coeff = clip_coefficient(norm, max_norm);
    if coeff < 1.0 {
        for p in params {
            if let Some(g) = grads.get(p) {
                let scaled = g.scale(coeff)?;
                grads.insert(p, scaled);
            }
        }
    }
    Ok(norm)
}

/// The factor `clip_grad_norm` scales gradients by: `max_norm / (norm + 1e-6)` when that
/// is below 1, else 1 (PyTorch's rule). Pass it to
/// [`Optimizer::step_with_grad_scale`](crate::Optimizer::step_with_grad_scale) to clip
/// inside the update.
pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}
