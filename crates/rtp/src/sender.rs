//! The sending half of an RTP session: packetizes units, reads the peer's
//! RTCP, and sends sender reports on schedule.
//!
//! [`RtpSender`] is sans-IO: it never reads the clock or touches a socket.
//! The caller feeds it units ([`RtpSender::push`]), received RTCP
//! ([`RtpSender::handle_rtcp`]) and the passing of time
//! ([`RtpSender::handle_timeout`]), and after each of those drains
//! [`RtpSender::poll_transmit`] and [`RtpSender::poll_event`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use pstream_core::{Codec, EncodedUnit, PipelineClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::packet::RtpHeader;
use crate::payload::{Packetizer, Payloader, PayloaderError, PT_H264, PT_JPEG, PT_OPUS};
use crate::rtcp::{self, NackPair, RtcpError, RtcpPacket, SdesChunk};
use crate::rtx::{self, History, Lookup, RttEstimator, RtxConfig};

/// Default largest RTP packet, header included: fits any tunnel on the way.
pub const DEFAULT_MTU: usize = 1200;
/// Default RTCP report interval before randomisation (RFC 3550 uses 5 s;
/// pstream reports every second so loss and RTT show up quickly).
pub const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between two keyframes asked of the encoder, however many
/// PLIs and FIRs arrive: a peer (or a host on the path) asking all the time
/// would otherwise make every picture an IDR, several times the bitrate.
pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(200);
/// The default of [`SenderConfig::keyframe_interval`]: a quarter of pstream's
/// default 2 s keyframe interval.
pub const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
// Events the caller has not polled are dropped oldest-first past this.
const MAX_QUEUED_EVENTS: usize = 64;
// Packets share allocations of this size on the send path.
const SEND_BUF_CHUNK: usize = 64 * 1024;

/// How a packet must be sent: RTP to the peer's port, RTCP to port + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransmitKind {
    /// An RTP media packet.
    Rtp,
    /// An RTCP compound packet.
    Rtcp,
}

/// A datagram the session wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Which port it goes to.
    pub kind: TransmitKind,
    /// The datagram.
    pub data: Bytes,
}

/// Everything an [`RtpSender`] needs to know up front.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// SSRC to send with; `None` picks a random one.
    pub ssrc: Option<u32>,
    /// RTP payload type (0..=127).
    pub payload_type: u8,
    /// The codec of the units that will be pushed (H.264 or Opus).
    pub codec: Codec,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Largest RTP packet in bytes, 12-byte header included.
    pub mtu: usize,
    /// Canonical name sent in SDES.
    pub cname: String,
    /// The pipeline clock: maps capture instants to RTP time and `now` to NTP.
    pub clock: PipelineClock,
    /// Mean RTCP interval; each one is randomised to 0.5–1.5 times this.
    pub rtcp_interval: Duration,
    /// Retransmission (RFC 4588) of what the peer NACKs; `None`: NACKs are
    /// only counted.
    pub rtx: Option<RtxConfig>,
    /// Shortest time between two keyframes asked for by PLI or FIR: a
    /// request sooner after the last one asked waits until then, and any
    /// number of them waiting make one request. A request also waits until
    /// [`MIN_KEYFRAME_INTERVAL`] after the last keyframe sent, the
    /// encoder's own included; the encoder's own do not start this interval,
    /// so a loss just after a scheduled IDR is repaired 200 ms later, not a
    /// quarter keyint later.
    pub keyframe_interval: Duration,
}

impl SenderConfig {
    /// pstream's defaults for `codec`: [`PT_H264`] (96) for H.264,
    /// [`PT_OPUS`] (97) for Opus, [`PT_JPEG`] (26) for MJPEG, the codec's
    /// clock rate, a 1200-byte MTU, a random SSRC, 1 s RTCP interval.
    pub fn new(codec: Codec, clock: PipelineClock, cname: impl Into<String>) -> Self {
        Self {
            ssrc: None,
            payload_type: match codec {
                Codec::Opus => PT_OPUS,
                Codec::Mjpeg => PT_JPEG,
                _ => PT_H264,
            },
            codec,
            clock_rate: codec.rtp_clock_rate(),
            mtu: DEFAULT_MTU,
            cname: cname.into(),
            clock,
            rtcp_interval: DEFAULT_RTCP_INTERVAL,
            rtx: None,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
        }
    }

    /// Spaces requested keyframes by a quarter of the encoder's keyframe
    /// interval `keyint`, and at least [`MIN_KEYFRAME_INTERVAL`].
    pub fn with_keyint(mut self, keyint: Duration) -> Self {
        self.keyframe_interval = (keyint / 4).max(MIN_KEYFRAME_INTERVAL);
        self
    }

    /// Sets the RTP payload type.
    pub fn with_payload_type(mut self, payload_type: u8) -> Self {
        self.payload_type = payload_type;
        self
    }

    /// Sets the largest RTP packet, header included.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets a fixed SSRC instead of a random one.
    pub fn with_ssrc(mut self, ssrc: u32) -> Self {
        self.ssrc = Some(ssrc);
        self
    }

    /// Sets the mean RTCP interval.
    pub fn with_rtcp_interval(mut self, interval: Duration) -> Self {
        self.rtcp_interval = interval;
        self
    }

    /// Answers NACKs with RTX packets as `rtx` says.
    pub fn with_rtx(mut self, rtx: RtxConfig) -> Self {
        self.rtx = Some(rtx);
        self
    }
}

/// Why a sender could not be built or could not take a unit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SenderError {
    /// pstream has no RTP payload format for this codec.
    #[error("no RTP payload format for {0}")]
    UnsupportedCodec(Codec),
    /// A payload type outside 0..=127.
    #[error("payload type {0} does not fit in 7 bits")]
    PayloadType(u8),
    /// A clock rate of zero.
    #[error("RTP clock rate must be positive")]
    ClockRate,
    /// An RTX payload type outside 0..=127 or equal to the media's.
    #[error("RTX payload type {rtx} is unusable with media payload type {media}")]
    RtxPayloadType {
        /// The RTX payload type asked for.
        rtx: u8,
        /// The media payload type.
        media: u8,
    },
    /// The payloader refused the MTU.
    #[error(transparent)]
    Payloader(#[from] PayloaderError),
    /// The payloader refused a unit; nothing of it was sent.
    #[error("cannot packetize the {len}-byte unit for ssrc {ssrc:#010x} seq {seq} ts {timestamp}")]
    Packetize {
        /// Our SSRC.
        ssrc: u32,
        /// The sequence number the unit's first packet would have had.
        seq: u16,
        /// The unit's RTP timestamp.
        timestamp: u32,
        /// The unit's length in bytes.
        len: usize,
        /// Why the payloader refused it.
        #[source]
        source: PayloaderError,
    },
    /// A unit of another codec than the session's.
    #[error("pushed a {got} unit into a {expected} RTP session")]
    CodecMismatch {
        /// The session's codec.
        expected: Codec,
        /// The unit's codec.
        got: Codec,
    },
    /// The session was closed.
    #[error("RTP session closed")]
    Closed,
}

