//! The bf16 GEMM: `c = a * b` for bf16 operands read through any strides, f32
//! accumulation and f32 output, on AMX tiles or AVX512_BF16 `vdpbf16ps`.
//!
//! The same blocking as the f32 GEMM (see the parent module), with the operands packed
//! as bf16 in AMX tile order ([`super::bf16_pack`]) instead of widened to f32: half
//! the bytes per packed panel, and the kernels multiply bf16 pairs directly. Depth
//! blocks are `KC` deep, rounded up to whole 32-depth chunks with zeros; C tiles are
//! overwritten in the first depth block and accumulated in later ones. A result
//! wanted in bf16 ([`Rounded`]) is rounded by the last depth block from the kernel's
//! scratch tile, while it is in L1: no f32 result is stored and read back for a
//! separate rounding pass (on an AMX Xeon, bf16 1024 / 2048 with two threads:
//! 1576-1683 -> 1867-1934 / 1794-1954 -> 2001-2065 GFLOP/s).
//!
//! Threads: as in the f32 GEMM, a parallel product is a grid of serial sub-products
//! ([`super::split`]). AMX state is per thread, so each block loads the tile
//! configuration before its first tile and releases the tiles after its last.

use half::bf16;

use super::bf16_pack::{pack_lhs_panel, pack_rhs_panel, CHUNK, LANES};
use super::split::Grid;
use super::{amx, dpbf16, l2, Mat, Out, Rounded, Start};
use crate::kernels::cast::bf16_bits;
#[cfg(test)]
use crate::simd::bf16_support;
use crate::simd::{bf16_level, Bf16Level};

/// Depth of one packed block where the depth is cut: a 32-row lhs panel (32 KiB of
/// bf16) stays in L1.
pub(super) const KC: usize = 512;
/// Lhs rows packed per depth block: large, because each block of rows repacks the
/// whole rhs (a 2048 x 512 bf16 lhs block is 2 MiB, within L3).
pub(super) const MC: usize = 2048;
/// Rhs columns per packed block where the L2 size is not known: see [`nc`].
const NC_DEFAULT: usize = 1024;
/// The fewest rhs columns a one-block depth may leave the packed rhs block.
const ONE_BLOCK_MIN_COLUMNS: usize = 256;

/// The deepest product computed as one depth block: the deepest whose rhs block
/// (half of the L2, see [`nc`]) still holds 256 columns (2048 on a 2 MiB L2, 1024 on
/// Zen 4's 1 MiB; `KC` where the L2 size is unknown). One block writes C once and
/// never reads it back, where each further depth block loads and stores every C tile
/// in f32, which costs more than an lhs panel outgrowing L1 (AMX Xeon, two threads:
/// GPT-2's LM head forward `[256, 768] x [768, 50257]` 649-689 GFLOP/s in two blocks,
/// 1319-1359 in one; square 2048 1918-1989 in four, 2013-2172 in one). Past that the
/// rhs block gets too narrow to reuse each lhs panel: GPT-2's MLP projection forward
/// (depth 3072, 160 columns) ran at 1027-1060 GFLOP/s in one block against 1295-1342
/// in six.
pub(super) fn one_block_max() -> usize {
    l2().map_or(KC, |l2| {
        (l2 / 2 / (ONE_BLOCK_MIN_COLUMNS * 2) / CHUNK * CHUNK).max(KC)
    })
}

/// The depth of the blocks a product of depth `k` is cut into.
pub(super) fn depth_block(k: usize) -> usize {
    if k <= one_block_max() {
        k.max(1)
    } else {
        KC
    }
}

