//! Strided views as kernels see them, and the launch-configuration arithmetic.
//!
//! Before a launch the views of one op (all of the output's shape) are coalesced
//! together: size-1 axes are dropped and neighbouring axes merged wherever every view
//! is contiguous across them. Most views become rank 1 (a contiguous run) or 2 (a
//! transpose, a broadcast row), which keeps the kernels' index arithmetic short.

use rg_core::{Error, Layout, Result};

/// The most axes a kernel view may keep after coalescing (`RG_MAX_RANK` in
/// kernels/common.cuh).
pub const MAX_RANK: usize = 6;

/// `struct Layout` of kernels/common.cuh, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLayout {
    pub rank: u32,
    pub dims: [u32; MAX_RANK],
    pub strides: [u64; MAX_RANK],
    pub offset: u64,
}

/// Coalesces views sharing the shape `dims`: returns the merged dims and each view's
/// merged strides. Axis `i` merges into axis `i + 1` when, for every view,
/// `strides[i] == strides[i + 1] * dims[i + 1]`.
pub fn coalesce(dims: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let keep: Vec<usize> = (0..dims.len()).filter(|&i| dims[i] != 1).collect();
    let mut out_dims: Vec<usize> = Vec::with_capacity(keep.len());
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::with_capacity(keep.len()); strides.len()];
    for &i in &keep {
        let mergeable = !out_dims.is_empty()
            && strides.iter().zip(&out_strides).all(|(s, o)| {
                let last = *o.last().expect("non-empty with out_dims");
                last == s[i] * dims[i]
            });
        if mergeable {
            *out_dims.last_mut().expect("non-empty") *= dims[i];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().expect("non-empty") = s[i];
            }
        } else {
            out_dims.push(dims[i]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[i]);
            }
        }
    }
    (out_dims, out_strides)
}

impl KernelLayout {
    pub fn new(op: &'static str, dims: &[usize], strides: &[usize], offset: usize) -> Result<Self> {
        if dims.len() > MAX_RANK {
            return Err(Error::invalid(
                op,
                format!(
                    "CUDA: view of shape {dims:?} (strides {strides:?}) keeps {} axes after merging; kernels take at most {MAX_RANK}",
                    dims.len()
                ),
            ));
        }
        let mut l = KernelLayout {
            rank: dims.len() as u32,
            dims: [1; MAX_RANK],
            strides: [0; MAX_RANK],
            offset: offset as u64,
        };
        for (i, (&d, &s)) in dims.iter().zip(strides).enumerate() {
            l.dims[i] = u32::try_from(d).map_err(|_| too_many(op, d))?;
            l.strides[i] = s as u64;
        }
        Ok(l)
    }

    /// A contiguous run of `n` elements from `offset`.
    pub fn contiguous(n: usize, offset: usize) -> Self {
        KernelLayout {
            rank: 1,
            dims: [n.max(1).min(u32::MAX as usize) as u32, 1, 1, 1, 1, 1],
            strides: [1, 0, 0, 0, 0, 0],
            offset: offset as u64,
        }
    }
}

/// Kernel layouts for views of one shape, coalesced together.
pub fn kernel_layouts<const N: usize>(
    op: &'static str,
    layouts: [&Layout; N],
) -> Result<[KernelLayout; N]> {
    let dims = layouts[0].dims();
    let strides: Vec<&[usize]> = layouts.iter().map(|l| l.strides()).collect();
    let (cdims, cstrides) = coalesce(dims, &strides);
    let mut out = [KernelLayout::contiguous(0, 0); N];
    for (i, l) in layouts.iter().enumerate() {
        out[i] = KernelLayout::new(op, &cdims, &cstrides[i], l.offset())?;
    }
    Ok(out)
}

/// Most elements one launch may cover: the kernels index with u32, and grid-stride
/// loops add up to about 2^20 to an index below this without wrapping.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

/// Element counts must fit the kernels' 32-bit indices (below [`MAX_ELEMENTS`]).
pub fn check_count(op: &'static str, n: usize) -> Result<u32> {
    if n > MAX_ELEMENTS {
        return Err(too_many(op, n));
    }
    Ok(n as u32)
}

fn too_many(op: &'static str, n: usize) -> Error {
    Error::invalid(
        op,
        format!("CUDA: {n} elements in one launch exceed the kernels' limit of {MAX_ELEMENTS}"),
    )
}

/// Threads per block of the elementwise kernels.
pub const BLOCK: u32 = 256;

/// Blocks for a grid-stride loop over `n` elements: enough to fill the GPU
/// (`max_blocks`, a few waves of the SMs), never more than the work needs, at least 1.
pub fn grid_for(n: usize, max_blocks: u32) -> u32 {
    let needed = n.div_ceil(BLOCK as usize).max(1);
    needed.min(max_blocks.max(1) as usize) as u32
}

/// Blocks of one-block-per-row kernels: one per row, capped (the kernels loop).
pub fn grid_rows(rows: usize, max_blocks: u32) -> u32 {
    rows.clamp(1, max_blocks.max(1) as usize) as u32
}

