//! The one error type of the embedding API.

/// Why a stream could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or two settings contradict each other.
    #[error("{0}")]
    Config(String),
    /// A source or sink could not be opened or failed.
    #[error(transparent)]
    Capture(#[from] pstream_capture::CaptureError),
    /// A socket could not be set up or used.
    #[error(transparent)]
    Network(#[from] pstream_transport::UdpError),
    /// A failure already described in full (the chain of causes in one line).
    #[error("{0}")]
    Message(String),
    /// Something failed; `context` says what pstream was doing.
    #[error("{context}")]
    Failed {
        /// What was being done ("cannot start the H.264 encoder", ...).
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// An error with `context` on top of `source`.
    pub fn failed(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Failed {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
