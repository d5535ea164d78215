//! RTCP (RFC 3550 §6, RFC 4585, RFC 5104): compound packet parsing and writing.
//!
//! The parser checks every length field against the bytes actually present
//! and returns an error, never panics. Packet types pstream does not use
//! (XR, APP, other feedback) parse as [`RtcpPacket::Unknown`], so compounds
//! from GStreamer's rtpbin, reduced-size or not, are accepted. A generic
//! NACK keeps at most [`MAX_NACK_PAIRS`] entries and says how many it cut.

use bytes::{BufMut, Bytes, BytesMut};
use pstream_core::NtpTime;
use thiserror::Error;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of source descriptions.
pub const PT_SDES: u8 = 202;
/// Packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback (RFC 4585).
pub const PT_PSFB: u8 = 206;
/// Feedback message type of a generic NACK (in RTPFB).
pub const FMT_NACK: u8 = 1;
/// Feedback message type of a picture loss indication (in PSFB).
pub const FMT_PLI: u8 = 1;
/// Feedback message type of a full intra request (in PSFB).
pub const FMT_FIR: u8 = 4;
/// Feedback message type of application-layer feedback (in PSFB), which
/// carries REMB.
pub const FMT_ALFB: u8 = 15;
/// The unique identifier that marks an application-layer feedback as REMB.
pub const REMB_ID: &[u8; 4] = b"REMB";
/// The most PID/BLP entries one NACK keeps (1088 sequence numbers): a
/// receiver repairing a live stream never needs more, and a NACK listing
/// thousands is cut here rather than turned into thousands of resends.
pub const MAX_NACK_PAIRS: usize = 64;
/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;
/// The most report blocks, chunks or SSRCs one packet can count (5 bits).
pub const MAX_COUNT: usize = 31;

/// Why an RTCP compound packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Fewer than 4 bytes left for a packet header.
    #[error("RTCP truncated at offset {offset}: {remaining} bytes cannot hold a header")]
    Truncated {
        /// Offset of the packet in the compound.
        offset: usize,
        /// Bytes left from there.
        remaining: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version} at offset {offset}, expected 2")]
    Version {
        /// Offset of the packet in the compound.
        offset: usize,
        /// The version found.
        version: u8,
    },
    /// The length field claims more bytes than are present.
    #[error(
        "RTCP packet type {pt} at offset {offset} claims {declared} bytes, {remaining} present"
    )]
    Length {
        /// Offset of the packet in the compound.
        offset: usize,
        /// Its packet type.
        pt: u8,
        /// Length in bytes implied by the length field.
        declared: usize,
        /// Bytes left in the compound.
        remaining: usize,
    },
    /// The padding count is zero or exceeds the packet.
    #[error("RTCP packet type {pt} at offset {offset} has invalid padding {padding}")]
    Padding {
        /// Offset of the packet in the compound.
        offset: usize,
        /// Its packet type.
        pt: u8,
        /// The padding count found.
        padding: u8,
    },
    /// The body is too short for what its count or type demands.
    #[error("RTCP packet type {pt} at offset {offset}: {what}")]
    Malformed {
        /// Offset of the packet in the compound.
        offset: usize,
        /// Its packet type.
        pt: u8,
        /// What did not fit.
        what: &'static str,
    },
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received (0 if none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// One SDES chunk: a source and its CNAME, if the chunk carried one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its canonical name (other SDES items are skipped).
    pub cname: Option<String>,
}

/// One generic NACK entry: a lost packet and a bitmask of the 16 after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackPair {
    /// Packet ID: a lost sequence number.
    pub pid: u16,
    /// Bitmask of following lost packets (bit i = pid + i + 1).
    pub blp: u16,
}

