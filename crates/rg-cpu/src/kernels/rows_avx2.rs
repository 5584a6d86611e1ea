//! Softmax rows with AVX2 and FMA, reached through the hook of [`crate::math::Real`] for
//! f32 on CPUs whose widest level is AVX2 (AMD Zen 2 and 3, Intel Haswell to Alder
//! Lake). The portable kernel compiles to AVX2 there too (`simd::multiversion!`), but
//! without FMA: Rust never fuses a multiply and an add by itself, and `exp`'s
//! polynomial is a chain of them, so the fused chain here is half as long and the row
//! is compute-bound no more. AVX-512 CPUs keep the 16-wide portable copy. The formulas
//! are [`exp_f32`]'s, so results agree with the portable kernel to rounding.

use std::arch::x86_64::*;

use super::gemv_q8_avx2::x86::sum8;
use crate::math::exp_f32;
use crate::simd::{level, Level};

/// Whether these kernels run here: the vector level is AVX2 (not AVX-512, and not
/// capped below by `RG_CPU_SIMD`) and the CPU has FMA.
fn enabled() -> bool {
    level() == Level::Avx2 && is_x86_feature_detected!("fma")
}

/// Softmax of each `cols`-long row of `x` into `y`; `false` (nothing written) where
/// [`enabled`] does not hold.
pub fn softmax_rows(x: &[f32], y: &mut [f32], cols: usize) -> bool {
    if !enabled() {
        return false;
    }
    // SAFETY: `enabled` found AVX2 and FMA.
    unsafe { softmax_rows_fma(x, y, cols) };
    true
}

/// [`softmax_rows`] once the features are known.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_fma(x: &[f32], y: &mut [f32], cols: usize) {
    for (x, y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        // SAFETY: this function's own contract.
        unsafe {
            let m = max(x);
            let inv = exp_shifted(x, y, m).recip();
            scale(y, inv);
        }
    }
}

/// Eight f32 from `p` (any alignment).
///
/// # Safety
/// `p` must be valid for reading eight f32.
#[inline(always)]
unsafe fn load(p: *const f32) -> __m256 {
    unsafe { _mm256_loadu_ps(p) }
}

/// # Safety
/// `p` must be valid for writing eight f32.
#[inline(always)]
unsafe fn store(p: *mut f32, v: __m256) {
    unsafe { _mm256_storeu_ps(p, v) }
}

/// The eight lanes of `v`, in order.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds eight f32.
    unsafe { store(out.as_mut_ptr(), v) };
    out
}