/// Rhs columns per packed block for `kern` and depth blocks of `kc`: as in the f32
/// GEMM, the `kc x nc` bf16 block takes half of a core's L2 (the lhs panel and the C
/// tiles stream through the other half), in whole tiles of the kernel, so no block
/// ends in a partial tile. Zen 4's 1 MiB L2 at depth 512: 480 columns for the 8x48
/// `vdpbf16ps` kernel; 1024 columns (1 MiB) had bf16 2048 / 4096 at 374-379 / 380-384
/// GFLOP/s, 480 at 390-396 / 397-407 (best of 5, three rounds alternating). A 2 MiB
/// L2 (Sapphire and Emerald Rapids) at depth 512: 1024 columns for AMX's 32-column
/// tiles.
pub(super) fn nc(kern: Bf16Kernel, kc: usize) -> usize {
    let columns = l2().map_or(NC_DEFAULT, |l2| {
        (l2 / 2 / (kc.next_multiple_of(CHUNK) * 2)).clamp(128, 2048)
    });
    (columns / kern.nr()).max(1) * kern.nr()
}
/// Largest `MR * NR` of the two kernels (the scratch tile for partial edges).
const MAX_TILE: usize = 1536;
/// A scratch tile, on cache lines (zeroed once per block, not per tile).
#[repr(C, align(64))]
struct Scratch([f32; MAX_TILE]);
const _: () = assert!(amx::MR * amx::NR <= MAX_TILE && dpbf16::MR * dpbf16::NR <= MAX_TILE);

/// A bf16 micro-kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tiles, 32 x 32 C tiles ([`amx`]).
    Amx,
    /// AVX512_BF16 `vdpbf16ps`, 8 x 48 C tiles ([`dpbf16`]).
    Dot,
}

impl Bf16Kernel {
    /// What benchmarks call this engine.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "rg-gemm-amx-bf16",
            Bf16Kernel::Dot => "rg-gemm-avx512bf16",
        }
    }

    /// The kernel `RG_CPU_BF16` and the CPU select, or `None` where bf16 products
    /// should be widened for the f32 GEMM.
    pub fn best() -> Option<Bf16Kernel> {
        match bf16_level() {
            Bf16Level::Amx => Some(Bf16Kernel::Amx),
            Bf16Level::Dot if has_dot() => Some(Bf16Kernel::Dot),
            _ => None,
        }
    }

    /// Every kernel this machine can run, whatever `RG_CPU_BF16` says (for the tests
    /// comparing them).
    #[cfg(test)]
    pub fn available() -> Vec<Bf16Kernel> {
        let mut v = Vec::new();
        if bf16_support() == Bf16Level::Amx {
            v.push(Bf16Kernel::Amx);
        }
        if bf16_support() >= Bf16Level::Dot && has_dot() {
            v.push(Bf16Kernel::Dot);
        }
        v
    }

    fn mr(self) -> usize {
        match self {
            Bf16Kernel::Amx => amx::MR,
            Bf16Kernel::Dot => dpbf16::MR,
        }
    }

    fn nr(self) -> usize {
        match self {
            Bf16Kernel::Amx => amx::NR,
            Bf16Kernel::Dot => dpbf16::NR,
        }
    }

    /// Rows of the packed lhs are a multiple of this (whole panels and whole tiles).
    fn row_align(self) -> usize {
        self.mr().max(LANES)
    }

    /// Prepares the calling thread to run tiles.
    ///
    /// # Safety
    /// The kernel must be one of [`Bf16Kernel::available`].
    unsafe fn begin(self) {
        if self == Bf16Kernel::Amx {
            // SAFETY: AMX is available (caller).
            unsafe { amx::configure() };
        }
    }

    /// Undoes [`Bf16Kernel::begin`].
    ///
    /// # Safety
    /// As [`Bf16Kernel::begin`].
    unsafe fn end(self) {
        if self == Bf16Kernel::Amx {
            // SAFETY: AMX is available (caller).
            unsafe { amx::release() };
        }
    }

    /// One tile (see [`amx::kernel`] and [`dpbf16::kernel`]).
    ///
    /// # Safety
    /// As the kernel's, and [`Bf16Kernel::begin`] must have run on this thread.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(
        self,
        kcp: usize,
        a: *const u16,
        b: *const u16,
        panel: usize,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                Bf16Kernel::Amx => amx::kernel(kcp, a, b, panel, c, ldc, acc),
                Bf16Kernel::Dot => dpbf16::kernel(kcp, a, b, panel, c, ldc, acc),
            }
        }
    }
}

