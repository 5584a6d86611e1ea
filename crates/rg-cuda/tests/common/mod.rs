#![allow(dead_code)]
//! Helpers of the CUDA tests: the device (or a skip), random inputs, comparisons.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_core::{DType, Device, Tensor};
use rg_cpu as _;

/// GPU 0 with poisoned allocations, or `None` after printing `skipped: no CUDA device`.
/// With `RG_REQUIRE_CUDA=1` a missing device fails the test instead.
pub fn cuda_or_skip() -> Option<Device> {
    match rg_cuda::CudaBackend::shared(0) {
        Ok(backend) => {
            // Every buffer starts as NaN: an element a kernel does not write shows.
            backend.set_poison(true);
            Some(Device::Cuda(0))
        }
        Err(e) => {
            if std::env::var("RG_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("RG_REQUIRE_CUDA=1 but CUDA is unavailable: {e}");
            }
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform in [-scale, scale], never exactly zero.
pub fn values(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = rng.random_range(-scale..scale);
            if v == 0.0 {
                scale * 0.5
            } else {
                v
            }
        })
        .collect()
}

/// A random f32 CPU tensor.
pub fn randn(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(rng, n, scale), dims.to_vec(), &Device::Cpu).unwrap()
}

/// Positive values in [lo, hi].
pub fn positive(rng: &mut ChaCha8Rng, dims: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, dims.to_vec(), &Device::Cpu).unwrap()
}

pub fn ids(rng: &mut ChaCha8Rng, n: usize, below: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..below)).collect()
}

/// The dtypes every compute op is checked in, with their tolerances on
/// `||out - ref|| / ||ref||`.
pub const FLOATS: [(DType, f64); 2] = [(DType::F32, 1e-5), (DType::BF16, 1e-2)];

/// The CPU input as the GPU sees it: rounded to `dtype` and back to f32 (the CPU
/// reference computes in f32 on the same values), and the GPU tensor in `dtype`.
pub fn pair(cpu: &Tensor, dtype: DType, gpu: Device) -> (Tensor, Tensor) {
    let rounded = cpu.to_dtype(dtype).unwrap();
    let reference = rounded.to_dtype(DType::F32).unwrap();
    (reference, rounded.to_device(&gpu).unwrap())
}

/// `||a - b|| / ||b||` over f64 copies (a from the GPU in any dtype).
pub fn rel_err(gpu: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(gpu.dims(), reference.dims(), "shapes differ");
    let a = gpu.to_f64_vec().unwrap();
    let b = reference.to_f64_vec().unwrap();
    assert!(
        a.iter().all(|v| v.is_finite()),
        "GPU output has non-finite values (unwritten, poisoned elements?)"
    );
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    assert!(
        den > 0.0,
        "reference is all zeros: the test input is too weak"
    );
    (num / den).sqrt()
}

#[track_caller]
pub fn assert_close(what: &str, gpu: &Tensor, reference: &Tensor, tol: f64) {
    let e = rel_err(gpu, reference);
    assert!(
        e <= tol,
        "{what}: relative error {e:.3e} > {tol:.0e} ({} on {})",
        gpu.dtype(),
        gpu.device()
    );
}
