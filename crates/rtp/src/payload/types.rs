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
/// Largest fragment offset (24 bits), hence largest scan an RFC 2435 frame can carry.
pub const MAX_SCAN_LEN: usize = 1 << 24;

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
