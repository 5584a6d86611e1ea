//! The AVX2 + FMA f32 tile product (see `super::tile`), for x86 CPUs without AVX-512
//! (AMD Zen 2/3, Intel Haswell to Alder Lake): the contract of `super::avx512` in the
//! 16 ymm registers. An `MR x 8*NV` block of C lives in `MR * NV` accumulators; each
//! depth step loads `NV` vectors of one row of `b` and broadcasts `MR` values of `a`.
//! Column panels 16 wide run `6 x 16` tiles (12 accumulators, 2 rhs vectors and a
//! broadcast: the BLIS Haswell shape), panels of at most 8 columns `12 x 8` tiles; the
//! rows left below a multiple of the tile height run a tile of exactly that height.
//!
//! `b` is read in place with any row stride. Only a panel's last vector, when the
//! panel's width is not a multiple of 8, is read and written with
//! `_mm256_maskload_ps` / `_mm256_maskstore_ps` (a const-generic flag keeps the full
//! vectors on plain loads), so the odd widths of attention tiles (a key block's tail,
//! the causal groups' shortened rows, the tests' `d = 3`) need neither packing nor
//! scratch tiles.
//!
//! Raw pointers and `unsafe` because the intrinsics' loads and stores take pointers;
//! `super::tile::check` bounds every index first.

use std::arch::x86_64::*;

use super::tile::{Lhs, Rhs, Shape};

/// f32 lanes of a ymm vector.
const L: usize = 8;

/// `c (+)= a * b` for the whole shape, in column panels of up to 16.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and every index the shape implies must lie
/// inside its operand (as `super::tile::check` asserts).
#[target_feature(enable = "avx2,fma")]
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
    let (ap, bp, cp) = (a.data.as_ptr(), b.data.as_ptr(), c.as_mut_ptr());
    for j0 in (0..n).step_by(2 * L) {
        let cols = (2 * L).min(n - j0);
        let p = Panel {
            m,
            k,
            a: ap,
            lane: a.lane,
            depth: a.depth,
            // Wrapping: with `k = 0`, `b` may be empty (and is not read).
            b: bp.wrapping_add(j0),
            ldb: b.ld,
            // SAFETY: column `j0 < n` is inside every row of `c`.
            c: unsafe { cp.add(j0) },
            ldc,
            // SAFETY: the caller's contract includes AVX2.
            mask: unsafe { lanes_below(cols % L) },
            acc,
        };
        // SAFETY: the caller's contract, narrowed to this column panel; the flag says
        // whether the panel's last vector is partial (and `mask` covers its live lanes).
        unsafe {
            match (cols > L, cols % L != 0) {
                (false, false) => p.rows::<1, 12, false>(),
                (false, true) => p.rows::<1, 12, true>(),
                (true, false) => p.rows::<2, 6, false>(),
                (true, true) => p.rows::<2, 6, true>(),
            }
        }
    }
}

/// A lane mask for `_mm256_maskload_ps` / `_mm256_maskstore_ps`: lanes `0..live` set.
///
/// # Safety
/// The CPU must support AVX2 (an `unsafe fn` rather than a safe `#[target_feature]`
/// one, which needs Rust 1.86).
#[target_feature(enable = "avx2")]
unsafe fn lanes_below(live: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(live as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// One column panel of the product: all `m` rows, up to `8 * NV` columns.
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
    /// The live lanes of the panel's last vector, when it is partial.
    mask: __m256i,
    acc: bool,
}

impl Panel {
    /// All rows, in tiles of `MR`, then one tile of the rows left.
    ///
    /// # Safety
    /// As [`product`], with `MASKED` true exactly when the panel's width `w` is not a
    /// multiple of 8, and `8 * (NV - 1) < w <= 8 * NV`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const NV: usize, const MR: usize, const MASKED: bool>(&self) {
        let full = self.m - self.m % MR;
        // SAFETY (whole body): every tile's rows are below `m`.
        for i in (0..full).step_by(MR) {
            unsafe { self.tile::<MR, NV, MASKED>(i) };
        }
        let i = full;
        unsafe {
            match (NV, self.m - full) {
                (_, 0) => {}
                (1, 1) => self.tile::<1, 1, MASKED>(i),
                (1, 2) => self.tile::<2, 1, MASKED>(i),
                (1, 3) => self.tile::<3, 1, MASKED>(i),
                (1, 4) => self.tile::<4, 1, MASKED>(i),
                (1, 5) => self.tile::<5, 1, MASKED>(i),
                (1, 6) => self.tile::<6, 1, MASKED>(i),
                (1, 7) => self.tile::<7, 1, MASKED>(i),
                (1, 8) => self.tile::<8, 1, MASKED>(i),
                (1, 9) => self.tile::<9, 1, MASKED>(i),
                (1, 10) => self.tile::<10, 1, MASKED>(i),
                (1, _) => self.tile::<11, 1, MASKED>(i),
                (_, 1) => self.tile::<1, 2, MASKED>(i),
                (_, 2) => self.tile::<2, 2, MASKED>(i),
                (_, 3) => self.tile::<3, 2, MASKED>(i),
                (_, 4) => self.tile::<4, 2, MASKED>(i),
                (_, _) => self.tile::<5, 2, MASKED>(i),
            }
        }
    }

    /// Vector `v` of a panel row starting at `p`: masked if it is the partial last one.
    ///
    /// # Safety
    /// The row's live columns from `p + 8 * v` on must be readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load<const NV: usize, const MASKED: bool>(&self, p: *const f32, v: usize) -> __m256 {
        // SAFETY: the caller's contract; masked lanes are not read.
        unsafe {
            if MASKED && v + 1 == NV {
                _mm256_maskload_ps(p.add(L * v), self.mask)
            } else {
                _mm256_loadu_ps(p.add(L * v))
            }
        }
    }

    /// Rows `i..i + MR` of the panel, all of them below `m`.
    ///
    /// # Safety
    /// As [`Self::rows`], for these rows.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const MR: usize, const NV: usize, const MASKED: bool>(&self, i: usize) {
        // SAFETY (whole body): rows `i..i + MR`, depths `0..k` and the panel's live
        // columns are inside the operands by the caller's contract; masked lanes are
        // neither read nor written. Wrapping arithmetic where a pointer may leave its
        // operand without being read: row pointers when `k = 0` (the lhs may then be
        // empty), and `b` after the last depth step.
        let rows: [*const f32; MR] =
            std::array::from_fn(|r| self.a.wrapping_add((i + r) * self.lane));
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        let mut b = self.b;
        let mut off = 0;
        for _ in 0..self.k {
            let bv: [__m256; NV] =
                std::array::from_fn(|v| unsafe { self.load::<NV, MASKED>(b, v) });
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let av = _mm256_broadcast_ss(unsafe { &*ar.add(off) });
                for (x, &y) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, y, *x);
                }
            }
            off += self.depth;
            b = b.wrapping_add(self.ldb);
        }
        for (r, row) in acc.iter().enumerate() {
            let p = unsafe { self.c.add((i + r) * self.ldc) };
            for (v, &x) in row.iter().enumerate() {
                let x = if self.acc {
                    _mm256_add_ps(unsafe { self.load::<NV, MASKED>(p, v) }, x)
                } else {
                    x
                };
                unsafe {
                    if MASKED && v + 1 == NV {
                        _mm256_maskstore_ps(p.add(L * v), self.mask, x);
                    } else {
                        _mm256_storeu_ps(p.add(L * v), x);
                    }
                }
            }
        }
    }
}

