//! The WebAssembly SIMD128 micro-kernel: an `MR x 4*NV` tile of C in `MR * NV`
//! 128-bit accumulators (four f32 each). Each depth step loads `NV` vectors of the
//! packed rhs panel and splats `MR` lhs values; WebAssembly SIMD has no fused
//! multiply-add outside the relaxed-SIMD proposal, so each update is a multiply and an
//! add (the same rounding as the portable kernel).
//!
//! Like the AVX-512 kernel it reads the lhs through a lane and depth stride, so it
//! runs on a packed panel or straight on a row-major lhs. The tile is sized for the
//! 16 vector registers a browser's JIT has on x86-64 and ARM64: 12 accumulators, two
//! rhs vectors and one splat.

use core::arch::wasm32::*;

use super::LhsPanel;

/// Rows of the tile.
pub const MR: usize = 6;
/// 128-bit vectors per tile row.
pub const NV: usize = 2;
/// Columns of the tile.
pub const NR: usize = 4 * NV;

/// `c[i][j] (+)= sum_p a[i][p] * b[p][j]` for the full `MR x 4*NV` tile, `c` row-major
/// with row stride `ldc`; overwrites when `acc` is false. Only `a.rows` lhs rows are
/// read; the tile's other rows repeat the last of them.
///
/// # Safety
/// `a` must be valid for `a.rows` lanes of `kc` depth steps through its strides, `b`
/// must hold `kc * 4 * NV` values, and `c` must be valid for the tile's reads and
/// writes. (SIMD128 itself is guaranteed: this module is compiled only with it.)
pub unsafe fn kernel(kc: usize, a: LhsPanel, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    // SAFETY (whole body): the pointer arithmetic stays inside the regions the caller
    // vouched for; rows past `a.rows` are clamped to the last live row. `v128_load`
    // and `v128_store` accept unaligned addresses.
    let rows: [*const f32; MR] =
        std::array::from_fn(|i| unsafe { a.ptr.add(i.min(a.rows - 1) * a.lane) });
    let mut cr = [[f32x4_splat(0.0); NV]; MR];
    let mut b = b;
    let mut off = 0;
    for _ in 0..kc {
        let mut bv = [f32x4_splat(0.0); NV];
        for (v, r) in bv.iter_mut().enumerate() {
            *r = unsafe { v128_load(b.add(4 * v).cast::<v128>()) };
        }
        for (row, &ap) in cr.iter_mut().zip(&rows) {
            let av = f32x4_splat(unsafe { *ap.add(off) });
            for (r, &bvv) in row.iter_mut().zip(&bv) {
                *r = f32x4_add(*r, f32x4_mul(av, bvv));
            }
        }
        off += a.depth;
        b = unsafe { b.add(4 * NV) };
    }
    for (i, row) in cr.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            unsafe {
                let p = c.add(i * ldc + 4 * v).cast::<v128>();
                let r = if acc { f32x4_add(v128_load(p), r) } else { r };
                v128_store(p, r);
            }
        }
    }
}
