//! The backward pass, one task per (batch entry, head), so that no two tasks write the
//! same rows of `dk` and `dv`. A task walks the keys in blocks of `BK` and, for each,
//! the blocks of `BQ` queries that can see them; per pair of blocks, with `P` rebuilt
//! from the stored log-sum-exp and `D_i = dout_i . out_i`:
//!
//! `dV += P^T dO`, `dP = dO V^T`, `dS = scale P (dP - D)`, `dK += dS^T Q`, `dQ += dS K`.
//!
//! As in the forward pass the tiles are kept transposed (keys as rows, queries along
//! the vectors); `dK` and `dV` of the key block stay in small tiles until its query
//! blocks are done, `dQ` of the whole head accumulates in one `[t, d]` buffer.

use rayon::prelude::*;

use super::causal::Block;
use super::rows::{Heads, RowTasks, Rows};
use super::tile::{Lhs, Rhs, Shape, Tile};
use super::{Dims, BK, BQ};
use crate::aligned::AlignedVec;
use crate::kernels::lanes;
use crate::math::Real;
use crate::simd::multiversion;

/// The forward pass's inputs and results, and the gradient of its output.
pub struct Inputs<'a, T: Clone> {
    pub q: Heads<'a, T>,
    pub k: Heads<'a, T>,
    pub v: Heads<'a, T>,
    pub out: Heads<'a, T>,
    pub dout: Heads<'a, T>,
    /// `[b, h, t]`, contiguous.
    pub lse: &'a [T],
}

/// `dq` (`[b, t, h, d]`), `dk` and `dv` (`[b, s, h, d]`).
pub fn backward<T: Tile>(
    x: &Inputs<'_, T>,
    dims: Dims,
    scale: T,
) -> (AlignedVec<T>, AlignedVec<T>, AlignedVec<T>) {
    let Dims { b, t, s, h, d } = dims;
    // The heads' tasks write every row, unless there are no queries: then the keys'
    // and values' gradients are zeros.
    let alloc = if t == 0 {
        crate::pool::zeroed::<T>
    } else {
        crate::pool::for_overwrite::<T>
    };
    let mut dq = alloc(b * t * h * d);
    let mut dk = alloc(b * s * h * d);
    let mut dv = alloc(b * s * h * d);
    if dq.is_empty() {
        return (dq, dk, dv);
    }
    let dq_rows = RowTasks::new(&mut dq, dims.q_dims(), t);
    let dk_rows = RowTasks::new(&mut dk, dims.k_dims(), s);
    let dv_rows = RowTasks::new(&mut dv, dims.k_dims(), s);
    (0..dq_rows.len()).into_par_iter().for_each_init(
        || Scratch::new(dims),
        |scratch, task| {
            let (bi, hi) = (task / h, task % h);
            let head = Head {
                q: x.q.head(bi, hi),
                k: x.k.head(bi, hi),
                v: x.v.head(bi, hi),
                out: x.out.head(bi, hi),
                dout: x.dout.head(bi, hi),
                lse: &x.lse[task * t..][..t],
            };
            // SAFETY: each task index comes once from the range above.
            let grads = unsafe {
                Grads {
                    dq: dq_rows.rows(task),
                    dk: dk_rows.rows(task),
                    dv: dv_rows.rows(task),
                }
            };
            backward_head(&head, dims, scale, grads, scratch);
        },
    );
    (dq, dk, dv)
}

/// One head's inputs.
struct Head<'a, T> {
    q: Rows<'a, T>,
    k: Rows<'a, T>,
    v: Rows<'a, T>,
    out: Rows<'a, T>,
    dout: Rows<'a, T>,
    lse: &'a [T],
}

/// One head's output rows.
struct Grads<'a, T> {
    dq: Vec<&'a mut [T]>,
    dk: Vec<&'a mut [T]>,
    dv: Vec<&'a mut [T]>,
}

