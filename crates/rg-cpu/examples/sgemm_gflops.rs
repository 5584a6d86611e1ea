//! GFLOP/s of the CPU backend's f32 matmul (and of `matrixmultiply` called directly)
//! on square products, plus the attention-shaped batches of GPT training.
//!
//! Run: `cargo run --release -p rg-cpu --example sgemm_gflops [-- SIZES...]`
//! (`RAYON_NUM_THREADS=1` for single-thread figures).

use std::time::Instant;

use rg_core::backend::{Backend, BoxStorage, MatmulDims, View};
use rg_core::{HostBuffer, Layout};
use rg_cpu::CpuBackend;

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Nanoseconds all threads of this process have spent on a CPU (Linux), so figures
/// can discount the time other processes took on a busy machine.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Median seconds of `f` over enough runs to fill about a second (at least 3). With
/// `RG_BENCH_CPU_TIME=1`: the process's CPU seconds divided by the pool's thread count,
/// i.e. the wall time the work would take with every thread on a core of its own
/// (threads spinning while they wait count as busy, so this errs on the slow side).
fn time(mut f: impl FnMut()) -> f64 {
    let cpu = std::env::var("RG_BENCH_CPU_TIME").is_ok_and(|v| v == "1");
    let threads = rayon::current_num_threads() as f64;
    let clock = || -> f64 {
        match process_cpu_ns() {
            Some(ns) if cpu => ns as f64 * 1e-9 / threads,
            _ => START.with(|s| s.elapsed().as_secs_f64()),
        }
    };
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-6);
    let runs = ((1.0 / once) as usize).clamp(3, 2000);
    if cpu {
        // Threads' CPU clocks only advance at scheduler ticks: time the runs together
        // rather than one by one.
        let t = clock();
        (0..runs).for_each(|_| f());
        return (clock() - t) / runs as f64;
    }
    let mut ts: Vec<f64> = (0..runs)
        .map(|_| {
            let t = clock();
            f();
            clock() - t
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[runs / 2]
}

thread_local! {
    static START: Instant = Instant::now();
}

fn store(b: &CpuBackend, v: Vec<f32>) -> BoxStorage {
    b.from_host(HostBuffer::F32(v)).unwrap()
}

fn main() {
    // As `rgrad` and the bench run (see `init_thread_pool`).
    rg_cpu::init_thread_pool().unwrap();
    let b = CpuBackend::new();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if args.is_empty() {
        vec![256, 1024, 2048, 4096]
    } else {
        args
    };
    println!("threads {}", rayon::current_num_threads());
    for &n in &sizes {
        let (x, y) = (data(n * n, 1), data(n * n, 2));
        let flops = 2.0 * (n as f64).powi(3);
        let (xs, ys) = (store(&b, x.clone()), store(&b, y.clone()));
        let l = Layout::contiguous([1, n, n]);
        let lt = Layout::contiguous([1, n, n]).transpose(1, 2);
        let dims = MatmulDims {
            batch: 1,
            m: n,
            n,
            k: n,
        };
        let ours = time(|| {
            b.matmul(View::new(&*xs, &l), View::new(&*ys, &l), dims)
                .unwrap();
        });
        let ours_t = time(|| {
            b.matmul(View::new(&*xs, &lt), View::new(&*ys, &lt), dims)
                .unwrap();
        });
        let mut c = vec![0.0f32; n * n];
        let mm = time(|| {
            let ni = n as isize;
            // SAFETY: three n x n row-major buffers.
            unsafe {
                matrixmultiply::sgemm(
                    n,
                    n,
                    n,
                    1.0,
                    x.as_ptr(),
                    ni,
                    1,
                    y.as_ptr(),
                    ni,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    ni,
                    1,
                )
            }
        });
        let to_bf16 =
            |v: &[f32]| HostBuffer::BF16(v.iter().map(|&x| half::bf16::from_f32(x)).collect());
        let (xh, yh) = (
            b.from_host(to_bf16(&x)).unwrap(),
            b.from_host(to_bf16(&y)).unwrap(),
        );
        let ours_bf16 = time(|| {
            b.matmul(View::new(&*xh, &l), View::new(&*yh, &l), dims)
                .unwrap();
        });
        let g = |t: f64| flops / t / 1e9;
        println!(
            "square {n}: rg-cpu {:.1} GFLOP/s, both operands transposed {:.1}, bf16 {:.1}, matrixmultiply {:.1}",
            g(ours),
            g(ours_t),
            g(ours_bf16),
            g(mm)
        );
    }
    for (batch, m, k, n, tl, tr) in [
        (48usize, 64usize, 64usize, 64usize, false, false),
        (48, 256, 64, 256, false, false),
        (48, 256, 256, 64, false, false),
        (48, 256, 64, 256, false, true),
        (48, 64, 256, 256, true, false),
    ] {
        let (xs, ys) = (
            store(&b, data(batch * m * k, 3)),
            store(&b, data(batch * k * n, 4)),
        );
        let lx = if tl {
            Layout::contiguous([batch, k, m]).transpose(1, 2)
        } else {
            Layout::contiguous([batch, m, k])
        };
        let ly = if tr {
            Layout::contiguous([batch, n, k]).transpose(1, 2)
        } else {
            Layout::contiguous([batch, k, n])
        };
        let dims = MatmulDims { batch, m, n, k };
        let t = time(|| {
            b.matmul(View::new(&*xs, &lx), View::new(&*ys, &ly), dims)
                .unwrap();
        });
        let flops = 2.0 * (batch * m * n * k) as f64;
        println!(
            "batch {batch} of {m}x{k} @ {k}x{n} (lhs^T {tl}, rhs^T {tr}): {:.1} GFLOP/s",
            flops / t / 1e9
        );
    }
}
