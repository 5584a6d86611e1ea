//! How the kernels see `[b, n, h, d]` tensors: one head's `n` rows of `d` values, read
//! where they are (inputs) or written through per-row slices (outputs), so heads left
//! interleaved by a fused QKV projection or a KV cache are never gathered head-major.

use std::borrow::Cow;

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

/// The rows of a contiguous `[b, n, h, d]` output (`d > 0`) sorted into one list per
/// task, tasks ordered by batch entry, head, then block of `block` positions; a task's
/// rows are in position order.
pub fn split_rows<T>(buf: &mut [T], [b, n, h, d]: [usize; 4], block: usize) -> Vec<Vec<&mut [T]>> {
    let blocks = n.div_ceil(block);
    let mut tasks: Vec<Vec<&mut [T]>> = (0..b * h * blocks)
        .map(|_| Vec::with_capacity(block.min(n)))
        .collect();
    let mut rows = buf.chunks_exact_mut(d);
    for bi in 0..b {
        for i in 0..n {
            let first = bi * h * blocks + i / block;
            for (hi, row) in (&mut rows).take(h).enumerate() {
                tasks[first + hi * blocks].push(row);
            }
        }
    }
    tasks
}
