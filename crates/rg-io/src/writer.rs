//! Writing safetensors files that the reference implementation (and so the Python
//! `safetensors` package) reads, byte-identical to what it would write itself.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

use rg_core::Tensor;

use crate::atomic::atomic_write_with;
use crate::header::{shown, METADATA_KEY};
use crate::{Error, Result, StoredDType};

/// One tensor to write: its name, stored dtype, shape, and little-endian bytes
/// (borrowed when the caller already has them, e.g. from a memory map).
#[derive(Debug, Clone)]
pub struct TensorEntry<'a> {
    pub name: Cow<'a, str>,
    pub dtype: StoredDType,
    pub shape: Vec<usize>,
    pub bytes: Cow<'a, [u8]>,
}

impl<'a> TensorEntry<'a> {
    pub fn new(
        name: impl Into<Cow<'a, str>>,
        dtype: impl Into<StoredDType>,
        shape: impl Into<Vec<usize>>,
        bytes: impl Into<Cow<'a, [u8]>>,
    ) -> Self {
        TensorEntry {
            name: name.into(),
            dtype: dtype.into(),
            shape: shape.into(),
            bytes: bytes.into(),
        }
    }

    /// Copies a tensor (any device, any layout) to host bytes in row-major order.
    pub fn from_tensor(name: impl Into<Cow<'a, str>>, tensor: &Tensor) -> rg_core::Result<Self> {
        let host = tensor.to_host()?;
        Ok(TensorEntry::new(
            name,
            tensor.dtype(),
            tensor.dims(),
            host.to_le_bytes(),
        ))
    }
}

/// Writes `tensors` (with their dtypes and shapes) and `metadata` to `path`
/// atomically: the file at `path` is the old one or the complete new one, never a
/// partial write. Tensor data is copied to the file a slice at a time
/// ([`STREAM_CHUNK_ELEMS`] elements), so saving a model and its optimizer state needs
/// no second copy of them in memory.
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(&str, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let entries = tensors
        .iter()
        .map(|&(name, tensor)| Entry {
            name: Cow::Borrowed(name),
            dtype: tensor.dtype().into(),
            shape: tensor.dims().to_vec(),
            len: tensor.elem_count() * tensor.dtype().size_in_bytes(),
            data: Data::Tensor(tensor),
        })
        .collect::<Vec<_>>();
    let layout = Layout::new(path, entries, metadata)?;
    atomic_write_with(path, |out| layout.write(out))
}

/// [`save_safetensors`] for raw entries (name, dtype, shape, bytes).
pub fn save_safetensors_entries<'a>(
    path: impl AsRef<Path>,
    entries: impl IntoIterator<Item = TensorEntry<'a>>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    // Validate before creating anything on disk.
    let layout = Layout::new(path, entries.into_iter().map(Entry::from), metadata)?;
    atomic_write_with(path, |out| layout.write(out))
}

/// The whole file image in memory (tests, fuzz seeds, small files).
pub fn serialize_safetensors<'a>(
    entries: impl IntoIterator<Item = TensorEntry<'a>>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let layout = Layout::new(
        Path::new("<memory>"),
        entries.into_iter().map(Entry::from),
        metadata,
    )?;
    let mut out = Vec::with_capacity(layout.file_len());
    layout
        .write(&mut out)
        .map_err(|e| Error::io("<memory>", "write", e))?;
    Ok(out)
}

/// What the layout writes: a tensor's name, stored dtype, shape, byte length, and
/// where its bytes come from.
struct Entry<'a> {
    name: Cow<'a, str>,
    dtype: StoredDType,
    shape: Vec<usize>,
    len: usize,
    data: Data<'a>,
}

enum Data<'a> {
    /// Bytes the caller already has.
    Bytes(Cow<'a, [u8]>),
    /// A tensor, copied to host bytes a chunk at a time while writing.
    Tensor(&'a Tensor),
}

impl<'a> From<TensorEntry<'a>> for Entry<'a> {
    fn from(e: TensorEntry<'a>) -> Self {
        Entry {
            len: e.bytes.len(),
            name: e.name,
            dtype: e.dtype,
            shape: e.shape,
            data: Data::Bytes(e.bytes),
        }
    }
}

