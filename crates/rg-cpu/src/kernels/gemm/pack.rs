//! Packing: copying a block of an operand, read through any strides, into the
//! contiguous panel order the micro-kernels stream, converting elements to f32.
//!
//! A block of lhs rows is cut into panels of `mr` rows, each stored k-major (`mr`
//! values for k = 0, then `mr` for k = 1, ...); a block of rhs columns into panels of
//! `nr` columns, also k-major. Rows or columns past the matrix edge are zero, so the
//! kernels always run on full tiles. Because the packers read through strides, a
//! transposed operand costs only a different read order here, never a copy elsewhere.

use half::bf16;

/// Element types the GEMM reads: converted to f32 while packing.
pub trait Elem: Copy + Send + Sync + 'static {
    /// Whether the type is f32 itself (so it can be read without conversion).
    const IS_F32: bool;
    fn to_f32(self) -> f32;
}

impl Elem for f32 {
    const IS_F32: bool = true;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const IS_F32: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// A read-only strided matrix: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct Mat<E> {
    pub ptr: *const E,
    pub rs: usize,
    pub cs: usize,
}

// SAFETY: `Mat` is a read-only view; the GEMM's callers guarantee the memory stays
// valid and unwritten for the whole product, so sharing it across threads is sound.
unsafe impl<E: Sync> Send for Mat<E> {}
// SAFETY: as above.
unsafe impl<E: Sync> Sync for Mat<E> {}

impl<E: Elem> Mat<E> {
    /// The same matrix transposed (rows and columns swapped), still read in place.
    pub fn t(self) -> Self {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// The matrix without its first `j0` columns.
    ///
    /// # Safety
    /// Column `j0` must be inside the matrix the caller described.
    pub unsafe fn columns_after(self, j0: usize) -> Self {
        Mat {
            // SAFETY: forwarded from the caller.
            ptr: unsafe { self.ptr.add(j0 * self.cs) },
            ..self
        }
    }

    /// # Safety
    /// `(i, j)` must be inside the matrix the caller described.
    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe { (*self.ptr.add(i * self.rs + j * self.cs)).to_f32() }
    }
}

/// Packs one panel: `w` consecutive "lanes" (rows of the lhs, or columns of the rhs
/// seen through [`Mat::t`]) starting at lane `l0`, of which `live` exist, over depth
/// `p0..p0 + kc`. Writes `kc * w` values to `dst` in k-major order.
///
/// # Safety
/// Lanes `l0..l0 + live` and depths `p0..p0 + kc` must be inside `src`.
pub unsafe fn pack_panel<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    l0: usize,
    live: usize,
    p0: usize,
    kc: usize,
    w: usize,
) {
    debug_assert!(dst.len() >= kc * w && live <= w);
    let dst = &mut dst[..kc * w];
    if live < w {
        dst.fill(0.0);
    }
    // SAFETY (all reads below): lanes below `live` and depths below `kc` are in
    // bounds by the caller's contract.
    if src.cs == 1 {
        // Lanes contiguous along depth (a row-major lhs, a transposed rhs): read each
        // lane as a run and scatter it with stride `w`.
        for l in 0..live {
            let lane = unsafe { src.ptr.add((l0 + l) * src.rs + p0) };
            for (p, d) in dst.iter_mut().skip(l).step_by(w).enumerate() {
                *d = unsafe { (*lane.add(p)).to_f32() };
            }
        }
    } else if src.rs == 1 {
        // Depth-major with unit lane stride (a row-major rhs, a transposed lhs): each
        // depth is one contiguous run of `live` values.
        for (p, row) in dst.chunks_exact_mut(w).enumerate() {
            let run = unsafe { src.ptr.add(l0 + (p0 + p) * src.cs) };
            for (l, d) in row[..live].iter_mut().enumerate() {
                *d = unsafe { (*run.add(l)).to_f32() };
            }
        }
    } else {
        for (p, row) in dst.chunks_exact_mut(w).enumerate() {
            for (l, d) in row[..live].iter_mut().enumerate() {
                *d = unsafe { src.at(l0 + l, p0 + p) };
            }
        }
    }
}

