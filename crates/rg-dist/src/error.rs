/// What went wrong in a collective; messages name the operation and, where one is at
/// fault, the rank.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error(transparent)]
    Tensor(#[from] rg_core::Error),
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
    /// The backend cannot be used here (library missing, feature not built in).
    #[error("{backend}: {msg}")]
    Unavailable { backend: &'static str, msg: String },
    /// Ranks disagree about something that must be equal everywhere.
    #[error("ranks disagree: {0}")]
    Mismatch(String),
}

pub type Result<T> = std::result::Result<T, DistError>;

impl DistError {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        DistError::Invalid {
            op,
            msg: msg.into(),
        }
    }

    pub fn unavailable(backend: &'static str, msg: impl Into<String>) -> Self {
        DistError::Unavailable {
            backend,
            msg: msg.into(),
        }
    }
}
