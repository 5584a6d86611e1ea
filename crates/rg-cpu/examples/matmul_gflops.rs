//! Best-of-N f32 square matmul throughput through the backend trait, in GFLOP/s: the
//! figure PERF.md compares with OpenBLAS. Best-of (not mean) because on a shared
//! machine the minimum is the least disturbed measurement.
//!
//! `cargo run --release -p rg-cpu --example matmul_gflops [--features blas]`

use std::time::Instant;

use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{HostBuffer, Layout};
use rg_cpu::CpuBackend;

fn main() {
    let b = CpuBackend::new();
    // The default build runs the crate's packed GEMM on AVX-512 CPUs, matrixmultiply
    // on others.
    let gemm = if cfg!(feature = "blas") {
        "openblas"
    } else {
        "default"
    };
    for n in [256usize, 1024, 2048] {
        let v: Vec<f32> = (0..n * n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x = b.from_host(HostBuffer::F32(v)).unwrap();
        let l = Layout::contiguous([1, n, n]);
        let dims = MatmulDims {
            batch: 1,
            m: n,
            n,
            k: n,
        };
        let reps = match n {
            2048 => 8,
            1024 => 20,
            _ => 100,
        };
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            b.matmul(View::new(&*x, &l), View::new(&*x, &l), dims)
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (n as f64).powi(3) / best / 1e9;
        println!(
            "{gemm} n={n:5} best {:8.3} ms {gflops:6.1} GFLOP/s",
            best * 1e3
        );
    }
}
