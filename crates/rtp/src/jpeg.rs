//! Motion JPEG over RTP (RFC 2435): a payloader that splits baseline JPEGs
//! into fragments, and a depacketizer that rebuilds complete JFIF images.
//!
//! The wire format carries no JPEG headers: only the scan data, the picture
//! size in 8-pixel units, a type (sampling; +64 when a restart interval
//! follows) and a Q value. Q 1..=99 stands for the standard tables scaled by
//! the RFC's `MakeTables`; Q 128..=255 means the tables travel in-band in the
//! first packet of each frame. Huffman tables are always the standard ones.
//!
//! The payloader checks the encoder's DQT against `MakeTables(q)`: when they
//! match (libjpeg's `jpeg_set_quality` for quality 1..=99 does) it sends Q =
//! `q` and no tables; otherwise Q = 255 and the tables in every frame.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use crate::depay::{DepacketizedUnit, DepayError, DepayErrorKind};
use crate::h264::PayloaderError;
use crate::packet::{RtpPacket, RTP_HEADER_LEN};

/// The static RTP payload type of JPEG (RFC 3551).
pub const PT_JPEG: u8 = 26;
/// Widest and tallest picture RFC 2435 can describe (255 units of 8 pixels).
pub const MAX_DIMENSION: u32 = 2040;
/// Length of the RFC 2435 main JPEG header.
pub const MAIN_HEADER_LEN: usize = 8;
/// Length of the restart marker header (types 64..=127).
pub const RESTART_HEADER_LEN: usize = 4;
/// Length of the quantization table header (Q 128..=255, first packet).
pub const QTABLE_HEADER_LEN: usize = 4;
/// The Q value that says "tables in-band, possibly different every frame".
pub const Q_DYNAMIC: u8 = 255;
/// Largest fragment offset (24 bits), hence largest scan a frame can carry.
pub const MAX_SCAN_LEN: usize = 1 << 24;
/// Scan bytes a frame may hold per pixel before the depacketizer gives up on it.
const MAX_BYTES_PER_PIXEL: usize = 8;

/// Smallest payloader MTU: headers, two 8-bit tables and one byte of scan.
const MIN_MTU: usize =
    RTP_HEADER_LEN + MAIN_HEADER_LEN + RESTART_HEADER_LEN + QTABLE_HEADER_LEN + 128 + 1;

/// zigzag position → natural (row-major) position, as in the RFC's appendix A.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// JPEG standard table K.1 (luminance quantizer), natural order.
const LUMA_QUANTIZER: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// JPEG standard table K.2 (chrominance quantizer), natural order.
const CHROMA_QUANTIZER: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_LUMA_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_CHROMA_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// The four standard Huffman tables as (class << 4 | id, bits, values).
const STD_HUFFMAN: [(u8, &[u8; 16], &[u8]); 4] = [
    (0x00, &DC_LUMA_BITS, &DC_LUMA_VALS),
    (0x10, &AC_LUMA_BITS, &AC_LUMA_VALS),
    (0x01, &DC_CHROMA_BITS, &DC_CHROMA_VALS),
    (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALS),
];

/// The RFC 2435 `MakeTables(q)`: luma and chroma tables for Q 1..=99, in
/// zigzag order as a DQT segment holds them. Q outside 1..=99 is clamped.
pub fn make_tables(q: u8) -> ([u8; 64], [u8; 64]) {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 {
        5000 / factor
    } else {
        200 - factor * 2
    };
    let mut luma = [0u8; 64];
    let mut chroma = [0u8; 64];
    for i in 0..64 {
        let l = (u32::from(LUMA_QUANTIZER[ZIGZAG[i]]) * scale + 50) / 100;
        let c = (u32::from(CHROMA_QUANTIZER[ZIGZAG[i]]) * scale + 50) / 100;
        luma[i] = l.clamp(1, 255) as u8;
        chroma[i] = c.clamp(1, 255) as u8;
    }
    (luma, chroma)
}

/// The Q in 1..=99 whose `MakeTables` gives exactly these 8-bit tables, if any.
pub fn standard_q(luma: &[u8], chroma: &[u8]) -> Option<u8> {
    if luma.len() != 64 || chroma.len() != 64 {
        return None;
    }
    (1..=99u8).find(|&q| {
        let (l, c) = make_tables(q);
        l[..] == *luma && c[..] == *chroma
    })
}

/// Why a JPEG cannot be sent as RFC 2435.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    Unsupported(&'static str),
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

/// A quantization table as a DQT segment holds it (zigzag order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantTable<'a> {
    /// True for 16-bit entries (128 bytes), false for 8-bit (64 bytes).
    pub sixteen_bit: bool,
    /// The entries.
    pub data: &'a [u8],
}

