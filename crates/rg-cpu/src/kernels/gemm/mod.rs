//! A packed, cache-blocked f32 GEMM (the GotoBLAS/BLIS structure) for strided operands
//! of f32 or bf16, accumulating in f32: `c = a * b`, `a` `[m, k]`, `b` `[k, n]`, `c`
//! row-major `[m, n]` with row stride `ldc`.
//!
//! Blocking. A depth up to [`one_block_max`] is one block; a deeper one is cut into
//! blocks of `KC`. For each block, up to `MC` lhs rows are
//! packed (`pack::pack_panel`, `MR`-row panels) and then, `NC` columns at a time, the
//! rhs block (`NR`-column panels). The micro-kernel computes one `MR x NR` tile of C
//! from one lhs panel (`MR x KC`, kept in L1 while it sweeps the rhs panels) and one
//! rhs panel (the `KC x NC` rhs block stays in L2). C tiles are overwritten in the
//! first depth block and accumulated in later ones, so `c` needs no zeroing. With a
//! bias (a linear layer's), the first depth block starts each tile from the bias row
//! instead of zero, so the bias costs no pass over `c` of its own.
//!
//! Threads. With `parallel`, the product is cut into a grid of serial sub-products,
//! one rayon task each ([`split`]). Without it everything runs on the calling thread
//! (small products, or one product of a batch that is itself spread over the pool).
//!
//! Kernels: the AVX-512 one where the CPU has it, else the AVX2 (+FMA) one (in both
//! cases unless `RG_CPU_SIMD` caps the level below it), the NEON one on aarch64 (`RG_CPU_SIMD=base` leaves it out), the
//! SIMD128 one in wasm32 builds with `+simd128`, else a portable one the compiler
//! vectorises.
//!
//! bf16 products on CPUs with AMX or AVX512_BF16 use [`bf16`] instead: the same
//! blocking over operands packed as bf16, multiplied by AMX tiles or `vdpbf16ps`.

#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
mod avx512;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
pub mod bf16;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
mod bf16_pack;
#[cfg(all(test, target_arch = "x86_64", rg_cpu_avx512))]
mod bf16_tests;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
mod dpbf16;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_bf16;
mod pack;
mod portable;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
mod split;
#[cfg(test)]
mod tests;

use split::Grid;

pub use pack::{Elem, Mat};

/// Depth of one packed block where the depth is cut: an `MR x KC` lhs panel fits L1
/// beside the rhs stream.
const KC: usize = 256;
/// Lhs rows packed per depth block (the packed lhs block lives in L3).
const MC: usize = 1536;
/// Rhs columns per packed block where the L2 size is not known: see [`nc`].
const NC_DEFAULT: usize = 512;
/// The fewest rhs columns a one-block depth may leave the packed rhs block.
const ONE_BLOCK_MIN_COLUMNS: usize = 256;

/// The core's L2 size, read once (both GEMMs size their blocks by it).
fn l2() -> Option<usize> {
    use std::sync::OnceLock;
    static L2: OnceLock<Option<usize>> = OnceLock::new();
    *L2.get_or_init(l2_bytes)
}

/// The deepest product computed as one depth block: the deepest whose rhs block (half
/// of the L2, see [`nc`]) still holds 256 columns (1024 on a 2 MiB L2, 512 on Zen 4's
/// 1 MiB; `KC` where the L2 size is unknown), as in the bf16 GEMM. One block writes C
/// once, where each further depth block loads and stores every C tile again: in the
/// GPT-2 B4xT64 f32 step (Intel Xeon with AMX, family 6 model 167, 2 threads) the LM
/// head forward `[256, 768] x [768, 50257]` took 76 ms in three blocks and 67 in one,
/// and the step's products 4.89 s against 4.75 over 6 steps.
fn one_block_max() -> usize {
    l2().map_or(KC, |l2| (l2 / 2 / (ONE_BLOCK_MIN_COLUMNS * 4)).max(KC))
}

