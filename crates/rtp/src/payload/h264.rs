//! H.264 over RTP (RFC 6184): a packetization-mode 1 payloader and a
//! depacketizer for modes 0 and 1 (single NAL, STAP-A, FU-A).

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::packet::{RtpPacket, RTP_HEADER_LEN};
use crate::payload::error::{DepayError, DepayErrorKind, PayloaderError};
use crate::payload::traits::{Depayloader, Payloader};
use crate::payload::types::{DepacketizedUnit, MAX_H264_UNIT};

/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter (dropped by the payloader).
pub const NAL_AUD: u8 = 9;
/// Payload type byte value of a STAP-A (single-time aggregation packet).
pub const NAL_STAP_A: u8 = 24;
/// Payload type byte value of a FU-A (fragmentation unit).
pub const NAL_FU_A: u8 = 28;

const START_CODE: [u8; 4] = [0, 0, 0, 1];
// Smallest useful payload: a FU-A indicator, FU header and one byte.
const MIN_PAYLOAD: usize = 3;

/// The NAL units of an Annex-B byte stream (start codes of 3 or 4 bytes).
///
/// Bytes before the first start code are returned as a NAL too, so a bare NAL
/// without a start code still works. Trailing zero bytes (the leading zero of
/// a 4-byte start code, `trailing_zero_8bits`) are trimmed; empty NALs skipped.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        if pos >= data.len() {
            return None;
        }
        let (end, next) = match find_start_code(data, pos) {
            Some(sc) => (sc, sc + 3),
            None => (data.len(), data.len()),
        };
        let nal = trim_trailing_zeros(&data[pos..end]);
        pos = next;
        if !nal.is_empty() {
            return Some(nal);
        }
    })
}

fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|p| p + from)
}

fn trim_trailing_zeros(mut nal: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = nal {
        nal = rest;
    }
    nal
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Non-VCL NALs that go ahead of a picture and are worth aggregating.
fn is_parameter_nal(nal: &[u8]) -> bool {
    matches!(nal_type(nal), NAL_SEI | NAL_SPS | NAL_PPS)
}

/// Splits Annex-B access units into RTP payloads (packetization-mode 1).
#[derive(Debug)]
pub struct H264Payloader {
    max_payload: usize,
    nals: Vec<Range<usize>>,
    stap: Vec<u8>,
}

impl H264Payloader {
    /// A payloader whose packets, with a 12-byte RTP header, fit in `mtu` bytes.
    pub fn new(mtu: usize) -> Result<Self, PayloaderError> {
        let min = RTP_HEADER_LEN + MIN_PAYLOAD;
        if mtu < min {
            return Err(PayloaderError::MtuTooSmall { mtu, min });
        }
        Ok(Self {
            max_payload: mtu - RTP_HEADER_LEN,
            nals: Vec::new(),
            stap: Vec::new(),
        })
    }

    /// The largest payload a packet carries.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Packetizes one access unit, calling `emit(parts, marker)` per packet.
    ///
    /// A packet's payload is the concatenation of `parts`. AUD NALs are
    /// dropped; the marker is set on the last packet only. Returns how many
    /// packets were emitted (0 for a unit with no NALs).
    pub fn packetize<F: FnMut(&[&[u8]], bool)>(&mut self, au: &[u8], mut emit: F) -> usize {
        let base = au.as_ptr() as usize;
        let mut nals = std::mem::take(&mut self.nals);
        nals.clear();
        nals.extend(nal_units(au).filter(|n| nal_type(n) != NAL_AUD).map(|n| {
            let start = n.as_ptr() as usize - base;
            start..start + n.len()
        }));
        let n = nals.len();
        let mut count = 0;
        let mut i = 0;
        while i < n {
            let nal = &au[nals[i].clone()];
            if is_parameter_nal(nal) {
                let mut size = 1;
                let mut j = i;
                while j < n {
                    let next = &au[nals[j].clone()];
                    if !is_parameter_nal(next)
                        || next.len() > usize::from(u16::MAX)
                        || size + 2 + next.len() > self.max_payload
                    {
                        break;
                    }
                    size += 2 + next.len();
                    j += 1;
                }
                if j - i >= 2 {
                    self.stap.clear();
                    let (mut f, mut nri) = (0u8, 0u8);
                    for r in &nals[i..j] {
                        let nal = &au[r.clone()];
                        f |= nal[0] & 0x80;
                        nri = nri.max(nal[0] & 0x60);
                        self.stap
                            .extend_from_slice(&(nal.len() as u16).to_be_bytes());
                        self.stap.extend_from_slice(nal);
                    }
                    let hdr = [f | nri | NAL_STAP_A];
                    emit(&[&hdr, &self.stap], j == n);
                    count += 1;
                    i = j;
                    continue;
                }
            }
            let last = i + 1 == n;
            if nal.len() <= self.max_payload {
                emit(&[nal], last);
                count += 1;
            } else {
                count += self.fragment(nal, last, &mut emit);
            }
            i += 1;
        }
        self.nals = nals;
        count
    }

    fn fragment<F: FnMut(&[&[u8]], bool)>(&self, nal: &[u8], last: bool, emit: &mut F) -> usize {
        let hdr = nal[0];
        let body = &nal[1..];
        let room = self.max_payload - 2;
        // Spread the body evenly rather than leave a runt last fragment.
        let frags = body.len().div_ceil(room);
        let size = body.len().div_ceil(frags);
        let indicator = (hdr & 0xe0) | NAL_FU_A;
        for (k, chunk) in body.chunks(size).enumerate() {
            let start = if k == 0 { 0x80 } else { 0 };
            let end = if k + 1 == frags { 0x40 } else { 0 };
            let fu = [indicator, start | end | (hdr & 0x1f)];
            emit(&[&fu, chunk], last && end != 0);
        }
        frags
    }
}

impl Payloader for H264Payloader {
    fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        unit: &[u8],
        emit: F,
    ) -> Result<usize, PayloaderError> {
        Ok(H264Payloader::packetize(self, unit, emit))
    }
}

