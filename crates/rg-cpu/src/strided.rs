//! Walking strided views fast: a layout (or several of one shape) is reduced to the
//! fewest axes, then visited as runs along its innermost axis, so kernels run tight
//! inner loops (auto-vectorised when a run is unit-stride) instead of computing a
//! storage index per element.

use std::borrow::Cow;

use rg_core::Layout;

use crate::storage::CpuElement;

/// `N` layouts of one shape, merged to the fewest axes. Element `i` (row-major) of the
/// shape sits at `offsets[v] + sum(index[a] * strides[v][a])` in view `v`'s storage.
#[derive(Debug, Clone)]
pub struct Walk<const N: usize> {
    dims: Vec<usize>,
    strides: [Vec<usize>; N],
    offsets: [usize; N],
    len: usize,
}

impl<const N: usize> Walk<N> {
    /// All layouts must have the dims of `layouts[0]`; callers check that.
    pub fn new(layouts: [&Layout; N]) -> Self {
        let dims = layouts[0].dims();
        let len = dims.iter().product();
        let offsets = layouts.map(Layout::offset);
        let mut merged_dims: Vec<usize> = Vec::with_capacity(dims.len());
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(dims.len()));
        for (axis, &d) in dims.iter().enumerate() {
            // Size-1 axes never move the index, so their strides do not matter.
            if d == 1 {
                continue;
            }
            // Axis `axis` continues the previous one when, in every view, stepping the
            // previous axis by one equals stepping this one `d` times.
            let mergeable = !merged_dims.is_empty()
                && (0..N)
                    .all(|v| *strides[v].last().unwrap_or(&0) == layouts[v].strides()[axis] * d);
            if mergeable {
                *merged_dims.last_mut().unwrap_or(&mut 0) *= d;
                for v in 0..N {
                    if let Some(s) = strides[v].last_mut() {
                        *s = layouts[v].strides()[axis];
                    }
                }
            } else {
                merged_dims.push(d);
                for v in 0..N {
                    strides[v].push(layouts[v].strides()[axis]);
                }
            }
        }
        if merged_dims.is_empty() {
            merged_dims.push(1);
            for s in &mut strides {
                s.push(1);
            }
        }
        Walk {
            dims: merged_dims,
            strides,
            offsets,
            len,
        }
    }

    /// Number of logical elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Stride of each view along the innermost merged axis.
    pub fn inner_strides(&self) -> [usize; N] {
        std::array::from_fn(|v| *self.strides[v].last().unwrap_or(&1))
    }

    /// Visits logical elements `[start, end)` as runs along the innermost axis:
    /// `f(position, bases, run_len)` where `position` is the logical index of the run's
    /// first element and `bases[v]` its storage index in view `v`; the run continues
    /// with [`Walk::inner_strides`].
    #[inline(always)]
    pub fn for_runs(&self, start: usize, end: usize, mut f: impl FnMut(usize, [usize; N], usize)) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let rank = self.dims.len();
        let inner = self.dims[rank - 1];
        // Multi-index of `start` over the outer axes, and the position in the inner one.
        let mut index = vec![0usize; rank];
        let mut rest = start;
        for a in (0..rank).rev() {
            index[a] = rest % self.dims[a];
            rest /= self.dims[a];
        }
        let mut bases: [usize; N] = std::array::from_fn(|v| {
            self.offsets[v]
                + (0..rank)
                    .map(|a| index[a] * self.strides[v][a])
                    .sum::<usize>()
        });
        let mut pos = start;
        let mut j = index[rank - 1];
        let inner_strides = self.inner_strides();
        while pos < end {
            let run = (inner - j).min(end - pos);
            f(pos, bases, run);
            pos += run;
            if pos >= end {
                break;
            }
            // Back to the start of the inner axis, then step the outer odometer.
            for v in 0..N {
                bases[v] -= j * inner_strides[v];
            }
            j = 0;
            for a in (0..rank - 1).rev() {
                index[a] += 1;
                for v in 0..N {
                    bases[v] += self.strides[v][a];
                }
                if index[a] < self.dims[a] {
                    break;
                }
                for v in 0..N {
                    bases[v] -= self.strides[v][a] * self.dims[a];
                }
                index[a] = 0;
            }
        }
    }
}

/// The elements of a view in row-major order: borrowed when the layout is contiguous,
/// gathered into a new vector otherwise. Callers have checked the layout's bounds.
pub fn contiguous<'a, T: CpuElement>(data: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    if let Some(range) = layout.contiguous_range() {
        return Cow::Borrowed(&data[range]);
    }
    Cow::Owned(gather(data, layout))
}

/// Copies a strided view into a new row-major vector.
pub fn gather<T: CpuElement>(data: &[T], layout: &Layout) -> Vec<T> {
    let walk = Walk::new([layout]);
    let mut out = crate::pool::with_capacity(walk.len()).into_vec();
    let [stride] = walk.inner_strides();
    walk.for_runs(0, walk.len(), |_, [base], run| {
        if stride == 1 {
            out.extend_from_slice(&data[base..base + run]);
        } else {
            out.extend((0..run).map(|k| data[base + k * stride]));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rg_core::Shape;

    fn indices(layout: &Layout) -> Vec<usize> {
        let walk = Walk::new([layout]);
        let [s] = walk.inner_strides();
        let mut out = Vec::new();
        walk.for_runs(0, walk.len(), |pos, [b], run| {
            assert_eq!(pos, out.len());
            out.extend((0..run).map(|k| b + k * s));
        });
        out
    }

    #[test]
    fn matches_storage_indices() {
        let base = Layout::contiguous([3, 4, 5]);
        let cases = [
            base.clone(),
            base.transpose(0, 2),
            base.narrow("t", 1, 1, 2).unwrap(),
            base.narrow("t", 2, 3, 2).unwrap().transpose(0, 1),
            Layout::contiguous([4, 1, 5])
                .broadcast_to("t", &Shape::new([2, 4, 3, 5]))
                .unwrap(),
            Layout::contiguous([1])
                .broadcast_to("t", &Shape::new([3, 2]))
                .unwrap(),
            Layout::contiguous(()),
        ];
        for l in &cases {
            assert_eq!(indices(l), l.storage_indices().collect::<Vec<_>>(), "{l:?}");
        }
    }

    #[test]
    fn partial_ranges_resume_mid_run() {
        let l = Layout::contiguous([3, 4, 5]).transpose(1, 2);
        let all: Vec<usize> = l.storage_indices().collect();
        let walk = Walk::new([&l]);
        let [s] = walk.inner_strides();
        for (start, end) in [(0, 7), (7, 13), (13, 60), (59, 60)] {
            let mut got = Vec::new();
            walk.for_runs(start, end, |_, [b], run| {
                got.extend((0..run).map(|k| b + k * s))
            });
            assert_eq!(got, all[start..end]);
        }
    }
}
