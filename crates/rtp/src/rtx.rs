//! Loss repair by retransmission: generic NACK (RFC 4585 §6.2.1) from the
//! receiver, RTX (RFC 4588, SSRC-multiplexed) from the sender.
//!
//! The pieces here are used by [`crate::sender::RtpSender`] and
//! [`crate::receiver::RtpReceiver`] when their configs carry an
//! [`RtxConfig`] / [`RtxReceiveConfig`]:
//!
//! - the sender keeps a history of what it sent, bounded in bytes and age,
//!   and answers each NACKed sequence number with an RTX packet: its own SSRC
//!   and sequence numbers, payload type 98 (apt = the media's 96), the
//!   original sequence number (OSN) in the first two payload bytes, then the
//!   original payload; a packet is resent at most once per half round trip,
//!   however often it is asked for;
//! - the receiver notes every gap, NACKs each missing packet once it has had
//!   time to arrive reordered, retries a bounded number of times while the
//!   packet can still be played out, and puts what RTX brings back into the
//!   jitter buffer under its original number. The jitter buffer's latency is
//!   the repair budget: fixed, or three measured round trips (20..200 ms).
//!
//! Round trips are measured on the receiver from NACK to RTX, as GStreamer's
//! rtpjitterbuffer does: it works with any RTX sender (RTCP gives a receiver
//! no round trip of its own without RFC 3611 XR, which GStreamer's senders do
//! not answer), and only packets NACKed once are sampled (Karn), so a late
//! answer to a first NACK is not taken for a quick answer to a retry.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::packet::{RtpHeader, RtpPacket};

/// pstream's default RTX payload type (associated with H.264's 96).
pub const PT_RTX: u8 = 98;
/// Default bound on the sender's history in bytes.
pub const DEFAULT_HISTORY_BYTES: usize = 1 << 20;
/// Default bound on the age of a packet in the sender's history.
pub const DEFAULT_HISTORY_AGE: Duration = Duration::from_secs(1);
/// Shortest automatic repair budget.
pub const MIN_AUTO_LATENCY: Duration = Duration::from_millis(20);
/// Longest automatic repair budget (also the budget before a round trip has
/// been measured).
pub const MAX_AUTO_LATENCY: Duration = Duration::from_millis(200);

/// Retransmission on the sending side.
#[derive(Debug, Clone, PartialEq)]
pub struct RtxConfig {
    /// Payload type of RTX packets (the SDP's `a=rtpmap:98 rtx/90000`).
    pub payload_type: u8,
    /// SSRC of the RTX stream; `None` picks a random one.
    pub ssrc: Option<u32>,
    /// Most bytes of sent packets kept for resending.
    pub history_bytes: usize,
    /// Longest a sent packet is kept for resending.
    pub history_age: Duration,
    /// Retransmitted bytes may be at most this share of the media bytes
    /// sent (a token bucket filled by the media), so a NACK flood cannot
    /// turn the sender into an amplifier: past it, requests are dropped
    /// and counted.
    pub max_share: f64,
    /// The bucket's size in bytes: how much may be resent at once.
    pub burst_bytes: usize,
}

/// Default [`RtxConfig::max_share`]: retransmissions at most double the stream.
pub const DEFAULT_RTX_SHARE: f64 = 1.0;
/// Default [`RtxConfig::burst_bytes`].
pub const DEFAULT_RTX_BURST: usize = 256 * 1024;

impl Default for RtxConfig {
    fn default() -> Self {
        Self {
            payload_type: PT_RTX,
            ssrc: None,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_age: DEFAULT_HISTORY_AGE,
            max_share: DEFAULT_RTX_SHARE,
            burst_bytes: DEFAULT_RTX_BURST,
        }
    }
}

impl RtxConfig {
    /// The defaults with another RTX payload type.
    pub fn with_payload_type(payload_type: u8) -> Self {
        Self {
            payload_type,
            ..Self::default()
        }
    }
}

/// Retransmission on the receiving side.
#[derive(Debug, Clone, PartialEq)]
pub struct RtxReceiveConfig {
    /// Payload type that marks RTX packets on the media port.
    pub payload_type: u8,
    /// Whether the repair budget (the jitter buffer's latency) follows the
    /// measured round trip instead of [`crate::receiver::ReceiverConfig::latency`].
    pub auto_latency: bool,
    /// The automatic budget is this many smoothed round trips...
    pub rtt_factor: f64,
    /// ...but at least this...
    pub min_latency: Duration,
    /// ...and at most this (also the budget before any round trip is known).
    pub max_latency: Duration,
    /// Most NACKs sent for one packet.
    pub max_nacks: u8,
    /// Shortest time between two NACK messages (requests due meanwhile wait
    /// and go out together).
    pub nack_interval: Duration,
    /// Most missing packets tracked at once; older ones are given up.
    pub max_tracked: usize,
}

