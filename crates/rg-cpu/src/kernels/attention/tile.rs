//! The one matrix product every attention tile is made of: `c (+)= a * b` for a few
//! dozen rows and columns, with `a` read through arbitrary row and depth strides and
//! `b` row-major. The strides let one kernel read each operand where it already is
//! (key and value rows inside the caller's strided tensor, a score tile as itself or
//! as its transpose), so the attention kernels pack nothing but transposed queries
//! (and, backward, transposed output gradients).
//!
//! f32 runs a hand-written register-blocked kernel where the CPU has one: `avx512` on
//! AVX-512 CPUs, `avx2` on x86 CPUs with AVX2 and FMA (or where `RG_CPU_SIMD=avx2` caps
//! the level). Everything else (f64, and f32 on other CPUs) runs a portable
//! register-blocked loop that the compiler vectorises per vector level.

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
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: `avx2` checked for AVX2 and FMA, and `check` has bounded every
            // index the product reads or writes.
            unsafe { super::avx2::product(s, a, b, c, ldc, acc) };
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
        if crate::simd::level() == crate::simd::Level::Avx512 {
            check_transpose(src.len(), stride, n, d, dst.len(), ld);
            // SAFETY: the CPU has AVX-512F (see `level`) and `check_transpose` bounds
            // every index the transpose touches.
            unsafe { super::avx512::transpose(src, stride, n, d, scale, dst, ld) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            check_transpose(src.len(), stride, n, d, dst.len(), ld);
            // SAFETY: the CPU has AVX2 (see `avx2`) and `check_transpose` bounds every
            // index the transpose touches.
            unsafe { super::avx2::transpose(src, stride, n, d, scale, dst, ld) };
            return;
        }
        transpose_portable(src, stride, n, d, scale, dst, ld);
    }
}

/// Whether the AVX2 kernels run: the CPU has AVX2 and FMA, and `RG_CPU_SIMD` does not
/// cap the level below AVX2 (the AVX-512 kernels, where they apply, are tried first).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    crate::simd::level() >= crate::simd::Level::Avx2 && is_x86_feature_detected!("fma")
}

/// Panics unless every element [`Tile::transpose`] touches lies inside `src` and `dst`
/// (the vector kernels read and write through raw pointers and rely on this).
#[cfg(target_arch = "x86_64")]
fn check_transpose(src_len: usize, stride: usize, n: usize, d: usize, dst_len: usize, ld: usize) {
    if n == 0 || d == 0 {
        return;
    }
    assert!(
        (n - 1) * stride + d <= src_len,
        "attention transpose: src too short"
    );
    assert!(
        (d - 1) * ld + n <= dst_len,
        "attention transpose: dst too short"
    );
}

/// Panics unless every element the product touches lies inside its operand (the
/// AVX-512 and AVX2 kernels read through raw pointers and rely on this).
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

#[cfg(test)]
mod tests {
    //! Every f32 kernel this CPU can run (the dispatched one, the portable loop and each
    //! x86 kernel the CPU supports, called directly) against an f64 reference, on
    //! ragged shapes: rows and columns around the register tiles' multiples, depths of
    //! the tests' `d = 3` and the real `d = 32, 64`, strided and transposed lhs, padded
    //! rows of `b` and `c`, overwriting and accumulating.

    use super::*;

    type Product = fn(Shape, Lhs<'_, f32>, Rhs<'_, f32>, &mut [f32], usize, bool);
    type Transpose = fn(&[f32], usize, usize, usize, f32, &mut [f32], usize);

