//! Layer norm over the last axis (kernels/layer_norm.cu): forward one block per row;
//! backward dx one block per row, dgamma and dbeta as column sums.

use rg_core::backend::{LayerNormGrads, LayerNormOutput, View};
use rg_core::{DType, Result};

use super::{alloc, boxed, check_dims, common_dtype, contiguous, float_sfx, launch_1d, rows_cols};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::{check_count, column_splits, grid_rows, row_threads};

const OP: &str = "layer_norm";
const OP_BACKWARD: &str = "layer_norm_backward";

pub fn layer_norm(
    gpu: &Gpu,
    x: View<'_>,
    gamma: View<'_>,
    beta: View<'_>,
    eps: f64,
) -> Result<LayerNormOutput> {
    let (rows, cols) = rows_cols(gpu, OP, x.dims())?;
    check_dims(gpu, OP, "gamma", gamma.dims(), &[cols])?;
    check_dims(gpu, OP, "beta", beta.dims(), &[cols])?;
    let dtype = common_dtype(OP, &[x, gamma, beta])?;
    let t = float_sfx(OP, dtype)?;
    let (xc, gc, bc) = (
        contiguous(gpu, x, OP)?,
        contiguous(gpu, gamma, OP)?,
        contiguous(gpu, beta, OP)?,
    );
    let y = alloc(gpu, OP, dtype, rows * cols)?;
    let mean = alloc(gpu, OP, dtype, rows)?;
    let rstd = alloc(gpu, OP, dtype, rows)?;
    if rows > 0 && cols > 0 {
        let mut args = Args::new();
        args.push(check_count(OP, rows)?)
            .push(check_count(OP, cols)?)
            .push(xc.ptr)
            .push(gc.ptr)
            .push(bc.ptr)
            .push(y.device_ptr())
            .push(mean.device_ptr())
            .push(rstd.device_ptr())
            .push(eps);
        let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
        gpu.launch(
            OP,
            Module::LayerNorm,
            &format!("layer_norm_{t}"),
            grid,
            (row_threads(cols).min(512), 1, 1),
            &args,
        )?;
    }
    Ok(LayerNormOutput {
        y: boxed(y),
        mean: boxed(mean),
        rstd: boxed(rstd),
    })
}

pub fn layer_norm_backward(
    gpu: &Gpu,
    dy: View<'_>,
    x: View<'_>,
    gamma: View<'_>,
    mean: View<'_>,
    rstd: View<'_>,
) -> Result<LayerNormGrads> {
    let (rows, cols) = rows_cols(gpu, OP_BACKWARD, x.dims())?;
    check_dims(gpu, OP_BACKWARD, "dy", dy.dims(), x.dims())?;
    check_dims(gpu, OP_BACKWARD, "gamma", gamma.dims(), &[cols])?;
    for (what, v) in [("mean", mean), ("rstd", rstd)] {
        if v.layout.elem_count() != rows {
            check_dims(gpu, OP_BACKWARD, what, v.dims(), &[rows])?;
        }
    }
    let dtype = common_dtype(OP_BACKWARD, &[dy, x, gamma, mean, rstd])?;
    let t = float_sfx(OP_BACKWARD, dtype)?;
    let dyc = contiguous(gpu, dy, OP_BACKWARD)?;
    let xc = contiguous(gpu, x, OP_BACKWARD)?;
    let gc = contiguous(gpu, gamma, OP_BACKWARD)?;
    let mc = contiguous(gpu, mean, OP_BACKWARD)?;
    let rc = contiguous(gpu, rstd, OP_BACKWARD)?;
    let dx = alloc(gpu, OP_BACKWARD, dtype, rows * cols)?;
    let dgamma = alloc(gpu, OP_BACKWARD, dtype, cols)?;
    let dbeta = alloc(gpu, OP_BACKWARD, dtype, cols)?;
    if cols > 0 {
        let (r32, c32) = (
            check_count(OP_BACKWARD, rows)?,
            check_count(OP_BACKWARD, cols)?,
        );
        if rows > 0 {
            let mut args = Args::new();
            args.push(r32)
                .push(c32)
                .push(dyc.ptr)
                .push(xc.ptr)
                .push(gc.ptr)
                .push(mc.ptr)
                .push(rc.ptr)
                .push(dx.device_ptr());
            let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
            gpu.launch(
                OP_BACKWARD,
                Module::LayerNorm,
                &format!("layer_norm_dx_{t}"),
                grid,
                (row_threads(cols).min(512), 1, 1),
                &args,
            )?;
        }
        let (splits, chunk) = column_splits(cols, rows, gpu.sms);
        if splits > 1 {
            // Partial sums per chunk of rows in the accumulation type, then added up.
            let acc = if dtype == DType::F64 {
                DType::F64
            } else {
                DType::F32
            };
            let pg = alloc(gpu, OP_BACKWARD, acc, splits * cols)?;
            let pb = alloc(gpu, OP_BACKWARD, acc, splits * cols)?;
            let mut args = Args::new();
            args.push(r32)
                .push(c32)
                .push(dyc.ptr)
                .push(xc.ptr)
                .push(mc.ptr)
                .push(rc.ptr)
                .push(pg.device_ptr())
                .push(pb.device_ptr())
                .push(chunk as u32);
            gpu.launch(
                OP_BACKWARD,
                Module::LayerNorm,
                &format!("layer_norm_params_part_{t}"),
                (cols.div_ceil(32) as u32, splits as u32, 1),
                (32, 8, 1),
                &args,
            )?;
            let mut args = Args::new();
            args.push(c32)
                .push(splits as u32)
                .push(pg.device_ptr())
                .push(pb.device_ptr())
                .push(dgamma.device_ptr())
                .push(dbeta.device_ptr());
            launch_1d(
                gpu,
                OP_BACKWARD,
                Module::LayerNorm,
                &format!("layer_norm_params_finish_{t}"),
                cols,
                &args,
            )?;
        } else {
            // With no rows the column sums are zeros: the kernel's loops just do not run.
            let mut args = Args::new();
            args.push(r32)
                .push(c32)
                .push(dyc.ptr)
                .push(xc.ptr)
                .push(mc.ptr)
                .push(rc.ptr)
                .push(dgamma.device_ptr())
                .push(dbeta.device_ptr());
            gpu.launch(
                OP_BACKWARD,
                Module::LayerNorm,
                &format!("layer_norm_params_{t}"),
                (cols.div_ceil(32) as u32, 1, 1),
                (32, 8, 1),
                &args,
            )?;
        }
    }
    Ok(LayerNormGrads {
        dx: boxed(dx),
        dgamma: boxed(dgamma),
        dbeta: boxed(dbeta),
    })
}
