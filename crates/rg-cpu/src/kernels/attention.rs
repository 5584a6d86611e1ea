//! Fused causal attention, forward and backward, one (batch, head) pair per task.
//!
//! The inputs are `[b, t, h, d]` with heads interleaved, so each is first gathered
//! head-major (`[b, h, t, d]`; keys and values also transposed to `[b, h, d, s]`, which
//! turns each query's scores into `d` unit-stride AXPYs over the keys instead of `s`
//! short dot products with a horizontal sum each). Queries are then walked one row at a
//! time: a query's scores are one `[s]` row, never a `[t, s]` matrix. The backward pass
//! recomputes each probability from the stored log-sum-exp, as FlashAttention does.

use rayon::prelude::*;
use rg_core::backend::{AttentionGrads, AttentionOutput, BoxStorage, View};
use rg_core::{DType, Device, Error, Layout, Result, Shape};

use super::{cast, lanes};
use crate::math::Real;
use crate::simd::multiversion;
use crate::strided::gather;
use crate::view::{boxed, common_dtype, typed, unsupported, Typed};

const OP: &str = "attention";
const OP_BACKWARD: &str = "attention_backward";

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    s: usize,
    h: usize,
    d: usize,
}

impl Dims {
    fn new(op: &'static str, q: &[usize], k: &[usize], v: &[usize]) -> Result<Self> {
        let fits = q.len() == 4
            && k.len() == 4
            && v == k
            && (k[0], k[2], k[3]) == (q[0], q[2], q[3])
            && k[1] >= q[1];
        if !fits {
            return Err(Error::backend(
                Device::Cpu,
                op,
                format!(
                    "q {q:?}, k {k:?}, v {v:?}: expected [b, t, h, d] and [b, s, h, d], s >= t"
                ),
            ));
        }
        Ok(Dims {
            b: q[0],
            t: q[1],
            s: k[1],
            h: q[2],
            d: q[3],
        })
    }

    fn heads(&self) -> usize {
        self.b * self.h
    }
}

/// `[b, n, h, d]` gathered as `[b, h, n, d]`, or as `[b, h, d, n]` with `transposed`.
fn head_major<T: Real>(x: &Typed<'_, T>, transposed: bool) -> Vec<T> {
    let (dims, st) = (x.layout.dims(), x.layout.strides());
    let (b, n, h, d) = (dims[0], dims[1], dims[2], dims[3]);
    let layout = if transposed {
        Layout::new(
            Shape::new([b, h, d, n]),
            vec![st[0], st[2], st[3], st[1]],
            x.layout.offset(),
        )
    } else {
        Layout::new(
            Shape::new([b, h, n, d]),
            vec![st[0], st[2], st[1], st[3]],
            x.layout.offset(),
        )
    };
    gather(x.data, &layout)
}

/// A head-major `[b, h, n, d]` buffer back in the interleaved `[b, n, h, d]` order.
fn interleaved<T: Real>(x: &[T], b: usize, n: usize, h: usize, d: usize) -> Vec<T> {
    let strides = vec![h * n * d, d, n * d, 1];
    gather(x, &Layout::new(Shape::new([b, n, h, d]), strides, 0))
}

pub fn attention(q: View<'_>, k: View<'_>, v: View<'_>, scale: f64) -> Result<AttentionOutput> {
    let dims = Dims::new(OP, q.dims(), k.dims(), v.dims())?;
    match common_dtype(OP, &[q, k, v])? {
        DType::F32 => forward::<f32>(q, k, v, dims, scale),
        DType::F64 => forward::<f64>(q, k, v, dims, scale),
        DType::BF16 => {
            let ([q, k, v], layouts) = widen([q, k, v])?;
            let [ql, kl, vl] = &layouts;
            let out = forward::<f32>(view(&q, ql), view(&k, kl), view(&v, vl), dims, scale)?;
            Ok(AttentionOutput {
                out: narrow_bf16(out.out, &[dims.b, dims.t, dims.h, dims.d])?,
                lse: out.lse,
            })
        }
        other => Err(unsupported(OP, other, "f32, f64 or bf16")),
    }
}

