//! The int8 kernel of [`super::gemv_q8`]: AVX512_VNNI's `vpdpbusd` (two 32-value
//! blocks per instruction), chosen at run time when the CPU has it.

use rg_core::Q8Matrix;

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
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(all(target_arch = "x86_64", rg_cpu_avx512)))]
    false
}

/// Outputs of weight rows `r0..r0 + out.len() / m` into `out` (`[rows, m]`), for `m`
/// rows of quantized activations. Callers check [`available`] first; without it (or
/// for an `m` above 4) this falls back to the same int8 products in scalar code.
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
    super::gemv_q8::rows_int8_scalar(acts, w, r0, m, out);
}

// Compiled only where `build.rs` found Rust 1.89+ (AVX-512 intrinsics).
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;

    use rg_core::{Q8Matrix, Q8_BLOCK};

    use super::QuantizedActs;
    use crate::kernels::gemv_q8_avx2::x86::sum8;

    /// How far ahead of the products the weights are prefetched. The hardware
    /// prefetcher alone left one core at 8-9 GB/s of weights out of cache; 4 KiB ahead
    /// gave 15.7-16.3 GB/s (512 B: 11-12, 1 KiB: 12-13, 2 KiB: 13-15) on the Xeon
    /// (Sapphire Rapids class), one thread, 50 MB of Q8_0 weights; on the AMD EPYC
    /// (Zen 4) 9.5 GB/s without, 12-15 GB/s at 2-8 KiB (16 KiB: 13.5).
    const PREFETCH_BYTES: usize = 4096;

    /// One weight row at a time, front to back, each 64-byte load shared by the `M`
    /// activation rows.
    ///
    /// The matrix is thus read as one sequential stream. Four rows at a time (sharing
    /// the activation loads instead, which hit L1 anyway) made four short interleaved
    /// streams, which one Zen 4 core read at 6.5-8.4 GB/s against 12-15 GB/s for the
    /// single stream (GPT-2 decoding: 8.3-13 ms a token against 5.0-6.6 ms).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C, AVX512F, AVX512BW, AVX512VL and AVX512_VNNI;
    /// `acts` must hold `M` rows of `w.cols()` values; `out` must hold whole rows of
    /// `M` outputs for weight rows starting at `r0`, all inside `w`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn rows<const M: usize>(
        acts: &QuantizedActs,
        w: &Q8Matrix,
        r0: usize,
        out: &mut [f32],
    ) {
        // Combined scales per activation row, padded so that a 16-wide load at any
        // block stays inside; reused by every weight row.
        let stride = w.cols() / Q8_BLOCK + 16;
        let mut combined = vec![0f32; M * stride];
        for (j, ys) in out.chunks_exact_mut(M).enumerate() {
            // SAFETY: the caller's contract, for each row.
            unsafe { row::<M>(acts, w, r0 + j, ys, &mut combined) };
        }
    }

    /// Weight row `r` into `out` (`M` outputs).
    ///
    /// Two blocks per 512-bit step: `vpdpbusd` leaves block `2p` in lanes 0-7 and
    /// block `2p + 1` in lanes 8-15, which are scaled by a permute of the row's
    /// combined scales (weight × activation, computed 16 blocks at a time). An odd
    /// last block takes the 256-bit step.
    ///
    /// # Safety
    /// As [`rows`], with `out` holding exactly `M` outputs and `combined` at least
    /// `M · (blocks + 16)` floats.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn row<const M: usize>(
        acts: &QuantizedActs,
        w: &Q8Matrix,
        r: usize,
        out: &mut [f32],
        combined: &mut [f32],
    ) {
        let k = w.cols();
        let blocks = k / Q8_BLOCK;
        let pairs = blocks / 2;
        let weights = &w.values()[r * k..(r + 1) * k];
        let row_scales = &w.scales()[r * blocks..(r + 1) * blocks];
        let stride = blocks + 16;
        for i in 0..M {
            let dst = &mut combined[i * stride..i * stride + blocks];
            let xs = &acts.scales[i * blocks..(i + 1) * blocks];
            for b in (0..blocks).step_by(16) {
                // Masked loads and store for the last, partial group of 16 (a scalar
                // f16 conversion per block cost as much as the products).
                let mask: u16 = if blocks - b >= 16 {
                    u16::MAX
                } else {
                    (1u16 << (blocks - b)) - 1
                };
                // SAFETY: the mask keeps every access below `blocks`: inside the row's
                // scales, the activation scales and `dst`.
                unsafe {
                    let h = _mm256_maskz_loadu_epi16(mask, row_scales.as_ptr().add(b).cast());
                    let x = _mm512_maskz_loadu_ps(mask, xs.as_ptr().add(b));
                    let product = _mm512_mul_ps(_mm512_cvtph_ps(h), x);
                    _mm512_mask_storeu_ps(dst.as_mut_ptr().add(b), mask, product);
                }
            }
        }
        // Lanes 0-7 take the first of the two loaded scales, lanes 8-15 the second.
        let halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let top_bit = _mm512_set1_epi8(-128);
        let (xq, corr) = (acts.signed.as_ptr(), acts.corrections.as_ptr());
        let mut acc = [_mm512_setzero_ps(); M];
        for p in 0..pairs {
            // SAFETY: bytes 64p..64p + 64 lie inside the row and every activation row,
            // and their 16 corrections inside `corrections`; `combined` has 16 floats
            // past block 2p (padding); all loads unaligned; prefetches never fault.
            unsafe {
                let ahead = weights.as_ptr().wrapping_add(64 * p + PREFETCH_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                let wv = _mm512_loadu_si512(weights.as_ptr().add(64 * p).cast());
                let unsigned = _mm512_xor_si512(wv, top_bit);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_loadu_si512(xq.add(i * k + 64 * p).cast());
                    let c = _mm512_loadu_si512(corr.add((i * k + 64 * p) / 4).cast());
                    let dot = _mm512_dpbusd_epi32(c, unsigned, x);
                    let two = _mm512_loadu_ps(combined.as_ptr().add(i * stride + 2 * p));
                    let scale = _mm512_permutexvar_ps(halves, two);
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, *acc);
                }
            }
        }
        let mut tail = [_mm256_setzero_ps(); M];
        if blocks % 2 == 1 {
            let b = blocks - 1;
            // SAFETY: block `b` lies inside the row and every activation row, and its
            // 8 corrections inside `corrections`.
            unsafe {
                let wv = _mm256_loadu_si256(weights.as_ptr().add(b * Q8_BLOCK).cast());
                let unsigned = _mm256_xor_si256(wv, _mm512_castsi512_si256(top_bit));
                for (i, tail) in tail.iter_mut().enumerate() {
                    let at = i * k + b * Q8_BLOCK;
                    let x = _mm256_loadu_si256(xq.add(at).cast());
                    let c = _mm256_loadu_si256(corr.add(at / 4).cast());
                    let dot = _mm256_dpbusd_epi32(c, unsigned, x);
                    let s = _mm256_set1_ps(combined[i * stride + b]);
                    *tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, *tail);
                }
            }
        }
        for (i, y) in out.iter_mut().enumerate() {
            *y = _mm512_reduce_add_ps(acc[i]) + sum8(tail[i]);
        }
    }
}
