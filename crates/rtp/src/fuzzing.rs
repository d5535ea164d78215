//! Structured fuzzing harnesses, built only under `--cfg fuzzing` (as
//! cargo-fuzz builds): each fuzz target hands its input to one function here,
//! which derives a sequence of operations from it with `arbitrary` and checks
//! invariants after every step.
//!
//! - [`h264_depay`], [`jpeg_depay`], [`opus_depay`]: packets with plausible
//!   headers and payloads whose fields lie (sequence jumps, marker bits,
//!   FU-A start/end misuse, STAP-A lengths, JPEG offsets and tables, sizes at
//!   the caps), interleaved with raw bytes, into the depacketizers.
//! - [`rtcp_parse`]: RTCP packets built from fields (and raw bytes) through
//!   the writer and the parser, and what parses into a
//!   [`RateController`] (report blocks and REMBs that lie: the target stays
//!   within its bounds).
//! - [`rtp_receiver`]: an [`RtpReceiver`] fed RTP and RTCP from a small set
//!   of addresses behind a [`PeerFilter`], with steps of time.
//! - [`srtp_unprotect`]: SRTP and SRTCP round trips between two contexts,
//!   with tampering, replays, sequence and ROC jumps, and raw bytes.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::{Bytes, BytesMut};
use pstream_core::{Codec, NtpTime};

use crate::jpeg::parse_jpeg;
use crate::packet::{RtpHeader, RtpPacket};
use crate::payload::{MAX_H264_UNIT, MAX_OPUS_PACKET, MAX_SCAN_LEN};
use crate::rate::{DeliveryEstimator, RateConfig, RateController};
use crate::receiver::{ReceiverConfig, ReceiverStats, RtpReceiver};
use crate::rtcp::{
    parse_compound, write_compound, FirEntry, NackPair, ReportBlock, RtcpPacket, SdesChunk,
    MAX_COUNT, MAX_NACK_PAIRS,
};
use crate::rtx::{RtxReceiveConfig, PT_RTX};
use crate::srtp::{MasterKey, SrtpContext, SrtpProfile, SrtpStats};
use crate::PeerFilter;
use crate::{H264Depacketizer, H264Payloader, JpegDepacketizer, JpegPayloader, OpusDepacketizer};

/// How the sequence number moves before a packet.
fn seq_step(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(match u.int_in_range(0..=11)? {
        0..=7 => 1,
        8 => 0,
        9 => 2,
        10 => u16::MAX, // one back
        _ => u.arbitrary()?,
    })
}

/// How the RTP timestamp moves before a packet.
fn ts_step(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0..=7)? {
        0..=4 => 0,
        5 | 6 => 3000,
        _ => u.arbitrary()?,
    })
}

/// A payload of `len` bytes after `head`, filled with `fill`.
fn filled(head: &[u8], len: usize, fill: u8) -> Vec<u8> {
    let mut p = head.to_vec();
    p.resize(head.len().max(len), fill);
    p
}

/// An H.264 RTP payload: a single NAL, a STAP-A whose lengths may lie, an
/// FU-A with any start/end bits, or raw bytes.
fn h264_payload(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let nri = 0x60;
    Ok(match u.int_in_range(0..=9)? {
        0..=2 => {
            let t = [1u8, 5, 6, 7, 8, 9, 0, 25, 29, 30][u.choose_index(10)?];
            let len = usize::from(u.int_in_range(0..=1500u16)?);
            filled(&[nri | t], len, u.arbitrary::<u8>()? | 1)
        }
        3 | 4 => {
            let mut p = vec![nri | 24];
            for _ in 0..u.int_in_range(0..=6)? {
                let t = [1u8, 5, 7, 8][u.choose_index(4)?];
                let len = u.int_in_range(0..=200u16)?;
                let lie: i16 = if u.ratio(1, 6)? { u.arbitrary()? } else { 0 };
                p.extend((len as i16).wrapping_add(lie).to_be_bytes());
                if len > 0 {
                    p.push(nri | t);
                    p.extend(std::iter::repeat_n(7u8, usize::from(len) - 1));
                }
            }
            p
        }
        5..=8 => {
            let t = [1u8, 5, 7, 0, 24, 28][u.choose_index(6)?];
            let fu = u8::from(u.arbitrary::<bool>()?) << 7
                | u8::from(u.ratio(1, 3)?) << 6
                | t
                | if u.ratio(1, 16)? { 0x20 } else { 0 };
            let len = usize::from(u.int_in_range(0..=1400u16)?);
            filled(&[nri | 28, fu], len, 0x42)
        }
        _ => u.arbitrary()?,
    })
}

/// An RFC 2435 payload: main header (offset mostly continuing the frame),
/// restart header for types 64-65, in-band tables for Q >= 128 at offset 0,
/// then scan bytes; or raw bytes.
fn jpeg_payload(u: &mut Unstructured<'_>, next_offset: &mut u32) -> Result<Vec<u8>> {
    if u.ratio(1, 10)? {
        return u.arbitrary();
    }
    let offset = match u.int_in_range(0..=7)? {
        0..=3 => *next_offset,
        4 | 5 => 0,
        6 => next_offset.wrapping_add(u.int_in_range(1..=64)?),
        _ => u.arbitrary::<u32>()?,
    } & 0xff_ffff;
    let rtp_type = [0u8, 1, 64, 65, 2, 127][u.choose_index(6)?];
    let q = [50u8, 99, 128, 200, 255, 0, 110][u.choose_index(7)?];
    let (width, height) = if u.ratio(1, 4)? {
        (u.arbitrary()?, u.arbitrary()?)
    } else {
        (u.int_in_range(1..=4)?, u.int_in_range(1..=4)?)
    };
    let mut p = vec![0];
    p.extend(&offset.to_be_bytes()[1..]);
    p.extend([rtp_type, q, width, height]);
    if rtp_type >= 64 {
        p.extend(u.arbitrary::<u16>()?.to_be_bytes());
        p.extend([0xff, 0xff]);
    }
    if q >= 128 && offset == 0 {
        let precision = if u.ratio(1, 4)? {
            u.int_in_range(0..=3)?
        } else {
            0
        };
        let len: u16 = [0u16, 64, 128, 192, 256, 7][u.choose_index(6)?];
        let declared = if u.ratio(1, 8)? { u.arbitrary()? } else { len };
        p.extend([0, precision]);
        p.extend(declared.to_be_bytes());
        p.extend((0..len).map(|i| (i % 50 + 1) as u8));
    }
    let body = usize::from(u.int_in_range(0..=1200u16)?);
    let start = p.len();
    p.resize(start + body, 0x55);
    if body >= 2 && u.ratio(1, 3)? {
        p[start + body - 2..].copy_from_slice(&[0xff, 0xd9]);
    }
    *next_offset = offset + body as u32;
    Ok(p)
}

