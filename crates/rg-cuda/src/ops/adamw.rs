//! One fused AdamW step in place (kernels/adamw.cu); same checks and coefficients as
//! rg-cpu, bias corrections folded into two multipliers computed once in f64.

use rg_core::backend::{AdamWParams, BackendStorage, View};
use rg_core::{Error, Result};

use super::{contiguous, float_sfx, launch_1d, storage_mut};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::check_count;

const OP: &str = "adamw_step";

pub fn adamw_step(
    gpu: &Gpu,
    param: &mut dyn BackendStorage,
    grad: View<'_>,
    m: &mut dyn BackendStorage,
    v: &mut dyn BackendStorage,
    hp: &AdamWParams,
) -> Result<()> {
    if hp.step == 0 {
        return Err(Error::backend(gpu.device, OP, "step is 1-based; got 0"));
    }
    let dtype = param.dtype();
    for other in [grad.dtype(), m.dtype(), v.dtype()] {
        if other != dtype {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: dtype,
                rhs: other,
            });
        }
    }
    let len = param.len();
    for (what, n) in [
        ("grad", grad.layout.elem_count()),
        ("m", m.len()),
        ("v", v.len()),
    ] {
        if n != len {
            return Err(Error::backend(
                gpu.device,
                OP,
                format!("{what} has {n} elements, param has {len}"),
            ));
        }
    }
    let t = float_sfx(OP, dtype)?;
    let g = contiguous(gpu, grad, OP)?;
    let p = storage_mut(gpu, param, OP)?.device_ptr();
    let mp = storage_mut(gpu, m, OP)?.device_ptr();
    let vp = storage_mut(gpu, v, OP)?.device_ptr();
    let steps = i32::try_from(hp.step).unwrap_or(i32::MAX);
    let mut args = Args::new();
    args.push(check_count(OP, len)?)
        .push(p)
        .push(g.ptr)
        .push(mp)
        .push(vp)
        .push(hp.beta1)
        .push(hp.beta2)
        .push(1.0 - hp.beta1)
        .push(1.0 - hp.beta2)
        .push(1.0 / (1.0 - hp.beta1.powi(steps)))
        .push(1.0 / (1.0 - hp.beta2.powi(steps)))
        .push(hp.lr)
        .push(hp.eps)
        .push(hp.weight_decay)
        .push(hp.grad_scale);
    launch_1d(gpu, OP, Module::AdamW, &format!("adamw_{t}"), len, &args)
}
