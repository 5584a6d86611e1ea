//! `rg-nn`: neural-network building blocks over `rg-autograd`.
//!
//! - [`Module`]: named parameters (`h.0.attn.c_attn.weight`, ...) that map one to one
//!   onto safetensors names.
//! - [`ParamBuilder`]: where layers get their weights — deterministic initialisation
//!   from a seed ([`InitSource`]) or existing tensors such as a loaded file
//!   ([`TensorMapSource`]).
//! - Layers: [`Linear`], [`Embedding`], [`LayerNorm`], [`Dropout`], [`Gelu`].
//! - Losses ([`loss`]), optimizers ([`Sgd`], [`AdamW`]), learning-rate schedules
//!   ([`LrSchedule`]) and global gradient-norm clipping ([`clip_grad_norm`]).

mod activation;
pub mod autocast;
mod clip;
mod dropout;
mod embedding;
mod layer_norm;
mod linear;
pub mod loss;
mod module;
pub mod optim;
mod params;
mod schedule;
mod weight;

pub use activation::Gelu;
pub use autocast::{autocast, autocast_dtype};
pub use clip::{clip_coefficient, clip_grad_norm, grad_norm};
pub use dropout::{Dropout, DropoutRng};
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use module::{visit_child, Module};
pub use optim::{AdamW, AdamWConfig, Optimizer, ParamGroup, Sgd};
pub use params::{Init, InitSource, ParamBuilder, ParamSource, TensorMapSource};
pub use rg_autograd::{Gradients, Var};
pub use rg_core::{DType, Device, Error, Result, Tensor};
pub use schedule::LrSchedule;
pub use weight::Weight;
