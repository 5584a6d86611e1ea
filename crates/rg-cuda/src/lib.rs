//! `rg-cuda`: the CUDA backend of RustyGradients (cudarc with dynamic loading, cuBLAS,
//! kernels compiled ahead of time into `kernels/ptx/`).
//!
//! Not built yet: this crate is a placeholder in the layering until the CUDA issue
//! fills it. It registers no backend, so `Device::cuda(n)` reports that this build has
//! no CUDA backend.
