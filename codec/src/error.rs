//! The one error type of the codec crate.

use pstream_core::CoreError;
use thiserror::Error;

use crate::scale::ScaleError;

/// What went wrong while setting up or running an encoder or decoder.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A configuration value cannot be used.
    #[error("invalid {codec} configuration: {what}")]
    Config {
        /// The codec being configured ("H.264", "Opus", "resampler").
        codec: &'static str,
        /// Which setting is wrong and why.
        what: String,
    },
    /// A raw frame does not suit the encoder.
    #[error("H.264 encoder cannot take a {width}x{height} frame: {why}")]
    FrameRejected {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Why the frame was refused.
        why: &'static str,
    },
    /// openh264's encoder returned an error.
    #[error("openh264 encoder failed during {op}: native code {code}")]
    H264Encode {
        /// The encoder operation that failed.
        op: &'static str,
        /// openh264's return code (0 when the failure came from the Rust wrapper).
        code: i64,
    },
    /// openh264's decoder refused an access unit (corrupt, truncated or missing references).
    #[error("openh264 decoder refused a {len}-byte access unit: {}", decoding_state(*.state))]
    H264Decode {
        /// Length of the offending access unit.
        len: usize,
        /// openh264's `DECODING_STATE` bit set.
        state: i64,
    },
    /// The decoder produced a picture whose geometry makes no sense.
    #[error("openh264 decoder returned an unusable picture: {0}")]
    DecodedPicture(String),
    /// A picture (decoded, or made for the encoder) could not be made into a frame.
    #[error("{codec}: unusable picture")]
    Frame {
        /// Whose picture: "H.264", "JPEG", "H.264 (priming)".
        codec: &'static str,
        /// Why the frame was refused.
        #[source]
        source: CoreError,
    },
    /// An H.264 bitstream structure (NAL unit, SPS) could not be parsed.
    #[error("malformed H.264 {what}: {why}")]
    Bitstream {
        /// The structure being parsed.
        what: &'static str,
        /// What was wrong with it.
        why: &'static str,
    },
    /// libjpeg-turbo refused to encode or decode (corrupt JPEG, bad size).
    #[error("JPEG {op} failed")]
    Jpeg {
        /// The operation that failed.
        op: &'static str,
        /// TurboJPEG's error.
        #[source]
        source: turbojpeg::Error,
    },
    /// A picture or JPEG that cannot be encoded or decoded as it is.
    #[error("JPEG {op} failed: {why}")]
    JpegInput {
        /// The operation that failed.
        op: &'static str,
        /// What was wrong.
        why: String,
    },
    /// An audio block cannot be encoded.
    #[error("audio block rejected: {0}")]
    AudioBlock(String),
    /// fdk-aac returned an error.
    #[error("fdk-aac {op} failed")]
    Aac {
        /// The encoder operation that failed.
        op: &'static str,
        /// fdk-aac's error.
        #[source]
        source: AacLibError,
    },
    /// fdk-aac's decoder refused a configuration or a frame.
    #[error("fdk-aac decoder {op} failed")]
    AacDecode {
        /// The decoder operation that failed.
        op: &'static str,
        /// fdk-aac's error.
        #[source]
        source: AacDecoderLibError,
    },
    /// A scaler could not be set up or refused a frame.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// A hardware encoder or decoder (a V4L2 memory-to-memory device) failed.
    #[error("{0}")]
    Device(String),
    /// libopus returned an error.
    #[error("libopus failed during {op}")]
    Opus {
        /// The Opus operation that failed.
        op: &'static str,
        /// libopus's error.
        #[source]
        source: opus::Error,
    },
}

/// fdk-aac's error code as a standard error (the crate's own type is not one).
#[derive(Debug)]
pub struct AacLibError(pub fdk_aac::enc::EncoderError);

impl std::fmt::Display for AacLibError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AacLibError {}

/// fdk-aac's decoder error code as a standard error (the crate's own type is not one).
#[derive(Debug)]
pub struct AacDecoderLibError(pub fdk_aac::dec::DecoderError);

impl std::fmt::Display for AacDecoderLibError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AacDecoderLibError {}

/// Names the bits of an openh264 `DECODING_STATE`.
pub fn decoding_state(state: i64) -> String {
    const BITS: [(i64, &str); 9] = [
        (0x01, "frame pending"),
        (0x02, "reference lost"),
        (0x04, "bitstream error"),
        (0x08, "dependent layer lost"),
        (0x10, "no parameter sets"),
        (0x20, "data error concealed"),
        (0x40, "reference list null pointers"),
        (0x1000, "invalid argument"),
        (0x2000, "init expected"),
    ];
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| state & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        format!("state {state:#x}")
    } else {
        format!("{} ({state:#x})", names.join(", "))
    }
}

impl CodecError {
    /// A configuration error for `codec` described by `what`.
    pub(crate) fn config(codec: &'static str, what: impl Into<String>) -> Self {
        CodecError::Config {
            codec,
            what: what.into(),
        }
    }

    /// A bitstream parse error.
    pub(crate) fn bitstream(what: &'static str, why: &'static str) -> Self {
        CodecError::Bitstream { what, why }
    }
}
