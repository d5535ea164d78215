//! The errors of the FLV muxer and of the Y4M and WAV files.

use pstream_core::{Codec, CoreError, MediaError};
use thiserror::Error;

/// What went wrong while muxing.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxError {
    /// A keyframe carried no SPS/PPS, so no AVC sequence header can be built.
    #[error("H.264 keyframe at {pts_ms} ms carries no SPS and PPS")]
    NoParameterSets {
        /// Presentation time of the offending unit in milliseconds.
        pts_ms: u128,
    },
    /// An SPS too short to hold profile and level.
    #[error("H.264 SPS of {len} bytes is too short")]
    ShortSps {
        /// Length of the SPS NAL unit.
        len: usize,
    },
    /// A unit whose codec FLV (as pstream writes it) cannot carry.
    #[error("FLV cannot carry {0} here")]
    UnsupportedCodec(Codec),
    /// A payload larger than an FLV tag can hold (16 MiB).
    #[error("{what} of {len} bytes does not fit an FLV tag")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// An error opening, reading or writing a Y4M or WAV file (or stream).
///
/// Every message starts with the file as the user named it on the command
/// line (`y4m:/tmp/a.y4m`, `wav:-`), followed by what is wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused an operation (open, read, write, seek).
    #[error("{name}: {action}")]
    Io {
        /// The file, as named on the command line.
        name: String,
        /// What was being done, e.g. "cannot open for reading".
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not well-formed (bad header, bad chunk, bad frame marker).
    #[error("{name}: {reason}")]
    Malformed {
        /// The file, as named on the command line.
        name: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// The input is well-formed but uses a feature pstream does not handle.
    #[error("{name}: {reason}")]
    Unsupported {
        /// The file, as named on the command line.
        name: String,
        /// What is not supported and what would be.
        reason: String,
    },
    /// A sink was handed media that does not match the format it was opened with.
    #[error("{name}: {reason}")]
    Mismatch {
        /// The file, as named on the command line.
        name: String,
        /// What differs.
        reason: String,
    },
    /// A sink was used after `finish`.
    #[error("{name}: already finished")]
    Finished {
        /// The file, as named on the command line.
        name: String,
    },
    /// A picture read from the file cannot be made into a frame.
    #[error("{name}: unusable picture")]
    Frame {
        /// The file, as named on the command line.
        name: String,
        /// Why the frame was refused.
        #[source]
        source: CoreError,
    },
    /// The file's format cannot be used (an invalid size or rate).
    #[error(transparent)]
    Media(#[from] MediaError),
}

impl FileError {
    /// Wraps an I/O error with the name of the file and the action.
    pub fn io(name: &str, action: &'static str, source: std::io::Error) -> Self {
        FileError::Io {
            name: name.to_owned(),
            action,
            source,
        }
    }

    /// A malformed-input error for `name`.
    pub fn malformed(name: &str, reason: impl Into<String>) -> Self {
        FileError::Malformed {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// An unsupported-feature error for `name`.
    pub fn unsupported(name: &str, reason: impl Into<String>) -> Self {
        FileError::Unsupported {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// The file this error is about, as named on the command line.
    pub fn spec(&self) -> &str {
        match self {
            FileError::Io { name, .. }
            | FileError::Malformed { name, .. }
            | FileError::Unsupported { name, .. }
            | FileError::Mismatch { name, .. }
            | FileError::Finished { name }
            | FileError::Frame { name, .. } => name,
            FileError::Media(e) => e.spec(),
        }
    }
}

/// Into the source/sink traits' error: format errors as they are, the
/// others whole as the cause of a [`MediaError::Failed`].
impl From<FileError> for MediaError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Media(m) => m,
            e => MediaError::failed(e.spec().to_owned(), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_first_and_keep_the_cause() {
        let e = FileError::unsupported(
            "y4m:/tmp/a.y4m",
            "unsupported colour space C444, only 4:2:0 is supported",
        );
        assert_eq!(
            e.to_string(),
            "y4m:/tmp/a.y4m: unsupported colour space C444, only 4:2:0 is supported"
        );
        let e = FileError::io(
            "wav:/x.wav",
            "cannot open for reading",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(
            pstream_core::error::one_line(&e).starts_with("wav:/x.wav: cannot open for reading: ")
        );
        let e = MediaError::from(e);
        assert_eq!(e.spec(), "wav:/x.wav");
        assert!(
            pstream_core::error::one_line(&e).starts_with("wav:/x.wav: cannot open for reading: ")
        );
    }
}
