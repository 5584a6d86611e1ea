use crate::backend::{AdamWParams, View};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// One fused AdamW update of `self` (the parameter) in place, with moments `m` and
    /// `v` updated in place too. All four tensors share shape, dtype and device; the
    /// parameter and moments must be contiguous and distinct.
    pub fn adamw_step_(
        &self,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        params: &AdamWParams,
    ) -> Result<()> {
        const OP: &str = "adamw_step";
        self.check_float(OP)?;
        for t in [grad, m, v] {
            self.check_same(OP, t)?;
            self.check_same_shape(OP, t)?;
        }
        if [self, m, v].iter().any(|t| !t.is_contiguous()) {
            return Err(Error::invalid(
                OP,
                "parameter and moments must be contiguous",
            ));
        }
        let distinct = !self.same_storage(m) && !self.same_storage(v) && !m.same_storage(v);
        let grad_apart = [self, m, v].iter().all(|t| !t.same_storage(grad));
        if !distinct || !grad_apart {
            return Err(Error::invalid(
                OP,
                "parameter, gradient and moments must not share storage",
            ));
        }
        let g = grad.read_guard();
        let mut p = self.write();
        let mut m_s = m.write();
        let mut v_s = v.write();
        self.backend().adamw_step(
            &mut **p,
            View::new(&**g, grad.layout()),
            &mut **m_s,
            &mut **v_s,
            params,
        )
    }
}