/// For an RFC 2435 payload sent at `offset` (its own when `None`): that
/// offset and the length of its headers, if it has them all.
fn jpeg_header_len(p: &[u8], offset: Option<u32>) -> Option<(u32, usize)> {
    let main = p.get(..8)?;
    let at = offset.unwrap_or(u32::from_be_bytes([0, main[1], main[2], main[3]])) & 0xff_ffff;
    let mut len = 8;
    if main[4] >= 64 {
        len += 4;
    }
    if main[5] >= 128 && at == 0 {
        let t = p.get(len..len + 4)?;
        len += 4 + usize::from(u16::from_be_bytes([t[2], t[3]]));
    }
    (len <= p.len()).then_some((at, len))
}

/// What happens next to a depacketizer.
#[derive(Debug)]
pub enum DepayStep {
    /// One packet with a plausible header.
    Packet {
        /// Added to the sequence number (wrapping).
        seq_step: u16,
        /// Added to the timestamp (wrapping).
        ts_step: u32,
        /// The marker bit.
        marker: bool,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// `count` packets of one payload of `len` bytes in sequence (no marker
    /// but maybe on the last): an access unit that grows to the caps.
    Repeat {
        /// The payload's first bytes (a payload header).
        head: Vec<u8>,
        /// Its length.
        len: u32,
        /// How many packets.
        count: u16,
        /// The last one has the marker bit.
        marker_last: bool,
    },
    /// Any bytes parsed as an RTP packet.
    Raw(Vec<u8>),
    /// The sender went away.
    Flush,
}

/// Which payload format a [`DepayStep`] is built for.
#[derive(Debug, Clone, Copy)]
enum Format {
    H264,
    Jpeg,
    Opus,
}

fn depay_step(u: &mut Unstructured<'_>, f: Format, jpeg_next: &mut u32) -> Result<DepayStep> {
    Ok(match u.int_in_range(0..=31)? {
        0..=24 => DepayStep::Packet {
            seq_step: seq_step(u)?,
            ts_step: ts_step(u)?,
            marker: u.ratio(1, 3)?,
            payload: match f {
                Format::H264 => h264_payload(u)?,
                Format::Jpeg => jpeg_payload(u, jpeg_next)?,
                Format::Opus => {
                    let len = if u.ratio(1, 8)? {
                        MAX_OPUS_PACKET + usize::from(u.int_in_range(0..=2u8)?) - 1
                    } else {
                        usize::from(u.int_in_range(0..=400u16)?)
                    };
                    filled(&[u.arbitrary()?], len, 3)
                }
            },
        },
        25 => DepayStep::Repeat {
            head: match f {
                // FU-A middles, or a start then middles via the first packet.
                Format::H264 => vec![0x60 | 28, [0x81u8, 0x01, 0x41][u.choose_index(3)?]],
                Format::Jpeg => jpeg_payload(u, jpeg_next)?,
                Format::Opus => vec![0x78],
            },
            len: u.int_in_range(0..=65_000)?,
            count: u.int_in_range(1..=300)?,
            marker_last: u.arbitrary()?,
        },
        26..=29 => DepayStep::Raw(u.arbitrary()?),
        _ => DepayStep::Flush,
    })
}

/// The counters every depacketizer is checked by: bytes in, packets in,
/// bytes out, units out.
#[derive(Debug, Default)]
struct Flow {
    bytes_in: usize,
    packets_in: usize,
    bytes_out: usize,
    units_out: usize,
}

/// Drives one depacketizer: `push` feeds a packet, `pop` takes a unit,
/// `check` looks at each unit and the state after each step.
fn drive_depay<D>(
    data: &[u8],
    f: Format,
    d: &mut D,
    push: impl Fn(&mut D, &RtpPacket),
    pop: impl Fn(&mut D) -> Option<crate::DepacketizedUnit>,
    flush: impl Fn(&mut D),
    mut check: impl FnMut(&D, &crate::DepacketizedUnit, &Flow, Option<&RtpPacket>),
    mut after: impl FnMut(&D, &Flow),
) {
    let mut u = Unstructured::new(data);
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut jpeg_next = 0u32;
    let mut flow = Flow::default();
    let pt = match f {
        Format::H264 => 96,
        Format::Jpeg => 26,
        Format::Opus => 111,
    };
    let packet = |seq, ts, marker, payload: Bytes| RtpPacket {
        header: RtpHeader {
            marker,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
        },
        csrcs: Vec::new(),
        extension: None,
        payload,
        padding: 0,
    };
    while !u.is_empty() {
        let Ok(step) = depay_step(&mut u, f, &mut jpeg_next) else {
            return;
        };
        let mut fed: Vec<RtpPacket> = Vec::new();
        match step {
            DepayStep::Packet {
                seq_step,
                ts_step,
                marker,
                payload,
            } => {
                seq = seq.wrapping_add(seq_step);
                ts = ts.wrapping_add(ts_step);
                fed.push(packet(seq, ts, marker, Bytes::from(payload)));
            }
            DepayStep::Repeat {
                head,
                len,
                count,
                marker_last,
            } => {
                let payload = Bytes::from(filled(&head, len as usize, 0x11));
                // JPEG: each copy continues the frame where the last ended,
                // so that the frame grows to its cap.
                let mut offset = None;
                for i in 0..count {
                    seq = seq.wrapping_add(1);
                    let marker = marker_last && i + 1 == count;
                    let payload = match (f, jpeg_header_len(&payload, offset)) {
                        (Format::Jpeg, Some((at, header))) => {
                            let mut p = payload.to_vec();
                            p[1..4].copy_from_slice(&at.to_be_bytes()[1..]);
                            offset = Some(at + (p.len() - header) as u32);
                            Bytes::from(p)
                        }
                        _ => payload.clone(),
                    };
                    let p = packet(seq, ts, marker, payload);
                    flow.bytes_in += p.payload.len();
                    flow.packets_in += 1;
                    push(d, &p);
                    while let Some(unit) = pop(d) {
                        flow.bytes_out += unit.data.len();
                        flow.units_out += 1;
                        check(d, &unit, &flow, Some(&p));
                    }
                    after(d, &flow);
                }
            }
            DepayStep::Raw(bytes) => {
                if let Ok(p) = RtpPacket::parse_slice(&bytes) {
                    fed.push(p);
                }
            }
            DepayStep::Flush => flush(d),
        }
        for p in &fed {
            flow.bytes_in += p.payload.len();
            flow.packets_in += 1;
            push(d, p);
        }
        while let Some(unit) = pop(d) {
            flow.bytes_out += unit.data.len();
            flow.units_out += 1;
            check(d, &unit, &flow, fed.last());
        }
        after(d, &flow);
    }
    flush(d);
    while let Some(unit) = pop(d) {
        flow.bytes_out += unit.data.len();
        flow.units_out += 1;
        check(d, &unit, &flow, None);
    }
    after(d, &flow);
}

/// Feeds [`DepayStep`]s to an [`H264Depacketizer`]. After each: no unit
/// and no buffered unit is over [`MAX_H264_UNIT`]; units are Annex B; the
/// bytes out are at most twice the payload bytes in plus a start code per
/// packet (each NAL's 1-2 byte header or length becomes a 4-byte start
/// code); the counters never fall and count the units seen, incomplete
/// ones included. Then the payloader on the input's bytes: packets within
/// the MTU.
pub fn h264_depay(data: &[u8]) {
    let mut d = H264Depacketizer::new();
    let mut last = d.stats();
    drive_depay(
        data,
        Format::H264,
        &mut d,
        |d, p| {
            let _ = d.push(p);
        },
        |d| d.pop(),
        |d| d.flush(),
        |_, unit, flow, _| {
            assert!(
                unit.data.len() <= MAX_H264_UNIT,
                "{} bytes",
                unit.data.len()
            );
            assert!(unit.data.starts_with(&[0, 0, 0, 1]), "not Annex B");
            assert!(
                flow.bytes_out <= 2 * flow.bytes_in + 4 * flow.packets_in,
                "{} bytes out of {} in {} packets",
                flow.bytes_out,
                flow.bytes_in,
                flow.packets_in
            );
        },
        |d, flow| {
            let s = d.stats();
            assert!(d.buffered() <= MAX_H264_UNIT, "{} buffered", d.buffered());
            assert!(s.dropped_packets >= last.dropped_packets);
            assert!(s.dropped_partial_nals >= last.dropped_partial_nals);
            assert!(s.oversized_units >= last.oversized_units);
            assert!(s.incomplete_units >= last.incomplete_units);
            assert!(s.incomplete_units <= s.units);
            assert_eq!(s.units as usize, flow.units_out, "units counted");
            last = s;
        },
    );

    // Whatever the bytes, packets stay within the MTU.
    let mtu = 15 + usize::from(data.first().copied().unwrap_or(0));
    if let Ok(mut p) = H264Payloader::new(mtu) {
        p.packetize(data, |parts, _| {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            assert!(len + 12 <= mtu);
        });
    }
}

/// Bytes a rebuilt JPEG adds to its scan: SOI, APP0-free JFIF headers,
/// two 16-bit quantisation tables, the four standard Huffman tables, SOF,
/// DRI, SOS and EOI fit in this.
const JPEG_HEADERS_MAX: usize = 1024;

/// Feeds [`DepayStep`]s to a [`JpegDepacketizer`]. After each: every unit
/// starts with SOI and ends with EOI, its scan is within [`MAX_SCAN_LEN`];
/// the bytes out are at most the payload bytes in plus
/// [`JPEG_HEADERS_MAX`] per unit; counters never fall and `frames`
/// counts the units seen. Then the payloader on the input's bytes: packets
/// within the MTU.
pub fn jpeg_depay(data: &[u8]) {
    let mut d = JpegDepacketizer::new();
    let mut last = d.stats();
    drive_depay(
        data,
        Format::Jpeg,
        &mut d,
        |d, p| {
            let _ = d.push(p);
        },
        |d| d.pop(),
        |d| d.flush(),
        |_, unit, flow, _| {
            // A rebuilt frame always has its headers and an end.
            assert!(unit.data.starts_with(&[0xff, 0xd8]) && unit.data.ends_with(&[0xff, 0xd9]));
            assert!(unit.data.len() <= MAX_SCAN_LEN + JPEG_HEADERS_MAX);
            assert!(unit.keyframe && unit.complete);
            assert!(
                flow.bytes_out <= flow.bytes_in + JPEG_HEADERS_MAX * flow.units_out,
                "{} bytes out of {} in",
                flow.bytes_out,
                flow.bytes_in
            );
            let _ = parse_jpeg(&unit.data);
        },
        |d, flow| {
            let s = d.stats();
            assert!(s.dropped_frames >= last.dropped_frames);
            assert!(s.dropped_packets >= last.dropped_packets);
            assert_eq!(s.frames as usize, flow.units_out, "frames counted");
            last = s;
        },
    );

    let mtu = 157 + usize::from(data.first().copied().unwrap_or(0));
    if let Ok(mut p) = JpegPayloader::new(mtu) {
        let _ = p.packetize(data, |parts, _| {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            assert!(len + 12 <= mtu);
        });
    }
}

/// Feeds [`DepayStep`]s to an [`OpusDepacketizer`]. After each: a unit is
/// exactly the payload of the packet just fed (one packet, one unit), never
/// over [`MAX_OPUS_PACKET`] nor empty; bytes out never exceed bytes in;
/// every packet either comes out or is counted as dropped.
pub fn opus_depay(data: &[u8]) {
    let mut d = OpusDepacketizer::new();
    drive_depay(
        data,
        Format::Opus,
        &mut d,
        |d, p| {
            let _ = d.push(p);
        },
        |d| d.pop(),
        |_| {},
        |_, unit, flow, fed| {
            let fed = fed.expect("an Opus unit comes only out of a packet");
            assert_eq!(unit.data, fed.payload);
            assert_eq!(unit.timestamp, fed.header.timestamp);
            assert!(!unit.data.is_empty() && unit.data.len() <= MAX_OPUS_PACKET);
            assert!(flow.bytes_out <= flow.bytes_in);
        },
        |d, flow| {
            assert_eq!(d.dropped() as usize + flow.units_out, flow.packets_in);
        },
    );
}

/// One RTCP packet built from fields (lists and texts may pass the limits
/// the writer cuts at), or raw bytes.
#[derive(Debug)]
pub enum RtcpStep {
    /// Packets written as one compound.
    Packets(Vec<RtcpPacket>),
    /// Any bytes.
    Raw(Vec<u8>),
}

fn report_block(u: &mut Unstructured<'_>) -> Result<ReportBlock> {
    Ok(ReportBlock {
        ssrc: u.arbitrary()?,
        fraction_lost: u.arbitrary()?,
        cumulative_lost: u.int_in_range(-0x80_0000..=0x7f_ffff)?,
        highest_seq: u.arbitrary()?,
        jitter: u.arbitrary()?,
        lsr: u.arbitrary()?,
        dlsr: u.arbitrary()?,
    })
}

fn list<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    f: impl Fn(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = if u.ratio(1, 10)? {
        u.int_in_range(0..=max + 3)?
    } else {
        u.int_in_range(0..=max.min(4))?
    };
    (0..n).map(|_| f(u)).collect()
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.ratio(1, 8)? {
        "n".repeat(u.int_in_range(250..=300)?)
    } else {
        u.arbitrary()?
    })
}

