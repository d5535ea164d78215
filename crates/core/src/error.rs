//! Errors shared by the core types, and the one-line report of an error chain.

use thiserror::Error;

/// An error building or interpreting a core media type.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A frame's data does not match the size its dimensions demand.
    #[error("I420 frame {width}x{height} needs {expected} bytes, got {actual}")]
    FrameSize {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Bytes an I420 frame of that size takes.
        expected: usize,
        /// Bytes that were supplied.
        actual: usize,
    },
    /// A frame has a zero dimension.
    #[error("frame size {width}x{height} is empty")]
    EmptyFrame {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
    },
}

/// A boxed error of a source or sink implementation (capture's, mux's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a source or sink could not be opened, or failed: the error of the
/// [`VideoSource`](crate::VideoSource) family of traits.
///
/// Every variant names the spec of the source or sink as the user gave it
/// (`y4m:/tmp/a.y4m`, `v4l2:/dev/video0`, `test`). The implementations'
/// own errors (pstream-capture's, pstream-mux's) come in as
/// [`MediaError::Failed`], whole: their message already starts with the
/// spec, so `Failed` shows that message as it is and passes on its causes,
/// and [`MediaError::cause`] hands the typed error back for inspection.
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaError {
    /// The spec names no source or sink pstream knows.
    UnknownSpec {
        /// "video source", "audio sink", ...
        kind: &'static str,
        /// The spec as given.
        spec: String,
        /// The accepted forms, comma-separated.
        accepted: &'static str,
    },
    /// The spec names a device backend that cannot open this kind of source
    /// or sink (yet).
    NotSupportedYet {
        /// The spec as given.
        spec: String,
        /// "alsa", "pipewire".
        backend: &'static str,
        /// "video source", "video sink", ...
        kind: &'static str,
        /// The accepted forms, comma-separated.
        accepted: &'static str,
    },
    /// The spec names a device backend this build was made without (a cargo feature).
    NotBuilt {
        /// The spec as given.
        spec: String,
        /// The backend (and feature) name: "alsa", "pipewire".
        backend: &'static str,
    },
    /// The spec names something that cannot work the way it is asked to
    /// (a WAVE sink on stdout, which cannot seek back to patch its sizes).
    Unsupported {
        /// The spec as given.
        spec: String,
        /// What cannot be done and why.
        reason: &'static str,
    },
    /// A format cannot be produced or taken (zero size, zero frame rate, ...).
    InvalidFormat {
        /// The source or sink, as named on the command line.
        spec: String,
        /// What is wrong with the format.
        reason: String,
    },
    /// The implementation failed or could not open the source or sink.
    Failed {
        /// The source or sink, as named on the command line.
        spec: String,
        /// The implementation's error, whose message starts with the spec.
        cause: BoxError,
    },
}

impl MediaError {
    /// An invalid-format error for `spec`.
    pub fn invalid_format(spec: &str, reason: impl Into<String>) -> Self {
        MediaError::InvalidFormat {
            spec: spec.to_owned(),
            reason: reason.into(),
        }
    }

    /// Wraps an implementation's error about `spec`.
    pub fn failed(spec: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        MediaError::Failed {
            spec: spec.into(),
            cause: cause.into(),
        }
    }

    /// The source or sink spec this error is about.
    pub fn spec(&self) -> &str {
        match self {
            MediaError::UnknownSpec { spec, .. }
            | MediaError::NotSupportedYet { spec, .. }
            | MediaError::NotBuilt { spec, .. }
            | MediaError::Unsupported { spec, .. }
            | MediaError::InvalidFormat { spec, .. }
            | MediaError::Failed { spec, .. } => spec,
        }
    }

    /// The implementation's own error behind [`MediaError::Failed`], to
    /// downcast (`e.cause().and_then(|c| c.downcast_ref::<X>())`).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            MediaError::Failed { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::UnknownSpec {
                kind,
                spec,
                accepted,
            } => write!(f, "unknown {kind} \"{spec}\"; accepted forms: {accepted}"),
            MediaError::NotSupportedYet {
                spec,
                backend,
                kind,
                accepted,
            } => write!(
                f,
                "{spec}: {backend} {kind} is not supported yet; accepted forms: {accepted}"
            ),
            MediaError::NotBuilt { spec, backend } => {
                write!(
                    f,
                    "{spec}: this pstream was built without the {backend} feature"
                )
            }
            MediaError::Unsupported { spec, reason } => write!(f, "{spec}: {reason}"),
            MediaError::InvalidFormat { spec, reason } => {
                write!(f, "{spec}: invalid format: {reason}")
            }
            // The cause's own message, which names the spec already (like
            // thiserror's `transparent`).
            MediaError::Failed { cause, .. } => cause.fmt(f),
        }
    }
}

impl std::error::Error for MediaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the cause's message is this error's, so the
            // chain goes on with the cause's own source.
            MediaError::Failed { cause, .. } => cause.source(),
            _ => None,
        }
    }
}

/// An error and its chain of causes in one line, `what: why: root cause`,
/// for logs that must name the real reason: error types keep their cause as
/// a source rather than in their own message.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("cannot open x.y4m")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn failed_shows_the_cause_and_keeps_its_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = MediaError::failed("y4m:x.y4m", Outer(io));
        assert_eq!(e.to_string(), "cannot open x.y4m");
        assert_eq!(one_line(&e), "cannot open x.y4m: gone");
        assert_eq!(e.spec(), "y4m:x.y4m");
        assert!(e.cause().and_then(|c| c.downcast_ref::<Outer>()).is_some());
        let e = MediaError::invalid_format("test", "picture size 0x10 is empty");
        assert_eq!(
            e.to_string(),
            "test: invalid format: picture size 0x10 is empty"
        );
    }

    #[test]
    fn one_line_joins_the_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(one_line(&Outer(io)), "cannot open x.y4m: gone");
    }
}