/// bf16 inputs computed in f32 (the accumulation type): each view widened to a
/// contiguous f32 copy, with its contiguous layout.
fn widen<const N: usize>(views: [View<'_>; N]) -> Result<([BoxStorage; N], [Layout; N])> {
    let layouts = views.map(|v| Layout::contiguous(Shape::new(v.dims())));
    let mut out = Vec::with_capacity(N);
    for v in views {
        out.push(cast::cast(v, DType::F32)?);
    }
    let out: [BoxStorage; N] = out.try_into().unwrap_or_else(|_| unreachable!("N casts"));
    Ok((out, layouts))
}

fn view<'a>(storage: &'a BoxStorage, layout: &'a Layout) -> View<'a> {
    View::new(&**storage, layout)
}

/// An f32 result rounded to bf16 for the caller.
fn narrow_bf16(x: BoxStorage, dims: &[usize]) -> Result<BoxStorage> {
    let layout = Layout::contiguous(Shape::new(dims));
    cast::cast(View::new(&*x, &layout), DType::BF16)
}

fn forward<T: Real>(
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    dims: Dims,
    scale: f64,
) -> Result<AttentionOutput> {
    let Dims { b, t, s, h, d } = dims;
    let q = head_major(&typed::<T>(q, OP)?, false);
    let kt = head_major(&typed::<T>(k, OP)?, true);
    let v = head_major(&typed::<T>(v, OP)?, false);
    let mut out = crate::pool::zeroed(b * h * t * d);
    let mut lse = crate::pool::zeroed(b * h * t);
    if out.is_empty() {
        return Ok(AttentionOutput {
            out: boxed(out),
            lse: boxed(lse),
        });
    }
    let scale = T::from_f64(scale);
    out.par_chunks_mut(t * d)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .for_each_init(
            || crate::pool::zeroed(s),
            |scores, (i, (out, lse))| {
                let (qh, kh, vh) = (
                    &q[i * t * d..][..t * d],
                    &kt[i * s * d..][..s * d],
                    &v[i * s * d..][..s * d],
                );
                forward_head(qh, kh, vh, d, scale, out, lse, scores)
            },
        );
    debug_assert_eq!(lse.len(), dims.heads() * t);
    Ok(AttentionOutput {
        out: boxed(interleaved(&out, b, t, h, d)),
        lse: boxed(lse),
    })
}

multiversion! {
    /// One head: `q` `[t, d]`, `kt` `[d, s]`, `v` `[s, d]`; writes `out` `[t, d]` and `lse` `[t]`.
    fn forward_head<T>(q: &[T], kt: &[T], v: &[T], d: usize, scale: T, out: &mut [T], lse: &mut [T], scores: &mut [T])
    where [T: Real]
    {
        let (t, s) = (q.len() / d, v.len() / d);
        let rows = q.chunks_exact(d).zip(out.chunks_exact_mut(d)).zip(lse.iter_mut());
        for (i, ((qi, oi), lse)) in rows.enumerate() {
            let row = &mut scores[..i + s - t + 1];
            scores_row(qi, kt, s, scale, row);
            let m = lanes::max(row);
            for p in row.iter_mut() {
                *p = (*p - m).exp_v();
            }
            let l = lanes::sum(row);
            oi.fill(T::zero());
            for (&p, vj) in row.iter().zip(v.chunks_exact(d)) {
                axpy(p, vj, oi);
            }
            let inv = l.recip();
            oi.iter_mut().for_each(|o| *o = *o * inv);
            *lse = m + l.ln();
        }
    }
}

/// `row[j] = scale * (qi . k_j)` for the first `row.len()` keys of `kt` (`[d, s]`).
#[inline(always)]
fn scores_row<T: Real>(qi: &[T], kt: &[T], s: usize, scale: T, row: &mut [T]) {
    row.fill(T::zero());
    let n = row.len();
    for (&qc, kc) in qi.iter().zip(kt.chunks_exact(s)) {
        axpy(qc * scale, &kc[..n], row);
    }
}

/// `y += a * x`.
#[inline(always)]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + a * x;
    }
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    out: View<'_>,
    lse: View<'_>,
    dout: View<'_>,
    scale: f64,
) -> Result<AttentionGrads> {
    let dims = Dims::new(OP_BACKWARD, q.dims(), k.dims(), v.dims())?;
    for (what, x) in [("out", out), ("dout", dout)] {
        if x.dims() != q.dims() {
            return Err(Error::backend(
                Device::Cpu,
                OP_BACKWARD,
                format!("{what} has shape {:?}, expected {:?}", x.dims(), q.dims()),
            ));
        }
    }
    if lse.dims() != [dims.b, dims.h, dims.t] {
        return Err(Error::backend(
            Device::Cpu,
            OP_BACKWARD,
            format!(
                "lse has shape {:?}, expected {:?}",
                lse.dims(),
                [dims.b, dims.h, dims.t]
            ),
        ));
    }
    if q.dtype() == DType::BF16 {
        common_dtype(OP_BACKWARD, &[q, k, v, out, dout])?;
        if lse.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op: OP_BACKWARD,
                lhs: DType::F32,
                rhs: lse.dtype(),
            });
        }
        let ([q, k, v, out, dout], layouts) = widen([q, k, v, out, dout])?;
        let [ql, kl, vl, ol, dl] = &layouts;
        let views = [
            view(&q, ql),
            view(&k, kl),
            view(&v, vl),
            view(&out, ol),
            lse,
            view(&dout, dl),
        ];
        let grads = backward::<f32>(views, dims, scale)?;
        let Dims { b, t, s, h, d } = dims;
        return Ok(AttentionGrads {
            dq: narrow_bf16(grads.dq, &[b, t, h, d])?,
            dk: narrow_bf16(grads.dk, &[b, s, h, d])?,
            dv: narrow_bf16(grads.dv, &[b, s, h, d])?,
        });
    }
    match common_dtype(OP_BACKWARD, &[q, k, v, out, lse, dout])? {
        DType::F32 => backward::<f32>([q, k, v, out, lse, dout], dims, scale),
        DType::F64 => backward::<f64>([q, k, v, out, lse, dout], dims, scale),
        other => Err(unsupported(OP_BACKWARD, other, "f32, f64 or bf16")),
    }
}

