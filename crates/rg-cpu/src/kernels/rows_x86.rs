//! Softmax and layer-norm rows and GELU for x86, written once over a vector of f32 lanes
//! ([`F32s`]) and compiled twice: AVX2 with FMA (8 lanes: AMD Zen 2 and 3, Intel Haswell
//! to Alder Lake) and AVX-512 (16 lanes). They are reached through the hooks of
//! [`crate::math::Real`] for f32.
//!
//! The portable kernels vectorise too (`simd::multiversion!`), but without fused
//! multiply-adds: Rust never fuses a multiply and an add by itself, and `exp`'s
//! polynomial is a chain of them, so softmax is compute-bound there. The formulas are
//! [`exp_f32`](crate::math::exp_f32)'s and the portable layer norm's and GELU's, so
//! results agree with the portable kernels to rounding. Row tails use masked loads and
//! stores instead of a scalar loop.

use std::arch::x86_64::*;

use crate::math::exp_consts::{HI, LN2_HI, LN2_LO, LO, POLY, ROUND};
use crate::simd::{level, Level};

/// Softmax of each `cols`-long row of `x` into `y`; `false` (nothing written) where the
/// vector level is below AVX2 with FMA.
pub fn softmax_rows(x: &[f32], y: &mut [f32], cols: usize) -> bool {
    match width() {
        // SAFETY: `width` only reports what the CPU supports.
        #[cfg(rg_cpu_avx512)]
        Some(Width::Avx512) => unsafe { softmax_avx512(x, y, cols) },
        // SAFETY: as above.
        Some(Width::Avx2) => unsafe { softmax_avx2(x, y, cols) },
        None => return false,
    }
    true
}

/// Layer norm of each row (see `kernels::layer_norm`); `false` (nothing written) where
/// the vector level is below AVX2 with FMA.
pub fn layer_norm_rows(rows: LayerNormRows<'_>) -> bool {
    match width() {
        // SAFETY: `width` only reports what the CPU supports.
        #[cfg(rg_cpu_avx512)]
        Some(Width::Avx512) => unsafe { layer_norm_avx512(rows) },
        // SAFETY: as above.
        Some(Width::Avx2) => unsafe { layer_norm_avx2(rows) },
        None => return false,
    }
    true
}

/// GELU of each element of `x` into `y` (one length); `false` (nothing written) where
/// the vector level is below AVX2 with FMA.
pub fn gelu(x: &[f32], y: &mut [f32]) -> bool {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    match width() {
        // SAFETY: `width` only reports what the CPU supports.
        #[cfg(rg_cpu_avx512)]
        Some(Width::Avx512) => unsafe { gelu_avx512(x, y) },
        // SAFETY: as above.
        Some(Width::Avx2) => unsafe { gelu_avx2(x, y) },
        None => return false,
    }
    true
}

/// `dx = dy * gelu'(x)` elementwise (one length); `false` (nothing written) where the
/// vector level is below AVX2 with FMA.
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) -> bool {
    let n = x.len().min(dy.len()).min(dx.len());
    let (x, dy, dx) = (&x[..n], &dy[..n], &mut dx[..n]);
    match width() {
        // SAFETY: `width` only reports what the CPU supports.
        #[cfg(rg_cpu_avx512)]
        Some(Width::Avx512) => unsafe { gelu_backward_avx512(x, dy, dx) },
        // SAFETY: as above.
        Some(Width::Avx2) => unsafe { gelu_backward_avx2(x, dy, dx) },
        None => return false,
    }
    true
}

/// The operands of [`layer_norm_rows`]: `x` and `y` hold whole rows of `gamma.len()`,
/// `mean` and `rstd` one entry per row.
pub struct LayerNormRows<'a> {
    pub x: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub y: &'a mut [f32],
    pub mean: &'a mut [f32],
    pub rstd: &'a mut [f32],
    pub eps: f32,
}

