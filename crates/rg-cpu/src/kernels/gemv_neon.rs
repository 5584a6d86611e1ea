//! The kernels of [`super::gemv`] on aarch64: NEON dot products (weight columns
//! contiguous) and row updates (weight rows contiguous) for f32 and bf16 weights, and
//! for bf16 on CPUs with the BF16 extension (`FEAT_BF16`, detected at run time) the
//! same two forms with `bfdot`, which multiplies pairs of bf16 and accumulates in f32
//! in one instruction, so decoding bf16 weights spends nothing on widening them.
//!
//! Every function here returns `None` where it does not apply (`RG_CPU_SIMD=base`, no
//! BF16 extension, nothing whole to do), and [`super::gemv`]'s portable loops take the
//! work instead.

use std::arch::aarch64::*;

use half::bf16;

/// Whether the `bfdot` kernels can run here.
fn has_bfdot() -> bool {
    crate::simd::neon_bf16()
}

/// A weight element NEON reads four at a time, widened to f32.
pub trait Lanes: Copy {
    /// # Safety
    /// `p` must be valid for reading 4 elements.
    unsafe fn load4(p: *const Self) -> float32x4_t;

    /// One element as f32 (for ragged tails).
    fn widen1(self) -> f32;
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> float32x4_t {
        // SAFETY: forwarded from the caller.
        unsafe { vld1q_f32(p) }
    }

    #[inline(always)]
    fn widen1(self) -> f32 {
        self
    }
}

impl Lanes for bf16 {
    /// bf16 is the top half of an f32: widening is a 16-bit left shift.
    #[inline(always)]
    unsafe fn load4(p: *const bf16) -> float32x4_t {
        // SAFETY: forwarded from the caller; bf16 is plain 16-bit data.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p.cast()))) }
    }

