//! The one matrix product every attention tile is made of: `c (+)= a * b` for a few
//! dozen rows and columns, with `a` read through arbitrary row and depth strides and
//! `b` row-major. The strides let one kernel read each operand where it already is
//! (key and value rows inside the caller's strided tensor, a score tile as itself or
//! as its transpose), so the attention kernels pack nothing but transposed queries
//! (and, backward, transposed output gradients).
//!
//! f32 on AVX-512 CPUs runs the register-blocked kernel in `avx512`; everything else
//! (f64, and f32 below AVX-512) runs a portable register-blocked loop that the compiler
//! vectorises per vector level.

use crate::math::Real;
use crate::simd::multiversion;

/// The left operand: element `(i, p)` is `data[i * lane + p * depth]`.
#[derive(Clone, Copy)]
pub struct Lhs<'a, T> {
    pub data: &'a [T],
    pub lane: usize,
    pub depth: usize,
}

/// A row-major right operand: element `(p, j)` is `data[p * ld + j]`.
#[derive(Clone, Copy)]
pub struct Rhs<'a, T> {
    pub data: &'a [T],
    pub ld: usize,
}

/// The shape of one product: `c` is `m x n`, the depth is `k`.
#[derive(Clone, Copy)]
pub struct Shape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Element types with a tile product.
pub trait Tile: Real {
    /// `c[i * ldc + j] = sum_p a(i, p) * b(p, j)` for `i < m`, `j < n`, added to `c`'s
    /// values when `acc`. Panics if an operand is too short for the shape.
    fn product(s: Shape, a: Lhs<'_, Self>, b: Rhs<'_, Self>, c: &mut [Self], ldc: usize, acc: bool);

    /// `dst[p * ld + i] = scale * src[i * stride + p]` for `i < n`, `p < d`: rows of a
    /// head transposed into a right operand. Panics if `src` or `dst` is too short.
    fn transpose(
        src: &[Self],
        stride: usize,
        n: usize,
        d: usize,
        scale: Self,
        dst: &mut [Self],
        ld: usize,
    ) {
        transpose_portable(src, stride, n, d, scale, dst, ld);
    }
}

impl Tile for f64 {
    fn product(s: Shape, a: Lhs<'_, f64>, b: Rhs<'_, f64>, c: &mut [f64], ldc: usize, acc: bool) {
        check(s, a, b, c.len(), ldc);
        portable(
            s.m, s.n, s.k, a.data, a.lane, a.depth, b.data, b.ld, c, ldc, acc,
        );
    }
}

impl Tile for f32 {
    fn product(s: Shape, a: Lhs<'_, f32>, b: Rhs<'_, f32>, c: &mut [f32], ldc: usize, acc: bool) {
        check(s, a, b, c.len(), ldc);
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        if crate::simd::level() == crate::simd::Level::Avx512 {
            // SAFETY: `level` reports Avx512 only on CPUs with AVX-512F, and `check`
            // has bounded every index the product reads or writes.
            unsafe { super::avx512::product(s, a, b, c, ldc, acc) };
            return;
        }
        portable(
            s.m, s.n, s.k, a.data, a.lane, a.depth, b.data, b.ld, c, ldc, acc,
        );
    }

    fn transpose(
        src: &[f32],
        stride: usize,
        n: usize,
        d: usize,
        scale: f32,
        dst: &mut [f32],
        ld: usize,
    ) {
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        if crate::simd::level() == crate::simd::Level::Avx512 && n > 0 && d > 0 {
            assert!(
                (n - 1) * stride + d <= src.len(),
                "attention transpose: src too short"
            );
            assert!(
                (d - 1) * ld + n <= dst.len(),
                "attention transpose: dst too short"
            );
            // SAFETY: the CPU has AVX-512F (see `level`) and the asserts bound every
            // index the transpose touches.
            unsafe { super::avx512::transpose(src, stride, n, d, scale, dst, ld) };
            return;
        }
        transpose_portable(src, stride, n, d, scale, dst, ld);
    }
}

/// Panics unless every element the product touches lies inside its operand (the
/// AVX-512 kernel reads through raw pointers and relies on this).
fn check<T>(s: Shape, a: Lhs<'_, T>, b: Rhs<'_, T>, c_len: usize, ldc: usize) {
    let Shape { m, n, k } = s;
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c_len, "attention tile: c too short");
    assert!(n <= ldc || m == 1, "attention tile: rows of c overlap");
    if k > 0 {
        assert!(
            (m - 1) * a.lane + (k - 1) * a.depth < a.data.len(),
            "attention tile: lhs too short"
        );
        assert!(
            (k - 1) * b.ld + n <= b.data.len(),
            "attention tile: rhs too short"
        );
    }
}

multiversion! {
    /// [`Tile::transpose`] in blocks of 16 rows, so that the rows read stay in L1
    /// while the writes run along `dst`'s rows.
    fn transpose_portable<T>(src: &[T], stride: usize, n: usize, d: usize, scale: T, dst: &mut [T], ld: usize)
    where [T: Real]
    {
        for i0 in (0..n).step_by(16) {
            let rows = 16.min(n - i0);
            for p in 0..d {
                let out = &mut dst[p * ld + i0..][..rows];
                for (r, y) in out.iter_mut().enumerate() {
                    *y = scale * src[(i0 + r) * stride + p];
                }
            }
        }
    }
}

/// Rows and columns of the portable kernel's register tile.
const PR: usize = 4;
const PC: usize = 16;

multiversion! {
    /// The portable product, `PR x PC` tiles held in local arrays (which the compiler
    /// keeps in vector registers); ragged edges repeat the last live row and pad
    /// columns with zeros, and only live elements are stored.
    fn portable<T>(m: usize, n: usize, k: usize, a: &[T], lane: usize, depth: usize, b: &[T], ldb: usize, c: &mut [T], ldc: usize, acc: bool)
    where [T: Real]
    {
        for i0 in (0..m).step_by(PR) {
            let rows = PR.min(m - i0);
            let base: [usize; PR] = std::array::from_fn(|r| (i0 + r.min(rows - 1)) * lane);
            for j0 in (0..n).step_by(PC) {
                let cols = PC.min(n - j0);
                let mut t = [[T::zero(); PC]; PR];
                for p in 0..k {
                    let mut bv = [T::zero(); PC];
                    bv[..cols].copy_from_slice(&b[p * ldb + j0..][..cols]);
                    for (tr, &ar) in t.iter_mut().zip(&base) {
                        let av = a[ar + p * depth];
                        for (x, &y) in tr.iter_mut().zip(&bv) {
                            *x = *x + av * y;
                        }
                    }
                }
                for (r, tr) in t.iter().enumerate().take(rows) {
                    let dst = &mut c[(i0 + r) * ldc + j0..][..cols];
                    if acc {
                        dst.iter_mut().zip(tr).for_each(|(d, &s)| *d = *d + s);
                    } else {
                        dst.copy_from_slice(&tr[..cols]);
                    }
                }
            }
        }
    }
}
