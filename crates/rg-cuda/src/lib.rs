//! `rg-cuda`: the CUDA backend of RustyGradients.
//!
//! Linking this crate registers [`CudaBackend`] for `Device::Cuda(n)`. It builds with
//! no CUDA installed: cudarc loads the driver at run time, cuBLAS is found by our own
//! search (CUDA 12 or 13, see [`libs`]), and the kernels ship as PTX compiled ahead of
//! time from `kernels/*.cu` into `kernels/ptx/` (`cargo xtask kernels`, NVRTC). Without
//! a driver or GPU, `Device::cuda(0)` returns an error saying what is missing.
//!
//! Design:
//! - `gpu`: one opened device: primary context, **one non-blocking stream** that all
//!   work is queued on in order (so ops need no events between them), the loaded PTX
//!   modules (sm_90 PTX on Hopper and newer, sm_80 otherwise), kernel launches;
//! - `alloc`: the **caching allocator**: size-bucketed free lists per device, buffers
//!   returned on drop and reused at once (safe because of the single stream), cache
//!   released and retried when the driver runs out; `RG_CUDA_POISON=1` fills every
//!   buffer handed out with 0xFF (NaN) so unwritten outputs show in tests;
//! - `storage`: [`CudaStorage`], a typed device buffer (f32, f64, bf16, f16, u32, i64);
//! - `layout`: strided views as kernels see them (up to 6 axes after merging), so
//!   broadcast and transposed inputs need no copies, and launch arithmetic;
//! - `blas`: cuBLAS (`cublasGemmStridedBatchedEx`; f32, bf16 with f32 accumulation, f64;
//!   TF32 only when asked for with [`CudaBackend::set_tf32`] or `RG_CUDA_TF32=1`);
//! - `ops/`: one file per op family, the same dtype rules and errors as rg-cpu, with
//!   bf16 added to every compute op (f32 accumulation in the kernels), the fused
//!   classifier, fused AdamW, and fused causal attention (tiled forward/backward, split-K
//!   decode).
//!
//! Multi-GPU: each ordinal is its own backend (context, stream, pool). Data-parallel
//! training over NCCL would open one backend per GPU, wrap
//! [`CudaBackend::stream_handle`] and [`CudaStorage::device_ptr`] for `ncclAllReduce`
//! of the gradients on that stream (so the all-reduce is ordered after the backward
//! kernels and before AdamW without host synchronisation), and keep everything else
//! as it is: nothing here assumes a single device.

mod alloc;
mod backend;
mod blas;
mod gpu;
mod kernels;
mod layout;
pub mod libs;
mod ops;
mod storage;

pub use alloc::PoolStats;
pub use backend::CudaBackend;
pub use ops::attention::MAX_HEAD_DIM;
pub use storage::CudaStorage;

const REGISTRATION: rg_core::backend::BackendRegistration = rg_core::backend::BackendRegistration {
    kind: "cuda",
    open: |ordinal| {
        let backend: std::sync::Arc<dyn rg_core::backend::Backend> = CudaBackend::shared(ordinal)?;
        Ok(backend)
    },
};

/// Makes `Device::Cuda(n)` available (the facade's `register_backends` calls it with the
/// `cuda` feature); calling it again does nothing.
pub fn register() {
    rg_core::backend::register(REGISTRATION);
}

inventory::submit! { REGISTRATION }