    #[inline(always)]
    fn widen1(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

/// `sum x[q] * c[q]` over `x.len()` elements, `x` the f32 activations; `None` when NEON
/// is turned off or `c` is too short.
pub fn dot<W: Lanes>(x: &[f32], c: &[W]) -> Option<f32> {
    if !crate::simd::neon() || c.len() < x.len() {
        return None;
    }
    // SAFETY: `c` holds at least `x.len()` elements, the only range read.
    Some(unsafe { dot_lanes(x, c) })
}

#[target_feature(enable = "neon")]
unsafe fn dot_lanes<W: Lanes>(x: &[f32], c: &[W]) -> f32 {
    let k = x.len();
    // Four independent sums, so consecutive FMAs do not wait on one another.
    let mut acc = [vdupq_n_f32(0.0); 4];
    let whole = k / 16 * 16;
    let (xp, cp) = (x.as_ptr(), c.as_ptr());
    let mut p = 0;
    while p < whole {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: p + 16 <= whole <= k, inside `x` and `c`.
            unsafe {
                let q = p + 4 * h;
                *a = vfmaq_f32(*a, vld1q_f32(xp.add(q)), W::load4(cp.add(q)));
            }
        }
        p += 16;
    }
    let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let tail: f32 = (whole..k).map(|q| x[q] * c[q].widen1()).sum();
    vaddvq_f32(sum) + tail
}

/// `y[i, c] += x[i, kk] * row(kk)[c]` for rows `kk` in `k0..` four at a time and the
/// first `cols / 4 * 4` columns; `x` is the f32 activations `[m, k]`, `y` is
/// `[m, cols]`. Returns `(rows done, columns done)`, or `None` when NEON is off or
/// there is no whole group.
pub fn axpy<'a, W: Lanes + 'a>(
    x: &[f32],
    k: usize,
    row: &dyn Fn(usize) -> &'a [W],
    y: &mut [f32],
    cols: usize,
    (k0, k1): (usize, usize),
) -> Option<(usize, usize)> {
    let whole = cols / 4 * 4;
    let rows_end = k0 + k1.saturating_sub(k0) / 4 * 4;
    let m = y.len() / cols.max(1);
    if !crate::simd::neon() || whole == 0 || rows_end == k0 || x.len() < m * k || k1 > k {
        return None;
    }
    for kk in (k0..rows_end).step_by(4) {
        let rows: [&[W]; 4] = std::array::from_fn(|q| row(kk + q));
        if rows.iter().any(|r| r.len() < whole) {
            return None;
        }
        for (i, yi) in y.chunks_exact_mut(cols).enumerate() {
            let xs = [0, 1, 2, 3].map(|q| x[i * k + kk + q]);
            // SAFETY: every row and `yi` hold at least `whole` elements.
            unsafe { axpy4(&mut yi[..whole], rows, xs) };
        }
    }
    Some((rows_end, whole))
}

/// `y[c] += sum_q x[q] * rows[q][c]` over `y.len()` (a multiple of 4) columns.
///
/// # Safety
/// Every row must hold at least `y.len()` elements.
#[target_feature(enable = "neon")]
unsafe fn axpy4<W: Lanes>(y: &mut [f32], rows: [&[W]; 4], x: [f32; 4]) {
    // SAFETY: `x` holds 4 values.
    let xv = unsafe { vld1q_f32(x.as_ptr()) };
    let yp = y.as_mut_ptr();
    let mut c = 0;
    while c + 4 <= y.len() {
        // SAFETY: c + 4 <= y.len() <= every row's length.
        unsafe {
            let mut acc = vld1q_f32(yp.add(c));
            acc = vfmaq_laneq_f32::<0>(acc, W::load4(rows[0].as_ptr().add(c)), xv);
            acc = vfmaq_laneq_f32::<1>(acc, W::load4(rows[1].as_ptr().add(c)), xv);
            acc = vfmaq_laneq_f32::<2>(acc, W::load4(rows[2].as_ptr().add(c)), xv);
            acc = vfmaq_laneq_f32::<3>(acc, W::load4(rows[3].as_ptr().add(c)), xv);
            vst1q_f32(yp.add(c), acc);
        }
        c += 4;
    }
}

/// The dot product of bf16 activations `x` with the bf16 column `c` by `bfdot`, or
/// `None` when the CPU lacks the BF16 extension (or `c` is too short).
pub fn dot_bf16(x: &[bf16], c: &[bf16]) -> Option<f32> {
    if !has_bfdot() || c.len() < x.len() {
        return None;
    }
    // SAFETY: `has_bfdot` checked the CPU; `c` holds at least `x.len()` elements.
    Some(unsafe { bfdot_dot(x, c) })
}

/// `acc.s[i] += a.h[2i] * b.h[2i] + a.h[2i+1] * b.h[2i+1]` (f32 accumulation).
///
/// # Safety
/// The CPU must have the BF16 extension.
#[inline(always)]
unsafe fn bfdot(acc: float32x4_t, a: uint16x8_t, b: uint16x8_t) -> float32x4_t {
    let mut acc = acc;
    // SAFETY: the caller checked the CPU feature; register-only arithmetic.
    // (`vbfdotq_f32` is not a stable intrinsic, hence the assembly.)
    unsafe {
        std::arch::asm!(
            ".arch_extension bf16",
            "bfdot {acc:v}.4s, {a:v}.8h, {b:v}.8h",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack),
        );
    }
    acc
}

#[target_feature(enable = "neon,bf16")]
unsafe fn bfdot_dot(x: &[bf16], c: &[bf16]) -> f32 {
    let k = x.len();
    let whole = k / 32 * 32;
    let (xp, cp) = (x.as_ptr().cast::<u16>(), c.as_ptr().cast::<u16>());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut p = 0;
    while p < whole {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: p + 32 <= whole <= k, inside `x` and `c`; the CPU has BF16.
            unsafe {
                let q = p + 8 * h;
                *a = bfdot(*a, vld1q_u16(xp.add(q)), vld1q_u16(cp.add(q)));
            }
        }
        p += 32;
    }
    let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let tail: f32 = (whole..k).map(|q| x[q].widen1() * c[q].widen1()).sum();
    vaddvq_f32(sum) + tail
}

/// Row pairs [`bfdot_pairs`] takes per pass over the sums while they last.
const PAIRS: usize = 4;

