//! The aarch64 `bfdot` micro-kernel for bf16 operands: the NEON kernel's 8 x 12 tile
//! of f32 sums, but each depth step reads bf16 pairs of consecutive depths
//! (`pack::pack_pair_panel`) and `bfdot v.4s, v.8h, v.2h[lane]` adds two depths'
//! products for 4 columns at once, with the row's pair taken straight from a lane of the
//! lhs register: 24 instructions per two depths, and no widening of the operands.
//!
//! Only called where the CPU has the BF16 extension (`crate::simd::neon_bf16`).
//! `bfdot` rounds its intermediate sums (round-to-odd without FEAT_EBF16), so results
//! differ from the widening kernel's in the last f32 bits.

use std::arch::aarch64::*;

use super::LhsPanel;

/// Rows of the tile (two vectors of 4 row pairs per step).
pub const MR: usize = 8;
/// f32 vectors per tile row (each of 4 columns).
const NV: usize = 3;
/// Columns of the tile.
pub const NR: usize = 4 * NV;

/// `acc.s[j] += b.h[2j] * a.h[2L] + b.h[2j+1] * a.h[2L+1]`.
///
/// # Safety
/// The CPU must have the BF16 extension.
#[inline(always)]
unsafe fn bfdot_lane<const L: i32>(acc: float32x4_t, b: uint16x8_t, a: uint16x8_t) -> float32x4_t {
    let mut acc = acc;
    // SAFETY: the caller checked the CPU feature; register-only arithmetic (the
    // `vbfdotq_laneq_f32` intrinsic is not stable, hence the assembly).
    unsafe {
        std::arch::asm!(
            ".arch_extension bf16",
            "bfdot {acc:v}.4s, {b:v}.8h, {a:v}.2h[{lane}]",
            acc = inout(vreg) acc,
            b = in(vreg) b,
            a = in(vreg) a,
            lane = const L,
            options(pure, nomem, nostack),
        );
    }
    acc
}

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` for the full `MR x NR` tile over `steps`
/// depth pairs, `c` row-major with row stride `ldc`; overwrites when `acc` is false.
///
/// # Safety
/// The CPU must have the BF16 extension; `a` must be a pair-packed panel of
/// `steps * MR` slots, `b` must hold `steps * NR` slots, and `c` must be valid for the
/// tile's reads and writes.
#[target_feature(enable = "neon,bf16")]
pub unsafe fn kernel(steps: usize, a: LhsPanel, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    debug_assert!(a.lane == 1 && a.depth == MR && a.rows == MR);
    let mut cr = [[vdupq_n_f32(0.0); NV]; MR];
    let (mut ap, mut bp) = (a.ptr.cast::<u16>(), b.cast::<u16>());
    for _ in 0..steps {
        // SAFETY: one step of each packed panel (2 bf16 per slot), inside the
        // caller's lengths; the CPU has BF16.
        unsafe {
            let (lo, hi) = (vld1q_u16(ap), vld1q_u16(ap.add(8)));
            let bv = [vld1q_u16(bp), vld1q_u16(bp.add(8)), vld1q_u16(bp.add(16))];
            for (v, &bq) in bv.iter().enumerate() {
                cr[0][v] = bfdot_lane::<0>(cr[0][v], bq, lo);
                cr[1][v] = bfdot_lane::<1>(cr[1][v], bq, lo);
                cr[2][v] = bfdot_lane::<2>(cr[2][v], bq, lo);
                cr[3][v] = bfdot_lane::<3>(cr[3][v], bq, lo);
                cr[4][v] = bfdot_lane::<0>(cr[4][v], bq, hi);
                cr[5][v] = bfdot_lane::<1>(cr[5][v], bq, hi);
                cr[6][v] = bfdot_lane::<2>(cr[6][v], bq, hi);
                cr[7][v] = bfdot_lane::<3>(cr[7][v], bq, hi);
            }
            ap = ap.add(2 * MR);
            bp = bp.add(2 * NR);
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