/// The depth of the blocks a product of depth `k` is cut into.
fn depth_block(k: usize) -> usize {
    if k <= one_block_max() {
        k.max(1)
    } else {
        KC
    }
}

/// Rhs columns per packed block at depth blocks of `kc`, for a kernel `nr` columns
/// wide: the `kc x nc` f32 block takes half of a core's L2 (128 to 1024 columns, whole
/// tiles), leaving the other half to the lhs panel and C tiles streaming through. 512
/// columns (512 KiB) on Zen 4's 1 MiB L2 at `KC`; Zen 3's 512 KiB L2 ran at 70-75
/// GFLOP/s per core with 512 columns and 81-86 with 256 (OpenBLAS: 81, same run).
fn nc(kc: usize, nr: usize) -> usize {
    let columns = l2().map_or(NC_DEFAULT, |l2| (l2 / 2 / (kc * 4)).clamp(128, 1024));
    (columns / nr * nr).max(nr)
}

/// The L2 data cache of one core, in bytes, as Linux reports it (`None` elsewhere).
fn l2_bytes() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir).ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name)).ok();
        let level = read("level")?;
        let kind = read("type")?;
        if level.trim() != "2" || kind.trim() == "Instruction" {
            return None;
        }
        let size = read("size")?;
        let size = size.trim();
        let (digits, scale) = match size.strip_suffix('K') {
            Some(d) => (d, 1024),
            None => match size.strip_suffix('M') {
                Some(d) => (d, 1024 * 1024),
                None => (size, 1),
            },
        };
        Some(digits.parse::<usize>().ok()? * scale)
    })
}
/// Largest `MR * NR` of any kernel (the scratch tile for partial edges).
const MAX_TILE: usize = 512;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
const _: () = assert!(avx512::MR * avx512::NR <= MAX_TILE);
#[cfg(target_arch = "x86_64")]
const _: () = assert!(avx2::MR * avx2::NR <= MAX_TILE);
#[cfg(target_arch = "aarch64")]
const _: () = assert!(neon::MR * neon::NR <= MAX_TILE && neon_bf16::MR * neon_bf16::NR <= MAX_TILE);
const _: () = assert!(portable::MR * portable::NR <= MAX_TILE);
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const _: () = assert!(simd128::MR * simd128::NR <= MAX_TILE);

/// One micro-kernel: `c[i][j] (+)= sum_p a[i][p] * b[p][j]` over a full tile, from an
/// lhs panel and a packed rhs panel, `c` with row stride `ldc`, overwritten unless
/// `acc`. The first argument counts the panels' depth steps (pairs of depths for a
/// kernel with `depth_pairs`).
type KernelFn = unsafe fn(usize, LhsPanel, *const f32, *mut f32, usize, bool);

/// Where a micro-kernel reads its `MR` lhs rows: row `i`, depth `p` is at
/// `ptr + i * lane + p * depth`, for rows below `rows` (later rows repeat the last).
/// A packed panel has strides `(1, MR)`; a row-major lhs read in place `(lda, 1)`.
#[derive(Clone, Copy)]
pub struct LhsPanel {
    ptr: *const f32,
    lane: usize,
    depth: usize,
    rows: usize,
}

/// A micro-kernel and its tile shape.
#[derive(Clone, Copy)]
pub struct Kernel {
    mr: usize,
    nr: usize,
    run: KernelFn,
    /// Whether the kernel reads a row-major f32 lhs in place (any `LhsPanel` strides).
    in_place_lhs: bool,
    /// Whether the panels hold bf16 pairs of consecutive depths in each 32-bit slot
    /// (`pack::pack_pair_panel`) instead of one f32 per depth: for kernels whose
    /// instruction multiplies such pairs (`bfdot`). Only for bf16 operands.
    depth_pairs: bool,
    name: &'static str,
}

