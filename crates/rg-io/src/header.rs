//! Parsing and validating a safetensors header.
//!
//! Layout of a file: 8 bytes little-endian header length `n`, `n` bytes of UTF-8 JSON,
//! then the data section. The JSON maps each tensor name to `{"dtype", "shape",
//! "data_offsets": [start, end]}` (offsets relative to the data section) and may hold
//! `"__metadata__"`, a map of strings. Everything is checked here, before any tensor
//! is touched: sizes are bounded by the buffer before anything is allocated for them,
//! and every arithmetic step is checked, so no input makes the reader panic or
//! allocate more than the header's own size.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::json::{truncate, JsonValue};
use crate::{Error, Result, StoredDType};

/// The largest header accepted, as in the reference implementation: real headers are
/// kilobytes; this bounds the JSON parse of a corrupt or hostile file.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The key that holds the free-form string metadata instead of a tensor.
pub const METADATA_KEY: &str = "__metadata__";

/// One tensor as the header describes it, after validation: its dtype is known, its
/// byte range lies inside the data section, and that range is exactly
/// `product(shape) * dtype size` bytes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dtype: StoredDType,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

impl TensorInfo {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dtype(&self) -> StoredDType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn elem_count(&self) -> usize {
        // Validation proved the product fits (it equals byte_len / size).
        self.shape.iter().product()
    }

    pub fn byte_len(&self) -> usize {
        self.data_offsets.1 - self.data_offsets.0
    }

    /// `[start, end)` relative to the start of the data section.
    pub fn data_offsets(&self) -> (usize, usize) {
        self.data_offsets
    }
}

/// A validated header: tensors in header order, a name index, the metadata, and where
/// the data section starts in the file.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) data_start: usize,
}

/// A name as it appears in error messages: cut short so a hostile header cannot
/// produce a 100 MB error message.
pub(crate) fn shown(name: &str) -> String {
    let cut = truncate(name);
    if cut.len() == name.len() {
        name.to_owned()
    } else {
        format!("{cut}...")
    }
}

fn tensor_field(tensor: &str, field: &str) -> String {
    format!("tensor {:?}, field {field:?}", shown(tensor))
}

/// Parses and validates the header of a whole safetensors buffer `file`; `path` is
/// only used in error messages.
pub(crate) fn parse_header(path: &Path, file: &[u8]) -> Result<Header> {
    let file_len = file.len() as u64;
    let Some((len_bytes, rest)) = file.split_first_chunk::<8>() else {
        return Err(Error::TruncatedHeaderLength {
            path: path.to_owned(),
            file_len,
        });
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    // Bounded by the file first: a length claiming terabytes fails here, before any
    // allocation, with the most useful message (the file is truncated or not ours).
    if header_len > rest.len() as u64 {
        return Err(Error::HeaderPastEnd {
            path: path.to_owned(),
            header_len,
            file_len,
        });
    }
    if header_len > MAX_HEADER_LEN {
        return Err(Error::HeaderTooLarge {
            path: path.to_owned(),
            header_len,
            max: MAX_HEADER_LEN,
        });
    }
    // header_len <= rest.len(), so it fits usize.
    let (header_bytes, data) = rest.split_at(header_len as usize);
    let text = std::str::from_utf8(header_bytes).map_err(|e| Error::HeaderNotUtf8 {
        path: path.to_owned(),
        offset: e.valid_up_to(),
    })?;
    let json: JsonValue = serde_json::from_str(text).map_err(|source| Error::HeaderJson {
        path: path.to_owned(),
        source,
    })?;
    let validator = Validator {
        path,
        data_len: data.len(),
    };
    let header = validator.header(json)?;
    Ok(Header {
        data_start: 8 + header_bytes.len(),
        ..header
    })
}

struct Validator<'a> {
    path: &'a Path,
    data_len: usize,
}

