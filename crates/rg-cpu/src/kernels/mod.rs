//! CPU kernels, one file per op family. Each file's entry points take the trait's
//! `View`s, dispatch on dtype and return new storage (or write in place).

pub mod adamw;
pub mod attention;
pub mod binary;
pub mod cast;
pub mod cmp;
pub mod copy;
pub mod cross_entropy;
pub mod fill;
pub mod gelu;
pub mod gemm;
pub mod gemv;
#[cfg(target_arch = "x86_64")]
mod gemv_bf16;
#[cfg(target_arch = "aarch64")]
mod gemv_neon;
pub mod gemv_q8;
mod gemv_q8_avx2;
mod gemv_q8_vnni;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod gemv_simd128;
pub mod indexing;
pub mod lanes;
pub mod layer_norm;
pub mod map;
pub mod mask;
pub mod matmul;
#[cfg(feature = "blas")]
pub mod matmul_blas;
pub mod matmul_q8;
pub mod norm;
pub mod reduce;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod rows_simd128;
#[cfg(target_arch = "x86_64")]
pub(crate) mod rows_x86;
pub mod softmax;
pub mod unary;
pub mod where_cond;