fn rtcp_packet(u: &mut Unstructured<'_>) -> Result<RtcpPacket> {
    Ok(match u.int_in_range(0..=9)? {
        0 => RtcpPacket::SenderReport {
            ssrc: u.arbitrary()?,
            ntp: NtpTime(u.arbitrary()?),
            rtp_ts: u.arbitrary()?,
            packet_count: u.arbitrary()?,
            octet_count: u.arbitrary()?,
            reports: list(u, MAX_COUNT, report_block)?,
        },
        1 => RtcpPacket::ReceiverReport {
            ssrc: u.arbitrary()?,
            reports: list(u, MAX_COUNT, report_block)?,
        },
        2 => RtcpPacket::Sdes {
            chunks: list(u, MAX_COUNT, |u| {
                Ok(SdesChunk {
                    ssrc: u.arbitrary()?,
                    cname: if u.arbitrary()? { Some(text(u)?) } else { None },
                })
            })?,
        },
        3 => RtcpPacket::Bye {
            ssrcs: list(u, MAX_COUNT, |u| u.arbitrary())?,
            reason: if u.arbitrary()? { Some(text(u)?) } else { None },
        },
        4 => RtcpPacket::Pli {
            sender_ssrc: u.arbitrary()?,
            media_ssrc: u.arbitrary()?,
        },
        5 => RtcpPacket::Fir {
            sender_ssrc: u.arbitrary()?,
            entries: list(u, 8, |u| {
                Ok(FirEntry {
                    ssrc: u.arbitrary()?,
                    seq: u.arbitrary()?,
                })
            })?,
        },
        6 => RtcpPacket::Nack {
            sender_ssrc: u.arbitrary()?,
            media_ssrc: u.arbitrary()?,
            pairs: list(u, MAX_NACK_PAIRS, |u| {
                Ok(NackPair {
                    pid: u.arbitrary()?,
                    blp: u.arbitrary()?,
                })
            })?,
            dropped_pairs: 0,
        },
        7 => RtcpPacket::Remb {
            sender_ssrc: u.arbitrary()?,
            bitrate: u.arbitrary()?,
            ssrcs: list(u, 255, |u| u.arbitrary())?,
        },
        _ => RtcpPacket::Unknown {
            // Not a type the parser knows (an empty SR would not parse).
            pt: [192u8, 195, 199, 204, 207, 210, 223][u.choose_index(7)?],
            count: u.int_in_range(0..=31)?,
        },
    })
}

