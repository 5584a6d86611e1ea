//! Bytes per second of the Q8_0 decode product against a plain read of the same int8
//! bytes, one after the other (on a shared machine only figures of the same minute
//! compare):
//!
//!     RAYON_NUM_THREADS=1 cargo run --release -p rg-cpu --example gemv_q8_bw [widen] [down]
//!
//! Forty GPT-2 MLP weights as Q8_0 (`[3072, 768]`, or `[768, 3072]` with `down`),
//! 100 MB of int8 values, times one activation row.

use rayon::prelude::*;
use rg_core::Q8Matrix;
use rg_cpu::q8::{decode_with, kernel, Kernel};
use std::time::Instant;

fn main() {
    rg_cpu::init_thread_pool().unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen = if args.iter().any(|a| a == "widen") {
        Kernel::Widen
    } else {
        kernel()
    };
    let (n, k) = if args.iter().any(|a| a == "down") {
        (768usize, 3072usize)
    } else {
        (3072, 768)
    };
    let count = 40;
    let ws: Vec<Q8Matrix> = (0..count)
        .map(|i| {
            let v: Vec<f32> = (0..n * k)
                .map(|j| ((j * 7 + i) % 13) as f32 * 0.01 - 0.06)
                .collect();
            Q8Matrix::quantize(&v, n, k).unwrap()
        })
        .collect();
    let x: Vec<f32> = (0..k).map(|j| (j % 5) as f32 * 0.1 - 0.2).collect();
    let bytes: usize = ws.iter().map(Q8Matrix::byte_len).sum();
    println!(
        "{} threads, kernel {}, [{n}, {k}] x {count} = {:.1} MB",
        rayon::current_num_threads(),
        chosen.name(),
        bytes as f64 / 1e6
    );
    for _ in 0..5 {
        let t = Instant::now();
        let mut check = 0f32;
        for w in &ws {
            check += decode_with(chosen, &x, 1, w)[0];
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "q8 product: {:.1} GB/s ({:.2} ms per pass, {check})",
            bytes as f64 / s / 1e9,
            s * 1e3
        );
    }
    for _ in 0..3 {
        let t = Instant::now();
        let s: i64 = ws
            .iter()
            .map(|w| {
                w.values()
                    .par_chunks(64 * 1024)
                    .map(|c| {
                        let mut a = [0i32; 64];
                        for ch in c.chunks_exact(64) {
                            for l in 0..64 {
                                a[l] += ch[l] as i32;
                            }
                        }
                        a.iter().map(|&v| v as i64).sum::<i64>()
                    })
                    .sum::<i64>()
            })
            .sum();
        let e = t.elapsed().as_secs_f64();
        println!("raw int8 read: {:.1} GB/s ({s})", bytes as f64 / e / 1e9);
    }
}
