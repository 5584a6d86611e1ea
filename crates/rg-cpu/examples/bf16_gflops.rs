//! Best-of-N bf16 square matmul throughput through the backend trait, in GFLOP/s, on
//! the bf16 path this process selects: AMX, AVX512_BF16 or widening to f32, capped by
//! `RG_CPU_BF16=amx|avx512bf16|widen` (run once per value to compare them). Best-of
//! because on a shared machine the minimum is the least disturbed measurement.
//!
//! `cargo run --release -p rg-cpu --example bf16_gflops [-- 256 1024 2048 4096]`

use std::time::Instant;

use half::bf16;
use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{HostBuffer, Layout};
use rg_cpu::CpuBackend;

fn main() {
    let b = CpuBackend::new();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are integers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![256, 1024, 2048, 4096]
    } else {
        sizes
    };
    let path = std::env::var("RG_CPU_BF16").unwrap_or_else(|_| "best".into());
    for n in sizes {
        let v: Vec<bf16> = (0..n * n)
            .map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 / 500.0 - 1.0))
            .collect();
        let x = b.from_host(HostBuffer::BF16(v)).unwrap();
        let l = Layout::contiguous([1, n, n]);
        let dims = MatmulDims {
            batch: 1,
            m: n,
            n,
            k: n,
        };
        // About 0.5 s of work per size at 1 TFLOP/s.
        let reps = (5e11 / (2.0 * (n as f64).powi(3))).clamp(3.0, 200.0) as usize;
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            b.matmul(View::new(&*x, &l), View::new(&*x, &l), dims)
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (n as f64).powi(3) / best / 1e9;
        println!(
            "bf16 {path:>10} n={n:5} best {:8.3} ms {gflops:7.1} GFLOP/s",
            best * 1e3
        );
    }
}
