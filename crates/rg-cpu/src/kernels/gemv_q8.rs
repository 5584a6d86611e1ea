//! Skinny products with a Q8_0 weight (decoding): `y = x · Wᵀ` for at most
//! [`super::gemv::MAX_ROWS`] rows of f32 activations and `W` `[n, k]` int8 with one f16
//! scale per 32 values of a row. Each weight row is contiguous along the reduction
//! axis, so every output is a dot product over one stream of memory, read in place.
//!
//! Three kernels, chosen once at run time (`RG_CPU_Q8=widen|avx2|vnni` forces one, for
//! measuring the others):
//!
//! - `vnni` (AVX512_VNNI with AVX512VL, as llama.cpp does): the activations are
//!   quantized per block of 32 to int8 once per call (their own scale), and each block
//!   of the product is one `vpdpbusd` (int8 × int8 summed into int32), converted to f32
//!   and scaled by weight scale × activation scale. `vpdpbusd` multiplies unsigned by
//!   signed bytes, so the weight is made unsigned by flipping its top bit (w + 128)
//!   and the sum starts from −128 · Σx of the same four lanes, computed once per call:
//!   one `vpxord` per 64 weights, and the activations are shared by all weight rows.
//! - `avx2` (AVX2 without AVX512_VNNI, e.g. AMD Zen 3): the same quantized
//!   activations, one block of 32 per `vpmaddubsw` + `vpmaddwd` pair (see
//!   [`super::gemv_q8_avx2`]).
//! - `widen` (portable, compiled per SIMD level): each weight is widened to f32 and
//!   multiplied by the f32 activation, exact in the activations.
//!
//! The work is split across the rayon pool by weight rows (output columns): each task
//! streams one contiguous range of the matrix.

use rayon::prelude::*;
use rg_core::{Q8Matrix, Q8_BLOCK};

use crate::simd::multiversion;

/// Multiply-adds below which a product stays on the calling thread.
const PAR_MIN_WORK: usize = 1 << 16;

/// Weight rows one parallel task takes at least.
const MIN_TASK_ROWS: usize = 64;

/// The decode kernel in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Widen,
    Avx2,
    Vnni,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Widen => "widen",
            Kernel::Avx2 => "avx2",
            Kernel::Vnni => "vnni",
        }
    }
}

/// The kernel `product` uses: `vnni` where the CPU has it, else `avx2`, else
/// `widen`; `RG_CPU_Q8` names one of them instead (an int8 kernel the CPU lacks runs
/// its scalar fallback).
pub fn kernel() -> Kernel {
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Kernel> = OnceLock::new();
    *CHOSEN.get_or_init(|| match std::env::var("RG_CPU_Q8").as_deref() {
        Ok("widen") => Kernel::Widen,
        Ok("avx2") => Kernel::Avx2,
        Ok("vnni") => Kernel::Vnni,
        _ if super::gemv_q8_vnni::available() => Kernel::Vnni,
        _ if super::gemv_q8_avx2::available() => Kernel::Avx2,
        _ => Kernel::Widen,
    })
}

/// `x` (`[m, k]`, contiguous, `m <= MAX_ROWS`) times `wᵀ`: `[m, n]` row-major.
pub fn product(x: &[f32], m: usize, w: &Q8Matrix) -> Vec<f32> {
    product_with(kernel(), x, m, w)
}

/// `product` with a given kernel (tests compare both against the reference).
pub fn product_with(kernel: Kernel, x: &[f32], m: usize, w: &Q8Matrix) -> Vec<f32> {
    let (n, k) = (w.rows(), w.cols());
    let acts = (kernel != Kernel::Widen).then(|| QuantizedActs::new(x, m, k));
    // Outputs transposed (`[n, m]`): a range of weight rows fills one contiguous range.
    let mut out_t = vec![0f32; n * m];
    let run = |r0: usize, out: &mut [f32]| match (kernel, &acts) {
        (Kernel::Vnni, Some(acts)) => super::gemv_q8_vnni::rows(acts, w, r0, m, out),
        (Kernel::Avx2, Some(acts)) => super::gemv_q8_avx2::rows(acts, w, r0, m, out),
        _ => rows_widen(x, w, r0, m, out),
    };
    if rayon::current_num_threads() > 1 && m * n * k >= PAR_MIN_WORK {
        let tasks = rayon::current_num_threads() * 4;
        let rows = n.div_ceil(tasks).max(MIN_TASK_ROWS);
        out_t
            .par_chunks_mut(rows * m)
            .enumerate()
            .for_each(|(t, out)| run(t * rows, out));
        crate::parallel::keep_workers_warm();
    } else {
        run(0, &mut out_t);
    }
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for (r, ys) in out_t.chunks_exact(m).enumerate() {
        for (i, &y) in ys.iter().enumerate() {
            out[i * n + r] = y;
        }
    }
    out
}

