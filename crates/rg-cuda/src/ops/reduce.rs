//! Reductions along one axis (kernels/reduce.cu). The outputs are the input's layout
//! with the axis removed; the launch shape depends on which is closer together in
//! memory, the reduced run or neighbouring outputs.

use rg_core::backend::{BoxStorage, View};
use rg_core::{DType, Error, ReduceOp, Result, Shape};

use super::{alloc, boxed, float_sfx, launch_1d, storage};
use crate::gpu::{Args, Gpu};
use crate::kernels::Module;
use crate::layout::{check_count, column_splits, grid_rows, kernel_layouts, row_threads};

/// Whether each output reduces its own run with a whole block (`true`), or blocks of
/// 32 neighbouring outputs walk the axis together (`false`): the first when the
/// reduced elements are closer together than neighbouring outputs, or there are few
/// outputs and long runs.
pub fn per_output(axis_stride: usize, out_inner_stride: usize, outputs: usize, len: usize) -> bool {
    axis_stride <= out_inner_stride || outputs == 1 || (outputs < 64 && len >= 4096)
}

pub fn reduce(gpu: &Gpu, op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage> {
    let name = op.name();
    let dims = src.dims();
    if axis >= dims.len() {
        return Err(Error::AxisOutOfRange {
            op: name,
            axis: axis as isize,
            rank: dims.len(),
            shape: Shape::new(dims),
        });
    }
    let len = dims[axis];
    if len == 0 && op != ReduceOp::Sum {
        return Err(Error::backend(
            gpu.device,
            name,
            format!("axis {axis} of shape {dims:?} is empty"),
        ));
    }
    let t = float_sfx(name, src.dtype())?;
    let s = storage(gpu, src, name)?;
    let axis_stride = src.layout.strides()[axis];
    let out_layout = src.layout.squeeze(axis);
    let outputs = out_layout.elem_count();
    let out_dtype = if op == ReduceOp::ArgMax {
        DType::U32
    } else {
        src.dtype()
    };
    let out = alloc(gpu, name, out_dtype, outputs)?;
    if outputs == 0 {
        return Ok(boxed(out));
    }
    let [lo] = kernel_layouts(name, [&out_layout])?;
    let inner_stride = if lo.rank == 0 {
        usize::MAX
    } else {
        lo.strides[lo.rank as usize - 1] as usize
    };
    let row = per_output(axis_stride, inner_stride, outputs, len);
    let (n, len32) = (check_count(name, outputs)?, check_count(name, len)?);
    let (splits, chunk) = column_splits(outputs, len, gpu.sms);
    if !row && splits > 1 && op != ReduceOp::ArgMax {
        // Partial folds of each chunk in the accumulation type, then one pass over them.
        let acc = if src.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let part = alloc(gpu, name, acc, splits * outputs)?;
        let mut args = Args::new();
        args.push(n)
            .push(len32)
            .push(lo)
            .push(axis_stride as u64)
            .push(s.device_ptr())
            .push(part.device_ptr())
            .push(chunk as u32);
        let grid = (outputs.div_ceil(32) as u32, splits as u32, 1);
        gpu.launch(
            name,
            Module::Reduce,
            &format!("reduce_part_{name}_{t}"),
            grid,
            (32, 8, 1),
            &args,
        )?;
        let mut args = Args::new();
        args.push(n)
            .push(splits as u32)
            .push(part.device_ptr())
            .push(out.device_ptr());
        launch_1d(
            gpu,
            name,
            Module::Reduce,
            &format!("reduce_finish_{name}_{t}"),
            outputs,
            &args,
        )?;
        return Ok(boxed(out));
    }
    let mut args = Args::new();
    args.push(n)
        .push(len32)
        .push(lo)
        .push(axis_stride as u64)
        .push(s.device_ptr())
        .push(out.device_ptr());
    let kernel = format!("reduce_{}_{name}_{t}", if row { "row" } else { "col" });
    let (grid, block) = if row {
        (
            (grid_rows(outputs, gpu.max_blocks * 4), 1, 1),
            (row_threads(len).min(256), 1, 1),
        )
    } else {
        ((outputs.div_ceil(32) as u32, 1, 1), (32, 8, 1))
    };
    gpu.launch(name, Module::Reduce, &kernel, grid, block, &args)?;
    Ok(boxed(out))
}

#[cfg(test)]
mod tests {
    use super::per_output;

    #[test]
    fn launch_shape_follows_memory_order() {
        // Last axis of a row-major [rows, cols]: the run is unit-stride.
        assert!(per_output(1, 768, 8192, 768));
        // Summing rows of [8192, 768] (a bias gradient): outputs are adjacent.
        assert!(!per_output(768, 1, 768, 8192));
        // A full reduction to one value.
        assert!(per_output(768, usize::MAX, 1, 100));
    }
}
