use crate::{Error, Result, Tensor};

impl Tensor {
    /// Joins tensors along `axis`; all other axes must agree.
    pub fn concat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "concat";
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid(OP, "needs at least one tensor"))?;
        let a = first.shape().axis(OP, axis)?;
        let mut dims = first.dims().to_vec();
        dims[a] = 0;
        for t in tensors {
            first.check_same(OP, t)?;
            let compatible = t.rank() == first.rank()
                && t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !compatible {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: first.shape().clone(),
                    rhs: t.shape().clone(),
                });
            }
            dims[a] += t.dims()[a];
        }
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let storage =
            Tensor::with_view_list(OP, &refs, |backend, views| backend.concat(views, a, &dims))?;
        Ok(first.wrap(storage, dims))
    }
}