impl<'a> Arbitrary<'a> for RtcpStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.ratio(1, 4)? {
            RtcpStep::Raw(u.arbitrary()?)
        } else {
            let n = u.int_in_range(1..=4)?;
            RtcpStep::Packets((0..n).map(|_| rtcp_packet(u)).collect::<Result<_>>()?)
        })
    }
}

/// The most bytes one packet's fields can take on the wire (lists and
/// texts cut at the writer's limits).
fn rtcp_bound(p: &RtcpPacket) -> usize {
    match p {
        RtcpPacket::SenderReport { reports, .. } => 28 + 24 * reports.len().min(MAX_COUNT),
        RtcpPacket::ReceiverReport { reports, .. } => 8 + 24 * reports.len().min(MAX_COUNT),
        RtcpPacket::Sdes { chunks } => 4 + chunks.len().min(MAX_COUNT) * (4 + 2 + 255 + 4),
        RtcpPacket::Bye { ssrcs, .. } => 4 + 4 * ssrcs.len().min(MAX_COUNT) + 1 + 255 + 3,
        RtcpPacket::Pli { .. } => 12,
        RtcpPacket::Fir { entries, .. } => 12 + 8 * entries.len(),
        RtcpPacket::Nack { pairs, .. } => 12 + 4 * pairs.len().min(MAX_NACK_PAIRS),
        RtcpPacket::Remb { ssrcs, .. } => 20 + 4 * ssrcs.len().min(255),
        RtcpPacket::Unknown { .. } => 4,
    }
}

/// Whether the writer keeps `p` whole, so that it parses back equal.
fn rtcp_exact(p: &RtcpPacket) -> bool {
    match p {
        RtcpPacket::SenderReport { reports, .. } | RtcpPacket::ReceiverReport { reports, .. } => {
            reports.len() <= MAX_COUNT
        }
        RtcpPacket::Pli { .. } | RtcpPacket::Fir { .. } => true,
        RtcpPacket::Nack { pairs, .. } => pairs.len() <= MAX_NACK_PAIRS,
        RtcpPacket::Bye { ssrcs, reason } => ssrcs.len() <= MAX_COUNT && reason.is_none(),
        _ => false,
    }
}

/// Feeds [`RtcpStep`]s through the RTCP writer and parser. For built
/// packets: the compound written is within the bound of its fields, it
/// parses into as many packets, those the writer keeps whole come back
/// equal, and what was parsed writes and parses back to itself. For raw
/// bytes: what parses must write and parse again, to a fixed point, and no more bytes come out than 4 per byte in (an empty packet
/// of a type is 4 bytes).
pub fn rtcp_parse(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut buf = BytesMut::new();
    let mut rate = RateFeed::new();
    while !u.is_empty() {
        let Ok(step) = RtcpStep::arbitrary(&mut u) else {
            return;
        };
        rate.now += Duration::from_millis(100);
        match step {
            RtcpStep::Packets(packets) => {
                let bytes = write_compound(&packets, &mut buf);
                let bound: usize = packets.iter().map(rtcp_bound).sum();
                assert!(bytes.len() <= bound, "{} bytes for {bound}", bytes.len());
                let back = parse_compound(&bytes).expect("our own RTCP must parse");
                rate.feed(&back);
                assert_eq!(back.len(), packets.len(), "{packets:?} came back {back:?}");
                for (sent, got) in packets.iter().zip(&back) {
                    if rtcp_exact(sent) {
                        assert_eq!(sent, got);
                    }
                }
                // What was parsed writes and parses to itself (an empty
                // BYE reason comes back as none: the fixed point is after
                // one parse).
                let again = write_compound(&back, &mut buf);
                assert_eq!(
                    parse_compound(&again).as_ref(),
                    Ok(&back),
                    "not a fixed point"
                );
            }
            RtcpStep::Raw(raw) => {
                if let Ok(packets) = parse_compound(&raw) {
                    rate.feed(&packets);
                    let bytes = write_compound(&packets, &mut buf);
                    assert!(bytes.len() <= 4 * raw.len().max(1));
                    let back = parse_compound(&bytes).expect("our own RTCP must parse");
                    let again = write_compound(&back, &mut buf);
                    assert_eq!(
                        parse_compound(&again).as_ref(),
                        Ok(&back),
                        "not a fixed point"
                    );
                }
            }
        }
    }
}

/// A [`RateController`] taking whatever the parser lets through, as a
/// sender's network stage hands it over: every report block's loss, a round
/// trip from its DLSR (LSR taken as sent 10 s in) and the delivered rate,
/// every REMB's bitrate.
struct RateFeed {
    ctl: RateController,
    delivery: DeliveryEstimator,
    now: Instant,
}

