//! Throughput of the fused causal attention kernel, forward and backward separately,
//! on the shapes the models run (best of many runs: on a shared machine the least
//! disturbed run is the honest figure):
//!
//!     cargo run --release -p rg-cpu --example attention_gflops [BxTxSxHxD ...]
//!
//! Besides the best wall time it prints GFLOP per CPU-second (the CPU time of all the
//! process's threads, from `/proc/self/task/*/schedstat`): with `RAYON_NUM_THREADS=1`
//! that is the kernel's speed on one core, which time slices lost to other processes
//! do not distort.
//!
//! Inputs are `[b, t, h, d]` and `[b, s, h, d]` slices of one fused `[b, s, 3hd]`
//! projection, as GPT-2 passes them. FLOPs count the visible (causal) pairs only:
//! `4 d` per pair forward (two products), `8 d` backward (four, the recomputed scores
//! not counted).

use std::time::Instant;

use rg_core::backend::{Backend, View};
use rg_core::{HostBuffer, Layout, Shape};
use rg_cpu::CpuBackend;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<[usize; 5]> = if args.is_empty() {
        vec![
            [1, 512, 512, 12, 64],
            [4, 64, 64, 12, 64],
            [12, 64, 64, 4, 32],
            [1, 1, 96, 12, 64],
            [1, 1, 1024, 12, 64],
        ]
    } else {
        args.iter()
            .map(|a| {
                let v: Vec<usize> = a.split('x').map(|x| x.parse().unwrap()).collect();
                v.try_into().expect("BxTxSxHxD")
            })
            .collect()
    };
    let be = CpuBackend::new();
    for [b, t, s, h, d] in shapes {
        let row = 3 * h * d;
        let data: Vec<f32> = (0..b * s * row)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let qkv = be.from_host(HostBuffer::F32(data)).unwrap();
        let view = |n: usize, part: usize| {
            let strides = vec![s * row, row, d, 1];
            // Queries are the last `t` positions, as in decoding after `s - t`.
            let offset = (s - n) * row + part * h * d;
            Layout::new(Shape::new([b, n, h, d]), strides, offset)
        };
        let (ql, kl, vl) = (view(t, 0), view(s, 1), view(s, 2));
        let (q, k, v) = (
            View::new(&*qkv, &ql),
            View::new(&*qkv, &kl),
            View::new(&*qkv, &vl),
        );
        let scale = 1.0 / (d as f64).sqrt();
        let pairs = (b * h * t * (2 * s - t + 1) / 2) as f64;
        let reps = (2e9 / (pairs * d as f64 * 12.0)).clamp(3.0, 2000.0) as usize;
        let mut best = [f64::INFINITY; 2];
        let mut cpu = [0.0; 2];
        let fwd = be.attention(q, k, v, scale).unwrap();
        let (ol, ll) = (
            Layout::contiguous([b, t, h, d]),
            Layout::contiguous([b, h, t]),
        );
        let (o, l) = (View::new(&*fwd.out, &ol), View::new(&*fwd.lse, &ll));
        for _ in 0..reps {
            let (start, c) = (Instant::now(), cpu_s());
            let f = be.attention(q, k, v, scale).unwrap();
            best[0] = best[0].min(start.elapsed().as_secs_f64());
            cpu[0] += cpu_s() - c;
            drop(f);
            let (start, c) = (Instant::now(), cpu_s());
            let g = be.attention_backward(q, k, v, o, l, o, scale).unwrap();
            best[1] = best[1].min(start.elapsed().as_secs_f64());
            cpu[1] += cpu_s() - c;
            drop(g);
        }
        let cpu = cpu.map(|c| c / reps as f64);
        let flops = [4.0, 8.0].map(|f| f * d as f64 * pairs);
        println!(
            "b{b} t{t} s{s} h{h} d{d}: forward {:8.3} ms {:6.1} GFLOP/s ({:6.1} per CPU-s)   \
             backward {:8.3} ms {:6.1} GFLOP/s ({:6.1} per CPU-s)",
            best[0] * 1e3,
            flops[0] / best[0] / 1e9,
            flops[0] / cpu[0] / 1e9,
            best[1] * 1e3,
            flops[1] / best[1] / 1e9,
            flops[1] / cpu[1] / 1e9,
        );
    }
}

/// CPU seconds run so far by all of this process's threads.
fn cpu_s() -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}