/// Why the peer asked for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyframeReason {
    /// A picture loss indication (RFC 4585).
    Pli,
    /// A full intra request (RFC 5104).
    Fir,
}

/// What a receiver last told us about our stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverReportStats {
    /// SSRC of the reporting receiver.
    pub reporter_ssrc: u32,
    /// Fraction of packets lost since its previous report, 0.0–1.0.
    pub fraction_lost: f32,
    /// Packets lost since it started receiving.
    pub cumulative_lost: i32,
    /// Extended highest sequence number it received.
    pub highest_seq: u32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time from LSR/DLSR, if the report referred to one of our SRs.
    pub rtt: Option<Duration>,
}

/// Something the caller should react to.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderEvent {
    /// The peer lost a picture: ask the encoder for a keyframe.
    KeyframeRequested {
        /// PLI or FIR.
        reason: KeyframeReason,
    },
    /// A receiver report on our stream arrived.
    ReceiverReport(ReceiverReportStats),
    /// The peer's receiver estimated maximum bitrate (REMB) covering our
    /// stream: a ceiling for `--bitrate auto` ([`crate::rate`]).
    Remb {
        /// The estimate in bits per second, as sent (not yet checked).
        bitrate: u64,
    },
    /// A peer source said goodbye.
    Bye {
        /// The source leaving.
        ssrc: u32,
        /// Its reason, if given.
        reason: Option<String>,
    },
}

/// Counters for the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SenderStats {
    /// RTP packets sent.
    pub packets: u64,
    /// RTP payload octets sent (headers excluded, as in the SR).
    pub octets: u64,
    /// Units pushed.
    pub units: u64,
    /// PLIs and new FIRs received for our SSRC.
    pub keyframe_requests: u64,
    /// Keyframes asked of the caller ([`SenderEvent::KeyframeRequested`]):
    /// at most one per [`SenderConfig::keyframe_interval`].
    pub keyframes_asked: u64,
    /// Sequence numbers NACKed by the peer (retransmission requests).
    pub nacked: u64,
    /// NACK entries dropped because one NACK listed too many.
    pub nack_entries_dropped: u64,
    /// RTX packets sent (requests answered).
    pub rtx_sent: u64,
    /// Payload octets of those, OSN included.
    pub rtx_octets: u64,
    /// Requests for packets no longer (or not yet) in the history.
    pub rtx_missing: u64,
    /// Requests for packets resent less than half a round trip before.
    pub rtx_suppressed: u64,
    /// Requests dropped because retransmissions had used up their share of
    /// the stream ([`RtxConfig::max_share`]): a NACK flood.
    pub rtx_rate_limited: u64,
    /// RTCP compounds sent.
    pub rtcp_sent: u64,
    /// The latest report block about our stream.
    pub last_report: Option<ReceiverReportStats>,
}

/// One outgoing RTP stream and its RTCP.
#[derive(Debug)]
pub struct RtpSender {
    config: SenderConfig,
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    payloader: Packetizer,
    buf: BytesMut,
    rtcp_buf: BytesMut,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    next_rtcp: Option<Instant>,
    last_fir_seq: Option<u8>,
    /// When the last keyframe went out (pushed).
    last_keyframe: Option<Instant>,
    /// When a keyframe was last asked of the caller for a PLI or FIR.
    last_asked: Option<Instant>,
    /// A request that came too soon after the last keyframe: asked for once
    /// the interval is over, unless a keyframe goes out before.
    keyframe_pending: Option<KeyframeReason>,
    closed: bool,
    rng: StdRng,
    rtx: Option<RtxState>,
    rtt: RttEstimator,
}

/// The RTX stream of a sender.
#[derive(Debug)]
struct RtxState {
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    history: History,
    buf: BytesMut,
    /// Bytes that may still be resent (filled by the media, up to `burst`).
    tokens: f64,
    share: f64,
    burst: f64,
}

/// Shortest gap between two resends of one packet before any round trip is
/// known (then half the smoothed round trip, 5..100 ms).
const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_millis(10);

impl RtpSender {
    /// A sender whose SSRC (unless configured), first sequence number, RTP
    /// timestamp base and RTCP timing come from `rng`.
    pub fn new<R: Rng>(config: SenderConfig, rng: &mut R) -> Result<Self, SenderError> {
        if config.payload_type > 0x7f {
            return Err(SenderError::PayloadType(config.payload_type));
        }
        if config.clock_rate == 0 {
            return Err(SenderError::ClockRate);
        }
        let payloader = Packetizer::new(config.codec, config.mtu)
            .ok_or(SenderError::UnsupportedCodec(config.codec))??;
        let mut rng = StdRng::from_rng(rng);
        let ssrc = config.ssrc.unwrap_or_else(|| rng.random());
        let rtx = match &config.rtx {
            Some(r) if r.payload_type > 0x7f || r.payload_type == config.payload_type => {
                return Err(SenderError::RtxPayloadType {
                    rtx: r.payload_type,
                    media: config.payload_type,
                });
            }
            Some(r) => Some(RtxState {
                payload_type: r.payload_type,
                // Never our own SSRC: the two streams must stay apart.
                ssrc: r.ssrc.unwrap_or_else(|| loop {
                    let s: u32 = rng.random();
                    if s != ssrc {
                        break s;
                    }
                }),
                seq: rng.random(),
                history: History::new(r.history_bytes, r.history_age),
                buf: BytesMut::new(),
                tokens: r.burst_bytes as f64,
                share: r.max_share.max(0.0),
                burst: r.burst_bytes as f64,
            }),
            None => None,
        };
        Ok(Self {
            ssrc,
            seq: rng.random(),
            ts_base: rng.random(),
            payloader,
            buf: BytesMut::new(),
            rtcp_buf: BytesMut::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SenderStats::default(),
            next_rtcp: None,
            last_fir_seq: None,
            last_keyframe: None,
            last_asked: None,
            keyframe_pending: None,
            closed: false,
            rng,
            rtx,
            rtt: RttEstimator::default(),
            config,
        })
    }