/// What RFC 2435 needs from a baseline JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo<'a> {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// RFC 2435 type without the restart flag: 0 for 4:2:2, 1 for 4:2:0.
    pub rtp_type: u8,
    /// Restart interval in MCUs (0: none).
    pub restart_interval: u16,
    /// The table the luma component uses.
    pub luma: QuantTable<'a>,
    /// The table both chroma components use.
    pub chroma: QuantTable<'a>,
    /// The entropy-coded scan, without SOS header and EOI.
    pub scan: &'a [u8],
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Parses a baseline JPEG far enough to send it: SOF0, DQT, DHT, DRI, SOS.
///
/// Huffman tables, if present, must be the standard ones (a receiver
/// rebuilds those); a JPEG without DHT (as many MJPEG cameras send) is fine.
pub fn parse_jpeg(data: &[u8]) -> Result<JpegInfo<'_>, JpegError> {
    if data.get(..2) != Some(&[0xff, 0xd8]) {
        return Err(JpegError::NotJpeg);
    }
    let mut tables: [Option<QuantTable<'_>>; 4] = [None; 4];
    let mut frame: Option<(u32, u32, [[u8; 3]; 3])> = None;
    let mut restart_interval = 0u16;
    let mut pos = 2;
    loop {
        let at = pos;
        if data.get(pos) != Some(&0xff) {
            return Err(JpegError::Truncated { what: "marker", at });
        }
        while data.get(pos) == Some(&0xff) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else {
            return Err(JpegError::Truncated { what: "marker", at });
        };
        pos += 1;
        if marker == 0x01 || (0xd0..=0xd8).contains(&marker) {
            continue;
        }
        if marker == 0xd9 {
            return Err(JpegError::Unsupported("EOI before any scan"));
        }
        let len = be16(data, pos).ok_or(JpegError::Truncated {
            what: "segment length",
            at,
        })? as usize;
        let seg =
            data.get(pos + 2..pos + len)
                .filter(|_| len >= 2)
                .ok_or(JpegError::Truncated {
                    what: "segment",
                    at,
                })?;
        pos += len;
        match marker {
            0xdb => {
                let mut s = seg;
                while let [pq_tq, rest @ ..] = s {
                    let sixteen_bit = match pq_tq >> 4 {
                        0 => false,
                        1 => true,
                        _ => return Err(JpegError::Unsupported("DQT precision above 16 bits")),
                    };
                    let size = if sixteen_bit { 128 } else { 64 };
                    let id = usize::from(pq_tq & 0x0f);
                    if id > 3 {
                        return Err(JpegError::Unsupported("DQT table id above 3"));
                    }
                    let table = rest
                        .get(..size)
                        .ok_or(JpegError::Truncated { what: "DQT", at })?;
                    tables[id] = Some(QuantTable {
                        sixteen_bit,
                        data: table,
                    });
                    s = &rest[size..];
                }
            }
            0xc0 | 0xc1 => {
                let (Some(&precision), Some(h), Some(w), Some(&n)) =
                    (seg.first(), be16(seg, 1), be16(seg, 3), seg.get(5))
                else {
                    return Err(JpegError::Truncated { what: "SOF", at });
                };
                if precision != 8 {
                    return Err(JpegError::Unsupported("sample precision is not 8 bits"));
                }
                if n != 3 {
                    return Err(JpegError::Unsupported("JPEG does not have 3 components"));
                }
                let c = seg
                    .get(6..15)
                    .ok_or(JpegError::Truncated { what: "SOF", at })?;
                let comps = [[c[0], c[1], c[2]], [c[3], c[4], c[5]], [c[6], c[7], c[8]]];
                frame = Some((u32::from(w), u32::from(h), comps));
            }
            0xc2 | 0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => {
                return Err(JpegError::Unsupported(
                    "only baseline (sequential Huffman) JPEG can be sent",
                ));
            }
            0xc4 => check_standard_huffman(seg, at)?,
            0xdd => {
                restart_interval = be16(seg, 0).ok_or(JpegError::Truncated { what: "DRI", at })?;
            }
            0xda => {
                let Some((width, height, comps)) = frame else {
                    return Err(JpegError::Unsupported("scan before the frame header"));
                };
                if seg.first() != Some(&3) {
                    return Err(JpegError::Unsupported("scan does not cover 3 components"));
                }
                let rest = &data[pos..];
                let end = rest
                    .windows(2)
                    .rposition(|w| w == [0xff, 0xd9])
                    .unwrap_or(rest.len());
                return finish_info(
                    width,
                    height,
                    comps,
                    &tables,
                    restart_interval,
                    &rest[..end],
                );
            }
            _ => {}
        }
    }
}

fn finish_info<'a>(
    width: u32,
    height: u32,
    comps: [[u8; 3]; 3],
    tables: &[Option<QuantTable<'a>>; 4],
    restart_interval: u16,
    scan: &'a [u8],
) -> Result<JpegInfo<'a>, JpegError> {
    if width == 0 || height == 0 {
        return Err(JpegError::Unsupported("picture size is zero"));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(JpegError::TooLarge { width, height });
    }
    let rtp_type = match comps[0][1] {
        0x21 => 0,
        0x22 => 1,
        _ => {
            return Err(JpegError::Unsupported(
                "luma sampling is neither 2x1 nor 2x2",
            ))
        }
    };
    if comps[1][1] != 0x11 || comps[2][1] != 0x11 {
        return Err(JpegError::Unsupported("chroma is not sampled 1x1"));
    }
    if comps[1][2] != comps[2][2] {
        return Err(JpegError::Unsupported(
            "Cb and Cr use different quantization tables",
        ));
    }
    let table = |id: u8| {
        tables
            .get(usize::from(id))
            .copied()
            .flatten()
            .ok_or(JpegError::MissingTable(id))
    };
    if scan.is_empty() {
        return Err(JpegError::Unsupported("empty scan"));
    }
    if scan.len() >= MAX_SCAN_LEN {
        return Err(JpegError::ScanTooLong(scan.len()));
    }
    Ok(JpegInfo {
        width,
        height,
        rtp_type,
        restart_interval,
        luma: table(comps[0][2])?,
        chroma: table(comps[1][2])?,
        scan,
    })
}

/// Refuses DHT segments with other than the standard tables.
fn check_standard_huffman(seg: &[u8], at: usize) -> Result<(), JpegError> {
    let mut s = seg;
    while let [tc_th, rest @ ..] = s {
        let bits = rest
            .get(..16)
            .ok_or(JpegError::Truncated { what: "DHT", at })?;
        let n: usize = bits.iter().map(|b| usize::from(*b)).sum();
        let vals = rest
            .get(16..16 + n)
            .ok_or(JpegError::Truncated { what: "DHT", at })?;
        let standard = STD_HUFFMAN
            .iter()
            .any(|(id, b, v)| id == tc_th && b[..] == *bits && **v == *vals);
        if !standard {
            return Err(JpegError::Unsupported(
                "non-standard Huffman tables (RFC 2435 receivers assume the standard ones)",
            ));
        }
        s = &rest[16 + n..];
    }
    Ok(())
}

