//! Tensor ops: signatures, shape/dtype/device checks, and dispatch to the backend.
//! One file per op family; the kernels live in the backend crates.

mod attention;
mod binary;
mod cast;
mod concat;
mod cross_entropy;
mod indexing;
mod layer_norm;
mod mask;
mod matmul;
mod optim;
mod reduce;
mod softmax;
mod unary;

pub use attention::{AttentionBackward, AttentionForward};
pub use cross_entropy::CrossEntropy;
pub use layer_norm::LayerNormForward;

/// Elementwise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Tanh,
    Sqrt,
    Relu,
    /// GELU with GPT-2's tanh approximation.
    Gelu,
    Square,
    Recip,
    Abs,
}

/// Elementwise functions of two tensors of one shape (after broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    ArgMax,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Square => "square",
            UnaryOp::Recip => "recip",
            UnaryOp::Abs => "abs",
        }
    }
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
        }
    }
}

/// GELU, tanh approximation, as GPT-2 defines it; the reference every backend's kernel
/// is tested against.
pub fn gelu_reference(x: f64) -> f64 {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}