impl Default for RtxReceiveConfig {
    fn default() -> Self {
        Self {
            payload_type: PT_RTX,
            auto_latency: true,
            rtt_factor: 3.0,
            min_latency: MIN_AUTO_LATENCY,
            max_latency: MAX_AUTO_LATENCY,
            max_nacks: 3,
            nack_interval: Duration::from_millis(5),
            max_tracked: 1024,
        }
    }
}

impl RtxReceiveConfig {
    /// The defaults with another RTX payload type.
    pub fn with_payload_type(payload_type: u8) -> Self {
        Self {
            payload_type,
            ..Self::default()
        }
    }

    /// The defaults with a fixed budget (`auto_latency` off).
    pub fn fixed_latency(mut self) -> Self {
        self.auto_latency = false;
        self
    }
}

/// Builds the RTX packet (RFC 4588 §4) for `original`, a whole RTP datagram:
/// the original's header with the RTX SSRC, sequence number and payload type,
/// then the OSN and the original payload. Padding is dropped; CSRCs, header
/// extension, marker and timestamp are kept. `None` if `original` is not RTP.
pub fn rtx_packet(
    original: &Bytes,
    payload_type: u8,
    sequence: u16,
    ssrc: u32,
    buf: &mut BytesMut,
) -> Option<Bytes> {
    let pkt = RtpPacket::parse(original.clone()).ok()?;
    let osn = pkt.header.sequence;
    let head = RtpPacket {
        header: RtpHeader {
            payload_type,
            sequence,
            ssrc,
            ..pkt.header
        },
        payload: Bytes::new(),
        padding: 0,
        ..pkt.clone()
    };
    buf.reserve(original.len() + 2);
    head.write_to(buf).ok()?;
    buf.put_u16(osn);
    buf.put_slice(&pkt.payload);
    Some(buf.split().freeze())
}

/// The original packet inside an RTX packet, under the media `ssrc` and
/// `payload_type`; `None` if the RTX payload cannot hold an OSN.
pub fn restore_original(rtx: &RtpPacket, ssrc: u32, payload_type: u8) -> Option<RtpPacket> {
    let osn = u16::from_be_bytes([*rtx.payload.first()?, *rtx.payload.get(1)?]);
    Some(RtpPacket {
        header: RtpHeader {
            payload_type,
            sequence: osn,
            ssrc,
            ..rtx.header
        },
        payload: rtx.payload.slice(2..),
        padding: 0,
        ..rtx.clone()
    })
}

#[derive(Debug)]
struct Sent {
    seq: u16,
    at: Instant,
    data: Bytes,
    last_resent: Option<Instant>,
}

/// What the history has for a NACKed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Resend this datagram.
    Resend(Bytes),
    /// Not (or no longer) in the history.
    Missing,
    /// Resent too recently to send again.
    Suppressed,
}

/// The sender's record of what it sent, in sequence order, bounded in bytes
/// and age.
#[derive(Debug)]
pub(crate) struct History {
    items: VecDeque<Sent>,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
}

impl History {
    pub(crate) fn new(max_bytes: usize, max_age: Duration) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age,
        }
    }

    /// Records a datagram just sent with sequence number `seq`.
    pub(crate) fn push(&mut self, now: Instant, seq: u16, data: Bytes) {
        // The history is indexed by distance from its first entry, so it
        // must hold consecutive numbers: a jump (never made by the sender
        // itself) starts it afresh.
        if let Some(last) = self.items.back() {
            if last.seq.wrapping_add(1) != seq {
                self.items.clear();
                self.bytes = 0;
            }
        }
        self.bytes += data.len();
        self.items.push_back(Sent {
            seq,
            at: now,
            data,
            last_resent: None,
        });
        self.expire(now);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(front) = self.items.front() {
            let old = now.saturating_duration_since(front.at) > self.max_age;
            if !(old || self.bytes > self.max_bytes) {
                break;
            }
            self.bytes -= front.data.len();
            self.items.pop_front();
        }
    }

    /// Looks `seq` up for resending at `now`; a packet resent less than
    /// `min_interval` ago is not resent again.
    pub(crate) fn lookup(&mut self, now: Instant, seq: u16, min_interval: Duration) -> Lookup {
        self.expire(now);
        let Some(first) = self.items.front().map(|s| s.seq) else {
            return Lookup::Missing;
        };
        let Some(item) = self.items.get_mut(usize::from(seq.wrapping_sub(first))) else {
            return Lookup::Missing;
        };
        if item
            .last_resent
            .is_some_and(|t| now.saturating_duration_since(t) < min_interval)
        {
            return Lookup::Suppressed;
        }
        item.last_resent = Some(now);
        Lookup::Resend(item.data.clone())
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A smoothed round-trip time (RFC 6298's filter).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    samples: u64,
}

impl RttEstimator {
    /// Adds one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        self.samples += 1;
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round trip, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Its mean deviation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// How many round trips were measured.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Missing {
    /// When the gap was seen (the packet after it arrived).
    pub(crate) detected: Instant,
    /// When to NACK it next; `None` once no NACK is left to send.
    due: Option<Instant>,
    /// NACKs sent for it.
    pub(crate) sent: u8,
    /// When the last NACK for it went out.
    pub(crate) last_sent: Option<Instant>,
}

/// The receiver's list of missing packets and when to NACK each.
#[derive(Debug)]
pub(crate) struct NackTracker {
    missing: BTreeMap<u64, Missing>,
    cap: usize,
    /// Missing packets never tracked or forgotten because of `cap`.
    pub(crate) overflowed: u64,
}

/// What [`NackTracker::take_due`] needs to know about timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NackTiming {
    /// Requests due before this go out now too.
    pub(crate) batch_until: Instant,
    /// Wait before the next NACK for the same packet.
    pub(crate) retry: Duration,
    /// Most NACKs per packet.
    pub(crate) max_nacks: u8,
    /// How long the jitter buffer waits for a packet after its gap was seen.
    pub(crate) budget: Duration,
    /// Expected time for a NACK to be answered, if measured.
    pub(crate) srtt: Option<Duration>,
}