/// [`exp_f32`] on eight lanes: the same range reduction, polynomial and clamping, with
/// each multiply-add fused.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn exp8(x: __m256) -> __m256 {
    use crate::math::exp_consts::{HI, LN2_HI, LN2_LO, LO, POLY, ROUND};
    let splat = _mm256_set1_ps;
    // `min` and `max` return their second operand for a NaN: NaN becomes HI here and
    // is put back at the end.
    let c = _mm256_max_ps(_mm256_min_ps(x, splat(HI)), splat(LO));
    let t = _mm256_fmadd_ps(c, splat(std::f32::consts::LOG2_E), splat(ROUND));
    let n = _mm256_sub_ps(t, splat(ROUND));
    let r = _mm256_fnmadd_ps(n, splat(LN2_HI), c);
    let r = _mm256_fnmadd_ps(n, splat(LN2_LO), r);
    let r2 = _mm256_mul_ps(r, r);
    let mut p = splat(POLY[0]);
    for &k in &POLY[1..] {
        p = _mm256_fmadd_ps(p, r, splat(k));
    }
    let p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), splat(1.0));
    let n_int = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(ROUND.to_bits() as i32),
    );
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n_int, _mm256_set1_epi32(127)));
    let y = _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
    // Above HI: infinity; below LO: zero; NaN stays NaN.
    let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, splat(HI));
    let y = _mm256_blendv_ps(y, splat(f32::INFINITY), above);
    let y = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, splat(LO)), y);
    _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// Largest element (NaN if any is NaN), `-inf` when empty.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn max(xs: &[f32]) -> f32 {
    let whole = xs.len() / 8 * 8;
    let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut nan = _mm256_setzero_ps();
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= xs.len()`.
        let v = unsafe { load(xs.as_ptr().add(i)) };
        acc = _mm256_max_ps(acc, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
    }
    if _mm256_movemask_ps(nan) != 0 || xs[whole..].iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    // SAFETY: this function's own contract.
    unsafe { lanes(acc) }
        .into_iter()
        .chain(xs[whole..].iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `y = e^(x - m)`, returning the sum of `y`.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted(x: &[f32], y: &mut [f32], m: f32) -> f32 {
    let n = x.len().min(y.len());
    let whole = n / 8 * 8;
    let mv = _mm256_set1_ps(m);
    let mut acc = _mm256_setzero_ps();
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= n`, within both slices.
        unsafe {
            let e = exp8(_mm256_sub_ps(load(x.as_ptr().add(i)), mv));
            store(y.as_mut_ptr().add(i), e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    let mut total = sum8(acc);
    for j in whole..n {
        y[j] = exp_f32(x[j] - m);
        total += y[j];
    }
    total
}

/// `y *= a`.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86).
#[target_feature(enable = "avx2,fma")]
unsafe fn scale(y: &mut [f32], a: f32) {
    let whole = y.len() / 8 * 8;
    let av = _mm256_set1_ps(a);
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= y.len()`.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            store(p, _mm256_mul_ps(load(p), av));
        }
    }
    y[whole..].iter_mut().for_each(|v| *v *= a);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    #[test]
    fn exp8_is_accurate_everywhere() {
        if !fma() {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let xs: [f32; 8] = std::array::from_fn(|i| x + i as f32 * 0.000_091);
            // SAFETY: the CPU has AVX2 and FMA (checked above); `xs` holds eight f32.
            let got = unsafe { lanes(exp8(load(xs.as_ptr()))) };
            for (&x, &got) in xs.iter().zip(&got) {
                let want = (x as f64).exp();
                worst = worst.max(((got as f64 - want) / want).abs());
            }
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        let special = [
            0.0,
            -1000.0,
            1000.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            88.5,
            -87.5,
        ];
        // SAFETY: as above.
        let got = unsafe { lanes(exp8(load(special.as_ptr()))) };
        assert_eq!(got[..5], [1.0, 0.0, f32::INFINITY, 0.0, f32::INFINITY]);
        assert!(got[5].is_nan());
        assert_eq!(got[6], f32::INFINITY);
        assert_eq!(got[7], 0.0);
    }

    /// The portable softmax of one row, in f64.
    fn reference(row: &[f32]) -> Vec<f64> {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    #[test]
    fn softmax_rows_match_f64_on_ragged_rows() {
        if !fma() {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 20.0 - 10.0
        };
        for cols in [7, 8, 9, 31, 64, 100, 768] {
            let rows = 5;
            let mut x: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
            // A masked entry (attention's -inf) in every row but the first.
            for r in 1..rows {
                x[r * cols + (r * 3) % cols] = f32::NEG_INFINITY;
            }
            let mut y = vec![0.0f32; rows * cols];
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { softmax_rows_fma(&x, &mut y, cols) };
            for (r, (xr, yr)) in x.chunks(cols).zip(y.chunks(cols)).enumerate() {
                for (c, (&got, want)) in yr.iter().zip(reference(xr)).enumerate() {
                    let err = (got as f64 - want).abs();
                    assert!(
                        err <= 1e-6 * want + 1e-12,
                        "cols {cols} row {r} col {c}: {got} vs {want}"
                    );
                }
            }
        }
        // A NaN anywhere makes the row NaN, as in the portable kernel.
        let mut x = vec![0.5f32; 20];
        x[13] = f32::NAN;
        let mut y = vec![0.0f32; 20];
        // SAFETY: as above.
        unsafe { softmax_rows_fma(&x, &mut y, 20) };
        assert!(y.iter().all(|v| v.is_nan()));
    }
}
