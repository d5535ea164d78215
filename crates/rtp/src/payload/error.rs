//! The errors of the payload formats, one type per direction: what a
//! payloader refuses ([`PayloaderError`], with [`JpegError`] for the JPEGs
//! RFC 2435 cannot carry) and which packet a depayloader dropped and why
//! ([`DepayError`], with the SSRC, sequence number and timestamp to find the
//! packet in a capture).

use thiserror::Error;

use crate::packet::RtpPacket;
use crate::payload::types::MAX_DIMENSION;

/// Why a payloader could not be built or could not take a unit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloaderError {
    /// The MTU leaves no room for a payload.
    #[error("MTU {mtu} is too small: need at least {min}")]
    MtuTooSmall {
        /// The MTU asked for.
        mtu: usize,
        /// The smallest MTU this payloader works with.
        min: usize,
    },
    /// A unit that must go in one packet does not fit.
    #[error("{len}-byte payload does not fit a {max}-byte RTP payload")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload the MTU allows.
        max: usize,
    },
    /// A JPEG that RFC 2435 cannot carry.
    #[error(transparent)]
    Jpeg(#[from] JpegError),
}

/// Why a JPEG cannot be sent as RFC 2435.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JpegError {
    /// The data does not start with an SOI marker.
    #[error("not a JPEG: no SOI marker at the start")]
    NotJpeg,
    /// A segment runs past the end of the data.
    #[error("JPEG truncated in {what} at byte {at}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Byte offset where it started.
        at: usize,
    },
    /// Something RFC 2435 cannot carry or pstream does not handle.
    #[error("JPEG cannot be sent over RTP (RFC 2435): {0}")]
    Unsupported(JpegUnsupported),
    /// A picture larger than the format's 8-bit size fields allow.
    #[error(
        "a {width}x{height} JPEG cannot be sent over RTP: RFC 2435 carries at most \
         {MAX_DIMENSION}x{MAX_DIMENSION} pixels"
    )]
    TooLarge {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
    },
    /// A component refers to a quantization table the JPEG does not define.
    #[error("JPEG uses quantization table {0} but does not define it")]
    MissingTable(u8),
    /// The scan is longer than a 24-bit fragment offset can address.
    #[error("JPEG scan of {0} bytes is beyond RFC 2435's 16 MiB limit")]
    ScanTooLong(usize),
}

/// The feature of a JPEG that RFC 2435 cannot carry or pstream does not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JpegUnsupported {
    /// An EOI marker came before any scan.
    #[error("EOI before any scan")]
    EoiBeforeScan,
    /// A DQT table with a precision code other than 0 (8 bits) or 1 (16 bits).
    #[error("DQT precision code {0} is above 16 bits")]
    DqtPrecision(u8),
    /// A DQT table id above 3.
    #[error("DQT table id {0} is above 3")]
    DqtTableId(u8),
    /// Samples of other than 8 bits.
    #[error("sample precision is {0} bits, not 8")]
    SamplePrecision(u8),
    /// A frame of other than 3 components (Y, Cb, Cr).
    #[error("JPEG has {0} components, not 3")]
    Components(u8),
    /// A frame header other than baseline or extended sequential Huffman.
    #[error("SOF marker {0:#04x}: only baseline (sequential Huffman) JPEG can be sent")]
    NotBaseline(u8),
    /// A scan header before any frame header.
    #[error("scan before the frame header")]
    ScanBeforeFrame,
    /// A scan of other than the 3 components (progressive or non-interleaved).
    #[error("scan covers {0} components, not 3")]
    ScanComponents(u8),
    /// A zero width or height.
    #[error("picture size is zero")]
    ZeroSize,
    /// Luma sampling factors (H << 4 | V) other than 2x1 (4:2:2) or 2x2 (4:2:0).
    #[error("luma sampled {}x{}, neither 2x1 nor 2x2", .0 >> 4, .0 & 0x0f)]
    LumaSampling(u8),
    /// Chroma sampling factors (H << 4 | V) other than 1x1.
    #[error(
        "chroma is not sampled 1x1 (Cb {}x{}, Cr {}x{})",
        .cb >> 4, .cb & 0x0f, .cr >> 4, .cr & 0x0f
    )]
    ChromaSampling {
        /// Cb's sampling factors.
        cb: u8,
        /// Cr's sampling factors.
        cr: u8,
    },
    /// Cb and Cr quantized with different tables (RFC 2435 has one chroma table).
    #[error("Cb and Cr use different quantization tables ({cb} and {cr})")]
    ChromaTables {
        /// Cb's table id.
        cb: u8,
        /// Cr's table id.
        cr: u8,
    },
    /// A scan without entropy-coded data.
    #[error("empty scan")]
    EmptyScan,
    /// A DHT table other than the standard one for its class and id.
    #[error(
        "non-standard Huffman table (class {}, id {}): RFC 2435 receivers assume the standard ones",
        .0 >> 4, .0 & 0x0f
    )]
    NonStandardHuffman(u8),
}

/// A packet a depacketizer dropped, with the context to find it in a capture.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("ssrc {ssrc:#010x} seq {seq} ts {timestamp}: {kind}")]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// A unit grew past its codec's cap ([`crate::payload::MAX_H264_UNIT`],
    /// [`crate::payload::MAX_OPUS_PACKET`]): the whole unit is dropped.
    #[error("unit of {len} bytes or more is past the {limit}-byte cap; unit dropped")]
    UnitTooLarge {
        /// Bytes the unit would have reached with this packet (at most).
        len: usize,
        /// The codec's cap.
        limit: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_jpeg_messages_name_the_feature() {
        let e = JpegError::Unsupported(JpegUnsupported::LumaSampling(0x11));
        assert_eq!(
            e.to_string(),
            "JPEG cannot be sent over RTP (RFC 2435): luma sampled 1x1, neither 2x1 nor 2x2"
        );
        let e = JpegUnsupported::ChromaSampling { cb: 0x12, cr: 0x11 };
        assert_eq!(e.to_string(), "chroma is not sampled 1x1 (Cb 1x2, Cr 1x1)");
        assert!(JpegUnsupported::NonStandardHuffman(0x10)
            .to_string()
            .contains("Huffman table (class 1, id 0)"));
        assert!(JpegError::TooLarge {
            width: 4096,
            height: 16
        }
        .to_string()
        .contains("2040x2040"));
    }
}
