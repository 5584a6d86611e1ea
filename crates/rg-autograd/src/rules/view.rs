use rg_core::{Result, Shape, Tensor};

use crate::{BackwardRule, InputGrad, Var};

/// Backward of reshape, squeeze, unsqueeze and flatten: reshape back.
struct Reshape;

impl BackwardRule for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(inputs[0].shape().clone())?)])
    }
}

/// Backward of permute and transpose: the inverse permutation.
struct Permute {
    order: Vec<usize>,
}

impl BackwardRule for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn backward(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut inverse = vec![0; self.order.len()];
        for (i, &o) in self.order.iter().enumerate() {
            inverse[o] = i;
        }
        Ok(vec![Some(g.permute(&inverse)?)])
    }
}

/// Backward of narrow: the gradient padded with zeros back to the input's shape.
struct Narrow {
    axis: usize,
    start: usize,
}

impl BackwardRule for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = Tensor::zeros(inputs[0].shape().clone(), g.dtype(), &g.device())?;
        dx.narrow(self.axis as isize, self.start, g.dims()[self.axis])?
            .copy_from(g)?;
        Ok(vec![Some(dx)])
    }

    fn input_grads(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<InputGrad>>> {
        Ok(vec![Some(InputGrad::Slice {
            axis: self.axis,
            start: self.start,
            src: g.clone(),
        })])
    }
}

/// Backward of broadcast_to: sum over the repeated axes.
struct Broadcast;

impl BackwardRule for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }

    fn backward(&self, g: &Tensor, inputs: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.sum_to_shape(inputs[0].shape())?)])
    }
}

/// Backward of contiguous (and of other identity-valued ops).
struct Identity;

impl BackwardRule for Identity {
    fn name(&self) -> &'static str {
        "contiguous"
    }

    fn backward(&self, g: &Tensor, _: &[Var], _: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.clone())])
    }
}

impl Var {
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().reshape(shape)?,
            &[self],
            Reshape,
        ))
    }

    pub fn flatten_all(&self) -> Result<Var> {
        self.reshape(self.elem_count())
    }

    pub fn squeeze(&self, axis: isize) -> Result<Var> {
        Ok(Var::from_op(self.tensor().squeeze(axis)?, &[self], Reshape))
    }

    pub fn unsqueeze(&self, axis: isize) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().unsqueeze(axis)?,
            &[self],
            Reshape,
        ))
    }

    pub fn permute(&self, order: &[usize]) -> Result<Var> {
        let out = self.tensor().permute(order)?;
        Ok(Var::from_op(
            out,
            &[self],
            Permute {
                order: order.to_vec(),
            },
        ))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Var> {
        let a = self.shape().axis("transpose", a)?;
        let b = self.shape().axis("transpose", b)?;
        let mut order: Vec<usize> = (0..self.rank()).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// Swaps the last two axes.
    pub fn t(&self) -> Result<Var> {
        self.tensor().t()?;
        self.transpose(-2, -1)
    }

    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        let a = self.shape().axis("narrow", axis)?;
        let out = self.tensor().narrow(axis, start, len)?;
        Ok(Var::from_op(out, &[self], Narrow { axis: a, start }))
    }

    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Var> {
        Ok(Var::from_op(
            self.tensor().broadcast_to(shape)?,
            &[self],
            Broadcast,
        ))
    }

    pub fn contiguous(&self) -> Result<Var> {
        Ok(Var::from_op(self.tensor().contiguous()?, &[self], Identity))
    }
}