impl NackTracker {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            missing: BTreeMap::new(),
            cap: cap.max(1),
            overflowed: 0,
        }
    }

    /// Notes the packets `from..to` missing, seen at `now`, first NACK due at `due`.
    pub(crate) fn gap(&mut self, now: Instant, from: u64, to: u64, due: Instant) {
        let start = from.max(to.saturating_sub(self.cap as u64));
        self.overflowed += start - from;
        for ext in start..to {
            self.missing.entry(ext).or_insert(Missing {
                detected: now,
                due: Some(due),
                sent: 0,
                last_sent: None,
            });
        }
        while self.missing.len() > self.cap {
            self.missing.pop_first();
            self.overflowed += 1;
        }
    }

    /// A missing packet arrived (in the original or an RTX); what was known.
    pub(crate) fn arrived(&mut self, ext: u64) -> Option<Missing> {
        self.missing.remove(&ext)
    }

    /// Whether `ext` is missing.
    pub(crate) fn contains(&self, ext: u64) -> bool {
        self.missing.contains_key(&ext)
    }

    /// When the next NACK is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.missing.values().filter_map(|m| m.due).min()
    }

    /// The packets to NACK at `now`, marked as NACKed.
    pub(crate) fn take_due(&mut self, now: Instant, t: NackTiming) -> Vec<u64> {
        let mut out = Vec::new();
        for (&ext, m) in self.missing.iter_mut() {
            let Some(due) = m.due else { continue };
            if due > t.batch_until {
                continue;
            }
            // No use asking for what cannot be back before the jitter buffer
            // gives up on it.
            let deadline = m.detected + t.budget;
            if t.srtt.is_some_and(|rtt| now + rtt > deadline) {
                m.due = None;
                continue;
            }
            m.sent = m.sent.saturating_add(1);
            m.last_sent = Some(now);
            m.due = (m.sent < t.max_nacks).then_some(now + t.retry);
            out.push(ext);
        }
        out
    }

    /// Forgets every packet up to and including `ext` (the jitter buffer
    /// moved past them); returns how many of them had been NACKed.
    pub(crate) fn release_through(&mut self, ext: u64) -> u64 {
        let rest = self.missing.split_off(&(ext + 1));
        let gone = std::mem::replace(&mut self.missing, rest);
        gone.values().filter(|m| m.sent > 0).count() as u64
    }

    /// Packets tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.missing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(seq: u16, payload: &'static [u8]) -> Bytes {
        let mut b = BytesMut::new();
        RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 96,
                sequence: seq,
                timestamp: 0x1234_5678,
                ssrc: 0xaaaa,
            },
            csrcs: vec![7],
            extension: Some(crate::packet::RtpExtension {
                profile: 0xbede,
                data: Bytes::from_static(&[0x10, 1, 0, 0]),
            }),
            payload: Bytes::from_static(payload),
            padding: 4,
        }
        .write_to(&mut b)
        .expect("valid");
        b.freeze()
    }

    #[test]
    fn rtx_packet_wraps_and_restores_the_original() {
        let orig = media(0xfffe, b"payload");
        let rtx = rtx_packet(&orig, 98, 7, 0xbbbb, &mut BytesMut::new()).expect("rtp");
        let p = RtpPacket::parse(rtx.clone()).expect("parses");
        assert_eq!(p.header.payload_type, 98);
        assert_eq!(p.header.sequence, 7);
        assert_eq!(p.header.ssrc, 0xbbbb);
        assert_eq!(p.header.timestamp, 0x1234_5678);
        assert!(p.header.marker);
        assert_eq!(p.csrcs, [7]);
        assert_eq!(p.padding, 0, "RFC 4588: padding is not carried over");
        assert_eq!(&p.payload[..], b"\xff\xfepayload");
        let back = restore_original(&p, 0xaaaa, 96).expect("osn");
        let mut want = RtpPacket::parse(orig).expect("parses");
        want.padding = 0;
        assert_eq!(back, want);
        // Too short for an OSN; not RTP at all.
        let short = RtpPacket {
            payload: Bytes::from_static(b"x"),
            ..p
        };
        assert_eq!(restore_original(&short, 1, 96), None);
        assert_eq!(
            rtx_packet(&Bytes::from_static(b"junk"), 98, 1, 1, &mut BytesMut::new()),
            None
        );
    }

    #[test]
    fn history_is_bounded_and_suppresses_repeats() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut h = History::new(10 * 100, Duration::from_millis(500));
        for i in 0..20u16 {
            h.push(
                ms(u64::from(i)),
                65530u16.wrapping_add(i),
                Bytes::from(vec![i as u8; 100]),
            );
        }
        assert!(h.bytes() <= 1000);
        // The ten newest are kept, across the wrap.
        assert_eq!(h.lookup(ms(20), 3, Duration::ZERO), Lookup::Missing);
        let Lookup::Resend(d) = h.lookup(ms(20), 4, Duration::from_millis(10)) else {
            panic!("kept");
        };
        assert_eq!(d[0], 10);
        assert_eq!(
            h.lookup(ms(25), 4, Duration::from_millis(10)),
            Lookup::Suppressed
        );
        assert!(matches!(
            h.lookup(ms(30), 4, Duration::from_millis(10)),
            Lookup::Resend(_)
        ));
        assert_eq!(
            h.lookup(ms(20), 14, Duration::ZERO),
            Lookup::Missing,
            "not sent yet"
        );
        // Age: everything is gone half a second after it was sent.
        assert!(matches!(
            h.lookup(ms(519), 13, Duration::ZERO),
            Lookup::Resend(_)
        ));
        assert_eq!(h.lookup(ms(519), 9, Duration::ZERO), Lookup::Missing);
        assert_eq!(h.lookup(ms(521), 13, Duration::ZERO), Lookup::Missing);
        assert_eq!(h.bytes(), 0);
    }

    #[test]
    fn tracker_schedules_retries_and_gives_up() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = NackTracker::new(4);
        t.gap(ms(0), 10, 12, ms(5));
        assert_eq!(t.next_due(), Some(ms(5)));
        let timing = |now: Instant| NackTiming {
            batch_until: now,
            retry: Duration::from_millis(30),
            max_nacks: 2,
            budget: Duration::from_millis(100),
            srtt: Some(Duration::from_millis(20)),
        };
        assert!(t.take_due(ms(4), timing(ms(4))).is_empty());
        assert_eq!(t.take_due(ms(5), timing(ms(5))), [10, 11]);
        assert_eq!(t.next_due(), Some(ms(35)));
        assert_eq!(t.arrived(11).map(|m| m.sent), Some(1));
        assert_eq!(t.take_due(ms(35), timing(ms(35))), [10]);
        assert_eq!(t.next_due(), None, "two NACKs were all it gets");
        // A gap too close to its deadline is not NACKed at all.
        t.gap(ms(90), 20, 21, ms(95));
        t.gap(ms(0), 30, 31, ms(85));
        assert_eq!(t.take_due(ms(95), timing(ms(95))), [20]);
        // Capacity: the oldest are dropped and counted.
        t.gap(ms(100), 40, 50, ms(105));
        assert_eq!(t.len(), 4);
        assert_eq!(t.overflowed, 6 + 3);
        assert_eq!(t.release_through(47), 0);
        assert_eq!(t.len(), 2);
        assert!(t.contains(48) && !t.contains(47));
    }

    #[test]
    fn rtt_estimator_smooths() {
        let mut r = RttEstimator::default();
        assert_eq!(r.srtt(), None);
        r.sample(Duration::from_millis(40));
        assert_eq!(r.srtt(), Some(Duration::from_millis(40)));
        for _ in 0..50 {
            r.sample(Duration::from_millis(80));
        }
        let s = r.srtt().expect("srtt");
        assert!(
            s > Duration::from_millis(79) && s <= Duration::from_millis(80),
            "{s:?}"
        );
        assert_eq!(r.samples(), 51);
    }
}