impl NackPair {
    /// Packs sequence numbers (in the order given, normally ascending) into
    /// as few entries as the PID + 16-bit mask form allows.
    pub fn pack(seqs: impl IntoIterator<Item = u16>) -> Vec<NackPair> {
        let mut pairs: Vec<NackPair> = Vec::new();
        for seq in seqs {
            if let Some(last) = pairs.last_mut() {
                let d = seq.wrapping_sub(last.pid);
                if d == 0 {
                    continue;
                }
                if (1..=16).contains(&d) {
                    last.blp |= 1 << (d - 1);
                    continue;
                }
            }
            pairs.push(NackPair { pid: seq, blp: 0 });
        }
        pairs
    }

    /// Every sequence number this entry reports lost.
    pub fn lost(&self) -> impl Iterator<Item = u16> + '_ {
        std::iter::once(self.pid).chain(
            (0..16u16)
                .filter(|i| self.blp & (1 << i) != 0)
                .map(|i| self.pid.wrapping_add(i + 1)),
        )
    }
}

/// One FIR entry: the source asked for a keyframe and the request number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    /// The media source that should send a keyframe.
    pub ssrc: u32,
    /// Command sequence number; a repeated number is a retransmission.
    pub seq: u8,
}

/// One packet of an RTCP compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report (PT 200).
    SenderReport {
        /// The sender.
        ssrc: u32,
        /// Wall-clock time of the report.
        ntp: NtpTime,
        /// The RTP timestamp of the same instant.
        rtp_ts: u32,
        /// Packets sent so far (wraps).
        packet_count: u32,
        /// Payload octets sent so far (wraps).
        octet_count: u32,
        /// Reports on sources the sender receives.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report (PT 201).
    ReceiverReport {
        /// The reporter.
        ssrc: u32,
        /// Reports on the sources it receives.
        reports: Vec<ReportBlock>,
    },
    /// Source descriptions (PT 202).
    Sdes {
        /// One chunk per source.
        chunks: Vec<SdesChunk>,
    },
    /// Goodbye (PT 203).
    Bye {
        /// Sources leaving.
        ssrcs: Vec<u32>,
        /// Why, if given.
        reason: Option<String>,
    },
    /// Picture loss indication (PT 206, FMT 1).
    Pli {
        /// Who asks.
        sender_ssrc: u32,
        /// The media source that should send a keyframe.
        media_ssrc: u32,
    },
    /// Full intra request (PT 206, FMT 4).
    Fir {
        /// Who asks.
        sender_ssrc: u32,
        /// One entry per media source asked.
        entries: Vec<FirEntry>,
    },
    /// Generic NACK (PT 205, FMT 1).
    Nack {
        /// Who asks.
        sender_ssrc: u32,
        /// The media source whose packets were lost.
        media_ssrc: u32,
        /// The lost packets, at most [`MAX_NACK_PAIRS`] entries.
        pairs: Vec<NackPair>,
        /// Entries past [`MAX_NACK_PAIRS`] that the parser dropped (0 when
        /// written: the writer cuts silently).
        dropped_pairs: usize,
    },
    /// Receiver estimated maximum bitrate (PT 206, FMT 15, draft-alvestrand-rmcat-remb).
    Remb {
        /// Who estimates.
        sender_ssrc: u32,
        /// The estimate in bits per second (saturates at `u64::MAX`).
        bitrate: u64,
        /// The media sources the estimate covers.
        ssrcs: Vec<u32>,
    },
    /// Any other packet type or feedback format, skipped.
    Unknown {
        /// Its packet type.
        pt: u8,
        /// Its 5-bit count/FMT field.
        count: u8,
    },
}

/// Parses a compound RTCP packet (or a single reduced-size one).
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let rest = &data[offset..];
        if rest.len() < 4 {
            return Err(RtcpError::Truncated {
                offset,
                remaining: rest.len(),
            });
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version { offset, version });
        }
        let padded = rest[0] & 0x20 != 0;
        let count = rest[0] & 0x1f;
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return Err(RtcpError::Length {
                offset,
                pt,
                declared: len,
                remaining: rest.len(),
            });
        }
        let mut body = &rest[4..len];
        if padded {
            let padding = body.last().copied().unwrap_or(0);
            if padding == 0 || usize::from(padding) > body.len() {
                return Err(RtcpError::Padding {
                    offset,
                    pt,
                    padding,
                });
            }
            body = &body[..body.len() - usize::from(padding)];
        }
        let ctx = Ctx { offset, pt };
        out.push(parse_one(ctx, count, body)?);
        offset += len;
    }
    Ok(out)
}