/// How a payloader sends the quantization tables of a set of frames.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QDecision {
    luma: Vec<u8>,
    chroma: Vec<u8>,
    /// Q 1..=99, or [`Q_DYNAMIC`] with the tables in-band.
    q: u8,
}

/// Splits baseline JPEGs into RFC 2435 payloads.
#[derive(Debug)]
pub struct JpegPayloader {
    max_payload: usize,
    last: Option<QDecision>,
}

impl JpegPayloader {
    /// A payloader whose packets, with a 12-byte RTP header, fit in `mtu` bytes.
    pub fn new(mtu: usize) -> Result<Self, PayloaderError> {
        if mtu < MIN_MTU {
            return Err(PayloaderError::MtuTooSmall { mtu, min: MIN_MTU });
        }
        Ok(Self {
            max_payload: mtu - RTP_HEADER_LEN,
            last: None,
        })
    }

    /// The Q value the last frame went out with (`None` before the first).
    pub fn last_q(&self) -> Option<u8> {
        self.last.as_ref().map(|d| d.q)
    }

    /// Packetizes one JPEG, calling `emit(parts, marker)` per packet.
    ///
    /// A packet's payload is the concatenation of `parts`; the marker is set
    /// on the last packet only. Returns how many packets were emitted.
    pub fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        jpeg: &[u8],
        mut emit: F,
    ) -> Result<usize, PayloaderError> {
        let info = parse_jpeg(jpeg)?;
        let q = self.decide_q(&info);
        let restart = info.restart_interval > 0;
        let mut main = [0u8; MAIN_HEADER_LEN + RESTART_HEADER_LEN + QTABLE_HEADER_LEN];
        main[4] = info.rtp_type + if restart { 64 } else { 0 };
        main[5] = q;
        main[6] = info.width.div_ceil(8) as u8;
        main[7] = info.height.div_ceil(8) as u8;
        let mut hdr_len = MAIN_HEADER_LEN;
        if restart {
            main[8..10].copy_from_slice(&info.restart_interval.to_be_bytes());
            // F = L = 1, count 0x3fff: fragments are not aligned to intervals.
            main[10..12].copy_from_slice(&[0xff, 0xff]);
            hdr_len += RESTART_HEADER_LEN;
        }
        let (luma, chroma): (&[u8], &[u8]) = if q == Q_DYNAMIC {
            (info.luma.data, info.chroma.data)
        } else {
            (&[], &[])
        };
        let first_extra = if q == Q_DYNAMIC {
            let precision =
                u8::from(info.luma.sixteen_bit) | u8::from(info.chroma.sixteen_bit) << 1;
            let len = (luma.len() + chroma.len()) as u16;
            main[hdr_len..hdr_len + 4].copy_from_slice(&[
                0,
                precision,
                (len >> 8) as u8,
                len as u8,
            ]);
            QTABLE_HEADER_LEN + luma.len() + chroma.len()
        } else {
            0
        };
        let scan = info.scan;
        let mut offset = 0usize;
        let mut count = 0;
        while offset < scan.len() {
            let first = offset == 0;
            let extra = if first { first_extra } else { 0 };
            let room = self.max_payload.saturating_sub(hdr_len + extra);
            if room == 0 {
                return Err(PayloaderError::MtuTooSmall {
                    mtu: self.max_payload + RTP_HEADER_LEN,
                    min: RTP_HEADER_LEN + hdr_len + extra + 1,
                });
            }
            let end = (offset + room).min(scan.len());
            let off = (offset as u32).to_be_bytes();
            main[1..4].copy_from_slice(&off[1..4]);
            let last = end == scan.len();
            let chunk = &scan[offset..end];
            if first && q == Q_DYNAMIC {
                emit(
                    &[&main[..hdr_len + QTABLE_HEADER_LEN], luma, chroma, chunk],
                    last,
                );
            } else {
                emit(&[&main[..hdr_len], chunk], last);
            }
            count += 1;
            offset = end;
        }
        Ok(count)
    }

    /// Q for this frame's tables, reusing the last answer while they stay the same.
    fn decide_q(&mut self, info: &JpegInfo<'_>) -> u8 {
        if let Some(d) = &self.last {
            if d.luma == info.luma.data && d.chroma == info.chroma.data {
                return d.q;
            }
        }
        let standard = (!info.luma.sixteen_bit && !info.chroma.sixteen_bit)
            .then(|| standard_q(info.luma.data, info.chroma.data))
            .flatten();
        let q = standard.unwrap_or(Q_DYNAMIC);
        self.last = Some(QDecision {
            luma: info.luma.data.to_vec(),
            chroma: info.chroma.data.to_vec(),
            q,
        });
        q
    }
}

/// Counters of what a [`JpegDepacketizer`] threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JpegDepayStats {
    /// Complete JPEGs emitted.
    pub frames: u64,
    /// Frames dropped: a fragment missing, overlapping or malformed.
    pub dropped_frames: u64,
    /// Packets dropped as malformed or unsupported.
    pub dropped_packets: u64,
}

/// The per-frame fields every packet of a frame repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    rtp_type: u8,
    q: u8,
    width: u8,
    height: u8,
    restart_interval: u16,
}

/// Quantization tables of a frame, as the DQT will hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tables {
    /// Bit 0: luma table is 16-bit; bit 1: chroma table is 16-bit.
    precision: u8,
    luma: Vec<u8>,
    chroma: Vec<u8>,
}

/// One parsed RFC 2435 payload.
struct Fragment<'a> {
    header: FrameHeader,
    offset: usize,
    /// In-band tables (first packet, Q >= 128): precision and data.
    tables: Option<(u8, &'a [u8])>,
    body: &'a [u8],
}