    /// A sender with its randomness seeded from `seed` (deterministic).
    pub fn with_seed(config: SenderConfig, seed: u64) -> Result<Self, SenderError> {
        Self::new(config, &mut StdRng::seed_from_u64(seed))
    }

    /// A sender seeded from the OS, for production use.
    pub fn with_os_rng(config: SenderConfig) -> Result<Self, SenderError> {
        Self::new(config, &mut StdRng::from_os_rng())
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.seq
    }

    /// SSRC of the RTX stream, if retransmission is on.
    pub fn rtx_ssrc(&self) -> Option<u32> {
        self.rtx.as_ref().map(|r| r.ssrc)
    }

    /// Bytes of sent packets held for retransmission.
    pub fn rtx_history_bytes(&self) -> usize {
        self.rtx.as_ref().map_or(0, |r| r.history.bytes())
    }

    /// The round trip smoothed over the receiver reports so far.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The counters so far.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// The RTP timestamp of instant `t` on the pipeline clock.
    ///
    /// Media timestamps (from capture times) and SR timestamps (from `now`)
    /// both come from here, so an SR's NTP/RTP pair matches the media exactly.
    pub fn rtp_timestamp_at(&self, t: Instant) -> u32 {
        // Whole microseconds, the resolution the NTP mapping has too.
        let us = self.config.clock.elapsed_at(t).as_micros();
        let ticks = us * u128::from(self.config.clock_rate) / 1_000_000;
        self.ts_base.wrapping_add(ticks as u32)
    }

    /// Packetizes `unit` into RTP packets queued for [`Self::poll_transmit`].
    ///
    /// Returns how many packets were queued. The first push schedules the
    /// first SR for `now`, i.e. right after the first packets.
    pub fn push(&mut self, now: Instant, unit: &EncodedUnit) -> Result<usize, SenderError> {
        if self.closed {
            return Err(SenderError::Closed);
        }
        if unit.codec != self.config.codec {
            return Err(SenderError::CodecMismatch {
                expected: self.config.codec,
                got: unit.codec,
            });
        }
        let template = RtpHeader {
            marker: false,
            payload_type: self.config.payload_type,
            sequence: 0,
            timestamp: self.rtp_timestamp_at(unit.capture),
            ssrc: self.ssrc,
        };
        let first_seq = self.seq;
        let octets_before = self.stats.octets;
        let Self {
            payloader,
            buf,
            transmits,
            seq,
            stats,
            config,
            rtx,
            ..
        } = self;
        let mut history = rtx.as_mut().map(|r| &mut r.history);
        let mut emit = |parts: &[&[u8]], marker: bool| {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            if buf.capacity() < 12 + len {
                buf.reserve(SEND_BUF_CHUNK.max(config.mtu));
            }
            RtpHeader {
                marker,
                sequence: *seq,
                ..template
            }
            .write_to(buf);
            for p in parts {
                buf.put_slice(p);
            }
            let data = buf.split().freeze();
            if let Some(h) = history.as_mut() {
                h.push(now, *seq, data.clone());
            }
            transmits.push_back(Transmit {
                kind: TransmitKind::Rtp,
                data,
            });
            *seq = seq.wrapping_add(1);
            stats.packets += 1;
            stats.octets += len as u64;
        };
        let n = payloader
            .packetize(&unit.data, &mut emit)
            .map_err(|source| SenderError::Packetize {
                ssrc: template.ssrc,
                seq: first_seq,
                timestamp: template.timestamp,
                len: unit.data.len(),
                source,
            })?;
        self.stats.units += 1;
        if let Some(r) = self.rtx.as_mut() {
            let sent = self.stats.octets - octets_before;
            r.tokens = (r.tokens + r.share * sent as f64).min(r.burst);
        }
        if unit.keyframe {
            // Whatever asked for it (or the encoder's own interval), the
            // peer has its keyframe: requests waiting are answered.
            self.last_keyframe = Some(now);
            self.keyframe_pending = None;
        }
        if self.next_rtcp.is_none() && n > 0 {
            self.next_rtcp = Some(now);
        }
        Ok(n)
    }

    /// The next datagram to send, if any. Call until `None` after every
    /// `push`, `handle_timeout`, `handle_rtcp` and `close`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any. Call until `None` after `handle_rtcp`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called (`None`: not until
    /// the next `push`). Re-read after every call into the sender.
    #[must_use]
    pub fn next_timeout(&self) -> Option<Instant> {
        let keyframe = self.keyframe_pending.and(self.keyframe_due());
        [self.next_rtcp, keyframe].into_iter().flatten().min()
    }