impl Kernel {
    /// The AVX-512 kernel, when the CPU has AVX-512F and the vector level allows it.
    pub fn avx512() -> Option<Kernel> {
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        if crate::simd::level() == crate::simd::Level::Avx512 {
            // `level` reports Avx512 only after `is_x86_feature_detected!("avx512f")`.
            return Some(Kernel {
                mr: avx512::MR,
                nr: avx512::NR,
                run: avx512::kernel::<{ avx512::MR }, { avx512::NV }>,
                in_place_lhs: true,
                depth_pairs: false,
                name: "rg-gemm-avx512",
            });
        }
        None
    }

    /// The AVX2 kernel, when the CPU has AVX2 and FMA but no AVX-512 kernel applies
    /// (and `RG_CPU_SIMD` does not cap the level below AVX2).
    pub fn avx2() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if crate::simd::level() >= crate::simd::Level::Avx2 && is_x86_feature_detected!("fma") {
            return Some(Kernel {
                mr: avx2::MR,
                nr: avx2::NR,
                run: avx2::kernel,
                in_place_lhs: true,
                depth_pairs: false,
                name: "rg-gemm-avx2",
            });
        }
        None
    }

    /// The NEON kernel on aarch64 (NEON is part of that baseline), unless
    /// `RG_CPU_SIMD=base` asks for the portable code.
    pub fn neon() -> Option<Kernel> {
        #[cfg(target_arch = "aarch64")]
        if crate::simd::neon() {
            return Some(Kernel {
                mr: neon::MR,
                nr: neon::NR,
                run: neon::kernel,
                in_place_lhs: false,
                depth_pairs: false,
                name: "rg-gemm-neon",
            });
        }
        None
    }

    /// The aarch64 `bfdot` kernel for bf16 operands, when the CPU has the BF16
    /// extension (and neither `RG_CPU_SIMD=base` nor `RG_CPU_BF16=widen` rules it out).
    pub fn neon_bfdot() -> Option<Kernel> {
        #[cfg(target_arch = "aarch64")]
        if crate::simd::neon_bf16() {
            return Some(Kernel {
                mr: neon_bf16::MR,
                nr: neon_bf16::NR,
                run: neon_bf16::kernel,
                in_place_lhs: false,
                depth_pairs: true,
                name: "rg-gemm-neon-bfdot",
            });
        }
        None
    }

    /// The WebAssembly SIMD128 kernel, in wasm32 builds with `+simd128`.
    pub fn simd128() -> Option<Kernel> {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Some(Kernel {
            mr: simd128::MR,
            nr: simd128::NR,
            run: simd128::kernel,
            in_place_lhs: true,
            depth_pairs: false,
            name: "rg-gemm-simd128",
        });
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        None
    }

    /// The portable kernel, available everywhere.
    pub fn portable() -> Kernel {
        Kernel {
            mr: portable::MR,
            nr: portable::NR,
            run: portable::kernel,
            in_place_lhs: false,
            depth_pairs: false,
            name: "rg-gemm-portable",
        }
    }

    /// What benchmarks and logs call this kernel.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this kernel reads an f32 lhs with unit column stride where it is, so a
    /// bf16 one is worth widening to f32 once beforehand (see `matmul`).
    pub fn reads_f32_lhs_in_place(&self) -> bool {
        self.in_place_lhs && !self.depth_pairs
    }

    /// The fastest kernel for this CPU.
    pub fn best() -> Kernel {
        Kernel::native().unwrap_or_else(Kernel::portable)
    }

    /// The hand-written kernel for this CPU's vector unit (AVX-512, AVX2, NEON or
    /// SIMD128), if any.
    pub fn native() -> Option<Kernel> {
        Kernel::avx512()
            .or_else(Kernel::avx2)
            .or_else(Kernel::neon)
            .or_else(Kernel::simd128)
    }
}

