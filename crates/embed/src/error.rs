//! The one error type of the embedding API.

/// Why a stream could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or two settings contradict each other.
    #[error("{0}")]
    Config(String),
    /// A source or sink could not be opened or failed.
    #[error(transparent)]
    Media(#[from] pstream_core::MediaError),
    /// A socket could not be set up or used.
    #[error(transparent)]
    Network(#[from] pstream_transport::UdpError),
    /// An RTMP destination refused, failed or could not be reached.
    #[error(transparent)]
    Rtmp(#[from] pstream_transport::rtmp::RtmpError),
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

/// An error and its chain of causes in one line, `what: why: root cause`,
/// for logs that must name the real reason (a `Failed` shows only its context).
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Some errors repeat their cause in their own message already.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_the_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::failed("cannot create /x.flv", io);
        assert_eq!(one_line(&e), "cannot create /x.flv: denied");
        assert_eq!(one_line(&Error::Config("bad".into())), "bad");
    }
}
