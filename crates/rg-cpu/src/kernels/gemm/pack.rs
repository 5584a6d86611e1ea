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

    /// The matrix without its first `i0` rows.
    ///
    /// # Safety
    /// Row `i0` must be inside the matrix the caller described.
    pub unsafe fn rows_after(self, i0: usize) -> Self {
        Mat {
            // SAFETY: forwarded from the caller.
            ptr: unsafe { self.ptr.add(i0 * self.rs) },
            ..self
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
    if src.cs == 1 && live == w && w % TRANSPOSE == 0 {
        // SAFETY: forwarded from the caller.
        unsafe { pack_lanes_transposed(dst, src, l0, p0, kc, w) };
    } else if src.cs == 1 {
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

/// Side of the square blocks [`pack_lanes_transposed`] turns over.
const TRANSPOSE: usize = 8;

/// [`pack_panel`] of `w` live lanes that are contiguous along depth (`src.cs == 1`: a
/// transposed rhs, `g @ wᵀ` in every input gradient), `w` a multiple of [`TRANSPOSE`]:
/// `8 x 8` blocks read as 8 runs of 8 depths and written as 8 runs of 8 lanes, a
/// transpose the compiler does in registers. Lane by lane, each value would be a
/// scalar store `w` values from the last (at 2048 on an Intel Xeon, the transposed
/// operand's packing was the largest cost after the kernel).
///
/// # Safety
/// As [`pack_panel`], with `live == w` and `src.cs == 1`.
unsafe fn pack_lanes_transposed<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    l0: usize,
    p0: usize,
    kc: usize,
    w: usize,
) {
    let lane = |l: usize| {
        // SAFETY: lanes `l0..l0 + w` and depths `p0..p0 + kc` are inside `src`.
        unsafe { std::slice::from_raw_parts(src.ptr.add((l0 + l) * src.rs + p0), kc) }
    };
    let whole = kc - kc % TRANSPOSE;
    for lb in (0..w).step_by(TRANSPOSE) {
        let lanes: [&[E]; TRANSPOSE] = std::array::from_fn(|l| lane(lb + l));
        for pb in (0..whole).step_by(TRANSPOSE) {
            let mut block = [[0.0f32; TRANSPOSE]; TRANSPOSE];
            for (l, run) in lanes.iter().enumerate() {
                let run: &[E; TRANSPOSE] = run[pb..pb + TRANSPOSE].try_into().unwrap();
                for (p, &x) in run.iter().enumerate() {
                    block[p][l] = x.to_f32();
                }
            }
            for (p, values) in block.iter().enumerate() {
                let at = (pb + p) * w + lb;
                dst[at..at + TRANSPOSE].copy_from_slice(values);
            }
        }
        for p in whole..kc {
            for (l, run) in lanes.iter().enumerate() {
                dst[p * w + lb + l] = run[p].to_f32();
            }
        }
    }
}

/// Packs lanes `l0..l0 + len` into `w`-wide panels (as [`pack_panel`] each) when the
/// lanes are contiguous (`src.rs == 1`: a row-major rhs, a transposed lhs).
///
/// # Safety
/// `dst` must hold `len.div_ceil(w) * kc * w` values; lanes `l0..l0 + len` and depths
/// `p0..p0 + kc` must be inside `src`, and `src.rs == 1`.
pub unsafe fn pack_rows<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    lanes: (usize, usize),
    depths: (usize, usize),
    w: usize,
) {
    debug_assert!(src.rs == 1 && dst.len() >= lanes.1.div_ceil(w) * depths.1 * w);
    // The kernels' panel widths as constants, so the copy of one panel row is
    // unrolled: with `w` only known at run time, narrow (6-wide) lhs panels cost a
    // loop set-up per 6 values.
    // SAFETY (all arms): forwarded from the caller.
    unsafe {
        match w {
            6 => pack_rows_w::<E, 6>(dst, src, lanes, depths),
            16 => pack_rows_w::<E, 16>(dst, src, lanes, depths),
            64 => pack_rows_w::<E, 64>(dst, src, lanes, depths),
            _ => pack_rows_any(dst, src, lanes, depths, w),
        }
    }
}

/// Depth rows [`pack_rows_w`] copies together into each panel.
const ROW_GROUP: usize = 8;

/// [`pack_rows`] for a panel width known at compile time. It walks the source a group
/// of [`ROW_GROUP`] depth rows at a time, and within a group panel by panel, so each
/// panel receives `ROW_GROUP * W` contiguous values at once: row by row across every
/// panel would write `W` values per panel, one panel stride (`kc * W`, 64 KiB for the
/// AVX-512 rhs) apart, and those scattered lines cost more than the reads (at 2048 on
/// Zen 3, one thread: packing 9.4% of the time row by row, 4.9% grouped).
///
/// # Safety
/// As [`pack_rows`] with `w == W`.
unsafe fn pack_rows_w<E: Elem, const W: usize>(
    dst: &mut [f32],
    src: Mat<E>,
    (l0, len): (usize, usize),
    (p0, kc): (usize, usize),
) {
    let full = len / W;
    let row = |p: usize| {
        // SAFETY: depth `p0 + p` and lanes `l0..l0 + len` are inside `src`.
        unsafe { std::slice::from_raw_parts(src.ptr.add(l0 + (p0 + p) * src.cs), len) }
    };
    for g in (0..kc).step_by(ROW_GROUP) {
        let group = g..kc.min(g + ROW_GROUP);
        for q in 0..full {
            let panel = &mut dst[(q * kc + g) * W..(q * kc + group.end) * W];
            for (p, to) in group.clone().zip(panel.chunks_exact_mut(W)) {
                let from = &row(p)[q * W..(q + 1) * W];
                to.iter_mut().zip(from).for_each(|(d, &x)| *d = x.to_f32());
            }
        }
        if full * W < len {
            for p in group {
                let to = &mut dst[(full * kc + p) * W..(full * kc + p + 1) * W];
                let from = &row(p)[full * W..];
                to.iter_mut().zip(from).for_each(|(d, &x)| *d = x.to_f32());
                to[from.len()..].fill(0.0);
            }
        }
    }
}

/// [`pack_rows`] for any panel width.
///
/// # Safety
/// As [`pack_rows`].
unsafe fn pack_rows_any<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    (l0, len): (usize, usize),
    (p0, kc): (usize, usize),
    w: usize,
) {
    for p in 0..kc {
        // SAFETY: depth `p0 + p` and lanes `l0..l0 + len` are inside `src`.
        let run = unsafe { std::slice::from_raw_parts(src.ptr.add(l0 + (p0 + p) * src.cs), len) };
        for (q, lanes) in run.chunks(w).enumerate() {
            let row = &mut dst[(q * kc + p) * w..(q * kc + p + 1) * w];
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
