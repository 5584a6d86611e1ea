//! [`SafeTensorsFile`]: a validated safetensors file over a memory map.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use rg_core::{DType, Device, HostBuffer, SharedBytes, Tensor};

use crate::convert::{bf16_le_bytes_to_f32, f16_le_bytes_to_f32, widen};
use crate::header::{parse_header, shown, Header};
use crate::{Error, Result, StoredDType, TensorInfo};

/// The bytes a file's tensors point into: a memory map, or any shared buffer.
type SharedBuffer = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A conversion from stored half-precision bytes into f32 (see [`crate::convert`]).
type HalfToF32 = fn(&[u8], &mut [f32]);

/// A safetensors file whose header has been fully validated: every tensor's dtype is
/// known, its bytes lie inside the file, no two tensors overlap, and each byte length
/// matches its shape. After [`SafeTensorsFile::open`] succeeds, reading a tensor
/// fails only for reasons outside the file (an unsupported dtype, the device).
///
/// The file is memory-mapped, not read: opening costs the header parse alone, and f32
/// tensors loaded on the CPU share the mapped pages (the map lives as long as the
/// last tensor using it).
pub struct SafeTensorsFile {
    path: PathBuf,
    bytes: SharedBuffer,
    header: Header,
}

impl std::fmt::Debug for SafeTensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.header.tensors.len())
            .field("metadata", &self.header.metadata)
            .finish()
    }
}

impl SafeTensorsFile {
    /// Maps and validates the file at `path`.
    ///
    /// Like every memory-mapped reader, this assumes nobody truncates or rewrites the
    /// file while it is open; our own writer never does (it replaces files by rename).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io(path, "stat", e))?
            .len();
        if file_len < 8 {
            // Also avoids mapping an empty file, which some platforms refuse.
            return Err(Error::TruncatedHeaderLength {
                path: path.to_owned(),
                file_len,
            });
        }
        // SAFETY: the map is read-only and only ever viewed as bytes. Mapping is unsafe
        // because another process could modify the file underneath us; that contract
        // is documented above, and every value read from the map is validated anyway.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mmap", e))?;
        Self::from_shared(path, Arc::new(map))
    }

    /// Validates a safetensors image held in memory (for tests, fuzzing, network
    /// buffers); `label` stands for the file name in error messages.
    pub fn from_shared(label: impl Into<PathBuf>, bytes: SharedBuffer) -> Result<Self> {
        let path = label.into();
        let header = parse_header(&path, (*bytes).as_ref())?;
        Ok(SafeTensorsFile {
            path,
            bytes,
            header,
        })
    }

    /// [`SafeTensorsFile::from_shared`] over an owned buffer.
    pub fn from_vec(label: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_shared(label, Arc::new(bytes))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensors in header order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.iter().map(TensorInfo::name)
    }

    pub fn len(&self) -> usize {
        self.header.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.tensors.is_empty()
    }

    /// The `__metadata__` strings (empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.header
            .index
            .get(name)
            .map(|&i| &self.header.tensors[i])
    }

    /// Like [`SafeTensorsFile::get`], with an error naming the file when absent.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.get(name).ok_or_else(|| Error::TensorNotFound {
            path: self.path.clone(),
            tensor: shown(name),
            count: self.len(),
        })
    }

    /// The stored little-endian bytes of a tensor, whatever its dtype.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.info(name)?;
        let (start, end) = self.file_range(info);
        Ok(&(*self.bytes).as_ref()[start..end])
    }

    /// A tensor's bytes as a [`SharedBytes`] that keeps the whole map alive.
    pub fn shared_bytes(&self, name: &str) -> Result<SharedBytes> {
        let info = self.info(name)?;
        let (start, end) = self.file_range(info);
        // Cannot fail: validation put the range inside the buffer.
        SharedBytes::new(self.bytes.clone(), start, end - start).ok_or_else(|| {
            self.tensor_error(
                name,
                rg_core::Error::invalid("shared_bytes", "range outside the file"),
            )
        })
    }

    /// Loads a tensor in its stored dtype: f32, f64, bf16, f16, u32 and i64 as they
    /// are (f32 on the CPU without copying when aligned), bool/u8/u16 widened to u32
    /// and i8/i16/i32 to i64. 8-bit floats and u64 are an
    /// [`Error::UnsupportedDType`] (their bytes stay readable with `raw_bytes`).
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let info = self.info(name)?;
        let stored = info.dtype();
        if let Some(dtype) = stored.exact_dtype() {
            let bytes = self.shared_bytes(name)?;
            return Tensor::from_shared_bytes(bytes, dtype, info.shape(), device)
                .map_err(|e| self.tensor_error(name, e));
        }
        let src = self.raw_bytes(name)?;
        let host = match stored {
            StoredDType::Bool | StoredDType::U8 => {
                HostBuffer::U32(widen(src, |[b]: [u8; 1]| b as u32))
            }
            StoredDType::U16 => HostBuffer::U32(widen(src, |b| u16::from_le_bytes(b) as u32)),
            StoredDType::I8 => HostBuffer::I64(widen(src, |[b]: [u8; 1]| b as i8 as i64)),
            StoredDType::I16 => HostBuffer::I64(widen(src, |b| i16::from_le_bytes(b) as i64)),
            StoredDType::I32 => HostBuffer::I64(widen(src, |b| i32::from_le_bytes(b) as i64)),
            _ => {
                return Err(Error::UnsupportedDType {
                    path: self.path.clone(),
                    tensor: shown(name),
                    dtype: stored.name().into(),
                    reason: stored.unsupported_reason().into(),
                })
            }
        };
        Tensor::from_host(host, info.shape(), device).map_err(|e| self.tensor_error(name, e))
    }

    /// Loads a tensor converted to `dtype`. bf16/f16 -> f32 is converted straight from
    /// the mapped bytes (one pass, no intermediate half-precision tensor); other
    /// conversions load the stored dtype and cast with `Tensor::to_dtype`.
    pub fn load_as(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let info = self.info(name)?;
        let half_to_f32: Option<HalfToF32> = match (info.dtype(), dtype) {
            (StoredDType::BF16, DType::F32) => Some(bf16_le_bytes_to_f32),
            (StoredDType::F16, DType::F32) => Some(f16_le_bytes_to_f32),
            _ => None,
        };
        if let Some(convert) = half_to_f32 {
            let mut out = vec![0f32; info.elem_count()];
            convert(self.raw_bytes(name)?, &mut out);
            return Tensor::from_host(HostBuffer::F32(out), info.shape(), device)
                .map_err(|e| self.tensor_error(name, e));
        }
        let tensor = self.tensor(name, device)?;
        if tensor.dtype() == dtype {
            return Ok(tensor);
        }
        tensor
            .to_dtype(dtype)
            .map_err(|e| self.tensor_error(name, e))
    }

    /// `[start, end)` of a tensor's bytes within the whole file.
    fn file_range(&self, info: &TensorInfo) -> (usize, usize) {
        let (start, end) = info.data_offsets();
        // No overflow: validation bounded both by the buffer length.
        (self.header.data_start + start, self.header.data_start + end)
    }

    fn tensor_error(&self, name: &str, source: rg_core::Error) -> Error {
        Error::Tensor {
            path: self.path.clone(),
            tensor: shown(name),
            source: Box::new(source),
        }
    }
}
