//! Q8_0 products against an f64 reference over the dequantized weight, on random
//! shapes with ragged edges (outputs not a multiple of any vector width or task size):
//! the decode kernels (int8 `vnni` and `avx2`, f32 `widen`), serial and parallel, and the
//! prefill path (more than 4 rows, bf16 GEMM). Each check bounds the error by what the
//! path rounds, computed from the operands.

mod common;

use common::*;
use rg_core::backend::{Backend, View};
use rg_core::{DType, Layout, Q8Matrix, Q8_BLOCK};
use rg_cpu::q8::{decode_with, Kernel};

struct Case {
    x: Vec<f32>,
    w: Q8Matrix,
    m: usize,
    n: usize,
    k: usize,
}

fn case(rng: &mut Lcg, m: usize, n: usize, k: usize) -> Case {
    let x: Vec<f32> = rng.vec(m * k, 2.0).iter().map(|&v| v as f32).collect();
    // Blocks of very different magnitudes, as in trained weights.
    let w: Vec<f32> = (0..n * k)
        .map(|i| rng.uniform() as f32 * (1 + (i / Q8_BLOCK) % 7) as f32 * 0.05)
        .collect();
    Case {
        x,
        w: Q8Matrix::quantize(&w, n, k).unwrap(),
        m,
        n,
        k,
    }
}

/// `x · Wᵀ` in f64 over the dequantized weight, and `Σ |x||w|` per output.
fn reference(c: &Case) -> (Vec<f64>, Vec<f64>) {
    let w = c.w.dequantize();
    let mut y = vec![0.0; c.m * c.n];
    let mut mag = vec![0.0; c.m * c.n];
    for i in 0..c.m {
        for j in 0..c.n {
            for p in 0..c.k {
                let (a, b) = (c.x[i * c.k + p] as f64, w[j * c.k + p] as f64);
                y[i * c.n + j] += a * b;
                mag[i * c.n + j] += (a * b).abs();
            }
        }
    }
    (y, mag)
}

/// Bound of the int8 kernel: each activation is off by at most half its block's step
/// (max |x| / 254), times the block's |w|.
fn activation_rounding_bound(c: &Case) -> Vec<f64> {
    let w = c.w.dequantize();
    let mut bound = vec![0.0; c.m * c.n];
    for i in 0..c.m {
        for j in 0..c.n {
            for b in 0..c.k / Q8_BLOCK {
                let span = i * c.k + b * Q8_BLOCK..i * c.k + (b + 1) * Q8_BLOCK;
                let amax = c.x[span].iter().fold(0f64, |a, &v| a.max(v.abs() as f64));
                let wsum: f64 = (0..Q8_BLOCK)
                    .map(|l| (w[j * c.k + b * Q8_BLOCK + l] as f64).abs())
                    .sum();
                bound[i * c.n + j] += amax / 254.0 * wsum;
            }
        }
    }
    bound
}

fn check(got: &[f32], want: &[f64], bound: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= b + 1e-4,
            "{what}: element {i}: got {g}, want {w}, error {err} above bound {b}"
        );
    }
}

#[test]
fn decode_kernels_match_the_reference_on_ragged_shapes() {
    let mut rng = Lcg::new(17);
    for &(n, k) in &[
        (1, 32),
        (3, 64),
        (67, 96),
        (130, 32 * 13),
        (1000, 256),
        (2051, 768),
    ] {
        for m in 1..=4 {
            let c = case(&mut rng, m, n, k);
            let (want, mag) = reference(&c);
            // Widening is exact in the activations: f32 rounding of the sums only.
            let widen_bound: Vec<f64> = mag.iter().map(|s| s * 1e-5).collect();
            let got = decode_with(Kernel::Widen, &c.x, m, &c.w);
            check(
                &got,
                &want,
                &widen_bound,
                &format!("widen m={m} n={n} k={k}"),
            );
            let act_bound = activation_rounding_bound(&c);
            let int8_bound: Vec<f64> = act_bound
                .iter()
                .zip(&mag)
                .map(|(a, s)| a + s * 1e-5)
                .collect();
            for kernel in [Kernel::Vnni, Kernel::Avx2] {
                let what = format!("{} m={m} n={n} k={k}", kernel.name());
                let got = decode_with(kernel, &c.x, m, &c.w);
                check(&got, &want, &int8_bound, &what);
                // The int8 kernels do round: their error is not zero on random data.
                if m * n * k > 10_000 {
                    let diff: f64 = got
                        .iter()
                        .zip(&want)
                        .map(|(&g, &w)| (g as f64 - w).abs())
                        .sum();
                    assert!(diff > 0.0, "{what}: suspiciously exact");
                }
            }
        }
    }
}

