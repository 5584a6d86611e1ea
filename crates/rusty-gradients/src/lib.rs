//! RustyGradients: the facade crate. Re-exports every layer; features choose backends:
//! `cpu` (default), `blas` (CPU matmul through the system OpenBLAS), `cuda`, `hub`,
//! `mpi` and `nccl` (collectives for data-parallel training; `nccl` implies `cuda`).
//!
//! Call [`register_backends`] once before the first tensor op: it registers the enabled
//! backends, so `Device::Cpu` (and, with `cuda`, `Device::cuda(n)`) work. Registration
//! is an explicit call because a linker (wasm32, some static links) drops backends that
//! only register themselves at link time.

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

/// Registers every backend this build enables (`cpu`, `cuda`). Idempotent.
pub fn register_backends() {
    #[cfg(feature = "cpu")]
    rg_cpu::register();
    #[cfg(feature = "cuda")]
    rg_cuda::register();
}
