//! `rg-autograd`: reverse-mode automatic differentiation over `rg-core` tensors.
//!
//! A [`Var`] wraps a [`Tensor`]. Every op on vars computes its result with the tensor op
//! and, when gradients are enabled and an input requires them, records a node: the
//! inputs and one backward-rule struct (`rules/<op>.rs`). [`Var::backward`] walks the
//! recorded graph from a scalar in reverse topological order, calls each rule once,
//! and accumulates the gradients of vars used more than once. Leaves that require
//! gradients (parameters) get their gradient in the returned [`Gradients`].
//!
//! The crate is backend-agnostic: rules are written with tensor ops only, so they run
//! on whatever device the tensors live on.

mod grad_mode;
mod graph;
mod rules;
mod var;

pub use grad_mode::{is_grad_enabled, no_grad, NoGradGuard};
pub use graph::{BackwardRule, Gradients, InputGrad};
pub use rg_core::{Error, Result, Tensor};
pub use var::{Var, VarId};
