//! The bf16 kernels of [`super::gemv`] with AVX512_BF16's `vdpbf16ps`, which
//! multiplies pairs of bf16 and accumulates in f32 in one instruction (32 weights per
//! instruction, no widening), chosen at run time when the CPU has it. Decoding with
//! bf16 weights is then bound by memory alone, not by the widening instructions.

use half::bf16;

/// Whether [`dot4`] can run here, detected once.
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

/// Dot products of `x` with four columns `c[0..4]` (all of `x.len()` elements), or
/// `None` when the CPU lacks AVX512_BF16.
pub fn dot4(x: &[bf16], c: [&[bf16]; 4]) -> Option<[f32; 4]> {
    let k = x.len();
    if !available() || c.iter().any(|c| c.len() < k) {
        return None;
    }
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    // SAFETY: `available` checked the CPU features; every column holds at least `k`
    // elements, the only range read.
    let out = Some(unsafe { x86::dot4(x, c) });
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
            let (a, b) = (row(kk), row(kk + 1));
            if a.len() < whole || b.len() < whole {
                return None;
            }
            for (i, acc) in permuted.chunks_exact_mut(whole).enumerate() {
                let pair = [x[i * k + kk], x[i * k + kk + 1]];
                // SAFETY: `available` checked the CPU features; `a`, `b` and `acc`
                // hold at least `whole` elements, a multiple of 32.
                unsafe { x86::axpy_pair(acc, a, b, pair) };
            }
            kk += 2;
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
    /// The CPU must have AVX512F and AVX512_BF16; each column must hold `x.len()`
    /// elements.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dot4(x: &[bf16], c: [&[bf16]; 4]) -> [f32; 4] {
        let k = x.len();
        let whole = k / STEP * STEP;
        let load = |p: *const bf16| -> __m512bh {
            // SAFETY: callers pass pointers with `STEP` readable elements; bf16 and
            // the vector are plain bits of the same meaning.
            unsafe { std::mem::transmute(_mm512_loadu_si512(p.cast())) }
        };
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut p = 0;
        while p < whole {
            // SAFETY: p + STEP <= whole <= k, inside `x` and every column.
            let xv = load(unsafe { x.as_ptr().add(p) });
            for (a, col) in acc.iter_mut().zip(&c) {
                *a = _mm512_dpbf16_ps(*a, xv, load(unsafe { col.as_ptr().add(p) }));
            }
            p += STEP;
        }
        let mut out = acc.map(|a| _mm512_reduce_add_ps(a));
        for q in whole..k {
            let xq = x[q].to_f32();
            for (o, col) in out.iter_mut().zip(&c) {
                *o += xq * col[q].to_f32();
            }
        }
        out
    }

    /// `acc += x[0] * a + x[1] * b` over 32-column blocks, the sums of each block kept
    /// in unpacked order: `acc[t*32 + e]` is column `t*32 + 8*(e/4) + e%4` and
    /// `acc[t*32 + 16 + e]` that column + 4 (`vpunpck[lh]wd` interleave rows `a` and `b`
    /// within 128-bit lanes, giving the (a, b) pairs `vdpbf16ps` multiplies).
    ///
    /// # Safety
    /// The CPU must have AVX512F, AVX512BW and AVX512_BF16; `a`, `b` and `acc` must hold
    /// at least `acc.len()` elements, a multiple of 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn axpy_pair(acc: &mut [f32], a: &[bf16], b: &[bf16], x: [bf16; 2]) {
        let pair = (x[0].to_bits() as u32 | (x[1].to_bits() as u32) << 16) as i32;
        // SAFETY: plain bits reinterpreted.
        let xv: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(pair)) };
        let mut p = 0;
        while p + 32 <= acc.len() {
            // SAFETY: p + 32 <= acc.len() <= a.len(), b.len(); unaligned loads/stores.
            unsafe {
                let av = _mm512_loadu_si512(a.as_ptr().add(p).cast());
                let bv = _mm512_loadu_si512(b.as_ptr().add(p).cast());
                let lo: __m512bh = std::mem::transmute(_mm512_unpacklo_epi16(av, bv));
                let hi: __m512bh = std::mem::transmute(_mm512_unpackhi_epi16(av, bv));
                let out = acc.as_mut_ptr().add(p);
                _mm512_storeu_ps(out, _mm512_dpbf16_ps(_mm512_loadu_ps(out), lo, xv));
                _mm512_storeu_ps(
                    out.add(16),
                    _mm512_dpbf16_ps(_mm512_loadu_ps(out.add(16)), hi, xv),
                );
            }
            p += 32;
        }
    }
}
