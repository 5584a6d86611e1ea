//! `rg-io`: RustyGradients' model files.
//!
//! - [`SafeTensorsFile`]: a safetensors reader of our own over a memory map. Opening
//!   validates the whole header (lengths, JSON, dtypes, offsets, overlaps, duplicate
//!   names) before anything is allocated for tensors, with errors that name the file
//!   and the field at fault. f32 tensors load on the CPU without copying; bf16/f16 can
//!   be converted to f32 on load ([`SafeTensorsFile::load_as`]).
//! - [`save_safetensors`] and friends: files byte-identical to the reference writer's,
//!   written atomically.
//! - [`atomic_write`], [`AtomicDir`]: crash-safe replacement of a file or a directory
//!   (the building block for checkpoints).
//! - [`convert`]: fast bf16/f16 -> f32 conversion from little-endian bytes.
//!
//! No input file makes this crate panic.

mod atomic;
pub mod convert;
mod error;
mod header;
mod json;
mod reader;
mod stored_dtype;
mod writer;

pub use atomic::{atomic_write, atomic_write_with, AtomicDir};
pub use error::{Error, Result};
pub use header::{TensorInfo, MAX_HEADER_LEN, METADATA_KEY};
pub use reader::SafeTensorsFile;
pub use stored_dtype::StoredDType;
pub use writer::{
    save_safetensors, save_safetensors_entries, serialize_safetensors, TensorEntry,
    STREAM_CHUNK_ELEMS,
};
