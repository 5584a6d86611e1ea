//! The forward pass: one task per (batch entry, head, block of `BQ` queries). A task
//! walks the keys its queries can see in blocks of `BK`; for each it forms the score
//! tile `S^T = K_blk (scale Q_blk)^T` (keys as rows, queries along the vectors, so the
//! softmax's per-query max and sum are plain vertical operations), folds it into the
//! running max and sum (the online softmax), and adds `P V_blk` to the block's output.
//! Key blocks no query of the task can see are never visited, and tiles crossing the
//! diagonal skip most of their hidden part (`causal`).
//!
//! Decoding (a handful of queries) takes a row path instead: with the query axis as
//! the vector axis a single query would fill one lane in sixteen, so each query's
//! scores are `s` dot products over `d` and its output a sum of value rows.

use rayon::prelude::*;

use super::causal::Block;
use super::rows::{Heads, RowTasks, Rows};
use super::tile::{Lhs, Rhs, Shape, Tile};
use super::{Dims, BK, BQ};
use crate::aligned::AlignedVec;
use crate::kernels::lanes;
use crate::math::Real;
use crate::simd::multiversion;

/// Fewer queries than this per head take the row path.
const ROW_PATH_MAX: usize = 4;

/// `out` (`[b, t, h, d]`) and `lse` (`[b, h, t]`).
pub fn forward<T: Tile>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    dims: Dims,
    scale: T,
) -> (AlignedVec<T>, AlignedVec<T>) {
    let Dims { b, t, h, d, .. } = dims;
    // Every output row and log-sum-exp is written below.
    let mut out = crate::pool::for_overwrite(b * t * h * d);
    let mut lse = crate::pool::for_overwrite(b * h * t);
    if lse.is_empty() {
        return (out, lse);
    }
    if d == 0 {
        // Every score is 0: each query spreads evenly over the keys it sees.
        for row in lse.chunks_exact_mut(t) {
            for (i, l) in row.iter_mut().enumerate() {
                *l = T::from_f64(((i + dims.off() + 1) as f64).ln());
            }
        }
        return (out, lse);
    }
    let block = if t < ROW_PATH_MAX { t } else { BQ };
    let tasks = RowTasks::new(&mut out, dims.q_dims(), block);
    let lse_blocks = lse.chunks_mut(t).flat_map(|l| l.chunks_mut(block));
    let blocks = t.div_ceil(block);
    let work: Vec<_> = lse_blocks.enumerate().collect();
    work.into_par_iter().for_each_init(
        || Scratch::new(dims),
        |scratch, (task, lse)| {
            // SAFETY: each task index comes once from the enumeration above.
            let rows = unsafe { tasks.rows(task) };
            let (head, qb) = (task / blocks, task % blocks);
            let (bi, hi) = (head / h, head % h);
            let x = Head {
                q: q.head(bi, hi),
                k: k.head(bi, hi),
                v: v.head(bi, hi),
            };
            if block < ROW_PATH_MAX {
                by_rows(&x, dims, scale, rows, lse, scratch);
            } else {
                by_blocks(&x, dims, qb * block, scale, rows, lse, scratch);
            }
        },
    );
    (out, lse)
}

/// One head's inputs.
struct Head<'a, T> {
    q: Rows<'a, T>,
    k: Rows<'a, T>,
    v: Rows<'a, T>,
}

/// A task's working memory, reused by the tasks of one rayon job.
struct Scratch<T> {
    /// The query block transposed and scaled, `[d, nq]`; or one scaled query.
    qt: Vec<T>,
    /// A score tile `[nk, nq]`; or one query's scores.
    st: Vec<T>,
    /// The block's unnormalised output `[nq, d]`.
    o: Vec<T>,
    /// Running max and sum of each query's scores, and this key block's rescaling.
    m: Vec<T>,
    l: Vec<T>,
    alpha: Vec<T>,
}

impl<T: Real> Scratch<T> {
    fn new(dims: Dims) -> Self {
        let z = |n: usize| vec![T::zero(); n];
        Scratch {
            qt: z(dims.d * BQ),
            st: z((BK * BQ).max(dims.s)),
            o: z(BQ * dims.d),
            m: z(BQ),
            l: z(BQ),
            alpha: z(BQ),
        }
    }
}

/// Queries `q0..q0 + rows.len()` of one head.
fn by_blocks<T: Tile>(
    x: &Head<'_, T>,
    dims: Dims,
    q0: usize,
    scale: T,
    mut rows: Vec<&mut [T]>,
    lse: &mut [T],
    sc: &mut Scratch<T>,
) {
    let (d, off, nq) = (dims.d, dims.off(), rows.len());
    let qt = &mut sc.qt[..d * nq];
    let q = x.q.from(q0);
    T::transpose(q.data, q.stride, nq, d, scale, qt, nq);
    let (m, l, alpha) = (&mut sc.m[..nq], &mut sc.l[..nq], &mut sc.alpha[..nq]);
    m.fill(T::neg_infinity());
    l.fill(T::zero());
    let o = &mut sc.o[..nq * d];
    o.fill(T::zero());
    // Keys from `end` on are hidden from every query of the block.
    let end = q0 + nq + off;
    for k0 in (0..end).step_by(BK) {
        let blk = Block {
            k0,
            nk: BK.min(end - k0),
            q0,
            nq,
            off,
        };
        let (k, v) = (x.k.from(k0), x.v.from(k0));
        let st = &mut sc.st[..blk.nk * nq];
        for (j0, count, c) in blk.key_groups() {
            let shape = Shape {
                m: count,
                n: nq - c,
                k: d,
            };
            let keys = Lhs {
                data: k.from(j0).data,
                lane: k.stride,
                depth: 1,
            };
            let queries = Rhs {
                data: &qt[c..],
                ld: nq,
            };
            T::product(shape, keys, queries, &mut st[j0 * nq + c..], nq, false);
        }
        blk.mask(st);
        online_softmax(st, m, l, alpha, o, d);
        for (i0, count, keys) in blk.query_groups() {
            let shape = Shape {
                m: count,
                n: d,
                k: keys,
            };
            let probs = Lhs {
                data: &st[i0..],
                lane: 1,
                depth: nq,
            };
            let values = Rhs {
                data: v.data,
                ld: v.stride,
            };
            T::product(shape, probs, values, &mut o[i0 * d..], d, true);
        }
    }
    for (i, row) in rows.iter_mut().enumerate() {
        let inv = l[i].recip();
        for (y, &x) in row.iter_mut().zip(&o[i * d..][..d]) {
            *y = x * inv;
        }
        lse[i] = m[i] + l[i].ln();
    }
}

