//! Fused causal attention (kernels/attention.cu): tiled forward and backward that never
//! store a T x S score matrix, and a split-K decode kernel for a single query (t == 1,
//! generation with a KV cache).

use rg_core::backend::{AttentionGrads, AttentionOutput, BackendStorage, View};
use rg_core::{DType, Error, Result};

use super::{alloc, boxed, common_dtype, contiguous, storage, Contiguous};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::check_count;
use crate::storage::CudaStorage;

/// Largest head dimension the kernels take (`DMAX` in kernels/attention.cu).
pub const MAX_HEAD_DIM: usize = 128;
/// Keys per block of the decode kernel (`DECODE_CHUNK`).
pub const DECODE_CHUNK: usize = 256;

/// `struct Strides` of kernels/attention.cu: element strides of the b, t (or s) and h axes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    pub b: u64,
    pub t: u64,
    pub h: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub b: usize,
    pub t: usize,
    pub s: usize,
    pub h: usize,
    pub d: usize,
}

/// Checks the shapes of q `[b, t, h, d]`, k and v `[b, s, h, d]`.
pub fn attention_dims(op: &'static str, q: &[usize], k: &[usize], v: &[usize]) -> Result<Dims> {
    let bad = |msg: String| Err(Error::invalid(op, msg));
    let (&[b, t, h, d], &[kb, s, kh, kd]) = (q, k) else {
        return bad(format!(
            "q must be [b, t, h, d] and k [b, s, h, d], got {q:?} and {k:?}"
        ));
    };
    if v != k {
        return bad(format!("v has shape {v:?}, k {k:?}"));
    }
    if (kb, kh, kd) != (b, h, d) {
        return bad(format!(
            "k {k:?} does not match q {q:?} in batch, heads or head dim"
        ));
    }
    if s < t {
        return bad(format!(
            "{s} keys for {t} queries: causal attention needs s >= t"
        ));
    }
    if d == 0 || d > MAX_HEAD_DIM {
        return bad(format!(
            "head dim {d} is outside 1..={MAX_HEAD_DIM}, which the CUDA kernels take"
        ));
    }
    Ok(Dims { b, t, s, h, d })
}

/// The view's device address (element 0 of its storage), and strides of its first
/// three axes; views whose last axis is not unit-stride are gathered first.
struct Operand<'a> {
    ptr: u64,
    strides: Strides,
    _copy: Option<Contiguous<'a>>,
}

fn operand<'a>(gpu: &Gpu, v: View<'a>, op: &'static str) -> Result<Operand<'a>> {
    let st = v.layout.strides();
    let dims = v.dims();
    if st[3] == 1 || dims[3] == 1 {
        let s = storage(gpu, v, op)?;
        return Ok(Operand {
            ptr: s.ptr_at(v.layout.offset()),
            strides: Strides {
                b: st[0] as u64,
                t: st[1] as u64,
                h: st[2] as u64,
            },
            _copy: None,
        });
    }
    let c = contiguous(gpu, v, op)?;
    let (t, h, d) = (dims[1], dims[2], dims[3]);
    Ok(Operand {
        ptr: c.ptr,
        strides: Strides {
            b: (t * h * d) as u64,
            t: (h * d) as u64,
            h: d as u64,
        },
        _copy: Some(c),
    })
}

fn float_only(op: &'static str, dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other,
            expected: "f32 or bf16",
        }),
    }
}

