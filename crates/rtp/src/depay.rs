//! What every depacketizer shares: its output unit, its error and a codec switch.

use bytes::Bytes;
use pstream_core::Codec;
use thiserror::Error;

use crate::h264::H264Depacketizer;
use crate::jpeg::JpegDepacketizer;
use crate::opus::OpusDepacketizer;
use crate::packet::RtpPacket;

/// One access unit (H.264, Annex-B with 4-byte start codes), one Opus packet or one JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepacketizedUnit {
    /// The media: Annex-B for H.264, one Opus packet for Opus, a JFIF image for JPEG.
    pub data: Bytes,
    /// RTP timestamp shared by every packet of the unit.
    pub timestamp: u32,
    /// True if a decoder can start here (IDR or SPS present; always for Opus and JPEG).
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
    /// An RFC 2435 payload shorter than its headers.
    #[error("{0}-byte payload too short for the RFC 2435 JPEG headers")]
    JpegHeaderTruncated(usize),
    /// An RFC 2435 type other than 0, 1, 64 or 65.
    #[error("unsupported RFC 2435 JPEG type {0}")]
    JpegType(u8),
    /// A reserved Q value (0 or 100..=127).
    #[error("reserved RFC 2435 Q value {0}")]
    JpegQ(u8),
    /// A zero width or height.
    #[error("JPEG size {width}x{height} (8-pixel units) is empty")]
    JpegSize {
        /// Width in 8-pixel units.
        width: u8,
        /// Height in 8-pixel units.
        height: u8,
    },
    /// A fragment reaching past any sane scan length for the picture size.
    #[error("JPEG fragment at offset {offset} (+{len} bytes) is past the {limit}-byte limit")]
    JpegOffset {
        /// Fragment offset.
        offset: usize,
        /// Fragment length.
        len: usize,
        /// Largest scan accepted for this picture size.
        limit: usize,
    },
    /// A fragment overlapping data already received for the frame.
    #[error("JPEG fragment at offset {offset} overlaps (expected {expected})")]
    JpegOverlap {
        /// Fragment offset.
        offset: usize,
        /// The offset that should have come next.
        expected: usize,
    },
    /// An in-band quantization table length that the payload or type contradicts.
    #[error("JPEG quantization table length {declared} is wrong (need {needed})")]
    JpegTables {
        /// The length the header declares.
        declared: usize,
        /// What the type needs or what the payload holds.
        needed: usize,
    },
    /// Q 128..=254 without tables, and none received before for that Q.
    #[error("JPEG Q {q} needs in-band tables and none were received")]
    JpegNoTables {
        /// The Q value.
        q: u8,
    },
    /// Type, Q or size changed between fragments of one frame.
    #[error("JPEG header changed within a frame")]
    JpegHeaderChanged,
}

/// A depacketizer for one of the codecs pstream receives over RTP.
#[derive(Debug)]
pub enum Depacketizer {
    /// H.264 (RFC 6184, packetization modes 0 and 1).
    H264(H264Depacketizer),
    /// Opus (RFC 7587).
    Opus(OpusDepacketizer),
    /// Motion JPEG (RFC 2435).
    Jpeg(JpegDepacketizer),
}

impl Depacketizer {
    /// A depacketizer for `codec`, or `None` if pstream has no RTP mapping for it.
    pub fn new(codec: Codec) -> Option<Self> {
        match codec {
            Codec::H264 => Some(Self::H264(H264Depacketizer::new())),
            Codec::Opus => Some(Self::Opus(OpusDepacketizer::new())),
            Codec::Mjpeg => Some(Self::Jpeg(JpegDepacketizer::new())),
            Codec::Aac => None,
        }
    }

    /// Feeds one packet, in sequence order; completed units queue for [`Self::pop`].
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        match self {
            Self::H264(d) => d.push(pkt),
            Self::Opus(d) => d.push(pkt),
            Self::Jpeg(d) => d.push(pkt),
        }
    }

    /// Takes the next completed unit.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        match self {
            Self::H264(d) => d.pop(),
            Self::Opus(d) => d.pop(),
            Self::Jpeg(d) => d.pop(),
        }
    }

    /// Ends the unit in progress (its sender went away), queueing it if non-empty.
    pub fn flush(&mut self) {
        match self {
            Self::H264(d) => d.flush(),
            Self::Opus(_) => {}
            Self::Jpeg(d) => d.flush(),
        }
    }
}
