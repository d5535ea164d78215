//! The one error type of the capture crate.
//!
//! Every message starts with the source or sink it concerns, written the way
//! the user named it on the command line (`y4m:/tmp/a.y4m`, `wav:-`, `test`),
//! followed by what is wrong, so a one-line report is enough to act on.

use pstream_core::{BoxError, CoreError, MediaError};
use thiserror::Error;

/// An error opening, reading or writing a media source or sink.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The operating system refused an operation (open, read, write, seek).
    #[error("{name}: {action}")]
    Io {
        /// The source or sink, as named on the command line.
        name: String,
        /// What was being done, e.g. "cannot start the capture thread".
        action: &'static str,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An audio backend (ALSA through cpal, PipeWire) refused an operation.
    #[error("{spec}: {what}")]
    Backend {
        /// The spec as given (`alsa` or `pipewire` when listing devices).
        spec: String,
        /// What was being done, e.g. "cannot list audio inputs".
        what: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The input is not well-formed (bad header, bad chunk, bad frame marker).
    #[error("{name}: {reason}")]
    Malformed {
        /// The source, as named on the command line.
        name: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// The input is well-formed but uses a feature pstream does not handle.
    #[error("{name}: {reason}")]
    Unsupported {
        /// The source, as named on the command line.
        name: String,
        /// What is not supported and what would be.
        reason: String,
    },
    /// A sink was handed media that does not match the format it was opened with.
    #[error("{name}: {reason}")]
    Mismatch {
        /// The sink, as named on the command line.
        name: String,
        /// What differs.
        reason: String,
    },
    /// A requested format cannot be produced (zero size, zero frame rate, ...).
    #[error("{name}: invalid format: {reason}")]
    InvalidFormat {
        /// The source or sink, as named on the command line.
        name: String,
        /// What is wrong with the format.
        reason: String,
    },
    /// A sink was used after `finish`.
    #[error("{name}: already finished")]
    Finished {
        /// The sink, as named on the command line.
        name: String,
    },
    /// A V4L2 device node does not exist.
    #[error("{spec}: no such device {device}; {present}")]
    DeviceMissing {
        /// The spec as given.
        spec: String,
        /// The device path.
        device: String,
        /// The video devices that do exist, or that there are none.
        present: String,
    },
    /// Another program holds the device (EBUSY).
    #[error("{spec}: {device} is busy: another program is using it; close that program or pick another device")]
    DeviceBusy {
        /// The spec as given.
        spec: String,
        /// The device path.
        device: String,
    },
    /// The node is not the kind of device asked for (capture or output).
    #[error("{spec}: {device} is not a video {wanted} device: {found}")]
    WrongDeviceKind {
        /// The spec as given.
        spec: String,
        /// The device path.
        device: String,
        /// "capture" or "output".
        wanted: &'static str,
        /// The card and driver, what the node is instead, and a hint for
        /// the usual cause (v4l2loopback's exclusive_caps) when it applies.
        found: String,
    },
    /// The device offers no pixel format, size or rate that fits.
    #[error("{spec}: {device} offers no {what}; it offers: {offers}")]
    UnsupportedDeviceFormat {
        /// The spec as given.
        spec: String,
        /// The device path.
        device: String,
        /// What was asked for ("format pstream can read (YUYV, NV12, YU12, MJPG)", "640x480").
        what: String,
        /// Everything the device offers, on one line.
        offers: String,
    },
    /// The device went away while streaming (unplugged: ENODEV).
    #[error("{spec}: {device} disappeared mid-stream (unplugged?); stopping")]
    DeviceGone {
        /// The spec as given.
        spec: String,
        /// The device path.
        device: String,
    },
    /// A picture cannot be made into a frame (its data does not fit its size).
    #[error("{name}: unusable picture")]
    Frame {
        /// The source, as named on the command line.
        name: String,
        /// Why the frame was refused.
        #[source]
        source: CoreError,
    },
    /// An error of the shared source/sink interface (an invalid format).
    #[error(transparent)]
    Media(#[from] MediaError),
}

impl CaptureError {
    /// The source or sink this error is about, as named on the command line.
    pub fn spec(&self) -> &str {
        match self {
            CaptureError::Io { name, .. }
            | CaptureError::Malformed { name, .. }
            | CaptureError::Unsupported { name, .. }
            | CaptureError::Mismatch { name, .. }
            | CaptureError::InvalidFormat { name, .. }
            | CaptureError::Finished { name }
            | CaptureError::Frame { name, .. } => name,
            CaptureError::Backend { spec, .. }
            | CaptureError::DeviceMissing { spec, .. }
            | CaptureError::DeviceBusy { spec, .. }
            | CaptureError::WrongDeviceKind { spec, .. }
            | CaptureError::UnsupportedDeviceFormat { spec, .. }
            | CaptureError::DeviceGone { spec, .. } => spec,
            CaptureError::Media(e) => e.spec(),
        }
    }
}

/// Into the traits' error: interface errors as they are, the others whole
/// as the cause of a [`MediaError::Failed`].
impl From<CaptureError> for MediaError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Media(m) => m,
            e => MediaError::failed(e.spec().to_owned(), e),
        }
    }
}

impl CaptureError {
    /// Wraps an I/O error with the name of the source or sink and the action.
    pub fn io(name: &str, action: &'static str, source: std::io::Error) -> Self {
        CaptureError::Io {
            name: name.to_owned(),
            action,
            source,
        }
    }

    /// Wraps an audio backend's error with the spec and what was being done.
    pub fn backend(spec: &str, what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CaptureError::Backend {
            spec: spec.to_owned(),
            what: what.into(),
            source: source.into(),
        }
    }

    /// A malformed-input error for `name`.
    pub fn malformed(name: &str, reason: impl Into<String>) -> Self {
        CaptureError::Malformed {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// An unsupported-feature error for `name`.
    pub fn unsupported(name: &str, reason: impl Into<String>) -> Self {
        CaptureError::Unsupported {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// An invalid-format error for `name`.
    pub fn invalid_format(name: &str, reason: impl Into<String>) -> Self {
        CaptureError::InvalidFormat {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_first() {
        let e = CaptureError::unsupported(
            "y4m:/tmp/a.y4m",
            "unsupported colour space C444, only 4:2:0 is supported",
        );
        assert_eq!(
            e.to_string(),
            "y4m:/tmp/a.y4m: unsupported colour space C444, only 4:2:0 is supported"
        );
        let e = CaptureError::io(
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