/// Counters of what an [`H264Depacketizer`] threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H264DepayStats {
    /// Packets dropped whole (malformed, unsupported, FU-A without start).
    pub dropped_packets: u64,
    /// Partially reassembled FU-A NALs discarded after a loss.
    pub dropped_partial_nals: u64,
    /// Access units dropped whole for growing past [`MAX_H264_UNIT`].
    pub oversized_units: u64,
    /// Access units emitted.
    pub units: u64,
    /// Access units emitted with `complete: false`.
    pub incomplete_units: u64,
}

/// Reassembles RTP payloads into Annex-B access units.
///
/// Packets must come in sequence order (the jitter buffer's job); a sequence
/// gap marks the unit in progress, and the next one, incomplete.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    au: BytesMut,
    au_ts: Option<u32>,
    au_complete: bool,
    au_keyframe: bool,
    last_seq: Option<u16>,
    // Offset in `au` where the FU-A NAL being reassembled starts.
    fu_start: Option<usize>,
    // The unit in progress passed MAX_H264_UNIT: what it held is gone and
    // the rest of its packets are skipped.
    au_oversized: bool,
    // A unit was dropped for its size: the next one refers to it.
    lost_unit: bool,
    ready: VecDeque<DepacketizedUnit>,
    stats: H264DepayStats,
}

impl H264Depacketizer {
    /// An idle depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been dropped so far.
    pub fn stats(&self) -> H264DepayStats {
        self.stats
    }

    /// Takes the next completed access unit.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    /// Bytes of the access unit in progress (never more than [`MAX_H264_UNIT`]).
    pub fn buffered(&self) -> usize {
        self.au.len()
    }

    /// Ends the access unit in progress, queueing it if it holds any NAL.
    pub fn flush(&mut self) {
        self.finish_au();
    }

