use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    /// Entries `ids` (1-D, u32 or i64) along `axis`; the axis takes `ids.len()` entries.
    pub fn index_select(&self, axis: isize, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        ids.check_index_dtype(OP)?;
        self.check_device(OP, ids)?;
        let a = self.shape().axis(OP, axis)?;
        if ids.rank() != 1 {
            return Err(Error::RankMismatch {
                op: OP,
                expected: "1 for the indices".into(),
                shape: ids.shape().clone(),
            });
        }
        let storage =
            Tensor::with_views(OP, [self, ids], |b, [src, ids]| b.index_select(src, a, ids))?;
        let mut dims = self.dims().to_vec();
        dims[a] = ids.elem_count();
        Ok(self.wrap(storage, dims))
    }

    /// Rows of a `[vocab, dim]` table for ids of any shape: output `[..ids, dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::RankMismatch {
                op: "embedding",
                expected: "2 ([vocab, dim]) for the table".into(),
                shape: self.shape().clone(),
            });
        }
        let rows = self.index_select(0, &ids.flatten_all()?)?;
        let mut dims = ids.dims().to_vec();
        dims.push(self.dims()[1]);
        rows.reshape(dims)
    }

    /// Zeros of `shape`, then slice `i` of `src` along `axis` added into slice `ids[i]`:
    /// the adjoint of `index_select` (repeated ids accumulate).
    pub fn index_add(shape: &Shape, axis: isize, ids: &Tensor, src: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_add";
        ids.check_index_dtype(OP)?;
        src.check_device(OP, ids)?;
        src.check_float(OP)?;
        let a = shape.axis(OP, axis)?;
        let mut expected = shape.dims().to_vec();
        expected[a] = ids.elem_count();
        if ids.rank() != 1 || src.dims() != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: Shape::new(expected),
                rhs: src.shape().clone(),
            });
        }
        let storage = Tensor::with_views(OP, [ids, src], |b, [ids, src]| {
            b.index_add(shape.dims(), a, ids, src)
        })?;
        Ok(src.wrap(storage, shape.clone()))
    }
}
