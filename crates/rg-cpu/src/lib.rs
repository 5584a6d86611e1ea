//! `rg-cpu`: the CPU backend of RustyGradients.
//!
//! It holds [`CpuBackend`], the implementation of [`rg_core::backend::Backend`] for
//! `Device::Cpu`, and [`CpuStorage`], its memory: typed buffers of f32, f64, bf16, f16,
//! u32 or i64, owned or borrowed zero-copy from memory-mapped bytes (copied on first
//! write). [`register`] makes `Device::Cpu` available.
//!
//! Layout of the crate:
//! - `storage`: [`CpuStorage`] and its typed buffers;
//! - `backend`: the trait implementation, dispatching to the kernels;
//! - `kernels/`: one file per op family (elementwise, reductions, matmul, fused softmax,
//!   layer norm, GELU, cross-entropy, indexing, masking, copies, casts, AdamW);
//! - `strided`, `view`, `parallel`: walking strided views, checking views, and deciding
//!   when to use the thread pool;
//! - `simd`, `math`: hot loops compiled for AVX-512/AVX2/baseline and picked at run
//!   time, and a vectorisable f32 `exp`.
//!
//! Compute ops support f32 and f64; bf16 and f16 are storage types here (memory ops and
//! casts), except that matmul also takes bf16 (f32 accumulation, bf16 result); u32 and
//! i64 serve as indices, comparison results and `argmax` output.
//!
//! Threads: kernels use rayon's global pool (`RAYON_NUM_THREADS` sizes it) and stay
//! single-threaded below about 32K elements. Matrix products of f32 and bf16 use the
//! crate's packed GEMM (`kernels::gemm`: AVX-512, AVX2+FMA, NEON or SIMD128 micro-
//! kernels, AMX or AVX512_BF16 for bf16 where they win, a parallel product cut into
//! serial sub-products on the rayon pool); f64, and f32 on x86 without AVX2+FMA, use
//! `matrixmultiply` (or OpenBLAS with the `blas` feature), whose own threads only run
//! while the rayon pool is idle; see `kernels::matmul`. `RG_CPU_SIMD=base|avx2|avx512`
//! caps the vector level.

pub mod aligned;
mod backend;
mod kernels;
mod math;
mod parallel;
pub mod pool;
mod simd;
mod storage;
mod strided;
mod view;

pub use backend::CpuBackend;
pub use kernels::matmul::engine_name as matmul_engine;
pub use parallel::init_thread_pool;

/// The Q8_0 decode kernels, public so tests and benchmarks can compare them.
pub mod q8 {
    pub use crate::kernels::gemv_q8::{kernel, product_with as decode_with, Kernel};
}
pub use storage::{CpuBuffer, CpuElement, CpuStorage};

/// What [`register`] hands to `rg-core`.
const REGISTRATION: rg_core::backend::BackendRegistration = rg_core::backend::BackendRegistration {
    kind: "cpu",
    open: |_| Ok(CpuBackend::shared()),
};

/// Makes `Device::Cpu` available. Call it once before the first tensor op (the facade's
/// `register_backends` and `rgrad` do); calling it again does nothing.
pub fn register() {
    rg_core::backend::register(REGISTRATION);
}

// Native convenience for code that only links this crate (tests, benches); the
// explicit `register()` above is what every entry point uses.
#[cfg(not(target_arch = "wasm32"))]
inventory::submit! { REGISTRATION }
