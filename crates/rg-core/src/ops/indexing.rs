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
        let a = check_index_add(shape, axis, ids, src)?;
        let storage = Tensor::with_views("index_add", [ids, src], |b, [ids, src]| {
            b.index_add(shape.dims(), a, ids, src)
        })?;
        Ok(src.wrap(storage, shape.clone()))
    }

    /// `self` plus [`Tensor::index_add`] of `self`'s shape, written into `self`'s memory
    /// when [`Tensor::add_into`] would write there. Only the slices `ids` names are
    /// touched, so adding an embedding's gradient into the tied output layer's takes no
    /// vocabulary-sized buffer of zeros.
    pub fn index_add_into(self, axis: isize, ids: &Tensor, src: &Tensor) -> Result<Tensor> {
        let a = check_index_add(self.shape(), axis, ids, src)?;
        let in_place = self.is_writable_in_place()
            && self.dtype() == src.dtype()
            && self.device() == src.device();
        if !in_place {
            return self.add(&Tensor::index_add(self.shape(), axis, ids, src)?);
        }
        {
            // `ids` and `src` cannot share the storage: this handle is its only owner.
            let mut dst = self.write();
            Tensor::with_views("index_add", [ids, src], |b, [ids, src]| {
                b.index_add_assign(&mut **dst, self.dims(), a, ids, src)
            })?;
        }
        Ok(self)
    }
}

/// The axis of an `index_add` into `shape`, after checking `ids` and `src` against it.
fn check_index_add(shape: &Shape, axis: isize, ids: &Tensor, src: &Tensor) -> Result<usize> {
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
    Ok(a)
}