fn has_dot() -> bool {
    is_x86_feature_detected!("avx512bf16")
}

/// 64-byte aligned bf16 scratch, so packed tiles start on cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

thread_local! {
    /// Each thread's packing buffers, kept between products (as the f32 GEMM's).
    static SCRATCH: std::cell::Cell<(Vec<Line>, Vec<Line>)> = std::cell::Cell::default();
}

/// At least `len` bf16 of `buf`, as a slice.
fn grown(buf: &mut Vec<Line>, len: usize) -> &mut [u16] {
    let lines = len.div_ceil(32);
    if buf.len() < lines {
        *buf = vec![Line([0; 32]); lines];
    }
    // SAFETY: `Line` is `repr(C)` over 32 u16, so the lines are contiguous u16.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u16>(), buf.len() * 32) }
}

/// `c = a * b` (see the module docs). Every element of the `m x n` result is written
/// (zeros when `k == 0`), so `c` may start uninitialised; with `rounded`, the result
/// is written there, rounded to bf16, and `c` is scratch for the running sums.
///
/// # Safety
/// `kern` must be one of [`Bf16Kernel::available`]. `a` must be valid for every
/// element of an `m x k` matrix through its strides, `b` for `k x n`, and `c` (and
/// `rounded`) for writes of `m` rows of `n` values `ldc` apart (`ldc >= n`), not
/// overlapping `a`, `b` or each other, with nothing else touching them meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    kern: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    a: Mat<bf16>,
    b: Mat<bf16>,
    bias: Option<&[f32]>,
    (c, ldc): (*mut f32, usize),
    rounded: Option<Rounded>,
    parallel: bool,
) {
    if k == 0 {
        if let Some(r) = rounded {
            // SAFETY: forwarded from the caller.
            unsafe { zero_or_bias_rounded(r, (m, n), bias, ldc) };
            return;
        }
    }
    // SAFETY: forwarded from the caller.
    if unsafe { super::handle_empty((m, n, k), bias, c, ldc) } {
        return;
    }
    if parallel {
        let (tile, threads) = ((kern.row_align(), kern.nr()), rayon::current_num_threads());
        if let Some(grid) = Grid::choose((m, n), tile, true, threads) {
            let base = c as usize;
            // SAFETY: forwarded from the caller; a task's C starts inside `c`, and the
            // same offset into `rounded` is the same element.
            unsafe {
                grid.run(k, (a, b), bias, (c, ldc), |dims, a, b, bias, sub| {
                    let offset = (sub as usize - base) / std::mem::size_of::<f32>();
                    let r = rounded.map(|r| r.at(offset));
                    gemm(kern, dims, a, b, bias, (sub, ldc), r, false)
                })
            };
            return;
        }
    }
    let kc_block = depth_block(k);
    let kc_max = kc_block.min(k).next_multiple_of(CHUNK);
    let mc_max = MC.min(m).next_multiple_of(kern.row_align());
    let nc_block = nc(kern, kc_block);
    let nc_max = nc_block.min(n).next_multiple_of(kern.nr());
    let (mut abuf, mut bbuf) = SCRATCH.take();
    let (apack, bpack) = (
        grown(&mut abuf, mc_max * kc_max),
        grown(&mut bbuf, nc_max * kc_max),
    );
    for p0 in (0..k).step_by(kc_block) {
        let kc = kc_block.min(k - p0);
        let kcp = kc.next_multiple_of(CHUNK);
        for i0 in (0..m).step_by(MC) {
            let mc = MC.min(m - i0);
            let panels = mc.next_multiple_of(kern.row_align()) / LANES;
            // SAFETY: rows `i0..i0 + mc` and depths `p0..p0 + kc` are inside `a`.
            pack(&mut apack[..panels * kcp * LANES], kcp, |dst, q| unsafe {
                let live = LANES.min(mc.saturating_sub(q * LANES));
                pack_lhs_panel(dst, a, i0 + q * LANES, live, p0, kc)
            });
            for j0 in (0..n).step_by(nc_block) {
                let nc = nc_block.min(n - j0);
                let panels = nc.next_multiple_of(kern.nr()) / LANES;
                // SAFETY: columns `j0..j0 + nc` and depths `p0..p0 + kc` are inside `b`.
                pack(&mut bpack[..panels * kcp * LANES], kcp, |dst, q| unsafe {
                    let live = LANES.min(nc.saturating_sub(q * LANES));
                    pack_rhs_panel(dst, b, j0 + q * LANES, live, p0, kc)
                });
                let last = p0 + kc == k;
                let block = Block {
                    kern,
                    kcp,
                    mc,
                    nc,
                    ldc,
                    start: Start::of_block(p0, bias, j0, nc),
                    // SAFETY: `(i0, j0)` is inside the result.
                    rounded: rounded
                        .filter(|_| last)
                        .map(|r| unsafe { r.at(i0 * ldc + j0) }),
                };
                // SAFETY: the `mc x nc` block of `c` at `(i0, j0)` is inside `c`.
                let cblock = Out(unsafe { c.add(i0 * ldc + j0) });
                block.compute(apack, bpack, cblock);
            }
        }
    }
    SCRATCH.set((abuf, bbuf));
}

