//! Half-precision weights (bf16 or f16) with f32 compute, for inference.
//!
//! Only the matrices that matmuls read (`wte`, and every `Linear` weight) stay in half
//! precision: they are nearly all of the bytes, and decoding is bound by reading them.
//! Everything small (layer-norm parameters, biases, `wpe`) is widened to f32 when the
//! model is built, so layer norm, softmax, GELU, residual adds and the KV cache run in
//! f32. A matmul with a half weight rounds its f32 activations to the weight's dtype
//! (operands of one matmul share a dtype), accumulates in f32, rounds the product to
//! the weight's dtype once, and widens it back to f32 before the bias.

use rg_autograd::{is_grad_enabled, Var};
use rg_core::{DType, Error, Result, Tensor};
use rg_nn::Linear;

/// The dtype activations are computed in.
pub const COMPUTE: DType = DType::F32;

/// Whether the tensor named `name` (our names, without `transformer.`) stays in its
/// half dtype; every other half tensor is widened to f32 at load.
pub fn keeps_half(name: &str) -> bool {
    name == "wte.weight"
        || [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// `t` widened to f32 when it is half precision and not a matmul weight.
pub fn for_compute(name: &str, t: Tensor) -> Result<Tensor> {
    let half = matches!(t.dtype(), DType::BF16 | DType::F16);
    if half && !keeps_half(name) {
        t.to_dtype(COMPUTE)
    } else {
        Ok(t)
    }
}

/// `x @ w` for activations `x` (`[rows, in]`) and a weight `w` (`[in, out]`, possibly
/// a transposed view) of any float dtype; the result is in `x`'s dtype.
pub fn matmul(op: &'static str, x: &Var, w: &Var) -> Result<Var> {
    if x.dtype() == w.dtype() {
        return x.matmul(w);
    }
    if is_grad_enabled() && (x.requires_grad() || w.requires_grad()) {
        return Err(Error::invalid(
            op,
            format!(
                "{} weights are for inference only (wrap the call in no_grad); train in {}",
                w.dtype(),
                x.dtype()
            ),
        ));
    }
    let y = x.tensor().to_dtype(w.dtype())?.matmul(w.tensor())?;
    let x_dtype = x.dtype();
    Ok(Var::constant(y.to_dtype(x_dtype)?))
}

/// `lin` applied to `x` (`[..., in]`) whatever the weight's dtype.
pub fn linear(lin: &Linear, x: &Var) -> Result<Var> {
    let w = lin.weight();
    if w.dtype() == x.dtype() {
        return lin.forward(x);
    }
    let dims = x.dims().to_vec();
    let (d_in, d_out) = (w.dims()[0], w.dims()[1]);
    let rows = x.elem_count() / d_in.max(1);
    let mut y = matmul("linear", &x.reshape([rows, d_in])?, w)?;
    if let Some(b) = lin.bias() {
        y = y.add(b)?;
    }
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = d_out;
    }
    y.reshape(out_dims)
}

/// Rows of the embedding table `table` for `ids`, widened to f32 when the table is half
/// precision.
pub fn embed(table: &rg_nn::Embedding, ids: &Tensor) -> Result<Var> {
    let w = table.weight();
    if !matches!(w.dtype(), DType::BF16 | DType::F16) {
        return table.forward(ids);
    }
    if is_grad_enabled() && w.requires_grad() {
        return Err(Error::invalid(
            "embedding",
            format!(
                "{} weights are for inference only (wrap the call in no_grad)",
                w.dtype()
            ),
        ));
    }
    Ok(Var::constant(w.tensor().embedding(ids)?.to_dtype(COMPUTE)?))
}