    /// Feeds one packet. An `Err` means this packet was dropped (and counted);
    /// the depacketizer stays usable.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        let seq = pkt.header.sequence;
        let ts = pkt.header.timestamp;
        let gap = self.last_seq.is_some_and(|l| seq != l.wrapping_add(1));
        self.last_seq = Some(seq);
        if let Some(cur) = self.au_ts {
            if gap {
                self.au_complete = false;
                self.drop_open_fu();
            }
            if cur != ts {
                self.finish_au();
            }
        }
        if self.au_ts.is_none() {
            self.au_ts = Some(ts);
            self.au_complete = !gap && !std::mem::take(&mut self.lost_unit);
            self.au_keyframe = false;
        }
        let result = self.push_payload(pkt);
        if result.is_err() {
            self.stats.dropped_packets += 1;
            self.au_complete = false;
        }
        if pkt.header.marker {
            self.finish_au();
        }
        result
    }

    fn push_payload(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        let p = &pkt.payload[..];
        let err = |kind| Err(DepayError::new(pkt, kind));
        let Some(&hdr) = p.first() else {
            return err(DepayErrorKind::Empty);
        };
        if self.au_oversized {
            // Part of a unit already dropped and counted.
            return Ok(());
        }
        // What this packet adds at most (a start code per NAL it carries):
        // checked before anything is copied, so the unit never grows past
        // the cap however long its sender keeps it open.
        let len = self.au.len() + p.len() + START_CODE.len() * p.len().div_ceil(3);
        if len > MAX_H264_UNIT {
            self.au.clear();
            self.fu_start = None;
            self.au_oversized = true;
            self.au_complete = false;
            self.stats.oversized_units += 1;
            return err(DepayErrorKind::UnitTooLarge {
                len,
                limit: MAX_H264_UNIT,
            });
        }
        match hdr & 0x1f {
            t @ 1..=23 => {
                self.drop_open_fu();
                self.append_nal(t, &[p]);
            }
            NAL_STAP_A => {
                self.drop_open_fu();
                let mut off = 1;
                while off < p.len() {
                    let size = match p.get(off..off + 2) {
                        Some(s) => usize::from(u16::from_be_bytes([s[0], s[1]])),
                        None => usize::MAX,
                    };
                    if size == 0 || size == usize::MAX || off + 2 + size > p.len() {
                        return err(DepayErrorKind::StapLength {
                            size: if size == usize::MAX { 0 } else { size },
                            offset: off,
                            len: p.len(),
                        });
                    }
                    off += 2 + size;
                }
                let mut off = 1;
                while off + 2 <= p.len() {
                    let size = usize::from(u16::from_be_bytes([p[off], p[off + 1]]));
                    let nal = &p[off + 2..off + 2 + size];
                    self.append_nal(nal_type(nal), &[nal]);
                    off += 2 + size;
                }
            }
            NAL_FU_A => {
                let Some(&fu) = p.get(1) else {
                    self.drop_open_fu();
                    return err(DepayErrorKind::FuTooShort(p.len()));
                };
                let (start, end, t) = (fu & 0x80 != 0, fu & 0x40 != 0, fu & 0x1f);
                if start {
                    let unterminated = self.fu_start.is_some();
                    self.drop_open_fu();
                    self.fu_start = Some(self.au.len());
                    self.append_nal(t, &[&[(hdr & 0xe0) | t], &p[2..]]);
                    if unterminated {
                        // The open NAL is gone but this fragment is kept.
                        self.au_complete = false;
                    }
                } else if self.fu_start.is_some() {
                    self.au.put_slice(&p[2..]);
                } else {
                    return err(DepayErrorKind::FuWithoutStart);
                }
                if end {
                    self.fu_start = None;
                }
            }
            t => return err(DepayErrorKind::UnsupportedNalType(t)),
        }
        Ok(())
    }

    fn append_nal(&mut self, t: u8, parts: &[&[u8]]) {
        if t == NAL_IDR || t == NAL_SPS {
            self.au_keyframe = true;
        }
        self.au.put_slice(&START_CODE);
        for part in parts {
            self.au.put_slice(part);
        }
    }

    fn drop_open_fu(&mut self) {
        if let Some(start) = self.fu_start.take() {
            self.au.truncate(start);
            self.au_complete = false;
            self.stats.dropped_partial_nals += 1;
        }
    }

    fn finish_au(&mut self) {
        self.drop_open_fu();
        if std::mem::take(&mut self.au_oversized) {
            self.lost_unit = true;
        }
        let Some(ts) = self.au_ts.take() else {
            return;
        };
        if self.au.is_empty() {
            return;
        }
        self.stats.units += 1;
        if !self.au_complete {
            self.stats.incomplete_units += 1;
        }
        self.ready.push_back(DepacketizedUnit {
            data: self.au.split().freeze(),
            timestamp: ts,
            keyframe: self.au_keyframe,
            complete: self.au_complete,
        });
    }
}

