//! The NEON micro-kernel (aarch64): an 8 x 12 tile of C in 24 of the 32 128-bit
//! registers, the other 8 left for one depth step's operands (two lhs vectors of 4
//! rows, three rhs vectors of 4 columns) so nothing spills. Each lhs value is used
//! straight from its register lane by `fmla v.4s, v.4s, v.s[lane]`, so no broadcast is
//! spent per row: 24 FMAs per 5 loads per depth step.
//!
//! NEON is part of the aarch64 baseline, so the kernel needs no run-time check. It
//! reads only packed lhs panels (strides `1, MR`), which keep each step's 8 lhs values
//! in two contiguous loads.

use std::arch::aarch64::*;

use super::LhsPanel;

/// Rows of the tile (two vectors of lhs values per depth step).
pub const MR: usize = 8;
/// f32 vectors per tile row.
const NV: usize = 3;
/// Columns of the tile.
pub const NR: usize = 4 * NV;

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` for the full `MR x NR` tile, `c` row-major
/// with row stride `ldc`; overwrites when `acc` is false.
///
/// # Safety
/// `a` must be a packed panel of `kc * MR` values (lane stride 1, depth stride `MR`),
/// `b` must hold `kc * NR` values, and `c` must be valid for the tile's reads and
/// writes.
#[target_feature(enable = "neon")]
pub unsafe fn kernel(kc: usize, a: LhsPanel, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    debug_assert!(a.lane == 1 && a.depth == MR && a.rows == MR);
    let mut cr = [[vdupq_n_f32(0.0); NV]; MR];
    let (mut ap, mut bp) = (a.ptr, b);
    for _ in 0..kc {
        // SAFETY: one depth step of each packed panel, inside the caller's lengths.
        let (lo, hi, bv) = unsafe {
            (
                vld1q_f32(ap),
                vld1q_f32(ap.add(4)),
                [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))],
            )
        };
        for (v, &bq) in bv.iter().enumerate() {
            cr[0][v] = vfmaq_laneq_f32::<0>(cr[0][v], bq, lo);
            cr[1][v] = vfmaq_laneq_f32::<1>(cr[1][v], bq, lo);
            cr[2][v] = vfmaq_laneq_f32::<2>(cr[2][v], bq, lo);
            cr[3][v] = vfmaq_laneq_f32::<3>(cr[3][v], bq, lo);
            cr[4][v] = vfmaq_laneq_f32::<0>(cr[4][v], bq, hi);
            cr[5][v] = vfmaq_laneq_f32::<1>(cr[5][v], bq, hi);
            cr[6][v] = vfmaq_laneq_f32::<2>(cr[6][v], bq, hi);
            cr[7][v] = vfmaq_laneq_f32::<3>(cr[7][v], bq, hi);
        }
        // SAFETY: advancing within (or one past) the panels.
        unsafe {
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
    }
    for (i, row) in cr.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            // SAFETY: the tile's `MR` rows of `NR` values are inside `c`.
            unsafe {
                let p = c.add(i * ldc + 4 * v);
                let r = if acc { vaddq_f32(vld1q_f32(p), r) } else { r };
                vst1q_f32(p, r);
            }
        }
    }
}
