//! Baseline JPEG (JFIF) structure: reading the markers RFC 2435 needs (SOI,
//! DQT, DHT, SOF0/1, DRI, SOS) and refusing what it cannot carry, and
//! writing the headers a receiver puts back in front of a scan.
//!
//! RFC 2435 sends no JPEG headers: only the scan, the picture size, a type
//! for the sampling and the quantization tables (by Q or in-band). The
//! Huffman tables are always the standard ones of the JPEG standard's
//! annex K.

use bytes::{BufMut, BytesMut};

use super::tables::{QuantTable, Tables};
use crate::payload::error::{JpegError, JpegUnsupported};
use crate::payload::types::{MAX_DIMENSION, MAX_SCAN_LEN};

/// Luma sampling factors (H << 4 | V) of RFC 2435 type 0: 4:2:2.
const LUMA_SAMPLING_422: u8 = 0x21;
/// Luma sampling factors (H << 4 | V) of RFC 2435 type 1: 4:2:0.
const LUMA_SAMPLING_420: u8 = 0x22;

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
            return Err(unsupported(JpegUnsupported::EoiBeforeScan));
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
                        pq => return Err(unsupported(JpegUnsupported::DqtPrecision(pq))),
                    };
                    let size = if sixteen_bit { 128 } else { 64 };
                    let tq = pq_tq & 0x0f;
                    if tq > 3 {
                        return Err(unsupported(JpegUnsupported::DqtTableId(tq)));
                    }
                    let id = usize::from(tq);
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
                    return Err(unsupported(JpegUnsupported::SamplePrecision(precision)));
                }
                if n != 3 {
                    return Err(unsupported(JpegUnsupported::Components(n)));
                }
                let c = seg
                    .get(6..15)
                    .ok_or(JpegError::Truncated { what: "SOF", at })?;
                let comps = [[c[0], c[1], c[2]], [c[3], c[4], c[5]], [c[6], c[7], c[8]]];
                frame = Some((u32::from(w), u32::from(h), comps));
            }
            0xc2 | 0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => {
                return Err(unsupported(JpegUnsupported::NotBaseline(marker)));
            }
            0xc4 => check_standard_huffman(seg, at)?,
            0xdd => {
                restart_interval = be16(seg, 0).ok_or(JpegError::Truncated { what: "DRI", at })?;
            }
            0xda => {
                let Some((width, height, comps)) = frame else {
                    return Err(unsupported(JpegUnsupported::ScanBeforeFrame));
                };
                let scan_components = seg.first().copied().unwrap_or(0);
                if scan_components != 3 {
                    return Err(unsupported(JpegUnsupported::ScanComponents(
                        scan_components,
                    )));
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
        return Err(unsupported(JpegUnsupported::ZeroSize));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(JpegError::TooLarge { width, height });
    }
    let rtp_type = match comps[0][1] {
        LUMA_SAMPLING_422 => 0,
        LUMA_SAMPLING_420 => 1,
        other => return Err(unsupported(JpegUnsupported::LumaSampling(other))),
    };
    let (cb, cr) = (comps[1], comps[2]);
    if cb[1] != 0x11 || cr[1] != 0x11 {
        return Err(unsupported(JpegUnsupported::ChromaSampling {
            cb: cb[1],
            cr: cr[1],
        }));
    }
    if cb[2] != cr[2] {
        return Err(unsupported(JpegUnsupported::ChromaTables {
            cb: cb[2],
            cr: cr[2],
        }));
    }
    let table = |id: u8| {
        tables
            .get(usize::from(id))
            .copied()
            .flatten()
            .ok_or(JpegError::MissingTable(id))
    };
    if scan.is_empty() {
        return Err(unsupported(JpegUnsupported::EmptyScan));
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

fn unsupported(what: JpegUnsupported) -> JpegError {
    JpegError::Unsupported(what)
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
            return Err(unsupported(JpegUnsupported::NonStandardHuffman(*tc_th)));
        }
        s = &rest[16 + n..];
    }
    Ok(())
}

/// The luma sampling factors of an RFC 2435 type (the restart flag, 64, ignored).
pub(crate) fn luma_sampling(rtp_type: u8) -> u8 {
    if rtp_type & 1 == 0 {
        LUMA_SAMPLING_422
    } else {
        LUMA_SAMPLING_420
    }
}

/// Writes SOI, DQT, DRI, SOF0, DHT and SOS for a frame (RFC 2435 appendix B):
/// `width` x `height` pixels, luma sampled `luma_sampling` (H << 4 | V) over
/// 1x1 chroma, a restart interval if non-zero, the standard Huffman tables.
pub(crate) fn write_headers(
    out: &mut BytesMut,
    width: u16,
    height: u16,
    luma_sampling: u8,
    restart_interval: u16,
    t: &Tables,
) {
    out.put_slice(&[0xff, 0xd8]);
    let dqt_len = 2 + 1 + t.luma.len() + 1 + t.chroma.len();
    out.put_slice(&[0xff, 0xdb]);
    out.put_u16(dqt_len as u16);
    out.put_u8(if t.precision & 1 != 0 { 0x10 } else { 0x00 });
    out.put_slice(&t.luma);
    out.put_u8(if t.precision & 2 != 0 { 0x11 } else { 0x01 });
    out.put_slice(&t.chroma);
    if restart_interval > 0 {
        out.put_slice(&[0xff, 0xdd, 0x00, 0x04]);
        out.put_u16(restart_interval);
    }
    out.put_slice(&[0xff, 0xc0, 0x00, 17, 8]);
    out.put_u16(height);
    out.put_u16(width);
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

/// Small well-formed JPEGs for the tests of the RTP side.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

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
        let mut hdr = BytesMut::new();
        write_headers(&mut hdr, width, height, sampling, dri, &t);
        b.put_slice(&hdr[2..]);
        b.put_slice(scan);
        b.put_slice(&[0xff, 0xd9]);
        b.to_vec()
    }

    /// Scan-like bytes: byte-stuffed-looking data without markers, no 0xff at all.
    pub(crate) fn scan(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }
}
