//! Row operations with WebAssembly SIMD128 (wasm32 builds with `+simd128`), reached
//! through the hooks of [`crate::math::Real`] for f32: softmax rows, layer-norm rows
//! and the decoding row of attention (one query against the KV cache). Each follows
//! the portable kernel's formulas (the same `exp` polynomial, four lanes at a time),
//! so results agree with it to rounding.

use core::arch::wasm32::*;

use crate::math::exp_f32;

/// Four f32 from `p` (any alignment).
///
/// # Safety
/// `p` must be valid for reading four f32.
#[inline(always)]
unsafe fn load(p: *const f32) -> v128 {
    unsafe { v128_load(p.cast()) }
}

/// # Safety
/// `p` must be valid for writing four f32.
#[inline(always)]
unsafe fn store(p: *mut f32, v: v128) {
    unsafe { v128_store(p.cast(), v) }
}

#[inline(always)]
fn lanes_sum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

/// [`exp_f32`] on four lanes: the same range reduction, polynomial and clamping.
#[inline(always)]
fn exp4(x: v128) -> v128 {
    use crate::math::exp_consts::{HI, LN2_HI, LN2_LO, LO, POLY, ROUND};
    let c = f32x4_max(f32x4_min(x, f32x4_splat(HI)), f32x4_splat(LO));
    let t = f32x4_add(
        f32x4_mul(c, f32x4_splat(std::f32::consts::LOG2_E)),
        f32x4_splat(ROUND),
    );
    let n = f32x4_sub(t, f32x4_splat(ROUND));
    let r = f32x4_sub(
        f32x4_sub(c, f32x4_mul(n, f32x4_splat(LN2_HI))),
        f32x4_mul(n, f32x4_splat(LN2_LO)),
    );
    let r2 = f32x4_mul(r, r);
    let mut p = f32x4_splat(POLY[0]);
    for &k in &POLY[1..] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(k));
    }
    let p = f32x4_add(f32x4_add(f32x4_mul(p, r2), r), f32x4_splat(1.0));
    let n_int = i32x4_sub(t, u32x4_splat(ROUND.to_bits()));
    let scale = i32x4_shl(i32x4_add(n_int, i32x4_splat(127)), 23);
    let y = f32x4_mul(p, scale);
    // Above HI: infinity; below LO: zero; NaN stays NaN (the clamp turned it into LO).
    let y = v128_bitselect(f32x4_splat(f32::INFINITY), y, f32x4_gt(x, f32x4_splat(HI)));
    let y = v128_andnot(y, f32x4_lt(x, f32x4_splat(LO)));
    v128_bitselect(x, y, f32x4_ne(x, x))
}

/// Largest element (NaN if any is NaN), `-inf` when empty.
fn max(xs: &[f32]) -> f32 {
    let whole = xs.len() / 4 * 4;
    let mut acc = f32x4_splat(f32::NEG_INFINITY);
    let mut nan = f32x4_splat(0.0);
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 4 <= whole <= xs.len()`.
        let v = unsafe { load(xs.as_ptr().add(i)) };
        acc = f32x4_pmax(acc, v);
        nan = v128_or(nan, f32x4_ne(v, v));
        i += 4;
    }
    if v128_any_true(nan) || xs[whole..].iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let lanes = [
        f32x4_extract_lane::<0>(acc),
        f32x4_extract_lane::<1>(acc),
        f32x4_extract_lane::<2>(acc),
        f32x4_extract_lane::<3>(acc),
    ];
    lanes
        .into_iter()
        .chain(xs[whole..].iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `y = e^(x - m)`, returning the sum of `y`.
fn exp_shifted(x: &[f32], y: &mut [f32], m: f32) -> f32 {
    let n = x.len().min(y.len());
    let whole = n / 4 * 4;
    let mv = f32x4_splat(m);
    let mut acc = f32x4_splat(0.0);
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 4 <= whole <= n`, within both slices.
        unsafe {
            let e = exp4(f32x4_sub(load(x.as_ptr().add(i)), mv));
            store(y.as_mut_ptr().add(i), e);
            acc = f32x4_add(acc, e);
        }
        i += 4;
    }
    let mut total = lanes_sum(acc);
    for j in whole..n {
        y[j] = exp_f32(x[j] - m);
        total += y[j];
    }
    total
}

/// `y *= a`.
fn scale(y: &mut [f32], a: f32) {
    let whole = y.len() / 4 * 4;
    let av = f32x4_splat(a);
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 4 <= whole <= y.len()`.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            store(p, f32x4_mul(load(p), av));
        }
        i += 4;
    }
    y[whole..].iter_mut().for_each(|v| *v *= a);
}

/// `sum a[i] * b[i]` over `a.len()` elements.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let b = &b[..n];
    let whole = n / 8 * 8;
    let (mut s0, mut s1) = (f32x4_splat(0.0), f32x4_splat(0.0));
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 8 <= whole <= n`, within both slices.
        unsafe {
            s0 = f32x4_add(
                s0,
                f32x4_mul(load(a.as_ptr().add(i)), load(b.as_ptr().add(i))),
            );
            s1 = f32x4_add(
                s1,
                f32x4_mul(load(a.as_ptr().add(i + 4)), load(b.as_ptr().add(i + 4))),
            );
        }
        i += 8;
    }
    let tail: f32 = (whole..n).map(|j| a[j] * b[j]).sum();
    lanes_sum(f32x4_add(s0, s1)) + tail
}