    /// Values in `[-1, 1)` from a linear congruential generator.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32) / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn products() -> Vec<(&'static str, Product)> {
        // Only x86 adds kernels to the list.
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut out: Vec<(&'static str, Product)> = vec![
            ("dispatched", <f32 as Tile>::product),
            ("portable", |s, a, b, c, ldc, acc| {
                check(s, a, b, c.len(), ldc);
                portable(
                    s.m, s.n, s.k, a.data, a.lane, a.depth, b.data, b.ld, c, ldc, acc,
                );
            }),
        ];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(("avx2", |s, a, b, c, ldc, acc| {
                check(s, a, b, c.len(), ldc);
                // SAFETY: AVX2 and FMA detected; `check` bounds the indices.
                unsafe { super::super::avx2::product(s, a, b, c, ldc, acc) }
            }));
        }
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        if is_x86_feature_detected!("avx512f") {
            out.push(("avx512", |s, a, b, c, ldc, acc| {
                check(s, a, b, c.len(), ldc);
                // SAFETY: AVX-512F detected; `check` bounds the indices.
                unsafe { super::super::avx512::product(s, a, b, c, ldc, acc) }
            }));
        }
        out
    }

    fn transposes() -> Vec<(&'static str, Transpose)> {
        // Only x86 adds kernels to the list.
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut out: Vec<(&'static str, Transpose)> = vec![
            ("dispatched", <f32 as Tile>::transpose),
            ("portable", transpose_portable::<f32>),
        ];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            out.push(("avx2", |src, stride, n, d, scale, dst, ld| {
                check_transpose(src.len(), stride, n, d, dst.len(), ld);
                // SAFETY: AVX2 detected; `check_transpose` bounds the indices.
                unsafe { super::super::avx2::transpose(src, stride, n, d, scale, dst, ld) }
            }));
        }
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        if is_x86_feature_detected!("avx512f") {
            out.push(("avx512", |src, stride, n, d, scale, dst, ld| {
                check_transpose(src.len(), stride, n, d, dst.len(), ld);
                // SAFETY: AVX-512F detected; `check_transpose` bounds the indices.
                unsafe { super::super::avx512::transpose(src, stride, n, d, scale, dst, ld) }
            }));
        }
        out
    }

    /// The lhs layouts of the attention kernels: rows of a strided head (depth along a
    /// row), a score tile read transposed, and both strides above one.
    fn lhs_strides(m: usize, k: usize) -> [(usize, usize); 3] {
        [(k + 3, 1), (1, m + 2), (2, 2 * m + 1)]
    }

    #[test]
    fn products_match_the_reference_on_ragged_shapes() {
        const SENTINEL: f32 = 1234.5;
        let kernels = products();
        let mut seed = 0;
        for m in [1, 2, 5, 6, 7, 11, 12, 13, 17, 64] {
            for n in [1, 3, 7, 8, 9, 15, 16, 17, 24, 33, 52, 64] {
                for k in [0, 1, 3, 32, 64] {
                    for (lane, depth) in lhs_strides(m, k) {
                        seed += 1;
                        let a_len = if k == 0 {
                            0
                        } else {
                            (m - 1) * lane + (k - 1) * depth + 1
                        };
                        let (ldb, ldc) = (n + 5, n + 4);
                        let a = values(a_len, seed);
                        let b = values(k * ldb, seed + 1_000_000);
                        let c0: Vec<f32> = values((m - 1) * ldc + n, seed + 2_000_000)
                            .iter()
                            .enumerate()
                            .map(|(i, &x)| if i % ldc < n { x } else { SENTINEL })
                            .collect();
                        for acc in [false, true] {
                            // The exact product and the scale of its rounding error.
                            let mut want = vec![(0.0f64, 0.0f64); m * n];
                            for i in 0..m {
                                for j in 0..n {
                                    let (mut sum, mut mag) = (0.0f64, 0.0f64);
                                    if acc {
                                        sum = f64::from(c0[i * ldc + j]);
                                        mag = sum.abs();
                                    }
                                    for p in 0..k {
                                        let x = f64::from(a[i * lane + p * depth])
                                            * f64::from(b[p * ldb + j]);
                                        sum += x;
                                        mag += x.abs();
                                    }
                                    want[i * n + j] = (sum, mag);
                                }
                            }
                            for &(name, product) in &kernels {
                                let mut c = c0.clone();
                                let s = Shape { m, n, k };
                                let lhs = Lhs {
                                    data: &a,
                                    lane,
                                    depth,
                                };
                                product(s, lhs, Rhs { data: &b, ld: ldb }, &mut c, ldc, acc);
                                let what = format!(
                                    "{name}: m {m} n {n} k {k} lane {lane} depth {depth} acc {acc}"
                                );
                                for (idx, &got) in c.iter().enumerate() {
                                    let (i, j) = (idx / ldc, idx % ldc);
                                    if j >= n {
                                        assert_eq!(got, SENTINEL, "{what}: wrote ({i}, {j})");
                                        continue;
                                    }
                                    let (sum, mag) = want[i * n + j];
                                    assert!(
                                        (f64::from(got) - sum).abs() <= 1e-5 * mag + 1e-30,
                                        "{what}: ({i}, {j}) is {got}, expected {sum}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transposes_match_the_reference_on_ragged_shapes() {
        const SENTINEL: f32 = -777.25;
        let kernels = transposes();
        for n in [1, 3, 7, 8, 9, 16, 17, 64, 65] {
            for d in [1, 3, 8, 15, 32, 33, 64] {
                let (stride, ld) = (d + 2, n + 3);
                let src = values((n - 1) * stride + d, (n * 100 + d) as u64);
                for &(name, transpose) in &kernels {
                    let mut dst = vec![SENTINEL; (d - 1) * ld + n];
                    transpose(&src, stride, n, d, 0.5, &mut dst, ld);
                    for (idx, &got) in dst.iter().enumerate() {
                        let (p, i) = (idx / ld, idx % ld);
                        let want = if i < n {
                            0.5 * src[i * stride + p]
                        } else {
                            SENTINEL
                        };
                        assert_eq!(got, want, "{name}: n {n} d {d}: dst ({p}, {i})");
                    }
                }
            }
        }
    }
}
