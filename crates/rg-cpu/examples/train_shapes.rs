//! The matrix products of one GPT-2 124M training step (B4xT64: 256 rows), each in
//! the layouts the step gives it, in f32 and bf16: best-of-N milliseconds and GFLOP/s.
//!
//!     cargo run --release -p rg-cpu --example train_shapes [ROWS WIDTH VOCAB]
//!
//! Defaults: 256 768 50257 (GPT-2); nanoGPT's char step is `768 128 65`.
//!
//! `x @ w` (forward), `g @ wᵀ` (input gradient: a transposed weight) and `xᵀ @ g`
//! (weight gradient: a transposed activation, depth 256), for the attention, MLP and
//! tied LM head weights (`wte` `[50257, 768]` enters transposed).

use std::time::Instant;

use half::bf16;
use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{HostBuffer, Layout, Shape};
use rg_cpu::CpuBackend;

/// A `[rows, cols]` operand, row-major or (`transposed`) read through a column-major view.
struct Operand {
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl Operand {
    fn layout(&self) -> Layout {
        if self.transposed {
            Layout::new(Shape::new([self.rows, self.cols]), vec![1, self.rows], 0)
        } else {
            Layout::contiguous([self.rows, self.cols])
        }
    }
}

fn op(rows: usize, cols: usize, transposed: bool) -> Operand {
    Operand {
        rows,
        cols,
        transposed,
    }
}

fn main() {
    let b = CpuBackend::new();
    rg_cpu::init_thread_pool().unwrap();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS WIDTH VOCAB are integers"))
        .collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (t, c, v) = (arg(0, 256), arg(1, 768), arg(2, 50257));
    let mut cases = Vec::new();
    for (k, n, name) in [
        (c, 3 * c, "qkv"),
        (c, c, "attn proj"),
        (c, 4 * c, "fc"),
        (4 * c, c, "mlp proj"),
    ] {
        cases.push((format!("{name} fwd"), op(t, k, false), op(k, n, false)));
        cases.push((format!("{name} dX"), op(t, n, false), op(n, k, true)));
        cases.push((format!("{name} dW"), op(k, t, true), op(t, n, false)));
    }
    cases.push(("lm head fwd".into(), op(t, c, false), op(c, v, true)));
    cases.push(("lm head dX".into(), op(t, v, false), op(v, c, false)));
    cases.push(("lm head dW".into(), op(v, t, true), op(t, c, false)));
    println!(
        "{:<16} {:>22} {:>22} {:>7}",
        "product", "f32", "bf16", "bf16/f32"
    );
    for (name, a, w) in cases {
        let dims = MatmulDims {
            batch: 1,
            m: a.rows,
            n: w.cols,
            k: a.cols,
        };
        let flops = 2.0 * (dims.m * dims.n * dims.k) as f64;
        let mut best = [f64::MAX; 2];
        for (slot, half) in [false, true].into_iter().enumerate() {
            let make = |len: usize| {
                let v: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let host = if half {
                    HostBuffer::BF16(v.into_iter().map(bf16::from_f32).collect())
                } else {
                    HostBuffer::F32(v)
                };
                b.from_host(host).unwrap()
            };
            let (sa, sw) = (make(a.rows * a.cols), make(w.rows * w.cols));
            let reps = (2e10 / flops).clamp(3.0, 30.0) as usize;
            for _ in 0..reps {
                let start = Instant::now();
                b.matmul(
                    View::new(&*sa, &a.layout()),
                    View::new(&*sw, &w.layout()),
                    dims,
                )
                .unwrap();
                best[slot] = best[slot].min(start.elapsed().as_secs_f64());
            }
        }
        let show = |s: f64| format!("{:8.2} ms {:7.1} GF/s", s * 1e3, flops / s / 1e9);
        println!(
            "{name:<16} {} {} {:6.2}x",
            show(best[0]),
            show(best[1]),
            best[0] / best[1]
        );
    }
}