/// `y += a * x` over `y.len()` elements.
fn axpy(y: &mut [f32], x: &[f32], a: f32) {
    let n = y.len();
    let x = &x[..n];
    let whole = n / 4 * 4;
    let av = f32x4_splat(a);
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 4 <= whole <= n`, within both slices.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            store(
                p,
                f32x4_add(load(p), f32x4_mul(av, load(x.as_ptr().add(i)))),
            );
        }
        i += 4;
    }
    for j in whole..n {
        y[j] += a * x[j];
    }
}

/// Softmax of each `cols`-long row of `x` into `y`.
pub fn softmax_rows(x: &[f32], y: &mut [f32], cols: usize) {
    for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let m = max(x);
        let total = exp_shifted(x, y, m);
        scale(y, total.recip());
    }
}

/// Layer norm of each row of `x` (as the portable kernel: mean shifted by the row's
/// first element, biased variance), writing `y`, the means and `1 / std`.
pub fn layer_norm_rows(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    eps: f32,
) {
    let cols = gamma.len();
    let n = cols as f32;
    let whole = cols / 4 * 4;
    let rows = x.chunks_exact(cols).zip(y.chunks_exact_mut(cols));
    for ((x, y), (mean, rstd)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
        let shift = x[0];
        let (mut s, mut i) = (f32x4_splat(0.0), 0);
        while i < whole {
            // SAFETY: `i + 4 <= whole <= cols`, the row's length.
            s = f32x4_add(
                s,
                f32x4_sub(unsafe { load(x.as_ptr().add(i)) }, f32x4_splat(shift)),
            );
            i += 4;
        }
        let sum = lanes_sum(s) + x[whole..].iter().map(|v| v - shift).sum::<f32>();
        let mu = shift + sum / n;
        let (mut q, mut i) = (f32x4_splat(0.0), 0);
        while i < whole {
            // SAFETY: as above.
            let d = f32x4_sub(unsafe { load(x.as_ptr().add(i)) }, f32x4_splat(mu));
            q = f32x4_add(q, f32x4_mul(d, d));
            i += 4;
        }
        let var = (lanes_sum(q) + x[whole..].iter().map(|v| (v - mu) * (v - mu)).sum::<f32>()) / n;
        let r = (var + eps).sqrt().recip();
        let (muv, rv) = (f32x4_splat(mu), f32x4_splat(r));
        let mut i = 0;
        while i < whole {
            // SAFETY: `i + 4 <= whole <= cols`, within the row, `gamma`, `beta`, `y`.
            unsafe {
                let norm = f32x4_mul(f32x4_sub(load(x.as_ptr().add(i)), muv), rv);
                let out = f32x4_add(
                    f32x4_mul(norm, load(gamma.as_ptr().add(i))),
                    load(beta.as_ptr().add(i)),
                );
                store(y.as_mut_ptr().add(i), out);
            }
            i += 4;
        }
        for j in whole..cols {
            y[j] = (x[j] - mu) * r * gamma[j] + beta[j];
        }
        *mean = mu;
        *rstd = r;
    }
}

/// One (scaled) query against the first `p.len()` keys and values (rows `ks` and `vs`
/// apart): the softmax-weighted sum of values into `out`; returns the log-sum-exp.
pub fn attention_row(
    qi: &[f32],
    k: &[f32],
    ks: usize,
    v: &[f32],
    vs: usize,
    p: &mut [f32],
    out: &mut [f32],
) -> f32 {
    let d = qi.len();
    for (j, pj) in p.iter_mut().enumerate() {
        *pj = dot(qi, &k[j * ks..][..d]);
    }
    let m = max(p);
    // In place: the scores become their exponentials.
    let l = {
        let n = p.len();
        let whole = n / 4 * 4;
        let mv = f32x4_splat(m);
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        while i < whole {
            // SAFETY: `i + 4 <= whole <= n`.
            unsafe {
                let ptr = p.as_mut_ptr().add(i);
                let e = exp4(f32x4_sub(load(ptr), mv));
                store(ptr, e);
                acc = f32x4_add(acc, e);
            }
            i += 4;
        }
        let mut total = lanes_sum(acc);
        for pj in &mut p[whole..] {
            *pj = exp_f32(*pj - m);
            total += *pj;
        }
        total
    };
    out.fill(0.0);
    for (j, &pj) in p.iter().enumerate() {
        axpy(out, &v[j * vs..][..d], pj);
    }
    scale(out, l.recip());
    m + l.ln()
}
