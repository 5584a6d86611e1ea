//! Best-of-N throughput of the row-wise and elementwise kernels on f32 [4096, 768]
//! (GPT-2 small's activations for 4096 tokens), in GB/s of input read plus output
//! written: the figures PERF.md reports. Best-of because on a shared machine the
//! minimum is the least disturbed measurement.
//!
//! `RAYON_NUM_THREADS=1` measures one core; `RG_CPU_SIMD=base|avx2` caps the vector
//! level to show what runtime AVX-512 dispatch buys.
//!
//! `cargo run --release -p rg-cpu --example row_ops`

use std::time::Instant;

use rg_core::backend::{Backend, View};
use rg_core::{BinaryOp, DType, HostBuffer, Layout, ReduceOp, UnaryOp};
use rg_cpu::CpuBackend;

fn main() {
    let b = CpuBackend::new();
    let (rows, cols) = (4096usize, 768usize);
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = b.from_host(HostBuffer::F32(v)).unwrap();
    let (l, lc, rl) = (
        Layout::contiguous([rows, cols]),
        Layout::contiguous([cols]),
        Layout::contiguous([rows]),
    );
    let x_v = View::new(&*x, &l);
    let g = b.full(DType::F32, cols, 1.0).unwrap();
    let g_v = View::new(&*g, &lc);
    let ln = b.layer_norm(x_v, g_v, g_v, 1e-5).unwrap();
    let (mean, rstd) = (View::new(&*ln.mean, &rl), View::new(&*ln.rstd, &rl));
    // One tensor's worth of bytes: reads and writes are counted in multiples of it.
    let tensor = (rows * cols * 4) as f64;
    let time = |name: &str, tensors: f64, f: &dyn Fn()| {
        f();
        let mut best = f64::MAX;
        for _ in 0..60 {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:22} best {:7.3} ms {:7.2} GB/s",
            best * 1e3,
            tensors * tensor / best / 1e9
        );
    };
    time("add", 3.0, &|| {
        drop(b.binary(BinaryOp::Add, x_v, x_v).unwrap())
    });
    time("exp", 2.0, &|| drop(b.unary(UnaryOp::Exp, x_v).unwrap()));
    time("gelu", 2.0, &|| drop(b.unary(UnaryOp::Gelu, x_v).unwrap()));
    time("gelu_backward", 3.0, &|| {
        drop(b.gelu_backward(x_v, x_v).unwrap())
    });
    time("softmax", 2.0, &|| {
        drop(b.softmax_last(x_v, false).unwrap())
    });
    time("softmax_backward", 3.0, &|| {
        drop(b.softmax_last_backward(x_v, x_v, false).unwrap())
    });
    time("layer_norm", 2.0, &|| {
        drop(b.layer_norm(x_v, g_v, g_v, 1e-5).unwrap())
    });
    time("layer_norm_backward", 3.0, &|| {
        drop(b.layer_norm_backward(x_v, x_v, g_v, mean, rstd).unwrap())
    });
    time("sum_last_axis", 1.0, &|| {
        drop(b.reduce(ReduceOp::Sum, x_v, 1).unwrap())
    });
    time("sum_first_axis", 1.0, &|| {
        drop(b.reduce(ReduceOp::Sum, x_v, 0).unwrap())
    });
}