#[derive(Clone, Copy)]
struct Ctx {
    offset: usize,
    pt: u8,
}

impl Ctx {
    fn err(self, what: &'static str) -> RtcpError {
        RtcpError::Malformed {
            offset: self.offset,
            pt: self.pt,
            what,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_one(ctx: Ctx, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let count = usize::from(count);
    Ok(match ctx.pt {
        PT_SR => {
            if body.len() < 24 + 24 * count {
                return Err(ctx.err("SR shorter than its report count"));
            }
            RtcpPacket::SenderReport {
                ssrc: be32(body, 0),
                ntp: NtpTime((u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8))),
                rtp_ts: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
                reports: parse_reports(&body[24..], count),
            }
        }
        PT_RR => {
            if body.len() < 4 + 24 * count {
                return Err(ctx.err("RR shorter than its report count"));
            }
            RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0),
                reports: parse_reports(&body[4..], count),
            }
        }
        PT_SDES => RtcpPacket::Sdes {
            chunks: parse_sdes(ctx, count, body)?,
        },
        PT_BYE => {
            if body.len() < 4 * count {
                return Err(ctx.err("BYE shorter than its SSRC count"));
            }
            let ssrcs = (0..count).map(|i| be32(body, 4 * i)).collect();
            let rest = &body[4 * count..];
            let reason = match rest.first() {
                Some(&n) if n > 0 => {
                    let text = rest
                        .get(1..1 + usize::from(n))
                        .ok_or(ctx.err("BYE reason overruns the packet"))?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                _ => None,
            };
            RtcpPacket::Bye { ssrcs, reason }
        }
        PT_RTPFB if count == usize::from(FMT_NACK) => {
            if body.len() < 8 {
                return Err(ctx.err("NACK shorter than its two SSRCs"));
            }
            let entries = body[8..].chunks_exact(4);
            let dropped_pairs = entries.len().saturating_sub(MAX_NACK_PAIRS);
            let pairs = entries
                .take(MAX_NACK_PAIRS)
                .map(|c| NackPair {
                    pid: u16::from_be_bytes([c[0], c[1]]),
                    blp: u16::from_be_bytes([c[2], c[3]]),
                })
                .collect();
            RtcpPacket::Nack {
                sender_ssrc: be32(body, 0),
                media_ssrc: be32(body, 4),
                pairs,
                dropped_pairs,
            }
        }
        PT_PSFB if count == usize::from(FMT_ALFB) => {
            parse_remb(body).unwrap_or(RtcpPacket::Unknown {
                pt: ctx.pt,
                count: FMT_ALFB,
            })
        }
        PT_PSFB if count == usize::from(FMT_PLI) => {
            if body.len() < 8 {
                return Err(ctx.err("PLI shorter than its two SSRCs"));
            }
            RtcpPacket::Pli {
                sender_ssrc: be32(body, 0),
                media_ssrc: be32(body, 4),
            }
        }
        PT_PSFB if count == usize::from(FMT_FIR) => {
            if body.len() < 8 {
                return Err(ctx.err("FIR shorter than its two SSRCs"));
            }
            let entries = body[8..]
                .chunks_exact(8)
                .map(|c| FirEntry {
                    ssrc: be32(c, 0),
                    seq: c[4],
                })
                .collect();
            RtcpPacket::Fir {
                sender_ssrc: be32(body, 0),
                entries,
            }
        }
        pt => RtcpPacket::Unknown {
            pt,
            count: count as u8,
        },
    })
}

/// A REMB, or `None` for any other application-layer feedback and for a
/// REMB whose SSRC list overruns the packet: both are skipped like unknown
/// feedback, so the report blocks of the same compound still count.
fn parse_remb(body: &[u8]) -> Option<RtcpPacket> {
    if body.len() < 16 || &body[8..12] != REMB_ID {
        return None;
    }
    let num = usize::from(body[12]);
    let exp = u32::from(body[13] >> 2);
    let mantissa =
        (u128::from(body[13] & 0x03) << 16) | (u128::from(body[14]) << 8) | u128::from(body[15]);
    let ssrcs = body.get(16..16 + 4 * num)?;
    Some(RtcpPacket::Remb {
        sender_ssrc: be32(body, 0),
        bitrate: u64::try_from(mantissa << exp).unwrap_or(u64::MAX),
        ssrcs: ssrcs.chunks_exact(4).map(|c| be32(c, 0)).collect(),
    })
}

fn parse_reports(body: &[u8], count: usize) -> Vec<ReportBlock> {
    body.chunks_exact(24)
        .take(count)
        .map(|b| {
            // Sign-extend the 24-bit cumulative loss.
            let lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
            ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: b[4],
                cumulative_lost: lost,
                highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                lsr: be32(b, 16),
                dlsr: be32(b, 20),
            }
        })
        .collect()
}