/// Reassembles RFC 2435 fragments into complete JFIF images.
///
/// Packets must come in sequence order (the jitter buffer's job). A frame
/// with a missing, overlapping or malformed fragment is dropped whole and
/// counted; every emitted unit is a complete, decodable JPEG and a keyframe.
#[derive(Debug, Default)]
pub struct JpegDepacketizer {
    ts: Option<u32>,
    header: Option<FrameHeader>,
    tables: Option<Tables>,
    scan: BytesMut,
    next_offset: usize,
    broken: bool,
    /// Tables last received in-band for a Q of 128..=254 (reusable by Q).
    cached: Option<(u8, Tables)>,
    ready: VecDeque<DepacketizedUnit>,
    stats: JpegDepayStats,
}

impl JpegDepacketizer {
    /// An idle depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been emitted and dropped so far.
    pub fn stats(&self) -> JpegDepayStats {
        self.stats
    }

    /// Takes the next complete JPEG.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    /// Gives up on the frame in progress (its last packet never came).
    pub fn flush(&mut self) {
        self.abandon();
    }

    /// Feeds one packet. An `Err` means it was malformed or unsupported: the
    /// packet and its frame are dropped and counted; the depacketizer stays usable.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        let ts = pkt.header.timestamp;
        if self.ts.is_some_and(|t| t != ts) {
            // The previous frame's marker packet never came.
            self.abandon();
        }
        let result = self.push_fragment(pkt);
        if let Err(e) = &result {
            self.stats.dropped_packets += 1;
            self.ts = Some(ts);
            self.broken = true;
            if matches!(e.kind, DepayErrorKind::JpegNoTables { .. }) {
                self.header = None;
            }
        }
        if pkt.header.marker {
            self.finish();
        }
        result
    }

    fn push_fragment(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        let err = |kind| Err(DepayError::new(pkt, kind));
        let frag = match parse_fragment(&pkt.payload) {
            Ok(f) => f,
            Err(kind) => return err(kind),
        };
        let ts = pkt.header.timestamp;
        let h = frag.header;
        let limit = (usize::from(h.width) * usize::from(h.height) * 64 * MAX_BYTES_PER_PIXEL)
            .min(MAX_SCAN_LEN);
        if frag.offset + frag.body.len() > limit {
            return err(DepayErrorKind::JpegOffset {
                offset: frag.offset,
                len: frag.body.len(),
                limit,
            });
        }
        if frag.offset == 0 {
            if self.ts == Some(ts) && (self.header.is_some() || self.broken) {
                // A second first fragment for the same frame.
                return err(DepayErrorKind::JpegOverlap {
                    offset: 0,
                    expected: self.next_offset,
                });
            }
            let tables = match self.tables_for(&frag) {
                Ok(t) => t,
                Err(kind) => return err(kind),
            };
            self.ts = Some(ts);
            self.header = Some(h);
            self.tables = Some(tables);
            self.scan.clear();
            self.next_offset = 0;
            self.broken = false;
        } else if self.ts != Some(ts) || self.header.is_none() {
            // The first fragment was lost: the frame is already a loss.
            self.ts = Some(ts);
            self.header = None;
            self.broken = true;
            return Ok(());
        } else if self.header != Some(h) {
            return err(DepayErrorKind::JpegHeaderChanged);
        }
        if self.broken {
            return Ok(());
        }
        if frag.offset > self.next_offset {
            // A hole: a lost packet. Not malformed, but the frame is gone.
            self.broken = true;
            return Ok(());
        }
        if frag.offset < self.next_offset {
            return err(DepayErrorKind::JpegOverlap {
                offset: frag.offset,
                expected: self.next_offset,
            });
        }
        self.scan.put_slice(frag.body);
        self.next_offset += frag.body.len();
        Ok(())
    }

    /// The tables of a first fragment: from Q, in-band, or cached for its Q.
    fn tables_for(&mut self, frag: &Fragment<'_>) -> Result<Tables, DepayErrorKind> {
        let q = frag.header.q;
        if q < 128 {
            let (luma, chroma) = make_tables(q);
            return Ok(Tables {
                precision: 0,
                luma: luma.to_vec(),
                chroma: chroma.to_vec(),
            });
        }
        match frag.tables {
            Some((precision, data)) if !data.is_empty() => {
                let luma_len = if precision & 1 != 0 { 128 } else { 64 };
                let chroma_len = if precision & 2 != 0 { 128 } else { 64 };
                let t = if data.len() >= luma_len + chroma_len {
                    Tables {
                        precision: precision & 3,
                        luma: data[..luma_len].to_vec(),
                        chroma: data[luma_len..luma_len + chroma_len].to_vec(),
                    }
                } else if data.len() == luma_len {
                    // One table for all components (ffmpeg's MJPEG encoder).
                    let luma = data.to_vec();
                    Tables {
                        precision: (precision & 1) * 3,
                        chroma: luma.clone(),
                        luma,
                    }
                } else {
                    return Err(DepayErrorKind::JpegTables {
                        declared: data.len(),
                        needed: luma_len + chroma_len,
                    });
                };
                if q != Q_DYNAMIC {
                    self.cached = Some((q, t.clone()));
                }
                Ok(t)
            }
            _ => match &self.cached {
                Some((cq, t)) if *cq == q && q != Q_DYNAMIC => Ok(t.clone()),
                _ => Err(DepayErrorKind::JpegNoTables { q }),
            },
        }
    }

    fn abandon(&mut self) {
        if self.ts.take().is_some() {
            self.stats.dropped_frames += 1;
        }
        self.header = None;
        self.broken = false;
        self.scan.clear();
        self.next_offset = 0;
    }

    fn finish(&mut self) {
        let (Some(ts), Some(h), Some(t)) = (self.ts, self.header, self.tables.as_ref()) else {
            self.abandon();
            return;
        };
        if self.broken || self.scan.is_empty() {
            self.abandon();
            return;
        }
        let mut out = BytesMut::with_capacity(self.scan.len() + 700);
        write_headers(&mut out, &h, t);
        out.put_slice(&self.scan);
        if !self.scan.ends_with(&[0xff, 0xd9]) {
            out.put_slice(&[0xff, 0xd9]);
        }
        self.ready.push_back(DepacketizedUnit {
            data: out.freeze(),
            timestamp: ts,
            keyframe: true,
            complete: true,
        });
        self.stats.frames += 1;
        self.ts = None;
        self.header = None;
        self.scan.clear();
        self.next_offset = 0;
    }
}

