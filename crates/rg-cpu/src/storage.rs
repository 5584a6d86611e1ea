//! `CpuStorage`: the CPU backend's memory, one typed buffer per dtype.
//!
//! A buffer either owns a `Vec<T>` or borrows little-endian bytes that someone else owns
//! (a memory-mapped safetensors file) through [`SharedBytes`]. Borrowed buffers are
//! read-only: the first in-place write copies them into an owned `Vec` (copy-on-write),
//! so a mapped file is never written through.

use std::any::Any;
use std::fmt;

use half::{bf16, f16};
use rg_core::backend::BackendStorage;
use rg_core::{DType, Device, Error, HostBuffer, Result, SharedBytes, WithDType};

use crate::aligned::AlignedVec;

/// The element types a [`CpuStorage`] can hold.
///
/// Sealed: implemented exactly for f32, f64, bf16, f16, u32 and i64, plain-old-data
/// types for which every bit pattern is a valid value. The zero-copy path relies on
/// that to view borrowed bytes as a typed slice.
pub trait CpuElement: WithDType + sealed::Sealed {
    /// Wraps a typed buffer in the storage enum.
    fn wrap(buffer: CpuBuffer<Self>) -> CpuStorage;
    fn buffer(storage: &CpuStorage) -> Option<&CpuBuffer<Self>>;
    fn buffer_mut(storage: &mut CpuStorage) -> Option<&mut CpuBuffer<Self>>;
    /// The additive identity (the value fresh storage starts with).
    fn zeroed() -> Self;
}

mod sealed {
    pub trait Sealed {}
}

/// Elements of one dtype, owned or borrowed from shared bytes.
pub struct CpuBuffer<T: CpuElement> {
    repr: Repr<T>,
}

enum Repr<T> {
    Owned(AlignedVec<T>),
    /// Aligned little-endian bytes holding `len` elements, checked at construction.
    Shared {
        bytes: SharedBytes,
        len: usize,
    },
}

impl<T: CpuElement> CpuBuffer<T> {
    /// Takes ownership of `data` (no copy): a kernel's line-aligned output, or a
    /// caller's `Vec` as it is.
    pub fn from_vec(data: impl Into<AlignedVec<T>>) -> Self {
        CpuBuffer {
            repr: Repr::Owned(data.into()),
        }
    }

    /// Borrows `bytes` when they are aligned for `T` and this machine is little-endian;
    /// `None` when a copy is needed instead.
    fn borrow_bytes(bytes: SharedBytes) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        let raw = bytes.as_bytes();
        let aligned = (raw.as_ptr() as usize) % std::mem::align_of::<T>() == 0;
        if !cfg!(target_endian = "little") || !aligned || raw.len() % size != 0 {
            return None;
        }
        let len = raw.len() / size;
        Some(CpuBuffer {
            repr: Repr::Shared { bytes, len },
        })
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Owned(v) => v.len(),
            Repr::Shared { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements are borrowed (zero-copy) rather than owned.
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Shared { .. })
    }

    pub fn as_slice(&self) -> &[T] {
        match &self.repr {
            Repr::Owned(v) => v,
            Repr::Shared { bytes, len } => {
                let raw = bytes.as_bytes();
                // Re-checked on every access because the owner only promises bytes, not
                // a stable address; should it ever move, the view turns empty and the
                // kernels' bounds checks report an error instead of reading garbage.
                let fits = raw.len() == len * std::mem::size_of::<T>()
                    && (raw.as_ptr() as usize) % std::mem::align_of::<T>() == 0;
                if !fits {
                    return &[];
                }
                // SAFETY: `raw` is aligned for `T`, holds exactly `len` elements' bytes,
                // lives as long as `self` (the `SharedBytes` keeps its owner alive), and
                // `T` (sealed) is plain data valid for any bit pattern.
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<T>(), *len) }
            }
        }
    }

    /// Mutable elements, copying borrowed bytes into an owned buffer first.
    pub fn make_mut(&mut self) -> &mut [T] {
        if let Repr::Shared { .. } = self.repr {
            let mut owned = crate::pool::for_overwrite(self.len());
            owned.copy_from_slice(self.as_slice());
            self.repr = Repr::Owned(owned);
        }
        match &mut self.repr {
            Repr::Owned(v) => v,
            Repr::Shared { .. } => unreachable!("converted to owned above"),
        }
    }
}

