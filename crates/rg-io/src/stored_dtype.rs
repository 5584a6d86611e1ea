use std::fmt;

use rg_core::DType;

/// An element type as a safetensors file names it. The file format knows more types
/// than our tensors do: [`StoredDType::load_dtype`] says which [`DType`] a stored
/// tensor becomes (integers widen losslessly), and `None` marks the types we
/// recognise but cannot load (8-bit floats, u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredDType {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl StoredDType {
    pub const ALL: [StoredDType; 15] = [
        StoredDType::Bool,
        StoredDType::U8,
        StoredDType::I8,
        StoredDType::F8E5M2,
        StoredDType::F8E4M3,
        StoredDType::I16,
        StoredDType::U16,
        StoredDType::F16,
        StoredDType::BF16,
        StoredDType::I32,
        StoredDType::U32,
        StoredDType::F32,
        StoredDType::F64,
        StoredDType::I64,
        StoredDType::U64,
    ];

    /// The names listed in "unknown dtype" errors.
    pub(crate) const KNOWN_NAMES: &'static str =
        "BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64";

    /// The name in the file header (`"F32"`, `"F8_E4M3"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StoredDType::Bool => "BOOL",
            StoredDType::U8 => "U8",
            StoredDType::I8 => "I8",
            StoredDType::F8E5M2 => "F8_E5M2",
            StoredDType::F8E4M3 => "F8_E4M3",
            StoredDType::I16 => "I16",
            StoredDType::U16 => "U16",
            StoredDType::F16 => "F16",
            StoredDType::BF16 => "BF16",
            StoredDType::I32 => "I32",
            StoredDType::U32 => "U32",
            StoredDType::F32 => "F32",
            StoredDType::F64 => "F64",
            StoredDType::I64 => "I64",
            StoredDType::U64 => "U64",
        }
    }

    pub fn from_name(name: &str) -> Option<StoredDType> {
        StoredDType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            StoredDType::Bool
            | StoredDType::U8
            | StoredDType::I8
            | StoredDType::F8E5M2
            | StoredDType::F8E4M3 => 1,
            StoredDType::I16 | StoredDType::U16 | StoredDType::F16 | StoredDType::BF16 => 2,
            StoredDType::I32 | StoredDType::U32 | StoredDType::F32 => 4,
            StoredDType::F64 | StoredDType::I64 | StoredDType::U64 => 8,
        }
    }

    /// The tensor dtype with exactly this representation, if there is one: such
    /// tensors load without conversion (zero-copy where the backend can).
    pub fn exact_dtype(self) -> Option<DType> {
        match self {
            StoredDType::F32 => Some(DType::F32),
            StoredDType::F64 => Some(DType::F64),
            StoredDType::BF16 => Some(DType::BF16),
            StoredDType::F16 => Some(DType::F16),
            StoredDType::U32 => Some(DType::U32),
            StoredDType::I64 => Some(DType::I64),
            _ => None,
        }
    }

    /// The dtype a tensor of this type loads as: itself where it exists, else the
    /// smallest of our integer types that holds every value (bool and unsigned -> u32,
    /// signed -> i64). `None` for the types no dtype of ours can hold exactly.
    pub fn load_dtype(self) -> Option<DType> {
        match self {
            StoredDType::Bool | StoredDType::U8 | StoredDType::U16 => Some(DType::U32),
            StoredDType::I8 | StoredDType::I16 | StoredDType::I32 => Some(DType::I64),
            StoredDType::F8E5M2 | StoredDType::F8E4M3 | StoredDType::U64 => None,
            exact => exact.exact_dtype(),
        }
    }

    /// Why [`StoredDType::load_dtype`] is `None`, for error messages.
    pub(crate) fn unsupported_reason(self) -> &'static str {
        match self {
            StoredDType::F8E5M2 | StoredDType::F8E4M3 => {
                "8-bit floats have no tensor dtype here; raw_bytes() gives the stored bytes"
            }
            StoredDType::U64 => {
                "u64 does not fit i64 losslessly; raw_bytes() gives the stored bytes"
            }
            _ => "",
        }
    }

    /// Rank of the type in the reference implementation's dtype order, which sorts
    /// the data section by descending rank (largest alignment first). Writing in the
    /// same order keeps every tensor aligned to its element size and makes our files
    /// byte-identical to the reference writer's.
    pub(crate) fn reference_order(self) -> usize {
        StoredDType::ALL
            .iter()
            .position(|&d| d == self)
            .unwrap_or(0)
    }
}

impl From<DType> for StoredDType {
    fn from(dtype: DType) -> Self {
        match dtype {
            DType::F32 => StoredDType::F32,
            DType::F64 => StoredDType::F64,
            DType::BF16 => StoredDType::BF16,
            DType::F16 => StoredDType::F16,
            DType::U32 => StoredDType::U32,
            DType::I64 => StoredDType::I64,
        }
    }
}

impl fmt::Display for StoredDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