enum Width {
    Avx2,
    #[cfg(rg_cpu_avx512)]
    Avx512,
}

/// The widest copy this CPU runs (capped by `RG_CPU_SIMD` through [`level`]).
fn width() -> Option<Width> {
    match level() {
        #[cfg(rg_cpu_avx512)]
        Level::Avx512 if is_x86_feature_detected!("fma") => Some(Width::Avx512),
        Level::Avx2 | Level::Avx512 if is_x86_feature_detected!("fma") => Some(Width::Avx2),
        _ => None,
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(x: &[f32], y: &mut [f32], cols: usize) {
    // SAFETY: this function's features are `Avx2`'s.
    unsafe { softmax::<Avx2>(x, y, cols) }
}

#[cfg(rg_cpu_avx512)]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn softmax_avx512(x: &[f32], y: &mut [f32], cols: usize) {
    // SAFETY: this function's features are `Avx512`'s.
    unsafe { softmax::<Avx512>(x, y, cols) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_avx2(rows: LayerNormRows<'_>) {
    // SAFETY: this function's features are `Avx2`'s.
    unsafe { layer_norm::<Avx2>(rows) }
}

#[cfg(rg_cpu_avx512)]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn layer_norm_avx512(rows: LayerNormRows<'_>) {
    // SAFETY: this function's features are `Avx512`'s.
    unsafe { layer_norm::<Avx512>(rows) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &[f32], y: &mut [f32]) {
    // SAFETY: this function's features are `Avx2`'s.
    unsafe { gelu_lanes::<Avx2>(x, y) }
}

#[cfg(rg_cpu_avx512)]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn gelu_avx512(x: &[f32], y: &mut [f32]) {
    // SAFETY: this function's features are `Avx512`'s.
    unsafe { gelu_lanes::<Avx512>(x, y) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_backward_avx2(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    // SAFETY: this function's features are `Avx2`'s.
    unsafe { gelu_backward_lanes::<Avx2>(x, dy, dx) }
}

#[cfg(rg_cpu_avx512)]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn gelu_backward_avx512(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    // SAFETY: this function's features are `Avx512`'s.
    unsafe { gelu_backward_lanes::<Avx512>(x, dy, dx) }
}

/// A vector of [`F32s::N`] f32 lanes. Every method is `#[inline(always)]` and only
/// correct inside a function compiled with the implementation's target features
/// (where the intrinsics it calls then inline too), hence `unsafe`.
trait F32s: Copy {
    const N: usize;
    unsafe fn splat(v: f32) -> Self;
    /// `N` lanes from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self;
    /// The first `n < N` lanes from `p`, the others `fill`; reads nothing past `n`.
    unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// Writes only the first `n < N` lanes.
    unsafe fn store_part(self, p: *mut f32, n: usize);
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn div(self, o: Self) -> Self;
    /// `self * b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `c - self * b`, rounded once.
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum, `o` where either is NaN.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise minimum, `o` where either is NaN.
    unsafe fn min(self, o: Self) -> Self;
    /// `2^n` from `t = n + ROUND` (`n` integral, within the exponent's range): the
    /// integer in `t`'s low mantissa bits moved into the exponent field.
    unsafe fn pow2_rounded(t: Self) -> Self;
    /// `y` with the lanes where `x` is above [`HI`] set to infinity, below [`LO`] to
    /// zero, and NaN to NaN.
    unsafe fn exp_specials(y: Self, x: Self) -> Self;
    unsafe fn sum_lanes(self) -> f32;
    unsafe fn max_lanes(self) -> f32;
}

/// [`exp_f32`](crate::math::exp_f32) on every lane, each multiply-add fused.
#[inline(always)]
unsafe fn exp<V: F32s>(x: V) -> V {
    unsafe {
        // NaN becomes HI here (`min` returns its second operand) and is put back last.
        let c = x.min(V::splat(HI)).max(V::splat(LO));
        let t = c.mul_add(V::splat(std::f32::consts::LOG2_E), V::splat(ROUND));
        let n = t.sub(V::splat(ROUND));
        let r = n.neg_mul_add(V::splat(LN2_HI), c);
        let r = n.neg_mul_add(V::splat(LN2_LO), r);
        let r2 = r.mul(r);
        let mut p = V::splat(POLY[0]);
        for &k in &POLY[1..] {
            p = p.mul_add(r, V::splat(k));
        }
        let p = p.mul_add(r2, r).add(V::splat(1.0));
        V::exp_specials(p.mul(V::pow2_rounded(t)), x)
    }
}

/// `(offset, live)` for each vector of a row from `start` to `len`: `live == V::N` for
/// whole vectors, then the remainder (if any). The loop bodies stay in the caller, not
/// in a closure: a closure does not get the caller's target features, and the
/// intrinsics in it would not inline.
#[inline(always)]
fn vectors<V: F32s>(start: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    (start..len)
        .step_by(V::N)
        .map(move |i| (i, V::N.min(len - i)))
}

/// A reduction of a row's lanes, `acc = step(acc, x)`, starting from `fill`'s
/// identity; lanes past the row are loaded as `fill`.
trait Fold<V: F32s> {
    fn fill(&self) -> f32;
    unsafe fn identity(&self) -> V;
    unsafe fn step(&self, acc: V, x: V) -> V;
    unsafe fn merge(a: V, b: V) -> V;
}

/// `f` folded over the `len` f32 at `p`, with four accumulators: one would wait on
/// the latency of each add (four cycles) instead of the throughput (two per cycle).
///
/// # Safety
/// `p` must be valid for reading `len` f32, inside `V`'s target features.
#[inline(always)]
unsafe fn fold<V: F32s, F: Fold<V>>(f: &F, p: *const f32, len: usize) -> V {
    unsafe {
        let mut acc = [f.identity(); 4];
        let mut i = 0;
        while i + 4 * V::N <= len {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = f.step(*a, V::load(p.add(i + k * V::N)));
            }
            i += 4 * V::N;
        }
        for (i, live) in vectors::<V>(i, len) {
            acc[0] = f.step(acc[0], load_live(p.add(i), live, f.fill()));
        }
        F::merge(F::merge(acc[0], acc[1]), F::merge(acc[2], acc[3]))
    }
}

/// The maximum (lanes past the row: -inf).
struct Max;

impl<V: F32s> Fold<V> for Max {
    fn fill(&self) -> f32 {
        f32::NEG_INFINITY
    }
    #[inline(always)]
    unsafe fn identity(&self) -> V {
        unsafe { V::splat(f32::NEG_INFINITY) }
    }
    #[inline(always)]
    unsafe fn step(&self, acc: V, x: V) -> V {
        unsafe { acc.max(x) }
    }
    #[inline(always)]
    unsafe fn merge(a: V, b: V) -> V {
        unsafe { a.max(b) }
    }
}

/// `sum((x - c)^p)` for `p` 1 or 2 (lanes past the row: `c`, which adds zero).
struct Moment {
    c: f32,
    squared: bool,
}

impl<V: F32s> Fold<V> for Moment {
    fn fill(&self) -> f32 {
        self.c
    }
    #[inline(always)]
    unsafe fn identity(&self) -> V {
        unsafe { V::splat(0.0) }
    }
    #[inline(always)]
    unsafe fn step(&self, acc: V, x: V) -> V {
        unsafe {
            let d = x.sub(V::splat(self.c));
            if self.squared {
                d.mul_add(d, acc)
            } else {
                acc.add(d)
            }
        }
    }
    #[inline(always)]
    unsafe fn merge(a: V, b: V) -> V {
        unsafe { a.add(b) }
    }
}

/// Asks for the cache line at `p` (any address: a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const f32) {
    // SAFETY: SSE is part of x86-64; a prefetch reads nothing architecturally.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
}

/// `live` lanes at `p`, the rest `fill`.
///
/// # Safety
/// `p` must be valid for reading `live <= V::N` f32, inside `V`'s target features.
#[inline(always)]
unsafe fn load_live<V: F32s>(p: *const f32, live: usize, fill: f32) -> V {
    unsafe {
        if live == V::N {
            V::load(p)
        } else {
            V::load_part(p, live, fill)
        }
    }
}

/// # Safety
/// `p` must be valid for writing `live <= V::N` f32, inside `V`'s target features.
#[inline(always)]
unsafe fn store_live<V: F32s>(v: V, p: *mut f32, live: usize) {
    unsafe {
        if live == V::N {
            v.store(p)
        } else {
            v.store_part(p, live)
        }
    }
}

/// Softmax of each `cols`-long row. A NaN in a row makes the whole row NaN through
/// the sum (`e^(NaN - m)` is NaN), so the maximum need not look for NaN.
///
/// # Safety
/// Inside `V`'s target features.
#[inline(always)]
unsafe fn softmax<V: F32s>(x: &[f32], y: &mut [f32], cols: usize) {
    for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        // SAFETY (all three passes): `vectors` keeps `i + live <= cols`, the length of
        // both rows; this function's contract gives the features.
        unsafe {
            let m = V::splat(fold::<V, _>(&Max, xp, cols).max_lanes());
            let mut sum = V::splat(0.0);
            for (i, live) in vectors::<V>(0, cols) {
                // Lanes past the row hold -inf, whose exponential adds nothing.
                let e = exp(load_live::<V>(xp.add(i), live, f32::NEG_INFINITY).sub(m));
                prefetch(xp.wrapping_add(cols + i));
                store_live(e, yp.add(i), live);
                sum = sum.add(e);
            }
            let inv = V::splat(sum.sum_lanes().recip());
            for (i, live) in vectors::<V>(0, cols) {
                store_live(
                    load_live::<V>(yp.add(i), live, 0.0).mul(inv),
                    yp.add(i),
                    live,
                );
            }
        }
    }
}