impl RateFeed {
    fn new() -> Self {
        Self {
            ctl: RateController::new(RateConfig::new(300_000, 4_000_000, 2_500_000)),
            delivery: DeliveryEstimator::default(),
            now: Instant::now(),
        }
    }

    fn feed(&mut self, packets: &[RtcpPacket]) {
        for p in packets {
            match p {
                RtcpPacket::SenderReport { reports, .. }
                | RtcpPacket::ReceiverReport { reports, .. } => {
                    for r in reports {
                        let rtt = (r.lsr != 0).then(|| {
                            Duration::from_secs(10).saturating_sub(Duration::from_nanos(
                                u64::from(r.dlsr) * 1_000_000_000 / 65536,
                            ))
                        });
                        let delivered = self.delivery.update(
                            self.now,
                            r.highest_seq,
                            r.cumulative_lost,
                            1200.0,
                        );
                        self.ctl.handle_report(
                            self.now,
                            f32::from(r.fraction_lost) / 256.0,
                            rtt,
                            delivered,
                        );
                    }
                }
                RtcpPacket::Remb { bitrate, .. } => self.ctl.handle_remb(self.now, *bitrate),
                _ => {}
            }
            let c = self.ctl.config();
            if let Some((bps, _)) = self.ctl.poll_target() {
                assert!((c.min_bps..=c.max_bps).contains(&bps), "target {bps}");
            }
            assert!((c.min_bps..=c.max_bps).contains(&self.ctl.target()));
        }
    }
}

/// The addresses packets come from: the peer, another host, the peer as an
/// IPv4-mapped IPv6 address, and an IPv6 host.
const ADDRS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
];

/// Whether `packets` from `from` hold a BYE of the `locked` sender sent
/// from its own host.
fn names_bye(locked: Option<(u32, IpAddr)>, from: IpAddr, packets: &[RtcpPacket]) -> bool {
    locked.is_some_and(|(s, a)| {
        a.to_canonical() == from.to_canonical()
            && packets
                .iter()
                .any(|p| matches!(p, RtcpPacket::Bye { ssrcs, .. } if ssrcs.contains(&s)))
    })
}

/// SSRCs the packets use.
const SSRCS: [u32; 3] = [0x1111, 0x2222, 0x3333];

/// What happens next to a receiver.
#[derive(Debug)]
pub enum ReceiverStep {
    /// An RTP packet from `ADDRS[from]`.
    Rtp {
        /// Index into the addresses.
        from: u8,
        /// Index into the SSRCs.
        ssrc: u8,
        /// Added to that SSRC's sequence number.
        seq_step: u16,
        /// Added to the timestamp.
        ts_step: u32,
        /// The marker bit.
        marker: bool,
        /// The payload.
        payload: Vec<u8>,
    },
    /// An RTCP compound from `ADDRS[from]`.
    Rtcp {
        /// Index into the addresses.
        from: u8,
        /// Its packets (SR, SDES, BYE naming the SSRCs above, or anything).
        packets: Vec<RtcpPacket>,
    },
    /// Raw bytes as RTP or RTCP from `ADDRS[from]`.
    Raw {
        /// Index into the addresses.
        from: u8,
        /// RTCP rather than RTP.
        rtcp: bool,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// An RTX packet (RFC 4588) from `ADDRS[from]`: the original
    /// sequence number `back` behind the SSRC's latest, then a payload.
    Rtx {
        /// Index into the addresses.
        from: u8,
        /// Its own SSRC (index into the SSRCs, or past them: another).
        ssrc: u8,
        /// How far behind the media's sequence number its OSN is.
        back: u16,
        /// The original payload.
        payload: Vec<u8>,
    },
    /// Time passes (ms); timeouts due are handled.
    Tick(u16),
    /// The application asks for a keyframe.
    Pli,
    /// The application does not poll its units for a while.
    Stall(u16),
}

fn receiver_rtcp(u: &mut Unstructured<'_>) -> Result<RtcpPacket> {
    let ssrc = SSRCS[u.choose_index(SSRCS.len())?];
    Ok(match u.int_in_range(0..=5)? {
        0 | 1 => RtcpPacket::SenderReport {
            ssrc,
            ntp: NtpTime(u.arbitrary()?),
            rtp_ts: u.arbitrary()?,
            packet_count: 0,
            octet_count: 0,
            reports: Vec::new(),
        },
        2 => RtcpPacket::Sdes {
            chunks: vec![SdesChunk {
                ssrc,
                cname: Some(u.arbitrary()?),
            }],
        },
        3 | 4 => RtcpPacket::Bye {
            ssrcs: vec![ssrc],
            reason: None,
        },
        _ => rtcp_packet(u)?,
    })
}

impl<'a> Arbitrary<'a> for ReceiverStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let from = u.int_in_range(0..=(ADDRS.len() - 1) as u8)?;
        Ok(match u.int_in_range(0..=21)? {
            20 | 21 => ReceiverStep::Rtx {
                from,
                ssrc: u.int_in_range(0..=SSRCS.len() as u8)?,
                back: if u.ratio(3, 4)? {
                    u.int_in_range(0..=20)?
                } else {
                    u.arbitrary()?
                },
                payload: h264_payload(u)?,
            },
            0..=9 => ReceiverStep::Rtp {
                from,
                ssrc: u.int_in_range(0..=(SSRCS.len() - 1) as u8)?,
                seq_step: seq_step(u)?,
                ts_step: ts_step(u)?,
                marker: u.ratio(1, 3)?,
                payload: h264_payload(u)?,
            },
            10..=12 => ReceiverStep::Rtcp {
                from,
                packets: {
                    let n = u.int_in_range(1..=3)?;
                    (0..n).map(|_| receiver_rtcp(u)).collect::<Result<_>>()?
                },
            },
            13 => ReceiverStep::Raw {
                from,
                rtcp: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
            14..=16 => ReceiverStep::Tick(u.arbitrary()?),
            17 => ReceiverStep::Pli,
            _ => ReceiverStep::Stall(u.int_in_range(0..=400)?),
        })
    }
}

/// Every counter of [`ReceiverStats`] that only grows.
fn receiver_counters(s: &ReceiverStats) -> [u64; 25] {
    [
        s.packets,
        s.bytes,
        s.lost,
        s.late,
        s.duplicates,
        s.seq_jumps,
        s.malformed,
        s.depay_errors,
        s.units,
        s.incomplete_units,
        s.units_overflowed,
        s.pli_sent,
        s.rtcp_sent,
        s.foreign_ssrc_packets,
        s.foreign_rtcp,
        s.sender_restarts,
        s.nack_sent,
        s.nack_requests,
        s.rtx_received,
        s.rtx_repaired,
        s.rtx_late,
        s.rtx_duplicates,
        s.rtx_dropped,
        s.unrepaired,
        s.nack_overflowed,
    ]
}

/// Units a receiver keeps for a caller that does not poll (its
/// `MAX_QUEUED_UNITS`).
const MAX_QUEUED_UNITS: usize = 256;

