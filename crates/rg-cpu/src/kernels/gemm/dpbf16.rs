//! The AVX512_BF16 micro-kernel, for CPUs with `vdpbf16ps` but no AMX (Zen 4/5,
//! Cooper Lake): an `MR x 16*NV` f32 tile of C in `MR * NV` zmm accumulators. Each
//! depth pair loads `NV` pair rows of the packed rhs (16 columns x 2 depths each) and
//! broadcasts one (depth, depth + 1) pair per lhs row; `vdpbf16ps` adds both products
//! into each f32 lane, twice the work of an f32 FMA per instruction.
//!
//! It reads the same packed layout as the AMX kernel ([`super::bf16_pack`]): its `MR`
//! rows lie inside one 16-row lhs panel (`MR` divides 16), its `NV` column groups are
//! `NV` consecutive 16-column rhs panels.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::bf16_pack::{CHUNK, LANES, TILE};

/// Rows of the C tile: 8 x 48 (24 accumulators, 3 rhs vectors) leaves registers for
/// the broadcasts, and 8 divides the 16-row lhs panels.
pub const MR: usize = 8;
/// zmm vectors (16-column rhs panels) per tile row.
pub const NV: usize = 3;
/// Columns of the C tile.
pub const NR: usize = LANES * NV;

const _: () = assert!(LANES % MR == 0);

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` over the `MR x NR` tile: `a` points at row
/// `r0` of a packed lhs panel (so row `i` of chunk `t` is at `t * 512 + i * 32`), `b`
/// at the first of `NV` packed rhs panels `panel` values apart, both `kcp` deep (a
/// multiple of 32); `c` row-major with stride `ldc`, overwritten unless `acc`.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512_BF16; the panels must hold the rows, columns
/// and depths read; `c` must be valid for the tile's reads and writes.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn kernel(
    kcp: usize,
    a: *const u16,
    b: *const u16,
    panel: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    let mut cr = [[_mm512_setzero_ps(); NV]; MR];
    for t in 0..kcp / CHUNK {
        // SAFETY (loop body): chunk `t` of the panels is inside them (caller).
        let (ac, bc) = unsafe { (a.add(t * TILE), b.add(t * TILE)) };
        for q in 0..CHUNK / 2 {
            let bv: [__m512bh; NV] = std::array::from_fn(|v| unsafe {
                as_bh(_mm512_loadu_si512(bc.add(v * panel + q * CHUNK).cast()))
            });
            for (i, row) in cr.iter_mut().enumerate() {
                let pair = unsafe { ac.add(i * CHUNK + 2 * q).cast::<i32>().read_unaligned() };
                let av = as_bh(_mm512_set1_epi32(pair));
                for (r, &bvv) in row.iter_mut().zip(&bv) {
                    *r = _mm512_dpbf16_ps(*r, av, bvv);
                }
            }
        }
    }
    for (i, row) in cr.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            // SAFETY: the tile is inside `c` (caller).
            unsafe {
                let p = c.add(i * ldc + LANES * v);
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

/// The same 512 bits seen as 32 bf16.
#[inline(always)]
fn as_bh(x: __m512i) -> __m512bh {
    // SAFETY: both are plain 512-bit vectors; every bit pattern is valid for either.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
}
