//! Skinny matrix products: at most [`MAX_ROWS`] rows of activations times a `[k, n]`
//! matrix, the shape of every matmul in token-by-token decoding.
//!
//! Such a product does two flops per weight element it reads, so it is bound by memory
//! bandwidth, and a general GEMM's packing (a copy of the weight per call) only adds
//! traffic. Here the weight is read once, in place, whichever way it is strided:
//!
//! - unit column stride (`Linear`'s `[in, out]` weight): rows of the weight are
//!   contiguous, so four rows at a time are scaled by the activations and added to
//!   the output row (an "axpy" form that streams the weight front to back);
//! - unit row stride (a transposed view, e.g. the LM head reading `wte` `[vocab, c]`):
//!   each output is a dot product of contiguous memory, one column after the next;
//! - any other strides: a plain strided loop (correct, not fast; no model uses it).
//!
//! Weights may be f32 or bf16; accumulation is always f32, and the f32 accumulators
//! go back to `matmul`, which rounds a bf16 product once (or not, for `matmul_f32`).
//! The activations (tiny) are first gathered into a
//! contiguous f32 buffer. One product big enough to share is split across the rayon
//! pool: by weight rows (the reduction axis, partial sums added after) when rows are
//! contiguous, so each thread streams one contiguous block; by output columns when
//! columns are. A batch of small products (attention heads) is split by batch entry.
//!
//! Kernels: the loops here, compiled per x86 vector level; AVX512_BF16 for bf16
//! weights where present (`gemv_bf16.rs`); on aarch64 NEON, and `bfdot` for bf16 on
//! CPUs with the BF16 extension (`gemv_neon.rs`).

use half::bf16;
use rayon::prelude::*;
use rg_core::backend::{MatmulDims, View};
use rg_core::{DType, Device, Error, Layout, Result};

use crate::aligned::AlignedVec;
use crate::simd::multiversion;
use crate::storage::CpuElement;
use crate::view::{typed, Typed};

const OP: &str = "matmul";

/// Rows of activations up to which [`matmul`] takes the product.
pub const MAX_ROWS: usize = 4;

/// Multiply-adds below which a product stays on the calling thread.
const PAR_MIN_WORK: usize = 1 << 16;

/// Output columns one parallel task computes at least (a multiple of 64 keeps the
/// vector loops whole).
const MIN_TASK_COLS: usize = 256;