/// Products with no output, or with an empty reduction (all zeros), which the packed
/// GEMMs never see: returns whether `c` is done.
///
/// # Safety
/// `c` must be valid for writes of `m` rows of `n` values `ldc` apart.
pub(crate) unsafe fn handle_empty(
    (m, n, k): (usize, usize, usize),
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    if k > 0 {
        return false;
    }
    for i in 0..m {
        // SAFETY: row `i` of `c` is valid by the caller's contract.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) };
        match bias {
            Some(bias) => row.copy_from_slice(&bias[..n]),
            None => row.fill(0.0),
        }
    }
    true
}

/// Whether a product of this size is worth splitting across the rayon pool: below
/// about 2^20 multiply-adds the pool's wake-ups cost more than they save.
pub fn worth_threads(m: usize, n: usize, k: usize) -> bool {
    rayon::current_num_threads() > 1 && m.saturating_mul(n).saturating_mul(k) >= 1 << 20
}

/// An output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint tiles of `c` (see `compute`) or disjoint depth rows of
// a packed block (see `pack_block`).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Where a product rounded to bf16 goes: `m` rows of `n` values, `ldc` apart as C's
/// (a batch of them, one product after another, for `matmul`). The bf16 GEMM's last
/// depth block rounds its tiles straight into it (from the kernel's scratch tile, while
/// it is in L1), so C holds only the running sums of the earlier depth blocks, and none
/// of it is touched when the depth fits one block.
#[derive(Clone, Copy)]
pub struct Rounded(pub *mut half::bf16);
// SAFETY: tasks write disjoint tiles, as they do of C.
unsafe impl Send for Rounded {}
// SAFETY: as above.
unsafe impl Sync for Rounded {}

impl Rounded {
    /// The same element as `c + offset` is of C.
    ///
    /// # Safety
    /// The element must be inside the result.
    pub(crate) unsafe fn at(self, offset: usize) -> Rounded {
        // SAFETY: forwarded from the caller.
        Rounded(unsafe { self.0.add(offset) })
    }
}

/// 64-byte aligned f32 scratch, so packed panels start on cache lines.
#[derive(Default)]
struct Packed {
    lines: Vec<Line>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// Each thread's packing buffers, kept between products: a batch of small products
    /// would otherwise spend much of its time allocating and zeroing fresh pages. At
    /// most `MC` rows of the deepest one-block depth plus half the L2 (7 MiB on a 2 MiB
    /// L2, where the lhs is packed) per thread that has run a product.
    static SCRATCH: std::cell::Cell<(Packed, Packed)> = std::cell::Cell::default();
}

impl Packed {
    /// At least `len` f32s. Taken from this thread's cache (a nested or concurrent
    /// product on the same thread finds it empty and allocates its own).
    fn grow(&mut self, len: usize) {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines = vec![Line([0.0; 16]); lines];
        }
    }

    fn as_mut(&mut self) -> &mut [f32] {
        let len = self.lines.len() * 16;
        // SAFETY: `Line` is `repr(C)` over 16 f32s, so the lines are `len` contiguous f32.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), len) }
    }
}

