//! The int8 kernel of [`super::gemv_q8`]: AVX512_VNNI's `vpdpbusd` on 256-bit vectors
//! (one 32-value block per instruction), chosen at run time when the CPU has it.

use rg_core::{Q8Matrix, Q8_BLOCK};

use super::gemv_q8::QuantizedActs;

/// Whether [`rows`] can run here, detected once.
pub fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    {
        use std::sync::OnceLock;
        static FOUND: OnceLock<bool> = OnceLock::new();
        *FOUND.get_or_init(|| {
            crate::simd::level() == crate::simd::Level::Avx512
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(all(target_arch = "x86_64", rg_cpu_avx512)))]
    false
}

/// Outputs of weight rows `r0..r0 + out.len() / m` into `out` (`[rows, m]`), for `m`
/// rows of quantized activations. Callers check [`available`] first; without it (or
/// for an `m` above 4) this falls back to widening the dequantized row.
pub fn rows(acts: &QuantizedActs, w: &Q8Matrix, r0: usize, m: usize, out: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    if available() {
        // SAFETY: `available` checked the CPU features; `acts` holds `m` rows of
        // `w.cols()` values and `out` whole rows of `m` outputs inside `w`.
        unsafe {
            match m {
                1 => return x86::rows::<1>(acts, w, r0, out),
                2 => return x86::rows::<2>(acts, w, r0, out),
                3 => return x86::rows::<3>(acts, w, r0, out),
                4 => return x86::rows::<4>(acts, w, r0, out),
                _ => {}
            }
        }
    }
    // Portable equivalent: the same int8 products, summed in scalar code.
    let k = w.cols();
    let blocks = k / Q8_BLOCK;
    for (r_local, ys) in out.chunks_exact_mut(m).enumerate() {
        let r = r0 + r_local;
        let row = &w.values()[r * k..(r + 1) * k];
        let scales = &w.scales()[r * blocks..(r + 1) * blocks];
        for (i, y) in ys.iter_mut().enumerate() {
            let xs = &acts.signed[i * k..(i + 1) * k];
            *y = (0..blocks)
                .map(|b| {
                    let span = b * Q8_BLOCK..(b + 1) * Q8_BLOCK;
                    let dot: i32 = row[span.clone()]
                        .iter()
                        .zip(&xs[span])
                        .map(|(&a, &b)| a as i32 * b as i32)
                        .sum();
                    dot as f32 * scales[b].to_f32() * acts.scales[i * blocks + b]
                })
                .sum();
        }
    }
}

// Compiled only where `build.rs` found Rust 1.89+ (AVX-512 intrinsics).
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    use rg_core::{Q8Matrix, Q8_BLOCK};

    use super::QuantizedActs;

    /// # Safety
    /// The CPU must have AVX2, FMA, F16C, AVX512F, AVX512VL and AVX512_VNNI; `acts`
    /// must hold `M` rows of `w.cols()` values; `out` must hold whole rows of `M`
    /// outputs for weight rows starting at `r0`, all inside `w`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn rows<const M: usize>(
        acts: &QuantizedActs,
        w: &Q8Matrix,
        r0: usize,
        out: &mut [f32],
    ) {
        let k = w.cols();
        let blocks = k / Q8_BLOCK;
        let (values, scales) = (w.values(), w.scales());
        for (r_local, ys) in out.chunks_exact_mut(M).enumerate() {
            let r = r0 + r_local;
            let row = &values[r * k..(r + 1) * k];
            let row_scales = &scales[r * blocks..(r + 1) * blocks];
            let mut acc = [_mm256_setzero_ps(); M];
            for (b, scale) in row_scales.iter().enumerate() {
                // SAFETY: block `b` lies inside the row and inside each activation row
                // (both `k` long); unaligned loads.
                unsafe {
                    let wv = _mm256_loadu_si256(row.as_ptr().add(b * Q8_BLOCK).cast());
                    let ws = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(scale.to_bits() as i32)));
                    for (i, a) in acc.iter_mut().enumerate() {
                        let at = i * k + b * Q8_BLOCK;
                        let xs = _mm256_loadu_si256(acts.signed.as_ptr().add(at).cast());
                        let xa = _mm256_loadu_si256(acts.magnitudes.as_ptr().add(at).cast());
                        let dot = _mm256_dpbusd_epi32(
                            _mm256_setzero_si256(),
                            xa,
                            _mm256_sign_epi8(wv, xs),
                        );
                        let s = _mm256_set1_ps(ws * acts.scales[i * blocks + b]);
                        *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, *a);
                    }
                }
            }
            for (y, a) in ys.iter_mut().zip(acc) {
                *y = sum8(a);
            }
        }
    }

    #[target_feature(enable = "avx2")]
    fn sum8(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<1>(d, d)))
    }
}
