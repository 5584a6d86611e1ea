//! The AVX2 int8 kernel of [`super::gemv_q8`], for CPUs with AVX2 but no AVX512_VNNI
//! (AMD Zen 2/3, Intel before Ice Lake): llama.cpp's AVX2 Q8_0 dot product. Per block
//! of 32, `vpsignb` moves the weight's signs onto the activations (|w| · sign(w)·x =
//! w·x), `vpmaddubsw` multiplies the unsigned |w| by those signed bytes and adds pairs
//! into int16 (at most 2 · 128 · 127, which fits), `vpmaddwd` by ones adds pairs into
//! int32, and the block's int32 sum is converted and scaled by weight scale ×
//! activation scale into an f32 accumulator.

use rg_core::Q8Matrix;

use super::gemv_q8::QuantizedActs;

/// Whether [`rows`] runs the AVX2 code here (else it runs the scalar int8 products),
/// detected once.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static FOUND: OnceLock<bool> = OnceLock::new();
        *FOUND.get_or_init(|| {
            crate::simd::level() >= crate::simd::Level::Avx2
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Outputs of weight rows `r0..r0 + out.len() / m` into `out` (`[rows, m]`), for `m`
/// rows of quantized activations; the scalar int8 products where [`available`] is
/// false or `m` is above 4.
pub fn rows(acts: &QuantizedActs, w: &Q8Matrix, r0: usize, m: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
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
    super::gemv_q8::rows_int8_scalar(acts, w, r0, m, out);
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use rg_core::{Q8Matrix, Q8_BLOCK};

    use super::QuantizedActs;

    /// How far ahead of the products the weights are prefetched (as in the VNNI
    /// kernel: one sequential stream per task, which the hardware prefetcher alone
    /// does not keep full).
    const PREFETCH_BYTES: usize = 4096;

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `acts` must hold `M` rows of `w.cols()`
    /// values; `out` must hold whole rows of `M` outputs for weight rows starting at
    /// `r0`, all inside `w`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows<const M: usize>(
        acts: &QuantizedActs,
        w: &Q8Matrix,
        r0: usize,
        out: &mut [f32],
    ) {
        let blocks = w.cols() / Q8_BLOCK;
        // Weight scale × activation scale per activation row and block, rebuilt for
        // each weight row.
        let mut combined = vec![0f32; M * blocks];
        for (j, ys) in out.chunks_exact_mut(M).enumerate() {
            // SAFETY: the caller's contract, for each row.
            unsafe { row::<M>(acts, w, r0 + j, ys, &mut combined) };
        }
    }

    /// Weight row `r` into `out` (`M` outputs), one 32-byte block per step, the
    /// weight's bytes shared by the `M` activation rows.
    ///
    /// # Safety
    /// As [`rows`], with `out` holding exactly `M` outputs and `combined` `M · blocks`
    /// floats.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn row<const M: usize>(
        acts: &QuantizedActs,
        w: &Q8Matrix,
        r: usize,
        out: &mut [f32],
        combined: &mut [f32],
    ) {
        let k = w.cols();
        let blocks = k / Q8_BLOCK;
        let weights = &w.values()[r * k..(r + 1) * k];
        let row_scales = &w.scales()[r * blocks..(r + 1) * blocks];
        for i in 0..M {
            let dst = &mut combined[i * blocks..(i + 1) * blocks];
            let xs = &acts.scales[i * blocks..(i + 1) * blocks];
            let whole = blocks / 8 * 8;
            for b in (0..whole).step_by(8) {
                // SAFETY: blocks b..b + 8 lie inside the row's scales, `xs` and `dst`.
                unsafe {
                    let h = _mm_loadu_si128(row_scales.as_ptr().add(b).cast());
                    let x = _mm256_loadu_ps(xs.as_ptr().add(b));
                    _mm256_storeu_ps(
                        dst.as_mut_ptr().add(b),
                        _mm256_mul_ps(_mm256_cvtph_ps(h), x),
                    );
                }
            }
            for b in whole..blocks {
                dst[b] = row_scales[b].to_f32() * xs[b];
            }
        }
        let ones = _mm256_set1_epi16(1);
        let xq = acts.signed.as_ptr();
        let mut acc = [_mm256_setzero_ps(); M];
        for b in 0..blocks {
            // SAFETY: bytes 32b..32b + 32 lie inside the row and every activation row;
            // `combined` holds `M · blocks` floats; loads are unaligned; prefetches
            // never fault.
            unsafe {
                let ahead = weights.as_ptr().wrapping_add(Q8_BLOCK * b + PREFETCH_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                let wv = _mm256_loadu_si256(weights.as_ptr().add(Q8_BLOCK * b).cast());
                let magnitude = _mm256_sign_epi8(wv, wv);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_loadu_si256(xq.add(i * k + Q8_BLOCK * b).cast());
                    let signed = _mm256_sign_epi8(x, wv);
                    let pairs = _mm256_maddubs_epi16(magnitude, signed);
                    let dot = _mm256_madd_epi16(pairs, ones);
                    let scale = _mm256_set1_ps(*combined.get_unchecked(i * blocks + b));
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, *acc);
                }
            }
        }
        for (y, acc) in out.iter_mut().zip(acc) {
            *y = sum8(acc);
        }
    }

    /// The sum of the 8 lanes (also the VNNI kernel's tail).
    #[target_feature(enable = "avx2")]
    pub(in crate::kernels) fn sum8(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<1>(d, d)))
    }
}