multiversion! {
    /// Folds a tile of scores `st` (`[nk, nq]`) into each query's running max `m` and
    /// sum `l`, leaving the tile's probabilities (relative to the new max) in `st` and
    /// rescaling the output rows `o` (`[nq, d]`) computed against the old max.
    fn online_softmax<T>(st: &mut [T], m: &mut [T], l: &mut [T], alpha: &mut [T], o: &mut [T], d: usize)
    where [T: Real]
    {
        let nq = m.len();
        let mut c0 = 0;
        while c0 + LANES <= nq {
            fold_columns::<T, LANES>(st, c0, m, l, alpha);
            c0 += LANES;
        }
        for c in c0..nq {
            fold_columns::<T, 1>(st, c, m, l, alpha);
        }
        for (orow, &a) in o.chunks_exact_mut(d).zip(alpha.iter()) {
            orow.iter_mut().for_each(|x| *x = *x * a);
        }
    }
}

/// Queries per pass of [`online_softmax`]: one zmm vector of f32.
const LANES: usize = 16;

/// [`online_softmax`] for the tile's columns `c0..c0 + W`, their max and sum held in
/// registers down the whole tile (a loop over full rows would load and store them
/// once per row).
#[inline(always)]
fn fold_columns<T: Real, const W: usize>(
    st: &mut [T],
    c0: usize,
    m: &mut [T],
    l: &mut [T],
    alpha: &mut [T],
) {
    let nq = m.len();
    let old: [T; W] = std::array::from_fn(|i| m[c0 + i]);
    let mut max = old;
    for row in st.chunks_exact(nq) {
        let r: &[T; W] = row[c0..c0 + W].try_into().expect("W columns");
        for (x, &s) in max.iter_mut().zip(r) {
            *x = if s > *x { s } else { *x };
        }
    }
    // Every query sees key 0, so after the first tile the max is finite and the
    // first tile's rescaling is `exp(-inf) = 0`.
    let a: [T; W] = std::array::from_fn(|i| (old[i] - max[i]).exp_v());
    let mut sum: [T; W] = std::array::from_fn(|i| l[c0 + i] * a[i]);
    for row in st.chunks_exact_mut(nq) {
        let r: &mut [T; W] = (&mut row[c0..c0 + W]).try_into().expect("W columns");
        for ((x, &mx), acc) in r.iter_mut().zip(&max).zip(sum.iter_mut()) {
            *x = (*x - mx).exp_v();
            *acc = *acc + *x;
        }
    }
    m[c0..c0 + W].copy_from_slice(&max);
    l[c0..c0 + W].copy_from_slice(&sum);
    alpha[c0..c0 + W].copy_from_slice(&a);
}

/// The row path: each query of one head on its own.
fn by_rows<T: Real>(
    x: &Head<'_, T>,
    dims: Dims,
    scale: T,
    rows: Vec<&mut [T]>,
    lse: &mut [T],
    sc: &mut Scratch<T>,
) {
    let (d, off) = (dims.d, dims.off());
    for (i, (row, lse)) in rows.into_iter().zip(lse).enumerate() {
        let n = i + off + 1;
        let qi = &mut sc.qt[..d];
        qi.iter_mut()
            .zip(x.q.row(i, d))
            .for_each(|(y, &v)| *y = scale * v);
        let (k, v) = (x.k, x.v);
        let p = &mut sc.st[..n];
        *lse = T::attention_row_native(qi, k.data, k.stride, v.data, v.stride, p, row)
            .unwrap_or_else(|| query_row(qi, k.data, k.stride, v.data, v.stride, p, row));
    }
}

multiversion! {
    /// One (scaled) query `qi` against the first `p.len()` keys `k` and values `v`
    /// (rows `ks` and `vs` apart): writes the softmax-weighted sum of values to `out`
    /// and returns the log-sum-exp of the scores (`p` is scratch).
    fn query_row<T>(qi: &[T], k: &[T], ks: usize, v: &[T], vs: usize, p: &mut [T], out: &mut [T]) -> T
    where [T: Real]
    {
        let d = qi.len();
        for (j, pj) in p.iter_mut().enumerate() {
            *pj = lanes::sum_zip(qi, &k[j * ks..][..d], |a, b| a * b);
        }
        let m = lanes::max(p);
        p.iter_mut().for_each(|x| *x = (*x - m).exp_v());
        let l = lanes::sum(p);
        out.fill(T::zero());
        for (j, &pj) in p.iter().enumerate() {
            for (y, &x) in out.iter_mut().zip(&v[j * vs..][..d]) {
                *y = *y + pj * x;
            }
        }
        let inv = l.recip();
        out.iter_mut().for_each(|y| *y = *y * inv);
        m + l.ln()
    }
}