/// Activations quantized per block of 32 for the int8 kernel, each `[m, ..]`: the
/// signed values, one f32 scale per block, and per group of four values
/// `-128 · (their sum)`, the start of `vpdpbusd`'s sum over top-bit-flipped weights.
pub struct QuantizedActs {
    pub signed: Vec<i8>,
    pub scales: Vec<f32>,
    /// Read only by the AVX512_VNNI kernel, so only built where it is compiled.
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    pub corrections: Vec<i32>,
}

impl QuantizedActs {
    pub fn new(x: &[f32], m: usize, k: usize) -> Self {
        let x = &x[..m * k];
        let mut signed = Vec::with_capacity(x.len());
        let mut scales = Vec::with_capacity(x.len() / Q8_BLOCK);
        for block in x.chunks_exact(Q8_BLOCK) {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            scales.push(scale);
            signed.extend(
                block
                    .iter()
                    .map(|&v| (v * inverse).round().clamp(-127.0, 127.0) as i8),
            );
        }
        QuantizedActs {
            #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
            corrections: signed
                .chunks_exact(4)
                .map(|q| -128 * q.iter().map(|&v| v as i32).sum::<i32>())
                .collect(),
            signed,
            scales,
        }
    }
}

/// The int8 kernels' products in scalar code, for CPUs without their instructions
/// (and for `m` above 4): outputs of weight rows `r0..r0 + out.len() / m` into `out`
/// (`[rows, m]`).
pub(super) fn rows_int8_scalar(
    acts: &QuantizedActs,
    w: &Q8Matrix,
    r0: usize,
    m: usize,
    out: &mut [f32],
) {
    let k = w.cols();
    let blocks = k / Q8_BLOCK;
    for (r_local, ys) in out.chunks_exact_mut(m).enumerate() {
        let r = r0 + r_local;
        let row = &w.values()[r * k..(r + 1) * k];
        let scales = &w.scales()[r * blocks..(r + 1) * blocks];
        for (i, y) in ys.iter_mut().enumerate() {
            let xs = &acts.signed[i * k..(i + 1) * k];
            *y = (0..blocks)
                .map(|b| {
                    let span = b * Q8_BLOCK..(b + 1) * Q8_BLOCK;
                    let dot: i32 = row[span.clone()]
                        .iter()
                        .zip(&xs[span])
                        .map(|(&a, &b)| a as i32 * b as i32)
                        .sum();
                    dot as f32 * scales[b].to_f32() * acts.scales[i * blocks + b]
                })
                .sum();
        }
    }
}

/// Outputs of weight rows `r0..r0 + out.len() / m` into `out` (`[rows, m]`) by widening.
fn rows_widen(x: &[f32], w: &Q8Matrix, r0: usize, m: usize, out: &mut [f32]) {
    let k = w.cols();
    let blocks = k / Q8_BLOCK;
    let (values, scales) = (w.values(), w.scales());
    let mut scale_f32 = vec![0f32; blocks];
    for (r_local, ys) in out.chunks_exact_mut(m).enumerate() {
        let r = r0 + r_local;
        for (s, h) in scale_f32
            .iter_mut()
            .zip(&scales[r * blocks..(r + 1) * blocks])
        {
            *s = h.to_f32();
        }
        let row = &values[r * k..(r + 1) * k];
        for (i, y) in ys.iter_mut().enumerate() {
            *y = dot_widen(&x[i * k..(i + 1) * k], row, &scale_f32);
        }
    }
}

multiversion! {
    fn dot_widen(x: &[f32], v: &[i8], s: &[f32]) -> f32 {
        // One partial sum per lane of a block, so the loop vectorises.
        let mut acc = [0f32; Q8_BLOCK];
        for ((xb, vb), &s) in x.chunks_exact(Q8_BLOCK).zip(v.chunks_exact(Q8_BLOCK)).zip(s) {
            for l in 0..Q8_BLOCK {
                acc[l] += xb[l] * (vb[l] as f32 * s);
            }
        }
        acc.iter().sum()
    }
}