/// Fills `dst` panel by panel (`kcp * 16` values each) with `one(panel, index)`.
fn pack(dst: &mut [u16], kcp: usize, one: impl Fn(&mut [u16], usize)) {
    dst.chunks_mut(kcp * LANES)
        .enumerate()
        .for_each(|(q, d)| one(d, q));
}

/// One packed `mc x nc` block of C over `kcp` depths.
struct Block<'a> {
    kern: Bf16Kernel,
    kcp: usize,
    mc: usize,
    nc: usize,
    ldc: usize,
    start: Start<'a>,
    /// The block's corner of the rounded result, on the last depth block.
    rounded: Option<Rounded>,
}

impl Block<'_> {
    /// Runs every tile of the block, the rhs panels sweeping past each lhs panel.
    fn compute(&self, apack: &[u16], bpack: &[u16], c: Out) {
        let (mr, nr) = (self.kern.mr(), self.kern.nr());
        // SAFETY: the kernel is available (the GEMM's contract); begin/end pair up on
        // this thread around the block's tiles.
        unsafe { self.kern.begin() };
        let mut scratch = Scratch([0.0; MAX_TILE]);
        for ti in 0..self.mc.div_ceil(mr) {
            for tj in 0..self.nc.div_ceil(nr) {
                self.tile((apack, bpack), &mut scratch, c, (ti * mr, tj * nr));
            }
        }
        unsafe { self.kern.end() };
    }

    /// The tile at `(i, j)` of the block: straight into `c` when whole, through a
    /// scratch tile at the block's right and bottom edges.
    fn tile(
        &self,
        (apack, bpack): (&[u16], &[u16]),
        scratch: &mut Scratch,
        c: Out,
        (i, j): (usize, usize),
    ) {
        let scratch = &mut scratch.0;
        let (mr, nr, kcp) = (self.kern.mr(), self.kern.nr(), self.kcp);
        let panel = kcp * LANES;
        // Row `i` is row `i % 16` of lhs panel `i / 16`; column `j` starts rhs panel
        // `j / 16` (`j` is a multiple of `nr`, itself a multiple of 16).
        let a = apack[(i / LANES) * panel + (i % LANES) * CHUNK..].as_ptr();
        let b = bpack[(j / LANES) * panel..].as_ptr();
        let (rows, cols) = (mr.min(self.mc - i), nr.min(self.nc - j));
        // SAFETY: `(i, j)` is inside the block, which is inside `c`.
        let ct = unsafe { c.ptr().add(i * self.ldc + j) };
        if let Some(r) = self.rounded {
            // SAFETY: as below, into the scratch tile; the live part of the tile is
            // inside `c` and the rounded result.
            unsafe {
                self.kern
                    .run(kcp, a, b, panel, scratch.as_mut_ptr(), nr, false);
                let dst = r.at(i * self.ldc + j).0;
                store_rounded(
                    self.start,
                    &scratch[..],
                    nr,
                    (ct, dst, self.ldc),
                    (rows, cols),
                    j,
                );
            }
            return;
        }
        if rows == mr && cols == nr {
            // SAFETY: the packed block holds whole tiles (rows and columns padded), and
            // the whole C tile is inside `c`.
            unsafe {
                let acc = self.start.prepare_tile(ct, self.ldc, (mr, nr), j);
                self.kern.run(kcp, a, b, panel, ct, self.ldc, acc)
            };
            return;
        }
        // SAFETY: as above, into the `mr x nr` scratch tile with row stride `nr`; the
        // live `rows x cols` part of the tile is inside `c`.
        unsafe {
            self.kern
                .run(kcp, a, b, panel, scratch.as_mut_ptr(), nr, false);
            self.start
                .store_partial(&scratch[..], nr, ct, self.ldc, (rows, cols), j);
        }
    }
}

