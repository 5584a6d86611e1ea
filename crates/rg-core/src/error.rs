use crate::{DType, Device, Shape};

/// Every failure a user can provoke, naming the op and the shapes, dtypes or devices
/// involved. Nothing in `rg-core` panics on user input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {lhs} vs {rhs}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
    },
    #[error("{op}: shapes {lhs} and {rhs} cannot be broadcast together")]
    BroadcastIncompatible {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
    },
    #[error("{op}: cannot reshape {from} ({from_elems} elements) into {to} ({to_elems} elements)")]
    ElementCountMismatch {
        op: &'static str,
        from: Shape,
        from_elems: usize,
        to: Shape,
        to_elems: usize,
    },
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank} (shape {shape})")]
    AxisOutOfRange {
        op: &'static str,
        axis: isize,
        rank: usize,
        shape: Shape,
    },
    #[error("{op}: expected rank {expected}, got shape {shape}")]
    RankMismatch {
        op: &'static str,
        expected: String,
        shape: Shape,
    },
    #[error("{op}: index {index} is out of range for size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    #[error("{op}: dtype mismatch: {lhs} vs {rhs}")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    #[error("{op}: dtype {dtype} is not supported here (expected {expected})")]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        expected: &'static str,
    },
    #[error("{op}: device mismatch: {lhs} vs {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    #[error("no backend for device {device}: {hint}")]
    BackendUnavailable { device: Device, hint: String },
    #[error("{device} backend, {op}: {msg}")]
    Backend {
        device: Device,
        op: &'static str,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    pub fn backend(device: Device, op: &'static str, msg: impl Into<String>) -> Self {
        Error::Backend {
            device,
            op,
            msg: msg.into(),
        }
    }
}