/// The portable layer norm's statistics (shifted by each row's first element, two
/// passes) and `y = (x - mean) * rstd * gamma + beta`.
///
/// # Safety
/// Inside `V`'s target features.
#[inline(always)]
unsafe fn layer_norm<V: F32s>(rows: LayerNormRows<'_>) {
    let LayerNormRows {
        x,
        gamma,
        beta,
        y,
        mean,
        rstd,
        eps,
    } = rows;
    let cols = gamma.len();
    if cols == 0 {
        return;
    }
    let n = cols as f32;
    let (gp, bp) = (gamma.as_ptr(), beta.as_ptr());
    let per_row = x.chunks_exact(cols).zip(y.chunks_exact_mut(cols));
    for ((x, y), (mean, rstd)) in per_row.zip(mean.iter_mut().zip(rstd.iter_mut())) {
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        // SAFETY (all three passes): `vectors` keeps `i + live <= cols`, the length of
        // the rows, `gamma` and `beta`; this function's contract gives the features.
        unsafe {
            let shift = Moment {
                c: x[0],
                squared: false,
            };
            let mu = shift.c + fold::<V, _>(&shift, xp, cols).sum_lanes() / n;
            let spread = Moment {
                c: mu,
                squared: true,
            };
            let r = (fold::<V, _>(&spread, xp, cols).sum_lanes() / n + eps)
                .sqrt()
                .recip();
            let (muv, rv) = (V::splat(mu), V::splat(r));
            for (i, live) in vectors::<V>(0, cols) {
                let norm = load_live::<V>(xp.add(i), live, 0.0).sub(muv).mul(rv);
                let g = load_live::<V>(gp.add(i), live, 0.0);
                let out = norm.mul_add(g, load_live(bp.add(i), live, 0.0));
                store_live(out, yp.add(i), live);
                prefetch(xp.wrapping_add(cols + i));
            }
            *mean = mu;
            *rstd = r;
        }
    }
}