fn backward<T: Real>(views: [View<'_>; 6], dims: Dims, scale: f64) -> Result<AttentionGrads> {
    let Dims { b, t, s, h, d } = dims;
    let [q, k, v, out, lse, dout] = views;
    let (q, k, v) = (
        typed::<T>(q, OP_BACKWARD)?,
        typed::<T>(k, OP_BACKWARD)?,
        typed::<T>(v, OP_BACKWARD)?,
    );
    let (out, dout) = (
        typed::<T>(out, OP_BACKWARD)?,
        typed::<T>(dout, OP_BACKWARD)?,
    );
    let lse = typed::<T>(lse, OP_BACKWARD)?.contiguous();
    let (kt, vt) = (head_major(&k, true), head_major(&v, true));
    let (q, k) = (head_major(&q, false), head_major(&k, false));
    let (out, dout) = (head_major(&out, false), head_major(&dout, false));
    let mut dq = crate::pool::zeroed(b * h * t * d);
    let mut dk = crate::pool::zeroed(b * h * s * d);
    let mut dv = crate::pool::zeroed(b * h * s * d);
    if !dq.is_empty() {
        let scale = T::from_f64(scale);
        dq.par_chunks_mut(t * d)
            .zip(dk.par_chunks_mut(s * d))
            .zip(dv.par_chunks_mut(s * d))
            .enumerate()
            .for_each_init(
                || (crate::pool::zeroed(s), crate::pool::zeroed(s)),
                |(p, dp), (i, ((dq, dk), dv))| {
                    let (qs, ks) = (i * t * d..(i + 1) * t * d, i * s * d..(i + 1) * s * d);
                    let head = Head {
                        q: &q[qs.clone()],
                        k: &k[ks.clone()],
                        kt: &kt[ks.clone()],
                        vt: &vt[ks],
                        out: &out[qs.clone()],
                        dout: &dout[qs],
                        lse: &lse[i * t..(i + 1) * t],
                    };
                    backward_head(&head, d, scale, dq, dk, dv, p, dp)
                },
            );
    }
    Ok(AttentionGrads {
        dq: boxed(interleaved(&dq, b, t, h, d)),
        dk: boxed(interleaved(&dk, b, s, h, d)),
        dv: boxed(interleaved(&dv, b, s, h, d)),
    })
}

/// One head's forward inputs and outputs, head-major.
struct Head<'a, T> {
    q: &'a [T],
    k: &'a [T],
    kt: &'a [T],
    vt: &'a [T],
    out: &'a [T],
    dout: &'a [T],
    lse: &'a [T],
}

multiversion! {
    /// With `p = softmax(scale * q k^T)` rebuilt from `lse` and `D_i = dout_i . out_i`:
    /// `dv += p^T dout`, `ds = p * (dout v^T - D)`, `dq = scale ds k`, `dk = scale ds^T q`.
    fn backward_head<T>(x: &Head<'_, T>, d: usize, scale: T, dq: &mut [T], dk: &mut [T], dv: &mut [T], p: &mut [T], dp: &mut [T])
    where [T: Real]
    {
        let (t, s) = (x.q.len() / d, x.k.len() / d);
        for i in 0..t {
            let n = i + s - t + 1;
            let (qi, oi, doi) = (&x.q[i * d..][..d], &x.out[i * d..][..d], &x.dout[i * d..][..d]);
            let (p, dp) = (&mut p[..n], &mut dp[..n]);
            scores_row(qi, x.kt, s, scale, p);
            let lse = x.lse[i];
            for pj in p.iter_mut() {
                *pj = (*pj - lse).exp_v();
            }
            scores_row(doi, x.vt, s, T::one(), dp);
            let di = lanes::sum_zip(doi, oi, |a, b| a * b);
            let dqi = &mut dq[i * d..][..d];
            let rows = p.iter().zip(dp.iter()).zip(x.k.chunks_exact(d));
            let grads = dk.chunks_exact_mut(d).zip(dv.chunks_exact_mut(d));
            for (((&pj, &dpj), kj), (dkj, dvj)) in rows.zip(grads) {
                let ds = pj * (dpj - di) * scale;
                axpy(ds, kj, dqi);
                axpy(ds, qi, dkj);
                axpy(pj, doi, dvj);
            }
        }
    }
}
