//! The AVX-512 f32 tile product (see `super::tile`): an `MR x 16*NV` block of C in
//! `MR * NV` zmm accumulators; each depth step loads `NV` vectors of one row of `b` and
//! broadcasts `MR` values of `a`. Unlike the GEMM's kernel (`gemm::avx512`), `b` is
//! read in place with any row stride and the last vector of a row is masked, so the
//! odd widths of attention tiles (a key block's tail, `d = 32`, the tests' `d = 3`)
//! need neither packing nor scratch tiles.
//!
//! Raw pointers and `unsafe` because the intrinsics' loads and stores take pointers;
//! `super::tile::check` bounds every index first. Compiled only where `build.rs` sets
//! `rg_cpu_avx512` (Rust 1.89+, where these intrinsics are stable).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::tile::{Lhs, Rhs, Shape};

/// Columns of one pass: 4 zmm vectors, enough for `d = 64` or a 64-query block.
const MAX_NV: usize = 4;

/// `c (+)= a * b` for the whole shape, in column panels of up to `16 * MAX_NV`.
///
/// # Safety
/// The CPU must support AVX-512F, and every index the shape implies must lie inside its
/// operand (as `super::tile::check` asserts).
#[target_feature(enable = "avx512f")]
pub unsafe fn product(
    s: Shape,
    a: Lhs<'_, f32>,
    b: Rhs<'_, f32>,
    c: &mut [f32],
    ldc: usize,
    acc: bool,
) {
    let Shape { m, n, k } = s;
    if m == 0 || n == 0 {
        return;
    }
    let (ap, cp) = (a.data.as_ptr(), c.as_mut_ptr());
    for j0 in (0..n).step_by(16 * MAX_NV) {
        let cols = (16 * MAX_NV).min(n - j0);
        let nv = cols.div_ceil(16);
        // Lanes of the last vector that are inside the row.
        let last = (1u32 << (cols - 16 * (nv - 1))).wrapping_sub(1) as __mmask16;
        let p = Panel {
            m,
            k,
            a: ap,
            lane: a.lane,
            depth: a.depth,
            // Wrapping: with `k = 0`, `b` may be empty (and is not read).
            b: b.data.as_ptr().wrapping_add(j0),
            ldb: b.ld,
            // SAFETY: column `j0` is inside every row of `c`.
            c: unsafe { cp.add(j0) },
            ldc,
            last,
            acc,
        };
        // Rows per tile so that `MR * NV` accumulators plus `NV` rhs vectors and a
        // broadcast fit the 32 zmm registers.
        // SAFETY: the caller's contract, narrowed to this column panel.
        unsafe {
            match nv {
                1 => p.rows::<1, 12>(),
                2 => p.rows::<2, 12>(),
                3 => p.rows::<3, 8>(),
                _ => p.rows::<4, 6>(),
            }
        }
    }
}

/// One column panel of the product: all `m` rows, up to `16 * NV` columns.
struct Panel {
    m: usize,
    k: usize,
    a: *const f32,
    lane: usize,
    depth: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    last: __mmask16,
    acc: bool,
}

impl Panel {
    /// # Safety
    /// As [`product`].
    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const NV: usize, const MR: usize>(&self) {
        for i in (0..self.m).step_by(MR) {
            // SAFETY: rows `i..min(i + MR, m)` are inside the shape.
            unsafe { self.tile::<MR, NV>(i, MR.min(self.m - i)) };
        }
    }

