//! Encoded media: one access unit or audio packet.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The codec of an [`EncodedUnit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264, payload in Annex-B byte-stream format (start codes).
    H264,
    /// Opus, one Opus packet per unit.
    Opus,
    /// Motion JPEG, one complete JPEG image per unit.
    Mjpeg,
    /// AAC, one raw AAC frame per unit.
    Aac,
}

impl Codec {
    /// The RTP clock rate this codec uses.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::H264 | Codec::Mjpeg => 90_000,
            Codec::Opus => 48_000,
            // AAC is not carried over RTP by pstream; its sample rate rules.
            Codec::Aac => 48_000,
        }
    }

    /// Whether this is a video codec.
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::Mjpeg)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::Opus => "Opus",
            Codec::Mjpeg => "MJPEG",
            Codec::Aac => "AAC",
        })
    }
}

/// One encoded access unit (video) or packet (audio).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUnit {
    /// Which codec the payload is in.
    pub codec: Codec,
    /// True for a unit a decoder can start at (an IDR for H.264).
    pub keyframe: bool,
    /// Presentation time since the start of the stream.
    pub pts: Duration,
    /// Decode time where it differs from `pts` (never for pstream's encoders).
    pub dts: Option<Duration>,
    /// When the media in this unit was captured, on the pipeline clock.
    pub capture: Instant,
    /// The payload: Annex-B for H.264, one packet for Opus/AAC, a JPEG for MJPEG.
    pub data: Bytes,
}