/// Rows `k0..` of a row-major bf16 weight, in pairs, times the bf16 activations `x`
/// (`[m, k]`) added into the first `cols / 8 * 8` columns of `y` (`[m, cols]`) by
/// `bfdot`: returns `(rows done, columns done)`, or `None` when the CPU lacks the BF16
/// extension or there is no whole pair and block.
pub fn axpy_pairs_bf16<'a>(
    x: &[bf16],
    k: usize,
    row: &dyn Fn(usize) -> &'a [bf16],
    y: &mut [f32],
    cols: usize,
    (k0, k1): (usize, usize),
) -> Option<(usize, usize)> {
    let whole = cols / 8 * 8;
    let rows_end = k0 + k1.saturating_sub(k0) / 2 * 2;
    let m = y.len() / cols.max(1);
    if !has_bfdot() || whole == 0 || rows_end == k0 || x.len() < m * k || k1 > k {
        return None;
    }
    let mut kk = k0;
    while kk < rows_end {
        // Four pairs per pass while they last: the sums are loaded and stored once per
        // eight weight rows instead of per two.
        let pairs = if kk + 2 * PAIRS <= rows_end { PAIRS } else { 1 };
        let rows: [&[bf16]; 2 * PAIRS] = std::array::from_fn(|r| row(kk + r.min(2 * pairs - 1)));
        if rows.iter().any(|r| r.len() < whole) {
            return None;
        }
        for (i, yi) in y.chunks_exact_mut(cols).enumerate() {
            let xs = &x[i * k + kk..i * k + kk + 2 * pairs];
            // SAFETY: `has_bfdot` checked the CPU; every row and `yi` hold at least
            // `whole` elements, a multiple of 8.
            unsafe {
                if pairs == PAIRS {
                    bfdot_pairs::<PAIRS>(
                        &mut yi[..whole],
                        std::array::from_fn(|q| [rows[2 * q], rows[2 * q + 1]]),
                        std::array::from_fn(|q| [xs[2 * q], xs[2 * q + 1]]),
                    )
                } else {
                    bfdot_pairs::<1>(&mut yi[..whole], [[rows[0], rows[1]]], [[xs[0], xs[1]]])
                }
            };
        }
        kk += 2 * pairs;
    }
    Some((rows_end, whole))
}

/// `y[c] += sum over pairs q of x[q][0] * rows[q][0][c] + x[q][1] * rows[q][1][c]`:
/// `zip1`/`zip2` interleave a pair's two rows into the (row 0, row 1) pairs of columns
/// 0-3 and 4-7 that `bfdot` multiplies with the activation pair, so the sums come out
/// in column order.
///
/// # Safety
/// The CPU must have the BF16 extension; every row must hold at least `y.len()`
/// elements, a multiple of 8.
#[target_feature(enable = "neon,bf16")]
unsafe fn bfdot_pairs<const P: usize>(y: &mut [f32], rows: [[&[bf16]; 2]; P], x: [[bf16; 2]; P]) {
    let xv: [uint16x8_t; P] = x.map(|[x0, x1]| {
        vreinterpretq_u16_u32(vdupq_n_u32(
            x0.to_bits() as u32 | (x1.to_bits() as u32) << 16,
        ))
    });
    let yp = y.as_mut_ptr();
    let mut c = 0;
    while c + 8 <= y.len() {
        // SAFETY: c + 8 <= y.len() <= every row's length; the CPU has BF16.
        unsafe {
            let (mut lo, mut hi) = (vld1q_f32(yp.add(c)), vld1q_f32(yp.add(c + 4)));
            for q in 0..P {
                let a = vld1q_u16(rows[q][0].as_ptr().add(c).cast());
                let b = vld1q_u16(rows[q][1].as_ptr().add(c).cast());
                lo = bfdot(lo, vzip1q_u16(a, b), xv[q]);
                hi = bfdot(hi, vzip2q_u16(a, b), xv[q]);
            }
            vst1q_f32(yp.add(c), lo);
            vst1q_f32(yp.add(c + 4), hi);
        }
        c += 8;
    }
}

#[cfg(test)]
mod tests {
    //! The NEON and `bfdot` kernels against f64 sums of the same (bf16-rounded)
    //! values, over lengths that are not multiples of the vector blocks. The `bfdot`
    //! cases run only on CPUs with the BF16 extension (`qemu-aarch64 -cpu max` has it).

    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn to_bf16(v: &[f32]) -> Vec<bf16> {
        v.iter().map(|&x| bf16::from_f32(x)).collect()
    }

