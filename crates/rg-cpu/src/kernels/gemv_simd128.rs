//! The skinny products of [`super::gemv`] with WebAssembly SIMD128 (wasm32 builds with
//! `+simd128`): f32 dot products (columns of a transposed weight, e.g. the LM head) and
//! f32 row updates four weight rows at a time (`Linear` weights), plus bf16 dot
//! products that widen by a shift. The sums are formed as the portable loops form
//! them where the order is fixed (`axpy_rows`), so the results agree bit for bit.

use core::arch::wasm32::*;

use half::bf16;

/// Independent 4-lane partial sums in the dot products, so additions do not wait on
/// one another.
const CHAINS: usize = 4;

/// Sum of the four lanes.
#[inline(always)]
fn horizontal_sum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v)
        + f32x4_extract_lane::<1>(v)
        + f32x4_extract_lane::<2>(v)
        + f32x4_extract_lane::<3>(v)
}

/// Four f32 from `p`.
///
/// # Safety
/// `p` must be valid for reading four f32 (any alignment).
#[inline(always)]
unsafe fn load(p: *const f32) -> v128 {
    unsafe { v128_load(p.cast()) }
}

/// Four bf16 from `p`, widened to f32 (bf16 is the top half of an f32).
///
/// # Safety
/// `p` must be valid for reading four bf16 (any alignment).
#[inline(always)]
unsafe fn load_bf16(p: *const bf16) -> v128 {
    let halves = unsafe { v128_load64_zero(p.cast()) };
    i32x4_shl(u32x4_extend_low_u16x8(halves), 16)
}

/// `sum x[q] * c[q]` over `x.len()` elements (`c` may be longer).
pub fn dot_f32(x: &[f32], c: &[f32]) -> f32 {
    let k = x.len();
    let c = &c[..k];
    let step = 4 * CHAINS;
    let whole = k / step * step;
    let mut acc = [f32x4_splat(0.0); CHAINS];
    let mut p = 0;
    while p < whole {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `p + 4 * h + 4 <= whole <= k`, the length of both slices.
            let (xv, cv) = unsafe {
                (
                    load(x.as_ptr().add(p + 4 * h)),
                    load(c.as_ptr().add(p + 4 * h)),
                )
            };
            *a = f32x4_add(*a, f32x4_mul(xv, cv));
        }
        p += step;
    }
    let tail: f32 = (whole..k).map(|q| x[q] * c[q]).sum();
    let both = f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3]));
    horizontal_sum(both) + tail
}

/// As [`dot_f32`] for bf16 activations and column.
pub fn dot_bf16(x: &[bf16], c: &[bf16]) -> f32 {
    let k = x.len();
    let c = &c[..k];
    let step = 4 * CHAINS;
    let whole = k / step * step;
    let mut acc = [f32x4_splat(0.0); CHAINS];
    let mut p = 0;
    while p < whole {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `p + 4 * h + 4 <= whole <= k`, the length of both slices.
            let (xv, cv) = unsafe {
                (
                    load_bf16(x.as_ptr().add(p + 4 * h)),
                    load_bf16(c.as_ptr().add(p + 4 * h)),
                )
            };
            *a = f32x4_add(*a, f32x4_mul(xv, cv));
        }
        p += step;
    }
    let tail: f32 = (whole..k).map(|q| x[q].to_f32() * c[q].to_f32()).sum();
    let both = f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3]));
    horizontal_sum(both) + tail
}

/// Weight rows `k0..` four at a time times the activations `x` (`[m, k]`, `m =
/// y.len() / cols`), added into the first `cols / 4 * 4` columns of `y` (`[m, cols]`):
/// `y += ((x0 r0 + x1 r1) + x2 r2) + x3 r3`, the portable loop's order. Returns
/// `(rows done, columns done)`, or `None` when there is no whole group of rows.
pub fn axpy_rows<'a>(
    x: &[f32],
    k: usize,
    row: &dyn Fn(usize) -> &'a [f32],
    y: &mut [f32],
    cols: usize,
    k0: usize,
    k1: usize,
) -> Option<(usize, usize)> {
    let whole = cols / 4 * 4;
    let rows_end = k0 + k1.saturating_sub(k0) / 4 * 4;
    let m = y.len() / cols.max(1);
    if whole == 0 || rows_end == k0 || x.len() < m * k || k1 > k {
        return None;
    }
    let mut kk = k0;
    while kk < rows_end {
        let r: [&[f32]; 4] = std::array::from_fn(|q| row(kk + q));
        if r.iter().any(|r| r.len() < whole) {
            return None;
        }
        for (i, yi) in y.chunks_exact_mut(cols).enumerate().take(m) {
            let xs: [v128; 4] = std::array::from_fn(|q| f32x4_splat(x[i * k + kk + q]));
            let mut j = 0;
            while j < whole {
                // SAFETY: `j + 4 <= whole`, within `yi` and every row (checked above).
                unsafe {
                    let mut s = f32x4_mul(xs[0], load(r[0].as_ptr().add(j)));
                    s = f32x4_add(s, f32x4_mul(xs[1], load(r[1].as_ptr().add(j))));
                    s = f32x4_add(s, f32x4_mul(xs[2], load(r[2].as_ptr().add(j))));
                    s = f32x4_add(s, f32x4_mul(xs[3], load(r[3].as_ptr().add(j))));
                    let p = yi.as_mut_ptr().add(j).cast::<v128>();
                    v128_store(p, f32x4_add(v128_load(p), s));
                }
                j += 4;
            }
        }
        kk += 4;
    }
    Some((rows_end, whole))
}