#[test]
fn backend_op_decodes_and_prefills() {
    let b = backend();
    let mut rng = Lcg::new(5);
    for &(m, n, k) in &[(1, 300, 128), (4, 129, 64), (5, 200, 96), (37, 1100, 256)] {
        let c = case(&mut rng, m, n, k);
        let (want, mag) = reference(&c);
        let xs: Vec<f64> = c.x.iter().map(|&v| v as f64).collect();
        let x = store(&xs, DType::F32);
        let layout = Layout::contiguous([m, k]);
        let out = b.matmul_q8(View::new(&*x, &layout), &c.w).unwrap();
        let got: Vec<f32> = read(&*out).iter().map(|&v| v as f32).collect();
        let bound: Vec<f64> = if m <= 4 {
            let act = activation_rounding_bound(&c);
            act.iter()
                .zip(&mag)
                .map(|(a, s)| a.max(s * 1e-5) + s * 1e-5)
                .collect()
        } else {
            // bf16 operands (2^-8 each) and a bf16 product.
            want.iter()
                .zip(&mag)
                .map(|(y, s)| s * 2.0 / 256.0 + y.abs() / 256.0)
                .collect()
        };
        check(&got, &want, &bound, &format!("backend m={m} n={n} k={k}"));
    }
}

#[test]
fn quantize_round_trip_error_is_within_half_a_step() {
    let mut rng = Lcg::new(3);
    let (n, k) = (19, 160);
    let data: Vec<f32> = rng.vec(n * k, 3.0).iter().map(|&v| v as f32).collect();
    let q = Q8Matrix::quantize(&data, n, k).unwrap();
    let back = q.dequantize();
    for (b, (orig, deq)) in data.chunks(Q8_BLOCK).zip(back.chunks(Q8_BLOCK)).enumerate() {
        let amax = orig.iter().fold(0f32, |a, v| a.max(v.abs()));
        let scale = q.scales()[b].to_f32();
        // The f16 scale is within 2^-11 of amax / 127; values round to half a step.
        assert!(
            (scale - amax / 127.0).abs() <= amax / 127.0 / 2048.0 + 1e-12,
            "block {b}: scale"
        );
        for (o, d) in orig.iter().zip(deq) {
            assert!(
                (o - d).abs() <= scale / 2.0 * 1.0001 + 1e-7,
                "block {b}: {o} -> {d}"
            );
        }
        assert!(q.values()[b * Q8_BLOCK..(b + 1) * Q8_BLOCK]
            .iter()
            .all(|&v| v != i8::MIN));
    }
    let zeros = Q8Matrix::quantize(&[0.0; 32], 1, 32).unwrap();
    assert_eq!(zeros.dequantize(), vec![0.0; 32]);
}

#[test]
fn bad_matrices_are_rejected_with_the_reason() {
    use half::f16;
    use rg_core::SharedBytes;
    let err = |r| {
        Q8Matrix::new(1, 32, SharedBytes::from_vec(vec![1; 32]), r)
            .unwrap_err()
            .to_string()
    };
    assert!(
        err(vec![f16::NAN]).contains("scale 0 is NaN"),
        "{}",
        err(vec![f16::NAN])
    );
    assert!(err(vec![f16::from_f32(-1.0)]).contains("non-negative"));
    assert!(err(vec![]).contains("0 scales"));
    let e = Q8Matrix::new(1, 30, SharedBytes::from_vec(vec![1; 30]), vec![]).unwrap_err();
    assert!(e.to_string().contains("multiple of 32"), "{e}");
    let e =
        Q8Matrix::new(1, 32, SharedBytes::from_vec(vec![0x80; 32]), vec![f16::ONE]).unwrap_err();
    assert!(e.to_string().contains("-128"), "{e}");
    let e =
        Q8Matrix::new(2, 32, SharedBytes::from_vec(vec![1; 32]), vec![f16::ONE; 2]).unwrap_err();
    assert!(e.to_string().contains("32 value bytes"), "{e}");
    let e = Q8Matrix::quantize(&[f32::INFINITY; 32], 1, 32).unwrap_err();
    assert!(e.to_string().contains("element 0"), "{e}");
}