/// Rounds the live `rows x cols` of a scratch tile (row stride `nr`) plus where the
/// block starts from (nothing, the bias from column `j`, or C's running sums at `ct`)
/// into `dst`; C and `dst` rows are `ldc` apart.
///
/// # Safety
/// The live part of the tile must be valid: C for reads, `dst` for writes. The CPU must
/// have AVX-512F and BW (every CPU with a bf16 kernel has).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn store_rounded(
    start: Start<'_>,
    scratch: &[f32],
    nr: usize,
    (ct, dst, ldc): (*const f32, *mut bf16, usize),
    (rows, cols): (usize, usize),
    j: usize,
) {
    for (r, src) in scratch.chunks_exact(nr).take(rows).enumerate() {
        // SAFETY: row `r`'s live columns are inside both (caller).
        let out = unsafe { std::slice::from_raw_parts_mut(dst.add(r * ldc), cols) };
        let src = &src[..cols];
        let round = |v: f32| bf16::from_bits(bf16_bits(v));
        match start {
            Start::Zero => out.iter_mut().zip(src).for_each(|(d, s)| *d = round(*s)),
            Start::Bias(bias) => out
                .iter_mut()
                .zip(src.iter().zip(&bias[j..j + cols]))
                .for_each(|(d, (s, b))| *d = round(s + b)),
            Start::Accumulate => {
                // SAFETY: as above.
                let sums = unsafe { std::slice::from_raw_parts(ct.add(r * ldc), cols) };
                out.iter_mut()
                    .zip(src.iter().zip(sums))
                    .for_each(|(d, (s, c))| *d = round(c + s));
            }
        }
    }
}

/// The rounded result of a product with no depth: the bias on every row, or zeros.
///
/// # Safety
/// `dst` must be valid for writes of `m` rows of `n` values `ldc` apart.
unsafe fn zero_or_bias_rounded(
    dst: Rounded,
    (m, n): (usize, usize),
    bias: Option<&[f32]>,
    ldc: usize,
) {
    for i in 0..m {
        // SAFETY: row `i` is inside the result (caller).
        let row = unsafe { std::slice::from_raw_parts_mut(dst.0.add(i * ldc), n) };
        match bias {
            Some(bias) => row
                .iter_mut()
                .zip(bias)
                .for_each(|(d, b)| *d = bf16::from_bits(bf16_bits(*b))),
            None => row.fill(bf16::ZERO),
        }
    }
}
