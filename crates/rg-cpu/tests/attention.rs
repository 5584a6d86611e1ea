//! Fused causal attention against a naive f64 reference, on the shapes blocking makes
//! interesting: lengths that are not multiples of the blocks, keys before the queries
//! (`s > t`), single-query decoding over long key ranges, few and many heads, head
//! dimensions below, at and above one vector panel, and strided inputs (slices of a
//! fused QKV projection, a KV cache's head-major layout, a non-unit innermost stride).

mod common;

use common::*;
use rg_core::backend::{Backend, BoxStorage, View};
use rg_core::{DType, Layout, Shape};

/// `(b, t, s, h, d)`.
type Dims = (usize, usize, usize, usize, usize);

const SHAPES: [Dims; 13] = [
    (1, 1, 1, 1, 1),
    (2, 5, 7, 3, 4),
    (1, 64, 64, 2, 64),
    (1, 65, 65, 1, 16),
    (1, 130, 130, 2, 32),
    (1, 37, 200, 2, 8),
    (1, 1, 1024, 2, 64),
    (2, 3, 70, 2, 5),
    (3, 100, 100, 4, 3),
    (1, 150, 217, 1, 80),
    (8, 20, 20, 6, 8),
    (1, 129, 129, 1, 64),
    (2, 4, 131, 3, 33),
];

/// What the reference computes: `out`, `lse`, and the gradients for `dout`.
struct Reference {
    out: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

/// Attention the obvious way, contiguous `[b, n, h, d]` inputs.
fn reference(dims: Dims, q: &[f64], k: &[f64], v: &[f64], dout: &[f64], scale: f64) -> Reference {
    let (b, t, s, h, d) = dims;
    let qi = |bi: usize, i: usize, hi: usize| ((bi * t + i) * h + hi) * d;
    let kj = |bi: usize, j: usize, hi: usize| ((bi * s + j) * h + hi) * d;
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let mut r = Reference {
        out: vec![0.0; b * t * h * d],
        lse: vec![0.0; b * h * t],
        dq: vec![0.0; b * t * h * d],
        dk: vec![0.0; b * s * h * d],
        dv: vec![0.0; b * s * h * d],
    };
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..t {
                let n = i + s - t + 1;
                let (qo, q_row) = (qi(bi, i, hi), &q[qi(bi, i, hi)..][..d]);
                let scores: Vec<f64> = (0..n)
                    .map(|j| scale * dot(q_row, &k[kj(bi, j, hi)..][..d]))
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let l: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / l).collect();
                r.lse[(bi * h + hi) * t + i] = m + l.ln();
                for (j, &pj) in p.iter().enumerate() {
                    for c in 0..d {
                        r.out[qo + c] += pj * v[kj(bi, j, hi) + c];
                    }
                }
                let do_row = &dout[qo..][..d];
                let dp: Vec<f64> = (0..n)
                    .map(|j| dot(do_row, &v[kj(bi, j, hi)..][..d]))
                    .collect();
                let big_d: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for j in 0..n {
                    let ds = p[j] * (dp[j] - big_d) * scale;
                    let ko = kj(bi, j, hi);
                    for c in 0..d {
                        r.dq[qo + c] += ds * k[ko + c];
                        r.dk[ko + c] += ds * q[qo + c];
                        r.dv[ko + c] += p[j] * dout[qo + c];
                    }
                }
            }
        }
    }
    r
}

/// How a `[b, n, h, d]` input is laid out in its storage.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Contiguous,
    /// One third (plus padding) of a fused projection `[b, n, 3 * h * d + 5]`.
    FusedQkv,
    /// A head-major cache `[b, h, n + 3, d]` read back as `[b, n, h, d]`.
    KvCache,
    /// Storage `[b, n, d, h]`: the innermost stride is `h`.
    InnerStrided,
}

/// Storage of `dtype` holding `x` (contiguous `[b, n, h, d]`) through `how`'s layout.
fn lay_out(
    x: &[f64],
    [b, n, h, d]: [usize; 4],
    how: Placement,
    dtype: DType,
) -> (BoxStorage, Layout) {
    let shape = Shape::new([b, n, h, d]);
    let (len, layout) = match how {
        Placement::Contiguous => (x.len(), Layout::contiguous(shape)),
        Placement::FusedQkv => {
            let row = 3 * h * d + 5;
            let strides = vec![n * row, row, d, 1];
            (b * n * row, Layout::new(shape, strides, h * d + 2))
        }
        Placement::KvCache => {
            let cap = n + 3;
            let strides = vec![h * cap * d, d, cap * d, 1];
            (b * h * cap * d, Layout::new(shape, strides, 0))
        }
        Placement::InnerStrided => {
            let strides = vec![n * d * h, d * h, 1, h];
            (x.len(), Layout::new(shape, strides, 0))
        }
    };
    let mut data = vec![f64::NAN; len];
    for (&v, i) in x.iter().zip(layout.storage_indices()) {
        data[i] = v;
    }
    (store(&data, dtype), layout)
}