impl<T: CpuElement> Drop for CpuBuffer<T> {
    fn drop(&mut self) {
        if let Repr::Owned(v) = &mut self.repr {
            crate::pool::recycle(std::mem::take(v));
        }
    }
}

impl<T: CpuElement> fmt::Debug for CpuBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Owned(v) => write!(f, "owned({} elements)", v.len()),
            Repr::Shared { len, .. } => write!(f, "shared({len} elements)"),
        }
    }
}

/// A host vector as storage: copied into a fresh line-aligned buffer when it is as
/// large as the buffers the pool keeps, moved otherwise (see [`CpuStorage::from_host`]).
fn adopt<T: CpuElement>(v: Vec<T>) -> AlignedVec<T> {
    if std::mem::size_of_val(v.as_slice()) < crate::pool::MIN_POOLED_BYTES {
        return v.into();
    }
    AlignedVec::copied(&v)
}

/// CPU memory of one dtype.
#[derive(Debug)]
pub enum CpuStorage {
    F32(CpuBuffer<f32>),
    F64(CpuBuffer<f64>),
    BF16(CpuBuffer<bf16>),
    F16(CpuBuffer<f16>),
    U32(CpuBuffer<u32>),
    I64(CpuBuffer<i64>),
}

macro_rules! cpu_element {
    ($ty:ty, $variant:ident) => {
        impl sealed::Sealed for $ty {}
        impl CpuElement for $ty {
            fn wrap(buffer: CpuBuffer<Self>) -> CpuStorage {
                CpuStorage::$variant(buffer)
            }
            fn buffer(storage: &CpuStorage) -> Option<&CpuBuffer<Self>> {
                match storage {
                    CpuStorage::$variant(b) => Some(b),
                    _ => None,
                }
            }
            fn buffer_mut(storage: &mut CpuStorage) -> Option<&mut CpuBuffer<Self>> {
                match storage {
                    CpuStorage::$variant(b) => Some(b),
                    _ => None,
                }
            }
            fn zeroed() -> Self {
                <$ty as WithDType>::from_f64(0.0)
            }
        }
    };
}

cpu_element!(f32, F32);
cpu_element!(f64, F64);
cpu_element!(bf16, BF16);
cpu_element!(f16, F16);
cpu_element!(u32, U32);
cpu_element!(i64, I64);

/// Runs `$body` with `$b` bound to the typed buffer of whichever variant `$s` is.
macro_rules! with_buffer {
    ($s:expr, $b:ident => $body:expr) => {
        match $s {
            CpuStorage::F32($b) => $body,
            CpuStorage::F64($b) => $body,
            CpuStorage::BF16($b) => $body,
            CpuStorage::F16($b) => $body,
            CpuStorage::U32($b) => $body,
            CpuStorage::I64($b) => $body,
        }
    };
}

impl CpuStorage {
    /// Takes ownership of `data` (no copy).
    pub fn from_vec<T: CpuElement>(data: impl Into<AlignedVec<T>>) -> Self {
        T::wrap(CpuBuffer::from_vec(data))
    }

