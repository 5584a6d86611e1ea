//! The bf16 dot products of [`super::gemv`] with AVX512_BF16's `vdpbf16ps`, which
//! multiplies pairs of bf16 and accumulates in f32 in one instruction (32 weights per
//! instruction, no widening), chosen at run time when the CPU has it.

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
}