/// Elements of a tensor copied to the host per write (16 MiB of f32).
pub const STREAM_CHUNK_ELEMS: usize = 1 << 22;

impl Entry<'_> {
    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        match &self.data {
            Data::Bytes(b) => out.write_all(b),
            Data::Tensor(t) => {
                let failed = |e: rg_core::Error| {
                    io::Error::other(format!("copying tensor {}: {e}", shown(&self.name)))
                };
                let flat = t.flatten_all().map_err(failed)?;
                let n = flat.elem_count();
                for start in (0..n).step_by(STREAM_CHUNK_ELEMS) {
                    let len = STREAM_CHUNK_ELEMS.min(n - start);
                    let host = flat.narrow(0, start, len).and_then(|c| c.to_host());
                    out.write_all(&host.map_err(failed)?.to_le_bytes())?;
                }
                Ok(())
            }
        }
    }
}

/// Validated entries in file order, and the padded header that describes them.
struct Layout<'a> {
    header: Vec<u8>,
    entries: Vec<Entry<'a>>,
}

impl<'a> Layout<'a> {
    fn new(
        path: &Path,
        entries: impl IntoIterator<Item = Entry<'a>>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut entries: Vec<Entry<'a>> = entries.into_iter().collect();
        let mut seen = HashSet::with_capacity(entries.len());
        for entry in &entries {
            check_entry(path, entry)?;
            if !seen.insert(entry.name.as_ref()) {
                return Err(Error::DuplicateTensor {
                    path: path.to_owned(),
                    tensor: shown(&entry.name),
                });
            }
        }
        // The reference order: largest alignment first, then by name. With the data
        // section 8-byte aligned (the header is padded), every tensor then starts at a
        // multiple of its element size, so f32 loads can be zero-copy.
        entries.sort_by(|a, b| {
            b.dtype
                .reference_order()
                .cmp(&a.dtype.reference_order())
                .then_with(|| a.name.cmp(&b.name))
        });
        let header = encode_header(&entries, metadata);
        Ok(Layout { header, entries })
    }

    fn file_len(&self) -> usize {
        8 + self.header.len() + self.entries.iter().map(|e| e.len).sum::<usize>()
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&(self.header.len() as u64).to_le_bytes())?;
        out.write_all(&self.header)?;
        for entry in &self.entries {
            entry.write(out)?;
        }
        Ok(())
    }
}

fn check_entry(path: &Path, entry: &Entry) -> Result<()> {
    let invalid = |msg: String| Error::InvalidEntry {
        path: path.to_owned(),
        tensor: shown(&entry.name),
        msg,
    };
    if entry.name == METADATA_KEY {
        return Err(invalid(format!(
            "{METADATA_KEY:?} is reserved for metadata"
        )));
    }
    let expected = entry
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(entry.dtype.size_in_bytes()));
    if expected != Some(entry.len) {
        return Err(invalid(format!(
            "shape {:?} of {} needs {} bytes, got {}",
            entry.shape,
            entry.dtype,
            expected.map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string()),
            entry.len
        )));
    }
    Ok(())
}

/// The compact JSON header the reference writer produces (metadata first, then the
/// tensors in file order with contiguous offsets), padded with spaces to a multiple of
/// 8 bytes so the data section starts 8-byte aligned.
fn encode_header(entries: &[Entry], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    // Serialising a string cannot fail; the expect documents that, not an input case.
    let quote = |s: &str| serde_json::to_string(s).expect("serialising a str never fails");
    let mut json = String::from("{");
    let mut members = Vec::with_capacity(entries.len() + 1);
    if !metadata.is_empty() {
        let pairs: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
            .collect();
        members.push(format!("{}:{{{}}}", quote(METADATA_KEY), pairs.join(",")));
    }
    let mut offset = 0usize;
    for entry in entries {
        let end = offset + entry.len;
        let shape: Vec<String> = entry.shape.iter().map(usize::to_string).collect();
        members.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            quote(&entry.name),
            entry.dtype.name(),
            shape.join(","),
        ));
        offset = end;
    }
    json.push_str(&members.join(","));
    json.push('}');
    let mut header = json.into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    header
}
