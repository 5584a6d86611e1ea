//! How the kernels see `[b, n, h, d]` tensors: one head's `n` rows of `d` values, read
//! where they are (inputs) or written through per-row slices (outputs), so heads left
//! interleaved by a fused QKV projection or a KV cache are never gathered head-major.

use std::borrow::Cow;
use std::marker::PhantomData;

use rg_core::{Layout, Shape};

use crate::storage::CpuElement;
use crate::strided::gather;
use crate::view::Typed;

/// An input `[b, n, h, d]` whose rows have unit stride (gathered into a contiguous copy
/// first when they do not).
pub struct Heads<'a, T: Clone> {
    data: Cow<'a, [T]>,
    offset: usize,
    /// Strides of the batch, position and head axes.
    sb: usize,
    sn: usize,
    sh: usize,
}

impl<'a, T: CpuElement> Heads<'a, T> {
    pub fn new(x: &Typed<'a, T>) -> Self {
        let (dims, st) = (x.layout.dims(), x.layout.strides());
        if st[3] == 1 || dims[3] <= 1 {
            return Heads {
                data: Cow::Borrowed(x.data),
                offset: x.layout.offset(),
                sb: st[0],
                sn: st[1],
                sh: st[2],
            };
        }
        let (n, h, d) = (dims[1], dims[2], dims[3]);
        let layout = Layout::contiguous(Shape::new(dims));
        Heads {
            data: Cow::Owned(gather(x.data, x.layout)),
            offset: layout.offset(),
            sb: n * h * d,
            sn: h * d,
            sh: d,
        }
    }

    /// Head `hi` of batch entry `bi`. Only valid for non-empty tensors.
    pub fn head(&self, bi: usize, hi: usize) -> Rows<'_, T> {
        Rows {
            data: &self.data[self.offset + bi * self.sb + hi * self.sh..],
            stride: self.sn,
        }
    }
}

/// One head's rows: row `i` starts at `data[i * stride]`.
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    pub data: &'a [T],
    pub stride: usize,
}

impl<'a, T> Rows<'a, T> {
    /// Row `i`, `d` values long.
    pub fn row(&self, i: usize, d: usize) -> &'a [T] {
        &self.data[i * self.stride..][..d]
    }

    /// The rows from `i` on.
    pub fn from(&self, i: usize) -> Rows<'a, T> {
        Rows {
            data: &self.data[i * self.stride..],
            stride: self.stride,
        }
    }
}

/// A contiguous `[b, n, h, d]` output (`d > 0`) cut into tasks that each write their
/// own rows: tasks ordered by batch entry, head, then block of `block` positions. Each
/// task gathers its row slices itself, inside the parallel loop: listing every task's
/// rows up front was a single-threaded pass over all rows per call (1.2 % of the main
/// thread's time in a nanoGPT-size training step, with the pool's other thread idle).
pub struct RowTasks<'a, T> {
    ptr: *mut T,
    dims: [usize; 4],
    block: usize,
    _buf: PhantomData<&'a mut [T]>,
}

// SAFETY: `RowTasks` hands out disjoint rows of a buffer it borrows mutably; sending or
// sharing it is sharing `&mut [T]` pieces, sound for `T: Send`.
unsafe impl<T: Send> Send for RowTasks<'_, T> {}
// SAFETY: as above; `rows` is the only access, and its contract keeps tasks disjoint.
unsafe impl<T: Send> Sync for RowTasks<'_, T> {}

impl<'a, T> RowTasks<'a, T> {
    pub fn new(buf: &'a mut [T], dims: [usize; 4], block: usize) -> Self {
        assert_eq!(
            buf.len(),
            dims.iter().product::<usize>(),
            "[b, n, h, d] buffer"
        );
        RowTasks {
            ptr: buf.as_mut_ptr(),
            dims,
            block: block.max(1),
            _buf: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        let [b, n, h, _] = self.dims;
        b * h * n.div_ceil(self.block)
    }

    /// Task `task`'s rows, in position order.
    ///
    /// # Safety
    /// Each task's rows may be taken once: tasks never share a row, but two calls for
    /// the same task would hand out the same rows twice.
    pub unsafe fn rows(&self, task: usize) -> Vec<&'a mut [T]> {
        let [b, n, h, d] = self.dims;
        let blocks = n.div_ceil(self.block);
        assert!(task < b * h * blocks, "task {task} of {}", self.len());
        let (bi, hi, blk) = (task / (h * blocks), task / blocks % h, task % blocks);
        let positions = blk * self.block..n.min((blk + 1) * self.block);
        positions
            .map(|i| {
                // SAFETY: row `(bi, i, hi)` is inside the buffer, and no other task's
                // rows include it (the caller takes each task's rows once).
                unsafe {
                    std::slice::from_raw_parts_mut(self.ptr.add(((bi * n + i) * h + hi) * d), d)
                }
            })
            .collect()
    }
}