    /// Takes ownership of the host buffer's vector: as it is when small, copied into a
    /// line-aligned buffer (on huge pages where Linux gives them, see `aligned`) when
    /// it is as large as the buffers the pool keeps.
    ///
    /// Why copy: kernels then read and write it as they do their own outputs, e.g. the
    /// optimizer's parameters, updated every step. AdamW over 124M parameters made from
    /// host vectors (`rg-bench adamw_step 124M`, Intel Xeon with AMX, family 6 model
    /// 167): 70.9-75.8 ms a step as they came, 66.5-67.4 ms copied. The copy is made
    /// once, and is not taken from the pool (nor makes the pool keep its size).
    pub fn from_host(data: HostBuffer) -> Self {
        match data {
            HostBuffer::F32(v) => Self::from_vec(adopt(v)),
            HostBuffer::F64(v) => Self::from_vec(adopt(v)),
            HostBuffer::BF16(v) => Self::from_vec(adopt(v)),
            HostBuffer::F16(v) => Self::from_vec(adopt(v)),
            HostBuffer::U32(v) => Self::from_vec(adopt(v)),
            HostBuffer::I64(v) => Self::from_vec(adopt(v)),
        }
    }

    /// Little-endian bytes of `dtype`: borrowed without a copy when they are aligned
    /// for the element type, decoded into an owned buffer otherwise.
    pub fn from_shared_bytes(dtype: DType, bytes: SharedBytes) -> Result<Self> {
        fn build<T: CpuElement>(bytes: SharedBytes) -> Option<CpuStorage> {
            CpuBuffer::<T>::borrow_bytes(bytes).map(T::wrap)
        }
        let borrowed = match dtype {
            DType::F32 => build::<f32>(bytes.clone()),
            DType::F64 => build::<f64>(bytes.clone()),
            DType::BF16 => build::<bf16>(bytes.clone()),
            DType::F16 => build::<f16>(bytes.clone()),
            DType::U32 => build::<u32>(bytes.clone()),
            DType::I64 => build::<i64>(bytes.clone()),
        };
        if let Some(storage) = borrowed {
            return Ok(storage);
        }
        HostBuffer::from_le_bytes(dtype, bytes.as_bytes())
            .map(Self::from_host)
            .ok_or_else(|| {
                Error::backend(
                    Device::Cpu,
                    "from_shared_bytes",
                    format!(
                        "{} bytes are not a whole number of {dtype} elements ({} bytes each)",
                        bytes.len(),
                        dtype.size_in_bytes()
                    ),
                )
            })
    }

    /// Downcasts a trait object to CPU storage, `None` for another backend's storage.
    pub fn downcast(storage: &dyn BackendStorage) -> Option<&CpuStorage> {
        storage.as_any().downcast_ref()
    }

    pub fn downcast_mut(storage: &mut dyn BackendStorage) -> Option<&mut CpuStorage> {
        storage.as_any_mut().downcast_mut()
    }

    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::U32(_) => DType::U32,
            CpuStorage::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        with_buffer!(self, b => b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the data is borrowed from shared bytes (no copy was made).
    pub fn is_zero_copy(&self) -> bool {
        with_buffer!(self, b => b.is_shared())
    }

    /// The elements as `&[T]`, `None` when the storage holds another dtype.
    pub fn as_slice<T: CpuElement>(&self) -> Option<&[T]> {
        T::buffer(self).map(CpuBuffer::as_slice)
    }

    /// The elements as `&mut [T]` (copying borrowed bytes first), `None` when the
    /// storage holds another dtype.
    pub fn as_mut_slice<T: CpuElement>(&mut self) -> Option<&mut [T]> {
        T::buffer_mut(self).map(CpuBuffer::make_mut)
    }

    /// The whole buffer as host data, in storage order.
    pub fn to_host(&self) -> HostBuffer {
        with_buffer!(self, b => WithDType::into_host(b.as_slice().to_vec()))
    }
}

impl BackendStorage for CpuStorage {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn dtype(&self) -> DType {
        CpuStorage::dtype(self)
    }

    fn len(&self) -> usize {
        CpuStorage::len(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn make_owned(&mut self) {
        with_buffer!(self, b => {
            b.make_mut();
        })
    }

    fn host_f32_mut(&mut self) -> Option<&mut [f32]> {
        self.as_mut_slice::<f32>()
    }
}
