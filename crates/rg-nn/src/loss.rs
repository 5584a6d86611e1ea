//! Losses: scalar vars ready for `backward`.

use rg_autograd::Var;
use rg_core::{Result, Tensor};

/// Mean cross-entropy of logits `[..., classes]` against integer targets `[...]`;
/// targets equal to `ignore_index` are left out of the mean.
pub fn cross_entropy(logits: &Var, targets: &Tensor, ignore_index: Option<i64>) -> Result<Var> {
    let classes = *logits.dims().last().unwrap_or(&0);
    let rows = logits.elem_count() / classes.max(1);
    let logits = if logits.rank() == 2 {
        logits.clone()
    } else {
        logits.reshape([rows, classes])?
    };
    logits.cross_entropy(&targets.flatten_all()?, ignore_index)
}

/// Mean squared error.
pub fn mse(prediction: &Var, target: &Var) -> Result<Var> {
    prediction.sub(target)?.sqr()?.mean_all()
}