    /// Sends a sender report if one is due at `now`, and asks for a waiting
    /// keyframe once its interval is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(reason) = self.keyframe_pending {
            if self.keyframe_due().is_none_or(|due| now >= due) {
                self.keyframe_pending = None;
                self.ask_keyframe(now, reason);
            }
        }
        let Some(due) = self.next_rtcp else {
            return;
        };
        if now < due {
            return;
        }
        self.queue_report(now, false);
        let factor = self.rng.random_range(0.5..1.5);
        self.next_rtcp = Some(now + self.config.rtcp_interval.mul_f64(factor));
    }

    /// Queues a last SR + SDES + BYE; the sender accepts no more units.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.queue_report(now, true);
        self.closed = true;
        self.next_rtcp = None;
    }

    /// Reads an RTCP compound from the peer. An `Err` means the datagram was
    /// malformed and ignored; the caller counts it.
    pub fn handle_rtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), RtcpError> {
        let me = self.ssrc;
        for packet in rtcp::parse_compound(data)? {
            match packet {
                RtcpPacket::SenderReport { ssrc, reports, .. }
                | RtcpPacket::ReceiverReport { ssrc, reports } => {
                    for r in reports.iter().filter(|r| r.ssrc == me) {
                        let stats = ReceiverReportStats {
                            reporter_ssrc: ssrc,
                            fraction_lost: f32::from(r.fraction_lost) / 256.0,
                            cumulative_lost: r.cumulative_lost,
                            highest_seq: r.highest_seq,
                            jitter_ms: f64::from(r.jitter) * 1000.0
                                / f64::from(self.config.clock_rate),
                            rtt: self.rtt(now, r.lsr, r.dlsr),
                        };
                        if let Some(rtt) = stats.rtt {
                            self.rtt.sample(rtt);
                        }
                        self.stats.last_report = Some(stats);
                        self.event(SenderEvent::ReceiverReport(stats));
                    }
                }
                RtcpPacket::Pli { media_ssrc, .. } if media_ssrc == me => {
                    self.keyframe(now, KeyframeReason::Pli);
                }
                RtcpPacket::Fir { entries, .. } => {
                    for e in entries.iter().filter(|e| e.ssrc == me) {
                        // A repeated command number is a retransmission.
                        if self.last_fir_seq != Some(e.seq) {
                            self.last_fir_seq = Some(e.seq);
                            self.keyframe(now, KeyframeReason::Fir);
                        }
                    }
                }
                RtcpPacket::Nack {
                    media_ssrc,
                    pairs,
                    dropped_pairs,
                    ..
                } if media_ssrc == me => {
                    self.stats.nack_entries_dropped += dropped_pairs as u64;
                    self.answer_nack(now, &pairs);
                }
                RtcpPacket::Remb { bitrate, ssrcs, .. } if ssrcs.contains(&me) => {
                    self.event(SenderEvent::Remb { bitrate });
                }
                RtcpPacket::Bye { ssrcs, reason } => {
                    for ssrc in ssrcs.into_iter().filter(|s| *s != me) {
                        self.event(SenderEvent::Bye {
                            ssrc,
                            reason: reason.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// RTT from a report block: now − LSR − DLSR, all in 1/65536 s.
    fn rtt(&self, now: Instant, lsr: u32, dlsr: u32) -> Option<Duration> {
        if lsr == 0 {
            return None;
        }
        let now_mid = self.config.clock.ntp(now).middle32();
        let rtt = now_mid.wrapping_sub(lsr).wrapping_sub(dlsr);
        // A "negative" RTT means a bogus LSR/DLSR (or one from another sender).
        if rtt > u32::MAX / 2 {
            return None;
        }
        Some(Duration::from_nanos(u64::from(rtt) * 1_000_000_000 / 65536))
    }

    /// Resends what `pairs` ask for (at most 64 entries, 1088 packets, per
    /// NACK: the parser cuts longer ones) as RTX packets, if RTX is on.
    fn answer_nack(&mut self, now: Instant, pairs: &[NackPair]) {
        let min_interval = self.rtt.srtt().map_or(DEFAULT_RESEND_INTERVAL, |rtt| {
            (rtt / 2).clamp(Duration::from_millis(5), Duration::from_millis(100))
        });
        for seq in pairs.iter().flat_map(|p| p.lost()) {
            self.stats.nacked += 1;
            let Some(r) = self.rtx.as_mut() else {
                continue;
            };
            let original = match r.history.lookup(now, seq, min_interval) {
                Lookup::Resend(d) if (d.len() as f64) > r.tokens => {
                    self.stats.rtx_rate_limited += 1;
                    continue;
                }
                Lookup::Resend(d) => d,
                Lookup::Missing => {
                    self.stats.rtx_missing += 1;
                    continue;
                }
                Lookup::Suppressed => {
                    self.stats.rtx_suppressed += 1;
                    continue;
                }
            };
            let Some(data) = rtx::rtx_packet(&original, r.payload_type, r.seq, r.ssrc, &mut r.buf)
            else {
                continue;
            };
            r.seq = r.seq.wrapping_add(1);
            r.tokens -= original.len() as f64;
            self.stats.rtx_sent += 1;
            // The RTX payload is everything after the 12-byte header (pstream
            // sends no CSRCs or extensions), OSN included.
            self.stats.rtx_octets += data.len().saturating_sub(12) as u64;
            self.transmits.push_back(Transmit {
                kind: TransmitKind::Rtp,
                data,
            });
        }
    }

    /// A PLI or FIR: asked of the caller at once if the last request is
    /// `keyframe_interval` old and the last keyframe sent 200 ms old, else
    /// once they are (one request for all that came in between).
    fn keyframe(&mut self, now: Instant, reason: KeyframeReason) {
        self.stats.keyframe_requests += 1;
        if self.keyframe_due().is_none_or(|due| now >= due) {
            self.ask_keyframe(now, reason);
        } else {
            self.keyframe_pending.get_or_insert(reason);
        }
    }

    /// When the next keyframe may be asked for (`None`: at once).
    fn keyframe_due(&self) -> Option<Instant> {
        let asked = self.last_asked.map(|t| t + self.config.keyframe_interval);
        let floor = MIN_KEYFRAME_INTERVAL.min(self.config.keyframe_interval);
        let sent = self.last_keyframe.map(|t| t + floor);
        // None (never) sorts first: the later of the two that exist.
        asked.max(sent)
    }

    fn ask_keyframe(&mut self, now: Instant, reason: KeyframeReason) {
        self.last_asked = Some(now);
        self.stats.keyframes_asked += 1;
        self.event(SenderEvent::KeyframeRequested { reason });
    }

    fn event(&mut self, e: SenderEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn queue_report(&mut self, now: Instant, bye: bool) {
        let mut packets = vec![RtcpPacket::SenderReport {
            ssrc: self.ssrc,
            ntp: self.config.clock.ntp(now),
            rtp_ts: self.rtp_timestamp_at(now),
            packet_count: self.stats.packets as u32,
            octet_count: self.stats.octets as u32,
            reports: Vec::new(),
        }];
        let mut chunks = vec![SdesChunk {
            ssrc: self.ssrc,
            cname: Some(self.config.cname.clone()),
        }];
        let mut ssrcs = vec![self.ssrc];
        // The RTX stream reports like any sender once it has sent something,
        // under the same CNAME, as GStreamer's rtpsession does for
        // rtprtxsend's stream: receivers see it as ours, not as a stranger.
        if let Some(r) = self.rtx.as_ref().filter(|_| self.stats.rtx_sent > 0) {
            packets.push(RtcpPacket::SenderReport {
                ssrc: r.ssrc,
                ntp: self.config.clock.ntp(now),
                rtp_ts: self.rtp_timestamp_at(now),
                packet_count: self.stats.rtx_sent as u32,
                octet_count: self.stats.rtx_octets as u32,
                reports: Vec::new(),
            });
            chunks.push(SdesChunk {
                ssrc: r.ssrc,
                cname: Some(self.config.cname.clone()),
            });
            ssrcs.push(r.ssrc);
        }
        packets.push(RtcpPacket::Sdes { chunks });
        if bye {
            packets.push(RtcpPacket::Bye {
                ssrcs,
                reason: None,
            });
        }
        let data = rtcp::write_compound(&packets, &mut self.rtcp_buf);
        self.transmits.push_back(Transmit {
            kind: TransmitKind::Rtcp,
            data,
        });
        self.stats.rtcp_sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpPacket;
    use crate::rtcp::{parse_compound, FirEntry, ReportBlock};
    use crate::rtx::RtxConfig;
    use bytes::Bytes;
    use pstream_core::NtpTime;

    const ORIGIN_UNIX_US: u64 = 1_700_000_000_000_000;

    fn setup(codec: Codec) -> (RtpSender, PipelineClock, Instant) {
        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, ORIGIN_UNIX_US);
        let mut cfg = SenderConfig::new(codec, clock, "test@pstream");
        cfg.ssrc = Some(0x1111);
        let s = RtpSender::new(cfg, &mut StdRng::seed_from_u64(5)).expect("config");
        (s, clock, origin)
    }

    fn unit(codec: Codec, capture: Instant, data: &[u8]) -> EncodedUnit {
        EncodedUnit {
            codec,
            keyframe: false,
            pts: Duration::ZERO,
            dts: None,
            capture,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn drain(s: &mut RtpSender) -> Vec<Transmit> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn rtcp_of(t: &Transmit) -> Vec<RtcpPacket> {
        assert_eq!(t.kind, TransmitKind::Rtcp);
        parse_compound(&t.data).expect("own RTCP parses")
    }

    #[test]
    fn packets_carry_capture_derived_timestamps() {
        let (mut s, _, origin) = setup(Codec::H264);
        let seq0 = s.next_sequence();
        let t0 = s.rtp_timestamp_at(origin);
        let cap = origin + Duration::from_millis(1000);
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(std::iter::repeat_n(7u8, 3000));
        assert_eq!(s.push(cap, &unit(Codec::H264, cap, &au)), Ok(3));
        let tx = drain(&mut s);
        assert_eq!(tx.len(), 3);
        for (i, t) in tx.iter().enumerate() {
            assert_eq!(t.kind, TransmitKind::Rtp);
            assert!(t.data.len() <= DEFAULT_MTU);
            let p = RtpPacket::parse(t.data.clone()).expect("parses");
            assert_eq!(p.header.timestamp, t0.wrapping_add(90_000));
            assert_eq!(p.header.sequence, seq0.wrapping_add(i as u16));
            assert_eq!(p.header.payload_type, 96);
            assert_eq!(p.header.ssrc, 0x1111);
            assert_eq!(p.header.marker, i == 2);
        }
        assert_eq!(s.stats().packets, 3);
        assert_eq!(
            s.stats().octets,
            tx.iter().map(|t| t.data.len() as u64 - 12).sum()
        );
        assert_eq!(
            s.push(cap, &unit(Codec::Opus, cap, b"x")),
            Err(SenderError::CodecMismatch {
                expected: Codec::H264,
                got: Codec::Opus
            })
        );
    }

    #[test]
    fn a_refused_unit_names_its_stream_and_sends_nothing() {
        let (mut s, _, origin) = setup(Codec::Opus);
        let seq0 = s.next_sequence();
        let cap = origin + Duration::from_millis(20);
        let big = vec![1u8; DEFAULT_MTU];
        let err = s
            .push(cap, &unit(Codec::Opus, cap, &big))
            .expect_err("an Opus packet over the MTU");
        assert_eq!(
            err,
            SenderError::Packetize {
                ssrc: 0x1111,
                seq: seq0,
                timestamp: s.rtp_timestamp_at(cap),
                len: DEFAULT_MTU,
                source: PayloaderError::TooLarge {
                    len: DEFAULT_MTU,
                    max: DEFAULT_MTU - 12
                },
            }
        );
        assert!(err.to_string().contains("ssrc 0x00001111"), "{err}");
        let cause = std::error::Error::source(&err).expect("the payloader's reason");
        assert!(cause.to_string().contains("does not fit"), "{cause}");
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.next_sequence(), seq0);
        assert_eq!(s.stats().units, 0);
    }

    #[test]
    fn sender_reports_follow_the_interval_and_the_clock() {
        let (mut s, clock, origin) = setup(Codec::Opus);
        assert_eq!(s.next_timeout(), None, "no RTCP before media");
        let mut now = origin + Duration::from_millis(20);
        s.push(now, &unit(Codec::Opus, now, &[1; 100]))
            .expect("push");
        let media_ts = s.rtp_timestamp_at(now);
        assert_eq!(
            s.next_timeout(),
            Some(now),
            "first SR right after the first packet"
        );
        s.handle_timeout(now);
        let tx = drain(&mut s);
        assert_eq!(tx[0].kind, TransmitKind::Rtp);
        let first = rtcp_of(&tx[1]);
        match &first[0] {
            RtcpPacket::SenderReport {
                ssrc,
                ntp,
                rtp_ts,
                packet_count,
                octet_count,
                ..
            } => {
                assert_eq!(*ssrc, 0x1111);
                assert_eq!(*ntp, clock.ntp(now));
                assert_eq!(*rtp_ts, media_ts);
                assert_eq!((*packet_count, *octet_count), (1, 100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            first[1],
            RtcpPacket::Sdes {
                chunks: vec![SdesChunk {
                    ssrc: 0x1111,
                    cname: Some("test@pstream".into())
                }]
            }
        );
        // Over a minute, reports come every 0.5–1.5 s and their NTP/RTP
        // pairs all sit on one line of slope 48000/s.
        let mut last = now;
        let mut count = 0;
        let end = origin + Duration::from_secs(61);
        while let Some(due) = s.next_timeout() {
            if due > end {
                break;
            }
            let gap = due - last;
            assert!(gap >= Duration::from_millis(500) && gap <= Duration::from_millis(1500));
            // Calling early does nothing.
            s.handle_timeout(due - Duration::from_millis(1));
            assert!(s.poll_transmit().is_none());
            now = due;
            s.handle_timeout(now);
            for t in drain(&mut s) {
                if let RtcpPacket::SenderReport { ntp, rtp_ts, .. } = &rtcp_of(&t)[0] {
                    let dt_us = ntp.to_unix_micros() as i64 - clock.unix_micros(origin) as i64;
                    let want = s
                        .rtp_timestamp_at(origin)
                        .wrapping_add((dt_us * 48) as u32 / 1000);
                    assert!((rtp_ts.wrapping_sub(want) as i32).abs() <= 1);
                    count += 1;
                }
            }
            last = now;
        }
        assert!((40..=120).contains(&count), "{count} SRs in a minute");
    }

    fn rr(ssrc: u32, block: ReportBlock) -> Bytes {
        rtcp::write_compound(
            &[
                RtcpPacket::ReceiverReport {
                    ssrc,
                    reports: vec![block],
                },
                RtcpPacket::Sdes {
                    chunks: vec![SdesChunk {
                        ssrc,
                        cname: Some("peer".into()),
                    }],
                },
            ],
            &mut BytesMut::new(),
        )
    }

    #[test]
    fn receiver_report_gives_loss_jitter_and_rtt() {
        let (mut s, clock, origin) = setup(Codec::H264);
        let sr_at = origin + Duration::from_secs(10);
        let lsr = clock.ntp(sr_at).middle32();
        // The receiver held the SR for 250 ms; the RR arrives 40 ms later
        // than that (so RTT = 40 ms).
        let now = sr_at + Duration::from_millis(290);
        let block = ReportBlock {
            ssrc: 0x1111,
            fraction_lost: 64,
            cumulative_lost: 17,
            highest_seq: 70_000,
            jitter: 900,
            lsr,
            dlsr: 65536 / 4,
        };
        s.handle_rtcp(now, &rr(0x2222, block)).expect("valid");
        let Some(SenderEvent::ReceiverReport(r)) = s.poll_event() else {
            panic!("expected a report event");
        };
        assert_eq!(r.reporter_ssrc, 0x2222);
        assert_eq!(r.fraction_lost, 0.25);
        assert_eq!(r.cumulative_lost, 17);
        assert_eq!(r.highest_seq, 70_000);
        assert!((r.jitter_ms - 10.0).abs() < 1e-9);
        let rtt = r.rtt.expect("rtt");
        assert!(
            rtt.abs_diff(Duration::from_millis(40)) < Duration::from_micros(100),
            "{rtt:?}"
        );
        assert_eq!(s.stats().last_report, Some(r));
        // Blocks about other sources are ignored; no LSR gives no RTT.
        s.handle_rtcp(now, &rr(0x2222, ReportBlock { ssrc: 9, ..block }))
            .expect("valid");
        assert!(s.poll_event().is_none());
        s.handle_rtcp(now, &rr(0x2222, ReportBlock { lsr: 0, ..block }))
            .expect("valid");
        let Some(SenderEvent::ReceiverReport(r)) = s.poll_event() else {
            panic!("expected a report event");
        };
        assert_eq!(r.rtt, None);
        // A DLSR longer than the time since the SR is nonsense, not a huge RTT.
        s.handle_rtcp(
            now,
            &rr(
                0x2222,
                ReportBlock {
                    dlsr: 65536,
                    ..block
                },
            ),
        )
        .expect("valid");
        let Some(SenderEvent::ReceiverReport(r)) = s.poll_event() else {
            panic!("expected a report event");
        };
        assert_eq!(r.rtt, None);
    }

    #[test]
    fn pli_and_fir_request_keyframes() {
        let (mut s, _, origin) = setup(Codec::H264);
        let mut buf = BytesMut::new();
        let pli = |media_ssrc| RtcpPacket::Pli {
            sender_ssrc: 0x2222,
            media_ssrc,
        };
        let fir = |seq| RtcpPacket::Fir {
            sender_ssrc: 0x2222,
            entries: vec![FirEntry { ssrc: 0x1111, seq }],
        };
        for (i, (packets, want)) in [
            (vec![pli(0x1111)], Some(KeyframeReason::Pli)),
            (vec![pli(0x9999)], None),
            (vec![fir(1)], Some(KeyframeReason::Fir)),
            (vec![fir(1)], None), // retransmitted FIR
            (vec![fir(2)], Some(KeyframeReason::Fir)),
        ]
        .into_iter()
        .enumerate()
        {
            // A second apart: past the keyframe interval each time.
            let now = origin + Duration::from_secs(i as u64);
            let data = rtcp::write_compound(&packets, &mut buf);
            s.handle_rtcp(now, &data).expect("valid");
            assert_eq!(
                s.poll_event(),
                want.map(|reason| SenderEvent::KeyframeRequested { reason })
            );
        }
        assert_eq!(s.stats().keyframe_requests, 3);
    }

    /// 1000 PLIs over 2 s with a 2 s keyframe interval: one keyframe asked
    /// every 500 ms (keyint / 4), the requests in between folded into the
    /// next one, whatever the peer sends.
    #[test]
    fn a_pli_flood_asks_one_keyframe_per_quarter_keyint() {
        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, ORIGIN_UNIX_US);
        let cfg = SenderConfig::new(Codec::H264, clock, "test@pstream")
            .with_ssrc(0x1111)
            .with_keyint(Duration::from_secs(2));
        assert_eq!(cfg.keyframe_interval, Duration::from_millis(500));
        let mut s = RtpSender::new(cfg, &mut StdRng::seed_from_u64(5)).expect("config");
        let pli = rtcp::write_compound(
            &[RtcpPacket::Pli {
                sender_ssrc: 0x2222,
                media_ssrc: 0x1111,
            }],
            &mut BytesMut::new(),
        );
        let mut asked = Vec::new();
        let mut poll = |s: &mut RtpSender, now: Instant| {
            while let Some(e) = s.poll_event() {
                assert!(matches!(e, SenderEvent::KeyframeRequested { .. }));
                asked.push(now.duration_since(origin).as_millis());
            }
        };
        for i in 0..1000u64 {
            let now = origin + Duration::from_millis(2 * i);
            s.handle_timeout(now);
            poll(&mut s, now);
            s.handle_rtcp(now, &pli).expect("valid");
            poll(&mut s, now);
        }
        // The last PLIs' keyframe is asked for when its interval is over.
        let due = s.next_timeout().expect("a keyframe waits");
        assert_eq!(due, origin + Duration::from_millis(2000));
        s.handle_timeout(due);
        poll(&mut s, due);
        s.handle_timeout(origin + Duration::from_secs(5));
        poll(&mut s, origin + Duration::from_secs(5));
        assert_eq!(asked, [0, 500, 1000, 1500, 2000]);
        assert_eq!(s.stats().keyframe_requests, 1000);
        assert_eq!(s.stats().keyframes_asked, 5);
    }

    /// A keyframe that goes out answers the requests waiting; the floor of
    /// 200 ms holds for short keyframe intervals.
    #[test]
    fn a_keyframe_sent_answers_waiting_requests() {
        let (mut s, _, origin) = setup(Codec::H264);
        let ms = |n| origin + Duration::from_millis(n);
        let pli = rtcp::write_compound(
            &[RtcpPacket::Pli {
                sender_ssrc: 0x2222,
                media_ssrc: 0x1111,
            }],
            &mut BytesMut::new(),
        );
        s.handle_rtcp(ms(0), &pli).expect("valid");
        assert!(s.poll_event().is_some());
        s.handle_rtcp(ms(100), &pli).expect("valid");
        assert!(s.poll_event().is_none(), "too soon");
        assert_eq!(s.next_timeout().filter(|&t| t == ms(500)), Some(ms(500)));
        let mut idr = unit(Codec::H264, ms(130), &[0, 0, 0, 1, 0x65, 1]);
        idr.keyframe = true;
        s.push(ms(130), &idr).expect("push");
        s.handle_timeout(ms(700));
        assert!(s.poll_event().is_none(), "already answered by the IDR");
        // A quarter keyint after the last request, a PLI is answered at once.
        s.handle_rtcp(ms(1000), &pli).expect("valid");
        assert!(s.poll_event().is_some());
        // The encoder's own IDR does not start the quarter keyint, but a PLI
        // 50 ms after it waits for the 200 ms floor, not for 500 ms.
        let mut own = unit(Codec::H264, ms(1600), &[0, 0, 0, 1, 0x65, 2]);
        own.keyframe = true;
        s.push(ms(1600), &own).expect("push");
        s.handle_rtcp(ms(1650), &pli).expect("valid");
        assert!(s.poll_event().is_none(), "50 ms after an IDR");
        assert_eq!(s.next_timeout().filter(|&t| t == ms(1800)), Some(ms(1800)));
        s.handle_timeout(ms(1800));
        assert!(s.poll_event().is_some());
        assert_eq!(s.stats().keyframes_asked, 3);
        let clock = PipelineClock::with_origin(origin, ORIGIN_UNIX_US);
        let short =
            SenderConfig::new(Codec::H264, clock, "x").with_keyint(Duration::from_millis(100));
        assert_eq!(short.keyframe_interval, MIN_KEYFRAME_INTERVAL);
    }

    #[test]
    fn remb_for_our_stream_is_an_event() {
        let (mut s, _, origin) = setup(Codec::H264);
        let remb = |ssrcs: Vec<u32>| {
            rtcp::write_compound(
                &[RtcpPacket::Remb {
                    sender_ssrc: 0x2222,
                    bitrate: 1_000_000,
                    ssrcs,
                }],
                &mut BytesMut::new(),
            )
        };
        s.handle_rtcp(origin, &remb(vec![0x1111, 7]))
            .expect("valid");
        assert!(matches!(
            s.poll_event(),
            Some(SenderEvent::Remb { bitrate }) if bitrate > 999_000 && bitrate <= 1_000_000
        ));
        // Another stream's estimate is not ours.
        s.handle_rtcp(origin, &remb(vec![7])).expect("valid");
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn close_sends_bye_and_garbage_is_an_error() {
        let (mut s, _, origin) = setup(Codec::Opus);
        assert!(s.handle_rtcp(origin, &[0x80, 201, 0, 40]).is_err());
        assert!(s.handle_rtcp(origin, &[1, 2, 3]).is_err());
        let bye = rtcp::write_compound(
            &[RtcpPacket::Bye {
                ssrcs: vec![0x2222],
                reason: Some("bye".into()),
            }],
            &mut BytesMut::new(),
        );
        s.handle_rtcp(origin, &bye).expect("valid");
        assert_eq!(
            s.poll_event(),
            Some(SenderEvent::Bye {
                ssrc: 0x2222,
                reason: Some("bye".into())
            })
        );
        s.push(origin, &unit(Codec::Opus, origin, b"abc"))
            .expect("push");
        s.close(origin + Duration::from_millis(5));
        let tx = drain(&mut s);
        let last = rtcp_of(tx.last().expect("rtcp"));
        assert!(matches!(
            last[0],
            RtcpPacket::SenderReport {
                packet_count: 1,
                ..
            }
        ));
        assert_eq!(
            last[2],
            RtcpPacket::Bye {
                ssrcs: vec![0x1111],
                reason: None
            }
        );
        assert_eq!(s.next_timeout(), None);
        assert_eq!(
            s.push(origin, &unit(Codec::Opus, origin, b"abc")),
            Err(SenderError::Closed)
        );
        s.close(origin);
        assert!(s.poll_transmit().is_none());
    }

    fn nack(media_ssrc: u32, seqs: &[u16]) -> Bytes {
        rtcp::write_compound(
            &[RtcpPacket::Nack {
                sender_ssrc: 0x2222,
                media_ssrc,
                pairs: NackPair::pack(seqs.iter().copied()),
                dropped_pairs: 0,
            }],
            &mut BytesMut::new(),
        )
    }

    /// A NACK flood for every packet in the history, 50 times a second for
    /// 2 s: what is resent stays within the burst plus the media's share,
    /// and the rest is dropped and counted.
    #[test]
    fn a_nack_flood_is_held_to_the_rtx_share_of_the_stream() {
        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, ORIGIN_UNIX_US);
        let cfg = SenderConfig::new(Codec::H264, clock, "test@pstream")
            .with_ssrc(0x1111)
            .with_rtx(RtxConfig {
                max_share: 0.5,
                burst_bytes: 20_000,
                ..RtxConfig::default()
            });
        let mut s = RtpSender::new(cfg, &mut StdRng::seed_from_u64(6)).expect("config");
        let seq0 = s.next_sequence();
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(std::iter::repeat_n(7u8, 3000));
        let (mut media, mut resent) = (0usize, 0usize);
        for i in 0..100u64 {
            let t = origin + Duration::from_millis(20 * i);
            s.push(t, &unit(Codec::H264, t, &au)).expect("push");
            media += drain(&mut s).iter().map(|x| x.data.len()).sum::<usize>();
            // Every packet sent so far (the history keeps 1 s of them).
            let all: Vec<u16> = (0..s.next_sequence().wrapping_sub(seq0))
                .map(|k| seq0.wrapping_add(k))
                .collect();
            for chunk in all.chunks(16 * 17) {
                s.handle_rtcp(t, &nack(0x1111, chunk)).expect("valid");
            }
            resent += drain(&mut s)
                .iter()
                .filter(|x| x.kind == TransmitKind::Rtp)
                .map(|x| x.data.len())
                .sum::<usize>();
        }
        let st = *s.stats();
        assert!(st.rtx_rate_limited > 0, "{st:?}");
        // RTX packets are 2 bytes longer than their originals.
        assert!(
            resent as f64 <= 20_000.0 + 0.5 * media as f64 + 2.0 * st.rtx_sent as f64,
            "resent {resent} of {media} media bytes: {st:?}"
        );
        assert!(st.rtx_sent > 0);
    }

    #[test]
    fn nacks_are_answered_with_rtx_packets() {
        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, ORIGIN_UNIX_US);
        let cfg = SenderConfig::new(Codec::H264, clock, "test@pstream")
            .with_ssrc(0x1111)
            .with_rtx(RtxConfig {
                ssrc: Some(0x5555),
                ..RtxConfig::default()
            });
        let mut s = RtpSender::new(cfg, &mut StdRng::seed_from_u64(5)).expect("config");
        assert_eq!(s.rtx_ssrc(), Some(0x5555));
        let seq0 = s.next_sequence();
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend(std::iter::repeat_n(7u8, 3000));
        s.push(origin, &unit(Codec::H264, origin, &au))
            .expect("push");
        let sent = drain(&mut s);
        assert_eq!(sent.len(), 3);
        assert!(s.rtx_history_bytes() >= 3000);
        // NACK the 2nd and 3rd packets, and one never sent.
        let t = origin + Duration::from_millis(30);
        s.handle_rtcp(
            t,
            &nack(
                0x1111,
                &[
                    seq0.wrapping_add(1),
                    seq0.wrapping_add(2),
                    seq0.wrapping_add(9),
                ],
            ),
        )
        .expect("valid");
        let rtx = drain(&mut s);
        assert_eq!(rtx.len(), 2);
        let mut rtx_seq = None;
        for (i, t) in rtx.iter().enumerate() {
            assert_eq!(t.kind, TransmitKind::Rtp);
            let p = RtpPacket::parse(t.data.clone()).expect("parses");
            let orig = RtpPacket::parse(sent[i + 1].data.clone()).expect("parses");
            assert_eq!(p.header.ssrc, 0x5555);
            assert_eq!(p.header.payload_type, crate::rtx::PT_RTX);
            assert_eq!(p.header.timestamp, orig.header.timestamp);
            assert_eq!(p.header.marker, orig.header.marker);
            assert_eq!(&p.payload[..2], &orig.header.sequence.to_be_bytes());
            assert_eq!(&p.payload[2..], &orig.payload[..]);
            if let Some(prev) = rtx_seq {
                assert_eq!(p.header.sequence, u16::wrapping_add(prev, 1));
            }
            rtx_seq = Some(p.header.sequence);
        }
        let st = *s.stats();
        assert_eq!((st.nacked, st.rtx_sent, st.rtx_missing), (3, 2, 1));
        // Asked again at once: not resent within half a round trip.
        s.handle_rtcp(t, &nack(0x1111, &[seq0.wrapping_add(1)]))
            .expect("valid");
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.stats().rtx_suppressed, 1);
        s.handle_rtcp(
            t + Duration::from_millis(10),
            &nack(0x1111, &[seq0.wrapping_add(1)]),
        )
        .expect("valid");
        assert_eq!(drain(&mut s).len(), 1);
        // Another source's NACK is not ours.
        s.handle_rtcp(t, &nack(0x9999, &[seq0])).expect("valid");
        assert!(s.poll_transmit().is_none());
        // The RTX stream gets its own SR and SDES chunk under our CNAME.
        s.handle_timeout(origin);
        let report = drain(&mut s);
        let pkts = rtcp_of(report.last().expect("an SR"));
        assert!(matches!(
            pkts[0],
            RtcpPacket::SenderReport {
                ssrc: 0x1111,
                packet_count: 3,
                ..
            }
        ));
        assert!(matches!(
            pkts[1],
            RtcpPacket::SenderReport {
                ssrc: 0x5555,
                packet_count: 3,
                ..
            }
        ));
        let RtcpPacket::Sdes { chunks } = &pkts[2] else {
            panic!("{pkts:?}");
        };
        assert_eq!(chunks.len(), 2);
        assert!(chunks
            .iter()
            .all(|c| c.cname.as_deref() == Some("test@pstream")));
        // Old packets leave the history.
        let late = origin + Duration::from_secs(2);
        s.handle_rtcp(late, &nack(0x1111, &[seq0])).expect("valid");
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.stats().rtx_missing, 2);
        // Without RTX, NACKs are counted only.
        let (mut plain, _, o) = setup(Codec::H264);
        plain.handle_rtcp(o, &nack(0x1111, &[1, 2])).expect("valid");
        assert!(plain.poll_transmit().is_none());
        assert_eq!(plain.stats().nacked, 2);
        // The RTX payload type must differ from the media's.
        let bad =
            SenderConfig::new(Codec::H264, clock, "x").with_rtx(RtxConfig::with_payload_type(96));
        assert_eq!(
            RtpSender::with_seed(bad, 1).err(),
            Some(SenderError::RtxPayloadType { rtx: 96, media: 96 })
        );
    }

    #[test]
    fn random_rtcp_never_panics() {
        let (mut s, _, origin) = setup(Codec::H264);
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..20_000 {
            let mut data: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            if let Some(b) = data.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let _ = s.handle_rtcp(origin, &data);
        }
        while s.poll_event().is_some() {}
    }

    #[test]
    fn config_is_validated() {
        let clock = PipelineClock::with_origin(Instant::now(), 0);
        let mut rng = StdRng::seed_from_u64(1);
        let bad = |f: &dyn Fn(&mut SenderConfig)| {
            let mut c = SenderConfig::new(Codec::H264, clock, "x");
            f(&mut c);
            RtpSender::new(c, &mut StdRng::seed_from_u64(1)).err()
        };
        assert_eq!(
            bad(&|c| c.payload_type = 128),
            Some(SenderError::PayloadType(128))
        );
        assert_eq!(bad(&|c| c.clock_rate = 0), Some(SenderError::ClockRate));
        assert!(matches!(
            bad(&|c| c.mtu = 10),
            Some(SenderError::Payloader(_))
        ));
        assert_eq!(
            bad(&|c| c.codec = Codec::Aac),
            Some(SenderError::UnsupportedCodec(Codec::Aac))
        );
        let a = RtpSender::new(SenderConfig::new(Codec::H264, clock, "x"), &mut rng).expect("ok");
        let b = RtpSender::new(SenderConfig::new(Codec::H264, clock, "x"), &mut rng).expect("ok");
        assert_ne!(a.ssrc(), b.ssrc());
        let _ = NtpTime::default();
    }
}