/// The product's f32 accumulators (plus `bias`, `n` values already f32, on every row
/// when given) when it is skinny (`m <= MAX_ROWS`) and both operands are f32 or both
/// bf16; the caller gives them the result's dtype. `None` leaves it to the general
/// GEMM.
pub fn matmul(
    lhs: View<'_>,
    rhs: View<'_>,
    bias: Option<&[f32]>,
    dims: MatmulDims,
) -> Option<Result<AlignedVec<f32>>> {
    if dims.m == 0 || dims.m > MAX_ROWS {
        return None;
    }
    let with_bias = |mut out: AlignedVec<f32>| {
        if let Some(bias) = bias {
            for row in out.chunks_exact_mut(dims.n) {
                row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
        out
    };
    match (lhs.dtype(), rhs.dtype()) {
        (DType::F32, DType::F32) => Some(run::<f32>(lhs, rhs, dims).map(with_bias)),
        (DType::BF16, DType::BF16) => Some(run::<bf16>(lhs, rhs, dims).map(with_bias)),
        _ => None,
    }
}

/// An element the kernels read as f32.
pub trait Widen: CpuElement + Copy + Send + Sync {
    fn widen(self) -> f32;

    /// The dot product of the activations (`x` as they are, `xf` widened to f32) with
    /// one column by a dedicated kernel for this element type, where the CPU has one.
    fn dot_native(_x: &[Self], _xf: &[f32], _c: &[Self]) -> Option<f32> {
        None
    }

    /// Part of [`axpy_form`] by a dedicated kernel: adds weight rows `k0..done_rows`
    /// times the activations (`[m, k]`, as they are and widened) into columns
    /// `0..done_cols` of `y` (`[m, cols]`) and returns `(done_rows, done_cols)`; `None`
    /// when the CPU has no such kernel.
    #[allow(clippy::too_many_arguments)]
    fn axpy_native<'a>(
        _x: &[Self],
        _xf: &[f32],
        _k: usize,
        _row: &dyn Fn(usize) -> &'a [Self],
        _y: &mut [f32],
        _cols: usize,
        _k0: usize,
        _k1: usize,
    ) -> Option<(usize, usize)> {
        None
    }
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }

    #[cfg(target_arch = "aarch64")]
    fn dot_native(_x: &[Self], xf: &[f32], c: &[Self]) -> Option<f32> {
        super::gemv_neon::dot(xf, c)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn dot_native(x: &[Self], _xf: &[f32], c: &[Self]) -> Option<f32> {
        Some(super::gemv_simd128::dot_f32(x, c))
    }

    #[cfg(target_arch = "aarch64")]
    fn axpy_native<'a>(
        _x: &[Self],
        xf: &[f32],
        k: usize,
        row: &dyn Fn(usize) -> &'a [Self],
        y: &mut [f32],
        cols: usize,
        k0: usize,
        k1: usize,
    ) -> Option<(usize, usize)> {
        super::gemv_neon::axpy(xf, k, row, y, cols, (k0, k1))
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn axpy_native<'a>(
        x: &[Self],
        _xf: &[f32],
        k: usize,
        row: &dyn Fn(usize) -> &'a [Self],
        y: &mut [f32],
        cols: usize,
        k0: usize,
        k1: usize,
    ) -> Option<(usize, usize)> {
        super::gemv_simd128::axpy_rows(x, k, row, y, cols, k0, k1)
    }
}

impl Widen for bf16 {
    /// bf16 is the top half of an f32: a shift, which vectorises (unlike
    /// `bf16::to_f32`'s NaN branch; a NaN stays a NaN either way).
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }

    /// AVX512_BF16 on x86; on aarch64 `bfdot` where the CPU has BF16, else NEON; SIMD128
    /// (widening by a shift) in wasm32 builds.
    fn dot_native(x: &[Self], _xf: &[f32], c: &[Self]) -> Option<f32> {
        #[cfg(target_arch = "x86_64")]
        let found = super::gemv_bf16::dot(x, c);
        #[cfg(target_arch = "aarch64")]
        let found = super::gemv_neon::dot_bf16(x, c).or_else(|| super::gemv_neon::dot(_xf, c));
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let found = (c.len() >= x.len()).then(|| super::gemv_simd128::dot_bf16(x, c));
        #[cfg(not(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )))]
        let found = {
            let _ = (x, c);
            None
        };
        found
    }

    fn axpy_native<'a>(
        x: &[Self],
        _xf: &[f32],
        k: usize,
        row: &dyn Fn(usize) -> &'a [Self],
        y: &mut [f32],
        cols: usize,
        k0: usize,
        k1: usize,
    ) -> Option<(usize, usize)> {
        #[cfg(target_arch = "x86_64")]
        let found = super::gemv_bf16::axpy_pairs(x, k, row, y, cols, k0, k1);
        #[cfg(target_arch = "aarch64")]
        let found = super::gemv_neon::axpy_pairs_bf16(x, k, row, y, cols, (k0, k1))
            .or_else(|| super::gemv_neon::axpy(_xf, k, row, y, cols, (k0, k1)));
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let found = {
            let _ = (x, k, row, y, cols, k0, k1);
            None
        };
        found
    }
}