/// `sigmoid(2z)` and `x^2` for GELU's `z = sqrt(2/pi) (x + 0.044715 x^3)`, the
/// portable kernel's formulas (`kernels::gelu`).
#[inline(always)]
unsafe fn gelu_gate<V: F32s>(x: V) -> (V, V) {
    use super::gelu::{COEFF, SQRT_2_OVER_PI};
    unsafe {
        let x2 = x.mul(x);
        let (c, a) = (SQRT_2_OVER_PI as f32, COEFF as f32);
        // -2z = x (-2c - 2ca x^2)
        let minus_2z = x.mul(x2.mul_add(V::splat(-2.0 * c * a), V::splat(-2.0 * c)));
        let one = V::splat(1.0);
        (one.div(one.add(exp(minus_2z))), x2)
    }
}

/// `y = x sigmoid(2z)` = `0.5 x (1 + tanh(z))`.
///
/// # Safety
/// Inside `V`'s target features; `x` and `y` of one length.
#[inline(always)]
unsafe fn gelu_lanes<V: F32s>(x: &[f32], y: &mut [f32]) {
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    for (i, live) in vectors::<V>(0, x.len()) {
        // SAFETY: `i + live <= len` of both; the features by this function's contract.
        unsafe {
            let x = load_live::<V>(xp.add(i), live, 0.0);
            store_live(x.mul(gelu_gate(x).0), yp.add(i), live);
        }
    }
}