/// `c = a * b`, plus `bias` (`n` values) on every row when given (see the module
/// docs). Every element of the `m x n` result is written (zeros, or the bias, when
/// `k == 0`), so `c` may start uninitialised.
///
/// # Safety
/// `a` must be valid for every element of an `m x k` matrix through its strides, `b`
/// for `k x n`, and `c` for writes of `m` rows of `n` values `ldc` apart (`ldc >= n`),
/// not overlapping `a` or `b`, with nothing else touching `c` meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm<A: Elem, B: Elem>(
    kern: Kernel,
    (m, n, k): (usize, usize, usize),
    a: Mat<A>,
    b: Mat<B>,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
    parallel: bool,
) {
    // SAFETY: forwarded from the caller.
    if unsafe { handle_empty((m, n, k), bias, c, ldc) } {
        return;
    }
    let (mr, nr) = (kern.mr, kern.nr);
    debug_assert!(
        !kern.depth_pairs || !(A::IS_F32 || B::IS_F32),
        "pair kernels take bf16 operands"
    );
    let in_place = kern.in_place_lhs && reads_in_place(&a);
    if parallel {
        let threads = rayon::current_num_threads();
        if let Some(grid) = Grid::choose((m, n), (mr, nr), !in_place, threads) {
            // SAFETY: forwarded from the caller.
            unsafe {
                grid.run(k, (a, b), bias, (c, ldc), |dims, a, b, bias, c| {
                    gemm(kern, dims, a, b, bias, c, ldc, false)
                })
            };
            return;
        }
    }
    let kc_step = depth_block(k);
    let mc_max = m.min(MC).next_multiple_of(mr);
    let nc_step = nc(kc_step, nr);
    let nc_max = n.min(nc_step).next_multiple_of(nr);
    let (mut apack, mut bpack) = SCRATCH.take();
    apack.grow(if in_place { 0 } else { mc_max * kc_step });
    bpack.grow(kc_step * nc_max);
    let bt = b.t();
    for p0 in (0..k).step_by(kc_step) {
        let kc = kc_step.min(k - p0);
        // Only the last depth block can be odd (`KC` is even), so a pair never
        // straddles two blocks.
        let steps = if kern.depth_pairs { kc.div_ceil(2) } else { kc };
        let pack = Packing {
            p0,
            kc,
            pairs: kern.depth_pairs,
        };
        for i0 in (0..m).step_by(MC) {
            let mc = MC.min(m - i0);
            let lhs = if in_place {
                // SAFETY: `(i0, p0)` is inside `a`, and `in_place` only holds for f32.
                Lhs::InPlace(unsafe { a.ptr.add(i0 * a.rs + p0).cast::<f32>() }, a.rs)
            } else {
                // SAFETY: rows `i0..i0 + mc` and depths `p0..p0 + kc` are inside `a`.
                unsafe { pack_block(apack.as_mut(), a, (i0, mc), mr, pack) };
                Lhs::Packed(apack.as_mut())
            };
            for j0 in (0..n).step_by(nc_step) {
                let nc = nc_step.min(n - j0);
                // SAFETY: columns `j0..j0 + nc` and depths `p0..p0 + kc` are inside `b`.
                unsafe { pack_block(bpack.as_mut(), bt, (j0, nc), nr, pack) };
                let block = Block {
                    kern,
                    kc: steps,
                    mc,
                    nc,
                    ldc,
                    start: Start::of_block(p0, bias, j0, nc),
                };
                // SAFETY: the `mc x nc` block of `c` at `(i0, j0)` is inside `c`.
                let cblock = Out(unsafe { c.add(i0 * ldc + j0) });
                block.compute(&lhs, bpack.as_mut(), cblock);
            }
        }
    }
    SCRATCH.set((apack, bpack));
}

/// Whether the kernels read the lhs where it is instead of packing it: an f32 lhs with
/// unit column stride. An `MR`-row panel read in place stays in L1 while the rhs panels
/// stream past it, as a packed one does, so packing it would only add a copy: at the
/// depths of small models' training (128-512) that copy cost a quarter of the
/// products' time. Rows a multiple of 4 KiB apart share L1 sets, but `MR` rows of one
/// panel fit in the sets' ways: at 2048 x 2048 (8 KiB rows), 2 threads, reading in
/// place ran at 292 GFLOP/s against 262 packed (Intel Xeon Emerald Rapids, median of
/// 5 alternating runs), and at the 256-row, 3072-deep input gradients of GPT-2's MLP
/// at 77-99 against 78-87 (AMD EPYC Zen 3).
fn reads_in_place<A: Elem>(a: &Mat<A>) -> bool {
    A::IS_F32 && a.cs == 1
}

/// The lhs of one block: packed panels, or a row-major f32 matrix read in place
/// (pointer to the block's first element, and the row stride).
enum Lhs<'a> {
    Packed(&'a [f32]),
    InPlace(*const f32, usize),
}