/// A task's working memory, reused by the tasks of one rayon job.
struct Scratch<T> {
    /// The head's queries, transposed and scaled, and its output gradients
    /// transposed, both `[d, t]`.
    qt: Vec<T>,
    dot: Vec<T>,
    /// `D_i = dout_i . out_i`, `[t]`.
    dd: Vec<T>,
    /// The head's `dq`, `[t, d]`.
    dq: Vec<T>,
    /// One key block's `dk` and `dv`, `[nk, d]`.
    dk: Vec<T>,
    dv: Vec<T>,
    /// Tiles `[nk, nq]`: probabilities, and gradients of probabilities then scores.
    p: Vec<T>,
    ds: Vec<T>,
}

impl<T: Real> Scratch<T> {
    fn new(dims: Dims) -> Self {
        let (t, d) = (dims.t, dims.d);
        let z = |n: usize| vec![T::zero(); n];
        Scratch {
            qt: z(d * t),
            dot: z(d * t),
            dd: z(t),
            dq: z(t * d),
            dk: z(BK * d),
            dv: z(BK * d),
            p: z(BK * BQ),
            ds: z(BK * BQ),
        }
    }
}

fn backward_head<T: Tile>(
    x: &Head<'_, T>,
    dims: Dims,
    scale: T,
    mut g: Grads<'_, T>,
    sc: &mut Scratch<T>,
) {
    let Dims { t, s, d, .. } = dims;
    let off = dims.off();
    T::transpose(x.q.data, x.q.stride, t, d, scale, &mut sc.qt, t);
    T::transpose(x.dout.data, x.dout.stride, t, d, T::one(), &mut sc.dot, t);
    for (i, di) in sc.dd.iter_mut().enumerate() {
        *di = lanes::sum_zip(x.dout.row(i, d), x.out.row(i, d), |a, b| a * b);
    }
    sc.dq.fill(T::zero());
    let (qt, dot) = (
        Rhs {
            data: &sc.qt,
            ld: t,
        },
        Rhs {
            data: &sc.dot,
            ld: t,
        },
    );
    for k0 in (0..s).step_by(BK) {
        let nk = BK.min(s - k0);
        let (k, v) = (x.k.from(k0), x.v.from(k0));
        let (dk, dv) = (&mut sc.dk[..nk * d], &mut sc.dv[..nk * d]);
        dk.fill(T::zero());
        dv.fill(T::zero());
        for q0 in (k0.saturating_sub(off)..t).step_by(BQ) {
            let blk = Block {
                k0,
                nk,
                q0,
                nq: BQ.min(t - q0),
                off,
            };
            let tiles = Tiles {
                p: &mut sc.p[..nk * blk.nq],
                ds: &mut sc.ds[..nk * blk.nq],
            };
            let lse = &x.lse[q0..q0 + blk.nq];
            let dd = &sc.dd[q0..q0 + blk.nq];
            let x = Pair {
                k,
                v,
                q: x.q.from(q0),
                dout: x.dout.from(q0),
                qt: cols(qt, q0),
                dot: cols(dot, q0),
            };
            let acc = Acc {
                dk: &mut *dk,
                dv: &mut *dv,
                dq: &mut sc.dq[q0 * d..],
            };
            pair(&blk, &x, lse, dd, scale, d, tiles, acc);
        }
        for (jj, (dkj, dvj)) in g.dk[k0..k0 + nk]
            .iter_mut()
            .zip(&mut g.dv[k0..k0 + nk])
            .enumerate()
        {
            dkj.copy_from_slice(&dk[jj * d..][..d]);
            dvj.copy_from_slice(&dv[jj * d..][..d]);
        }
    }
    for (i, dqi) in g.dq.into_iter().enumerate() {
        dqi.copy_from_slice(&sc.dq[i * d..][..d]);
    }
}

/// One head's operands for a pair of blocks, each from the block's first row (`qt`
/// and `dot` from its first column).
struct Pair<'a, T> {
    k: Rows<'a, T>,
    v: Rows<'a, T>,
    q: Rows<'a, T>,
    dout: Rows<'a, T>,
    qt: Rhs<'a, T>,
    dot: Rhs<'a, T>,
}

/// The pair's `[nk, nq]` tiles: probabilities, and gradients of probabilities then of
/// scores.
struct Tiles<'a, T> {
    p: &'a mut [T],
    ds: &'a mut [T],
}

