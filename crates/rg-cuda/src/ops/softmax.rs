//! Softmax and log-softmax over the last axis (kernels/softmax.cu), one block per row.

use rg_core::backend::{BoxStorage, View};
use rg_core::Result;

use super::{alloc, boxed, check_dims, common_dtype, contiguous, float_sfx, rows_cols};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::{check_count, grid_rows, row_threads};

pub fn softmax_last(gpu: &Gpu, src: View<'_>, log: bool) -> Result<BoxStorage> {
    let op = if log { "log_softmax" } else { "softmax" };
    let t = float_sfx(op, src.dtype())?;
    let (rows, cols) = rows_cols(gpu, op, src.dims())?;
    let x = contiguous(gpu, src, op)?;
    let out = alloc(gpu, op, src.dtype(), rows * cols)?;
    if rows * cols > 0 {
        let mut args = Args::new();
        args.push(check_count(op, rows)?)
            .push(check_count(op, cols)?)
            .push(x.ptr)
            .push(out.device_ptr())
            .push(log as i32);
        let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
        gpu.launch(
            op,
            Module::Softmax,
            &format!("softmax_{t}"),
            grid,
            (row_threads(cols).min(512), 1, 1),
            &args,
        )?;
    }
    Ok(boxed(out))
}

pub fn softmax_last_backward(
    gpu: &Gpu,
    y: View<'_>,
    dy: View<'_>,
    log: bool,
) -> Result<BoxStorage> {
    let op = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    check_dims(gpu, op, "dy", dy.dims(), y.dims())?;
    let dtype = common_dtype(op, &[y, dy])?;
    let t = float_sfx(op, dtype)?;
    let (rows, cols) = rows_cols(gpu, op, y.dims())?;
    let (yc, dyc) = (contiguous(gpu, y, op)?, contiguous(gpu, dy, op)?);
    let out = alloc(gpu, op, dtype, rows * cols)?;
    if rows * cols > 0 {
        let mut args = Args::new();
        args.push(check_count(op, rows)?)
            .push(check_count(op, cols)?)
            .push(yc.ptr)
            .push(dyc.ptr)
            .push(out.device_ptr())
            .push(log as i32);
        let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
        gpu.launch(
            op,
            Module::Softmax,
            &format!("softmax_backward_{t}"),
            grid,
            (row_threads(cols).min(512), 1, 1),
            &args,
        )?;
    }
    Ok(boxed(out))
}
