use std::fmt;

use half::{bf16, f16};

use crate::{Error, HostBuffer, Result};

/// Element type of a tensor. f32 and f64 are compute types on every backend; bf16 and
/// f16 are storage types (converted with [`crate::Tensor::to_dtype`]) and compute types
/// where a backend says so; u32 and i64 hold indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    BF16,
    F16,
    U32,
    I64,
}

impl DType {
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F64,
        DType::BF16,
        DType::F16,
        DType::U32,
        DType::I64,
    ];

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::BF16 | DType::F16 => 2,
        }
    }

    pub fn is_float(self) -> bool {
        !self.is_int()
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::U32 | DType::I64)
    }

    /// The name safetensors uses for this dtype.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
            DType::U32 => "U32",
            DType::I64 => "I64",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::I64 => "i64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        DType::ALL
            .into_iter()
            .find(|d| d.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::invalid(
                    "parse dtype",
                    format!("unknown dtype {s:?}: expected one of f32, f64, bf16, f16, u32, i64"),
                )
            })
    }
}

/// A Rust element type that a tensor can hold.
pub trait WithDType: Copy + Send + Sync + fmt::Debug + PartialEq + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn into_host(v: Vec<Self>) -> HostBuffer;
    fn from_host(h: HostBuffer) -> Result<Vec<Self>>;
    fn host_slice(h: &HostBuffer) -> Option<&[Self]>;
}

macro_rules! with_dtype {
    ($ty:ty, $variant:ident, $to_f64:expr, $from_f64:expr) => {
        impl WithDType for $ty {
            const DTYPE: DType = DType::$variant;
            fn to_f64(self) -> f64 {
                $to_f64(self)
            }
            fn from_f64(v: f64) -> Self {
                $from_f64(v)
            }
            fn into_host(v: Vec<Self>) -> HostBuffer {
                HostBuffer::$variant(v)
            }
            fn from_host(h: HostBuffer) -> Result<Vec<Self>> {
                match h {
                    HostBuffer::$variant(v) => Ok(v),
                    other => Err(Error::DTypeMismatch {
                        op: "to_vec",
                        lhs: other.dtype(),
                        rhs: DType::$variant,
                    }),
                }
            }
            fn host_slice(h: &HostBuffer) -> Option<&[Self]> {
                match h {
                    HostBuffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

with_dtype!(f32, F32, |v: f32| v as f64, |v: f64| v as f32);
with_dtype!(f64, F64, |v: f64| v, |v: f64| v);
with_dtype!(bf16, BF16, |v: bf16| v.to_f64(), bf16::from_f64);
with_dtype!(f16, F16, |v: f16| v.to_f64(), f16::from_f64);
with_dtype!(u32, U32, |v: u32| v as f64, |v: f64| v as u32);
with_dtype!(i64, I64, |v: i64| v as f64, |v: f64| v as i64);

/// The floating-point compute types every backend implements kernels for.
pub trait FloatDType: WithDType + num_traits::Float + std::iter::Sum + Default {}
impl FloatDType for f32 {}
impl FloatDType for f64 {}
