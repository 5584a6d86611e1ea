//! Kernel throughput: f32 matmul (square 256/1024/2048; the GEMM is the crate's packed
//! GEMM on AVX-512 CPUs, else matrixmultiply, or OpenBLAS with `--features blas`),
//! layer norm and softmax over [4096, 768] rows,
//! GELU and an elementwise add.
//!
//! Matmul reports elements as FLOPs (2·n³ per product), so criterion's "elem/s" reads
//! as FLOP/s. Row-wise ops report bytes moved (input read + output written).
//!
//! Run: `cargo bench -p rg-cpu --bench kernels [--features blas]`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rg_core::backend::{Backend, BoxStorage, MatmulDims, View};
use rg_core::{BinaryOp, HostBuffer, Layout, UnaryOp};
use rg_cpu::CpuBackend;

const GEMM: &str = if cfg!(feature = "blas") {
    "openblas"
} else {
    "default"
};

fn data(n: usize, seed: u32) -> BoxStorage {
    // Cheap deterministic values in [-1, 1).
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect();
    CpuBackend::new().from_host(HostBuffer::F32(v)).unwrap()
}

fn matmul(c: &mut Criterion) {
    let b = CpuBackend::new();
    let mut g = c.benchmark_group(format!("matmul_f32_{GEMM}"));
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    for n in [256usize, 1024, 2048] {
        let (x, y) = (data(n * n, 1), data(n * n, 2));
        let l = Layout::contiguous([1, n, n]);
        let dims = MatmulDims {
            batch: 1,
            m: n,
            n,
            k: n,
        };
        g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        g.measurement_time(Duration::from_secs(if n >= 2048 { 8 } else { 3 }));
        g.bench_with_input(BenchmarkId::new("square", n), &n, |bench, _| {
            bench.iter(|| {
                b.matmul(View::new(&*x, &l), View::new(&*y, &l), dims)
                    .unwrap()
            })
        });
        // The rhs read transposed through its strides (as `x @ w.T` does).
        let lt = Layout::contiguous([1, n, n]).transpose(1, 2);
        g.bench_with_input(
            BenchmarkId::new("square_rhs_transposed", n),
            &n,
            |bench, _| {
                bench.iter(|| {
                    b.matmul(View::new(&*x, &l), View::new(&*y, &lt), dims)
                        .unwrap()
                })
            },
        );
    }
    // Attention-shaped batches: many small products (spread over the rayon pool) and
    // fewer mid-sized ones (each threaded by the GEMM).
    for (batch, m, k, n) in [(48usize, 64usize, 64usize, 64usize), (12, 256, 64, 256)] {
        let (x, y) = (data(batch * m * k, 7), data(batch * k * n, 8));
        let (lx, ly) = (
            Layout::contiguous([batch, m, k]),
            Layout::contiguous([batch, k, n]),
        );
        let dims = MatmulDims { batch, m, n, k };
        g.throughput(Throughput::Elements((2 * batch * m * n * k) as u64));
        g.measurement_time(Duration::from_secs(2));
        let id = format!("{batch}x{m}x{k}x{n}");
        g.bench_function(BenchmarkId::new("batched", id), |bench| {
            bench.iter(|| {
                b.matmul(View::new(&*x, &lx), View::new(&*y, &ly), dims)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn row_ops(c: &mut Criterion) {
    let b = CpuBackend::new();
    let (rows, cols) = (4096usize, 768usize);
    let x = data(rows * cols, 3);
    let dy = data(rows * cols, 4);
    let (gamma, beta) = (data(cols, 5), data(cols, 6));
    let l = Layout::contiguous([rows, cols]);
    let lc = Layout::contiguous([cols]);
    let rl = Layout::contiguous([rows]);
    let mut g = c.benchmark_group("rows_f32_4096x768");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // Input read once and output written once.
    g.throughput(Throughput::Bytes((2 * rows * cols * 4) as u64));
    g.bench_function("layer_norm", |bench| {
        bench.iter(|| {
            b.layer_norm(
                View::new(&*x, &l),
                View::new(&*gamma, &lc),
                View::new(&*beta, &lc),
                1e-5,
            )
            .unwrap()
        })
    });
    g.bench_function("softmax", |bench| {
        bench.iter(|| b.softmax_last(View::new(&*x, &l), false).unwrap())
    });
    g.bench_function("gelu", |bench| {
        bench.iter(|| b.unary(UnaryOp::Gelu, View::new(&*x, &l)).unwrap())
    });
    // Two inputs read, one output written.
    g.throughput(Throughput::Bytes((3 * rows * cols * 4) as u64));
    g.bench_function("add", |bench| {
        bench.iter(|| {
            b.binary(BinaryOp::Add, View::new(&*x, &l), View::new(&*dy, &l))
                .unwrap()
        })
    });
    g.bench_function("softmax_backward", |bench| {
        bench.iter(|| {
            b.softmax_last_backward(View::new(&*x, &l), View::new(&*dy, &l), false)
                .unwrap()
        })
    });
    let ln = b
        .layer_norm(
            View::new(&*x, &l),
            View::new(&*gamma, &lc),
            View::new(&*beta, &lc),
            1e-5,
        )
        .unwrap();
    g.bench_function("layer_norm_backward", |bench| {
        bench.iter(|| {
            b.layer_norm_backward(
                View::new(&*dy, &l),
                View::new(&*x, &l),
                View::new(&*gamma, &lc),
                View::new(&*ln.mean, &rl),
                View::new(&*ln.rstd, &rl),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, matmul, row_ops);
criterion_main!(benches);
