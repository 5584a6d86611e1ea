//! The AMX micro-kernel: a 32 x 32 f32 tile of C held in four AMX tiles (2 x 2 of
//! 16 x 16), fed per 32-depth chunk by two lhs tiles (16 rows x 32 bf16) and two rhs
//! tiles (16 depth pairs x 16 columns, VNNI order), four `tdpbf16ps` per chunk.
//! Register use: tmm0..3 accumulate, tmm4..5 hold lhs, tmm6..7 rhs.
//!
//! The rhs tiles load with `tileloaddt1` (non-temporal hint): each rhs panel streams
//! from L2 once per tile, and kept out of L1 it no longer evicts the 32 KiB lhs panel
//! that every tile of the row reuses. On an AMX Xeon (family 6 model 167, 2 MiB L2):
//! bf16 2048 one thread 836-867 -> 967-1003 GFLOP/s, two threads 1584-1611 -> 1862-1866.
//!
//! Written in inline assembly: the AMX intrinsics are not stable Rust. The compiler
//! never allocates tile registers itself, so the tiles are ours between `ldtilecfg`
//! ([`configure`]) and `tilerelease` ([`release`]); each rayon task brackets its
//! tiles with the two, because the tile configuration is per thread.

use std::arch::asm;

use super::bf16_pack::{LANES, TILE};

/// Rows of the C tile (two lhs panels).
pub const MR: usize = 2 * LANES;
/// Columns of the C tile (two rhs panels).
pub const NR: usize = 2 * LANES;

/// The `ldtilecfg` operand: palette 1, tiles 0..7 all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = {
    let mut colsb = [0u16; 16];
    let mut rows = [0u8; 16];
    let mut t = 0;
    while t < 8 {
        colsb[t] = 64;
        rows[t] = 16;
        t += 1;
    }
    TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb,
        rows,
    }
};

/// Loads the tile configuration on the calling thread.
///
/// # Safety
/// The CPU must have AMX-TILE and the process the tile-data permission
/// (`crate::simd::bf16_support() == Bf16Level::Amx`).
pub unsafe fn configure() {
    let cfg = &CONFIG;
    // SAFETY: `cfg` is a valid 64-byte configuration; AMX is usable (caller).
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg as *const TileConfig, options(nostack, readonly)) };
}

/// Returns the tiles to their initial state, so the thread's context switches stop
/// saving 8 KiB of tile data.
///
/// # Safety
/// As [`configure`].
pub unsafe fn release() {
    // SAFETY: AMX is usable (caller).
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` over the 32 x 32 tile: `a` points at two
/// packed lhs panels `panel` values apart, `b` at two packed rhs panels `panel` values
/// apart, each `kcp` deep (a multiple of 32); `c` is row-major with stride `ldc`.
///
/// # Safety
/// [`configure`] must have run on this thread; the panels must hold `kcp * 16` values
/// each; `c` must be valid for the tile's reads and writes.
pub unsafe fn kernel(
    kcp: usize,
    a: *const u16,
    b: *const u16,
    panel: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    debug_assert!(kcp > 0 && kcp % (TILE / LANES) == 0);
    // SAFETY: the pointers stay inside the panels and the C tile (caller); tile loads
    // read 16 rows of 64 bytes at a 64-byte stride, C rows at `ldc * 4` bytes.
    unsafe {
        asm!(
            "test {acc}, {acc}",
            "jz 2f",
            "tileloadd tmm0, [{c0} + {ldcb} * 1]",
            "tileloadd tmm1, [{c0} + {ldcb} * 1 + 64]",
            "tileloadd tmm2, [{c1} + {ldcb} * 1]",
            "tileloadd tmm3, [{c1} + {ldcb} * 1 + 64]",
            "jmp 3f",
            "2:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "3:",
            "tileloadd tmm4, [{a0} + {s} * 1]",
            "tileloaddt1 tmm6, [{b0} + {s} * 1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloaddt1 tmm7, [{b1} + {s} * 1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s} * 1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, {step}",
            "add {a1}, {step}",
            "add {b0}, {step}",
            "add {b1}, {step}",
            "dec {n}",
            "jnz 3b",
            "tilestored [{c0} + {ldcb} * 1], tmm0",
            "tilestored [{c0} + {ldcb} * 1 + 64], tmm1",
            "tilestored [{c1} + {ldcb} * 1], tmm2",
            "tilestored [{c1} + {ldcb} * 1 + 64], tmm3",
            acc = in(reg) usize::from(acc),
            c0 = in(reg) c,
            c1 = in(reg) c.add(LANES * ldc),
            ldcb = in(reg) ldc * 4,
            a0 = inout(reg) a => _,
            a1 = inout(reg) a.add(panel) => _,
            b0 = inout(reg) b => _,
            b1 = inout(reg) b.add(panel) => _,
            s = in(reg) 64usize,
            step = const TILE * 2,
            n = inout(reg) kcp / (TILE / LANES) => _,
            options(nostack),
        );
    }
}
