//! What the payload formats share: payload types, the RFC 2435 limits and
//! the unit a depayloader hands out.
//!
//! This file imports nothing from the crate, so every other file of
//! `payload` (the errors, the traits, the codec leaves) can build on it.

use bytes::Bytes;

/// pstream's dynamic RTP payload type for H.264 (RFC 6184).
pub const PT_H264: u8 = 96;
/// pstream's dynamic RTP payload type for Opus (RFC 7587).
pub const PT_OPUS: u8 = 97;
/// The static RTP payload type of JPEG (RFC 3551).
pub const PT_JPEG: u8 = 26;

/// Widest and tallest picture RFC 2435 can describe (255 units of 8 pixels).
pub const MAX_DIMENSION: u32 = 2040;

// The largest unit each depacketizer assembles. Past it, the unit is
// dropped and counted while it is still arriving (what was buffered is let
// go and the rest of it skipped), so a sender that never ends a unit costs
// at most this much memory, not all of it.

/// JPEG: the largest fragment offset (24 bits), hence the largest scan an
/// RFC 2435 frame can carry; each frame is held to less by its size (at
/// most 8 bytes a pixel).
pub const MAX_SCAN_LEN: usize = 1 << 24;
/// H.264: 8 MiB. The largest access unit the levels up to 5.2 allow
/// (what openh264 decodes) is 384 bytes per macroblock over a minimum
/// compression ratio of 2, for 36 864 macroblocks (4096x2304): 6.75 MiB;
/// the rest leaves room for parameter sets and SEI.
pub const MAX_H264_UNIT: usize = 8 << 20;
/// Opus: one RTP packet is one Opus packet, and the largest RFC 6716 allows
/// is 120 ms as 48 frames of at most 1275 bytes (section 3.2.1), with a TOC
/// byte, a frame count byte and two length bytes per frame: 61 298 bytes.
pub const MAX_OPUS_PACKET: usize = 48 * 1275 + 2 + 2 * 48;

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