pub fn attention(
    gpu: &Gpu,
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    scale: f64,
) -> Result<AttentionOutput> {
    const OP: &str = "attention";
    let dims = attention_dims(OP, q.dims(), k.dims(), v.dims())?;
    let dtype = common_dtype(OP, &[q, k, v])?;
    let ty = float_only(OP, dtype)?;
    let Dims { b, t, s, h, d } = dims;
    let out = alloc(gpu, OP, dtype, b * t * h * d)?;
    let lse = alloc(gpu, OP, DType::F32, b * h * t)?;
    if b * t * h == 0 {
        return Ok(AttentionOutput {
            out: boxed(out),
            lse: boxed(lse),
        });
    }
    check_count(OP, b * s * h * d)?;
    let (qo, ko, vo) = (
        operand(gpu, q, OP)?,
        operand(gpu, k, OP)?,
        operand(gpu, v, OP)?,
    );
    let (b32, t32, s32, h32, d32) = (b as u32, t as u32, s as u32, h as u32, d as u32);
    let grid_bh = |x: usize| -> Result<(u32, u32, u32)> {
        if h > 65_535 || b > 65_535 {
            return Err(Error::invalid(
                OP,
                format!("{b} batches of {h} heads exceed the launch grid"),
            ));
        }
        Ok((x as u32, h32, b32))
    };
    if t == 1 {
        let splits = s.div_ceil(DECODE_CHUNK);
        let ws = alloc(gpu, OP, DType::F32, b * h * splits * (d + 2))?;
        let mut args = Args::new();
        args.push(s32)
            .push(h32)
            .push(d32)
            .push(splits as u32)
            .push(qo.ptr)
            .push(qo.strides)
            .push(ko.ptr)
            .push(ko.strides)
            .push(vo.ptr)
            .push(vo.strides)
            .push(ws.device_ptr())
            .push(scale as f32);
        gpu.launch(
            OP,
            Module::Attention,
            &format!("attention_decode_{ty}"),
            grid_bh(splits)?,
            (128, 1, 1),
            &args,
        )?;
        let mut args = Args::new();
        args.push(h32)
            .push(d32)
            .push(splits as u32)
            .push(ws.device_ptr())
            .push(out.device_ptr())
            .push(lse.device_ptr());
        gpu.launch(
            OP,
            Module::Attention,
            &format!("attention_decode_combine_{ty}"),
            (h32, b32, 1),
            (32, 1, 1),
            &args,
        )?;
    } else {
        let mut args = Args::new();
        args.push(t32)
            .push(s32)
            .push(h32)
            .push(d32)
            .push(qo.ptr)
            .push(qo.strides)
            .push(ko.ptr)
            .push(ko.strides)
            .push(vo.ptr)
            .push(vo.strides)
            .push(out.device_ptr())
            .push(lse.device_ptr())
            .push(scale as f32);
        gpu.launch(
            OP,
            Module::Attention,
            &format!("attention_fwd_{ty}"),
            grid_bh(t.div_ceil(16))?,
            (128, 1, 1),
            &args,
        )?;
    }
    Ok(AttentionOutput {
        out: boxed(out),
        lse: boxed(lse),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    gpu: &Gpu,
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    out: View<'_>,
    lse: View<'_>,
    dout: View<'_>,
    scale: f64,
) -> Result<AttentionGrads> {
    const OP: &str = "attention_backward";
    let dims = attention_dims(OP, q.dims(), k.dims(), v.dims())?;
    let dtype = common_dtype(OP, &[q, k, v, out, dout])?;
    let ty = float_only(OP, dtype)?;
    let Dims { b, t, s, h, d } = dims;
    for (what, view) in [("out", out), ("dout", dout)] {
        if view.dims() != q.dims() {
            return Err(Error::invalid(
                OP,
                format!("{what} has shape {:?}, q {:?}", view.dims(), q.dims()),
            ));
        }
    }
    if lse.dtype() != DType::F32 || lse.dims() != [b, h, t] {
        return Err(Error::invalid(
            OP,
            format!(
                "lse must be f32 [{b}, {h}, {t}], got {} {:?}",
                lse.dtype(),
                lse.dims()
            ),
        ));
    }
    let dq = alloc(gpu, OP, dtype, b * t * h * d)?;
    let dk = alloc(gpu, OP, dtype, b * s * h * d)?;
    let dv = alloc(gpu, OP, dtype, b * s * h * d)?;
    if b * h * s == 0 {
        return Ok(AttentionGrads {
            dq: boxed(dq),
            dk: boxed(dk),
            dv: boxed(dv),
        });
    }
    if t == 0 {
        // No queries: no gradient reaches the keys.
        let zero = |st: &CudaStorage| super::memory::full(gpu, dtype, st.len(), 0.0);
        return Ok(AttentionGrads {
            dq: boxed(dq),
            dk: zero(&dk)?,
            dv: zero(&dv)?,
        });
    }
    check_count(OP, b * s * h * d)?;
    let (qo, ko, vo) = (
        operand(gpu, q, OP)?,
        operand(gpu, k, OP)?,
        operand(gpu, v, OP)?,
    );
    let (oc, gc, lc) = (
        contiguous(gpu, out, OP)?,
        contiguous(gpu, dout, OP)?,
        contiguous(gpu, lse, OP)?,
    );
    let delta = alloc(gpu, OP, DType::F32, b * h * t)?;
    let (b32, t32, s32, h32, d32) = (b as u32, t as u32, s as u32, h as u32, d as u32);
    if h > 65_535 || b > 65_535 {
        return Err(Error::invalid(
            OP,
            format!("{b} batches of {h} heads exceed the launch grid"),
        ));
    }
    let rows = b * t * h;
    let mut args = Args::new();
    args.push(b32)
        .push(t32)
        .push(h32)
        .push(d32)
        .push(oc.ptr)
        .push(gc.ptr)
        .push(delta.device_ptr());
    gpu.launch(
        OP,
        Module::Attention,
        &format!("attention_bwd_delta_{ty}"),
        (check_count(OP, rows.div_ceil(4))?, 1, 1),
        (128, 1, 1),
        &args,
    )?;
    let common = |args: &mut Args| {
        args.push(t32)
            .push(s32)
            .push(h32)
            .push(d32)
            .push(qo.ptr)
            .push(qo.strides)
            .push(ko.ptr)
            .push(ko.strides)
            .push(vo.ptr)
            .push(vo.strides)
            .push(gc.ptr)
            .push(lc.ptr)
            .push(delta.device_ptr());
    };
    let mut args = Args::new();
    common(&mut args);
    args.push(dq.device_ptr()).push(scale as f32);
    gpu.launch(
        OP,
        Module::Attention,
        &format!("attention_bwd_dq_{ty}"),
        (t.div_ceil(8) as u32, h32, b32),
        (128, 1, 1),
        &args,
    )?;
    let mut args = Args::new();
    common(&mut args);
    args.push(dk.device_ptr())
        .push(dv.device_ptr())
        .push(scale as f32);
    gpu.launch(
        OP,
        Module::Attention,
        &format!("attention_bwd_dkv_{ty}"),
        (s.div_ceil(8) as u32, h32, b32),
        (128, 1, 1),
        &args,
    )?;
    Ok(AttentionGrads {
        dq: boxed(dq),
        dk: boxed(dk),
        dv: boxed(dv),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        let d =
            attention_dims("attention", &[2, 3, 4, 64], &[2, 5, 4, 64], &[2, 5, 4, 64]).unwrap();
        assert_eq!(
            d,
            Dims {
                b: 2,
                t: 3,
                s: 5,
                h: 4,
                d: 64
            }
        );
        for (q, k) in [
            (vec![2, 6, 4, 64], vec![2, 5, 4, 64]),   // s < t
            (vec![2, 3, 4, 256], vec![2, 5, 4, 256]), // head dim too large
            (vec![2, 3, 4, 64], vec![2, 5, 2, 64]),   // heads differ
            (vec![3, 4, 64], vec![2, 5, 4, 64]),      // rank
        ] {
            assert!(
                attention_dims("attention", &q, &k, &k).is_err(),
                "{q:?} {k:?}"
            );
        }
    }

    #[test]
    fn strides_match_the_c_struct() {
        assert_eq!(std::mem::size_of::<Strides>(), 24);
    }
}