fn parse_sdes(ctx: Ctx, count: usize, body: &[u8]) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::with_capacity(count);
    let mut pos = 0;
    for _ in 0..count {
        if body.len() < pos + 4 {
            return Err(ctx.err("SDES chunk truncated"));
        }
        let ssrc = be32(body, pos);
        pos += 4;
        let mut cname = None;
        // A missing END item at the very end of the packet is tolerated.
        while let Some(&kind) = body.get(pos) {
            if kind == 0 {
                pos += 1;
                break;
            }
            let len = usize::from(*body.get(pos + 1).ok_or(ctx.err("SDES item truncated"))?);
            let text = body
                .get(pos + 2..pos + 2 + len)
                .ok_or(ctx.err("SDES item overruns the packet"))?;
            if kind == SDES_CNAME {
                cname = Some(String::from_utf8_lossy(text).into_owned());
            }
            pos += 2 + len;
        }
        // Chunks start on 32-bit boundaries.
        pos = pos.next_multiple_of(4);
        chunks.push(SdesChunk { ssrc, cname });
    }
    Ok(chunks)
}

fn put_header(buf: &mut BytesMut, count: usize, pt: u8) -> usize {
    let start = buf.len();
    buf.put_u8(0x80 | (count.min(MAX_COUNT) as u8));
    buf.put_u8(pt);
    buf.put_u16(0); // patched by finish()
    start
}

