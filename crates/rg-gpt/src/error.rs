use std::path::PathBuf;

/// Errors of the GPT layer: those of the layers below, plus file and settings
/// problems that name the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error(transparent)]
    Tensor(#[from] rg_core::Error),
    #[error(transparent)]
    File(#[from] rg_io::Error),
    #[error(transparent)]
    Tokenizer(#[from] rg_tokenize::TokenizeError),
    #[error(transparent)]
    Dist(#[from] rg_dist::DistError),
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    BadFile { path: PathBuf, msg: String },
    #[error("{setting}: {msg}")]
    Setting { setting: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, GptError>;

impl GptError {
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        GptError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        GptError::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub fn setting(setting: &'static str, msg: impl Into<String>) -> Self {
        GptError::Setting {
            setting,
            msg: msg.into(),
        }
    }
}
