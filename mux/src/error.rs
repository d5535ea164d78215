//! The one error type of the mux crate.

use thiserror::Error;

/// What went wrong while muxing.
#[derive(Debug, Error, PartialEq, Eq)]
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
    UnsupportedCodec(String),
    /// A payload larger than an FLV tag can hold (16 MiB).
    #[error("{what} of {len} bytes does not fit an FLV tag")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}
