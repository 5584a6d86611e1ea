//! The crate's error type: every failure names the file (and line) it came from.

use std::path::PathBuf;

/// Errors of loading, saving, training and decoding.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file that does not parse or does not have the expected shape.
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A malformed line in a `merges.txt` or similar text format.
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// Content that parses but is not a consistent tokenizer (unknown merge token, gaps in ids, ...).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },

    /// A tokenizer feature this crate does not implement.
    #[error("{path}: unsupported {what}")]
    Unsupported { path: PathBuf, what: String },

    #[error("{path}: not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 { path: PathBuf, offset: usize },

    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    UnknownId { id: u32, vocab_size: usize },

    #[error("character {ch:?} is not in the character vocabulary")]
    UnknownChar { ch: char },

    /// Bad arguments (e.g. a training vocabulary size below the byte alphabet).
    #[error("{0}")]
    Config(String),

    #[cfg(feature = "hf")]
    #[error("tokenizers: {0}")]
    Hf(String),
}

pub type Result<T, E = TokenizeError> = std::result::Result<T, E>;

impl TokenizeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TokenizeError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, e: &serde_json::Error) -> Self {
        TokenizeError::Json {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            // serde_json appends " at line L column C"; we already show it up front.
            message: {
                let full = e.to_string();
                match full.rfind(" at line ") {
                    Some(at) => full[..at].to_owned(),
                    None => full,
                }
            },
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TokenizeError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        TokenizeError::Unsupported {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// Reads a file that must be UTF-8 text, with errors naming it.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TokenizeError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| TokenizeError::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Writes a file through a temporary sibling and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(|e| TokenizeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TokenizeError::io(path, e))
}