fn finish(buf: &mut BytesMut, start: usize) {
    let len = buf.len() - start;
    debug_assert_eq!(len % 4, 0);
    let words = (len / 4 - 1) as u16;
    buf[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

fn put_report(buf: &mut BytesMut, r: &ReportBlock) {
    buf.put_u32(r.ssrc);
    buf.put_u8(r.fraction_lost);
    let lost = r.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
    buf.put_slice(&lost.to_be_bytes()[1..]);
    buf.put_u32(r.highest_seq);
    buf.put_u32(r.jitter);
    buf.put_u32(r.lsr);
    buf.put_u32(r.dlsr);
}

/// Appends `text` (cut to 255 bytes) with its length byte.
fn put_text(buf: &mut BytesMut, text: &str) {
    let t = &text.as_bytes()[..text.len().min(255)];
    buf.put_u8(t.len() as u8);
    buf.put_slice(t);
}

fn pad_to_word(buf: &mut BytesMut, start: usize) {
    let len = buf.len() - start;
    buf.put_bytes(0, len.next_multiple_of(4) - len);
}

impl RtcpPacket {
    /// Appends this packet to `buf`.
    ///
    /// Lists longer than a 5-bit count allows (31) and texts longer than 255
    /// bytes are cut; `Unknown` writes an empty packet of its type.
    pub fn write_to(&self, buf: &mut BytesMut) {
        match self {
            Self::SenderReport {
                ssrc,
                ntp,
                rtp_ts,
                packet_count,
                octet_count,
                reports,
            } => {
                let start = put_header(buf, reports.len(), PT_SR);
                buf.put_u32(*ssrc);
                buf.put_u64(ntp.0);
                buf.put_u32(*rtp_ts);
                buf.put_u32(*packet_count);
                buf.put_u32(*octet_count);
                for r in reports.iter().take(MAX_COUNT) {
                    put_report(buf, r);
                }
                finish(buf, start);
            }
            Self::ReceiverReport { ssrc, reports } => {
                let start = put_header(buf, reports.len(), PT_RR);
                buf.put_u32(*ssrc);
                for r in reports.iter().take(MAX_COUNT) {
                    put_report(buf, r);
                }
                finish(buf, start);
            }
            Self::Sdes { chunks } => {
                let start = put_header(buf, chunks.len(), PT_SDES);
                for c in chunks.iter().take(MAX_COUNT) {
                    let chunk_start = buf.len();
                    buf.put_u32(c.ssrc);
                    if let Some(name) = &c.cname {
                        buf.put_u8(SDES_CNAME);
                        put_text(buf, name);
                    }
                    buf.put_u8(0);
                    pad_to_word(buf, chunk_start);
                }
                finish(buf, start);
            }
            Self::Bye { ssrcs, reason } => {
                let start = put_header(buf, ssrcs.len(), PT_BYE);
                for s in ssrcs.iter().take(MAX_COUNT) {
                    buf.put_u32(*s);
                }
                if let Some(reason) = reason {
                    put_text(buf, reason);
                    pad_to_word(buf, start);
                }
                finish(buf, start);
            }
            Self::Pli {
                sender_ssrc,
                media_ssrc,
            } => {
                let start = put_header(buf, usize::from(FMT_PLI), PT_PSFB);
                buf.put_u32(*sender_ssrc);
                buf.put_u32(*media_ssrc);
                finish(buf, start);
            }
            Self::Fir {
                sender_ssrc,
                entries,
            } => {
                let start = put_header(buf, usize::from(FMT_FIR), PT_PSFB);
                buf.put_u32(*sender_ssrc);
                buf.put_u32(0);
                for e in entries {
                    buf.put_u32(e.ssrc);
                    buf.put_u8(e.seq);
                    buf.put_bytes(0, 3);
                }
                finish(buf, start);
            }
            Self::Nack {
                sender_ssrc,
                media_ssrc,
                pairs,
                ..
            } => {
                let start = put_header(buf, usize::from(FMT_NACK), PT_RTPFB);
                buf.put_u32(*sender_ssrc);
                buf.put_u32(*media_ssrc);
                for p in pairs.iter().take(MAX_NACK_PAIRS) {
                    buf.put_u16(p.pid);
                    buf.put_u16(p.blp);
                }
                finish(buf, start);
            }
            Self::Remb {
                sender_ssrc,
                bitrate,
                ssrcs,
            } => {
                let start = put_header(buf, usize::from(FMT_ALFB), PT_PSFB);
                buf.put_u32(*sender_ssrc);
                buf.put_u32(0);
                buf.put_slice(REMB_ID);
                let ssrcs = &ssrcs[..ssrcs.len().min(255)];
                buf.put_u8(ssrcs.len() as u8);
                // 6-bit exponent, 18-bit mantissa: round down to what fits.
                let exp = (64 - bitrate.leading_zeros()).saturating_sub(18);
                let mantissa = (bitrate >> exp) as u32;
                buf.put_u8(((exp as u8) << 2) | ((mantissa >> 16) as u8 & 0x03));
                buf.put_u16(mantissa as u16);
                for s in ssrcs {
                    buf.put_u32(*s);
                }
                finish(buf, start);
            }
            Self::Unknown { pt, count } => {
                let start = put_header(buf, usize::from(*count), *pt);
                finish(buf, start);
            }
        }
    }
}

/// Writes `packets` as one compound into `buf` and returns it, leaving `buf`
/// empty with its spare capacity for the next call.
pub fn write_compound(packets: &[RtcpPacket], buf: &mut BytesMut) -> Bytes {
    buf.clear();
    for p in packets {
        p.write_to(buf);
    }
    buf.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: lost,
            highest_seq: 0x0001_fff0,
            jitter: 123,
            lsr: 0xdead_beef,
            dlsr: 65536,
        }
    }

    fn every_kind() -> Vec<RtcpPacket> {
        vec![
            RtcpPacket::SenderReport {
                ssrc: 1,
                ntp: NtpTime(0x1122_3344_5566_7788),
                rtp_ts: 90_000,
                packet_count: 10,
                octet_count: 12_000,
                reports: vec![block(2, -3)],
            },
            RtcpPacket::ReceiverReport {
                ssrc: 2,
                reports: vec![block(1, 0x7f_ffff), block(9, -0x80_0000)],
            },
            RtcpPacket::ReceiverReport {
                ssrc: 3,
                reports: vec![],
            },
            RtcpPacket::Sdes {
                chunks: vec![
                    SdesChunk {
                        ssrc: 1,
                        cname: Some("a@b".into()),
                    },
                    SdesChunk {
                        ssrc: 2,
                        cname: Some("four".into()),
                    },
                    SdesChunk {
                        ssrc: 3,
                        cname: None,
                    },
                ],
            },
            RtcpPacket::Bye {
                ssrcs: vec![1, 2],
                reason: Some("done".into()),
            },
            RtcpPacket::Bye {
                ssrcs: vec![7],
                reason: None,
            },
            RtcpPacket::Pli {
                sender_ssrc: 2,
                media_ssrc: 1,
            },
            RtcpPacket::Fir {
                sender_ssrc: 2,
                entries: vec![FirEntry { ssrc: 1, seq: 7 }, FirEntry { ssrc: 5, seq: 0 }],
            },
            RtcpPacket::Nack {
                sender_ssrc: 2,
                media_ssrc: 1,
                pairs: vec![NackPair {
                    pid: 65535,
                    blp: 0b101,
                }],
                dropped_pairs: 0,
            },
            RtcpPacket::Remb {
                sender_ssrc: 2,
                bitrate: 0x3_ffff << 5,
                ssrcs: vec![1, 9],
            },
            RtcpPacket::Unknown { pt: 207, count: 0 },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        let packets = every_kind();
        let mut buf = BytesMut::new();
        let bytes = write_compound(&packets, &mut buf);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(parse_compound(&bytes), Ok(packets.clone()));
        for p in &packets {
            let one = write_compound(std::slice::from_ref(p), &mut buf);
            assert_eq!(parse_compound(&one), Ok(vec![p.clone()]));
        }
    }

    #[test]
    fn nack_lists_lost_sequences() {
        let p = NackPair {
            pid: 65535,
            blp: 0b101,
        };
        assert_eq!(p.lost().collect::<Vec<_>>(), [65535, 0, 2]);
    }

    #[test]
    fn nack_pairs_pack_runs_and_wrap() {
        let pairs = NackPair::pack([65534, 65535, 0, 1, 15, 16, 40, 40]);
        assert_eq!(
            pairs,
            [
                NackPair {
                    pid: 65534,
                    blp: 0b111
                },
                NackPair { pid: 15, blp: 0b1 },
                NackPair { pid: 40, blp: 0 },
            ]
        );
        // Every sequence number comes back, each once.
        let back: Vec<u16> = pairs
            .iter()
            .flat_map(|p| p.lost().collect::<Vec<_>>())
            .collect();
        assert_eq!(back, [65534, 65535, 0, 1, 15, 16, 40]);
    }

    #[test]
    fn a_huge_nack_is_clamped_and_counted() {
        // A NACK listing 5000 entries (80 000 sequence numbers).
        let mut raw = vec![0x81, 205, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1];
        for i in 0..5000u16 {
            raw.extend_from_slice(&i.wrapping_mul(17).to_be_bytes());
            raw.extend_from_slice(&[0xff, 0xff]);
        }
        let words = (raw.len() / 4 - 1) as u16;
        raw[2..4].copy_from_slice(&words.to_be_bytes());
        match &parse_compound(&raw).expect("parses")[..] {
            [RtcpPacket::Nack {
                sender_ssrc: 2,
                media_ssrc: 1,
                pairs,
                dropped_pairs,
            }] => {
                assert_eq!(pairs.len(), MAX_NACK_PAIRS);
                assert_eq!(*dropped_pairs, 5000 - MAX_NACK_PAIRS);
                assert_eq!(
                    pairs[1],
                    NackPair {
                        pid: 17,
                        blp: 0xffff
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn remb_parses_and_writes() {
        // 1.5 Mbit/s for two SSRCs: exponent 3, mantissa 187500.
        let m: u32 = 1_500_000 >> 3;
        let raw = [
            0x8f,
            206,
            0,
            6,
            0,
            0,
            0,
            7,
            0,
            0,
            0,
            0,
            b'R',
            b'E',
            b'M',
            b'B',
            2,
            (3 << 2) | (m >> 16) as u8,
            (m >> 8) as u8,
            m as u8,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            2,
        ];
        let p = parse_compound(&raw).expect("parses");
        assert_eq!(
            p,
            [RtcpPacket::Remb {
                sender_ssrc: 7,
                bitrate: 1_500_000,
                ssrcs: vec![1, 2]
            }]
        );
        assert_eq!(&write_compound(&p, &mut BytesMut::new())[..], &raw[..]);
        // A bitrate beyond 2^18 · 2^63 saturates instead of wrapping.
        let mut big = raw;
        big[17] = 0xff;
        big[18] = 0xff;
        big[19] = 0xff;
        assert!(matches!(
            parse_compound(&big).expect("parses")[0],
            RtcpPacket::Remb {
                bitrate: u64::MAX,
                ..
            }
        ));
        // Other application-layer feedback is skipped.
        let mut other = raw;
        other[12] = b'X';
        assert_eq!(
            parse_compound(&other),
            Ok(vec![RtcpPacket::Unknown { pt: 206, count: 15 }])
        );
        // Writing rounds down to what 18 bits of mantissa hold.
        let odd = RtcpPacket::Remb {
            sender_ssrc: 1,
            bitrate: 10_000_001,
            ssrcs: vec![],
        };
        match &parse_compound(&write_compound(&[odd], &mut BytesMut::new())).expect("parses")[0] {
            RtcpPacket::Remb { bitrate, .. } => {
                assert!(
                    *bitrate <= 10_000_001 && *bitrate > 10_000_001 - 64,
                    "{bitrate}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gstreamer_style_compound_with_xr_and_remb() {
        // RR (one block) + SDES CNAME + TOOL, then an XR and a REMB as
        // GStreamer/libwebrtc may append; a padded APP at the end.
        let mut raw = vec![
            0x81, 201, 0, 7, 0, 0, 0, 0x0a, // RR, ssrc 10
            0, 0, 0, 0x0b, 0x05, 0xff, 0xff, 0xfe, // block for 11, 5/256, lost -2
            0, 1, 0x00, 0x10, 0, 0, 0, 40, // highest seq 65552, jitter 40
            0x12, 0x34, 0x56, 0x78, 0, 1, 0, 0, // lsr, dlsr 1s
            0x81, 202, 0, 4, 0, 0, 0, 0x0a, // SDES
            1, 4, b'u', b'@', b'h', b'1', // CNAME "u@h1"
            6, 2, b'g', b's', 0, 0, // TOOL "gs", END, pad
        ];
        raw.extend_from_slice(&[
            0x80, 207, 0, 4, 0, 0, 0, 0x0a, 4, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2,
        ]);
        raw.extend_from_slice(&[
            0x8f, 206, 0, 4, 0, 0, 0, 0x0a, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 2, 3, 4,
        ]);
        raw.extend_from_slice(&[
            0xa0, 204, 0, 3, 0, 0, 0, 0x0a, b'n', b'a', b'm', b'e', 0, 0, 0, 4,
        ]);
        let p = parse_compound(&raw).expect("parses");
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[0],
            RtcpPacket::ReceiverReport {
                ssrc: 10,
                reports: vec![ReportBlock {
                    ssrc: 11,
                    fraction_lost: 5,
                    cumulative_lost: -2,
                    highest_seq: 65552,
                    jitter: 40,
                    lsr: 0x1234_5678,
                    dlsr: 65536,
                }],
            }
        );
        assert_eq!(
            p[1],
            RtcpPacket::Sdes {
                chunks: vec![SdesChunk {
                    ssrc: 10,
                    cname: Some("u@h1".into())
                }]
            }
        );
        assert_eq!(p[2], RtcpPacket::Unknown { pt: 207, count: 0 });
        assert_eq!(p[3], RtcpPacket::Unknown { pt: 206, count: 15 });
        assert_eq!(p[4], RtcpPacket::Unknown { pt: 204, count: 0 });
    }

    #[test]
    fn bogus_lengths_are_errors() {
        let mut buf = BytesMut::new();
        let good = write_compound(&every_kind(), &mut buf).to_vec();
        // Truncate anywhere inside: never a panic, an error unless on a boundary.
        for n in 1..good.len() {
            let _ = parse_compound(&good[..n]);
        }
        assert!(matches!(
            parse_compound(&good[..3]),
            Err(RtcpError::Truncated { .. })
        ));
        // SR claiming 31 report blocks in a 28-byte packet.
        let sr = [
            0x9f, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(matches!(
            parse_compound(&sr),
            Err(RtcpError::Malformed { pt: 200, .. })
        ));
        // Length field past the end.
        assert!(matches!(
            parse_compound(&[0x80, 201, 0, 9, 0, 0, 0, 1]),
            Err(RtcpError::Length { declared: 40, .. })
        ));
        // Bad padding, bad version, lying SDES item, lying BYE reason.
        assert!(matches!(
            parse_compound(&[0xa0, 201, 0, 1, 0, 0, 0, 9]),
            Err(RtcpError::Padding { padding: 9, .. })
        ));
        assert!(matches!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Version { version: 1, .. })
        ));
        assert!(parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0]).is_err());
        assert!(parse_compound(&[0x81, 203, 0, 2, 0, 0, 0, 1, 7, b'a', 0, 0]).is_err());
        assert!(parse_compound(&[0x82, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        assert!(parse_compound(&[0x81, 206, 0, 1, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut buf = BytesMut::new();
        let good = write_compound(&every_kind(), &mut buf).to_vec();
        for _ in 0..50_000 {
            let mut data = if rng.random_bool(0.5) {
                good.clone()
            } else {
                (0..rng.random_range(0..80)).map(|_| rng.random()).collect()
            };
            for _ in 0..rng.random_range(0..4) {
                if !data.is_empty() {
                    let i = rng.random_range(0..data.len());
                    data[i] = rng.random();
                }
            }
            if !data.is_empty() && rng.random_bool(0.5) {
                data[0] = 0x80 | (data[0] & 0x3f);
            }
            let _ = parse_compound(&data);
        }
    }

    #[test]
    fn writer_caps_counts() {
        let p = RtcpPacket::ReceiverReport {
            ssrc: 1,
            reports: vec![block(1, 0); 40],
        };
        let mut buf = BytesMut::new();
        let bytes = write_compound(&[p], &mut buf);
        match &parse_compound(&bytes).expect("parses")[0] {
            RtcpPacket::ReceiverReport { reports, .. } => assert_eq!(reports.len(), 31),
            other => panic!("{other:?}"),
        }
    }
}
