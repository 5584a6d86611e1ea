use std::path::PathBuf;

/// Everything that can go wrong reading or writing a model file. Every message starts
/// with the file (or `<memory>` for in-memory buffers) and names the tensor or header
/// field at fault, so a user can find the problem without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: file is {file_len} bytes, too short to hold the 8-byte header length", path.display())]
    TruncatedHeaderLength { path: PathBuf, file_len: u64 },

    #[error("{}: header length {header_len} exceeds the limit of {max} bytes", path.display())]
    HeaderTooLarge {
        path: PathBuf,
        header_len: u64,
        max: u64,
    },

    #[error(
        "{}: header length {header_len} runs past the end of the file ({file_len} bytes)",
        path.display()
    )]
    HeaderPastEnd {
        path: PathBuf,
        header_len: u64,
        file_len: u64,
    },

    #[error("{}: header is not valid UTF-8 (bad byte at header offset {offset})", path.display())]
    HeaderNotUtf8 { path: PathBuf, offset: usize },

    #[error("{}: header is not well-formed JSON: {source}", path.display())]
    HeaderJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A header field has the wrong JSON type or an impossible value. `field` says
    /// where, e.g. `tensor "h.0.attn.c_attn.weight", field "shape"`.
    #[error("{}: header: {field}: {msg}", path.display())]
    InvalidField {
        path: PathBuf,
        field: String,
        msg: String,
    },

    #[error("{}: tensor {tensor:?} appears more than once", path.display())]
    DuplicateTensor { path: PathBuf, tensor: String },

    #[error(
        "{}: unknown dtype {dtype:?} for tensor {tensor:?} (safetensors dtypes: {known})",
        path.display()
    )]
    UnknownDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
        known: &'static str,
    },

    #[error("{}: unsupported dtype {dtype} for tensor {tensor:?}: {reason}", path.display())]
    UnsupportedDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
        reason: String,
    },

    #[error(
        "{}: tensor {tensor:?}: data_offsets [{start}, {end}] lie outside the {data_len}-byte data section",
        path.display()
    )]
    OffsetsOutOfRange {
        path: PathBuf,
        tensor: String,
        start: usize,
        end: usize,
        data_len: usize,
    },

    #[error(
        "{}: tensors {first:?} (bytes {first_start}..{first_end}) and {second:?} (bytes {second_start}..{second_end}) overlap",
        path.display()
    )]
    OverlappingTensors {
        path: PathBuf,
        first: String,
        first_start: usize,
        first_end: usize,
        second: String,
        second_start: usize,
        second_end: usize,
    },

    #[error(
        "{}: tensor {tensor:?}: shape {shape:?} of {dtype} needs {expected} bytes but has {actual}",
        path.display()
    )]
    ByteLengthMismatch {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
        dtype: String,
        expected: usize,
        actual: usize,
    },

    #[error(
        "{}: tensor {tensor:?}: shape {shape:?} of {dtype} has more bytes than this machine can address",
        path.display()
    )]
    SizeOverflow {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
        dtype: String,
    },

    #[error("{}: no tensor named {tensor:?} ({count} tensors in the file)", path.display())]
    TensorNotFound {
        path: PathBuf,
        tensor: String,
        count: usize,
    },

    /// Building or reading back a tensor failed in `rg-core` (device, backend).
    /// Boxed: `rg_core::Error` is large and would bloat every `Result` here.
    #[error("{}: tensor {tensor:?}: {source}", path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        #[source]
        source: Box<rg_core::Error>,
    },

    /// A tensor handed to the writer is inconsistent (bytes vs shape, reserved name).
    #[error("{}: cannot write tensor {tensor:?}: {msg}", path.display())]
    InvalidEntry {
        path: PathBuf,
        tensor: String,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
