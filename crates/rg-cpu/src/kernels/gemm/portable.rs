//! The portable micro-kernel: plain Rust over fixed-size arrays, which the compiler
//! vectorises (compiled per vector level through `multiversion!`). It serves bf16
//! products on CPUs without AVX-512 and checks the packing logic on any machine.

use super::LhsPanel;
use crate::simd::multiversion;

pub const MR: usize = 4;
pub const NR: usize = 16;

multiversion! {
    /// `tile = a^T b` over depth `kc`: `a` is a packed `kc x MR` panel, `b` a packed
    /// `kc x NR` panel, `tile` row-major `MR x NR`.
    fn tile_product(tile: &mut [f32], a: &[f32], b: &[f32]) {
        let mut t = [[0.0f32; NR]; MR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for i in 0..MR {
                for j in 0..NR {
                    t[i][j] += ap[i] * bp[j];
                }
            }
        }
        for (dst, src) in tile.chunks_exact_mut(NR).zip(&t) {
            dst.copy_from_slice(src);
        }
    }
}

/// As [`super::avx512::kernel`], for the portable tile; `a` must be a packed panel
/// (the driver only reads the lhs in place for kernels that say they can).
///
/// # Safety
/// `a` must be a packed panel of `kc * MR` values, `b` must hold `kc * NR` values,
/// and `c` must be valid for the tile's reads and writes.
pub unsafe fn kernel(kc: usize, a: LhsPanel, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    debug_assert!(a.lane == 1 && a.depth == MR && a.rows == MR);
    let mut tile = [0.0f32; MR * NR];
    // SAFETY: the panel lengths are the caller's contract.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a.ptr, kc * MR),
            std::slice::from_raw_parts(b, kc * NR),
        )
    };
    tile_product(&mut tile, a, b);
    for (i, src) in tile.chunks_exact(NR).enumerate() {
        // SAFETY: row `i` of the tile is inside `c` by the caller's contract.
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        if acc {
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        } else {
            dst.copy_from_slice(src);
        }
    }
}