/// Threads for a one-block-per-row kernel over rows of `cols`: a multiple of 32
/// between 32 and 1024, about one element per thread for short rows.
pub fn row_threads(cols: usize) -> u32 {
    (cols.div_ceil(32) * 32).clamp(32, 1024) as u32
}

/// How to cut the runs of a column reduction (`outputs` neighbouring sums over `len`
/// rows, blocks of 32 outputs) so that enough blocks run at once on `sms`
/// multiprocessors: `(splits, chunk)` with `splits * chunk >= len`; one split when the
/// outputs alone fill the GPU or the runs are short (at least 256 rows per chunk).
pub fn column_splits(outputs: usize, len: usize, sms: u32) -> (usize, usize) {
    let col_blocks = outputs.div_ceil(32).max(1);
    let target = 4 * sms.max(1) as usize;
    if col_blocks >= target || len < 512 {
        return (1, len.max(1));
    }
    let splits = (target / col_blocks).clamp(1, len / 256);
    let chunk = len.div_ceil(splits);
    (len.div_ceil(chunk), chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rg_core::Shape;

    #[test]
    fn contiguous_views_merge_into_one_axis() {
        let (d, s) = coalesce(&[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!(d, vec![24]);
        assert_eq!(s, vec![vec![1]]);
    }

    #[test]
    fn a_broadcast_operand_keeps_its_axis() {
        // [2, 3] + [3] broadcast: rhs has stride 0 on axis 0.
        let (d, s) = coalesce(&[2, 3], &[&[3, 1], &[0, 1]]);
        assert_eq!(d, vec![2, 3]);
        assert_eq!(s, vec![vec![3, 1], vec![0, 1]]);
    }

    #[test]
    fn size_one_axes_drop_and_a_transpose_stays() {
        let (d, s) = coalesce(&[1, 3, 1, 2], &[&[99, 1, 7, 3]]);
        assert_eq!(d, vec![3, 2]);
        assert_eq!(s, vec![vec![1, 3]]);
        let (d, s) = coalesce(&[1, 1], &[&[5, 5]]);
        assert!(d.is_empty() && s[0].is_empty());
    }

    #[test]
    fn kernel_layouts_coalesce_together_and_keep_offsets() {
        let a = Layout::contiguous_with_offset(Shape::new(&[4, 5, 6][..]), 7);
        let b = Layout::new(Shape::new(&[4, 5, 6][..]), vec![0, 6, 1], 3);
        let [ka, kb] = kernel_layouts("test", [&a, &b]).unwrap();
        assert_eq!(
            (
                ka.rank,
                ka.dims[..2].to_vec(),
                ka.strides[..2].to_vec(),
                ka.offset
            ),
            (2, vec![4, 30], vec![30, 1], 7)
        );
        assert_eq!(
            (kb.rank, kb.strides[..2].to_vec(), kb.offset),
            (2, vec![0, 1], 3)
        );
    }

    #[test]
    fn too_many_axes_is_an_error_naming_the_view() {
        let dims = [2usize; 7];
        let strides: Vec<usize> = (0..7).map(|i| 1usize << (2 * (6 - i))).collect();
        let l = Layout::new(Shape::new(&dims[..]), strides, 0);
        let err = kernel_layouts("unary", [&l]).unwrap_err().to_string();
        assert!(err.contains("unary") && err.contains("at most 6"), "{err}");
    }

    #[test]
    fn kernel_layout_matches_the_c_struct() {
        // u32 rank + 6 x u32 dims = 28 bytes, padded to 32; 6 x u64 strides; u64 offset.
        assert_eq!(std::mem::size_of::<KernelLayout>(), 88);
        assert_eq!(std::mem::align_of::<KernelLayout>(), 8);
    }

    #[test]
    fn launch_configurations() {
        assert_eq!(grid_for(0, 100), 1);
        assert_eq!(grid_for(256, 100), 1);
        assert_eq!(grid_for(257, 100), 2);
        assert_eq!(grid_for(1 << 30, 100), 100);
        assert_eq!(grid_rows(0, 64), 1);
        assert_eq!(grid_rows(1000, 64), 64);
        assert_eq!(row_threads(1), 32);
        assert_eq!(row_threads(100), 128);
        assert_eq!(row_threads(50257), 1024);
        assert!(check_count("x", MAX_ELEMENTS + 1).is_err());
        // A bias gradient on an H100 (132 SMs): 768 sums of 16K rows.
        let (splits, chunk) = column_splits(768, 16_384, 132);
        assert_eq!((splits, chunk), (22, 745));
        assert!(splits * chunk >= 16_384 && (splits - 1) * chunk < 16_384);
        assert_eq!(
            column_splits(50_257, 16_384, 132),
            (1, 16_384),
            "outputs fill the GPU"
        );
        assert_eq!(column_splits(96, 300, 132), (1, 300), "short runs");
        let (splits, chunk) = column_splits(96, 3000, 132);
        assert!(splits > 1 && chunk >= 256 && splits * chunk >= 3000);
        assert_eq!(check_count("x", MAX_ELEMENTS).unwrap(), i32::MAX as u32);
    }
}