/// Feeds [`ReceiverStep`]s to an H.264 [`RtpReceiver`] (20 ms latency,
/// 1 s source timeout, NACK and RTX as the input says) behind a
/// [`PeerFilter`] (the peer only, or any, as the first byte says), as
/// `pstream recv` reads its sockets. After each
/// step: counters never fall; a unit is never over [`MAX_H264_UNIT`], and
/// the bytes of all units are at most twice the payload bytes accepted
/// plus a start code per packet; the caller's queue holds at most
/// `MAX_QUEUED_UNITS`; with the filter on, the locked sender is the peer;
/// while the locked sender is alive (heard from within the timeout, no BYE)
/// packets from another host do not take its place and RTCP from another
/// host does not move its sender report; after a BYE from the locked
/// sender no unit comes until RTP does; an SR is honoured only from the
/// locked host; an RTX packet from another host repairs nothing.
pub fn rtp_receiver(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(only_peer) = u.arbitrary::<bool>() else {
        return;
    };
    let filter = if only_peer {
        PeerFilter::only(ADDRS[0])
    } else {
        PeerFilter::Any
    };
    let Ok(with_rtx) = u.arbitrary::<bool>() else {
        return;
    };
    // recv's delay estimate and REMBs (on by default in `pstream recv`)
    // see the same hostile arrivals.
    let Ok(with_remb) = u.arbitrary::<bool>() else {
        return;
    };
    let mut cfg = ReceiverConfig::new(Codec::H264, "fuzz");
    cfg.latency = Duration::from_millis(20);
    cfg.remb = with_remb;
    if with_rtx {
        cfg = cfg.with_rtx(RtxReceiveConfig::default());
    }
    let timeout = cfg.source_timeout;
    let Ok(mut r) = RtpReceiver::with_seed(cfg, 7) else {
        return;
    };
    let mut now = Instant::now();
    let mut seqs = [0u16; SSRCS.len()];
    let mut ts = 0u32;
    let mut counters = receiver_counters(&r.stats());
    let (mut bytes_out, mut bytes_in, mut packets_in) = (0usize, 0usize, 0usize);
    // When the locked sender was last heard, and whether it said BYE.
    let mut last_seen: Option<Instant> = None;
    let mut byed = false;
    let same = |a: IpAddr, b: IpAddr| a.to_canonical() == b.to_canonical();
    let mut buf = BytesMut::new();
    while !u.is_empty() {
        let Ok(step) = ReceiverStep::arbitrary(&mut u) else {
            return;
        };
        let locked = r.sender_ssrc().zip(r.sender_addr());
        let alive = locked.is_some()
            && !byed
            && last_seen.is_some_and(|t| now.saturating_duration_since(t) < timeout);
        let report = r.sender_report();
        let mut poll = true;
        // (address, ssrc) of an RTP packet that reached the receiver.
        let mut rtp_from: Option<(IpAddr, Option<u32>)> = None;
        let mut rtcp_from: Option<IpAddr> = None;
        let mut bye_from_locked = false;
        match step {
            ReceiverStep::Rtp {
                from,
                ssrc,
                seq_step,
                ts_step,
                marker,
                payload,
            } => {
                let from = ADDRS[usize::from(from)];
                let i = usize::from(ssrc);
                seqs[i] = seqs[i].wrapping_add(seq_step);
                ts = ts.wrapping_add(ts_step);
                let pkt = RtpPacket {
                    header: RtpHeader {
                        marker,
                        payload_type: 96,
                        sequence: seqs[i],
                        timestamp: ts,
                        ssrc: SSRCS[i],
                    },
                    csrcs: Vec::new(),
                    extension: None,
                    payload: Bytes::from(payload),
                    padding: 0,
                };
                buf.clear();
                if pkt.write_to(&mut buf).is_ok() && filter.admits(from) {
                    packets_in += 1;
                    bytes_in += buf.len();
                    let _ = r.handle_rtp_from(now, from, &buf);
                    rtp_from = Some((from, Some(SSRCS[i])));
                }
            }
            ReceiverStep::Rtcp { from, packets } => {
                let from = ADDRS[usize::from(from)];
                let bytes = write_compound(&packets, &mut buf);
                if filter.admits(from) {
                    let ok = r.handle_rtcp_from(now, from, &bytes).is_ok();
                    bye_from_locked = ok && names_bye(locked, from, &packets);
                    rtcp_from = Some(from);
                }
            }
            ReceiverStep::Raw { from, rtcp, bytes } => {
                let from = ADDRS[usize::from(from)];
                if filter.admits(from) {
                    if rtcp {
                        // Raw RTCP may hold a BYE too.
                        if r.handle_rtcp_from(now, from, &bytes).is_ok() {
                            let packets = parse_compound(&bytes).unwrap_or_default();
                            bye_from_locked = names_bye(locked, from, &packets);
                        }
                        rtcp_from = Some(from);
                    } else {
                        packets_in += 1;
                        bytes_in += bytes.len();
                        let _ = r.handle_rtp_from(now, from, &bytes);
                        rtp_from = Some((
                            from,
                            RtpPacket::parse_slice(&bytes).ok().map(|p| p.header.ssrc),
                        ));
                    }
                }
            }
            ReceiverStep::Rtx {
                from,
                ssrc,
                back,
                payload,
            } => {
                let from = ADDRS[usize::from(from)];
                let media = r
                    .sender_ssrc()
                    .and_then(|s| SSRCS.iter().position(|&x| x == s));
                let osn = seqs[media.unwrap_or(0)].wrapping_sub(back);
                let mut body = osn.to_be_bytes().to_vec();
                body.extend(payload);
                let pkt = RtpPacket {
                    header: RtpHeader {
                        marker: false,
                        payload_type: PT_RTX,
                        sequence: u16::from(ssrc) << 12 | (osn & 0xfff),
                        timestamp: ts,
                        ssrc: SSRCS.get(usize::from(ssrc)).copied().unwrap_or(0x4444),
                    },
                    csrcs: Vec::new(),
                    extension: None,
                    payload: Bytes::from(body),
                    padding: 0,
                };
                buf.clear();
                if pkt.write_to(&mut buf).is_ok() && filter.admits(from) {
                    let before = r.stats();
                    packets_in += 1;
                    bytes_in += buf.len();
                    let _ = r.handle_rtp_from(now, from, &buf);
                    if !with_rtx {
                        // Without RTX it is media like any other.
                        rtp_from = Some((from, Some(pkt.header.ssrc)));
                    }
                    // A repair counts only from the locked sender's host.
                    if with_rtx && !locked.is_some_and(|(_, a)| same(a, from)) {
                        let after = r.stats();
                        assert_eq!(
                            (after.rtx_repaired, after.rtx_late, after.rtx_duplicates),
                            (before.rtx_repaired, before.rtx_late, before.rtx_duplicates),
                            "an RTX from another host was taken"
                        );
                    }
                }
            }
            ReceiverStep::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms));
                if r.next_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                }
            }
            ReceiverStep::Pli => {
                let sent = r.request_keyframe(now);
                assert!(
                    !sent || (locked.is_some() && !byed),
                    "a PLI with no live sender"
                );
            }
            ReceiverStep::Stall(n) => {
                // Stall by not polling for n more steps' worth of units.
                poll = n == 0;
            }
        }

        // Units: after a BYE from the locked sender, none until RTP.
        let mut units = Vec::new();
        if poll {
            while let Some(unit) = r.poll_unit() {
                units.push(unit);
            }
        }
        if byed && rtp_from.is_none() {
            assert!(units.is_empty(), "a unit after the locked sender's BYE");
        }
        for unit in &units {
            assert!(unit.data.len() <= MAX_H264_UNIT);
            assert!(unit.data.starts_with(&[0, 0, 0, 1]), "not Annex B");
            bytes_out += unit.data.len();
        }
        assert!(
            units.len() <= MAX_QUEUED_UNITS,
            "{} units queued",
            units.len()
        );
        let stats = r.stats();
        assert!(
            bytes_out <= 2 * bytes_in + 4 * packets_in,
            "{bytes_out} bytes out of {bytes_in} in"
        );
        while r.poll_transmit().is_some() {}

        // Counters only grow.
        let now_counters = receiver_counters(&stats);
        for (i, (a, b)) in counters.iter().zip(&now_counters).enumerate() {
            assert!(b >= a, "counter {i} fell from {a} to {b}");
        }
        counters = now_counters;

        // The peer filter holds the lock to the peer.
        if only_peer {
            if let Some(a) = r.sender_addr() {
                assert!(same(a, ADDRS[0]), "locked onto {a}");
            }
        }
        // A live sender keeps its place against other hosts; only its own
        // host speaks for it in RTCP.
        if let Some((s, a)) = locked {
            if alive && rtp_from.is_some_and(|(f, _)| !same(f, a)) {
                assert_eq!(
                    r.sender_ssrc(),
                    Some(s),
                    "a foreign host took the sender's place"
                );
                assert!(r.sender_addr().is_some_and(|b| same(a, b)));
            }
            if rtcp_from.is_some_and(|f| !same(f, a)) {
                assert_eq!(r.sender_report(), report, "a foreign SR moved lip sync");
            }
        }
        // Tracking of the locked sender for the next step.
        let after = r.sender_ssrc().zip(r.sender_addr());
        if after != locked {
            last_seen = Some(now);
            byed = false;
        }
        if let (Some((s, a)), Some((f, Some(fs)))) = (after, rtp_from) {
            if fs == s && same(a, f) {
                last_seen = Some(now);
                byed = false;
            }
        }
        if rtp_from.is_some() && after != locked {
            byed = false;
        }
        if bye_from_locked && after == locked {
            byed = true;
        }
    }
}

