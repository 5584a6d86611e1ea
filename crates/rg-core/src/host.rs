use half::{bf16, f16};

use crate::DType;

/// Host-side data of one dtype: what goes into a backend and comes out of one.
#[derive(Debug, Clone, PartialEq)]
pub enum HostBuffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    U32(Vec<u32>),
    I64(Vec<i64>),
}

impl HostBuffer {
    pub fn dtype(&self) -> DType {
        match self {
            HostBuffer::F32(_) => DType::F32,
            HostBuffer::F64(_) => DType::F64,
            HostBuffer::BF16(_) => DType::BF16,
            HostBuffer::F16(_) => DType::F16,
            HostBuffer::U32(_) => DType::U32,
            HostBuffer::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostBuffer::F32(v) => v.len(),
            HostBuffer::F64(v) => v.len(),
            HostBuffer::BF16(v) => v.len(),
            HostBuffer::F16(v) => v.len(),
            HostBuffer::U32(v) => v.len(),
            HostBuffer::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as f64 (exact for all dtypes but i64 beyond 2^53).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            HostBuffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostBuffer::F64(v) => v.clone(),
            HostBuffer::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            HostBuffer::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            HostBuffer::U32(v) => v.iter().map(|&x| x as f64).collect(),
            HostBuffer::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Little-endian bytes, as safetensors stores them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn collect<T, const N: usize>(v: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
            let mut out = Vec::with_capacity(v.len() * N);
            for x in v {
                out.extend_from_slice(&f(x));
            }
            out
        }
        match self {
            HostBuffer::F32(v) => collect(v, |x| x.to_le_bytes()),
            HostBuffer::F64(v) => collect(v, |x| x.to_le_bytes()),
            HostBuffer::BF16(v) => collect(v, |x| x.to_le_bytes()),
            HostBuffer::F16(v) => collect(v, |x| x.to_le_bytes()),
            HostBuffer::U32(v) => collect(v, |x| x.to_le_bytes()),
            HostBuffer::I64(v) => collect(v, |x| x.to_le_bytes()),
        }
    }

    /// Decodes little-endian bytes; `None` when the length is not a multiple of the
    /// element size.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<HostBuffer> {
        let size = dtype.size_in_bytes();
        if bytes.len() % size != 0 {
            return None;
        }
        fn decode<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
                .collect()
        }
        Some(match dtype {
            DType::F32 => HostBuffer::F32(decode(bytes, f32::from_le_bytes)),
            DType::F64 => HostBuffer::F64(decode(bytes, f64::from_le_bytes)),
            DType::BF16 => HostBuffer::BF16(decode(bytes, bf16::from_le_bytes)),
            DType::F16 => HostBuffer::F16(decode(bytes, f16::from_le_bytes)),
            DType::U32 => HostBuffer::U32(decode(bytes, u32::from_le_bytes)),
            DType::I64 => HostBuffer::I64(decode(bytes, i64::from_le_bytes)),
        })
    }
}
