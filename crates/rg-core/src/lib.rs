//! `rg-core`: the tensor layer of RustyGradients.
//!
//! It holds [`Tensor`] (shared storage plus a [`Layout`] and a [`DType`]), the
//! [`Device`] chosen at run time, the object-safe [`backend`] traits that `rg-cpu` and
//! `rg-cuda` implement, and the [`Error`] type. It contains no kernel: every op checks
//! shapes, dtypes and devices here, then hands contiguous or strided views to the
//! backend registered for the tensor's device.
//!
//! Backends register through [`backend::register`]: a program calls `rg_cpu::register()`
//! (or the facade's `rusty_gradients::register_backends()`) before its first op. On
//! native targets a linked `rg-cpu` is also found without the call (tests rely on it).

pub mod backend;
mod device;
mod dtype;
mod error;
mod host;
mod layout;
pub mod ops;
pub mod profile;
pub mod quant;
mod shape;
mod shared_bytes;
pub mod shared_data;
mod tensor;

pub use backend::{Backend, BackendStorage};
pub use device::Device;
pub use dtype::{DType, FloatDType, WithDType};
pub use error::{Error, Result};
pub use half::{bf16, f16};
pub use host::HostBuffer;
pub use layout::Layout;
pub use ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
pub use quant::{Q8Matrix, Q8_BLOCK};
pub use shape::Shape;
pub use shared_bytes::SharedBytes;
pub use tensor::Tensor;
