//! `rg-wasm`: RustyGradients for JavaScript (wasm-bindgen), the browser's top layer as
//! `rg-cli` is the terminal's.
//!
//! - [`WasmModel`]: a GPT model and tokenizer loaded from file contents (a GPT-2 hub
//!   directory or one of our checkpoints; f32, f16 or bf16 weights, computed in f32 or
//!   bf16);
//! - [`GenerationSession`]: streaming generation, one token per `next_token()` call,
//!   with `rgrad generate`'s sampling options ([`GenerateSettings`]) and its generator;
//! - [`AdditionTrainer`]: the built-in addition task trained step by step with the
//!   settings `rgrad train` uses, so the same seed gives the same losses.
//!
//! Everything runs on the calling thread (rayon falls back to one thread on wasm32);
//! the demo page calls it from a Web Worker so the page stays responsive.

mod model;
mod session;
mod settings;
mod trainer;

pub use model::WasmModel;
pub use session::GenerationSession;
pub use settings::GenerateSettings;
pub use trainer::AdditionTrainer;

use wasm_bindgen::prelude::*;

/// Registers the CPU backend; every constructor calls it (it is idempotent), because
/// on wasm32 nothing registers at link time.
fn ensure_backend() {
    rg_cpu::register();
}

/// An error for JavaScript: the message of any error of ours.
fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The crate's version, so the page can show what it runs.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Which matrix-product engine the CPU backend uses here (e.g. the SIMD128 kernels).
#[wasm_bindgen(js_name = matmulEngine)]
pub fn matmul_engine() -> String {
    rg_cpu::matmul_engine(rg_core::DType::F32).to_string()
}
