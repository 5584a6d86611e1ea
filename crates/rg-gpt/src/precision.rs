//! Half-precision weights (bf16 or f16) with f32 compute, for inference.
//!
//! Only the matrices that matmuls read (`wte`, and every `Linear` weight) stay in half
//! precision: they are nearly all of the bytes, and decoding is bound by reading them.
//! Everything small (layer-norm parameters, biases, `wpe`) is widened to f32 when the
//! model is built, so layer norm, softmax, GELU, residual adds and the KV cache run in
//! f32. Products with a half weight go through `rg_nn::autocast::matmul`, which rounds
//! the f32 activations to the weight's dtype, accumulates in f32, and widens the
//! product back to f32 before the bias.

use rg_autograd::{is_grad_enabled, Var};
use rg_core::{DType, Error, Result, Tensor};

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

/// Rows of the embedding table `table` for `ids`, widened to f32 when the table is half
/// precision.
pub fn embed(table: &rg_nn::Embedding, ids: &Tensor) -> Result<Var> {
    let w = match table.weight() {
        rg_nn::Weight::Dense(w) if matches!(w.dtype(), DType::BF16 | DType::F16) => w,
        _ => return table.forward(ids),
    };
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
