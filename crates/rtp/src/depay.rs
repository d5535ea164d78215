//! What every depacketizer shares: its output unit, its error and a codec switch.

use bytes::Bytes;
use pstream_core::Codec;
use thiserror::Error;

use crate::h264::H264Depacketizer;
use crate::opus::OpusDepacketizer;
use crate::packet::RtpPacket;

/// One access unit (H.264, Annex-B with 4-byte start codes) or one Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepacketizedUnit {
    /// The media: Annex-B for H.264, one Opus packet for Opus.
    pub data: Bytes,
    /// RTP timestamp shared by every packet of the unit.
    pub timestamp: u32,
    /// True if a decoder can start here (IDR or SPS present; always for Opus).
    pub keyframe: bool,
    /// False if packets of this unit were lost or dropped as malformed.
    pub complete: bool,
}

/// A packet a depacketizer dropped, with the context to find it in a capture.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("ssrc {ssrc:#010x} seq {seq} ts {timestamp}: {kind}")]
pub struct DepayError {
    /// SSRC of the dropped packet.
    pub ssrc: u32,
    /// Sequence number of the dropped packet.
    pub seq: u16,
    /// RTP timestamp of the dropped packet.
    pub timestamp: u32,
    /// What was wrong with it.
    pub kind: DepayErrorKind,
}

impl DepayError {
    /// An error about `pkt`.
    pub(crate) fn new(pkt: &RtpPacket, kind: DepayErrorKind) -> Self {
        Self {
            ssrc: pkt.header.ssrc,
            seq: pkt.header.sequence,
            timestamp: pkt.header.timestamp,
            kind,
        }
    }
}

/// The ways a payload can be unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DepayErrorKind {
    /// The payload is empty.
    #[error("empty payload")]
    Empty,
    /// A NAL unit type this depacketizer does not handle (STAP-B, MTAP, FU-B, reserved).
    #[error("unsupported NAL unit type {0}")]
    UnsupportedNalType(u8),
    /// A STAP-A whose NAL sizes do not match its length.
    #[error("STAP-A NAL size {size} at offset {offset} overruns the {len}-byte payload")]
    StapLength {
        /// The declared size.
        size: usize,
        /// Offset of the size field in the payload.
        offset: usize,
        /// Payload length.
        len: usize,
    },
    /// A FU-A too short to hold its FU header.
    #[error("FU-A of {0} bytes has no FU header")]
    FuTooShort(usize),
    /// A FU-A continuation without the start fragment before it.
    #[error("FU-A fragment without its start (lost or out of order)")]
    FuWithoutStart,
    /// A FU-A that started while another was still open; the open one is dropped.
    #[error("FU-A started before the previous one ended; partial NAL dropped")]
    FuUnterminated,
}

/// A depacketizer for one of the codecs pstream receives over RTP.
#[derive(Debug)]
pub enum Depacketizer {
    /// H.264 (RFC 6184, packetization modes 0 and 1).
    H264(H264Depacketizer),
    /// Opus (RFC 7587).
    Opus(OpusDepacketizer),
}

impl Depacketizer {
    /// A depacketizer for `codec`, or `None` if pstream has no RTP mapping for it.
    pub fn new(codec: Codec) -> Option<Self> {
        match codec {
            Codec::H264 => Some(Self::H264(H264Depacketizer::new())),
            Codec::Opus => Some(Self::Opus(OpusDepacketizer::new())),
            Codec::Mjpeg | Codec::Aac => None,
        }
    }

    /// Feeds one packet, in sequence order; completed units queue for [`Self::pop`].
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        match self {
            Self::H264(d) => d.push(pkt),
            Self::Opus(d) => d.push(pkt),
        }
    }

    /// Takes the next completed unit.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        match self {
            Self::H264(d) => d.pop(),
            Self::Opus(d) => d.pop(),
        }
    }

    /// Ends the unit in progress (its sender went away), queueing it if non-empty.
    pub fn flush(&mut self) {
        match self {
            Self::H264(d) => d.flush(),
            Self::Opus(_) => {}
        }
    }
}