/// Runs forward and backward on `dims` with inputs laid out as `how` and checks them
/// against the reference at `tol`.
fn check(dims: Dims, how: Placement, dtype: DType, tol: f64, seed: u64) {
    let (b, t, s, h, d) = dims;
    let what = format!("{dtype} {dims:?} {how:?}");
    let mut rng = Lcg::new(seed);
    let (qd, kd) = ([b, t, h, d], [b, s, h, d]);
    let n = |x: [usize; 4]| x.iter().product::<usize>();
    // Scores of a few units, so the softmax is neither flat nor one-hot.
    let data = |rng: &mut Lcg, len| rounded(&rng.vec(len, 1.5), dtype);
    let (q, k, v, dout) = (
        data(&mut rng, n(qd)),
        data(&mut rng, n(kd)),
        data(&mut rng, n(kd)),
        data(&mut rng, n(qd)),
    );
    let scale = 1.0 / (d.max(1) as f64).sqrt();
    let want = reference(dims, &q, &k, &v, &dout, scale);

    let be = backend();
    let (qs, ql) = lay_out(&q, qd, how, dtype);
    let (ks, kl) = lay_out(&k, kd, how, dtype);
    let (vs, vl) = lay_out(&v, kd, how, dtype);
    let (qv, kv, vv) = (
        View::new(&*qs, &ql),
        View::new(&*ks, &kl),
        View::new(&*vs, &vl),
    );
    let fwd = be.attention(qv, kv, vv, scale).unwrap();
    let (out, lse) = (read(&*fwd.out), read(&*fwd.lse));
    assert_close(
        &out,
        &rounded(&want.out, dtype),
        tol,
        &format!("out {what}"),
    );
    assert_close(&lse, &want.lse, tol, &format!("lse {what}"));

    let (dos, dol) = lay_out(&dout, qd, how, dtype);
    let (ol, ll) = (Layout::contiguous(qd), Layout::contiguous([b, h, t]));
    let grads = be
        .attention_backward(
            qv,
            kv,
            vv,
            View::new(&*fwd.out, &ol),
            View::new(&*fwd.lse, &ll),
            View::new(&*dos, &dol),
            scale,
        )
        .unwrap();
    for (name, got, want) in [
        ("dq", &grads.dq, &want.dq),
        ("dk", &grads.dk, &want.dk),
        ("dv", &grads.dv, &want.dv),
    ] {
        assert_close(&read(&**got), want, tol, &format!("{name} {what}"));
    }
}

#[test]
fn f64_matches_the_reference() {
    for (i, &dims) in SHAPES.iter().enumerate() {
        check(dims, Placement::Contiguous, DType::F64, 1e-12, i as u64);
    }
}

#[test]
fn f32_matches_the_reference() {
    for (i, &dims) in SHAPES.iter().enumerate() {
        check(
            dims,
            Placement::Contiguous,
            DType::F32,
            1e-5,
            100 + i as u64,
        );
    }
}

#[test]
fn strided_inputs_are_read_in_place() {
    let hows = [
        Placement::FusedQkv,
        Placement::KvCache,
        Placement::InnerStrided,
    ];
    for (i, &dims) in SHAPES.iter().enumerate() {
        for (j, how) in hows.into_iter().enumerate() {
            let seed = 200 + (i * hows.len() + j) as u64;
            check(dims, how, DType::F64, 1e-12, seed);
            check(dims, how, DType::F32, 1e-5, seed);
        }
    }
}

#[test]
fn bf16_is_computed_in_f32() {
    for (i, dims) in [(2, 5, 7, 3, 4), (1, 70, 90, 2, 32), (1, 1, 300, 2, 64)]
        .into_iter()
        .enumerate()
    {
        // Inputs are bf16-exact and the reference is f64: only the bf16 rounding of
        // the results (and f32 accumulation) separates them.
        check(dims, Placement::FusedQkv, DType::BF16, 1e-2, 300 + i as u64);
    }
}

#[test]
fn many_heads_and_a_single_head() {
    // Tasks are split by head and query block: both extremes of parallelism.
    check(
        (16, 9, 9, 8, 4),
        Placement::Contiguous,
        DType::F64,
        1e-12,
        400,
    );
    check(
        (1, 300, 300, 1, 16),
        Placement::Contiguous,
        DType::F64,
        1e-12,
        401,
    );
}

#[test]
fn zero_width_heads_spread_evenly() {
    let be = backend();
    let (b, t, s, h) = (1, 3, 5, 2);
    let empty = store(&[], DType::F32);
    let (ql, kl) = (
        Layout::contiguous([b, t, h, 0]),
        Layout::contiguous([b, s, h, 0]),
    );
    let fwd = be
        .attention(
            View::new(&*empty, &ql),
            View::new(&*empty, &kl),
            View::new(&*empty, &kl),
            1.0,
        )
        .unwrap();
    assert_eq!(read(&*fwd.out).len(), 0);
    let want: Vec<f64> = (0..b * h)
        .flat_map(|_| (0..t).map(|i| ((i + s - t + 1) as f64).ln()))
        .collect();
    assert_close(&read(&*fwd.lse), &want, 1e-6, "lse of d = 0");
}

#[test]
fn results_do_not_depend_on_recycled_buffers() {
    // The kernels take their outputs from the buffer pool without clearing them
    // (they write every element): fill the pool with NaN buffers of the outputs'
    // sizes (256 KiB of f32, the smallest pooled) and check every result still
    // matches, including the keys' and values' gradients when there are no queries.
    let poison = |len: usize| {
        for _ in 0..4 {
            // Asking for the size first makes the pool keep buffers of it.
            drop(rg_cpu::pool::zeroed::<f32>(len));
            rg_cpu::pool::recycle(rg_cpu::aligned::AlignedVec::filled(len, f32::NAN));
        }
    };
    for (i, dims) in [(2, 128, 128, 4, 64), (1, 0, 256, 4, 64)]
        .into_iter()
        .enumerate()
    {
        let (b, t, s, h, d) = dims;
        poison(b * t * h * d);
        poison(b * s * h * d);
        check(
            dims,
            Placement::Contiguous,
            DType::F32,
            1e-5,
            500 + i as u64,
        );
    }
}