/// `dx = dy (s + 2 x s (1 - s) z')` with `s = sigmoid(2z)`,
/// `z' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)`.
///
/// # Safety
/// Inside `V`'s target features; `x`, `dy` and `dx` of one length.
#[inline(always)]
unsafe fn gelu_backward_lanes<V: F32s>(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    use super::gelu::{COEFF, SQRT_2_OVER_PI};
    let (c, a) = (SQRT_2_OVER_PI as f32, COEFF as f32);
    let (xp, gp, dp) = (x.as_ptr(), dy.as_ptr(), dx.as_mut_ptr());
    for (i, live) in vectors::<V>(0, x.len()) {
        // SAFETY: `i + live <= len` of all three; the features by this function's
        // contract.
        unsafe {
            let x = load_live::<V>(xp.add(i), live, 0.0);
            let (s, x2) = gelu_gate(x);
            let dz = x2.mul_add(V::splat(3.0 * a * c), V::splat(c));
            let slope = x.add(x).mul(s).mul(V::splat(1.0).sub(s)).mul(dz);
            let g = load_live::<V>(gp.add(i), live, 0.0);
            store_live(g.mul(s.add(slope)), dp.add(i), live);
        }
    }
}

#[derive(Clone, Copy)]
struct Avx2(__m256);

