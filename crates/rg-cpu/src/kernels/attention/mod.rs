//! Fused causal attention, forward and backward, blocked like FlashAttention-2: a block
//! of queries meets a block of keys as a few small matrix products (`tile`), with the
//! softmax kept online (forward) or rebuilt from the stored log-sum-exp (backward), so
//! no `[t, s]` matrix is ever stored and every flop runs in a register-blocked kernel.
//!
//! Layout of the files: `forward` and `backward` hold the two passes, `tile` (and its
//! x86 kernels, `avx512` and `avx2`) the tile product they are made of, `rows` the
//! per-head views of the interleaved `[b, n, h, d]` tensors. This file checks shapes
//! and dtypes; bf16 is computed in f32.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
mod avx512;
mod backward;
mod causal;
mod forward;
mod rows;
mod tile;

use rg_core::backend::{AttentionGrads, AttentionOutput, BoxStorage, View};
use rg_core::{DType, Device, Error, Layout, Result, Shape};

use super::cast;
use crate::view::{boxed, common_dtype, typed, unsupported};
use rows::Heads;
use tile::Tile;

const OP: &str = "attention";
const OP_BACKWARD: &str = "attention_backward";

/// Queries per block: the query axis is the vector axis of the score tiles, and 64
/// f32 lanes are the 4 zmm vectors of the AVX-512 tile kernel's widest panel (four of
/// the AVX2 kernel's 16-column panels).
const BQ: usize = 64;
/// Keys per block.
const BK: usize = 64;

#[derive(Clone, Copy, Debug)]
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

    /// Keys before the first query's own position: query `i` sees keys `0..=i + off`.
    fn off(&self) -> usize {
        self.s - self.t
    }

    fn q_dims(&self) -> [usize; 4] {
        [self.b, self.t, self.h, self.d]
    }

    fn k_dims(&self) -> [usize; 4] {
        [self.b, self.s, self.h, self.d]
    }
}

pub fn attention(q: View<'_>, k: View<'_>, v: View<'_>, scale: f64) -> Result<AttentionOutput> {
    let dims = Dims::new(OP, q.dims(), k.dims(), v.dims())?;
    match common_dtype(OP, &[q, k, v])? {
        DType::F32 => forward::<f32>([q, k, v], dims, scale),
        DType::F64 => forward::<f64>([q, k, v], dims, scale),
        DType::BF16 => {
            let ([q, k, v], layouts) = widen([q, k, v])?;
            let [ql, kl, vl] = &layouts;
            let views = [view(&q, ql), view(&k, kl), view(&v, vl)];
            let out = forward::<f32>(views, dims, scale)?;
            Ok(AttentionOutput {
                out: narrow_bf16(out.out, &dims.q_dims())?,
                lse: out.lse,
            })
        }
        other => Err(unsupported(OP, other, "f32, f64 or bf16")),
    }
}

fn forward<T: Tile>(views: [View<'_>; 3], dims: Dims, scale: f64) -> Result<AttentionOutput> {
    let [q, k, v] = views;
    let (q, k, v) = (typed::<T>(q, OP)?, typed::<T>(k, OP)?, typed::<T>(v, OP)?);
    let (q, k, v) = (Heads::new(&q), Heads::new(&k), Heads::new(&v));
    let (out, lse) = forward::forward(&q, &k, &v, dims, T::from_f64(scale));
    Ok(AttentionOutput {
        out: boxed(out),
        lse: boxed(lse),
    })
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
        return Ok(AttentionGrads {
            dq: narrow_bf16(grads.dq, &dims.q_dims())?,
            dk: narrow_bf16(grads.dk, &dims.k_dims())?,
            dv: narrow_bf16(grads.dv, &dims.k_dims())?,
        });
    }
    match common_dtype(OP_BACKWARD, &[q, k, v, out, lse, dout])? {
        DType::F32 => backward::<f32>([q, k, v, out, lse, dout], dims, scale),
        DType::F64 => backward::<f64>([q, k, v, out, lse, dout], dims, scale),
        other => Err(unsupported(OP_BACKWARD, other, "f32, f64 or bf16")),
    }
}

fn backward<T: Tile>(views: [View<'_>; 6], dims: Dims, scale: f64) -> Result<AttentionGrads> {
    let [q, k, v, out, lse, dout] = views;
    let [q, k, v, out, dout] = [q, k, v, out, dout].map(|x| typed::<T>(x, OP_BACKWARD));
    let (q, k, v, out, dout) = (q?, k?, v?, out?, dout?);
    let lse = typed::<T>(lse, OP_BACKWARD)?.contiguous();
    let inputs = backward::Inputs {
        q: Heads::new(&q),
        k: Heads::new(&k),
        v: Heads::new(&v),
        out: Heads::new(&out),
        dout: Heads::new(&dout),
        lse: &lse,
    };
    let (dq, dk, dv) = backward::backward(&inputs, dims, T::from_f64(scale));
    Ok(AttentionGrads {
        dq: boxed(dq),
        dk: boxed(dk),
        dv: boxed(dv),
    })
}