/// Where each of `batch` matrices `[rows, cols]` starts in `layout` (`[.., rows, cols]`
/// with batch axes of `batch` elements, or of one element repeated), and its row and
/// column strides.
fn matrices(
    layout: &Layout,
    batch: usize,
    rows: usize,
    cols: usize,
    what: &str,
) -> Result<(Vec<usize>, usize, usize)> {
    let (dims, strides) = (layout.dims(), layout.strides());
    let rank = dims.len();
    let mismatch = || {
        Error::backend(
            Device::Cpu,
            OP,
            format!("{what} has shape {dims:?}, expected [{batch}, {rows}, {cols}] (or a broadcast of [{rows}, {cols}])"),
        )
    };
    if rank < 2 || dims[rank - 2] != rows || dims[rank - 1] != cols {
        return Err(mismatch());
    }
    let (lead, lead_strides) = (&dims[..rank - 2], &strides[..rank - 2]);
    let count: usize = lead.iter().product();
    if count != batch && count != 1 {
        return Err(mismatch());
    }
    let starts = (0..batch)
        .map(|i| {
            // Row-major decomposition of batch index `i` over the leading axes.
            let (mut rest, mut at) = (if count == 1 { 0 } else { i }, layout.offset());
            for (&d, &s) in lead.iter().zip(lead_strides).rev() {
                at += (rest % d) * s;
                rest /= d;
            }
            at
        })
        .collect();
    Ok((starts, strides[rank - 2], strides[rank - 1]))
}

/// Contiguous activations `[m, k]` (of one batch entry, or all of them), in the
/// operands' dtype and widened to f32.
#[derive(Clone, Copy)]
struct Acts<'a, W> {
    f32s: &'a [f32],
    native: &'a [W],
}

impl<'a, W> Acts<'a, W> {
    /// Batch entry `i` of entries of `len` elements each.
    fn entry(&self, i: usize, len: usize) -> Acts<'a, W> {
        Acts {
            f32s: &self.f32s[i * len..(i + 1) * len],
            native: &self.native[i * len..(i + 1) * len],
        }
    }
}

/// One weight matrix `[k, n]` inside its storage.
#[derive(Clone, Copy)]
struct Weight<'a, W> {
    data: &'a [W],
    start: usize,
    row_stride: usize,
    col_stride: usize,
    k: usize,
}

fn run<W: Widen>(lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<AlignedVec<f32>> {
    let MatmulDims { batch, m, n, k } = dims;
    let a: Typed<'_, W> = typed(lhs, OP)?;
    let b: Typed<'_, W> = typed(rhs, OP)?;
    let (a_starts, a_rs, a_cs) = matrices(a.layout, batch, m, k, "lhs")?;
    let (b_starts, b_rs, b_cs) = matrices(b.layout, batch, k, n, "rhs")?;
    let mut out = crate::pool::zeroed(batch * m * n);
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    // The activations of every batch entry as contiguous `[m, k]`, as they are and
    // widened to f32.
    let mut xh = Vec::with_capacity(batch * m * k);
    for &s in &a_starts {
        for i in 0..m {
            xh.extend((0..k).map(|j| a.data[s + i * a_rs + j * a_cs]));
        }
    }
    let x: Vec<f32> = xh.iter().map(|v| v.widen()).collect();
    let x = Acts {
        f32s: &x,
        native: &xh,
    };
    let weight = |i: usize| Weight {
        data: b.data,
        start: b_starts[i],
        row_stride: b_rs,
        col_stride: b_cs,
        k,
    };
    let parallel = rayon::current_num_threads() > 1 && batch * m * n * k >= PAR_MIN_WORK;
    if batch > 1 && parallel {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, y)| product(x.entry(i, m * k), weight(i), y, 0, n));
    } else if parallel && b_cs == 1 {
        rows_parallel(x, weight(0), &mut out, m, n);
    } else if parallel {
        columns_parallel(x, weight(0), &mut out, m, n);
    } else {
        for (i, y) in out.chunks_mut(m * n).enumerate() {
            product(x.entry(i, m * k), weight(i), y, 0, n);
        }
    }
    if parallel {
        crate::parallel::keep_workers_warm();
    }
    Ok(out)
}

