//! Matmul (square f32), layer norm and softmax through the public `Tensor` API.
//! `cargo bench -p rg-benches` measures the default (matrixmultiply) path;
//! `cargo bench -p rg-benches --features blas` the system OpenBLAS path.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rusty_gradients::{DType, Device, Tensor};

fn random(dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    // A cheap deterministic pattern: values matter little for timing, NaNs would.
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(data, dims.to_vec(), &Device::Cpu).unwrap()
}

fn path_name() -> &'static str {
    if cfg!(feature = "blas") {
        "openblas"
    } else {
        "matrixmultiply"
    }
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("matmul_f32/{}", path_name()));
    for n in [256usize, 1024, 2048] {
        let (a, b) = (random(&[n, n]), random(&[n, n]));
        group.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs
        group.sample_size(if n >= 2048 { 10 } else { 20 });
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b).unwrap());
        });
    }
    group.finish();
}

fn row_ops(c: &mut Criterion) {
    let (rows, cols) = (4096usize, 768usize);
    let x = random(&[rows, cols]);
    let gamma = Tensor::ones([cols], DType::F32, &Device::Cpu).unwrap();
    let beta = Tensor::zeros([cols], DType::F32, &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("row_ops_f32_4096x768");
    // Bytes read and written once each.
    group.throughput(Throughput::Bytes((2 * rows * cols * 4) as u64));
    group.bench_function("layer_norm", |bench| {
        bench.iter(|| x.layer_norm(&gamma, &beta, 1e-5).unwrap())
    });
    group.bench_function("softmax", |bench| bench.iter(|| x.softmax_last().unwrap()));
    group.finish();
}

criterion_group!(benches, matmul, row_ops);
criterion_main!(benches);