fn parse_fragment(p: &[u8]) -> Result<Fragment<'_>, DepayErrorKind> {
    let main = p
        .get(..MAIN_HEADER_LEN)
        .ok_or(DepayErrorKind::JpegHeaderTruncated(p.len()))?;
    let offset = usize::from(main[1]) << 16 | usize::from(main[2]) << 8 | usize::from(main[3]);
    let (rtp_type, q, width, height) = (main[4], main[5], main[6], main[7]);
    if !matches!(rtp_type & !64, 0 | 1) || rtp_type >= 128 {
        return Err(DepayErrorKind::JpegType(rtp_type));
    }
    if q == 0 || (100..128).contains(&q) {
        return Err(DepayErrorKind::JpegQ(q));
    }
    if width == 0 || height == 0 {
        return Err(DepayErrorKind::JpegSize { width, height });
    }
    let mut pos = MAIN_HEADER_LEN;
    let mut restart_interval = 0;
    if rtp_type >= 64 {
        let r = p
            .get(pos..pos + RESTART_HEADER_LEN)
            .ok_or(DepayErrorKind::JpegHeaderTruncated(p.len()))?;
        restart_interval = u16::from_be_bytes([r[0], r[1]]);
        pos += RESTART_HEADER_LEN;
    }
    let mut tables = None;
    if q >= 128 && offset == 0 {
        let t = p
            .get(pos..pos + QTABLE_HEADER_LEN)
            .ok_or(DepayErrorKind::JpegHeaderTruncated(p.len()))?;
        let (precision, len) = (t[1], usize::from(u16::from_be_bytes([t[2], t[3]])));
        pos += QTABLE_HEADER_LEN;
        let data = p.get(pos..pos + len).ok_or(DepayErrorKind::JpegTables {
            declared: len,
            needed: p.len().saturating_sub(pos),
        })?;
        pos += len;
        tables = Some((precision, data));
    }
    Ok(Fragment {
        header: FrameHeader {
            rtp_type,
            q,
            width,
            height,
            restart_interval,
        },
        offset,
        tables,
        body: &p[pos..],
    })
}

