use crate::{Error, Result, Shape};

/// How a tensor's elements sit in its storage: element `idx` is at
/// `offset + sum(idx[i] * strides[i])`. Views (transpose, narrow, broadcast) only
/// change the layout; a stride of 0 repeats an element along a broadcast axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        Self::contiguous_with_offset(shape, 0)
    }

    pub fn contiguous_with_offset(shape: impl Into<Shape>, offset: usize) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset,
        }
    }

    /// A layout with explicit strides; the caller guarantees they fit the storage.
    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// Row-major contiguous (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// The storage range `[offset, offset + n)` when the layout is contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.elem_count())
    }

    /// The storage range `[offset, offset + n)` when the elements fill it exactly in
    /// some order of the axes: contiguous, or a transpose or permutation of contiguous
    /// (sorted by stride, each axis steps over exactly the axes inside it).
    pub fn dense_range(&self) -> Option<std::ops::Range<usize>> {
        let mut axes: Vec<(usize, usize)> = self
            .dims()
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (s, d))
            .collect();
        axes.sort_unstable();
        let mut expected = 1;
        for (s, d) in axes {
            if s != expected {
                return None;
            }
            expected *= d;
        }
        Some(self.offset..self.offset + self.elem_count())
    }

    /// One past the highest storage index this layout touches (0 when empty).
    pub fn max_storage_index(&self) -> usize {
        if self.elem_count() == 0 {
            return 0;
        }
        self.offset
            + self
                .dims()
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.swap(a, b);
        strides.swap(a, b);
        Layout::new(Shape::new(dims), strides, self.offset)
    }

    pub fn permute(&self, op: &'static str, order: &[usize]) -> Result<Layout> {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        if order.len() != rank
            || order
                .iter()
                .any(|&a| a >= rank || std::mem::replace(&mut seen[a], true))
        {
            return Err(Error::invalid(
                op,
                format!(
                    "{order:?} is not a permutation of the {rank} axes of {}",
                    self.shape
                ),
            ));
        }
        let dims = order.iter().map(|&a| self.dims()[a]).collect::<Vec<_>>();
        let strides = order.iter().map(|&a| self.strides[a]).collect();
        Ok(Layout::new(Shape::new(dims), strides, self.offset))
    }

    pub fn narrow(
        &self,
        op: &'static str,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<Layout> {
        let size = self.dims()[axis];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::invalid(
                op,
                format!(
                    "range {start}..{} is out of bounds for axis {axis} of size {size} (shape {})",
                    start.saturating_add(len),
                    self.shape
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let offset = if len == 0 {
            self.offset
        } else {
            self.offset + start * self.strides[axis]
        };
        Ok(Layout::new(Shape::new(dims), self.strides.clone(), offset))
    }

    /// A view with `target`'s shape where size-1 (or missing leading) axes repeat.
    pub fn broadcast_to(&self, op: &'static str, target: &Shape) -> Result<Layout> {
        let rank = target.rank();
        let incompatible = || Error::BroadcastIncompatible {
            op,
            lhs: self.shape.clone(),
            rhs: target.clone(),
        };
        if rank < self.shape.rank() {
            return Err(incompatible());
        }
        let lead = rank - self.shape.rank();
        let mut strides = vec![0; rank];
        for (i, &t) in target.dims().iter().enumerate() {
            if i < lead {
                continue;
            }
            let d = self.dims()[i - lead];
            strides[i] = if d == t {
                self.strides[i - lead]
            } else if d == 1 {
                0
            } else {
                return Err(incompatible());
            };
        }
        Ok(Layout::new(target.clone(), strides, self.offset))
    }

    /// Same data, new shape, when the element order allows it without a copy: the
    /// layout is contiguous, or each run of axes that the new shape merges or splits
    /// is contiguous within itself (as PyTorch's `view`). Splitting the last axis of a
    /// column slice, e.g. a fused QKV projection's queries into heads, stays a view.
    pub fn reshape(&self, shape: Shape) -> Option<Layout> {
        if self.is_contiguous() || self.elem_count() == 0 {
            return Some(Layout::contiguous_with_offset(shape, self.offset));
        }
        // Axes of length 1 carry no stride; the rest form chunks of axes that step
        // over each other exactly (`stride[i] == stride[i + 1] * dim[i + 1]`).
        let axes: Vec<(usize, usize)> = self
            .dims()
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let new_dims = shape.dims();
        let mut strides = vec![1; new_dims.len()];
        let mut next = 0; // the first new axis not yet placed
        let mut start = 0;
        while start < axes.len() {
            let mut end = start + 1;
            while end < axes.len() && axes[end - 1].1 == axes[end].1 * axes[end].0 {
                end += 1;
            }
            let chunk: usize = axes[start..end].iter().map(|&(d, _)| d).product();
            let inner = axes[end - 1].1;
            // The new axes that cover this chunk, innermost last.
            let first = next;
            let mut covered = 1;
            while covered < chunk {
                let d = *new_dims.get(next)?;
                covered *= d;
                next += 1;
            }
            if covered != chunk {
                return None;
            }
            let mut stride = inner;
            for i in (first..next).rev() {
                strides[i] = stride;
                stride *= new_dims[i];
            }
            start = end;
        }
        // Whatever new axes remain have length 1 (the element counts agree).
        new_dims[next..].iter().all(|&d| d == 1).then_some(())?;
        Some(Layout::new(shape, strides, self.offset))
    }

    pub fn unsqueeze(&self, axis: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let stride = if axis < dims.len() {
            dims[axis] * strides[axis]
        } else {
            1
        };
        dims.insert(axis, 1);
        strides.insert(axis, stride);
        Layout::new(Shape::new(dims), strides, self.offset)
    }

    pub fn squeeze(&self, axis: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.remove(axis);
        strides.remove(axis);
        Layout::new(Shape::new(dims), strides, self.offset)
    }

    /// Storage index of every element, in row-major order of the logical shape.
    pub fn storage_indices(&self) -> StorageIndices<'_> {
        StorageIndices {
            layout: self,
            index: vec![0; self.shape.rank()],
            next: (self.elem_count() > 0).then_some(self.offset),
        }
    }
}