/// What happens next between two SRTP contexts.
#[derive(Debug)]
pub enum SrtpStep {
    /// The sender protects an RTP packet (and it may be delivered at once).
    SendRtp {
        /// Index into the SSRCs.
        ssrc: u8,
        /// Added to its sequence number: 1, a jump, a wrap (ROC step), back.
        seq_step: u16,
        /// Payload length.
        len: u16,
        /// Delivered to the receiver right away.
        deliver: bool,
    },
    /// The sender protects an RTCP compound.
    SendRtcp {
        /// Index into the SSRCs.
        ssrc: u8,
        /// Delivered to the receiver right away.
        deliver: bool,
    },
    /// A packet sent earlier is delivered (again: a replay, or late).
    Deliver(u8),
    /// A packet sent earlier is delivered with one byte changed.
    Tamper {
        /// Which packet.
        which: u8,
        /// Where (modulo its length).
        at: u16,
        /// XORed in (never 0).
        xor: u8,
    },
    /// A packet sent earlier is delivered cut short or lengthened.
    Resize {
        /// Which packet.
        which: u8,
        /// Its new length (modulo twice its length).
        len: u16,
    },
    /// Any bytes to the receiver as SRTP or SRTCP.
    Raw {
        /// SRTCP rather than SRTP.
        rtcp: bool,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl<'a> Arbitrary<'a> for SrtpStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let ssrc = u.int_in_range(0..=(SSRCS.len() - 1) as u8)?;
        Ok(match u.int_in_range(0..=15)? {
            0..=5 => SrtpStep::SendRtp {
                ssrc,
                seq_step: match u.int_in_range(0..=9)? {
                    0..=4 => 1,
                    5 => 0x8000,
                    6 => 0x7fff,
                    7 => u16::MAX,
                    _ => u.arbitrary()?,
                },
                len: u.int_in_range(0..=300)?,
                deliver: u.ratio(3, 4)?,
            },
            6 | 7 => SrtpStep::SendRtcp {
                ssrc,
                deliver: u.ratio(3, 4)?,
            },
            8..=10 => SrtpStep::Deliver(u.arbitrary()?),
            11 | 12 => SrtpStep::Tamper {
                which: u.arbitrary()?,
                at: u.arbitrary()?,
                xor: u.int_in_range(1..=255)?,
            },
            13 => SrtpStep::Resize {
                which: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            _ => SrtpStep::Raw {
                rtcp: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
        })
    }
}

/// A packet the sender protected: its plain form, its protected form, RTCP
/// or not.
struct Sent {
    plain: Bytes,
    protected: Bytes,
    rtcp: bool,
}

/// Sent packets kept for replays and tampering.
const KEPT_SENT: usize = 32;

/// Drives a sender and a receiver [`SrtpContext`] under one key (profile
/// and key from the input) with [`SrtpStep`]s. After each: a protected
/// packet is its plain one plus the profile's tag (and the SRTCP index);
/// whatever the receiver accepts is exactly what was protected, and one
/// protected packet is accepted at most once (replays never); a tampered,
/// resized or raw packet never authenticates and changes nothing (the
/// accepted count stays); the receiver's ROC of an SSRC never falls;
/// the counters never fall and count what the harness saw. Raw bytes, as
/// before: protected by a fresh context, they come back whole.
pub fn srtp_unprotect(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(profile) = u.choose(&SrtpProfile::ALL).copied() else {
        return;
    };
    let Ok(material) = u.bytes(profile.master_len()) else {
        return;
    };
    let Ok(key) = MasterKey::new(profile, material) else {
        return;
    };
    let (mut tx, mut rx) = (SrtpContext::new(&key), SrtpContext::new(&key));
    let mut buf = BytesMut::new();
    let mut seqs = [0u16; SSRCS.len()];
    let mut sent: Vec<Sent> = Vec::new();
    let mut accepted: HashSet<Bytes> = HashSet::new();
    let mut rocs = [None::<u32>; SSRCS.len()];
    let (mut n_protected, mut n_accepted) = (0u64, 0u64);
    let mut last = SrtpStats::default();
    let mut rtcp_buf = BytesMut::new();

    // The receiver's answer to `p`; checks what every answer must be.
    let deliver = |rx: &mut SrtpContext,
                   p: &[u8],
                   rtcp: bool,
                   genuine: Option<&Bytes>,
                   accepted: &mut HashSet<Bytes>,
                   n_accepted: &mut u64| {
        let mut out = BytesMut::new();
        let got = if rtcp {
            rx.unprotect_rtcp(p, &mut out)
        } else {
            rx.unprotect_rtp(p, &mut out)
        };
        match (got, genuine) {
            (Ok(plain), Some(want)) => {
                assert_eq!(&plain, want, "accepted something else than was protected");
                assert!(
                    accepted.insert(Bytes::copy_from_slice(p)),
                    "a replay was accepted"
                );
                *n_accepted += 1;
            }
            (Ok(_), None) => panic!("a forged or altered packet authenticated"),
            (Err(_), _) => {}
        }
    };

    while !u.is_empty() {
        let Ok(step) = SrtpStep::arbitrary(&mut u) else {
            break;
        };
        let before_accepted = n_accepted;
        let mut genuine_delivery = false;
        match step {
            SrtpStep::SendRtp {
                ssrc,
                seq_step,
                len,
                deliver: now,
            } => {
                let i = usize::from(ssrc);
                seqs[i] = seqs[i].wrapping_add(seq_step);
                let pkt = RtpPacket {
                    header: RtpHeader {
                        marker: false,
                        payload_type: 96,
                        sequence: seqs[i],
                        timestamp: u32::from(seqs[i]) * 3000,
                        ssrc: SSRCS[i],
                    },
                    csrcs: Vec::new(),
                    extension: None,
                    payload: Bytes::from(vec![0x5a; usize::from(len)]),
                    padding: 0,
                };
                buf.clear();
                if pkt.write_to(&mut buf).is_err() {
                    continue;
                }
                let plain = buf.split().freeze();
                if let Ok(protected) = tx.protect_rtp(&plain, &mut buf) {
                    n_protected += 1;
                    assert_eq!(protected.len(), plain.len() + profile.tag_len());
                    if now {
                        genuine_delivery = true;
                        deliver(
                            &mut rx,
                            &protected,
                            false,
                            Some(&plain),
                            &mut accepted,
                            &mut n_accepted,
                        );
                    }
                    sent.push(Sent {
                        plain,
                        protected,
                        rtcp: false,
                    });
                }
            }
            SrtpStep::SendRtcp { ssrc, deliver: now } => {
                let ssrc = SSRCS[usize::from(ssrc)];
                let plain = write_compound(
                    &[
                        RtcpPacket::ReceiverReport {
                            ssrc,
                            reports: Vec::new(),
                        },
                        RtcpPacket::Sdes {
                            chunks: vec![SdesChunk {
                                ssrc,
                                cname: Some("fuzz".into()),
                            }],
                        },
                    ],
                    &mut rtcp_buf,
                );
                if let Ok(protected) = tx.protect_rtcp(&plain, &mut buf) {
                    n_protected += 1;
                    assert_eq!(protected.len(), plain.len() + 4 + profile.rtcp_tag_len());
                    if now {
                        genuine_delivery = true;
                        deliver(
                            &mut rx,
                            &protected,
                            true,
                            Some(&plain),
                            &mut accepted,
                            &mut n_accepted,
                        );
                    }
                    sent.push(Sent {
                        plain,
                        protected,
                        rtcp: true,
                    });
                }
            }
            SrtpStep::Deliver(which) => {
                if let Some(s) = (!sent.is_empty()).then(|| &sent[usize::from(which) % sent.len()])
                {
                    genuine_delivery = true;
                    deliver(
                        &mut rx,
                        &s.protected,
                        s.rtcp,
                        Some(&s.plain),
                        &mut accepted,
                        &mut n_accepted,
                    );
                }
            }
            SrtpStep::Tamper { which, at, xor } => {
                if let Some(s) = (!sent.is_empty()).then(|| &sent[usize::from(which) % sent.len()])
                {
                    let mut p = s.protected.to_vec();
                    let at = usize::from(at) % p.len();
                    p[at] ^= xor;
                    deliver(&mut rx, &p, s.rtcp, None, &mut accepted, &mut n_accepted);
                }
            }
            SrtpStep::Resize { which, len } => {
                if let Some(s) = (!sent.is_empty()).then(|| &sent[usize::from(which) % sent.len()])
                {
                    let mut p = s.protected.to_vec();
                    let len = usize::from(len) % (2 * p.len());
                    if len != p.len() {
                        p.resize(len, 0);
                        deliver(&mut rx, &p, s.rtcp, None, &mut accepted, &mut n_accepted);
                    }
                }
            }
            SrtpStep::Raw { rtcp, bytes } => {
                // Without the key, nothing authenticates (a forged tag is
                // 2^-32 at best).
                deliver(&mut rx, &bytes, rtcp, None, &mut accepted, &mut n_accepted);
                // What a fresh context protects comes back whole from
                // another fresh one (a refused forgery left no state).
                let (mut t2, mut r2) = (SrtpContext::new(&key), SrtpContext::new(&key));
                let mut out = BytesMut::new();
                let forged = if rtcp {
                    r2.unprotect_rtcp(&bytes, &mut out)
                } else {
                    r2.unprotect_rtp(&bytes, &mut out)
                };
                assert!(forged.is_err(), "unkeyed bytes authenticated");
                let protected = if rtcp {
                    t2.protect_rtcp(&bytes, &mut out)
                } else {
                    t2.protect_rtp(&bytes, &mut out)
                };
                if let Ok(p) = protected {
                    let back = if rtcp {
                        r2.unprotect_rtcp(&p, &mut out)
                    } else {
                        r2.unprotect_rtp(&p, &mut out)
                    };
                    assert_eq!(
                        back.as_deref(),
                        Ok(&bytes[..]),
                        "a refused forgery left state behind"
                    );
                }
            }
        }
        if sent.len() > KEPT_SENT {
            sent.remove(0);
        }
        if !genuine_delivery {
            assert_eq!(n_accepted, before_accepted);
        }
        let s = rx.stats();
        assert_eq!(s.unprotected, n_accepted, "accepted packets counted");
        assert_eq!(
            tx.stats().protected,
            n_protected,
            "protected packets counted"
        );
        assert!(s.auth_failures >= last.auth_failures);
        assert!(s.replays >= last.replays);
        assert!(s.malformed >= last.malformed);
        last = s;
        for (i, &ssrc) in SSRCS.iter().enumerate() {
            let roc = rx.roc(ssrc);
            assert!(
                roc >= rocs[i],
                "ROC of {ssrc:#x} fell from {:?} to {roc:?}",
                rocs[i]
            );
            rocs[i] = roc;
        }
    }
}
