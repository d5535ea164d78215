//! The one error type of the embedding API.

use std::path::PathBuf;

/// Why a stream could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// An encoder or decoder could not start or failed.
    #[error("{what}")]
    Codec {
        /// What was being done ("cannot start the H.264 encoder", ...).
        what: String,
        /// The codec's error.
        #[source]
        source: pstream_codec::CodecError,
    },
    /// A file could not be created, read or written.
    #[error("cannot {action} {}", path.display())]
    File {
        /// "create", "write", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// An output of received media (a file or device) failed to finish:
    /// the end of a Y4M or WAV file, draining a device.
    #[error("cannot {action} the {stream} output")]
    Output {
        /// "finish", ...
        action: &'static str,
        /// "video" or "audio".
        stream: &'static str,
        /// The output's error (boxed: it is large, and this is rare).
        #[source]
        source: Box<pstream_core::MediaError>,
    },
    /// An RTP receiver session could not be set up.
    #[error("cannot set up the {codec} RTP receiver")]
    RtpReceiver {
        /// The codec it was to receive.
        codec: pstream_core::Codec,
        /// The session's error.
        #[source]
        source: pstream_rtp::receiver::ReceiverError,
    },
    /// A destination given to a push is not usable.
    #[error("destination {name}")]
    Destination {
        /// The destination as given, stream key hidden.
        name: String,
        /// Why it cannot be used.
        #[source]
        source: Box<Error>,
    },
    /// Destinations of a push gave up (each logged its reason as it did).
    #[error("gave up on {}", names.join(", "))]
    DestinationsFailed {
        /// The destinations that gave up, stream keys hidden.
        names: Vec<String>,
    },
    /// A server could not listen on its address (taken, not local, no permission).
    #[error("cannot listen on {service} {addr}")]
    Listen {
        /// "RTMP" or "HTTP".
        service: &'static str,
        /// The address as given.
        addr: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A stage thread could not be started.
    #[error("cannot start thread {stage}")]
    Spawn {
        /// The stage's name.
        stage: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A stage panicked: a bug in pstream or in a library it uses.
    #[error("stage {stage} panicked: {message}")]
    StagePanicked {
        /// The stage's thread name ("video-decode", ...).
        stage: String,
        /// The panic's message.
        message: String,
    },
    /// Something failed; `context` says what pstream was doing.
    #[error("{context}")]
    Failed {
        /// What was being done.
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

    /// A codec error with what was being done.
    pub fn codec(what: impl Into<String>, source: pstream_codec::CodecError) -> Self {
        Error::Codec {
            what: what.into(),
            source,
        }
    }

    /// True when a stage panicked (a bug, not bad input or a bad setting):
    /// the binary exits with status 70 (EX_SOFTWARE) for it.
    pub fn is_panic(&self) -> bool {
        match self {
            Error::StagePanicked { .. } => true,
            Error::Destination { source, .. } => source.is_panic(),
            _ => false,
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
        let e = Error::File {
            action: "create",
            path: "/x.flv".into(),
            source: io,
        };
        assert_eq!(one_line(&e), "cannot create /x.flv: denied");
        assert_eq!(one_line(&Error::Config("bad".into())), "bad");
        let panic = Error::StagePanicked {
            stage: "audio-encode".into(),
            message: "boom".into(),
        };
        assert!(panic.is_panic());
        assert!(!Error::Config("bad".into()).is_panic());
    }
}