/// Iterator over the storage offsets of a strided layout.
pub struct StorageIndices<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: Option<usize>,
}

impl Iterator for StorageIndices<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let dims = self.layout.dims();
        let strides = self.layout.strides();
        let mut pos = current;
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                self.next = None;
                break;
            }
            axis -= 1;
            self.index[axis] += 1;
            pos += strides[axis];
            if self.index[axis] < dims[axis] {
                self.next = Some(pos);
                break;
            }
            pos -= strides[axis] * dims[axis];
            self.index[axis] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_indices_walk_columns() {
        let l = Layout::contiguous([2, 3]).transpose(0, 1);
        assert_eq!(
            l.storage_indices().collect::<Vec<_>>(),
            vec![0, 3, 1, 4, 2, 5]
        );
        assert!(!l.is_contiguous());
    }

    #[test]
    fn broadcast_repeats_with_zero_stride() {
        let l = Layout::contiguous([3])
            .broadcast_to("t", &Shape::new([2, 3]))
            .unwrap();
        assert_eq!(l.strides(), &[0, 1]);
        assert_eq!(
            l.storage_indices().collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn narrow_moves_offset() {
        let l = Layout::contiguous([4, 3]).narrow("t", 0, 1, 2).unwrap();
        assert_eq!(l.offset(), 3);
        assert!(l.is_contiguous());
        let err = Layout::contiguous([4, 3])
            .narrow("narrow", 1, 2, 5)
            .unwrap_err();
        assert!(err.to_string().contains("[4, 3]"), "{err}");
    }
}