    /// Rows `i..i + live` of the panel (`live <= MR`); the tile's other rows repeat
    /// the last live one and are not stored.
    ///
    /// # Safety
    /// As [`product`], for these rows.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const MR: usize, const NV: usize>(&self, i: usize, live: usize) {
        let mask = |v: usize| if v + 1 == NV { self.last } else { !0 };
        // SAFETY (whole body): rows `i..i + MR`, depths `0..k` and the panel's live
        // columns are inside the operands by the caller's contract; masked lanes are
        // neither read nor written. Row pointers wrap: with `k = 0` the lhs may be
        // empty (and is not read).
        let rows: [*const f32; MR] =
            std::array::from_fn(|r| self.a.wrapping_add((i + r.min(live - 1)) * self.lane));
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut b = self.b;
        let mut off = 0;
        for _ in 0..self.k {
            let bv: [__m512; NV] =
                std::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(mask(v), b.add(16 * v)) });
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let av = _mm512_set1_ps(unsafe { *ar.add(off) });
                for (x, &y) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, y, *x);
                }
            }
            off += self.depth;
            // Wrapping: after the last depth step `b` may point past the operand.
            b = b.wrapping_add(self.ldb);
        }
        for (r, row) in acc.iter().enumerate().take(live) {
            for (v, &x) in row.iter().enumerate() {
                unsafe {
                    let p = self.c.add((i + r) * self.ldc + 16 * v);
                    let x = if self.acc {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask(v), p), x)
                    } else {
                        x
                    };
                    _mm512_mask_storeu_ps(p, mask(v), x);
                }
            }
        }
    }
}

/// `dst[p * ld + i] = scale * src[i * stride + p]` for `i < n`, `p < d`, in 16 x 16
/// blocks transposed in registers (the portable loop stores one element at a time,
/// which made transposing a query block cost a third as much as its products).
///
/// # Safety
/// The CPU must support AVX-512F; `src` must hold rows `0..n` of `d` values `stride`
/// apart and `dst` rows `0..d` of `n` values `ld` apart.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose(
    src: &[f32],
    stride: usize,
    n: usize,
    d: usize,
    scale: f32,
    dst: &mut [f32],
    ld: usize,
) {
    let mask = |len: usize| (1u32 << len.min(16)).wrapping_sub(1) as __mmask16;
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let scale = _mm512_set1_ps(scale);
    for i0 in (0..n).step_by(16) {
        let rows = 16.min(n - i0);
        for p0 in (0..d).step_by(16) {
            let cols = 16.min(d - p0);
            // SAFETY: rows below `rows` and columns below `cols` are inside `src`;
            // masked lanes are not read.
            let block: [__m512; 16] = std::array::from_fn(|r| {
                if r < rows {
                    unsafe { _mm512_maskz_loadu_ps(mask(cols), sp.add((i0 + r) * stride + p0)) }
                } else {
                    _mm512_setzero_ps()
                }
            });
            let block = transpose16(block);
            for (j, &x) in block.iter().enumerate().take(cols) {
                // SAFETY: row `p0 + j` of `dst` holds columns `i0..i0 + rows`.
                unsafe {
                    let out = dp.add((p0 + j) * ld + i0);
                    _mm512_mask_storeu_ps(out, mask(rows), _mm512_mul_ps(x, scale));
                }
            }
        }
    }
}

/// The transpose of 16 rows of 16: unpacks within 128-bit lanes make 4 x 4 blocks,
/// two rounds of lane shuffles move the blocks into place.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // t[2g], t[2g + 1]: rows 2g and 2g + 1 interleaved, low and high pairs of each lane.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4g + c]: lane L holds column 4L + c of rows 4g..4g + 4.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (g, c) = (i / 4, i % 4);
        let (a, b) = (
            _mm512_castps_pd(t[4 * g + c / 2]),
            _mm512_castps_pd(t[4 * g + 2 + c / 2]),
        );
        _mm512_castpd_ps(if c % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        })
    });
    // Column 4L + c gathers lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
    std::array::from_fn(|j| {
        let (lane, c) = (j / 4, j % 4);
        let (v, w) = if lane % 2 == 0 {
            (
                _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]),
                _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]),
            )
        } else {
            (
                _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]),
                _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]),
            )
        };
        if lane < 2 {
            _mm512_shuffle_f32x4::<0x88>(v, w)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(v, w)
        }
    })
}