impl Validator<'_> {
    fn path(&self) -> PathBuf {
        self.path.to_owned()
    }

    fn invalid(&self, field: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::InvalidField {
            path: self.path(),
            field: field.into(),
            msg: msg.into(),
        }
    }

    fn header(&self, json: JsonValue) -> Result<Header> {
        let JsonValue::Object(members) = json else {
            return Err(self.invalid(
                "header",
                format!(
                    "expected a JSON object mapping tensor names to entries, got {}",
                    json.kind()
                ),
            ));
        };
        let mut tensors = Vec::with_capacity(members.len());
        let mut index = HashMap::with_capacity(members.len());
        let mut metadata = None;
        for (key, value) in members {
            if key == METADATA_KEY {
                if metadata.is_some() {
                    return Err(self.invalid(METADATA_KEY, "appears more than once"));
                }
                metadata = Some(self.metadata(value)?);
                continue;
            }
            if index.contains_key(&key) {
                return Err(Error::DuplicateTensor {
                    path: self.path(),
                    tensor: shown(&key),
                });
            }
            let info = self.tensor(key, value)?;
            index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }
        self.check_overlaps(&tensors)?;
        Ok(Header {
            tensors,
            index,
            metadata: metadata.unwrap_or_default(),
            data_start: 0,
        })
    }

    fn metadata(&self, value: JsonValue) -> Result<BTreeMap<String, String>> {
        let members = match value {
            // The reference implementation reads `"__metadata__": null` as absent.
            JsonValue::Null => return Ok(BTreeMap::new()),
            JsonValue::Object(members) => members,
            other => {
                return Err(self.invalid(
                    METADATA_KEY,
                    format!("expected an object of strings, got {}", other.kind()),
                ))
            }
        };
        let mut map = BTreeMap::new();
        for (key, value) in members {
            let field = format!("{METADATA_KEY} key {:?}", shown(&key));
            let JsonValue::String(text) = value else {
                return Err(self.invalid(field, format!("expected a string, got {}", value.kind())));
            };
            if map.insert(key, text).is_some() {
                return Err(self.invalid(field, "appears more than once"));
            }
        }
        Ok(map)
    }

    fn tensor(&self, name: String, value: JsonValue) -> Result<TensorInfo> {
        let JsonValue::Object(members) = value else {
            return Err(self.invalid(
                format!("tensor {:?}", shown(&name)),
                format!(
                    "expected an object with dtype, shape and data_offsets, got {}",
                    value.kind()
                ),
            ));
        };
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        for (field, value) in members {
            let slot = match field.as_str() {
                "dtype" => &mut dtype,
                "shape" => &mut shape,
                "data_offsets" => &mut offsets,
                // Unknown members are ignored, as the reference implementation does,
                // so files from newer writers still load.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(self.invalid(tensor_field(&name, &field), "appears more than once"));
            }
        }
        let missing = |field: &str| {
            self.invalid(
                format!("tensor {:?}", shown(&name)),
                format!("missing field {field:?}"),
            )
        };
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let offsets = offsets.ok_or_else(|| missing("data_offsets"))?;

        let dtype = self.dtype(&name, dtype)?;
        let shape = self.unsigned_array(&name, "shape", shape)?;
        let offsets = self.unsigned_array(&name, "data_offsets", offsets)?;
        let &[start, end] = offsets.as_slice() else {
            return Err(self.invalid(
                tensor_field(&name, "data_offsets"),
                format!("expected [start, end], got {} numbers", offsets.len()),
            ));
        };
        if start > end {
            return Err(self.invalid(
                tensor_field(&name, "data_offsets"),
                format!("start {start} is after end {end}"),
            ));
        }
        if end > self.data_len {
            return Err(Error::OffsetsOutOfRange {
                path: self.path(),
                tensor: shown(&name),
                start,
                end,
                data_len: self.data_len,
            });
        }
        // The product skips zeros so that a shape like [0, 2^40, 2^40] is refused too:
        // it holds no bytes, but its strides would overflow in every later use.
        let addressable = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d))
            .is_some();
        if !addressable {
            return Err(Error::SizeOverflow {
                path: self.path(),
                tensor: shown(&name),
                shape,
                dtype: dtype.name().into(),
            });
        }
        // Cannot overflow: bounded by the product checked above.
        let expected = shape.iter().product::<usize>() * dtype.size_in_bytes();
        if expected != end - start {
            return Err(Error::ByteLengthMismatch {
                path: self.path(),
                tensor: shown(&name),
                shape,
                dtype: dtype.name().into(),
                expected,
                actual: end - start,
            });
        }
        Ok(TensorInfo {
            name,
            dtype,
            shape,
            data_offsets: (start, end),
        })
    }

    fn dtype(&self, name: &str, value: JsonValue) -> Result<StoredDType> {
        let JsonValue::String(text) = value else {
            return Err(self.invalid(
                tensor_field(name, "dtype"),
                format!("expected a dtype name string, got {}", value.kind()),
            ));
        };
        StoredDType::from_name(&text).ok_or_else(|| Error::UnknownDType {
            path: self.path(),
            tensor: shown(name),
            dtype: shown(&text),
            known: StoredDType::KNOWN_NAMES,
        })
    }

    /// An array of integers in `0..=usize::MAX`, or an error naming the bad element.
    fn unsigned_array(&self, name: &str, field: &str, value: JsonValue) -> Result<Vec<usize>> {
        let JsonValue::Array(items) = value else {
            return Err(self.invalid(
                tensor_field(name, field),
                format!(
                    "expected an array of non-negative integers, got {}",
                    value.kind()
                ),
            ));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                JsonValue::Unsigned(n) => usize::try_from(n).map_err(|_| {
                    self.invalid(
                        tensor_field(name, field),
                        format!("element {i} ({n}) does not fit this machine's usize"),
                    )
                }),
                other => Err(self.invalid(
                    tensor_field(name, field),
                    format!(
                        "element {i} is {}, expected a non-negative integer",
                        other.kind()
                    ),
                )),
            })
            .collect()
    }

    /// No two non-empty byte ranges may share a byte: a tensor written through one
    /// name would otherwise change another.
    fn check_overlaps(&self, tensors: &[TensorInfo]) -> Result<()> {
        let mut by_start: Vec<&TensorInfo> = tensors.iter().filter(|t| t.byte_len() > 0).collect();
        by_start.sort_unstable_by_key(|t| t.data_offsets);
        for pair in by_start.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.data_offsets.0 < a.data_offsets.1 {
                return Err(Error::OverlappingTensors {
                    path: self.path(),
                    first: shown(&a.name),
                    first_start: a.data_offsets.0,
                    first_end: a.data_offsets.1,
                    second: shown(&b.name),
                    second_start: b.data_offsets.0,
                    second_end: b.data_offsets.1,
                });
            }
        }
        Ok(())
    }
}
