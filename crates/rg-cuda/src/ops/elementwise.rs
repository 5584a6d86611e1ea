//! Elementwise ops over strided views (kernels/elementwise.cu): unary functions,
//! affine, powf, binary ops, comparisons, where, GELU backward, the causal fill.

use rg_core::backend::{BoxStorage, View};
use rg_core::{BinaryOp, CmpOp, DType, Error, Result, UnaryOp};

use super::{
    alloc, boxed, check_dims, common_dtype, float_sfx, launch_1d, layouts, sfx, size_sfx, storage,
};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;

pub fn unary(gpu: &Gpu, op: UnaryOp, src: View<'_>) -> Result<BoxStorage> {
    let name = op.name();
    let t = float_sfx(name, src.dtype())?;
    map1(gpu, name, &format!("unary_{name}_{t}"), src, |_| {})
}

/// Launches `kernel(n, layout, x, y, extra...)` producing a new tensor of `src`'s dtype.
fn map1(
    gpu: &Gpu,
    op: &'static str,
    kernel: &str,
    src: View<'_>,
    extra: impl FnOnce(&mut Args),
) -> Result<BoxStorage> {
    let s = storage(gpu, src, op)?;
    let (n, [l]) = layouts(op, [src.layout])?;
    let out = alloc(gpu, op, src.dtype(), n as usize)?;
    let mut args = Args::new();
    args.push(n)
        .push(l)
        .push(s.device_ptr())
        .push(out.device_ptr());
    extra(&mut args);
    launch_1d(gpu, op, Module::Elementwise, kernel, n as usize, &args)?;
    Ok(boxed(out))
}

pub fn affine(gpu: &Gpu, src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
    const OP: &str = "affine";
    let t = float_sfx(OP, src.dtype())?;
    map1(gpu, OP, &format!("affine_{t}"), src, |a| {
        a.push(mul).push(add);
    })
}

/// Integral exponents use repeated multiplication (exact for negative bases).
pub fn powf(gpu: &Gpu, src: View<'_>, exponent: f64) -> Result<BoxStorage> {
    const OP: &str = "powf";
    let t = float_sfx(OP, src.dtype())?;
    let integral = exponent.fract() == 0.0 && exponent.abs() <= i32::MAX as f64;
    map1(gpu, OP, &format!("powf_{t}"), src, |a| {
        a.push(exponent).push(integral as i32).push(exponent as i64);
    })
}

pub fn binary(gpu: &Gpu, op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
    let name = op.name();
    check_dims(gpu, name, "rhs", rhs.dims(), lhs.dims())?;
    let dtype = common_dtype(name, &[lhs, rhs])?;
    let t = float_sfx(name, dtype)?;
    map2(
        gpu,
        name,
        &format!("binary_{name}_{t}"),
        lhs,
        rhs,
        dtype,
        None,
    )
}

/// `kernel(n, [op,] la, a, lb, b, y)` producing `out_dtype`.
fn map2(
    gpu: &Gpu,
    op: &'static str,
    kernel: &str,
    lhs: View<'_>,
    rhs: View<'_>,
    out_dtype: DType,
    code: Option<i32>,
) -> Result<BoxStorage> {
    let (a, b) = (storage(gpu, lhs, op)?, storage(gpu, rhs, op)?);
    let (n, [la, lb]) = layouts(op, [lhs.layout, rhs.layout])?;
    let out = alloc(gpu, op, out_dtype, n as usize)?;
    let mut args = Args::new();
    args.push(n);
    if let Some(c) = code {
        args.push(c);
    }
    args.push(la)
        .push(a.device_ptr())
        .push(lb)
        .push(b.device_ptr())
        .push(out.device_ptr());
    launch_1d(gpu, op, Module::Elementwise, kernel, n as usize, &args)?;
    Ok(boxed(out))
}

/// The comparison's code in kernels/elementwise.cu's `compare`.
pub fn cmp_code(op: CmpOp) -> i32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

pub fn cmp(gpu: &Gpu, op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "cmp";
    check_dims(gpu, OP, "rhs", rhs.dims(), lhs.dims())?;
    let dtype = common_dtype(OP, &[lhs, rhs])?;
    map2(
        gpu,
        OP,
        &format!("cmp_{}", sfx(dtype)),
        lhs,
        rhs,
        DType::U32,
        Some(cmp_code(op)),
    )
}

pub fn where_cond(
    gpu: &Gpu,
    cond: View<'_>,
    on_true: View<'_>,
    on_false: View<'_>,
) -> Result<BoxStorage> {
    const OP: &str = "where_cond";
    check_dims(gpu, OP, "on_true", on_true.dims(), cond.dims())?;
    check_dims(gpu, OP, "on_false", on_false.dims(), cond.dims())?;
    if cond.dtype() != DType::U32 {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: cond.dtype(),
            expected: "u32 for the condition",
        });
    }
    let dtype = common_dtype(OP, &[on_true, on_false])?;
    let (c, t, f) = (
        storage(gpu, cond, OP)?,
        storage(gpu, on_true, OP)?,
        storage(gpu, on_false, OP)?,
    );
    let (n, [lc, lt, lf]) = layouts(OP, [cond.layout, on_true.layout, on_false.layout])?;
    let out = alloc(gpu, OP, dtype, n as usize)?;
    let mut args = Args::new();
    args.push(n)
        .push(lc)
        .push(c.device_ptr())
        .push(lt)
        .push(t.device_ptr())
        .push(lf)
        .push(f.device_ptr())
        .push(out.device_ptr());
    launch_1d(
        gpu,
        OP,
        Module::Elementwise,
        &format!("where_{}", size_sfx(dtype)),
        n as usize,
        &args,
    )?;
    Ok(boxed(out))
}

pub fn gelu_backward(gpu: &Gpu, x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
    const OP: &str = "gelu_backward";
    check_dims(gpu, OP, "dy", dy.dims(), x.dims())?;
    let dtype = common_dtype(OP, &[x, dy])?;
    let t = float_sfx(OP, dtype)?;
    map2(gpu, OP, &format!("gelu_backward_{t}"), x, dy, dtype, None)
}

pub fn causal_fill(gpu: &Gpu, src: View<'_>, value: f64) -> Result<BoxStorage> {
    const OP: &str = "causal_fill";
    let dims = src.dims();
    if dims.len() < 2 {
        return Err(Error::backend(
            gpu.device,
            OP,
            format!("needs at least two axes [.., t, s], got shape {dims:?}"),
        ));
    }
    let (t, s) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let ty = float_sfx(OP, src.dtype())?;
    let (t32, s32) = (
        crate::layout::check_count(OP, t)?,
        crate::layout::check_count(OP, s)?,
    );
    map1(gpu, OP, &format!("causal_fill_{ty}"), src, |a| {
        a.push(t32).push(s32).push(value);
    })
}
