//! The fused classifier (kernels/cross_entropy.cu): softmax and cross-entropy in one
//! pass per row, forward (loss, lse) and backward (dlogits). Targets are read and
//! checked on the host (an out-of-range target is an `IndexOutOfRange` error before
//! any work, as on the CPU) and uploaded as u32 with `u32::MAX` for ignored rows.

use rg_core::backend::{BoxStorage, CrossEntropyOutput, View};
use rg_core::{DType, Error, Result};

use super::indexing::{read_ids, upload_u32};
use super::{alloc, boxed, common_dtype, contiguous, float_sfx};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::{check_count, grid_rows, row_threads};

const OP: &str = "cross_entropy";
const OP_BACKWARD: &str = "cross_entropy_backward";
const IGNORED: u32 = u32::MAX;

/// Each row's target column, `IGNORED` where the target is `ignore`.
pub fn row_targets(
    ids: &[i64],
    rows: usize,
    cols: usize,
    ignore: Option<i64>,
    op: &'static str,
) -> Result<Vec<u32>> {
    if ids.len() != rows {
        return Err(Error::invalid(
            op,
            format!("{} targets for {rows} rows of logits", ids.len()),
        ));
    }
    ids.iter()
        .map(|&t| match usize::try_from(t) {
            _ if Some(t) == ignore => Ok(IGNORED),
            Ok(c) if c < cols && c < IGNORED as usize => Ok(c as u32),
            _ => Err(Error::IndexOutOfRange {
                op,
                index: t,
                size: cols,
            }),
        })
        .collect()
}

fn logits_shape(gpu: &Gpu, logits: View<'_>, op: &'static str) -> Result<(usize, usize)> {
    match logits.dims() {
        &[n, v] => Ok((n, v)),
        dims => Err(Error::backend(
            gpu.device,
            op,
            format!("logits must be [n, v], got {dims:?}"),
        )),
    }
}

pub fn cross_entropy(
    gpu: &Gpu,
    logits: View<'_>,
    targets: View<'_>,
    ignore_index: Option<i64>,
) -> Result<CrossEntropyOutput> {
    let (rows, cols) = logits_shape(gpu, logits, OP)?;
    let t = float_sfx(OP, logits.dtype())?;
    let tgt = row_targets(&read_ids(gpu, targets, OP)?, rows, cols, ignore_index, OP)?;
    let loss = alloc(gpu, OP, logits.dtype(), rows)?;
    let lse = alloc(gpu, OP, logits.dtype(), rows)?;
    if rows > 0 {
        if cols == 0 {
            return Err(Error::invalid(OP, "logits have no classes"));
        }
        let x = contiguous(gpu, logits, OP)?;
        let dev_tgt = upload_u32(gpu, OP, &tgt)?;
        let mut args = Args::new();
        args.push(check_count(OP, rows)?)
            .push(check_count(OP, cols)?)
            .push(x.ptr)
            .push(dev_tgt.device_ptr())
            .push(loss.device_ptr())
            .push(lse.device_ptr());
        let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
        gpu.launch(
            OP,
            Module::CrossEntropy,
            &format!("cross_entropy_{t}"),
            grid,
            (row_threads(cols).min(512), 1, 1),
            &args,
        )?;
    }
    Ok(CrossEntropyOutput {
        loss: boxed(loss),
        lse: boxed(lse),
    })
}

pub fn cross_entropy_backward(
    gpu: &Gpu,
    logits: View<'_>,
    lse: View<'_>,
    targets: View<'_>,
    dloss: View<'_>,
    ignore_index: Option<i64>,
) -> Result<BoxStorage> {
    let (rows, cols) = logits_shape(gpu, logits, OP_BACKWARD)?;
    let tgt = row_targets(
        &read_ids(gpu, targets, OP_BACKWARD)?,
        rows,
        cols,
        ignore_index,
        OP_BACKWARD,
    )?;
    for (what, v) in [("lse", lse), ("dloss", dloss)] {
        if v.layout.elem_count() != rows {
            return Err(Error::backend(
                gpu.device,
                OP_BACKWARD,
                format!("{what} has shape {:?}, expected [{rows}]", v.dims()),
            ));
        }
    }
    let dtype = common_dtype(OP_BACKWARD, &[logits, lse, dloss])?;
    let t = float_sfx(OP_BACKWARD, dtype)?;
    let dx = alloc(gpu, OP_BACKWARD, dtype, rows * cols)?;
    if rows * cols > 0 {
        let x = contiguous(gpu, logits, OP_BACKWARD)?;
        let l = contiguous(gpu, lse, OP_BACKWARD)?;
        let g = contiguous(gpu, dloss, OP_BACKWARD)?;
        let dev_tgt = upload_u32(gpu, OP_BACKWARD, &tgt)?;
        // bf16's stored lse is too coarse for exp(x - lse): recompute it from the logits.
        let recompute = (dtype == DType::BF16) as i32;
        let mut args = Args::new();
        args.push(check_count(OP_BACKWARD, rows)?)
            .push(check_count(OP_BACKWARD, cols)?)
            .push(x.ptr)
            .push(l.ptr)
            .push(dev_tgt.device_ptr())
            .push(g.ptr)
            .push(dx.device_ptr())
            .push(recompute);
        let grid = (grid_rows(rows, gpu.max_blocks * 4), 1, 1);
        gpu.launch(
            OP_BACKWARD,
            Module::CrossEntropy,
            &format!("cross_entropy_backward_{t}"),
            grid,
            (row_threads(cols).min(512), 1, 1),
            &args,
        )?;
    }
    Ok(boxed(dx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_ignored_rows_and_reject_the_rest() {
        assert_eq!(
            row_targets(&[0, -100, 4], 3, 5, Some(-100), OP).unwrap(),
            vec![0, IGNORED, 4]
        );
        let err = row_targets(&[5], 1, 5, None, OP).unwrap_err();
        assert_eq!(
            err,
            Error::IndexOutOfRange {
                op: OP,
                index: 5,
                size: 5
            }
        );
        assert!(row_targets(&[0], 2, 5, None, OP).is_err());
    }
}
