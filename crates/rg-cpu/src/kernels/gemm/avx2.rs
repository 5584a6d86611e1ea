//! The AVX2 micro-kernel (AVX2 + FMA, e.g. AMD Zen 2/3, Intel Haswell and later without
//! AVX-512): a `6 x 16` tile of C in 12 ymm accumulators, plus two rhs vectors and one
//! broadcast lhs value per depth step: 15 of the 16 ymm registers, the BLIS Haswell
//! shape. Same contract and lhs strides as [`super::avx512::kernel`].
//! Only called after `is_x86_feature_detected!` found AVX2 and FMA (see `super::Kernel`).

use std::arch::x86_64::*;

use super::LhsPanel;

/// Rows of the tile.
pub const MR: usize = 6;
/// ymm vectors per tile row.
const NV: usize = 2;
/// Columns of the tile.
pub const NR: usize = 8 * NV;

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` for the full `MR x NR` tile, `c` row-major
/// with row stride `ldc`; overwrites when `acc` is false. Only `a.rows` lhs rows are
/// read; the tile's other rows repeat the last of them.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must be valid for `a.rows` lanes of `kc`
/// depth steps through its strides, `b` must hold `kc * NR` values, and `c` must be
/// valid for the tile's reads and writes.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel(kc: usize, a: LhsPanel, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    // SAFETY (whole body): the pointer arithmetic stays inside the regions the caller
    // vouched for; rows past `a.rows` are clamped to the last live row.
    let rows: [*const f32; MR] =
        std::array::from_fn(|i| unsafe { a.ptr.add(i.min(a.rows - 1) * a.lane) });
    let mut cr = [[_mm256_setzero_ps(); NV]; MR];
    let mut b = b;
    let mut off = 0;
    for _ in 0..kc {
        let bv: [__m256; NV] = std::array::from_fn(|v| unsafe { _mm256_loadu_ps(b.add(8 * v)) });
        for (row, &ap) in cr.iter_mut().zip(&rows) {
            let av = _mm256_broadcast_ss(unsafe { &*ap.add(off) });
            for (r, &bvv) in row.iter_mut().zip(&bv) {
                *r = _mm256_fmadd_ps(av, bvv, *r);
            }
        }
        off += a.depth;
        b = unsafe { b.add(NR) };
    }
    for (i, row) in cr.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            unsafe {
                let p = c.add(i * ldc + 8 * v);
                let r = if acc {
                    _mm256_add_ps(_mm256_loadu_ps(p), r)
                } else {
                    r
                };
                _mm256_storeu_ps(p, r);
            }
        }
    }
}