impl Depayloader for H264Depacketizer {
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        H264Depacketizer::push(self, pkt)
    }

    fn pop(&mut self) -> Option<DepacketizedUnit> {
        H264Depacketizer::pop(self)
    }

    fn flush(&mut self) {
        H264Depacketizer::flush(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpHeader;
    use bytes::Bytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Builds an Annex-B unit from (type, len) NAL specs with 4-byte start codes.
    fn au(rng: &mut StdRng, nals: &[(u8, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(t, len) in nals {
            out.extend_from_slice(&START_CODE);
            out.push(0x60 | t);
            // No zero bytes: no accidental start codes, no trailing zeros.
            out.extend((1..len).map(|_| rng.random_range(1..=255u8)));
        }
        out
    }

    fn packetize(p: &mut H264Payloader, au: &[u8], seq0: u16, ts: u32) -> Vec<RtpPacket> {
        let mut pkts = Vec::new();
        let mut seq = seq0;
        p.packetize(au, |parts, marker| {
            let payload: Vec<u8> = parts.concat();
            pkts.push(RtpPacket {
                header: RtpHeader {
                    marker,
                    payload_type: 96,
                    sequence: seq,
                    timestamp: ts,
                    ssrc: 42,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(payload),
                padding: 0,
            });
            seq = seq.wrapping_add(1);
        });
        pkts
    }

    /// A sender that opens a FU-A and never ends it (same timestamp, no end
    /// bit, no marker): the unit is bounded while it grows, dropped and
    /// counted once at the cap, and the next unit says it refers to a lost one.
    #[test]
    fn a_unit_that_never_ends_is_capped_while_it_grows() {
        let mut d = H264Depacketizer::new();
        let pkt = |seq: u16, ts: u32, marker: bool, payload: Vec<u8>| RtpPacket {
            header: RtpHeader {
                marker,
                payload_type: 96,
                sequence: seq,
                timestamp: ts,
                ssrc: 42,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(payload),
            padding: 0,
        };
        let body = vec![0x55u8; 1400];
        let mut start = vec![0x7c, 0x85];
        start.extend_from_slice(&body);
        d.push(&pkt(0, 9000, false, start)).expect("FU-A start");
        let mut middle = vec![0x7c, 0x05];
        middle.extend_from_slice(&body);
        let mut errors = Vec::new();
        // 20 000 fragments: 28 MB, three and a half times the cap.
        for seq in 1..=20_000u16 {
            if let Err(e) = d.push(&pkt(seq, 9000, false, middle.clone())) {
                errors.push((seq, e.kind));
            }
            assert!(d.buffered() <= MAX_H264_UNIT, "{} bytes", d.buffered());
            assert!(d.pop().is_none());
        }
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (seq, kind) = &errors[0];
        assert!(
            matches!(kind, DepayErrorKind::UnitTooLarge { limit, .. } if *limit == MAX_H264_UNIT)
        );
        assert!(usize::from(*seq) * 1400 > MAX_H264_UNIT - 8 * 1400);
        assert_eq!(d.buffered(), 0, "the dropped unit's bytes are let go");
        assert_eq!(d.stats().oversized_units, 1);
        // The next unit comes whole but refers to the dropped one.
        d.push(&pkt(20_001, 12_000, true, vec![0x41, 1, 2, 3]))
            .expect("a slice");
        let u = d.pop().expect("the next unit");
        assert_eq!((u.timestamp, u.complete), (12_000, false));
        assert_eq!(&u.data[..], &[0, 0, 0, 1, 0x41, 1, 2, 3]);
        // And the one after it is complete again.
        d.push(&pkt(20_002, 15_000, true, vec![0x65, 4, 5]))
            .expect("an IDR");
        let u = d.pop().expect("an IDR unit");
        assert!(u.complete && u.keyframe);
    }

    fn check_round_trip(mtu: usize, nals: &[(u8, usize)]) -> Vec<RtpPacket> {
        let mut rng = StdRng::seed_from_u64(nals.len() as u64 + mtu as u64);
        let unit = au(&mut rng, nals);
        let mut p = H264Payloader::new(mtu).expect("mtu");
        let pkts = packetize(&mut p, &unit, 65530, 1234);
        assert!(!pkts.is_empty());
        for (i, pkt) in pkts.iter().enumerate() {
            assert!(
                RTP_HEADER_LEN + pkt.payload.len() <= mtu,
                "packet {i} too big"
            );
            assert_eq!(pkt.header.marker, i + 1 == pkts.len(), "marker on {i}");
        }
        let mut d = H264Depacketizer::new();
        for pkt in &pkts {
            d.push(pkt).expect("valid packet");
        }
        let out = d.pop().expect("a unit");
        assert!(d.pop().is_none());
        assert_eq!(out.data, unit, "round trip for {nals:?} at mtu {mtu}");
        assert!(out.complete);
        assert_eq!(out.timestamp, 1234);
        let key = nals.iter().any(|&(t, _)| t == NAL_IDR || t == NAL_SPS);
        assert_eq!(out.keyframe, key);
        assert_eq!(d.stats().dropped_packets, 0);
        pkts
    }

    #[test]
    fn tiny_unit_is_one_single_nal_packet() {
        let pkts = check_round_trip(1200, &[(1, 1)]);
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].payload.len(), 1);
    }

    #[test]
    fn unit_just_over_mtu_is_two_fragments() {
        let max = 1200 - RTP_HEADER_LEN;
        check_round_trip(1200, &[(1, max)]);
        let pkts = check_round_trip(1200, &[(1, max + 1)]);
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].payload[0] & 0x1f, NAL_FU_A);
    }

    #[test]
    fn huge_unit_over_64k() {
        let pkts = check_round_trip(1200, &[(NAL_IDR, 200_000)]);
        assert_eq!(pkts.len(), 200_000usize.div_ceil(1200 - 12 - 2));
        let pkts = check_round_trip(1500, &[(1, 70_000), (1, 66_000)]);
        assert!(pkts.len() > 90);
    }

    #[test]
    fn parameter_sets_aggregate_into_stap_a() {
        let pkts = check_round_trip(
            1200,
            &[(NAL_SPS, 20), (NAL_PPS, 5), (NAL_SEI, 30), (NAL_IDR, 3000)],
        );
        assert_eq!(pkts[0].payload[0] & 0x1f, NAL_STAP_A);
        assert_eq!(pkts[0].payload.len(), 1 + 2 + 20 + 2 + 5 + 2 + 30);
        assert_eq!(pkts.len(), 4);
        // Only parameter sets: the STAP-A itself carries the marker.
        let pkts = check_round_trip(1200, &[(NAL_SPS, 20), (NAL_PPS, 5)]);
        assert_eq!(pkts.len(), 1);
        // Too big to aggregate: single NALs and FU-A instead.
        let pkts = check_round_trip(100, &[(NAL_SPS, 60), (NAL_PPS, 50), (NAL_IDR, 10)]);
        assert_eq!(pkts.len(), 3);
        check_round_trip(40, &[(NAL_SPS, 60), (NAL_PPS, 5), (NAL_IDR, 10)]);
    }

    #[test]
    fn many_shapes_round_trip() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mtu = rng.random_range(15..1600);
            let n = rng.random_range(1..6);
            let nals: Vec<(u8, usize)> = (0..n)
                .map(|_| {
                    let t = [1, 5, 6, 7, 8][rng.random_range(0..5)];
                    (t, rng.random_range(1..5000))
                })
                .collect();
            check_round_trip(mtu, &nals);
        }
    }

    #[test]
    fn aud_is_dropped_and_three_byte_start_codes_accepted() {
        let unit = [
            0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 1, 0x41, 3,
        ];
        let mut p = H264Payloader::new(1200).expect("mtu");
        let pkts = packetize(&mut p, &unit, 0, 0);
        assert_eq!(pkts.len(), 2);
        let mut d = H264Depacketizer::new();
        for pkt in &pkts {
            d.push(pkt).expect("ok");
        }
        let out = d.pop().expect("unit");
        assert_eq!(
            &out.data[..],
            &[0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 1, 0x41, 3]
        );
        assert!(out.keyframe);
    }

    #[test]
    fn nal_splitter_edge_cases() {
        let v: Vec<&[u8]> = nal_units(&[0x67, 1, 0, 0, 1, 0x68, 0, 0, 0, 0, 1]).collect();
        assert_eq!(v, [&[0x67, 1][..], &[0x68]]);
        assert_eq!(nal_units(&[0, 0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1]).count(), 0);
    }

    fn two_units() -> (Vec<RtpPacket>, Vec<u8>, Vec<u8>) {
        let mut rng = StdRng::seed_from_u64(3);
        let a = au(&mut rng, &[(NAL_SPS, 10), (NAL_PPS, 4), (NAL_IDR, 3000)]);
        let b = au(&mut rng, &[(1, 2500)]);
        let mut p = H264Payloader::new(1000).expect("mtu");
        let mut pkts = packetize(&mut p, &a, 100, 9000);
        pkts.extend(packetize(&mut p, &b, 100 + pkts.len() as u16, 12000));
        (pkts, a, b)
    }

    #[test]
    fn lost_middle_fragment_drops_the_nal_and_flags_the_unit() {
        let (pkts, _, b) = two_units();
        // pkts: STAP-A, IDR FU x4, P FU x3
        assert_eq!(pkts.len(), 8);
        let mut d = H264Depacketizer::new();
        for (i, pkt) in pkts.iter().enumerate() {
            if i == 2 {
                continue; // lost
            }
            let r = d.push(pkt);
            if i == 3 {
                assert!(matches!(
                    r,
                    Err(DepayError {
                        kind: DepayErrorKind::FuWithoutStart,
                        ..
                    })
                ));
            }
        }
        let first = d.pop().expect("first unit");
        assert!(!first.complete);
        assert!(first.keyframe);
        // Only the STAP-A's NALs remain.
        assert_eq!(first.data.len(), 4 + 10 + 4 + 4);
        let second = d.pop().expect("second unit");
        assert!(second.complete);
        assert_eq!(second.data, b);
        assert_eq!(d.stats().dropped_partial_nals, 1);
        assert_eq!(d.stats().dropped_packets, 2);
    }

    #[test]
    fn loss_of_marker_packet_is_detected_by_timestamp_change() {
        let (pkts, _, b) = two_units();
        let mut d = H264Depacketizer::new();
        for (i, pkt) in pkts.iter().enumerate() {
            if i != 4 {
                let _ = d.push(pkt);
            }
        }
        let first = d.pop().expect("first");
        assert!(!first.complete);
        assert_eq!(d.stats().dropped_partial_nals, 1);
        let second = d.pop().expect("second");
        // A gap right before a unit starts: we cannot know whose packet it was.
        assert!(!second.complete);
        assert_eq!(second.data, b);
    }

    #[test]
    fn lying_stap_a_is_dropped() {
        let mut d = H264Depacketizer::new();
        let mk = |payload: &'static [u8], seq| RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 96,
                sequence: seq,
                timestamp: 1,
                ssrc: 5,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from_static(payload),
            padding: 0,
        };
        for (i, bad) in [
            &[24u8, 0, 9, 0x67][..],
            &[24, 0],
            &[24, 0, 0],
            &[24, 0, 1, 0x67, 0, 5, 1],
        ]
        .into_iter()
        .enumerate()
        {
            let r = d.push(&mk(bad, i as u16));
            assert!(
                matches!(
                    r,
                    Err(DepayError {
                        kind: DepayErrorKind::StapLength { .. },
                        seq,
                        ..
                    }) if seq == i as u16
                ),
                "{r:?}"
            );
        }
        assert!(d.pop().is_none());
        assert_eq!(d.stats().dropped_packets, 4);
        for bad in [&[][..], &[28], &[25, 1], &[0]] {
            assert!(d.push(&mk(bad, 9)).is_err());
        }
        d.push(&mk(&[24, 0, 1, 0x67, 0, 1, 0x68], 10)).expect("ok");
        let u = d.pop().expect("unit");
        assert_eq!(&u.data[..], &[0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x68]);
        assert!(
            u.complete,
            "each packet was its own unit; 9 to 10 is no gap"
        );
    }

    #[test]
    fn mode_zero_sender_without_marker() {
        let mut d = H264Depacketizer::new();
        for (seq, ts, nal) in [(1u16, 10u32, 0x67u8), (2, 10, 0x65), (3, 20, 0x41)] {
            let pkt = RtpPacket {
                header: RtpHeader {
                    marker: false,
                    payload_type: 96,
                    sequence: seq,
                    timestamp: ts,
                    ssrc: 1,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(vec![nal, 1]),
                padding: 0,
            };
            d.push(&pkt).expect("ok");
        }
        let u = d.pop().expect("ts change ends the unit");
        assert!(u.complete && u.keyframe);
        assert_eq!(u.timestamp, 10);
        assert!(d.pop().is_none());
        d.flush();
        let u = d.pop().expect("flushed");
        assert!(!u.keyframe);
        assert_eq!(&u.data[..], &[0, 0, 0, 1, 0x41, 1]);
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut d = H264Depacketizer::new();
        for i in 0..20_000u32 {
            let len = rng.random_range(0..40);
            let mut payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = payload.first_mut() {
                *b = (*b & 0xe0) | [1, 5, 24, 28, 28, 25, 0][rng.random_range(0..7)];
            }
            let pkt = RtpPacket {
                header: RtpHeader {
                    marker: rng.random_bool(0.2),
                    payload_type: 96,
                    sequence: rng.random_range(0..8),
                    timestamp: i / 5,
                    ssrc: 1,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(payload),
                padding: 0,
            };
            let _ = d.push(&pkt);
            while d.pop().is_some() {}
        }
    }
}