// SAFETY: the in-place pointer is a read-only view the GEMM's caller keeps valid.
unsafe impl Sync for Lhs<'_> {}

impl Lhs<'_> {
    /// Panel `q` (rows `q * mr..`) of a block with `mc` rows, over depth `kc`.
    fn panel(&self, q: usize, mr: usize, mc: usize, kc: usize) -> LhsPanel {
        match *self {
            Lhs::Packed(p) => LhsPanel {
                ptr: p[q * mr * kc..(q + 1) * mr * kc].as_ptr(),
                lane: 1,
                depth: mr,
                rows: mr,
            },
            Lhs::InPlace(ptr, rs) => LhsPanel {
                // SAFETY: row `q * mr` is inside the block.
                ptr: unsafe { ptr.add(q * mr * rs) },
                lane: rs,
                depth: 1,
                rows: mr.min(mc - q * mr),
            },
        }
    }
}

/// The depth range of one packing pass and how it is done.
#[derive(Clone, Copy)]
struct Packing {
    p0: usize,
    kc: usize,
    /// bf16 depth pairs per slot (see `Kernel::depth_pairs`).
    pairs: bool,
}

/// Packs lanes `l0..l0 + len` of `src` (depths `p0..p0 + kc`) into `w`-wide panels.
///
/// # Safety
/// As [`pack::pack_panel`] for every lane in the range.
unsafe fn pack_block<E: Elem>(
    dst: &mut [f32],
    src: Mat<E>,
    (l0, len): (usize, usize),
    w: usize,
    Packing { p0, kc, pairs }: Packing,
) {
    if pairs {
        let steps = kc.div_ceil(2);
        let dst = &mut dst[..len.div_ceil(w) * steps * w];
        let one = |(q, panel): (usize, &mut [f32])| {
            let live = w.min(len - q * w);
            // SAFETY: panel `q`'s live lanes are inside the range the caller vouched for.
            unsafe { pack::pack_pair_panel(panel, src, l0 + q * w, live, p0, kc, w) }
        };
        dst.chunks_mut(steps * w).enumerate().for_each(one);
        return;
    }
    let panels = len.div_ceil(w);
    let dst = &mut dst[..panels * kc * w];
    if src.rs == 1 && src.cs != 1 {
        // Lanes contiguous: depth rows in order (see `pack::pack_rows`).
        // SAFETY: `dst` holds every panel.
        unsafe { pack::pack_rows(dst, src, (l0, len), (p0, kc), w) };
        return;
    }
    let one = |(q, panel): (usize, &mut [f32])| {
        let live = w.min(len - q * w);
        // SAFETY: panel `q`'s live lanes are inside the range the caller vouched for.
        unsafe { pack::pack_panel(panel, src, l0 + q * w, live, p0, kc, w) }
    };
    dst.chunks_mut(kc * w).enumerate().for_each(one);
}

/// What a block's C tiles start from before its depth range is added.
#[derive(Clone, Copy)]
pub(crate) enum Start<'a> {
    /// Nothing: the first depth block overwrites C.
    Zero,
    /// The bias: the first depth block of a product with one; the slice holds the
    /// block's columns.
    Bias(&'a [f32]),
    /// C as the earlier depth blocks left it.
    Accumulate,
}

impl<'a> Start<'a> {
    /// The start of the block at depth `p0` and columns `j0..j0 + nc`.
    pub(crate) fn of_block(p0: usize, bias: Option<&'a [f32]>, j0: usize, nc: usize) -> Self {
        match bias {
            _ if p0 > 0 => Start::Accumulate,
            Some(bias) => Start::Bias(&bias[j0..j0 + nc]),
            None => Start::Zero,
        }
    }