    /// `|got - want| <= tol * sum |terms|`.
    fn close(got: f32, want: f64, mag: f64, tol: f64) -> bool {
        (got as f64 - want).abs() <= tol * mag.max(1e-30)
    }

    const LENS: [usize; 9] = [1, 3, 4, 15, 16, 17, 33, 100, 769];

    #[test]
    fn dot_f32_and_widened_bf16() {
        for (t, &k) in LENS.iter().enumerate() {
            let (x, c) = (values(k, t as u64), values(k, 100 + t as u64));
            let want: f64 = x.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
            let mag: f64 = x
                .iter()
                .zip(&c)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let got = dot(&x, &c).expect("NEON is on");
            assert!(close(got, want, mag, 1e-6), "f32 k={k}: {got} vs {want}");
            let cb = to_bf16(&c);
            let want: f64 = x.iter().zip(&cb).map(|(&a, b)| a as f64 * b.to_f64()).sum();
            let got = dot(&x, &cb).expect("NEON is on");
            assert!(close(got, want, mag, 1e-6), "bf16 k={k}: {got} vs {want}");
        }
    }

    /// `y += x · rows` through [`axpy`] (or [`axpy_pairs_bf16`]), the rest portable.
    fn check_axpy(m: usize, k: usize, cols: usize, bfdot_path: bool) {
        let x = values(m * k, (m * 31 + k) as u64);
        let w = values(k * cols, (k * 7 + cols) as u64);
        let (xb, wb) = (to_bf16(&x), to_bf16(&w));
        let y0 = values(m * cols, 5);
        let mut y = y0.clone();
        let (done_rows, done_cols) = if bfdot_path {
            let row = |kk: usize| &wb[kk * cols..(kk + 1) * cols];
            axpy_pairs_bf16(&xb, k, &row, &mut y, cols, (0, k))
        } else {
            let row = |kk: usize| &wb[kk * cols..(kk + 1) * cols];
            let xf: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
            axpy(&xf, k, &row, &mut y, cols, (0, k))
        }
        .expect("whole groups exist");
        assert!(done_rows <= k && done_cols <= cols && done_cols > 0);
        for i in 0..m {
            for c in 0..cols {
                let idx = i * cols + c;
                let (want, mag) = if c < done_cols {
                    (0..done_rows).fold((y0[idx] as f64, y0[idx].abs() as f64), |(s, g), kk| {
                        let t = xb[i * k + kk].to_f64() * wb[kk * cols + c].to_f64();
                        (s + t, g + t.abs())
                    })
                } else {
                    (y0[idx] as f64, y0[idx].abs() as f64)
                };
                // `bfdot` rounds its intermediate sums (see the dot test).
                let tol = if bfdot_path { 1e-5 } else { 1e-6 };
                assert!(
                    close(y[idx], want, mag, tol),
                    "m={m} k={k} cols={cols} bfdot {bfdot_path}: y[{i}][{c}] = {} vs {want}",
                    y[idx]
                );
            }
        }
    }

    #[test]
    fn axpy_rows_of_widened_bf16() {
        for (m, k, cols) in [(1, 4, 4), (1, 9, 7), (2, 33, 50), (4, 64, 129)] {
            check_axpy(m, k, cols, false);
        }
    }

    #[test]
    fn bfdot_dot_and_pairs_where_the_cpu_has_bf16() {
        if !has_bfdot() {
            eprintln!("no BF16 extension here: bfdot kernels not exercised");
            return;
        }
        for (t, &k) in LENS.iter().enumerate() {
            let (x, c) = (
                to_bf16(&values(k, t as u64)),
                to_bf16(&values(k, 50 + t as u64)),
            );
            let want: f64 = x.iter().zip(&c).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
            let mag: f64 = x
                .iter()
                .zip(&c)
                .map(|(a, b)| (a.to_f64() * b.to_f64()).abs())
                .sum();
            let got = dot_bf16(&x, &c).expect("BF16 present");
            // `bfdot` rounds its intermediate sums (to odd, without the EBF16
            // extension), so allow a few f32 ulps per term.
            assert!(close(got, want, mag, 1e-5), "k={k}: {got} vs {want}");
        }
        for (m, k, cols) in [(1, 2, 8), (1, 9, 15), (2, 17, 40), (4, 64, 129), (3, 19, 8)] {
            check_axpy(m, k, cols, true);
        }
    }
}
