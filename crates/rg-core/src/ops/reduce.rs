use crate::{DType, Error, ReduceOp, Result, Tensor};

impl Tensor {
    /// Reduces `axis`; with `keepdim` the axis stays with size 1.
    pub fn reduce(&self, op: ReduceOp, axis: isize, keepdim: bool) -> Result<Tensor> {
        let name = op.name();
        self.check_float(name)?;
        let a = self.shape().axis(name, axis)?;
        if self.dims()[a] == 0 && op != ReduceOp::Sum {
            return Err(Error::invalid(
                name,
                format!("axis {axis} of shape {} is empty", self.shape()),
            ));
        }
        let storage = self.with_view(|b, v| b.reduce(op, v, a))?;
        let mut dims = self.dims().to_vec();
        if keepdim {
            dims[a] = 1;
        } else {
            dims.remove(a);
        }
        debug_assert!(op != ReduceOp::ArgMax || storage.dtype() == DType::U32);
        Ok(self.wrap(storage, dims))
    }

    pub fn sum(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axis, keepdim)
    }

    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axis, keepdim)
    }

    pub fn min(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axis, keepdim)
    }

    /// Index of the first maximum along `axis`, as u32.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::ArgMax, axis, keepdim)
    }

    pub fn mean(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let n = self.dim(axis)?;
        self.sum(axis, keepdim)?.scale(1.0 / n as f64)
    }

    /// `sum(x^2)` over every element in one fused pass, accumulated in f64.
    pub fn sum_squares(&self) -> Result<f64> {
        self.check_float("sum_squares")?;
        self.with_view(|b, v| b.sum_squares(v))
    }

    /// Sum of every element, as a 0-dimensional tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.flatten_all()?.sum(0, false)
    }

    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count();
        self.sum_all()?.scale(1.0 / n as f64)
    }

    /// Sums over axes so that the result has `shape`: the reverse of broadcasting,
    /// used to reduce gradients of broadcast operands.
    pub fn sum_to_shape(&self, shape: &crate::Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let check = self.shape().broadcast_with("sum_to_shape", shape)?;
        if &check != self.shape() {
            return Err(Error::BroadcastIncompatible {
                op: "sum_to_shape",
                lhs: self.shape().clone(),
                rhs: shape.clone(),
            });
        }
        let lead = self.rank() - shape.rank();
        let mut out = self.clone();
        for _ in 0..lead {
            out = out.sum(0, false)?;
        }
        for (axis, &d) in shape.dims().iter().enumerate() {
            if d == 1 && out.dims()[axis] != 1 {
                out = out.sum(axis as isize, true)?;
            }
        }
        Ok(out)
    }
}