/// One product with contiguous weight rows split by those rows (the reduction axis):
/// each task streams one contiguous block of the weight front to back, the access
/// pattern hardware prefetchers serve best, into its own partial `[m, n]` sums, added
/// in task order (so the result does not depend on scheduling).
fn rows_parallel<W: Widen>(x: Acts<'_, W>, w: Weight<'_, W>, out: &mut [f32], m: usize, n: usize) {
    let tasks = rayon::current_num_threads() * 2;
    let rows = w.k.div_ceil(tasks).div_ceil(4) * 4;
    let partials: Vec<Vec<f32>> = (0..w.k.div_ceil(rows))
        .into_par_iter()
        .map(|t| {
            let mut y = vec![0f32; m * n];
            axpy_form(x, w, &mut y, 0, n, m, t * rows, ((t + 1) * rows).min(w.k));
            y
        })
        .collect();
    for y in partials {
        axpy1(out, &y, 1.0);
    }
}

/// One product split by output columns across the pool (columns contiguous: each task reads one contiguous block of them); each task fills its own
/// `[m, width]` block, copied into place afterwards (the blocks of an `m > 1` output
/// are not contiguous).
fn columns_parallel<W: Widen>(
    x: Acts<'_, W>,
    w: Weight<'_, W>,
    out: &mut [f32],
    m: usize,
    n: usize,
) {
    let tasks = rayon::current_num_threads() * 2;
    let width = n.div_ceil(tasks).div_ceil(64).max(1) * 64;
    let width = width.max(MIN_TASK_COLS).min(n);
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|t| {
            let (j0, j1) = (t * width, ((t + 1) * width).min(n));
            let mut y = vec![0f32; m * (j1 - j0)];
            product(x, w, &mut y, j0, j1);
            (j0, y)
        })
        .collect();
    for (j0, y) in blocks {
        let cols = y.len() / m;
        for (i, row) in y.chunks_exact(cols).enumerate() {
            out[i * n + j0..i * n + j0 + cols].copy_from_slice(row);
        }
    }
}

/// `y = x · w[:, j0..j1]` for `x` contiguous `[m, k]`, `y` contiguous `[m, j1 - j0]`.
fn product<W: Widen>(acts: Acts<'_, W>, w: Weight<'_, W>, y: &mut [f32], j0: usize, j1: usize) {
    let x = acts.f32s;
    let (k, cols) = (w.k, j1 - j0);
    if cols == 0 {
        return;
    }
    let m = y.len() / cols;
    if w.col_stride == 1 || w.row_stride != 1 && cols == 1 {
        axpy_form(acts, w, y, j0, j1, m, 0, k);
    } else if w.row_stride == 1 || k == 1 {
        dot_form(acts, w, y, j0, j1, m);
    } else {
        for i in 0..m {
            for (jj, j) in (j0..j1).enumerate() {
                let base = w.start + j * w.col_stride;
                y[i * cols + jj] = (0..k)
                    .map(|kk| x[i * k + kk] * w.data[base + kk * w.row_stride].widen())
                    .sum();
            }
        }
    }
}

/// Rows of `w` are contiguous: `y[i] += x[i, kk] * w[kk, j0..j1]` for `kk` in
/// `k0..k1`, four rows of `w` per pass over `y`, so `y` (in L1) is loaded and stored
/// once per four weight rows.
#[allow(clippy::too_many_arguments)]
fn axpy_form<W: Widen>(
    x: Acts<'_, W>,
    w: Weight<'_, W>,
    y: &mut [f32],
    j0: usize,
    j1: usize,
    m: usize,
    k0: usize,
    k1: usize,
) {
    let (k, cols) = (w.k, j1 - j0);
    let row = |kk: usize| {
        let s = w.start + kk * w.row_stride + j0;
        &w.data[s..s + cols]
    };
    // A dedicated instruction may take a block of rows and columns first; the
    // portable loop does what it left.
    let (done_rows, done_cols) =
        W::axpy_native(x.native, x.f32s, k, &row, y, cols, k0, k1).unwrap_or((k0, 0));
    if done_cols > 0 {
        axpy_portable(x.f32s, k, &row, y, m, cols, k0..done_rows, done_cols..cols);
    }
    axpy_portable(x.f32s, k, &row, y, m, cols, done_rows..k1, 0..cols);
}