/// `dst[p * ld + i] = scale * src[i * stride + p]` for `i < n`, `p < d`: 8 x 8 blocks
/// transposed in registers, the ragged edges (`n` or `d` not a multiple of 8) one
/// element at a time.
///
/// # Safety
/// The CPU must support AVX2; `src` must hold rows `0..n` of `d` values `stride` apart
/// and `dst` rows `0..d` of `n` values `ld` apart.
#[target_feature(enable = "avx2")]
pub unsafe fn transpose(
    src: &[f32],
    stride: usize,
    n: usize,
    d: usize,
    scale: f32,
    dst: &mut [f32],
    ld: usize,
) {
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let sv = _mm256_set1_ps(scale);
    let (n8, d8) = (n - n % L, d - d % L);
    for i0 in (0..n8).step_by(L) {
        for p0 in (0..d8).step_by(L) {
            // SAFETY: the CPU has AVX2 (so AVX); rows `i0..i0 + 8` and columns
            // `p0..p0 + 8` are inside `src`, rows `p0..p0 + 8` and columns
            // `i0..i0 + 8` inside `dst`.
            unsafe {
                let block: [__m256; L] =
                    std::array::from_fn(|r| _mm256_loadu_ps(sp.add((i0 + r) * stride + p0)));
                for (j, x) in transpose8(block).into_iter().enumerate() {
                    _mm256_storeu_ps(dp.add((p0 + j) * ld + i0), _mm256_mul_ps(x, sv));
                }
            }
        }
    }
    // The edges: rows past the last full block of 8 (all columns), and the columns
    // past the last full block of the other rows.
    let edge = |i: usize, p: usize, dst: &mut [f32]| dst[p * ld + i] = scale * src[i * stride + p];
    for p in 0..d {
        for i in n8..n {
            edge(i, p, dst);
        }
    }
    for p in d8..d {
        for i in 0..n8 {
            edge(i, p, dst);
        }
    }
}

/// The transpose of 8 rows of 8: unpacks within 128-bit lanes interleave row pairs,
/// 64-bit shuffles make 4 x 4 blocks in each lane, and lane permutes put the blocks in
/// place.
///
/// # Safety
/// The CPU must support AVX (`unsafe` for the reason given at [`lanes_below`]).
#[target_feature(enable = "avx")]
unsafe fn transpose8(r: [__m256; L]) -> [__m256; L] {
    // t[2g], t[2g + 1]: rows 2g and 2g + 1 interleaved, low and high pairs of each lane.
    let t: [__m256; L] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // u[4g + c]: lane `h` holds column 4h + c of rows 4g..4g + 4.
    let u: [__m256; L] = std::array::from_fn(|i| {
        let (g, c) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + c / 2], t[4 * g + 2 + c / 2]);
        if c % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    // Column 4h + c: lane h of u[c] (rows 0..4), then lane h of u[4 + c] (rows 4..8).
    std::array::from_fn(|j| {
        let (h, c) = (j / 4, j % 4);
        if h == 0 {
            _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c])
        }
    })
}
