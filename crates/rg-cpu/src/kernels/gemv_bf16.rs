//! The bf16 kernels of [`super::gemv`] with AVX512_BF16's `vdpbf16ps`, which
//! multiplies pairs of bf16 and accumulates in f32 in one instruction (32 weights per
//! instruction, no widening), chosen at run time when the CPU has it. Decoding with
//! bf16 weights is then bound by memory alone, not by the widening instructions.

use half::bf16;

/// Whether [`dot`] can run here, detected once.
pub fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    {
        use std::sync::OnceLock;
        static FOUND: OnceLock<bool> = OnceLock::new();
        *FOUND.get_or_init(|| {
            crate::simd::level() == crate::simd::Level::Avx512
                && std::arch::is_x86_feature_detected!("avx512bf16")
                && std::arch::is_x86_feature_detected!("avx512bw")
        })
    }
    #[cfg(not(all(target_arch = "x86_64", rg_cpu_avx512)))]
    false
}

/// The dot product of `x` with the column `c` (at least `x.len()` elements), or `None`
/// when the CPU lacks AVX512_BF16 (wasm32 builds use SIMD128 instead).
pub fn dot(x: &[bf16], c: &[bf16]) -> Option<f32> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if c.len() >= x.len() {
        return Some(super::gemv_simd128::dot_bf16(x, c));
    }
    if !available() || c.len() < x.len() {
        return None;
    }
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    // SAFETY: `available` checked the CPU features; `c` holds at least `x.len()`
    // elements, the only range read.
    let out = Some(unsafe { x86::dot(x, c) });
    #[cfg(not(all(target_arch = "x86_64", rg_cpu_avx512)))]
    let out = None;
    out
}

/// Rows `k0..` of a row-major bf16 weight, in pairs, times the activations `x`
/// (`[m, k]`, `m = y.len() / cols`) added into the first `cols / 32 * 32` columns of
/// `y` (`[m, cols]`): returns `(rows done, columns done)`, or `None` when the CPU lacks
/// AVX512_BF16 or there is no whole pair and block.
pub fn axpy_pairs<'a>(
    x: &[bf16],
    k: usize,
    row: &dyn Fn(usize) -> &'a [bf16],
    y: &mut [f32],
    cols: usize,
    k0: usize,
    k1: usize,
) -> Option<(usize, usize)> {
    let whole = cols / 32 * 32;
    let rows_end = k0 + (k1.saturating_sub(k0)) / 2 * 2;
    let m = y.len() / cols.max(1);
    if !available() || whole == 0 || rows_end == k0 || x.len() < m * k || k1 > k {
        return None;
    }
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    {
        // Sums in the order the unpacked pairs leave them (see `x86::axpy_pair`),
        // put in column order once at the end.
        let mut permuted = vec![0f32; m * whole];
        let mut kk = k0;
        while kk < rows_end {
            // Four pairs per pass while they last: the sums are loaded and stored once
            // per eight weight rows instead of per two.
            let pairs = if kk + 2 * PAIRS <= rows_end { PAIRS } else { 1 };
            let rows: [&[bf16]; 2 * PAIRS] =
                std::array::from_fn(|r| row(kk + r.min(2 * pairs - 1)));
            if rows.iter().any(|r| r.len() < whole) {
                return None;
            }
            for (i, acc) in permuted.chunks_exact_mut(whole).enumerate() {
                let xs = &x[i * k + kk..i * k + kk + 2 * pairs];
                // SAFETY: `available` checked the CPU features; every row and `acc`
                // hold at least `whole` elements, a multiple of 32.
                unsafe {
                    if pairs == PAIRS {
                        x86::axpy_pairs::<PAIRS>(
                            acc,
                            std::array::from_fn(|q| [rows[2 * q], rows[2 * q + 1]]),
                            std::array::from_fn(|q| [xs[2 * q], xs[2 * q + 1]]),
                        )
                    } else {
                        x86::axpy_pairs::<1>(acc, [[rows[0], rows[1]]], [[xs[0], xs[1]]])
                    }
                };
            }
            kk += 2 * pairs;
        }
        for (acc, yi) in permuted.chunks_exact(whole).zip(y.chunks_exact_mut(cols)) {
            for (t, block) in acc.chunks_exact(32).enumerate() {
                for e in 0..16 {
                    let col = t * 32 + 8 * (e / 4) + e % 4;
                    yi[col] += block[e];
                    yi[col + 4] += block[16 + e];
                }
            }
        }
        Some((rows_end, whole))
    }
    #[cfg(not(all(target_arch = "x86_64", rg_cpu_avx512)))]
    {
        let _ = (row, y);
        None
    }
}