impl Avx2 {
    /// All-ones in the first `n` lanes.
    #[inline(always)]
    unsafe fn first(n: usize) -> __m256i {
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
}

impl F32s for Avx2 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { Self(_mm256_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Self(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self {
        unsafe {
            let mask = Self::first(n);
            let v = _mm256_maskload_ps(p, mask);
            Self(_mm256_blendv_ps(
                _mm256_set1_ps(fill),
                v,
                _mm256_castsi256_ps(mask),
            ))
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        unsafe { _mm256_maskstore_ps(p, Self::first(n), self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { Self(_mm256_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { Self(_mm256_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { Self(_mm256_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { Self(_mm256_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Self(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Self(_mm256_fnmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { Self(_mm256_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { Self(_mm256_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn pow2_rounded(t: Self) -> Self {
        unsafe {
            let n = _mm256_sub_epi32(
                _mm256_castps_si256(t.0),
                _mm256_set1_epi32(ROUND.to_bits() as i32),
            );
            let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
            Self(_mm256_castsi256_ps(bits))
        }
    }
    #[inline(always)]
    unsafe fn exp_specials(y: Self, x: Self) -> Self {
        unsafe {
            let (x, hi, lo) = (x.0, _mm256_set1_ps(HI), _mm256_set1_ps(LO));
            let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
            let y = _mm256_blendv_ps(y.0, _mm256_set1_ps(f32::INFINITY), above);
            let y = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, lo), y);
            Self(_mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)))
        }
    }
    #[inline(always)]
    unsafe fn sum_lanes(self) -> f32 {
        unsafe { super::gemv_q8_avx2::x86::sum8(self.0) }
    }
    #[inline(always)]
    unsafe fn max_lanes(self) -> f32 {
        unsafe {
            let v = self.0;
            let q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let d = _mm_max_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_max_ss(d, _mm_shuffle_ps::<1>(d, d)))
        }
    }
}

#[cfg(rg_cpu_avx512)]
#[derive(Clone, Copy)]
struct Avx512(__m512);

// The AVX-512 intrinsics are stable since Rust 1.89; `cfg(rg_cpu_avx512)` (build.rs)
// compiles this only there.
#[cfg(rg_cpu_avx512)]
#[allow(clippy::incompatible_msrv)]
impl F32s for Avx512 {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { Self(_mm512_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Self(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self {
        unsafe {
            let mask = ((1u32 << n) - 1) as __mmask16;
            Self(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, p))
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { Self(_mm512_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { Self(_mm512_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { Self(_mm512_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { Self(_mm512_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Self(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Self(_mm512_fnmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { Self(_mm512_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { Self(_mm512_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn pow2_rounded(t: Self) -> Self {
        unsafe {
            let n = _mm512_sub_epi32(
                _mm512_castps_si512(t.0),
                _mm512_set1_epi32(ROUND.to_bits() as i32),
            );
            let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
            Self(_mm512_castsi512_ps(bits))
        }
    }
    #[inline(always)]
    unsafe fn exp_specials(y: Self, x: Self) -> Self {
        unsafe {
            let x = x.0;
            let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(HI));
            let y = _mm512_mask_blend_ps(above, y.0, _mm512_set1_ps(f32::INFINITY));
            let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(LO));
            let y = _mm512_mask_blend_ps(below, y, _mm512_setzero_ps());
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
            Self(_mm512_mask_blend_ps(nan, y, x))
        }
    }
    #[inline(always)]
    unsafe fn sum_lanes(self) -> f32 {
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    unsafe fn max_lanes(self) -> f32 {
        unsafe { _mm512_reduce_max_ps(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` once per copy this CPU can execute, named for messages.
    fn each_width(mut f: impl FnMut(&str, &dyn Fn(&[f32], &mut [f32], usize))) {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        f("avx2", &|x, y, c| unsafe { softmax_avx2(x, y, c) });
        #[cfg(rg_cpu_avx512)]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F as well.
            f("avx512", &|x, y, c| unsafe { softmax_avx512(x, y, c) });
        }
    }

    fn lanes_of<V: F32s>(v: V) -> Vec<f32> {
        let mut out = vec![0.0f32; V::N];
        // SAFETY: callers run this inside `V`'s features; `out` holds `N` f32.
        unsafe { v.store(out.as_mut_ptr()) };
        out
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_avx2(xs: &[f32]) -> Vec<f32> {
        // SAFETY: `xs` holds at least 8 f32 (callers pass 16); the features are Avx2's.
        unsafe { lanes_of(exp(Avx2::load(xs.as_ptr()))) }
    }

    #[cfg(rg_cpu_avx512)]
    #[target_feature(enable = "avx2,fma,avx512f")]
    unsafe fn exp_avx512(xs: &[f32]) -> Vec<f32> {
        // SAFETY: `xs` holds 16 f32; the features are Avx512's.
        unsafe { lanes_of(exp(Avx512::load(xs.as_ptr()))) }
    }

    fn check_exp(name: &str, exp: &dyn Fn(&[f32]) -> Vec<f32>) {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let xs: [f32; 16] = std::array::from_fn(|i| x + i as f32 * 0.000_091);
            for (&x, &got) in xs.iter().zip(&exp(&xs)) {
                let want = (x as f64).exp();
                worst = worst.max(((got as f64 - want) / want).abs());
            }
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "{name}: max relative error {worst}");
        let mut special = [0.0f32; 16];
        special[..8].copy_from_slice(&[
            0.0,
            -1000.0,
            1000.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            88.5,
            -87.5,
        ]);
        let got = exp(&special);
        assert_eq!(
            got[..5],
            [1.0, 0.0, f32::INFINITY, 0.0, f32::INFINITY],
            "{name}"
        );
        assert!(got[5].is_nan(), "{name}");
        assert_eq!(got[6], f32::INFINITY, "{name}");
        assert_eq!(got[7], 0.0, "{name}");
    }

    #[test]
    fn exp_is_accurate_everywhere() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        check_exp("avx2", &|xs| unsafe { exp_avx2(xs) });
        #[cfg(rg_cpu_avx512)]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            check_exp("avx512", &|xs| unsafe { exp_avx512(xs) });
        }
    }

    fn random(n: usize, seed: u64, spread: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * spread
            })
            .collect()
    }

    #[test]
    fn softmax_rows_match_f64_on_ragged_rows() {
        each_width(|name, softmax| {
            for cols in [1, 7, 8, 9, 17, 31, 64, 100, 768] {
                let rows = 5;
                let mut x = random(rows * cols, cols as u64, 20.0);
                // A masked entry (attention's -inf) in every row but the first.
                for r in 1..rows.min(cols + 1) {
                    if cols > 1 {
                        x[r * cols + (r * 3) % cols] = f32::NEG_INFINITY;
                    }
                }
                let mut y = vec![0.0f32; rows * cols];
                softmax(&x, &mut y, cols);
                for (r, (xr, yr)) in x.chunks(cols).zip(y.chunks(cols)).enumerate() {
                    let m = xr.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                    let e: Vec<f64> = xr.iter().map(|&v| (v as f64 - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    for (c, (&got, want)) in yr.iter().zip(e.iter().map(|v| v / s)).enumerate() {
                        assert!(
                            (got as f64 - want).abs() <= 1e-6 * want + 1e-12,
                            "{name} cols {cols} row {r} col {c}: {got} vs {want}"
                        );
                    }
                }
            }
            // A NaN anywhere makes the row NaN, as in the portable kernel.
            let mut x = vec![0.5f32; 20];
            x[13] = f32::NAN;
            let mut y = vec![0.0f32; 20];
            softmax(&x, &mut y, 20);
            assert!(y.iter().all(|v| v.is_nan()), "{name}");
            // Nothing is written past the rows.
            let x = random(9, 3, 4.0);
            let mut y = [7.0f32; 12];
            softmax(&x, &mut y[..9], 9);
            assert_eq!(y[9..], [7.0; 3], "{name}");
        });
    }

    fn gelu_f64(x: f64) -> (f64, f64) {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let z = c * (x + 0.044715 * x * x * x);
        let t = z.tanh();
        let dz = c * (1.0 + 3.0 * 0.044715 * x * x);
        (
            0.5 * x * (1.0 + t),
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dz,
        )
    }

    #[test]
    fn gelu_matches_f64_on_ragged_lengths() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        type Fwd = unsafe fn(&[f32], &mut [f32]);
        type Bwd = unsafe fn(&[f32], &[f32], &mut [f32]);
        let mut kernels: Vec<(&str, Fwd, Bwd)> = vec![("avx2", gelu_avx2, gelu_backward_avx2)];
        #[cfg(rg_cpu_avx512)]
        if is_x86_feature_detected!("avx512f") {
            kernels.push(("avx512", gelu_avx512, gelu_backward_avx512));
        }
        for (name, fwd, bwd) in kernels {
            for n in [1, 7, 8, 15, 16, 17, 100, 1000] {
                let mut x = random(n, n as u64, 16.0);
                // The tails of the tanh: large inputs of both signs.
                x[0] = -30.0;
                if n > 1 {
                    x[n - 1] = 40.0;
                }
                let dy = random(n, 99, 2.0);
                let (mut y, mut dx) = (vec![5.0f32; n + 2], vec![5.0f32; n + 2]);
                // SAFETY: the CPU has the kernels' features (checked above).
                unsafe {
                    fwd(&x, &mut y[..n]);
                    bwd(&x, &dy, &mut dx[..n]);
                }
                assert_eq!(y[n..], [5.0; 2], "{name}: wrote past the end");
                assert_eq!(dx[n..], [5.0; 2], "{name}: wrote past the end");
                for i in 0..n {
                    let (want, slope) = gelu_f64(x[i] as f64);
                    let want_dx = dy[i] as f64 * slope;
                    let (got, got_dx) = (y[i] as f64, dx[i] as f64);
                    assert!(
                        (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "{name} n {n} x {}: {got} vs {want}",
                        x[i]
                    );
                    assert!(
                        (got_dx - want_dx).abs() <= 1e-5 * (1.0 + want_dx.abs()),
                        "{name} n {n} x {}: dx {got_dx} vs {want_dx}",
                        x[i]
                    );
                }
            }
        }
    }

    #[test]
    fn layer_norm_rows_match_f64_on_ragged_rows() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        type Kernel = unsafe fn(LayerNormRows<'_>);
        let mut kernels: Vec<(&str, Kernel)> = vec![("avx2", layer_norm_avx2)];
        #[cfg(rg_cpu_avx512)]
        if is_x86_feature_detected!("avx512f") {
            kernels.push(("avx512", layer_norm_avx512));
        }
        for (name, kernel) in kernels {
            for cols in [1, 5, 8, 16, 23, 100, 768] {
                let rows = 4;
                // Rows far from zero: the shift keeps their statistics accurate.
                let x: Vec<f32> = random(rows * cols, cols as u64, 6.0)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v + 1000.0 * (i / cols) as f32)
                    .collect();
                let gamma = random(cols, 11, 2.0);
                let beta = random(cols, 12, 2.0);
                let mut y = vec![0.0f32; rows * cols + 3];
                let (mut mean, mut rstd) = (vec![0.0f32; rows], vec![0.0f32; rows]);
                let rows_in = LayerNormRows {
                    x: &x,
                    gamma: &gamma,
                    beta: &beta,
                    y: &mut y[..rows * cols],
                    mean: &mut mean,
                    rstd: &mut rstd,
                    eps: 1e-5,
                };
                // SAFETY: the CPU has the kernel's features (checked above).
                unsafe { kernel(rows_in) };
                assert_eq!(y[rows * cols..], [0.0; 3], "{name}: wrote past the rows");
                for r in 0..rows {
                    let xr: Vec<f64> = x[r * cols..][..cols].iter().map(|&v| v as f64).collect();
                    let mu = xr.iter().sum::<f64>() / cols as f64;
                    let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / cols as f64;
                    let rs = 1.0 / (var + 1e-5).sqrt();
                    assert!(
                        (mean[r] as f64 - mu).abs() <= 1e-6 * mu.abs().max(1.0),
                        "{name}"
                    );
                    assert!(
                        (rstd[r] as f64 - rs).abs() <= 1e-4 * rs,
                        "{name} cols {cols}"
                    );
                    for c in 0..cols {
                        let want = (xr[c] - mu) * rs * gamma[c] as f64 + beta[c] as f64;
                        let got = y[r * cols + c] as f64;
                        assert!(
                            (got - want).abs() <= 2e-4 * (1.0 + want.abs()),
                            "{name} cols {cols} row {r} col {c}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
