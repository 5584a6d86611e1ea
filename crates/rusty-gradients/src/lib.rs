//! RustyGradients: the facade crate. Re-exports every layer; features choose backends:
//! `cpu` (default), `blas` (CPU matmul through the system OpenBLAS), `cuda`, `hub`.
//!
//! Linking this crate links the enabled backends, so `Device::Cpu` (and, with `cuda`,
//! `Device::cuda(n)`) work without further set-up.

pub use rg_autograd as autograd;
pub use rg_core as core;
#[cfg(feature = "cpu")]
pub use rg_cpu as cpu;
#[cfg(feature = "cuda")]
pub use rg_cuda as cuda;
pub use rg_dist as dist;
pub use rg_gpt as gpt;
pub use rg_hub as hub;
pub use rg_io as io;
pub use rg_nn as nn;
pub use rg_tokenize as tokenize;

pub use rg_core::{DType, Device, Error, Result, Shape, Tensor};
