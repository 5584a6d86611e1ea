//! Packing bf16 operands for the bf16 kernels (AMX and AVX512_BF16), as raw bf16 bits.
//!
//! Both kernels multiply pairs of adjacent depths, so the depth is cut into chunks of
//! 32 (zero-padded) and the operands are stored in AMX tile order:
//! - lhs: panels of 16 rows; panel by panel, chunk by chunk, a 16 x 32 tile (row `r`,
//!   depth `p` of the chunk at `r * 32 + p`): one `tileloadd` with a 64-byte stride.
//! - rhs: panels of 16 columns in the "VNNI" order: depth pair `q` (depths `2q`,
//!   `2q + 1`) of column `j` at `q * 32 + j * 2`, so chunk `c` of a panel is one
//!   16 x 16-pair tile at `c * 512`, and one pair row is one zmm of 16 column pairs.
//!
//! Rows, columns and depths past the matrix are zero. The common layouts have AVX-512
//! paths over whole 16 x 32 tiles: a row-major lhs is a copy, a row-major rhs an
//! interleave of two rows, and the transposed ones (the gradients' operands) add a
//! 16 x 16 transpose of 32-bit pairs; anything else, and partial tiles, go element
//! by element.

#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use half::bf16;

use super::Mat;

/// Depths per chunk (one AMX tile row of bf16).
pub const CHUNK: usize = 32;
/// Rows of an lhs panel and columns of an rhs panel (one AMX tile).
pub const LANES: usize = 16;
/// bf16 values in one packed tile.
pub const TILE: usize = LANES * CHUNK;

/// The bits of element `(i, j)` of `m`.
///
/// # Safety
/// `(i, j)` must be inside the matrix.
#[inline(always)]
unsafe fn bits(m: &Mat<bf16>, i: usize, j: usize) -> u16 {
    // SAFETY: forwarded from the caller.
    unsafe { (*m.ptr.add(i * m.rs + j * m.cs)).to_bits() }
}

/// Packs lhs panel rows `i0..i0 + live` (at most 16) over depths `p0..p0 + kc` into
/// `dst` (`kcp / 32` tiles, `kcp` = `kc` rounded up to 32).
///
/// # Safety
/// The CPU must have AVX-512F and BW; the rows and depths must be inside `a`.
pub unsafe fn pack_lhs_panel(
    dst: &mut [u16],
    a: Mat<bf16>,
    i0: usize,
    live: usize,
    p0: usize,
    kc: usize,
) {
    let kcp = kc.next_multiple_of(CHUNK);
    let dst = &mut dst[..kcp * LANES];
    for (c, tile) in dst.chunks_exact_mut(TILE).enumerate() {
        let depth = CHUNK.min(kc - c * CHUNK);
        let (p, full) = (p0 + c * CHUNK, live == LANES && depth == CHUNK);
        // SAFETY (all three): the tile's rows and depths are inside `a` (caller).
        if full && a.cs == 1 {
            for (r, row) in tile.chunks_exact_mut(CHUNK).enumerate() {
                let src = unsafe {
                    std::slice::from_raw_parts(a.ptr.add((i0 + r) * a.rs + p).cast::<u16>(), CHUNK)
                };
                row.copy_from_slice(src);
            }
        } else if full && a.rs == 1 {
            // Depth-major source: pair up depths, then transpose pairs to rows.
            let src = unsafe { a.ptr.add(i0 + p * a.cs).cast::<u16>() };
            unsafe { transposed_lhs_tile(tile, src, a.cs) };
        } else {
            tile.fill(0);
            for r in 0..live {
                for (d, v) in tile[r * CHUNK..][..depth].iter_mut().enumerate() {
                    *v = unsafe { bits(&a, i0 + r, p + d) };
                }
            }
        }
    }
}

/// Packs rhs panel columns `j0..j0 + live` (at most 16) over depths `p0..p0 + kc` into
/// `dst` in VNNI order (`kcp * 16` values).
///
/// # Safety
/// The CPU must have AVX-512F and BW; the columns and depths must be inside `b`.
pub unsafe fn pack_rhs_panel(
    dst: &mut [u16],
    b: Mat<bf16>,
    j0: usize,
    live: usize,
    p0: usize,
    kc: usize,
) {
    let kcp = kc.next_multiple_of(CHUNK);
    let dst = &mut dst[..kcp * LANES];
    for (c, tile) in dst.chunks_exact_mut(TILE).enumerate() {
        let depth = CHUNK.min(kc - c * CHUNK);
        let (p, full) = (p0 + c * CHUNK, live == LANES && depth == CHUNK);
        // SAFETY (all three): the tile's columns and depths are inside `b` (caller).
        if full && b.cs == 1 {
            let src = unsafe { b.ptr.add(p * b.rs + j0).cast::<u16>() };
            unsafe { row_major_rhs_tile(tile, src, b.rs) };
        } else if full && b.rs == 1 {
            let src = unsafe { b.ptr.add(p + j0 * b.cs).cast::<u16>() };
            unsafe { transposed_rhs_tile(tile, src, b.cs) };
        } else {
            tile.fill(0);
            for j in 0..live {
                for d in 0..depth {
                    tile[(d / 2) * CHUNK + j * 2 + d % 2] = unsafe { bits(&b, p + d, j0 + j) };
                }
            }
        }
    }
}

