//! [`HubError`]: every way resolving or loading a model can fail. Each message starts
//! with the model spec the user gave (`model "gpt2": ...`) and names the file and,
//! where there is one, the field at fault.

use std::path::PathBuf;

use rg_core::DType;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The spec is neither an existing directory nor a valid Hugging Face model id.
    #[error("model {spec:?}: no such directory, and not a Hugging Face model id: {reason}")]
    UnknownSpec { spec: String, reason: String },

    /// A hub model that is not cached while the hub cannot be used.
    #[error(
        "model {spec:?} is not in the Hugging Face cache at {} and the hub cannot be reached ({why}); \
         download it with `huggingface-cli download {repo}` or pass a local directory",
        cache.display()
    )]
    NotCached {
        spec: String,
        repo: String,
        cache: PathBuf,
        why: String,
    },

    /// A hub model whose cached snapshot lacks files while the hub cannot be used.
    #[error(
        "model {spec:?}: the cached snapshot {} is incomplete ({missing}) and the hub cannot be \
         reached ({why}); download it with `huggingface-cli download {repo}` or pass a local directory",
        snapshot.display()
    )]
    IncompleteCache {
        spec: String,
        repo: String,
        snapshot: PathBuf,
        missing: String,
        why: String,
    },

    /// The hub answered but the model or one of its files cannot be had.
    #[error("model {spec:?}: {repo} on the hub: {msg}")]
    Hub {
        spec: String,
        repo: String,
        msg: String,
    },

    /// A model directory lacks a file it needs.
    #[error("model {spec:?}: {}: no {what}", dir.display())]
    MissingFile {
        spec: String,
        dir: PathBuf,
        what: String,
    },

    /// `model.safetensors.index.json` is malformed or disagrees with its shards;
    /// `field` says where (`weight_map`, `weight_map["h.0.attn.c_attn.weight"]`, ...).
    #[error("model {spec:?}: {}: {field}: {msg}", path.display())]
    BadIndex {
        spec: String,
        path: PathBuf,
        field: String,
        msg: String,
    },

    /// A shard named by the index does not exist.
    #[error(
        "model {spec:?}: {}: shard {shard:?} (holding {count} tensors, e.g. {example:?}) does not exist",
        index.display()
    )]
    MissingShard {
        spec: String,
        index: PathBuf,
        shard: String,
        count: usize,
        example: String,
    },

    /// One tensor stored in two shards.
    #[error(
        "model {spec:?}: tensor {tensor:?} is stored in two shards: {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateTensor {
        spec: String,
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// A file's contents are wrong for a model (config fields, weights vs config).
    #[error("model {spec:?}: {}: {msg}", path.display())]
    BadFile {
        spec: String,
        path: PathBuf,
        msg: String,
    },

    /// Reading a safetensors file failed (the message names the file and tensor).
    #[error("model {spec:?}: {source}")]
    Weights {
        spec: String,
        #[source]
        source: Box<rg_io::Error>,
    },

    /// Building the model or its tokenizer failed below this crate.
    #[error("model {spec:?}: {source}")]
    Gpt {
        spec: String,
        #[source]
        source: Box<rg_gpt::GptError>,
    },

    #[error("model {spec:?}: {}: {op}: {source}", path.display())]
    Io {
        spec: String,
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A tensor operation failed outside any file (opening a device, a probe).
    #[error(transparent)]
    Tensor(Box<rg_core::Error>),

    /// A weight dtype other than those [`crate::SUPPORTED_WEIGHT_DTYPES`] lists.
    #[error("weight dtype {dtype} is not supported; supported: f32, bf16")]
    UnsupportedDType { dtype: DType },

    /// The device cannot compute in the requested dtype.
    #[error("{dtype} compute is not supported on {device} yet ({detail})")]
    UnsupportedCompute {
        dtype: DType,
        device: String,
        detail: String,
    },
}

pub type Result<T> = std::result::Result<T, HubError>;

impl HubError {
    pub(crate) fn io(
        spec: &str,
        path: impl Into<PathBuf>,
        op: &'static str,
        source: std::io::Error,
    ) -> Self {
        HubError::Io {
            spec: spec.to_string(),
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn bad_file(spec: &str, path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        HubError::BadFile {
            spec: spec.to_string(),
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn bad_index(
        spec: &str,
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        HubError::BadIndex {
            spec: spec.to_string(),
            path: path.into(),
            field: field.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn weights(spec: &str, source: rg_io::Error) -> Self {
        HubError::Weights {
            spec: spec.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn gpt(spec: &str, source: rg_gpt::GptError) -> Self {
        HubError::Gpt {
            spec: spec.to_string(),
            source: Box::new(source),
        }
    }
}

impl From<rg_core::Error> for HubError {
    fn from(e: rg_core::Error) -> Self {
        HubError::Tensor(Box::new(e))
    }
}
