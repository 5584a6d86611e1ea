//! Row primitives written so the compiler vectorises them: floating-point addition is
//! not associative, so a plain `iter().sum()` stays serial; keeping `LANES` independent
//! partial sums lets it use full-width SIMD registers (and is more accurate, too).
//!
//! Every helper is `#[inline(always)]` (except the final fold, see [`fold_lanes`]): the kernels that call them are compiled once
//! per x86 vector level (`multiversion!`), and only an inlined helper is compiled with
//! the caller's level. A plain `#[inline]` `max` stayed out of line, as baseline SSE2
//! code, and took a third of softmax's samples.

use rg_core::FloatDType;

const LANES: usize = 16;

/// Sum of `xs`.
#[inline(always)]
pub fn sum<T: FloatDType>(xs: &[T]) -> T {
    sum_map(xs, |x| x)
}

/// Sum of `f(x)` over `xs`.
#[inline(always)]
pub fn sum_map<T: FloatDType>(xs: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = *a + f(x);
        }
    }
    let mut total = fold_lanes(acc);
    for &x in tail {
        total = total + f(x);
    }
    total
}

/// Sum of `f(x, y)` over pairs of `xs` and `ys` (which have one length).
#[inline(always)]
pub fn sum_zip<T: FloatDType>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> T {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut acc = [T::zero(); LANES];
    let xc = xs.chunks_exact(LANES);
    let yc = ys.chunks_exact(LANES);
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for i in 0..LANES {
            acc[i] = acc[i] + f(a[i], b[i]);
        }
    }
    let mut total = fold_lanes(acc);
    for (&a, &b) in xt.iter().zip(yt) {
        total = total + f(a, b);
    }
    total
}

/// Sum of `f(x, y, z)` over triples of `xs`, `ys` and `zs` (which have one length).
#[inline(always)]
pub fn sum_zip3<T: FloatDType>(xs: &[T], ys: &[T], zs: &[T], f: impl Fn(T, T, T) -> T) -> T {
    let n = xs.len().min(ys.len()).min(zs.len());
    let (xs, ys, zs) = (&xs[..n], &ys[..n], &zs[..n]);
    let mut acc = [T::zero(); LANES];
    let (xc, yc, zc) = (
        xs.chunks_exact(LANES),
        ys.chunks_exact(LANES),
        zs.chunks_exact(LANES),
    );
    let tail = n - xc.len() * LANES;
    for ((a, b), c) in xc.zip(yc).zip(zc) {
        for i in 0..LANES {
            acc[i] = acc[i] + f(a[i], b[i], c[i]);
        }
    }
    let mut total = fold_lanes(acc);
    for i in n - tail..n {
        total = total + f(xs[i], ys[i], zs[i]);
    }
    total
}

/// Writes `f(x)` for each `x` of `xs` into `ys` (of the same length) and returns the
/// sum of what it wrote: one pass where a map and a [`sum`] would make two.
#[inline(always)]
pub fn map_sum<T: FloatDType>(xs: &[T], ys: &mut [T], f: impl Fn(T) -> T) -> T {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &mut ys[..n]);
    let mut acc = [T::zero(); LANES];
    let tail = n % LANES;
    for (x, y) in xs.chunks_exact(LANES).zip(ys.chunks_exact_mut(LANES)) {
        for i in 0..LANES {
            y[i] = f(x[i]);
            acc[i] = acc[i] + y[i];
        }
    }
    let mut total = fold_lanes(acc);
    for i in n - tail..n {
        ys[i] = f(xs[i]);
        total = total + ys[i];
    }
    total
}

/// Largest element (NaN if any element is NaN); `-inf` for an empty slice.
#[inline(always)]
pub fn max<T: FloatDType>(xs: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut nan = false;
    for c in chunks {
        for i in 0..LANES {
            // `max` via comparison keeps this branch-free and vectorisable; NaNs are
            // tracked separately because the comparison ignores them.
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
            nan |= c[i].is_nan();
        }
    }
    let mut m = max_lanes(acc);
    for &a in tail {
        m = if a > m { a } else { m };
        nan |= a.is_nan();
    }
    if nan {
        T::nan()
    } else {
        m
    }
}

/// The largest of the lanes (out of line, as [`fold_lanes`]).
#[inline(never)]
fn max_lanes<T: FloatDType>(acc: [T; LANES]) -> T {
    acc.into_iter()
        .fold(T::neg_infinity(), |m, a| if a > m { a } else { m })
}

/// Out of line on purpose: inlined into the loops above, LLVM's SLP vectoriser matched
/// the accumulators to this pairwise tree and kept them in 2-wide vectors (`vmovsd`
/// loads, xmm adds) in the AVX2 and AVX-512 copies alike; called, the loops run on
/// full-width registers. One call per row costs nothing next to that.
#[inline(never)]
fn fold_lanes<T: FloatDType>(acc: [T; LANES]) -> T {
    // Pairwise, which keeps the rounding error of the final fold small.
    let mut width = LANES;
    let mut acc = acc;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] = acc[i] + acc[i + width];
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_max_match_naive() {
        for n in [0usize, 1, 7, 16, 33, 1000] {
            let xs: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
            assert_eq!(sum(&xs), xs.iter().sum::<f64>());
            assert_eq!(
                sum_zip(&xs, &xs, |a, b| a * b),
                xs.iter().map(|x| x * x).sum::<f64>()
            );
            let naive = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(max(&xs), naive);
        }
        assert!(max(&[1.0f32, f32::NAN, 3.0]).is_nan());
        for n in [0usize, 5, 16, 37] {
            let xs: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
            let mut ys = vec![0.0; n];
            let total = map_sum(&xs, &mut ys, |x| x * 2.0);
            assert_eq!(ys, xs.iter().map(|x| x * 2.0).collect::<Vec<_>>());
            assert_eq!(total, sum(&ys));
        }
    }
}
