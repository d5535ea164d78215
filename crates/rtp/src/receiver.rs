//! The receiving half of an RTP session: one media port, one sender at a time.
//!
//! [`RtpReceiver`] locks onto the first SSRC it hears, extends sequence
//! numbers, reorders through a [`JitterBuffer`], depacketizes, measures
//! jitter and loss, and sends receiver reports and PLIs. It is sans-IO: the
//! caller feeds datagrams and time, and drains [`RtpReceiver::poll_unit`]
//! and [`RtpReceiver::poll_transmit`].

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pstream_core::{Codec, NtpTime, Weigh};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::jitterbuf::{Insert, JitterBuffer};
use crate::packet::{RtpError, RtpPacket};
use crate::payload::{Depacketizer, DepayError};
use crate::rate::DelayEstimator;
use crate::rtcp::{self, NackPair, ReportBlock, RtcpError, RtcpPacket, SdesChunk, MAX_NACK_PAIRS};
use crate::rtx::{self, NackTiming, NackTracker, RttEstimator, RtxReceiveConfig};
use crate::sender::{Transmit, TransmitKind};
use crate::seq::{SeqExtender, SeqVerdict};

/// Default silence after which another SSRC may take over the port.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default shortest time between two PLIs.
pub const DEFAULT_PLI_INTERVAL: Duration = Duration::from_millis(500);
// Units the caller has not polled are dropped oldest-first past this.
const MAX_QUEUED_UNITS: usize = 256;

/// Everything an [`RtpReceiver`] needs to know up front.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The codec expected on this port (any payload type is accepted).
    pub codec: Codec,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Longest a packet waits for a missing one before the gap is skipped;
    /// zero releases every unit as soon as it is complete. With RTX this is
    /// the repair budget (unless [`RtxReceiveConfig::auto_latency`]).
    pub latency: Duration,
    /// Most packets held while waiting; past this a gap is skipped at once.
    pub max_held: usize,
    /// Our SSRC in RTCP; `None` picks a random one.
    pub ssrc: Option<u32>,
    /// Canonical name sent in SDES.
    pub cname: String,
    /// Mean receiver report interval, randomised to 0.5–1.5 times this.
    pub rtcp_interval: Duration,
    /// Shortest time between two PLIs.
    pub pli_min_interval: Duration,
    /// Silence after which a new SSRC replaces the current sender.
    pub source_timeout: Duration,
    /// NACK and RTX (RFC 4585, RFC 4588): repair losses before giving up on
    /// them; `None`: losses are skipped after `latency`.
    pub rtx: Option<RtxReceiveConfig>,
    /// Estimate what the path carries from the media's one-way delay and
    /// send it as REMB, every 100 ms while a queue builds or drains
    /// ([`crate::rate::DelayEstimator`]): the sender's `--bitrate auto`
    /// sees a queue within a few hundred milliseconds instead of after its
    /// next receiver report.
    pub remb: bool,
}

impl ReceiverConfig {
    /// pstream's defaults for `codec`: its clock rate, 50 ms latency, 1 s
    /// RTCP interval and source timeout, PLIs at most every 500 ms.
    pub fn new(codec: Codec, cname: impl Into<String>) -> Self {
        Self {
            codec,
            clock_rate: codec.rtp_clock_rate(),
            latency: Duration::from_millis(50),
            max_held: 2048,
            ssrc: None,
            cname: cname.into(),
            rtcp_interval: crate::sender::DEFAULT_RTCP_INTERVAL,
            pli_min_interval: DEFAULT_PLI_INTERVAL,
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            rtx: None,
            remb: false,
        }
    }

    /// Repairs losses with NACK and RTX as `rtx` says.
    pub fn with_rtx(mut self, rtx: RtxReceiveConfig) -> Self {
        self.rtx = Some(rtx);
        self
    }
}

/// Why a receiver could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// pstream has no RTP payload format for this codec.
    #[error("no RTP payload format for {0}")]
    UnsupportedCodec(Codec),
    /// A clock rate of zero.
    #[error("RTP clock rate must be positive")]
    ClockRate,
    /// An RTX payload type above 127.
    #[error("RTX payload type {0} does not fit in 7 bits")]
    RtxPayloadType(u8),
}

/// An access unit (Annex-B, 4-byte start codes) or Opus packet off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedUnit {
    /// The codec (the one the receiver was configured for).
    pub codec: Codec,
    /// The media.
    pub data: Bytes,
    /// Its RTP timestamp.
    pub rtp_timestamp: u32,
    /// True if a decoder can start here.
    pub keyframe: bool,
    /// False if packets of it were lost or malformed.
    pub complete: bool,
    /// The sender's SSRC.
    pub ssrc: u32,
    /// When the packet that completed it arrived.
    pub arrival: Instant,
    /// The sender's wall-clock time for it, once an SR has given the mapping.
    pub sender_ntp: Option<NtpTime>,
    /// Sequence numbers given up as lost since the previous unit was
    /// delivered (for Opus: packets lost right before this one, which the
    /// decoder should conceal).
    pub lost_before: u64,
}

impl Weigh for ReceivedUnit {
    fn weight(&self) -> usize {
        self.data.len()
    }
}

/// The last sender report of the current source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReportInfo {
    /// Its NTP timestamp.
    pub ntp: NtpTime,
    /// The RTP timestamp of the same instant.
    pub rtp_ts: u32,
    /// When it arrived here.
    pub received_at: Instant,
}

/// Counters for the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReceiverStats {
    /// RTP packets accepted from the current sender (duplicates excluded).
    pub packets: u64,
    /// Payload bytes of those packets.
    pub bytes: u64,
    /// Sequence numbers the jitter buffer gave up waiting for.
    pub lost: u64,
    /// Packets that arrived after their place was skipped.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Packets dropped for a sequence jump that the next packet did not confirm.
    pub seq_jumps: u64,
    /// Datagrams that were not valid RTP.
    pub malformed: u64,
    /// Packets the depacketizer dropped (bad STAP-A, orphan FU-A, ...).
    pub depay_errors: u64,
    /// Units delivered.
    pub units: u64,
    /// Units delivered with `complete: false`.
    pub incomplete_units: u64,
    /// Units dropped because the caller did not poll them.
    pub units_overflowed: u64,
    /// Interarrival jitter of the current sender in milliseconds.
    pub jitter_ms: f64,
    /// PLIs sent.
    pub pli_sent: u64,
    /// RTCP compounds sent.
    pub rtcp_sent: u64,
    /// Packets from a second sender (another SSRC, or the same SSRC from
    /// another address), ignored while the first is alive.
    pub foreign_ssrc_packets: u64,
    /// RTCP packets (SR, SDES, BYE) naming the current sender's SSRC from
    /// another address, ignored: a forged SR would move lip sync, a forged
    /// BYE end the stream.
    pub foreign_rtcp: u64,
    /// Times a new sender (or a renumbered one) replaced the current one.
    pub sender_restarts: u64,
    /// NACK messages sent.
    pub nack_sent: u64,
    /// Sequence numbers asked for in them (a retry counts again).
    pub nack_requests: u64,
    /// RTX packets received.
    pub rtx_received: u64,
    /// Missing packets an RTX brought back in time.
    pub rtx_repaired: u64,
    /// RTX packets that came after the jitter buffer gave up on their packet.
    pub rtx_late: u64,
    /// RTX packets for packets already there (the original was only late).
    pub rtx_duplicates: u64,
    /// RTX packets dropped: no OSN, no sender yet, or a stream not associated.
    pub rtx_dropped: u64,
    /// REMBs sent (the receiver's bandwidth estimate).
    pub remb_sent: u64,
    /// Packets NACKed but given up as lost.
    pub unrepaired: u64,
    /// Missing packets not tracked for NACKs (too many at once).
    pub nack_overflowed: u64,
    /// The round trip measured from NACK to RTX, smoothed (0 before any).
    pub rtt_ms: f64,
    /// The jitter buffer's current latency: the repair budget.
    pub latency_ms: f64,
}

