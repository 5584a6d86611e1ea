//! Bandwidth of the skinny matmul against a plain read of the same bytes, run back to
//! back (on a shared machine only figures of the same minute compare):
//!
//!     cargo run --release -p rg-cpu --example gemv_bw [bf16] [lm-head]
//!
//! Forty 768x3072 weights (377 MB in f32, beyond any cache) times one activation row;
//! with `lm-head`, two GPT-2 LM heads instead (`wte` `[50257, 768]` read through its
//! transposed view, 309 MB in f32).

use rayon::prelude::*;
use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{HostBuffer, Layout, Shape};
use rg_cpu::CpuBackend;
use std::time::Instant;

fn main() {
    // As `rgrad` runs (see `init_thread_pool`); `RG_OUTSIDE_POOL=1` issues the products
    // from a thread outside the pool instead, for comparison.
    if std::env::var_os("RG_OUTSIDE_POOL").is_none() {
        rg_cpu::init_thread_pool().unwrap();
    }
    let b = CpuBackend::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bf = args.iter().any(|a| a == "bf16");
    let lm_head = args.iter().any(|a| a == "lm-head");
    let (k, n, count) = if lm_head {
        (768usize, 50257usize, 2)
    } else {
        (768, 3072, 40) // 40 * 9.4 MB = 377 MB f32
    };
    let ws: Vec<_> = (0..count)
        .map(|i| {
            let v: Vec<f32> = (0..k * n)
                .map(|j| ((j * 7 + i) % 13) as f32 * 0.01)
                .collect();
            if bf {
                b.from_host(HostBuffer::BF16(
                    v.iter().map(|&x| half::bf16::from_f32(x)).collect(),
                ))
                .unwrap()
            } else {
                b.from_host(HostBuffer::F32(v)).unwrap()
            }
        })
        .collect();
    let x = if bf {
        b.from_host(HostBuffer::BF16(vec![half::bf16::from_f32(0.5); k]))
            .unwrap()
    } else {
        b.from_host(HostBuffer::F32(vec![0.5; k])).unwrap()
    };
    let lx = Layout::contiguous([1, k]);
    let lw = if lm_head {
        Layout::new(Shape::new([k, n]), vec![1, k], 0)
    } else {
        Layout::contiguous([k, n])
    };
    let dims = MatmulDims {
        batch: 1,
        m: 1,
        n,
        k,
    };
    let bytes = (k * n * if bf { 2 } else { 4 } * count) as f64;
    for _ in 0..5 {
        let t = Instant::now();
        for w in &ws {
            b.matmul(View::new(&*x, &lx), View::new(&**w, &lw), dims)
                .unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "gemv {}: {:.1} GB/s ({:.2} ms per pass)",
            if bf { "bf16" } else { "f32" },
            bytes / s / 1e9,
            s * 1e3
        );
    }
    // Raw read ceiling: sum all weights with the pool.
    let raw: Vec<Vec<f32>> = (0..count).map(|i| vec![i as f32; k * n]).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let s: f32 = raw
            .iter()
            .map(|v| {
                v.par_chunks(64 * 1024)
                    .map(|c| {
                        let mut a = [0f32; 16];
                        for ch in c.chunks_exact(16) {
                            for l in 0..16 {
                                a[l] += ch[l];
                            }
                        }
                        a.iter().sum::<f32>()
                    })
                    .sum::<f32>()
            })
            .sum();
        let e = t.elapsed().as_secs_f64();
        println!(
            "raw read: {:.1} GB/s ({s})",
            (count * k * n * 4) as f64 / e / 1e9
        );
    }
}