/// 16 zero-extended bf16 from `lo` and `hi` as 16 pairs `lo[j] | hi[j] << 16`.
#[target_feature(enable = "avx512f")]
#[inline]
fn pair_up(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_or_si512(
        _mm512_cvtepu16_epi32(lo),
        _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)),
    )
}

/// Row-major rhs: 32 depth rows of 16 columns, `rs` apart, become 16 pair rows.
///
/// # Safety
/// AVX-512F; `src` valid for 32 rows of 16 values `rs` apart; `tile` holds 512.
#[target_feature(enable = "avx512f")]
unsafe fn row_major_rhs_tile(tile: &mut [u16], src: *const u16, rs: usize) {
    for q in 0..CHUNK / 2 {
        // SAFETY: rows `2q` and `2q + 1` are inside the source (caller).
        unsafe {
            let lo = _mm256_loadu_si256(src.add(2 * q * rs).cast());
            let hi = _mm256_loadu_si256(src.add((2 * q + 1) * rs).cast());
            _mm512_storeu_si512(tile.as_mut_ptr().add(q * CHUNK).cast(), pair_up(lo, hi));
        }
    }
}

/// Transposed rhs: 16 columns of 32 contiguous depths, `cs` apart. Each column is 16
/// pairs already; a 16 x 16 transpose of the pairs gives the pair rows.
///
/// # Safety
/// AVX-512F; `src` valid for 16 runs of 32 values `cs` apart; `tile` holds 512.
#[target_feature(enable = "avx512f")]
unsafe fn transposed_rhs_tile(tile: &mut [u16], src: *const u16, cs: usize) {
    // SAFETY: column `j`'s 32 depths are inside the source (caller).
    let cols: [__m512i; 16] =
        std::array::from_fn(|j| unsafe { _mm512_loadu_si512(src.add(j * cs).cast()) });
    let rows = transpose16(cols);
    for (q, r) in rows.iter().enumerate() {
        // SAFETY: pair row `q` is inside the tile.
        unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(q * CHUNK).cast(), *r) };
    }
}

/// Transposed lhs: 32 depths of 16 contiguous rows, `cs` apart. Adjacent depths are
/// paired (16 pairs per depth pair, one per row), then transposed to one row per zmm.
///
/// # Safety
/// AVX-512F; `src` valid for 32 runs of 16 values `cs` apart; `tile` holds 512.
#[target_feature(enable = "avx512f")]
unsafe fn transposed_lhs_tile(tile: &mut [u16], src: *const u16, cs: usize) {
    let pairs: [__m512i; 16] = std::array::from_fn(|q| {
        // SAFETY: depths `2q` and `2q + 1` are inside the source (caller).
        unsafe {
            pair_up(
                _mm256_loadu_si256(src.add(2 * q * cs).cast()),
                _mm256_loadu_si256(src.add((2 * q + 1) * cs).cast()),
            )
        }
    });
    let rows = transpose16(pairs);
    for (r, v) in rows.iter().enumerate() {
        // SAFETY: row `r` is inside the tile.
        unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(r * CHUNK).cast(), *v) };
    }
}

/// Transposes a 16 x 16 matrix of 32-bit values held one row per zmm.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    // Within each 128-bit lane: 2 x 2 blocks of 32-bit, then of 64-bit values. After
    // that, `u[4i + j]` lane `l` holds column `4l + j` of rows `4i..4i + 4`.
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Then gather lane `l` of `u[j]`, `u[4 + j]`, `u[8 + j]`, `u[12 + j]` into output
    // row `4l + j`, by two rounds of 128-bit lane shuffles.
    let mut o = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let even01 = _mm512_shuffle_i32x4::<0x88>(u[j], u[4 + j]);
        let odd01 = _mm512_shuffle_i32x4::<0xDD>(u[j], u[4 + j]);
        let even23 = _mm512_shuffle_i32x4::<0x88>(u[8 + j], u[12 + j]);
        let odd23 = _mm512_shuffle_i32x4::<0xDD>(u[8 + j], u[12 + j]);
        o[j] = _mm512_shuffle_i32x4::<0x88>(even01, even23);
        o[8 + j] = _mm512_shuffle_i32x4::<0xDD>(even01, even23);
        o[4 + j] = _mm512_shuffle_i32x4::<0x88>(odd01, odd23);
        o[12 + j] = _mm512_shuffle_i32x4::<0xDD>(odd01, odd23);
    }
    o
}