#[derive(Debug)]
struct Source {
    ssrc: u32,
    /// Where its RTP comes from, when the caller says (`handle_rtp_from`):
    /// its RTCP and RTX must come from the same host.
    addr: Option<IpAddr>,
    seq: SeqExtender,
    jb: JitterBuffer<RtpPacket>,
    depay: Depacketizer,
    base_ext: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: f64,
    last_transit: Option<u32>,
    last_jitter_ts: Option<u32>,
    last_seen: Instant,
    bye: bool,
    last_sr: Option<SenderReportInfo>,
    cname: Option<String>,
    lost_pending: u64,
    media_pt: u8,
    rtx_ssrc: Option<u32>,
    tracker: NackTracker,
    reorder: Duration,
}

impl Source {
    fn new(
        cfg: &ReceiverConfig,
        latency: Duration,
        depay: Depacketizer,
        pkt: &RtpPacket,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Self {
        let first = pkt.header.sequence;
        Self {
            ssrc: pkt.header.ssrc,
            addr,
            seq: SeqExtender::new(first),
            jb: JitterBuffer::new(latency, cfg.max_held),
            depay,
            base_ext: SeqExtender::initial(first),
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            last_jitter_ts: None,
            last_seen: now,
            bye: false,
            last_sr: None,
            cname: None,
            lost_pending: 0,
            media_pt: pkt.header.payload_type,
            rtx_ssrc: None,
            tracker: NackTracker::new(cfg.rtx.as_ref().map_or(1, |r| r.max_tracked)),
            reorder: Duration::ZERO,
        }
    }

    /// The report block on this source; advances the "since last report" state.
    fn report_block(&mut self, now: Instant) -> ReportBlock {
        let highest = self.seq.highest();
        let expected = (highest + 1).saturating_sub(self.base_ext);
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some(sr) => {
                let delay = now.saturating_duration_since(sr.received_at);
                let dlsr = (delay.as_micros() * 65536 / 1_000_000).min(u128::from(u32::MAX));
                (sr.ntp.middle32(), dlsr as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: SeqExtender::wire(highest),
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        }
    }
}

/// One incoming RTP stream (one media port) and its RTCP.
#[derive(Debug)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    ssrc: u32,
    source: Option<Source>,
    /// An SR that came before its sender's first RTP packet: its SSRC and
    /// the address it came from.
    pending_sr: Option<(u32, Option<IpAddr>, SenderReportInfo)>,
    epoch: Option<Instant>,
    units: VecDeque<ReceivedUnit>,
    transmits: VecDeque<Transmit>,
    rtcp_buf: BytesMut,
    next_rr: Option<Instant>,
    last_pli: Option<Instant>,
    stats: ReceiverStats,
    last_depay_error: Option<DepayError>,
    rng: StdRng,
    latency: Duration,
    rtt: RttEstimator,
    last_nack: Option<Instant>,
    bwe: Option<DelayEstimator>,
}

impl RtpReceiver {
    /// A receiver whose RTCP SSRC (unless configured) and timing come from `rng`.
    pub fn new<R: Rng>(config: ReceiverConfig, rng: &mut R) -> Result<Self, ReceiverError> {
        if Depacketizer::new(config.codec).is_none() {
            return Err(ReceiverError::UnsupportedCodec(config.codec));
        }
        if config.clock_rate == 0 {
            return Err(ReceiverError::ClockRate);
        }
        if let Some(r) = config.rtx.as_ref().filter(|r| r.payload_type > 0x7f) {
            return Err(ReceiverError::RtxPayloadType(r.payload_type));
        }
        let latency = match &config.rtx {
            Some(r) if r.auto_latency => r.max_latency,
            _ => config.latency,
        };
        let mut rng = StdRng::from_rng(rng);
        Ok(Self {
            bwe: config.remb.then(|| DelayEstimator::new(config.clock_rate)),
            latency,
            rtt: RttEstimator::default(),
            last_nack: None,
            ssrc: config.ssrc.unwrap_or_else(|| rng.random()),
            config,
            source: None,
            pending_sr: None,
            epoch: None,
            units: VecDeque::new(),
            transmits: VecDeque::new(),
            rtcp_buf: BytesMut::new(),
            next_rr: None,
            last_pli: None,
            stats: ReceiverStats::default(),
            last_depay_error: None,
            rng,
        })
    }

    /// A receiver with its randomness seeded from `seed` (deterministic).
    pub fn with_seed(config: ReceiverConfig, seed: u64) -> Result<Self, ReceiverError> {
        Self::new(config, &mut StdRng::seed_from_u64(seed))
    }

    /// A receiver seeded from the OS, for production use.
    pub fn with_os_rng(config: ReceiverConfig) -> Result<Self, ReceiverError> {
        Self::new(config, &mut StdRng::from_os_rng())
    }

