//! The AVX-512 micro-kernel: an `MR x 16*NV` tile of C held in `MR * NV` zmm
//! accumulators. Each depth step loads `NV` vectors of the packed rhs panel and
//! broadcasts `MR` lhs values, one FMA per accumulator.
//!
//! The lhs is read through a lane (row) and depth stride, so the same kernel runs on a
//! packed lhs panel (strides `1, MR`) or straight on a row-major lhs (strides `lda, 1`).
//! Only called after `is_x86_feature_detected!("avx512f")` (see `super::Kernel`).
//! The module is compiled only where `build.rs` sets `rg_cpu_avx512` (Rust 1.89+, where
//! these intrinsics are stable), hence the MSRV allowance.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::LhsPanel;

/// Rows of the tile. 6 x 64 (24 accumulators) measured best on Zen 4 among 12x32,
/// 14x32, 8x48, 8x32 and 4x96: equal on large squares, and its 64 columns fit the
/// head dimension of attention products exactly.
pub const MR: usize = 6;
/// zmm vectors per tile row.
pub const NV: usize = 4;
/// Columns of the tile.
pub const NR: usize = 16 * NV;

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` for the full `MR x 16*NV` tile, `c` row-major
/// with row stride `ldc`; overwrites when `acc` is false. Only `a.rows` lhs rows are
/// read; the tile's other rows repeat the last of them.
///
/// # Safety
/// The CPU must support AVX-512F; `a` must be valid for `a.rows` lanes of `kc` depth
/// steps through its strides, `b` must hold `kc * 16 * NV` values, and `c` must be valid
/// for the tile's reads and writes.
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel<const MR: usize, const NV: usize>(
    kc: usize,
    a: LhsPanel,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY (whole body): the pointer arithmetic stays inside the regions the caller
    // vouched for; rows past `a.rows` are clamped to the last live row.
    let rows: [*const f32; MR] =
        std::array::from_fn(|i| unsafe { a.ptr.add(i.min(a.rows - 1) * a.lane) });
    let mut cr = [[_mm512_setzero_ps(); NV]; MR];
    let mut b = b;
    let mut off = 0;
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, r) in bv.iter_mut().enumerate() {
            *r = unsafe { _mm512_loadu_ps(b.add(16 * v)) };
        }
        for (row, &ap) in cr.iter_mut().zip(&rows) {
            let av = _mm512_set1_ps(unsafe { *ap.add(off) });
            for (r, &bvv) in row.iter_mut().zip(&bv) {
                *r = _mm512_fmadd_ps(av, bvv, *r);
            }
        }
        off += a.depth;
        b = unsafe { b.add(16 * NV) };
    }
    for (i, row) in cr.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            unsafe {
                let p = c.add(i * ldc + 16 * v);
                let r = if acc {
                    _mm512_add_ps(_mm512_loadu_ps(p), r)
                } else {
                    r
                };
                _mm512_storeu_ps(p, r);
            }
        }
    }
}