    /// Prepares a whole `rows x cols` tile at column `j` of the block, at `ct` with row
    /// stride `ldc`, and says whether the kernel must accumulate into it.
    ///
    /// # Safety
    /// The tile must be valid for writes.
    pub(crate) unsafe fn prepare_tile(
        self,
        ct: *mut f32,
        ldc: usize,
        (rows, cols): (usize, usize),
        j: usize,
    ) -> bool {
        match self {
            Start::Zero => false,
            Start::Accumulate => true,
            Start::Bias(bias) => {
                for r in 0..rows {
                    // SAFETY: row `r` of the tile is valid by the caller's contract.
                    let row = unsafe { std::slice::from_raw_parts_mut(ct.add(r * ldc), cols) };
                    row.copy_from_slice(&bias[j..j + cols]);
                }
                true
            }
        }
    }

    /// Stores the live part of a scratch tile (`rows x nr`, row stride `nr`) into the
    /// tile at `ct` (row stride `ldc`, `cols` live columns) at column `j` of the block.
    ///
    /// # Safety
    /// The live part of the tile must be valid for writes.
    pub(crate) unsafe fn store_partial(
        self,
        scratch: &[f32],
        nr: usize,
        ct: *mut f32,
        ldc: usize,
        (rows, cols): (usize, usize),
        j: usize,
    ) {
        for (r, src) in scratch.chunks_exact(nr).take(rows).enumerate() {
            // SAFETY: the live `rows x cols` part of the tile is valid by the contract.
            let dst = unsafe { std::slice::from_raw_parts_mut(ct.add(r * ldc), cols) };
            let src = &src[..cols];
            match self {
                Start::Zero => dst.copy_from_slice(src),
                Start::Accumulate => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
                Start::Bias(bias) => {
                    let bias = &bias[j..j + cols];
                    dst.iter_mut()
                        .zip(src.iter().zip(bias))
                        .for_each(|(d, (s, b))| *d = s + b);
                }
            }
        }
    }
}

/// One packed `mc x nc` block of C over depth `kc`.
struct Block<'a> {
    kern: Kernel,
    kc: usize,
    mc: usize,
    nc: usize,
    ldc: usize,
    start: Start<'a>,
}

impl Block<'_> {
    /// Runs every tile of the block, sweeping the rhs panels past each lhs panel.
    fn compute(&self, lhs: &Lhs<'_>, bpack: &[f32], c: Out) {
        let (mr, nr, kc) = (self.kern.mr, self.kern.nr, self.kc);
        for pa in 0..self.mc.div_ceil(mr) {
            let ap = lhs.panel(pa, mr, self.mc, kc);
            for (pb, bp) in bpack
                .chunks_exact(nr * kc)
                .take(self.nc.div_ceil(nr))
                .enumerate()
            {
                self.tile(ap, bp, c, pa * mr, pb * nr);
            }
        }
    }

    /// The tile at `(i, j)` of the block: straight into `c` when full, through a
    /// scratch tile at the block's right and bottom edges.
    fn tile(&self, ap: LhsPanel, bp: &[f32], c: Out, i: usize, j: usize) {
        let (mr, nr) = (self.kern.mr, self.kern.nr);
        let (rows, cols) = (mr.min(self.mc - i), nr.min(self.nc - j));
        // SAFETY: `(i, j)` is inside the block, which is inside `c`.
        let ct = unsafe { c.0.add(i * self.ldc + j) };
        if rows == mr && cols == nr {
            // SAFETY: full panels of `kc` depth steps; the whole tile is inside `c`.
            unsafe {
                let acc = self.start.prepare_tile(ct, self.ldc, (mr, nr), j);
                (self.kern.run)(self.kc, ap, bp.as_ptr(), ct, self.ldc, acc)
            };
            return;
        }
        let mut scratch = [0.0f32; MAX_TILE];
        // SAFETY: the scratch tile is `mr x nr` with row stride `nr`; the live
        // `rows x cols` part of the tile is inside `c`.
        unsafe {
            (self.kern.run)(self.kc, ap, bp.as_ptr(), scratch.as_mut_ptr(), nr, false);
            self.start
                .store_partial(&scratch, nr, ct, self.ldc, (rows, cols), j);
        }
    }
}