    /// Our SSRC in RTCP.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The counters so far.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        s.jitter_ms = self.source.as_ref().map_or(0.0, |src| {
            src.jitter * 1000.0 / f64::from(self.config.clock_rate)
        });
        s.rtt_ms = self.rtt.srtt().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        s.latency_ms = self.latency.as_secs_f64() * 1000.0;
        s.nack_overflowed = self.source.as_ref().map_or(0, |src| src.tracker.overflowed)
            + self.stats.nack_overflowed;
        s
    }

    /// The last packet the depacketizer dropped and why (SSRC, sequence
    /// number, timestamp), for logs.
    pub fn last_depay_error(&self) -> Option<&DepayError> {
        self.last_depay_error.as_ref()
    }

    /// SSRC of the sender currently followed.
    pub fn sender_ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// The address of the sender currently followed, if the caller gave it
    /// ([`Self::handle_rtp_from`]): where its reports and PLIs go when the
    /// receiver takes any sender.
    pub fn sender_addr(&self) -> Option<IpAddr> {
        self.source.as_ref()?.addr
    }

    /// CNAME of the sender currently followed, once its SDES arrived.
    pub fn sender_cname(&self) -> Option<&str> {
        self.source.as_ref()?.cname.as_deref()
    }

    /// The current sender's last SR: its NTP/RTP pair, for A/V sync.
    pub fn sender_report(&self) -> Option<SenderReportInfo> {
        self.source.as_ref()?.last_sr
    }

    /// Reads one RTP datagram that arrived at `now` from an address the
    /// caller does not say (the sender is known by its SSRC alone). An `Err`
    /// means it was not RTP (counted in `malformed`); anything else bad is
    /// counted, not returned.
    pub fn handle_rtp(&mut self, now: Instant, data: &[u8]) -> Result<(), RtpError> {
        self.rtp(now, None, data)
    }

    /// Reads one RTP datagram that arrived at `now` from `from` (its IP
    /// address; ports change behind NATs). The sender is locked by address
    /// and SSRC: the same SSRC from another host is a second sender, and
    /// only RTCP from the sender's host counts ([`Self::handle_rtcp_from`]).
    pub fn handle_rtp_from(
        &mut self,
        now: Instant,
        from: IpAddr,
        data: &[u8],
    ) -> Result<(), RtpError> {
        self.rtp(now, Some(from), data)
    }

    fn rtp(&mut self, now: Instant, from: Option<IpAddr>, data: &[u8]) -> Result<(), RtpError> {
        let pkt = match RtpPacket::parse_slice(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        self.epoch.get_or_insert(now);
        if self.is_rtx(&pkt) {
            self.handle_rtx(now, from, pkt);
            return Ok(());
        }
        let ssrc = pkt.header.ssrc;
        match &self.source {
            Some(s) if s.ssrc == ssrc && same_host(s.addr, from) => {}
            Some(s)
                if !s.bye
                    && now.saturating_duration_since(s.last_seen) <= self.config.source_timeout =>
            {
                self.stats.foreign_ssrc_packets += 1;
                return Ok(());
            }
            Some(_) => {
                self.flush_source();
                self.stats.sender_restarts += 1;
                self.start_source(&pkt, from, now);
            }
            None => self.start_source(&pkt, from, now),
        }
        if self.next_rr.is_none() {
            let first = self
                .config
                .rtcp_interval
                .mul_f64(self.rng.random_range(0.25..0.75));
            self.next_rr = Some(now + first);
        }
        let Some(src) = self.source.as_mut() else {
            return Ok(());
        };
        src.last_seen = now;
        // A sender that said BYE and carries on is back.
        src.bye = false;
        src.media_pt = pkt.header.payload_type;
        let before = src.seq.highest();
        let verdict = src.seq.extend(pkt.header.sequence);
        // Only a packet moving the highest number on can open a gap.
        let gap_from = matches!(verdict, SeqVerdict::Ahead(_)).then_some(before + 1);
        let ext = match verdict {
            SeqVerdict::Ahead(e) | SeqVerdict::Behind(e) => e,
            SeqVerdict::Jump => {
                self.stats.seq_jumps += 1;
                return Ok(());
            }
            SeqVerdict::Restart(e) => {
                // Same SSRC, new numbering: the sender restarted.
                self.flush_source();
                self.stats.sender_restarts += 1;
                self.start_source(&pkt, from, now);
                e
            }
        };
        self.update_jitter(now, pkt.header.timestamp);
        let (ts, wire_len) = (pkt.header.timestamp, data.len());
        let Some(src) = self.source.as_mut() else {
            return Ok(());
        };
        let len = pkt.payload.len() as u64;
        let accepted = src.jb.insert(now, ext, pkt);
        if accepted != Insert::Duplicate && self.config.rtx.is_some() {
            if let Some(from) = gap_from.filter(|&f| ext > f) {
                // A gap: NACK it once a reordered packet would have arrived.
                let wait = self.reorder_wait();
                if let Some(src) = self.source.as_mut() {
                    src.tracker.gap(now, from, ext, now + wait);
                }
            } else if let Some(src) = self.source.as_mut() {
                if let Some(m) = src.tracker.arrived(ext) {
                    // A missing packet came after all: learn how late
                    // reordered packets come (up at once, down slowly: one in a
                    // few hundred packets is late by the most).
                    let late = now.saturating_duration_since(m.detected);
                    let decayed = src
                        .reorder
                        .saturating_sub(src.reorder.saturating_sub(late) / 256);
                    src.reorder = late.max(decayed);
                    self.update_latency();
                }
            }
        }
        let Some(src) = self.source.as_mut() else {
            return Ok(());
        };
        match accepted {
            Insert::Accepted => {
                src.received += 1;
                self.stats.packets += 1;
                self.stats.bytes += len;
                if let Some(b) = &mut self.bwe {
                    b.on_packet(now, ts, wire_len);
                }
            }
            Insert::Late => {
                src.received += 1;
                self.stats.late += 1;
            }
            Insert::Duplicate => self.stats.duplicates += 1,
        }
        self.release(now);
        Ok(())
    }

    /// Whether `pkt` is an RTX packet: RTX on, its payload type, and not the
    /// payload type the media itself arrives with.
    fn is_rtx(&self, pkt: &RtpPacket) -> bool {
        self.config.rtx.as_ref().is_some_and(|r| {
            r.payload_type == pkt.header.payload_type
                && self
                    .source
                    .as_ref()
                    .is_none_or(|s| s.media_pt != r.payload_type || s.ssrc != pkt.header.ssrc)
        })
    }

    /// Puts the packet an RTX carries back into the jitter buffer under its
    /// original number. The RTX stream is the one whose packet first answers
    /// a NACK (as GStreamer's rtprtxreceive associates it); a stream that
    /// never did is ignored. RTX packets count neither as received nor for
    /// jitter in receiver reports, which describe the path.
    fn handle_rtx(&mut self, now: Instant, from: Option<IpAddr>, pkt: RtpPacket) {
        self.stats.rtx_received += 1;
        let Some(src) = self
            .source
            .as_mut()
            .filter(|s| !s.bye && same_host(s.addr, from))
        else {
            self.stats.rtx_dropped += 1;
            return;
        };
        let Some(original) = rtx::restore_original(&pkt, src.ssrc, src.media_pt) else {
            self.stats.rtx_dropped += 1;
            return;
        };
        let ext = src.seq.nearest(original.header.sequence);
        let associated = src.rtx_ssrc == Some(pkt.header.ssrc);
        if !associated {
            if !src.tracker.contains(ext) {
                self.stats.rtx_dropped += 1;
                return;
            }
            src.rtx_ssrc = Some(pkt.header.ssrc);
        }
        if ext > src.seq.highest() {
            // Never announced by the media stream: not a repair.
            self.stats.rtx_dropped += 1;
            return;
        }
        let known = src.tracker.arrived(ext);
        match src.jb.insert(now, ext, original) {
            Insert::Accepted => self.stats.rtx_repaired += 1,
            Insert::Late => self.stats.rtx_late += 1,
            Insert::Duplicate => self.stats.rtx_duplicates += 1,
        }
        // Karn: only a packet NACKed once times the round trip unambiguously.
        if let Some(Some(sent)) = known.filter(|m| m.sent == 1).map(|m| m.last_sent) {
            self.rtt.sample(now.saturating_duration_since(sent));
            self.update_latency();
        }
        self.release(now);
    }

    /// Follows the measured round trip with the repair budget, if
    /// automatic: the wait for reordered packets before the first NACK,
    /// then `rtt_factor` round trips (room for a retry when an RTX is lost
    /// too), 20..200 ms by default.
    fn update_latency(&mut self) {
        let Some(r) = self.config.rtx.as_ref().filter(|r| r.auto_latency) else {
            return;
        };
        self.latency = match self.rtt.srtt() {
            Some(rtt) => (self.reorder_estimate() + rtt.mul_f64(r.rtt_factor.max(0.0)))
                .clamp(r.min_latency, r.max_latency.max(r.min_latency)),
            None => r.max_latency,
        };
        if let Some(src) = self.source.as_mut() {
            src.jb.set_latency(self.latency);
        }
    }

    /// How late a missing packet may still arrive reordered: the latest a
    /// missing packet has turned up lately, or twice the interarrival
    /// jitter, 5 ms at least. A NACK sent sooner mostly asks for packets
    /// already on their way.
    fn reorder_estimate(&self) -> Duration {
        let (jitter, seen) = self
            .source
            .as_ref()
            .map_or((0.0, Duration::ZERO), |s| (s.jitter, s.reorder));
        let jitter =
            Duration::from_secs_f64((2.0 * jitter / f64::from(self.config.clock_rate)).min(1.0));
        (seen + Duration::from_millis(1))
            .max(jitter)
            .max(Duration::from_millis(5))
    }

    /// The wait before a gap's first NACK: the reorder estimate, but never
    /// more than a third of the budget.
    fn reorder_wait(&self) -> Duration {
        self.reorder_estimate()
            .min((self.latency / 3).max(Duration::from_millis(5)))
    }

    /// Sends the NACKs due at `now`, in as few messages as fit.
    fn send_nacks(&mut self, now: Instant) {
        let Some(cfg) = self.config.rtx.as_ref() else {
            return;
        };
        if self.last_nack.is_some_and(|t| now < t + cfg.nack_interval) {
            return;
        }
        let srtt = self.rtt.srtt();
        let retry = match srtt {
            // An RTX comes back a round trip after its NACK, give or take
            // the round trip's own variation.
            Some(rtt) => rtt + (self.rtt.rttvar() * 2).max(Duration::from_millis(5)),
            // Before any round trip is known, wait half the (then maximal)
            // budget: a retry sooner than the path's round trip leaves
            // every answer ambiguous, Karn's rule then samples none, and
            // the automatic budget would stay at its ceiling for good (seen
            // at a 40-60 ms round trip with a 50 ms retry). Half still
            // leaves room for the retry inside the budget.
            None => cfg.max_latency / 2,
        };
        let timing = NackTiming {
            batch_until: now + cfg.nack_interval,
            retry,
            max_nacks: cfg.max_nacks.max(1),
            budget: self.latency,
            srtt,
        };
        let Some(src) = self.source.as_mut().filter(|s| !s.bye) else {
            return;
        };
        let media_ssrc = src.ssrc;
        let exts = src.tracker.take_due(now, timing);
        if exts.is_empty() {
            return;
        }
        self.stats.nack_requests += exts.len() as u64;
        let pairs = NackPair::pack(exts.iter().map(|&e| e as u16));
        for chunk in pairs.chunks(MAX_NACK_PAIRS) {
            self.stats.nack_sent += 1;
            let nack = RtcpPacket::Nack {
                sender_ssrc: self.ssrc,
                media_ssrc,
                pairs: chunk.to_vec(),
                dropped_pairs: 0,
            };
            self.queue_rtcp(now, Some(nack), false);
        }
        self.last_nack = Some(now);
    }

    fn start_source(&mut self, pkt: &RtpPacket, addr: Option<IpAddr>, now: Instant) {
        let Some(depay) = Depacketizer::new(self.config.codec) else {
            return;
        };
        if let Some(old) = self.source.as_ref() {
            self.stats.nack_overflowed += old.tracker.overflowed;
        }
        let mut src = Source::new(&self.config, self.latency, depay, pkt, addr, now);
        if let Some((ssrc, from, sr)) = self.pending_sr.take() {
            if ssrc == src.ssrc && same_host(addr, from) {
                src.last_sr = Some(sr);
            }
        }
        self.source = Some(src);
    }

    /// RFC 3550 A.8, updated once per RTP timestamp (as GStreamer does), so
    /// the packets of one video frame sent in a burst do not count as jitter.
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        let (Some(epoch), Some(src)) = (self.epoch, self.source.as_mut()) else {
            return;
        };
        if src.last_jitter_ts == Some(ts) {
            return;
        }
        src.last_jitter_ts = Some(ts);
        let us = now.saturating_duration_since(epoch).as_micros();
        let arrival = (us * u128::from(self.config.clock_rate) / 1_000_000) as u32;
        let transit = arrival.wrapping_sub(ts);
        if let Some(last) = src.last_transit {
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            src.jitter += (d - src.jitter) / 16.0;
        }
        src.last_transit = Some(transit);
    }

    /// Moves what the jitter buffer lets go through the depacketizer.
    fn release(&mut self, now: Instant) {
        let Some(src) = self.source.as_mut() else {
            return;
        };
        while let Some(r) = src.jb.pop(now) {
            self.stats.lost += r.lost_before;
            src.lost_pending += r.lost_before;
            self.stats.unrepaired += src.tracker.release_through(r.ext);
            if let Err(e) = src.depay.push(&r.item) {
                self.stats.depay_errors += 1;
                self.last_depay_error = Some(e);
            }
            Self::collect(
                &mut self.units,
                &mut self.stats,
                &self.config,
                src,
                r.arrival,
            );
        }
    }

    /// Releases everything the current source left and ends its last unit.
    fn flush_source(&mut self) {
        let Some(src) = self.source.as_mut() else {
            return;
        };
        let mut arrival = src.last_seen;
        while let Some(r) = src.jb.pop_any() {
            self.stats.lost += r.lost_before;
            src.lost_pending += r.lost_before;
            self.stats.unrepaired += src.tracker.release_through(r.ext);
            arrival = r.arrival;
            if let Err(e) = src.depay.push(&r.item) {
                self.stats.depay_errors += 1;
                self.last_depay_error = Some(e);
            }
            Self::collect(&mut self.units, &mut self.stats, &self.config, src, arrival);
        }
        src.depay.flush();
        Self::collect(&mut self.units, &mut self.stats, &self.config, src, arrival);
    }

    fn collect(
        units: &mut VecDeque<ReceivedUnit>,
        stats: &mut ReceiverStats,
        config: &ReceiverConfig,
        src: &mut Source,
        arrival: Instant,
    ) {
        while let Some(u) = src.depay.pop() {
            stats.units += 1;
            if !u.complete {
                stats.incomplete_units += 1;
            }
            let sender_ntp = src.last_sr.map(|sr| {
                let ticks = i64::from(u.timestamp.wrapping_sub(sr.rtp_ts) as i32);
                let delta = (ticks << 32) / i64::from(config.clock_rate);
                NtpTime(sr.ntp.0.wrapping_add_signed(delta))
            });
            if units.len() >= MAX_QUEUED_UNITS {
                units.pop_front();
                stats.units_overflowed += 1;
            }
            units.push_back(ReceivedUnit {
                codec: config.codec,
                data: u.data,
                rtp_timestamp: u.timestamp,
                keyframe: u.keyframe,
                complete: u.complete,
                ssrc: src.ssrc,
                arrival,
                sender_ntp,
                lost_before: std::mem::take(&mut src.lost_pending),
            });
        }
    }

    /// The next unit, in order. Call until `None` after every `handle_rtp`,
    /// `handle_rtcp` and `handle_timeout`.
    #[must_use]
    pub fn poll_unit(&mut self) -> Option<ReceivedUnit> {
        self.units.pop_front()
    }

    /// The next RTCP datagram to send (kind is always [`TransmitKind::Rtcp`]).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called: a receiver report
    /// is due or a held packet stops waiting. Re-read after every call.
    #[must_use]
    pub fn next_timeout(&self) -> Option<Instant> {
        let held = self.source.as_ref().and_then(|s| s.jb.deadline());
        let nack = self.config.rtx.as_ref().and_then(|cfg| {
            let src = self.source.as_ref().filter(|s| !s.bye)?;
            let due = src.tracker.next_due()?;
            Some(
                self.last_nack
                    .map_or(due, |t| due.max(t + cfg.nack_interval)),
            )
        });
        let remb = self.bwe.as_ref().and_then(DelayEstimator::next_timeout);
        [self.next_rr, held, nack, remb].into_iter().flatten().min()
    }

    /// Releases packets whose wait is over, sends the NACKs due and a report
    /// if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release(now);
        self.send_nacks(now);
        if self.next_rr.is_some_and(|t| t <= now) {
            self.queue_rtcp(now, None, true);
            let factor = self.rng.random_range(0.5..1.5);
            self.next_rr = Some(now + self.config.rtcp_interval.mul_f64(factor));
        }
        let bitrate = self.bwe.as_mut().and_then(|b| b.poll_remb(now));
        let media = self.source.as_ref().filter(|s| !s.bye).map(|s| s.ssrc);
        if let (Some(bitrate), Some(media_ssrc)) = (bitrate, media) {
            self.stats.remb_sent += 1;
            self.queue_rtcp(
                now,
                Some(RtcpPacket::Remb {
                    sender_ssrc: self.ssrc,
                    bitrate,
                    ssrcs: vec![media_ssrc],
                }),
                false,
            );
        }
    }

    /// Asks the sender for a keyframe with a PLI (in an RR + SDES compound).
    ///
    /// Returns false if there is no sender yet or the last PLI went out less
    /// than `pli_min_interval` ago.
    pub fn request_keyframe(&mut self, now: Instant) -> bool {
        let Some(media_ssrc) = self.source.as_ref().filter(|s| !s.bye).map(|s| s.ssrc) else {
            return false;
        };
        if self
            .last_pli
            .is_some_and(|t| now < t + self.config.pli_min_interval)
        {
            return false;
        }
        self.last_pli = Some(now);
        self.stats.pli_sent += 1;
        self.queue_rtcp(
            now,
            Some(RtcpPacket::Pli {
                sender_ssrc: self.ssrc,
                media_ssrc,
            }),
            true,
        );
        true
    }

    /// Queues RR + SDES (+ `extra`). NACK compounds carry an RR without a
    /// report block (`with_report` false): a block restarts the "since the
    /// last report" loss count, and NACKs come too often for the sender's
    /// rate control to read loss fractions over their short intervals.
    fn queue_rtcp(&mut self, now: Instant, extra: Option<RtcpPacket>, with_report: bool) {
        let reports = match self.source.as_mut() {
            Some(src) if !src.bye && with_report => vec![src.report_block(now)],
            _ => Vec::new(),
        };
        let mut packets = vec![
            RtcpPacket::ReceiverReport {
                ssrc: self.ssrc,
                reports,
            },
            RtcpPacket::Sdes {
                chunks: vec![SdesChunk {
                    ssrc: self.ssrc,
                    cname: Some(self.config.cname.clone()),
                }],
            },
        ];
        packets.extend(extra);
        let data = rtcp::write_compound(&packets, &mut self.rtcp_buf);
        self.transmits.push_back(Transmit {
            kind: TransmitKind::Rtcp,
            data,
        });
        self.stats.rtcp_sent += 1;
    }

    /// Reads an RTCP compound from the sender (SR, SDES, BYE), from an
    /// address the caller does not say. An `Err` means it was malformed and
    /// ignored; the caller counts it.
    pub fn handle_rtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), RtcpError> {
        self.rtcp(now, None, data)
    }

    /// Reads an RTCP compound that came from `from`. Only the locked
    /// sender's host speaks for it: an SR, SDES or BYE naming its SSRC from
    /// elsewhere is ignored and counted (`foreign_rtcp`), so a forged SR
    /// cannot move lip sync nor a forged BYE end the stream.
    pub fn handle_rtcp_from(
        &mut self,
        now: Instant,
        from: IpAddr,
        data: &[u8],
    ) -> Result<(), RtcpError> {
        self.rtcp(now, Some(from), data)
    }

    fn rtcp(&mut self, now: Instant, from: Option<IpAddr>, data: &[u8]) -> Result<(), RtcpError> {
        for packet in rtcp::parse_compound(data)? {
            // The current sender's SSRC, if this packet may speak for it.
            let current = match self.source.as_ref() {
                Some(s) if same_host(s.addr, from) => Some(s.ssrc),
                Some(s) if packet_names(&packet, s.ssrc) => {
                    self.stats.foreign_rtcp += 1;
                    continue;
                }
                _ => None,
            };
            match packet {
                RtcpPacket::SenderReport {
                    ssrc, ntp, rtp_ts, ..
                } => {
                    let info = SenderReportInfo {
                        ntp,
                        rtp_ts,
                        received_at: now,
                    };
                    match self.source.as_mut() {
                        Some(src) if current == Some(ssrc) => src.last_sr = Some(info),
                        // The RTX stream's own SR says nothing about the media.
                        Some(src) if src.rtx_ssrc == Some(ssrc) => {}
                        _ => self.pending_sr = Some((ssrc, from, info)),
                    }
                }
                RtcpPacket::Sdes { chunks } => {
                    if let Some(src) = self.source.as_mut().filter(|_| current.is_some()) {
                        for c in chunks {
                            if c.ssrc == src.ssrc && c.cname.is_some() {
                                src.cname = c.cname;
                            }
                        }
                    }
                }
                RtcpPacket::Bye { ssrcs, .. } if current.is_some_and(|c| ssrcs.contains(&c)) => {
                    self.flush_source();
                    if let Some(src) = self.source.as_mut() {
                        src.bye = true;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Whether two senders' addresses are the same host: an address the caller
/// did not give matches any (the SSRC alone then tells senders apart).
fn same_host(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.to_canonical() == b.to_canonical(),
        _ => true,
    }
}

/// Whether an RTCP packet speaks for `ssrc`: its SR, an SDES chunk of it,
/// or a BYE listing it.
fn packet_names(packet: &RtcpPacket, ssrc: u32) -> bool {
    match packet {
        RtcpPacket::SenderReport { ssrc: s, .. } => *s == ssrc,
        RtcpPacket::Sdes { chunks } => chunks.iter().any(|c| c.ssrc == ssrc),
        RtcpPacket::Bye { ssrcs, .. } => ssrcs.contains(&ssrc),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpHeader;
    use crate::payload::h264::H264Payloader;
    use bytes::BufMut;

    fn rx(codec: Codec, latency: Duration) -> RtpReceiver {
        let mut cfg = ReceiverConfig::new(codec, "rx@test");
        cfg.latency = latency;
        cfg.ssrc = Some(0xaaaa);
        RtpReceiver::new(cfg, &mut StdRng::seed_from_u64(3)).expect("config")
    }

    fn opus_pkt(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: 111,
            sequence: seq,
            timestamp: ts,
            ssrc,
        }
        .write_to(&mut b);
        b.put_slice(&seq.to_be_bytes());
        b.to_vec()
    }

    fn units(r: &mut RtpReceiver) -> Vec<ReceivedUnit> {
        std::iter::from_fn(|| r.poll_unit()).collect()
    }

    fn seqs(r: &mut RtpReceiver) -> Vec<u16> {
        units(r)
            .iter()
            .map(|u| u16::from_be_bytes([u.data[0], u.data[1]]))
            .collect()
    }

    fn rr_block(r: &mut RtpReceiver, now: Instant) -> Option<ReportBlock> {
        let due = r.next_timeout().expect("a timeout");
        r.handle_timeout(due.max(now));
        let t = r.poll_transmit().expect("an RR");
        assert_eq!(t.kind, TransmitKind::Rtcp);
        match &rtcp::parse_compound(&t.data).expect("parses")[0] {
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                assert_eq!(*ssrc, 0xaaaa);
                reports.first().copied()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reorders_within_latency_and_counts_duplicates() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::from_millis(40));
        let ms = |n| t0 + Duration::from_millis(n);
        for (at, seq) in [(0, 10u16), (1, 12), (2, 11), (3, 11), (4, 13), (5, 10)] {
            r.handle_rtp(ms(at), &opus_pkt(7, seq, u32::from(seq) * 960))
                .expect("rtp");
        }
        assert!(
            r.poll_unit().is_none(),
            "the first packet waits for latency"
        );
        assert_eq!(r.next_timeout(), Some(ms(40)));
        r.handle_timeout(ms(40));
        assert_eq!(seqs(&mut r), [10, 11, 12, 13]);
        let s = r.stats();
        assert_eq!((s.packets, s.duplicates, s.lost, s.late), (4, 2, 0, 0));
    }

    #[test]
    fn loss_is_skipped_after_latency_and_late_packets_counted() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::from_millis(40));
        let ms = |n| t0 + Duration::from_millis(n);
        r.handle_rtp(ms(0), &opus_pkt(7, 65534, 0)).expect("rtp");
        r.handle_rtp(ms(20), &opus_pkt(7, 1, 3 * 960)).expect("rtp");
        r.handle_rtp(ms(30), &opus_pkt(7, 2, 4 * 960)).expect("rtp");
        assert_eq!(r.next_timeout(), Some(ms(40)));
        r.handle_timeout(ms(40));
        assert_eq!(seqs(&mut r), [65534]);
        // The held packets' wait ends 40 ms after the oldest of them arrived.
        assert_eq!(r.next_timeout(), Some(ms(60)));
        r.handle_timeout(ms(59));
        assert!(r.poll_unit().is_none());
        r.handle_timeout(ms(60));
        assert_eq!(seqs(&mut r), [1, 2]);
        assert_eq!(r.stats().lost, 2);
        r.handle_rtp(ms(61), &opus_pkt(7, 0, 2 * 960)).expect("rtp");
        assert!(r.poll_unit().is_none());
        assert_eq!(r.stats().late, 1);
        // RR: expected 65534..=2 = 5, received 4 (the late one counts).
        let block = rr_block(&mut r, ms(70)).expect("a block");
        assert_eq!(block.ssrc, 7);
        assert_eq!(block.cumulative_lost, 1);
        assert_eq!(block.fraction_lost, (256 / 5) as u8);
        assert_eq!(block.highest_seq, 0x0001_0002);
        assert_eq!((block.lsr, block.dlsr), (0, 0));
    }

    #[test]
    fn zero_latency_releases_at_once() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::ZERO);
        for seq in [1u16, 3, 2, 4] {
            r.handle_rtp(t0, &opus_pkt(7, seq, 0)).expect("rtp");
        }
        let got: Vec<(u16, u64)> = units(&mut r)
            .iter()
            .map(|u| (u16::from_be_bytes([u.data[0], u.data[1]]), u.lost_before))
            .collect();
        assert_eq!(got, [(1, 0), (3, 1), (4, 0)]);
        let s = r.stats();
        assert_eq!((s.lost, s.late), (1, 1));
    }

    #[test]
    fn second_sender_is_ignored_until_the_first_goes_quiet_or_says_bye() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::ZERO);
        let ms = |n| t0 + Duration::from_millis(n);
        r.handle_rtp(ms(0), &opus_pkt(1, 100, 0)).expect("rtp");
        r.handle_rtp(ms(500), &opus_pkt(2, 5000, 0)).expect("rtp");
        r.handle_rtp(ms(1000), &opus_pkt(2, 5001, 0)).expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(1));
        assert_eq!(r.stats().foreign_ssrc_packets, 2);
        assert_eq!(seqs(&mut r), [100]);
        // Sender 1 silent for > 1 s: sender 2 (a restart) takes over.
        r.handle_rtp(ms(1001), &opus_pkt(2, 5002, 0)).expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(2));
        assert_eq!(seqs(&mut r), [5002]);
        assert_eq!(r.stats().sender_restarts, 1);
        // Sender 1 comes back: ignored while 2 is alive.
        r.handle_rtp(ms(1002), &opus_pkt(1, 101, 0)).expect("rtp");
        assert_eq!(r.stats().foreign_ssrc_packets, 3);
        // BYE from 2 hands the port over at once.
        let bye = rtcp::write_compound(
            &[RtcpPacket::Bye {
                ssrcs: vec![2],
                reason: None,
            }],
            &mut BytesMut::new(),
        );
        r.handle_rtcp(ms(1003), &bye).expect("rtcp");
        assert!(!r.request_keyframe(ms(1003)), "no PLI to a departed sender");
        r.handle_rtp(ms(1004), &opus_pkt(3, 9, 0)).expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(3));
        assert_eq!(seqs(&mut r), [9]);
        assert_eq!(r.stats().sender_restarts, 2);
    }

    /// Only the locked sender's host speaks for it: a BYE or SR naming its
    /// SSRC from another address, or a BYE from its host naming another
    /// SSRC, neither ends the stream nor moves lip sync; RTP with its SSRC
    /// from elsewhere is a second sender.
    #[test]
    fn bye_and_sr_count_only_from_the_locked_source() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let peer: IpAddr = "192.0.2.7".parse().expect("ip");
        let rogue: IpAddr = "198.51.100.1".parse().expect("ip");
        let mut r = rx(Codec::Opus, Duration::ZERO);
        let compound = |p: RtcpPacket| rtcp::write_compound(&[p], &mut BytesMut::new());
        let sr = |ssrc, secs: u64| {
            compound(RtcpPacket::SenderReport {
                ssrc,
                ntp: NtpTime(secs << 32),
                rtp_ts: 0,
                packet_count: 1,
                octet_count: 1,
                reports: vec![],
            })
        };
        let bye = |ssrcs: Vec<u32>| {
            compound(RtcpPacket::Bye {
                ssrcs,
                reason: None,
            })
        };
        // An SR from the rogue before any RTP is not kept for the peer.
        r.handle_rtcp_from(ms(0), rogue, &sr(5, 900)).expect("rtcp");
        r.handle_rtp_from(ms(1), peer, &opus_pkt(5, 1, 0))
            .expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(5));
        assert_eq!(r.sender_report(), None, "the rogue's early SR was applied");
        r.handle_rtcp_from(ms(2), peer, &sr(5, 100)).expect("rtcp");
        let real = r.sender_report().expect("the peer's SR");
        assert_eq!(real.ntp, NtpTime(100 << 32));
        // A forged SR naming the peer's SSRC: ignored, counted.
        r.handle_rtcp_from(ms(3), rogue, &sr(5, 200)).expect("rtcp");
        assert_eq!(r.sender_report(), Some(real), "a forged SR moved lip sync");
        // Forged BYEs: from the rogue naming the peer, from the peer's host
        // naming someone else. The stream goes on; a newcomer is refused.
        r.handle_rtcp_from(ms(4), rogue, &bye(vec![7, 5]))
            .expect("rtcp");
        r.handle_rtcp_from(ms(5), peer, &bye(vec![7]))
            .expect("rtcp");
        r.handle_rtp_from(ms(6), rogue, &opus_pkt(7, 50, 0))
            .expect("rtp");
        r.handle_rtp_from(ms(7), peer, &opus_pkt(7, 51, 0))
            .expect("rtp");
        // The peer's SSRC sent from the rogue's address is a second sender.
        r.handle_rtp_from(ms(8), rogue, &opus_pkt(5, 2, 960))
            .expect("rtp");
        r.handle_rtp_from(ms(9), peer, &opus_pkt(5, 3, 1920))
            .expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(5));
        assert_eq!(seqs(&mut r), [1, 3]);
        let s = r.stats();
        assert_eq!((s.foreign_rtcp, s.foreign_ssrc_packets), (2, 3));
        assert_eq!(s.sender_restarts, 0);
        assert!(r.request_keyframe(ms(10)), "the stream was ended");
        // The peer's own BYE (from another port, as RTCP is) ends it at once.
        r.handle_rtcp_from(ms(11), peer, &bye(vec![5]))
            .expect("rtcp");
        r.handle_rtp_from(ms(12), peer, &opus_pkt(8, 9, 0))
            .expect("rtp");
        assert_eq!(r.sender_ssrc(), Some(8));
        assert_eq!(seqs(&mut r), [9]);
    }

    #[test]
    fn renumbered_sender_with_same_ssrc_is_picked_up() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::ZERO);
        r.handle_rtp(t0, &opus_pkt(1, 100, 0)).expect("rtp");
        r.handle_rtp(t0, &opus_pkt(1, 101, 0)).expect("rtp");
        r.handle_rtp(t0, &opus_pkt(1, 40_000, 0)).expect("rtp");
        r.handle_rtp(t0, &opus_pkt(1, 40_001, 0)).expect("rtp");
        r.handle_rtp(t0, &opus_pkt(1, 40_002, 0)).expect("rtp");
        assert_eq!(seqs(&mut r), [100, 101, 40_001, 40_002]);
        let s = r.stats();
        assert_eq!((s.seq_jumps, s.sender_restarts, s.lost), (1, 1, 0));
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::ZERO);
        // 20 ms packets; arrivals alternate between on time and 4 ms late,
        // so every transit difference is 4 ms = 192 ticks.
        let mut want = 0.0f64;
        for i in 0..200u32 {
            let late = if i % 2 == 1 { 4 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + late);
            r.handle_rtp(at, &opus_pkt(1, i as u16, i * 960))
                .expect("rtp");
            if i > 0 {
                want += (192.0 - want) / 16.0;
            }
        }
        let got = r.stats().jitter_ms;
        assert!((got - want / 48.0).abs() < 1e-6, "{got} vs {}", want / 48.0);
        assert!((got - 4.0).abs() < 0.01);
        let block = rr_block(&mut r, t0 + Duration::from_secs(5)).expect("block");
        assert_eq!(block.jitter, want as u32);
    }

    #[test]
    fn rr_carries_lsr_and_dlsr_and_units_get_sender_time() {
        let t0 = Instant::now();
        let mut r = rx(Codec::Opus, Duration::ZERO);
        let sr_ntp = NtpTime(0x0000_1234_8000_0000);
        let sr = rtcp::write_compound(
            &[
                RtcpPacket::SenderReport {
                    ssrc: 5,
                    ntp: sr_ntp,
                    rtp_ts: 48_000,
                    packet_count: 1,
                    octet_count: 2,
                    reports: vec![],
                },
                RtcpPacket::Sdes {
                    chunks: vec![SdesChunk {
                        ssrc: 5,
                        cname: Some("sender@host".into()),
                    }],
                },
            ],
            &mut BytesMut::new(),
        );
        // The SR arrives before any RTP: it is kept for when the source appears.
        r.handle_rtcp(t0, &sr).expect("rtcp");
        r.handle_rtp(t0, &opus_pkt(5, 1, 48_000 + 24_000))
            .expect("rtp");
        r.handle_rtcp(t0, &sr).expect("rtcp");
        assert_eq!(r.sender_cname(), Some("sender@host"));
        let u = r.poll_unit().expect("unit");
        assert_eq!(u.sender_ntp, Some(NtpTime(0x0000_1235_0000_0000)));
        let due = r.next_timeout().expect("RR timer");
        let block = rr_block(&mut r, due).expect("block");
        assert_eq!(block.lsr, 0x1234_8000);
        // DLSR: delay from the SR's arrival to this RR, in 1/65536 s.
        let want = (due - t0).as_micros() * 65536 / 1_000_000;
        assert!(want > 0);
        assert_eq!(u128::from(block.dlsr), want);
    }

    #[test]
    fn pli_is_rate_limited() {
        let t0 = Instant::now();
        let mut r = rx(Codec::H264, Duration::ZERO);
        assert!(!r.request_keyframe(t0), "no sender yet");
        r.handle_rtp(t0, &opus_pkt(9, 1, 0)).expect("rtp");
        assert!(r.request_keyframe(t0));
        let t = r.poll_transmit().expect("rtcp");
        let pkts = rtcp::parse_compound(&t.data).expect("parses");
        assert!(matches!(
            pkts[0],
            RtcpPacket::ReceiverReport { ssrc: 0xaaaa, .. }
        ));
        assert_eq!(
            pkts[2],
            RtcpPacket::Pli {
                sender_ssrc: 0xaaaa,
                media_ssrc: 9
            }
        );
        assert!(!r.request_keyframe(t0 + Duration::from_millis(499)));
        assert!(r.request_keyframe(t0 + Duration::from_millis(500)));
        assert_eq!(r.stats().pli_sent, 2);
    }

    #[test]
    fn h264_units_survive_reordering_and_report_loss() {
        let t0 = Instant::now();
        let mut r = rx(Codec::H264, Duration::from_millis(30));
        let mut pay = H264Payloader::new(500).expect("mtu");
        let mut wire: Vec<Vec<u8>> = Vec::new();
        let mut seq = 60_000u16;
        let mut aus = Vec::new();
        for f in 0..10u32 {
            // A big NAL (4 FU-A fragments) and a small one (single NAL).
            let mut au = vec![0, 0, 0, 1, if f == 0 { 0x65 } else { 0x41 }];
            au.extend((0..1800).map(|i| (i % 250 + 1) as u8));
            au.extend_from_slice(&[0, 0, 0, 1, 0x41, 9, 9, 9]);
            pay.packetize(&au, |parts, marker| {
                let mut b = BytesMut::new();
                RtpHeader {
                    marker,
                    payload_type: 96,
                    sequence: seq,
                    timestamp: f * 3000,
                    ssrc: 77,
                }
                .write_to(&mut b);
                for p in parts {
                    b.put_slice(p);
                }
                wire.push(b.to_vec());
                seq = seq.wrapping_add(1);
            });
            aus.push(au);
        }
        // Swap neighbours pairwise (the very first packet arrives second) and
        // lose a middle fragment of frame 5 (sent as packet 27, received 26th).
        assert_eq!(wire.len(), 50);
        for pair in wire.chunks_mut(2) {
            pair.reverse();
        }
        let lost = 26;
        for (i, p) in wire.iter().enumerate() {
            if i != lost {
                let at = t0 + Duration::from_millis(i as u64);
                r.handle_rtp(at, p).expect("rtp");
            }
        }
        r.handle_timeout(t0 + Duration::from_secs(1));
        let got = units(&mut r);
        assert_eq!(got.len(), 10);
        for (i, u) in got.iter().enumerate() {
            assert_eq!(u.rtp_timestamp, i as u32 * 3000);
            assert_eq!(u.ssrc, 77);
            if i == 5 {
                assert!(!u.complete);
                assert_eq!(&u.data[..], &[0, 0, 0, 1, 0x41, 9, 9, 9]);
            } else {
                assert!(u.complete, "unit {i}");
                assert_eq!(u.data, aus[i]);
            }
            assert_eq!(u.keyframe, i == 0);
        }
        assert_eq!(r.stats().lost, 1);
        // The fragments after the hole were dropped, and the log can say which.
        let e = r.last_depay_error().expect("a depay error");
        assert_eq!((e.ssrc, e.timestamp), (77, 5 * 3000));
        assert_eq!(e.kind, crate::payload::DepayErrorKind::FuWithoutStart);
    }

    #[test]
    fn garbage_never_panics() {
        let t0 = Instant::now();
        let mut r = rx(Codec::H264, Duration::from_millis(20));
        let mut rng = StdRng::seed_from_u64(4);
        for i in 0..30_000u64 {
            let now = t0 + Duration::from_millis(i);
            let mut d: Vec<u8> = (0..rng.random_range(0..60)).map(|_| rng.random()).collect();
            if d.len() > 12 {
                d[0] = 0x80;
                d[8..12].copy_from_slice(&[0, 0, 0, rng.random_range(0..3)]);
            }
            if rng.random_bool(0.9) {
                let _ = r.handle_rtp(now, &d);
            } else {
                let _ = r.handle_rtcp(now, &d);
            }
            if rng.random_bool(0.01) {
                r.request_keyframe(now);
            }
            r.handle_timeout(now);
            while r.poll_unit().is_some() {}
            while r.poll_transmit().is_some() {}
        }
    }

    /// The REMBs a receiver sends over `frames` pictures of ten 1000-byte
    /// Opus-shaped packets each, 20 ms apart, the path adding `extra(i)` of
    /// delay to picture `i`: (time, bitrate).
    fn rembs(frames: u32, extra: impl Fn(u32) -> Duration) -> Vec<(Duration, u64)> {
        let mut cfg = ReceiverConfig::new(Codec::Opus, "rx@test");
        cfg.ssrc = Some(0xaaaa);
        cfg.latency = Duration::ZERO;
        cfg.remb = true;
        let mut r = RtpReceiver::new(cfg, &mut StdRng::seed_from_u64(3)).expect("config");
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut seq = 0u16;
        for i in 0..frames {
            let sent = Duration::from_millis(20) * i;
            for k in 0..10u32 {
                let mut p = opus_pkt(0x1234, seq, i * 960);
                p.resize(1000, 0);
                seq = seq.wrapping_add(1);
                // 10 packets a picture at 4 Mbit/s: 2 ms apart.
                let at = t0 + sent + extra(i) + Duration::from_millis(2) * k;
                while let Some(due) = r.next_timeout().filter(|d| *d <= at) {
                    r.handle_timeout(due);
                    while let Some(t) = r.poll_transmit() {
                        for p in rtcp::parse_compound(&t.data).expect("parses") {
                            if let RtcpPacket::Remb { bitrate, ssrcs, .. } = p {
                                assert_eq!(ssrcs, vec![0x1234]);
                                out.push((due - t0, bitrate));
                            }
                        }
                    }
                }
                r.handle_rtp(at, &p).expect("valid");
                let _ = units(&mut r);
            }
        }
        assert_eq!(r.stats().remb_sent, out.len() as u64);
        out
    }

    #[test]
    fn remb_says_what_arrives_and_cuts_as_soon_as_a_queue_grows() {
        // A clear path: a REMB a second, above what arrives (4 Mbit/s).
        let clear = rembs(150, |_| Duration::ZERO);
        assert!((2..=4).contains(&clear.len()), "{clear:?}");
        assert!(clear.iter().all(|(_, b)| *b > 4_000_000), "{clear:?}");
        // From picture 100 (2 s) on, each picture waits 10 ms more than the
        // last: a queue growing half as fast as time, as twice the cap does.
        let queued = rembs(150, |i| Duration::from_millis(10) * i.saturating_sub(100));
        let first_cut = queued.iter().find(|(_, b)| *b < 4_000_000).expect("a cut");
        // 50 ms of queue after 5 pictures (2.1 s), the least of 70 ms of
        // packets over it soon after: told at once, not at the next RR.
        assert!(
            first_cut.0 < Duration::from_millis(2_300),
            "cut at {first_cut:?}: {queued:?}"
        );
        // Then every 100 ms while the queue lasts.
        let after: Vec<_> = queued.iter().filter(|(t, _)| *t >= first_cut.0).collect();
        assert!(after.len() >= 5, "{queued:?}");
        assert!(after.iter().all(|(_, b)| *b < 4_000_000), "{queued:?}");
    }
}