/// Writes SOI, DQT, DRI, SOF0, DHT and SOS for a frame (RFC 2435 appendix B).
fn write_headers(out: &mut BytesMut, h: &FrameHeader, t: &Tables) {
    out.put_slice(&[0xff, 0xd8]);
    let dqt_len = 2 + 1 + t.luma.len() + 1 + t.chroma.len();
    out.put_slice(&[0xff, 0xdb]);
    out.put_u16(dqt_len as u16);
    out.put_u8(if t.precision & 1 != 0 { 0x10 } else { 0x00 });
    out.put_slice(&t.luma);
    out.put_u8(if t.precision & 2 != 0 { 0x11 } else { 0x01 });
    out.put_slice(&t.chroma);
    if h.restart_interval > 0 {
        out.put_slice(&[0xff, 0xdd, 0x00, 0x04]);
        out.put_u16(h.restart_interval);
    }
    let luma_sampling = if h.rtp_type & 1 == 0 { 0x21 } else { 0x22 };
    out.put_slice(&[0xff, 0xc0, 0x00, 17, 8]);
    out.put_u16(u16::from(h.height) * 8);
    out.put_u16(u16::from(h.width) * 8);
    out.put_slice(&[3, 1, luma_sampling, 0, 2, 0x11, 1, 3, 0x11, 1]);
    let dht_len: usize = 2 + STD_HUFFMAN
        .iter()
        .map(|(_, _, v)| 17 + v.len())
        .sum::<usize>();
    out.put_slice(&[0xff, 0xc4]);
    out.put_u16(dht_len as u16);
    for (id, bits, vals) in STD_HUFFMAN {
        out.put_u8(id);
        out.put_slice(bits);
        out.put_slice(vals);
    }
    out.put_slice(&[0xff, 0xda, 0x00, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpHeader;
    use bytes::Bytes;

    /// A small but well-formed baseline JPEG skeleton around `scan`.
    pub(crate) fn jpeg(
        width: u16,
        height: u16,
        sampling: u8,
        luma: &[u8],
        chroma: &[u8],
        dri: u16,
        scan: &[u8],
    ) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_slice(&[0xff, 0xd8, 0xff, 0xe0, 0, 4, b'J', b'F']);
        let t = Tables {
            precision: 0,
            luma: luma.to_vec(),
            chroma: chroma.to_vec(),
        };
        let h = FrameHeader {
            rtp_type: if sampling == 0x22 { 1 } else { 0 },
            q: 255,
            width: 0,
            height: 0,
            restart_interval: dri,
        };
        let mut hdr = BytesMut::new();
        write_headers(&mut hdr, &h, &t);
        // Patch the real size into SOF0 (write_headers uses 8-pixel units).
        let sof = hdr
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("SOF0");
        hdr[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        hdr[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        hdr[sof + 11] = sampling;
        b.put_slice(&hdr[2..]);
        b.put_slice(scan);
        b.put_slice(&[0xff, 0xd9]);
        b.to_vec()
    }

    fn scan(len: usize) -> Vec<u8> {
        // Byte-stuffed-looking data without markers: no 0xff at all.
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn packetize(p: &mut JpegPayloader, data: &[u8], seq0: u16, ts: u32) -> Vec<RtpPacket> {
        let mut pkts = Vec::new();
        let mut seq = seq0;
        p.packetize(data, |parts, marker| {
            pkts.push(RtpPacket {
                header: RtpHeader {
                    marker,
                    payload_type: PT_JPEG,
                    sequence: seq,
                    timestamp: ts,
                    ssrc: 0x1234,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(parts.concat()),
                padding: 0,
            });
            seq = seq.wrapping_add(1);
        })
        .expect("packetize");
        pkts
    }

    fn depay_all(d: &mut JpegDepacketizer, pkts: &[RtpPacket]) -> Vec<DepacketizedUnit> {
        for p in pkts {
            let _ = d.push(p);
        }
        std::iter::from_fn(|| d.pop()).collect()
    }

    #[test]
    fn make_tables_matches_libjpeg_scaling() {
        // Q 50 is the standard table itself, in zigzag order.
        let (l, c) = make_tables(50);
        assert_eq!(&l[..6], &[16, 11, 12, 14, 12, 10]);
        assert_eq!(&c[..4], &[17, 18, 18, 24]);
        // Q 85: scale 30; 16 * 30 / 100 = 4.8 → 5.
        let (l, _) = make_tables(85);
        assert_eq!(l[0], 5);
        // Low Q clamps at 255, high Q at 1.
        assert_eq!(make_tables(1).0[63], 255);
        assert_eq!(make_tables(99).0[0], 1);
        assert_eq!(standard_q(&make_tables(73).0, &make_tables(73).1), Some(73));
        assert_eq!(standard_q(&[1; 64], &[1; 64]), None);
    }

    #[test]
    fn round_trip_with_standard_tables_sends_q_and_no_tables() {
        let (l, c) = make_tables(85);
        let body = scan(5000);
        let src = jpeg(320, 240, 0x22, &l, &c, 0, &body);
        let mut p = JpegPayloader::new(1200).expect("mtu");
        let pkts = packetize(&mut p, &src, 65534, 9000);
        assert_eq!(p.last_q(), Some(85));
        assert_eq!(pkts.len(), 5000usize.div_ceil(1200 - 12 - 8));
        let mut expect_off = 0;
        for (i, pkt) in pkts.iter().enumerate() {
            assert!(pkt.payload.len() + 12 <= 1200);
            let h = &pkt.payload[..8];
            let off = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
            assert_eq!(off, expect_off);
            assert_eq!(&h[4..], &[1, 85, 40, 30]);
            assert_eq!(pkt.header.marker, i + 1 == pkts.len());
            expect_off += pkt.payload.len() - 8;
        }
        let mut d = JpegDepacketizer::new();
        let out = depay_all(&mut d, &pkts);
        assert_eq!(out.len(), 1);
        let u = &out[0];
        assert!(u.keyframe && u.complete);
        assert_eq!(u.timestamp, 9000);
        // The rebuilt JPEG parses back to the same essentials.
        let info = parse_jpeg(&u.data).expect("rebuilt JPEG parses");
        assert_eq!((info.width, info.height, info.rtp_type), (320, 240, 1));
        assert_eq!(info.luma.data, &l[..]);
        assert_eq!(info.chroma.data, &c[..]);
        assert_eq!(info.scan, &body[..]);
        assert_eq!(d.stats().frames, 1);
    }

    #[test]
    fn round_trip_with_custom_tables_and_restart_interval() {
        let l: Vec<u8> = (1..=64).collect();
        let c: Vec<u8> = (2..=65).collect();
        let body = scan(3000);
        let src = jpeg(640, 480, 0x21, &l, &c, 40, &body);
        let mut p = JpegPayloader::new(500).expect("mtu");
        let pkts = packetize(&mut p, &src, 7, 1);
        assert_eq!(p.last_q(), Some(255));
        let first = &pkts[0].payload;
        assert_eq!(first[4], 64, "type 0 + restart");
        assert_eq!(&first[8..12], &[0, 40, 0xff, 0xff]);
        assert_eq!(&first[12..16], &[0, 0, 0, 128]);
        assert_eq!(&first[16..80], &l[..]);
        // Later packets carry the restart header but no tables.
        assert_eq!(pkts[1].payload[4], 64);
        assert_eq!(&pkts[1].payload[8..12], &[0, 40, 0xff, 0xff]);
        let mut d = JpegDepacketizer::new();
        let out = depay_all(&mut d, &pkts);
        assert_eq!(out.len(), 1);
        let info = parse_jpeg(&out[0].data).expect("parses");
        assert_eq!(
            (
                info.width,
                info.height,
                info.rtp_type,
                info.restart_interval
            ),
            (640, 480, 0, 40)
        );
        assert_eq!(info.luma.data, &l[..]);
        assert_eq!(info.chroma.data, &c[..]);
        assert_eq!(info.scan, &body[..]);
    }

    #[test]
    fn payloader_refuses_what_rfc2435_cannot_carry() {
        let (l, c) = make_tables(50);
        let mut p = JpegPayloader::new(1200).expect("mtu");
        let big = jpeg(2048, 720, 0x22, &l, &c, 0, &scan(10));
        let err = p.packetize(&big, |_, _| {}).expect_err("too wide");
        assert_eq!(
            err,
            PayloaderError::Jpeg(JpegError::TooLarge {
                width: 2048,
                height: 720
            })
        );
        assert!(err.to_string().contains("2040"));
        let ok = jpeg(2040, 2040, 0x22, &l, &c, 0, &scan(10));
        assert!(p.packetize(&ok, |_, _| {}).is_ok());
        let s444 = jpeg(64, 64, 0x11, &l, &c, 0, &scan(10));
        assert!(matches!(
            p.packetize(&s444, |_, _| {}),
            Err(PayloaderError::Jpeg(JpegError::Unsupported(_)))
        ));
        assert_eq!(
            p.packetize(b"not a jpeg", |_, _| {}),
            Err(PayloaderError::Jpeg(JpegError::NotJpeg))
        );
        for cut in [3, 10, 30, 100, 300] {
            let src = jpeg(64, 64, 0x22, &l, &c, 0, &scan(10));
            let _ = p.packetize(&src[..cut], |_, _| {});
        }
        assert!(JpegPayloader::new(100).is_err());
    }

    fn frames(n: u32, mtu: usize) -> Vec<Vec<RtpPacket>> {
        let (l, c) = make_tables(60);
        let mut p = JpegPayloader::new(mtu).expect("mtu");
        let mut seq = 100u16;
        (0..n)
            .map(|f| {
                let src = jpeg(160, 120, 0x22, &l, &c, 0, &scan(2000 + f as usize));
                let pk = packetize(&mut p, &src, seq, f * 3000);
                seq = seq.wrapping_add(pk.len() as u16);
                pk
            })
            .collect()
    }

    #[test]
    fn a_hole_drops_the_frame_and_the_next_one_survives() {
        let f = frames(3, 600);
        let mut d = JpegDepacketizer::new();
        let mut all: Vec<RtpPacket> = Vec::new();
        all.extend(f[0].iter().cloned());
        // Frame 1 loses a middle packet.
        all.extend(
            f[1].iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, p)| p.clone()),
        );
        all.extend(f[2].iter().cloned());
        let out = depay_all(&mut d, &all);
        assert_eq!(
            out.iter().map(|u| u.timestamp).collect::<Vec<_>>(),
            [0, 6000]
        );
        assert_eq!(d.stats().dropped_frames, 1);
        assert_eq!(d.stats().dropped_packets, 0);
    }

    #[test]
    fn lost_first_or_last_packet_drops_the_frame() {
        let f = frames(3, 600);
        let mut d = JpegDepacketizer::new();
        let mut all: Vec<RtpPacket> = Vec::new();
        all.extend(f[0][1..].iter().cloned());
        let n = f[1].len();
        all.extend(f[1][..n - 1].iter().cloned());
        all.extend(f[2].iter().cloned());
        let out = depay_all(&mut d, &all);
        assert_eq!(out.iter().map(|u| u.timestamp).collect::<Vec<_>>(), [6000]);
        assert_eq!(d.stats().dropped_frames, 2);
    }

    #[test]
    fn overlaps_lies_and_nonsense_are_errors_not_panics() {
        let f = frames(1, 600);
        let mut d = JpegDepacketizer::new();
        // Overlap: packet 1 twice.
        let mut pk = f[0].clone();
        pk.insert(2, f[0][1].clone());
        for p in &pk {
            let r = d.push(p);
            if p.header.sequence == f[0][1].header.sequence && r.is_err() {
                assert!(matches!(
                    r.as_ref().map_err(|e| &e.kind),
                    Err(DepayErrorKind::JpegOverlap { .. })
                ));
            }
        }
        assert!(d.pop().is_none());
        assert_eq!(d.stats().dropped_frames, 1);

        let mk = |payload: Vec<u8>, marker: bool| RtpPacket {
            header: RtpHeader {
                marker,
                payload_type: 26,
                sequence: 1,
                timestamp: 77,
                ssrc: 5,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(payload),
            padding: 0,
        };
        let kind = |d: &mut JpegDepacketizer, payload: Vec<u8>| {
            d.push(&mk(payload, true)).expect_err("bad").kind
        };
        let mut d = JpegDepacketizer::new();
        assert_eq!(
            kind(&mut d, vec![0; 5]),
            DepayErrorKind::JpegHeaderTruncated(5)
        );
        assert_eq!(
            kind(&mut d, vec![0, 0, 0, 0, 3, 50, 10, 10, 1]),
            DepayErrorKind::JpegType(3)
        );
        assert_eq!(
            kind(&mut d, vec![0, 0, 0, 0, 1, 110, 10, 10, 1]),
            DepayErrorKind::JpegQ(110)
        );
        assert_eq!(
            kind(&mut d, vec![0, 0, 0, 0, 1, 50, 0, 10, 1]),
            DepayErrorKind::JpegSize {
                width: 0,
                height: 10
            }
        );
        // Offset far past what a 16x16 picture can need.
        assert!(matches!(
            kind(&mut d, vec![0, 0x10, 0, 0, 1, 50, 2, 2, 1]),
            DepayErrorKind::JpegOffset { .. }
        ));
        // In-band table length longer than the packet.
        let mut lie = vec![0, 0, 0, 0, 1, 255, 10, 10, 0, 0, 0x10, 0];
        lie.extend([1; 100]);
        assert!(matches!(
            kind(&mut d, lie),
            DepayErrorKind::JpegTables { .. }
        ));
        // Table length neither one nor two tables.
        let mut short = vec![0, 0, 0, 0, 1, 255, 10, 10, 0, 0, 0, 100];
        short.extend([1; 120]);
        assert_eq!(
            kind(&mut d, short),
            DepayErrorKind::JpegTables {
                declared: 100,
                needed: 128
            }
        );
        // Q 200 with no tables and none cached.
        assert_eq!(
            kind(&mut d, vec![0, 0, 0, 0, 1, 200, 10, 10, 0, 0, 0, 0, 5]),
            DepayErrorKind::JpegNoTables { q: 200 }
        );
        assert!(d.pop().is_none());
        let e = d.push(&mk(vec![0; 3], true)).expect_err("bad");
        assert!(e.to_string().contains("ssrc 0x00000005 seq 1 ts 77"), "{e}");
    }

    #[test]
    fn one_in_band_table_serves_all_components() {
        // ffmpeg's RTP muxer sends one 64-byte table when its encoder uses one.
        let l: Vec<u8> = (3..=66).collect();
        let mut payload = vec![0, 0, 0, 0, 1, 255, 2, 2, 0, 0, 0, 64];
        payload.extend(&l);
        payload.extend([9, 8, 7]);
        let pkt = RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 26,
                sequence: 1,
                timestamp: 1,
                ssrc: 5,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(payload),
            padding: 0,
        };
        let mut d = JpegDepacketizer::new();
        d.push(&pkt).expect("valid");
        let u = d.pop().expect("a frame");
        let info = parse_jpeg(&u.data).expect("parses");
        assert_eq!(info.luma.data, &l[..]);
        assert_eq!(info.chroma.data, &l[..]);
        assert_eq!((info.width, info.height), (16, 16));
    }

    #[test]
    fn tables_for_q_128_to_254_are_cached() {
        let l: Vec<u8> = (1..=64).collect();
        let mut first = vec![0, 0, 0, 0, 1, 200, 2, 2, 0, 0, 0, 128];
        first.extend(&l);
        first.extend(&l);
        first.extend([1, 2, 3]);
        let later = vec![0, 0, 0, 0, 1, 200, 2, 2, 0, 0, 0, 0, 4, 5, 6];
        let mut d = JpegDepacketizer::new();
        for (i, payload) in [first, later].into_iter().enumerate() {
            let pkt = RtpPacket {
                header: RtpHeader {
                    marker: true,
                    payload_type: 26,
                    sequence: i as u16,
                    timestamp: i as u32 * 10,
                    ssrc: 5,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(payload),
                padding: 0,
            };
            d.push(&pkt).expect("valid");
        }
        let out: Vec<_> = std::iter::from_fn(|| d.pop()).collect();
        assert_eq!(out.len(), 2);
        let info = parse_jpeg(&out[1].data).expect("parses");
        assert_eq!(info.luma.data, &l[..]);
        assert_eq!(info.scan, &[4, 5, 6]);
    }

    #[test]
    fn sender_to_receiver_round_trip_through_rtp_sessions() {
        use crate::receiver::{ReceiverConfig, RtpReceiver};
        use crate::sender::{RtpSender, SenderConfig, TransmitKind};
        use pstream_core::{Codec, EncodedUnit, PipelineClock};
        use std::time::{Duration, Instant};

        let t0 = Instant::now();
        let clock = PipelineClock::with_origin(t0, 1_700_000_000_000_000);
        let cfg = SenderConfig::new(Codec::Mjpeg, clock, "tx");
        assert_eq!((cfg.payload_type, cfg.clock_rate), (PT_JPEG, 90_000));
        let mut tx = RtpSender::with_seed(cfg, 1).expect("sender");
        let mut rcfg = ReceiverConfig::new(Codec::Mjpeg, "rx");
        rcfg.latency = Duration::ZERO;
        let mut rx = RtpReceiver::with_seed(rcfg, 2).expect("receiver");
        let (l, c) = make_tables(90);
        let mut sent = Vec::new();
        for f in 0..5u32 {
            let at = t0 + Duration::from_millis(u64::from(f) * 33);
            let data = jpeg(352, 288, 0x22, &l, &c, 0, &scan(4000 + f as usize * 100));
            let unit = EncodedUnit {
                codec: Codec::Mjpeg,
                keyframe: true,
                pts: at - t0,
                dts: None,
                capture: at,
                data: Bytes::from(data.clone()),
            };
            tx.push(at, &unit).expect("push");
            while let Some(t) = tx.poll_transmit() {
                if t.kind == TransmitKind::Rtp {
                    let p = RtpPacket::parse(t.data.clone()).expect("rtp");
                    assert_eq!(p.header.payload_type, 26);
                    rx.handle_rtp(at, &t.data).expect("rtp");
                }
            }
            sent.push(data);
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.poll_unit()).collect();
        assert_eq!(got.len(), 5);
        for (u, src) in got.iter().zip(&sent) {
            assert!(u.keyframe && u.complete);
            let a = parse_jpeg(&u.data).expect("rebuilt");
            let b = parse_jpeg(src).expect("source");
            assert_eq!(
                (a.width, a.height, a.rtp_type),
                (b.width, b.height, b.rtp_type)
            );
            assert_eq!((a.luma, a.chroma, a.scan), (b.luma, b.chroma, b.scan));
        }
        let ts: Vec<u32> = got.iter().map(|u| u.rtp_timestamp).collect();
        assert!(ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 33 * 90));
    }

    #[test]
    fn random_payloads_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(11);
        let mut d = JpegDepacketizer::new();
        let good = frames(2, 300);
        for i in 0..50_000u32 {
            let mut payload: Vec<u8> = if rng.random_bool(0.5) {
                let f = &good[rng.random_range(0..2)];
                f[rng.random_range(0..f.len())].payload.to_vec()
            } else {
                (0..rng.random_range(0..40)).map(|_| rng.random()).collect()
            };
            for _ in 0..rng.random_range(0..3) {
                if !payload.is_empty() {
                    let at = rng.random_range(0..payload.len());
                    payload[at] = rng.random();
                }
            }
            let pkt = RtpPacket {
                header: RtpHeader {
                    marker: rng.random_bool(0.2),
                    payload_type: 26,
                    sequence: i as u16,
                    timestamp: rng.random_range(0..4) * 3000,
                    ssrc: 1,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(payload),
                padding: 0,
            };
            let _ = d.push(&pkt);
            while let Some(u) = d.pop() {
                assert!(u.data.starts_with(&[0xff, 0xd8]));
            }
        }
        let mut p = JpegPayloader::new(200).expect("mtu");
        for _ in 0..5_000 {
            let mut src = good[0][0].payload.to_vec();
            src.splice(0..0, [0xff, 0xd8]);
            let n = rng.random_range(0..src.len());
            src[n] = rng.random();
            let _ = p.packetize(&src, |parts, _| {
                assert!(parts.iter().map(|p| p.len()).sum::<usize>() + 12 <= 200);
            });
        }
    }
}