/// Where the pair adds its gradients: the key block's `dk` and `dv` tiles and the
/// query block's rows of the head's `dq`.
struct Acc<'a, T> {
    dk: &'a mut [T],
    dv: &'a mut [T],
    dq: &'a mut [T],
}

/// One key block against one query block.
#[allow(clippy::too_many_arguments)]
fn pair<T: Tile>(
    blk: &Block,
    x: &Pair<'_, T>,
    lse: &[T],
    dd: &[T],
    scale: T,
    d: usize,
    tiles: Tiles<'_, T>,
    acc: Acc<'_, T>,
) {
    let nq = blk.nq;
    let Tiles { p, ds } = tiles;
    for (j0, count, c) in blk.key_groups() {
        let shape = Shape {
            m: count,
            n: nq - c,
            k: d,
        };
        let at = j0 * nq + c;
        T::product(
            shape,
            rows_of(x.k.from(j0)),
            cols(x.qt, c),
            &mut p[at..],
            nq,
            false,
        );
        T::product(
            shape,
            rows_of(x.v.from(j0)),
            cols(x.dot, c),
            &mut ds[at..],
            nq,
            false,
        );
    }
    blk.mask(p);
    score_grads(p, ds, lse, dd, scale);
    for (j0, count, c) in blk.key_groups() {
        let shape = Shape {
            m: count,
            n: d,
            k: nq - c,
        };
        let (dv, dk) = (&mut acc.dv[j0 * d..], &mut acc.dk[j0 * d..]);
        let (p, ds) = (&p[j0 * nq + c..], &ds[j0 * nq + c..]);
        T::product(
            shape,
            tile_rows(p, nq),
            rows_rhs(x.dout.from(c)),
            dv,
            d,
            true,
        );
        T::product(shape, tile_rows(ds, nq), rows_rhs(x.q.from(c)), dk, d, true);
    }
    for (i0, count, keys) in blk.query_groups() {
        let shape = Shape {
            m: count,
            n: d,
            k: keys,
        };
        let ds_t = Lhs {
            data: &ds[i0..],
            lane: 1,
            depth: nq,
        };
        T::product(shape, ds_t, rows_rhs(x.k), &mut acc.dq[i0 * d..], d, true);
    }
}

/// Rows of a `[nk, nq]` tile (from any element on) as the left operand.
fn tile_rows<T>(tile: &[T], nq: usize) -> Lhs<'_, T> {
    Lhs {
        data: tile,
        lane: nq,
        depth: 1,
    }
}

/// Columns `j0..` of a right operand.
fn cols<T>(r: Rhs<'_, T>, j0: usize) -> Rhs<'_, T> {
    Rhs {
        data: &r.data[j0..],
        ld: r.ld,
    }
}

/// Head rows as the left operand (rows `stride` apart, depth along a row).
fn rows_of<T>(r: Rows<'_, T>) -> Lhs<'_, T> {
    Lhs {
        data: r.data,
        lane: r.stride,
        depth: 1,
    }
}

/// Head rows as the right operand.
fn rows_rhs<T>(r: Rows<'_, T>) -> Rhs<'_, T> {
    Rhs {
        data: r.data,
        ld: r.stride,
    }
}

multiversion! {
    /// Scores to probabilities, `p = exp(s - lse)`, and probability gradients to score
    /// gradients, `ds = scale p (dp - D)`, both in place on `[nk, nq]` tiles. Hidden
    /// entries of `ds` are zero whatever `dp` holds there (the tile products skip most
    /// of them, leaving earlier tiles' values).
    fn score_grads<T>(p: &mut [T], ds: &mut [T], lse: &[T], dd: &[T], scale: T)
    where [T: Real]
    {
        let nq = lse.len();
        for (prow, dsrow) in p.chunks_exact_mut(nq).zip(ds.chunks_exact_mut(nq)) {
            for (((pv, g), &l), &di) in prow.iter_mut().zip(dsrow).zip(lse).zip(dd) {
                *pv = (*pv - l).exp_v();
                let grad = scale * *pv * (*g - di);
                *g = if *pv == T::zero() { T::zero() } else { grad };
            }
        }
    }
}