/// Row pairs [`x86::axpy_pairs`] takes per pass over the sums.
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
const PAIRS: usize = 8;

// Compiled only where `build.rs` found Rust 1.89+ (AVX-512 intrinsics), above the
// workspace's MSRV.
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    use half::bf16;

    /// Elements per `vdpbf16ps`.
    const STEP: usize = 32;

    /// # Safety
    /// The CPU must have AVX512F and AVX512_BF16; `c` must hold `x.len()` elements.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dot(x: &[bf16], c: &[bf16]) -> f32 {
        let k = x.len();
        let whole = k / (2 * STEP) * (2 * STEP);
        let load = |p: *const bf16| -> __m512bh {
            // SAFETY: callers pass pointers with `STEP` readable elements; bf16 and
            // the vector are plain bits of the same meaning.
            unsafe { std::mem::transmute(_mm512_loadu_si512(p.cast())) }
        };
        // Two independent sums, so consecutive `vdpbf16ps` do not wait on each other.
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut p = 0;
        while p < whole {
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: p + 2 * STEP <= whole <= k, inside `x` and `c`.
                let (xp, cp) =
                    unsafe { (x.as_ptr().add(p + h * STEP), c.as_ptr().add(p + h * STEP)) };
                *a = _mm512_dpbf16_ps(*a, load(xp), load(cp));
            }
            p += 2 * STEP;
        }
        let tail: f32 = (whole..k).map(|q| x[q].to_f32() * c[q].to_f32()).sum();
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) + tail
    }

    /// `acc += sum over pairs q of x[q][0] * rows[q][0] + x[q][1] * rows[q][1]` over
    /// 32-column blocks, the sums of each block kept in unpacked order: `acc[t*32 + e]`
    /// is column `t*32 + 8*(e/4) + e%4` and `acc[t*32 + 16 + e]` that column + 4
    /// (`vpunpck[lh]wd` interleave a pair's two rows within 128-bit lanes, giving the
    /// pairs `vdpbf16ps` multiplies).
    ///
    /// # Safety
    /// The CPU must have AVX512F, AVX512BW and AVX512_BF16; every row and `acc` must
    /// hold at least `acc.len()` elements, a multiple of 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn axpy_pairs<const P: usize>(
        acc: &mut [f32],
        rows: [[&[bf16]; 2]; P],
        x: [[bf16; 2]; P],
    ) {
        let xv: [__m512bh; P] = x.map(|[x0, x1]| {
            let pair = (x0.to_bits() as u32 | (x1.to_bits() as u32) << 16) as i32;
            // SAFETY: plain bits reinterpreted.
            unsafe { std::mem::transmute(_mm512_set1_epi32(pair)) }
        });
        let mut p = 0;
        while p + 32 <= acc.len() {
            // SAFETY: p + 32 <= acc.len() <= every row's length; unaligned loads/stores.
            unsafe {
                let out = acc.as_mut_ptr().add(p);
                let (mut lo, mut hi) = (_mm512_loadu_ps(out), _mm512_loadu_ps(out.add(16)));
                for q in 0..P {
                    let a = _mm512_loadu_si512(rows[q][0].as_ptr().add(p).cast());
                    let b = _mm512_loadu_si512(rows[q][1].as_ptr().add(p).cast());
                    let (l, h) = (_mm512_unpacklo_epi16(a, b), _mm512_unpackhi_epi16(a, b));
                    lo = _mm512_dpbf16_ps(lo, std::mem::transmute::<__m512i, __m512bh>(l), xv[q]);
                    hi = _mm512_dpbf16_ps(hi, std::mem::transmute::<__m512i, __m512bh>(h), xv[q]);
                }
                _mm512_storeu_ps(out, lo);
                _mm512_storeu_ps(out.add(16), hi);
            }
            p += 32;
        }
    }
}
