use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rg_core::{DType, Device, Shape, Tensor};

use crate::grad_mode::is_grad_enabled;
use crate::graph::{BackwardRule, Node};

/// Identity of a var, stable for its lifetime; keys [`crate::Gradients`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(u64);

impl VarId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        VarId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A tensor that takes part in automatic differentiation. Cloning is cheap.
#[derive(Clone)]
pub struct Var(Arc<VarInner>);

pub(crate) struct VarInner {
    pub(crate) id: VarId,
    pub(crate) tensor: Tensor,
    pub(crate) requires_grad: bool,
    pub(crate) node: Option<Node>,
}

impl Var {
    /// A leaf whose gradient [`Var::backward`] reports (a parameter).
    pub fn parameter(tensor: Tensor) -> Var {
        Var::leaf(tensor, true)
    }

    /// A leaf that needs no gradient (data, masks, targets).
    pub fn constant(tensor: Tensor) -> Var {
        Var::leaf(tensor, false)
    }

    fn leaf(tensor: Tensor, requires_grad: bool) -> Var {
        Var(Arc::new(VarInner {
            id: VarId::next(),
            tensor,
            requires_grad,
            node: None,
        }))
    }

    /// The result of an op: records `rule` with `inputs` when gradients are enabled and
    /// some input requires one; otherwise a constant.
    pub fn from_op(output: Tensor, inputs: &[&Var], rule: impl BackwardRule + 'static) -> Var {
        let tracked = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        if !tracked {
            return Var::constant(output);
        }
        Var(Arc::new(VarInner {
            id: VarId::next(),
            tensor: output,
            requires_grad: true,
            node: Some(Node {
                rule: Box::new(rule),
                inputs: inputs.iter().map(|v| (*v).clone()).collect(),
            }),
        }))
    }

    pub fn id(&self) -> VarId {
        self.0.id
    }

    pub fn tensor(&self) -> &Tensor {
        &self.0.tensor
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// True for parameters and constants, false for op results.
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }

    pub(crate) fn node(&self) -> Option<&Node> {
        self.0.node.as_ref()
    }

    /// The same values cut from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.0.tensor.clone())
    }

    pub fn shape(&self) -> &Shape {
        self.0.tensor.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.0.tensor.dims()
    }

    pub fn rank(&self) -> usize {
        self.0.tensor.rank()
    }

    pub fn dtype(&self) -> DType {
        self.0.tensor.dtype()
    }

    pub fn device(&self) -> Device {
        self.0.tensor.device()
    }

    pub fn elem_count(&self) -> usize {
        self.0.tensor.elem_count()
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (&self.0.node, self.0.requires_grad) {
            (Some(n), _) => n.rule.name(),
            (None, true) => "parameter",
            (None, false) => "constant",
        };
        write!(f, "Var({:?}, {kind})", self.0.tensor)
    }
}