/// Packs lanes `l0..l0 + len` into `w`-wide panels (as [`pack_panel`] each) when the
/// lanes are contiguous (`src.rs == 1`: a row-major rhs, a transposed lhs), walking
/// the source one depth row at a time across every panel: one sequential stream the
/// prefetchers follow, where panel by panel would hop a row stride every `w` values.
/// Only depths `rows` of the `kc` are written, so tasks can split the depth.
///
/// # Safety
/// `dst` must be valid for `len.div_ceil(w) * kc * w` writes, of which nothing else
/// touches depths `rows` meanwhile; lanes `l0..l0 + len` and depths
/// `p0..p0 + kc` must be inside `src`, and `src.rs == 1`.
pub unsafe fn pack_rows<E: Elem>(
    dst: *mut f32,
    src: Mat<E>,
    lanes: (usize, usize),
    depths: (usize, usize),
    w: usize,
    rows: std::ops::Range<usize>,
) {
    // The kernels' panel widths as constants, so the copy of one panel row is
    // unrolled: with `w` only known at run time, narrow (6-wide) lhs panels cost a
    // loop set-up per 6 values.
    // SAFETY (all arms): forwarded from the caller.
    unsafe {
        match w {
            6 => pack_rows_w::<E, 6>(dst, src, lanes, depths, rows),
            16 => pack_rows_w::<E, 16>(dst, src, lanes, depths, rows),
            64 => pack_rows_w::<E, 64>(dst, src, lanes, depths, rows),
            _ => pack_rows_any(dst, src, lanes, depths, w, rows),
        }
    }
}

/// [`pack_rows`] for a panel width known at compile time.
///
/// # Safety
/// As [`pack_rows`] with `w == W`.
unsafe fn pack_rows_w<E: Elem, const W: usize>(
    dst: *mut f32,
    src: Mat<E>,
    (l0, len): (usize, usize),
    (p0, kc): (usize, usize),
    rows: std::ops::Range<usize>,
) {
    debug_assert!(src.rs == 1 && rows.end <= kc);
    let full = len / W;
    for p in rows {
        // SAFETY: depth `p0 + p` and lanes `l0..l0 + len` are inside `src`; row `p` of
        // every panel is inside `dst` and this task's to write.
        unsafe {
            let run = src.ptr.add(l0 + (p0 + p) * src.cs);
            for q in 0..full {
                let from = &*run.add(q * W).cast::<[E; W]>();
                let to = &mut *dst.add((q * kc + p) * W).cast::<[f32; W]>();
                *to = from.map(E::to_f32);
            }
            if full * W < len {
                let to = std::slice::from_raw_parts_mut(dst.add((full * kc + p) * W), W);
                let live = len - full * W;
                for (l, d) in to.iter_mut().enumerate() {
                    *d = if l < live {
                        (*run.add(full * W + l)).to_f32()
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// [`pack_rows`] for any panel width.
///
/// # Safety
/// As [`pack_rows`].
unsafe fn pack_rows_any<E: Elem>(
    dst: *mut f32,
    src: Mat<E>,
    (l0, len): (usize, usize),
    (p0, kc): (usize, usize),
    w: usize,
    rows: std::ops::Range<usize>,
) {
    debug_assert!(src.rs == 1 && rows.end <= kc);
    for p in rows {
        // SAFETY: depth `p0 + p` and lanes `l0..l0 + len` are inside `src`.
        let run = unsafe { std::slice::from_raw_parts(src.ptr.add(l0 + (p0 + p) * src.cs), len) };
        for (q, lanes) in run.chunks(w).enumerate() {
            // SAFETY: row `p` of panel `q` is inside `dst` and this task's to write.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add((q * kc + p) * w), w) };
            for (d, &x) in row.iter_mut().zip(lanes) {
                *d = x.to_f32();
            }
            row[lanes.len()..].fill(0.0);
        }
    }
}

/// Packs one panel as [`pack_panel`] does, but with two consecutive depths per 32-bit
/// slot: slot `s * w + l` holds lane `l`'s bf16 values at depths `2s` (low half) and
/// `2s + 1` (high half), the pairs `bfdot` multiplies. An odd last depth is paired with
/// zero. Writes `kc.div_ceil(2) * w` slots. Values are cut to their top 16 bits, which
/// is exact for bf16 operands (the only ones the pair kernels take).
///
/// # Safety
/// Lanes `l0..l0 + live` and depths `p0..p0 + kc` must be inside `src`.
pub unsafe fn pack_pair_panel<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    l0: usize,
    live: usize,
    p0: usize,
    kc: usize,
    w: usize,
) {
    let steps = kc.div_ceil(2);
    debug_assert!(dst.len() >= steps * w && live <= w);
    let dst = &mut dst[..steps * w];
    if live < w {
        dst.fill(0.0);
    }
    let top = |x: f32| x.to_bits() >> 16;
    for (s, row) in dst.chunks_exact_mut(w).enumerate() {
        let p = p0 + 2 * s;
        let second = 2 * s + 1 < kc;
        for (l, d) in row[..live].iter_mut().enumerate() {
            // SAFETY: lane `l0 + l` and depths `p`, `p + 1` (when inside `kc`) are in
            // bounds by the caller's contract.
            let (lo, hi) = unsafe {
                let lo = top(src.at(l0 + l, p));
                (
                    lo,
                    if second {
                        top(src.at(l0 + l, p + 1))
                    } else {
                        0
                    },
                )
            };
            *d = f32::from_bits(lo | hi << 16);
        }
    }
}
