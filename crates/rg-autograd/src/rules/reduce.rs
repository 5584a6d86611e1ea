use rg_core::{CmpOp, Result, Tensor};

use crate::{BackwardRule, Var};

/// Shape of a reduction's result with the reduced axis kept as size 1.
fn keepdim_view(g: &Tensor, axis: usize, keepdim: bool) -> Result<Tensor> {
    if keepdim {
        Ok(g.clone())
    } else {
        g.unsqueeze(axis as isize)
    }
}

/// Backward of a sum along one axis: the gradient is broadcast back.
struct Sum {
    axis: usize,
    keepdim: bool,
}

impl BackwardRule for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = keepdim_view(g, self.axis, self.keepdim)?;
        Ok(vec![Some(g.broadcast_to(inputs[0].shape().clone())?)])
    }
}

/// Backward of max/min along an axis: the gradient is shared by the elements that
/// equal the extremum (one element unless there are ties).
struct Extremum {
    axis: usize,
    keepdim: bool,
}

impl BackwardRule for Extremum {
    fn name(&self) -> &'static str {
        "max/min"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], y: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = inputs[0].tensor();
        let y = keepdim_view(y, self.axis, self.keepdim)?;
        let g = keepdim_view(g, self.axis, self.keepdim)?;
        let hits = x.cmp(CmpOp::Eq, &y)?.to_dtype(x.dtype())?;
        let count = hits.sum(self.axis as isize, true)?;
        Ok(vec![Some(hits.mul(&g.div(&count)?)?)])
    }
}

impl Var {
    pub fn sum(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let a = self.shape().axis("sum", axis)?;
        let out = self.tensor().sum(axis, keepdim)?;
        Ok(Var::from_op(out, &[self], Sum { axis: a, keepdim }))
    }

    pub fn mean(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let n = self.tensor().dim(axis)?;
        self.sum(axis, keepdim)?.scale(1.0 / n as f64)
    }

    pub fn sum_all(&self) -> Result<Var> {
        self.flatten_all()?.sum(0, false)
    }

    pub fn mean_all(&self) -> Result<Var> {
        let n = self.elem_count();
        self.sum_all()?.scale(1.0 / n as f64)
    }

    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let a = self.shape().axis("max", axis)?;
        let out = self.tensor().max(axis, keepdim)?;
        Ok(Var::from_op(out, &[self], Extremum { axis: a, keepdim }))
    }

    pub fn min(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let a = self.shape().axis("min", axis)?;
        let out = self.tensor().min(axis, keepdim)?;
        Ok(Var::from_op(out, &[self], Extremum { axis: a, keepdim }))
    }
}
