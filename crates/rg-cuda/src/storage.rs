//! `CudaStorage`: a typed device buffer of one dtype, from the caching allocator.

use std::any::Any;

use rg_core::backend::BackendStorage;
use rg_core::{DType, Device};

use crate::alloc::DeviceBuffer;

/// Device memory holding `len` elements of `dtype` (f32, f64, bf16, f16, u32 or i64).
#[derive(Debug)]
pub struct CudaStorage {
    buf: DeviceBuffer,
    dtype: DType,
    len: usize,
    device: Device,
}

impl CudaStorage {
    pub(crate) fn new(buf: DeviceBuffer, dtype: DType, len: usize, device: Device) -> Self {
        CudaStorage {
            buf,
            dtype,
            len,
            device,
        }
    }

    /// The device address of element 0 (for interop, e.g. NCCL collectives on the
    /// backend's stream).
    pub fn device_ptr(&self) -> u64 {
        self.buf.ptr()
    }

    /// The device address of element `index`.
    pub fn ptr_at(&self, index: usize) -> u64 {
        self.buf.ptr() + (index * self.dtype.size_in_bytes()) as u64
    }

    pub fn downcast(s: &dyn BackendStorage) -> Option<&CudaStorage> {
        s.as_any().downcast_ref()
    }

    pub fn downcast_mut(s: &mut dyn BackendStorage) -> Option<&mut CudaStorage> {
        s.as_any_mut().downcast_mut()
    }
}

impl BackendStorage for CudaStorage {
    fn device(&self) -> Device {
        self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