/// `y[i, c] += x[i, kk] * row(kk)[c]` for `kk` in `rows` and `c` in `part`.
#[allow(clippy::too_many_arguments)]
fn axpy_portable<'a, W: Widen>(
    x: &[f32],
    k: usize,
    row: &dyn Fn(usize) -> &'a [W],
    y: &mut [f32],
    m: usize,
    cols: usize,
    rows: std::ops::Range<usize>,
    part: std::ops::Range<usize>,
) {
    let mut kk = rows.start;
    while kk + 4 <= rows.end {
        let r: [&[W]; 4] = std::array::from_fn(|q| &row(kk + q)[part.clone()]);
        for (i, yi) in y.chunks_exact_mut(cols).enumerate().take(m) {
            let xi = &x[i * k + kk..i * k + kk + 4];
            axpy4(
                &mut yi[part.clone()],
                r[0],
                r[1],
                r[2],
                r[3],
                xi[0],
                xi[1],
                xi[2],
                xi[3],
            );
        }
        kk += 4;
    }
    while kk < rows.end {
        let r = &row(kk)[part.clone()];
        for (i, yi) in y.chunks_exact_mut(cols).enumerate().take(m) {
            axpy1(&mut yi[part.clone()], r, x[i * k + kk]);
        }
        kk += 1;
    }
}

multiversion! {
    fn axpy4<W>(y: &mut [f32], r0: &[W], r1: &[W], r2: &[W], r3: &[W], x0: f32, x1: f32, x2: f32, x3: f32)
    where [W: Widen]
    {
        let n = y.len();
        let (r0, r1, r2, r3) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n]);
        for j in 0..n {
            y[j] += x0 * r0[j].widen() + x1 * r1[j].widen() + x2 * r2[j].widen() + x3 * r3[j].widen();
        }
    }
}

multiversion! {
    fn axpy1<W>(y: &mut [f32], r: &[W], x: f32) where [W: Widen] {
        let r = &r[..y.len()];
        for (yj, rj) in y.iter_mut().zip(r) {
            *yj += x * rj.widen();
        }
    }
}

/// Columns of `w` are contiguous: each output is a dot product, taken one column after
/// the next, so the weight is read as one sequential stream. (Interleaving four columns
/// to share the activation loads, as this did before, read the LM head at 13 GB/s on
/// one thread in f32 and 11.5 in bf16, against 16 and 13-17 column by column; two and
/// eight columns were slower still.)
fn dot_form<W: Widen>(
    x: Acts<'_, W>,
    w: Weight<'_, W>,
    y: &mut [f32],
    j0: usize,
    j1: usize,
    m: usize,
) {
    let (k, cols) = (w.k, j1 - j0);
    for j in j0..j1 {
        let s = w.start + j * w.col_stride;
        let col = &w.data[s..s + k];
        for i in 0..m {
            let row = i * k..(i + 1) * k;
            y[i * cols + j - j0] = W::dot_native(&x.native[row.clone()], &x.f32s[row.clone()], col)
                .unwrap_or_else(|| dot(&x.f32s[row], col));
        }
    }
}

/// Lanes of the partial sums in [`dot`]: one 512-bit register of f32.
const LANES: usize = 16;
/// Independent partial sums in [`dot`], so additions do not wait on one another.
const CHAINS: usize = 4;

multiversion! {
    fn dot<W>(x: &[f32], c: &[W]) -> f32 where [W: Widen] {
        let k = x.len();
        let c = &c[..k];
        // Lane-wise partial sums vectorise (a single running sum would not: float
        // addition does not reassociate).
        let mut acc = [[0f32; LANES]; CHAINS];
        let step = LANES * CHAINS;
        let whole = k / step * step;
        for (xs, cs) in x[..whole].chunks_exact(step).zip(c[..whole].chunks_exact(step)) {
            for (a, (xs, cs)) in acc.iter_mut().zip(xs.chunks_exact(LANES).zip(cs.chunks_exact(LANES))) {
                for l in 0..LANES {
                    a[l] += xs[l] * cs[l].widen();
                }
            }
        }
        let tail: f32 = (whole..k).map(|q| x[q] * c[q].widen()).sum();
        acc.iter().flatten().sum::<f32>() + tail
    }
}
