use crate::backend::View;
use crate::{BinaryOp, CmpOp, DType, Error, Result, Tensor};

impl Tensor {
    /// Elementwise op with numpy broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let name = op.name();
        self.check_same(name, rhs)?;
        self.check_float(name)?;
        let (lhs, rhs) = self.broadcast_pair(name, rhs)?;
        let storage = Tensor::with_views(name, [&lhs, &rhs], |b, [l, r]| b.binary(op, l, r))?;
        Ok(self.wrap(storage, lhs.shape().clone()))
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs)
    }

    /// `self + rhs`, written into `self`'s memory when this handle is the only one on
    /// it and it is contiguous with `rhs`'s shape and dtype; otherwise a new tensor as
    /// [`Tensor::add`]. Gradient accumulation uses it so that summing the gradients of a
    /// var used twice needs no third buffer.
    pub fn add_into(self, rhs: &Tensor) -> Result<Tensor> {
        let fits = self.is_writable_in_place()
            && self.dims() == rhs.dims()
            && self.dtype() == rhs.dtype()
            && self.device() == rhs.device();
        if !fits {
            return self.add(rhs);
        }
        {
            // `rhs` cannot share the storage: this handle is its only owner.
            let src = rhs.read();
            let mut dst = self.write();
            self.backend()
                .add_assign(&mut **dst, View::new(&**src, rhs.layout()))?;
        }
        Ok(self)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, rhs)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, rhs)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, rhs)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, rhs)
    }

    /// Elementwise comparison with broadcasting; u32 1 where it holds, else 0.
    pub fn cmp(&self, op: CmpOp, rhs: &Tensor) -> Result<Tensor> {
        self.check_same("cmp", rhs)?;
        let (lhs, rhs) = self.broadcast_pair("cmp", rhs)?;
        let storage = Tensor::with_views("cmp", [&lhs, &rhs], |b, [l, r]| b.cmp(op, l, r))?;
        debug_assert_eq!(storage.dtype(), DType::U32);
        Ok(self.wrap(storage, lhs.shape().clone()))
    }

    pub fn eq_mask(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(CmpOp::Eq, rhs)
    }

    /// Both tensors viewed at their common broadcast shape.
    pub(crate) fn broadcast_pair(
        &self,
        op: &'static str,
        rhs: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        if self.shape() == rhs.shape() {
            return Ok((self.clone(), rhs.clone()));
        }
        let shape = self.shape().broadcast_with(op, rhs.shape())?;
        Ok((
            self.with_layout(self.layout().broadcast_to(op, &shape)?),
            rhs.with_layout(rhs.layout().broadcast_to(op, &shape)?),
        ))
    }

    pub(crate) fn check_same_shape(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                rhs: other.shape().clone(),
            });
        }
        Ok(())
    }
}
