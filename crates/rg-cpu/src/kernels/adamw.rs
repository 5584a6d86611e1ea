//! One fused AdamW step, in place over contiguous `param`, `m` and `v`, with
//! decoupled weight decay:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p)` where `m_hat = m / (1 - b1^t)`
//! and `v_hat = v / (1 - b2^t)`; `g` is the gradient times `grad_scale` (clipping).

use rayon::prelude::*;
use rg_core::backend::{AdamWParams, BackendStorage, View};
use rg_core::{DType, Device, Error, Result};

use crate::math::Real;
use crate::parallel::chunk_len;
use crate::simd::multiversion;
use crate::view::{cpu_storage_mut, typed, unsupported};

const OP: &str = "adamw_step";

pub fn adamw_step(
    param: &mut dyn BackendStorage,
    grad: View<'_>,
    m: &mut dyn BackendStorage,
    v: &mut dyn BackendStorage,
    params: &AdamWParams,
) -> Result<()> {
    if params.step == 0 {
        return Err(Error::backend(Device::Cpu, OP, "step is 1-based; got 0"));
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
                Device::Cpu,
                OP,
                format!("{what} has {n} elements, param has {len}"),
            ));
        }
    }
    match dtype {
        DType::F32 => run::<f32>(param, grad, m, v, params),
        DType::F64 => run::<f64>(param, grad, m, v, params),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

fn run<T: Real>(
    param: &mut dyn BackendStorage,
    grad: View<'_>,
    m: &mut dyn BackendStorage,
    v: &mut dyn BackendStorage,
    hp: &AdamWParams,
) -> Result<()> {
    let grad = typed::<T>(grad, OP)?.contiguous();
    // `as_mut_slice` copies zero-copy (memory-mapped) data before it is written.
    let dtype_error = || Error::backend(Device::Cpu, OP, "storage dtype changed");
    let p = cpu_storage_mut(param, OP)?
        .as_mut_slice::<T>()
        .ok_or_else(dtype_error)?;
    let m = cpu_storage_mut(m, OP)?
        .as_mut_slice::<T>()
        .ok_or_else(dtype_error)?;
    let v = cpu_storage_mut(v, OP)?
        .as_mut_slice::<T>()
        .ok_or_else(dtype_error)?;
    let k = Coefficients::new(hp);
    let chunk = chunk_len(p.len());
    if chunk >= p.len() {
        update(p, m, v, &grad, k);
    } else {
        p.par_chunks_mut(chunk)
            .zip(m.par_chunks_mut(chunk))
            .zip(v.par_chunks_mut(chunk))
            .zip(grad.par_chunks(chunk))
            .for_each(|(((p, m), v), g)| update(p, m, v, g, k));
    }
    Ok(())
}

/// The step's scalars in the compute type, bias corrections folded into two
/// multipliers computed once in f64.
#[derive(Clone, Copy)]
struct Coefficients<T> {
    b1: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    inv_bc1: T,
    inv_bc2: T,
    lr: T,
    eps: T,
    wd: T,
    grad_scale: T,
}

impl<T: Real> Coefficients<T> {
    fn new(hp: &AdamWParams) -> Self {
        let t = i32::try_from(hp.step).unwrap_or(i32::MAX);
        let c = |x: f64| T::from_f64(x);
        Coefficients {
            b1: c(hp.beta1),
            b2: c(hp.beta2),
            one_b1: c(1.0 - hp.beta1),
            one_b2: c(1.0 - hp.beta2),
            inv_bc1: c(1.0 / (1.0 - hp.beta1.powi(t))),
            inv_bc2: c(1.0 / (1.0 - hp.beta2.powi(t))),
            lr: c(hp.lr),
            eps: c(hp.eps),
            wd: c(hp.weight_decay),
            grad_scale: c(hp.grad_scale),
        }
    }
}

multiversion! {
    fn update<T>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], k: Coefficients<T>) where [T: Real] {
        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
            let g = g * k.grad_scale;
            *m = k.b1 * *m + k.one_b1 * g;
            *v = k.b2 * *v + k.one_b2 * g * g;
            let step = (*m * k.inv_bc1) / ((*v * k.inv_bc2).sqrt() + k.eps);
            *p = *p - k.lr * (step + k.wd * *p);
        }
    }
}
