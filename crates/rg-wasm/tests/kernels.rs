//! rg-cpu's kernels as the browser build runs them (SIMD128 GEMM, GEMV, attention
//! rows, row ops), checked against f64 references on shapes that are not multiples of
//! the tiles. Runs in headless Chromium under `wasm-bindgen-test` (see `bindings.rs`)
//! and natively, where the same references check the x86 kernels.

use rg_core::{DType, Device, Tensor};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Relative tolerance against the f64 reference (f32 sums of up to a few hundred terms).
const TOL: f64 = 1e-5;

/// A deterministic generator of values in `[-1, 1)`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn tensor(data: &[f32], dims: &[usize]) -> Tensor {
    rg_cpu::register();
    Tensor::from_vec(data.to_vec(), dims.to_vec(), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().unwrap()
}

/// `|got - want| <= TOL * (|want| + scale)` elementwise, `scale` the size of the terms
/// summed (so cancellation to near zero is not held to a relative bound).
fn assert_close(what: &str, got: &[f64], want: &[f64], scale: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * (w.abs() + scale),
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

/// `a [m, k] @ b [k, n]` in f64.
fn reference_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] as f64 * b[p * n + j] as f64;
            }
        }
    }
    c
}

#[wasm_bindgen_test]
fn matmul_matches_f64_on_edge_shapes() {
    let mut rng = Lcg(1);
    // m <= 4 takes the GEMV kernels, larger m the packed GEMM (6 x 8 tiles on wasm32).
    for &(m, k, n) in &[
        (1, 1, 1),
        (1, 37, 29),
        (2, 64, 67),
        (3, 5, 130),
        (4, 257, 33),
        (5, 9, 7),
        (7, 300, 19),
        (13, 31, 70),
        (67, 129, 45),
    ] {
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let want = reference_matmul(&a, &b, m, k, n);
        let scale = (k as f64).sqrt();
        let got = tensor(&a, &[m, k]).matmul(&tensor(&b, &[k, n])).unwrap();
        assert_close(&format!("{m}x{k}x{n}"), &values(&got), &want, scale);
        // The rhs read through a transposed view (unit row stride: the dot form and the
        // packing's other branch).
        let bt: Vec<f32> = (0..n * k).map(|q| b[(q % k) * n + q / k]).collect();
        let b_view = tensor(&bt, &[n, k]).transpose(0, 1).unwrap();
        let got = tensor(&a, &[m, k]).matmul(&b_view).unwrap();
        assert_close(
            &format!("{m}x{k}x{n} (b transposed)"),
            &values(&got),
            &want,
            scale,
        );
    }
}

#[wasm_bindgen_test]
fn bf16_matmul_matches_f64_of_the_rounded_operands() {
    let mut rng = Lcg(2);
    for &(m, k, n) in &[(1, 70, 33), (3, 19, 64), (9, 40, 21)] {
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| half::bf16::from_f32(x).to_f32())
                .collect()
        };
        let (ar, br) = (round(&a), round(&b));
        let want: Vec<f64> = reference_matmul(&ar, &br, m, k, n)
            .into_iter()
            .map(|v| half::bf16::from_f64(v).to_f64())
            .collect();
        let got = tensor(&a, &[m, k])
            .to_dtype(DType::BF16)
            .unwrap()
            .matmul(&tensor(&b, &[k, n]).to_dtype(DType::BF16).unwrap())
            .unwrap();
        // One bf16 rounding of the result: 2^-8 relative.
        for (i, (g, w)) in values(&got).iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 4e-3 * (w.abs() + 0.1),
                "{m}x{k}x{n}: {i}: {g} vs {w}"
            );
        }
    }
}

/// Causal attention in f64: `q [t, h, d]`, `k`, `v` `[s, h, d]`, batch 1.
fn reference_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    s: usize,
    h: usize,
    d: usize,
) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f64; t * h * d];
    for hi in 0..h {
        for i in 0..t {
            let visible = i + (s - t) + 1;
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    (0..d)
                        .map(|e| q[(i * h + hi) * d + e] as f64 * k[(j * h + hi) * d + e] as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for e in 0..d {
                out[(i * h + hi) * d + e] = (0..visible)
                    .map(|j| weights[j] * v[(j * h + hi) * d + e] as f64)
                    .sum::<f64>()
                    / total;
            }
        }
    }
    out
}

#[wasm_bindgen_test]
fn attention_matches_f64_for_decoding_rows_and_blocks() {
    let mut rng = Lcg(3);
    // t < 4 takes the row path (decoding over a KV cache); larger t the blocked one.
    for &(t, s, h, d) in &[
        (1, 1, 1, 4),
        (1, 37, 2, 64),
        (3, 70, 3, 13),
        (2, 2, 1, 7),
        (21, 21, 2, 16),
        (9, 80, 1, 64),
    ] {
        let (q, k, v) = (rng.vec(t * h * d), rng.vec(s * h * d), rng.vec(s * h * d));
        let want = reference_attention(&q, &k, &v, t, s, h, d);
        let got = tensor(&q, &[1, t, h, d])
            .attention(
                &tensor(&k, &[1, s, h, d]),
                &tensor(&v, &[1, s, h, d]),
                1.0 / (d as f64).sqrt(),
            )
            .unwrap();
        assert_close(
            &format!("t {t} s {s} h {h} d {d}"),
            &values(&got.out),
            &want,
            1.0,
        );
    }
}

#[wasm_bindgen_test]
fn softmax_and_layer_norm_match_f64() {
    let mut rng = Lcg(4);
    for &(rows, n) in &[(1, 1), (3, 5), (2, 50257 % 1000 + 3), (5, 64), (4, 771)] {
        let x: Vec<f32> = rng.vec(rows * n).into_iter().map(|v| 8.0 * v).collect();
        let mut want_soft = Vec::new();
        let mut want_norm = Vec::new();
        for r in x.chunks(n) {
            let max = r
                .iter()
                .map(|&v| v as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|&v| (v as f64 - max).exp()).collect();
            let total: f64 = e.iter().sum();
            want_soft.extend(e.iter().map(|v| v / total));
            let mean = r.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            want_norm.extend(
                r.iter()
                    .enumerate()
                    .map(|(j, &v)| (v as f64 - mean) * rstd * (1.0 + 0.01 * j as f64) + 0.5),
            );
        }
        let xt = tensor(&x, &[rows, n]);
        assert_close(
            &format!("softmax {rows}x{n}"),
            &values(&xt.softmax_last().unwrap()),
            &want_soft,
            1e-3,
        );
        let gamma: Vec<f32> = (0..n).map(|j| 1.0 + 0.01 * j as f32).collect();
        let beta = vec![0.5f32; n];
        let y = xt
            .layer_norm(&tensor(&gamma, &[n]), &tensor(&beta, &[n]), 1e-5)
            .unwrap()
            .y;
        assert_close(
            &format!("layer norm {rows}x{n}"),
            &values(&y),
            &want_norm,
            1.0,
        );
    }
}
