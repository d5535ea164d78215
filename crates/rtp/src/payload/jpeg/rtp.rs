//! The RTP side of RFC 2435: its headers, a payloader that splits baseline
//! JPEGs into fragments, and a depacketizer that rebuilds complete JFIF
//! images from them.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::jfif::{luma_sampling, parse_jpeg, write_headers};
use super::tables::{QChooser, Tables, Q_DYNAMIC};
use crate::packet::{RtpPacket, RTP_HEADER_LEN};
use crate::payload::error::{DepayError, DepayErrorKind, PayloaderError};
use crate::payload::traits::{Depayloader, Payloader};
use crate::payload::types::{DepacketizedUnit, MAX_SCAN_LEN};

/// Length of the RFC 2435 main JPEG header.
pub const MAIN_HEADER_LEN: usize = 8;
/// Length of the restart marker header (types 64..=127).
pub const RESTART_HEADER_LEN: usize = 4;
/// Length of the quantization table header (Q 128..=255, first packet).
pub const QTABLE_HEADER_LEN: usize = 4;
/// Scan bytes a frame may hold per pixel before the depacketizer gives up on it.
const MAX_BYTES_PER_PIXEL: usize = 8;

/// Smallest payloader MTU: headers, two 8-bit tables and one byte of scan.
const MIN_MTU: usize =
    RTP_HEADER_LEN + MAIN_HEADER_LEN + RESTART_HEADER_LEN + QTABLE_HEADER_LEN + 128 + 1;

/// Splits baseline JPEGs into RFC 2435 payloads.
#[derive(Debug)]
pub struct JpegPayloader {
    max_payload: usize,
    q: QChooser,
}

impl JpegPayloader {
    /// A payloader whose packets, with a 12-byte RTP header, fit in `mtu` bytes.
    pub fn new(mtu: usize) -> Result<Self, PayloaderError> {
        if mtu < MIN_MTU {
            return Err(PayloaderError::MtuTooSmall { mtu, min: MIN_MTU });
        }
        Ok(Self {
            max_payload: mtu - RTP_HEADER_LEN,
            q: QChooser::default(),
        })
    }

    /// The Q value the last frame went out with (`None` before the first).
    pub fn last_q(&self) -> Option<u8> {
        self.q.last_q()
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
        let q = self.q.choose(info.luma, info.chroma);
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
            return Ok(Tables::for_q(q));
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
        write_headers(
            &mut out,
            u16::from(h.width) * 8,
            u16::from(h.height) * 8,
            luma_sampling(h.rtp_type),
            h.restart_interval,
            t,
        );
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

impl Payloader for JpegPayloader {
    fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        unit: &[u8],
        emit: F,
    ) -> Result<usize, PayloaderError> {
        JpegPayloader::packetize(self, unit, emit)
    }
}

impl Depayloader for JpegDepacketizer {
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        JpegDepacketizer::push(self, pkt)
    }

    fn pop(&mut self) -> Option<DepacketizedUnit> {
        JpegDepacketizer::pop(self)
    }

    fn flush(&mut self) {
        JpegDepacketizer::flush(self);
    }
}

#[cfg(test)]
mod tests;
