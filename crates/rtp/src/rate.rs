//! Sender-side bitrate adaptation (`--bitrate auto`): a target for the
//! video encoder that follows what the path carries, from the peer's RTCP.
//!
//! [`RateController`] is sans-IO, like the sessions: the caller hands it
//! each receiver report ([`RateController::handle_report`]) and REMB
//! ([`RateController::handle_remb`]) with the time, then asks
//! [`RateController::poll_target`] whether the target moved and why.
//!
//! The rule is a loss-based AIMD in the manner of GCC's loss controller
//! (draft-ietf-rmcat-gcc §6), plus a delay signal from the round trip the
//! RRs give (LSR/DLSR), since a bandwidth cap in front of a deep queue shows
//! as a growing round trip long before it drops anything:
//!
//! - loss above 10%: cut to `target · (1 − loss/2)`, and never above what
//!   the receiver says it got ([`DeliveryEstimator`]);
//! - queueing delay (round trip above the least of the last 30 s) over
//!   [`QUEUE_DELAY_OVERUSE`] and not shrinking (or over
//!   [`QUEUE_DELAY_DRAIN`], shrinking or not): cut to 85% of the delivered
//!   rate, as GCC's delay controller does; if the peer sent a REMB in the
//!   last 3 s, only over [`QUEUE_DELAY_DRAIN`] (`pstream recv`'s
//!   [`DelayEstimator`] watches every packet's delay, where an RR has one
//!   SR's round trip);
//! - loss 2–10%, or a queue still draining after a cut: hold;
//! - otherwise probe up [`PROBE_STEP`] per second (growing to
//!   [`MAX_PROBE_STEP`] over a run of clean reports), no higher than
//!   1.5 times the delivered rate (an encoder that does not fill the target
//!   must not let it run away), the peer's REMB and the maximum.
//!
//! Bad input never moves the target: a loss that is not a number, a round
//! trip over [`MAX_RTT`] (a DLSR beyond reason) or a REMB of zero is dropped
//! and counted ([`RateStats`]); a REMB over the maximum is clamped to it.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Lowest target `--bitrate auto` goes to unless told otherwise: below it
/// 720p H.264 is mush and a lower rate rarely saves a path.
pub const DEFAULT_MIN_BPS: u64 = 300_000;
/// Loss above which the target is cut (GCC's 10%).
pub const LOSS_CUT: f32 = 0.10;
/// Loss below which the target may grow (GCC's 2%).
pub const LOSS_PROBE: f32 = 0.02;
/// Growth per second of probing (GCC uses 8%).
pub const PROBE_STEP: f64 = 0.08;
/// The fastest growth per second, after a run of clean reports.
pub const MAX_PROBE_STEP: f64 = 0.20;
/// Queueing delay (round trip over its recent least) taken for overuse.
pub const QUEUE_DELAY_OVERUSE: Duration = Duration::from_millis(60);
/// Queueing delay that is cut for again even while it shrinks: a queue
/// this long drains too slowly at 85% of the cap.
pub const QUEUE_DELAY_DRAIN: Duration = Duration::from_millis(250);
/// Round trips longer than this are taken for a bogus LSR/DLSR.
pub const MAX_RTT: Duration = Duration::from_secs(10);
/// How long the least round trip is remembered: the path's own delay.
const BASE_RTT_WINDOW: Duration = Duration::from_secs(30);
/// A cut to the delivered rate takes this share of it (GCC's beta).
const DELAY_BETA: f64 = 0.85;
/// The target grows to at most this many times the delivered rate.
const DELIVERED_HEADROOM: f64 = 1.5;
/// A REMB older than this no longer bounds the target.
const REMB_LIFETIME: Duration = Duration::from_secs(10);
/// A REMB this recent leaves queue delay to the peer: the round trip of
/// the RRs cuts only past [`QUEUE_DELAY_DRAIN`].
const REMB_DELAY_AUTHORITY: Duration = Duration::from_secs(3);
/// Longest gap between two reports one probe step covers.
const MAX_PROBE_GAP: Duration = Duration::from_secs(2);

/// Bounds and start of a [`RateController`], in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// The lowest target.
    pub min_bps: u64,
    /// The highest target.
    pub max_bps: u64,
    /// The target before any report (clamped into the bounds).
    pub start_bps: u64,
}

impl RateConfig {
    /// Bounds `min..=max` (swapped if given the wrong way round), starting
    /// at `start`.
    pub fn new(min_bps: u64, max_bps: u64, start_bps: u64) -> Self {
        let (min_bps, max_bps) = (min_bps.min(max_bps), min_bps.max(max_bps));
        Self {
            min_bps,
            max_bps,
            start_bps: start_bps.clamp(min_bps, max_bps),
        }
    }
}

/// Why the target last moved.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// The starting target.
    Start,
    /// Little loss and no queue: probing for more.
    Probe,
    /// Cut for loss (the fraction lost, 0.0–1.0).
    Loss(f32),
    /// Cut for a growing queue on the path (its delay).
    Delay(Duration),
    /// Bounded by the peer's REMB.
    Remb,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Start => f.write_str("start"),
            Reason::Probe => f.write_str("probe"),
            Reason::Loss(l) => write!(f, "loss {:.0}%", l * 100.0),
            Reason::Delay(d) => write!(f, "queue {} ms", d.as_millis()),
            Reason::Remb => f.write_str("remb"),
        }
    }
}

/// What was dropped or clamped, for the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateStats {
    /// Receiver reports taken.
    pub reports: u64,
    /// Reports whose loss was not a number in 0..=1 (dropped).
    pub bad_loss: u64,
    /// Round trips over [`MAX_RTT`] (ignored, the loss still counts).
    pub bad_rtt: u64,
    /// REMBs taken.
    pub rembs: u64,
    /// REMBs of zero (dropped).
    pub remb_zero: u64,
    /// REMBs over the maximum (clamped to it).
    pub remb_clamped: u64,
    /// Times the target moved.
    pub moves: u64,
}

/// The target bitrate of one video stream, steered by the peer's reports.
#[derive(Debug, Clone)]
pub struct RateController {
    config: RateConfig,
    target: u64,
    reason: Reason,
    /// A move not yet handed out by `poll_target` (the start counts).
    pending: bool,
    /// Recent round trips: their least is the path's own delay.
    rtts: VecDeque<(Instant, Duration)>,
    last_queue: Option<Duration>,
    last_report: Option<Instant>,
    /// The last cut: what was then in flight is reported for a while yet.
    last_cut: Option<Instant>,
    remb: Option<(Instant, u64)>,
    /// Clean reports in a row.
    clean_streak: u32,
    delivered: Option<u64>,
    stats: RateStats,
}

impl RateController {
    /// A controller at `config.start_bps`; the first `poll_target` hands
    /// that out with [`Reason::Start`].
    pub fn new(config: RateConfig) -> Self {
        let config = RateConfig::new(config.min_bps, config.max_bps, config.start_bps);
        Self {
            config,
            target: config.start_bps,
            reason: Reason::Start,
            pending: true,
            rtts: VecDeque::new(),
            last_queue: None,
            last_report: None,
            last_cut: None,
            remb: None,
            clean_streak: 0,
            delivered: None,
            stats: RateStats::default(),
        }
    }

    /// The current target in bits per second.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Why the target last moved.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The bounds.
    pub fn config(&self) -> RateConfig {
        self.config
    }

    /// What was counted so far.
    pub fn stats(&self) -> RateStats {
        self.stats
    }

    /// The latest queueing delay seen (round trip over its recent least).
    pub fn queue_delay(&self) -> Option<Duration> {
        self.last_queue
    }

    /// The new target and why, once after each move. Call after every
    /// `handle_report` and `handle_remb`.
    #[must_use]
    pub fn poll_target(&mut self) -> Option<(u64, Reason)> {
        std::mem::take(&mut self.pending).then_some((self.target, self.reason))
    }

    /// Takes one receiver report on our stream: `loss` the fraction lost
    /// since the previous one (0.0–1.0), `rtt` the round trip from its
    /// LSR/DLSR, `delivered_bps` what the receiver got since the previous
    /// one if known ([`DeliveryEstimator`]).
    pub fn handle_report(
        &mut self,
        now: Instant,
        loss: f32,
        rtt: Option<Duration>,
        delivered_bps: Option<u64>,
    ) {
        if !(0.0..=1.0).contains(&loss) {
            self.stats.bad_loss += 1;
            return;
        }
        self.stats.reports += 1;
        let since_last = self
            .last_report
            .map_or(Duration::from_secs(1), |t| now.saturating_duration_since(t))
            .min(MAX_PROBE_GAP);
        self.last_report = Some(now);
        if let Some(d) = delivered_bps {
            self.delivered = Some(d);
        }
        let queue = match rtt {
            Some(r) if r > MAX_RTT => {
                self.stats.bad_rtt += 1;
                None
            }
            Some(r) => Some(self.queue_delay_of(now, r)),
            None => None,
        };
        let growing = match (queue, self.last_queue) {
            (Some(q), Some(prev)) => q + Duration::from_millis(10) >= prev,
            (Some(_), None) => true,
            _ => false,
        };
        if queue.is_some() {
            self.last_queue = queue;
        }
        // What was sent before the last cut is still being reported on for
        // about one report interval and a round trip: one cut per episode.
        // The path's own round trip, not one swollen by the queue being cut
        // for: loss happens as packets enter the queue.
        let base_rtt = self.rtts.iter().map(|(_, r)| *r).min().unwrap_or_default();
        let settling = self.last_cut.is_some_and(|t| {
            now.saturating_duration_since(t) < Duration::from_millis(500) + base_rtt
        });
        let remb_cap = self.remb_cap(now);
        let remb_recent = self
            .remb
            .is_some_and(|(t, _)| now.saturating_duration_since(t) < REMB_DELAY_AUTHORITY);
        if loss > LOSS_CUT {
            if !settling {
                let mut next = self.target as f64 * (1.0 - 0.5 * f64::from(loss));
                if let Some(d) = self.delivered {
                    next = next.min(d as f64);
                }
                self.cut(now, next.round() as u64, Reason::Loss(loss));
            }
        } else if let Some(q) = queue.filter(|q| {
            // A peer that sends REMB watches every packet's delay and says
            // so ten times a second; one SR's round trip (behind a keyframe,
            // say) is a far poorer sample of the same queue: only a long
            // one still cuts.
            let overuse = if remb_recent {
                QUEUE_DELAY_DRAIN
            } else {
                QUEUE_DELAY_OVERUSE
            };
            *q > overuse && (growing || *q > QUEUE_DELAY_DRAIN)
        }) {
            if !settling {
                let base = self.delivered.unwrap_or(self.target).min(self.target);
                self.cut(now, (base as f64 * DELAY_BETA) as u64, Reason::Delay(q));
            }
        } else if loss < LOSS_PROBE
            && !settling
            && queue.is_none_or(|q| q <= QUEUE_DELAY_OVERUSE / 2)
        {
            // Clean report after clean report: the path has room, so the
            // steps grow (8% a second, up to 20%); any hold or cut resets.
            self.clean_streak += 1;
            let rate =
                (PROBE_STEP * (1.0 + f64::from(self.clean_streak - 1) / 4.0)).min(MAX_PROBE_STEP);
            let step = 1.0 + rate * since_last.as_secs_f64();
            let mut next = (self.target as f64 * step).round() as u64;
            if let Some(d) = self.delivered {
                next = next.min((d as f64 * DELIVERED_HEADROOM) as u64);
            }
            if let Some(cap) = remb_cap {
                next = next.min(cap);
            }
            let next = next.clamp(self.config.min_bps, self.config.max_bps);
            if next > self.target {
                self.set(next, Reason::Probe);
            }
        } else {
            self.clean_streak = 0;
        }
        // Whatever the reports say, the peer's estimate is a ceiling.
        if let Some(cap) = remb_cap.filter(|c| *c < self.target) {
            self.set(cap.max(self.config.min_bps), Reason::Remb);
        }
    }

    /// Takes a REMB for our stream: the peer's estimate of what it can
    /// receive, a ceiling for the target until the next one (or 10 s).
    pub fn handle_remb(&mut self, now: Instant, bps: u64) {
        if bps == 0 {
            self.stats.remb_zero += 1;
            return;
        }
        self.stats.rembs += 1;
        let bps = if bps > self.config.max_bps {
            self.stats.remb_clamped += 1;
            self.config.max_bps
        } else {
            bps
        };
        self.remb = Some((now, bps));
        if bps < self.target {
            self.set(bps.max(self.config.min_bps), Reason::Remb);
        }
    }

    fn remb_cap(&self, now: Instant) -> Option<u64> {
        self.remb
            .filter(|(t, _)| now.saturating_duration_since(*t) < REMB_LIFETIME)
            .map(|(_, b)| b)
    }

    /// Remembers `rtt` and returns how far it is above the least of the
    /// window (the path's own round trip).
    fn queue_delay_of(&mut self, now: Instant, rtt: Duration) -> Duration {
        while self
            .rtts
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > BASE_RTT_WINDOW)
        {
            self.rtts.pop_front();
        }
        self.rtts.push_back((now, rtt));
        let base = self.rtts.iter().map(|(_, r)| *r).min().unwrap_or(rtt);
        rtt.saturating_sub(base)
    }

    fn cut(&mut self, now: Instant, bps: u64, reason: Reason) {
        let bps = bps.clamp(self.config.min_bps, self.config.max_bps);
        if bps < self.target {
            self.last_cut = Some(now);
            self.set(bps, reason);
        }
    }

    fn set(&mut self, bps: u64, reason: Reason) {
        if bps != self.target {
            self.target = bps;
            self.reason = reason;
            self.pending = true;
            self.stats.moves += 1;
        }
    }
}

/// What the receiver got, from successive receiver reports: packets
/// received (highest sequence number minus lost) over the time between the
/// reports' arrivals, times the mean size of the packets sent.
#[derive(Debug, Clone, Default)]
pub struct DeliveryEstimator {
    last: Option<(Instant, u32, i32)>,
}

impl DeliveryEstimator {
    /// Takes one report's extended highest sequence number and cumulative
    /// loss, arrived at `now`; `mean_packet_bytes` is what an RTP packet of
    /// ours weighs on average. `None` for the first report, a report less
    /// than 200 ms after the previous one, or one going backwards (a
    /// restarted receiver, a reordered report).
    pub fn update(
        &mut self,
        now: Instant,
        highest_seq: u32,
        cumulative_lost: i32,
        mean_packet_bytes: f64,
    ) -> Option<u64> {
        let Some((t, seq, lost)) = self.last else {
            self.last = Some((now, highest_seq, cumulative_lost));
            return None;
        };
        let dt = now.saturating_duration_since(t);
        if dt < Duration::from_millis(200) {
            return None;
        }
        self.last = Some((now, highest_seq, cumulative_lost));
        let expected = highest_seq.wrapping_sub(seq);
        // More than 2^31 packets in one interval is a counter going back.
        if expected > u32::MAX / 2 {
            return None;
        }
        let lost = i64::from(cumulative_lost) - i64::from(lost);
        let received = (i64::from(expected) - lost).clamp(0, i64::from(expected));
        Some((received as f64 * mean_packet_bytes * 8.0 / dt.as_secs_f64()) as u64)
    }
}

/// How often the receiver's estimate goes out as a REMB while it bounds
/// the sender (overuse or a queue draining): a queue is seen within one
/// tick and the sender hears of it a one-way trip later, not after the
/// second or so an RR takes.
pub const REMB_INTERVAL: Duration = Duration::from_millis(100);
/// How often the estimate goes out when the path is clear.
pub const REMB_IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// Queueing delay (one-way, over the path's least) taken for overuse.
pub const ONE_WAY_OVERUSE: Duration = Duration::from_millis(50);
/// Queueing delay under which the path counts as clear again.
const ONE_WAY_CLEAR: Duration = Duration::from_millis(25);
/// How long the least one-way delay is remembered: the path's own delay.
const ONE_WAY_BASE_WINDOW: Duration = Duration::from_secs(20);
/// The queue is the least delay of the packets of this last while (two
/// pictures at 30 fps): one late encode is not a queue.
const QUEUE_WINDOW: Duration = Duration::from_millis(70);
/// The received rate is measured over this last while: short, so that
/// under a queue it is the bottleneck's rate, not what came before.
const RATE_WINDOW: Duration = Duration::from_millis(250);
/// Under a queue the rate is measured over this last while.
const OVERUSE_RATE_WINDOW: Duration = Duration::from_millis(100);
/// A clear path lets the sender grow to this many times what arrives (the
/// sender's own probe sets the pace).
const CLEAR_HEADROOM: f64 = 1.5;

/// The receiver's half of `--bitrate auto`: a delay-based estimate of what
/// the path carries, sent to the sender as REMB (draft-alvestrand-rmcat-remb)
/// far more often than receiver reports go.
///
/// Sans-IO: the caller hands it each media packet's arrival time, RTP
/// timestamp and size ([`DelayEstimator::on_packet`]) and asks
/// [`DelayEstimator::poll_remb`] for a REMB when it wakes.
///
/// The one-way delay of each packet is its arrival time minus its RTP
/// timestamp (both from an arbitrary origin), less the time its picture's
/// earlier packets took to arrive (a keyframe's own length is not queue);
/// its least over [`ONE_WAY_BASE_WINDOW`] is the path's own delay, and what
/// the packets of the last 70 ms carry above that is queue. A bandwidth cap
/// shows this way within a picture or two of the queue starting, long
/// before it drops anything (GCC's delay controller, draft-ietf-rmcat-gcc
/// §5, with the least of a window in place of its trend filter):
///
/// - queue over [`ONE_WAY_OVERUSE`] and not shrinking (or over four times
///   that), with the link busy (no silence between arrivals half as long
///   as the queue: late pictures after a silence are a stalled sender, not
///   a queue): the estimate is what arrived times `1 − queue`, between 50%
///   and 85%, so a longer queue drains faster;
/// - queue under 25 ms: the estimate is 1.5 times what arrives, which
///   leaves the sender's own probing in charge;
/// - in between: hold.
#[derive(Debug, Clone)]
pub struct DelayEstimator {
    clock_rate: f64,
    /// The first picture's arrival: the origin of arrival times (the
    /// first picture is media time zero).
    origin: Option<Instant>,
    /// The last picture's timestamp and its media time since the origin
    /// (unwrapped), to tell a new picture's first packet.
    last_ts: Option<(u32, f64)>,
    /// One-way delay of each packet less its picture's own earlier packets
    /// (s, arbitrary offset).
    delays: VecDeque<(Instant, f64)>,
    /// Least delays in the base window: (when, delay), increasing delays.
    base: VecDeque<(Instant, f64)>,
    bytes: VecDeque<(Instant, usize)>,
    /// Bytes of the current picture before this packet.
    frame_bytes: usize,
    /// The delay of the current picture's first packet.
    frame_first: Option<f64>,
    estimate: Option<u64>,
    last_queue: Option<Duration>,
    bounding: bool,
    next_tick: Option<Instant>,
    last_sent: Option<Instant>,
}

impl DelayEstimator {
    /// An estimator for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: f64::from(clock_rate.max(1)),
            origin: None,
            last_ts: None,
            delays: VecDeque::new(),
            base: VecDeque::new(),
            bytes: VecDeque::new(),
            frame_bytes: 0,
            frame_first: None,
            estimate: None,
            last_queue: None,
            bounding: false,
            next_tick: None,
            last_sent: None,
        }
    }

    /// Takes one media packet of `len` bytes with RTP timestamp `ts`
    /// arrived at `now` (retransmissions are not fed: they arrive late on
    /// purpose).
    pub fn on_packet(&mut self, now: Instant, ts: u32, len: usize) {
        self.bytes.push_back((now, len));
        while self
            .bytes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.bytes.pop_front();
        }
        let t0 = *self.origin.get_or_insert(now);
        let media = match self.last_ts {
            None => {
                self.frame_bytes = 0;
                self.frame_first = None;
                0.0
            }
            Some((last, at)) => {
                // A later picture starts; the same one goes on; an older
                // one (reordered) says nothing new.
                let step = ts.wrapping_sub(last) as i32;
                if step < 0 {
                    return;
                }
                if step > 0 {
                    self.frame_bytes = 0;
                    self.frame_first = None;
                }
                at + f64::from(step) / self.clock_rate
            }
        };
        self.last_ts = Some((ts, media));
        // A picture's packets leave together and cross the bottleneck one
        // after the other: the time its own earlier packets took (at the
        // rate things arrive) is not queue, or every big keyframe would be.
        let own = match self.received_bps(now) {
            Some(r) if r > 0 => self.frame_bytes as f64 * 8.0 / r as f64,
            _ => 0.0,
        };
        self.frame_bytes += len;
        let raw = now.saturating_duration_since(t0).as_secs_f64() - media;
        // Never below the picture's first packet: a rate misread low must
        // not drag the path's own delay down.
        let first = *self.frame_first.get_or_insert(raw);
        let delay = (raw - own).max(first);
        self.delays.push_back((now, delay));
        while self
            .delays
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > QUEUE_WINDOW)
        {
            self.delays.pop_front();
        }
        // A monotonic deque: the front is the least of the window.
        while self.base.back().is_some_and(|(_, d)| *d >= delay) {
            self.base.pop_back();
        }
        self.base.push_back((now, delay));
        while self
            .base
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > ONE_WAY_BASE_WINDOW)
        {
            self.base.pop_front();
        }
        self.next_tick.get_or_insert(now + REMB_INTERVAL);
        // A queue showing up is told at once, not at the next tick: at four
        // times the cap it grows by 300 ms every 100 ms.
        if !self.bounding && self.queue_delay().is_some_and(|q| q > ONE_WAY_OVERUSE) {
            self.next_tick = Some(now);
        }
    }

    /// The queue on the path as of the last pictures, if any arrived.
    pub fn queue_delay(&self) -> Option<Duration> {
        let base = self.base.front()?.1;
        let least = self
            .delays
            .iter()
            .map(|(_, d)| *d)
            .fold(f64::INFINITY, f64::min);
        least
            .is_finite()
            .then(|| Duration::from_secs_f64((least - base).max(0.0)))
    }

    /// The longest silence between arrivals (or since the last one) over
    /// the last `window`.
    fn longest_gap(&self, now: Instant, window: Duration) -> Duration {
        let mut gap = self
            .bytes
            .back()
            .map_or(window, |(t, _)| now.saturating_duration_since(*t));
        let mut later: Option<Instant> = None;
        for (t, _) in self.bytes.iter().rev() {
            if let Some(l) = later {
                gap = gap.max(l.saturating_duration_since(*t));
            }
            if now.saturating_duration_since(*t) > window {
                break;
            }
            later = Some(*t);
        }
        gap
    }

    /// What arrived over the last 250 ms, in bits per second.
    pub fn received_bps(&self, now: Instant) -> Option<u64> {
        self.received_over(now, RATE_WINDOW)
    }

    /// What arrived over the last `window` (at most 250 ms, at least 50).
    fn received_over(&self, now: Instant, window: Duration) -> Option<u64> {
        let first = self.bytes.front()?.0;
        let span = now.saturating_duration_since(first).clamp(
            Duration::from_millis(50),
            window.max(Duration::from_millis(50)),
        );
        let total: usize = self
            .bytes
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= span)
            .map(|(_, b)| *b)
            .sum();
        Some((total as f64 * 8.0 / span.as_secs_f64()) as u64)
    }

    /// The current estimate in bits per second, once there is one.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// When [`Self::poll_remb`] must next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Updates the estimate if a tick is due and returns it when it is to
    /// be sent: every [`REMB_INTERVAL`] while it bounds the sender, every
    /// [`REMB_IDLE_INTERVAL`] otherwise.
    pub fn poll_remb(&mut self, now: Instant) -> Option<u64> {
        if self.next_tick.is_none_or(|t| now < t) {
            return None;
        }
        self.next_tick = Some(now + REMB_INTERVAL);
        let (Some(queue), Some(rate)) = (self.queue_delay(), self.received_bps(now)) else {
            return None;
        };
        let growing = self
            .last_queue
            .is_none_or(|prev| queue + Duration::from_millis(5) >= prev);
        self.last_queue = Some(queue);
        // A queue at a bottleneck keeps the link busy: packets come out
        // back to back. Pictures late by a sender's stalled encoder (or a
        // descheduled thread) come after a silence as long as their delay,
        // and are no reason to cut.
        let busy = queue > 2 * self.longest_gap(now, 2 * QUEUE_WINDOW);
        if busy && queue > ONE_WAY_OVERUSE && (growing || queue > 4 * ONE_WAY_OVERUSE) {
            // A standing queue sends at the bottleneck's rate without a
            // gap: 100 ms of it measure that rate, untouched by what came
            // before the queue.
            let rate = self.received_over(now, OVERUSE_RATE_WINDOW).unwrap_or(rate);
            let share = (1.0 - queue.as_secs_f64()).clamp(0.5, 0.85);
            self.estimate = Some((rate as f64 * share) as u64);
            self.bounding = true;
        } else if queue < ONE_WAY_CLEAR || self.estimate.is_none() {
            self.estimate = Some((rate as f64 * CLEAR_HEADROOM) as u64);
            self.bounding = false;
        }
        let estimate = self.estimate?;
        let idle_due = self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= REMB_IDLE_INTERVAL);
        if self.bounding || idle_due {
            self.last_sent = Some(now);
            return Some(estimate.max(1));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ctl(start: u64) -> RateController {
        RateController::new(RateConfig::new(DEFAULT_MIN_BPS, 6_000_000, start))
    }

    #[test]
    fn starts_and_hands_out_the_start_once() {
        let mut c = ctl(2_500_000);
        assert_eq!(c.poll_target(), Some((2_500_000, Reason::Start)));
        assert_eq!(c.poll_target(), None);
    }

    #[test]
    fn loss_rules_cut_hold_and_probe() {
        let t0 = Instant::now();
        let mut c = ctl(2_000_000);
        let _ = c.poll_target();
        // 20% loss: cut by 10%.
        c.handle_report(t0, 0.2, Some(40 * MS), None);
        assert_eq!(c.poll_target(), Some((1_800_000, Reason::Loss(0.2))));
        // 5%: hold.
        c.handle_report(t0 + 1000 * MS, 0.05, Some(40 * MS), None);
        c.handle_report(t0 + 2000 * MS, 0.05, Some(40 * MS), None);
        assert_eq!(c.poll_target(), None);
        // Clean: up 8% per second.
        c.handle_report(t0 + 3000 * MS, 0.0, Some(40 * MS), None);
        assert_eq!(c.poll_target(), Some((1_944_000, Reason::Probe)));
        assert_eq!(Reason::Loss(0.04).to_string(), "loss 4%");
    }

    #[test]
    fn bounds_hold() {
        let t0 = Instant::now();
        let mut c = RateController::new(RateConfig::new(500_000, 1_000_000, 900_000));
        for i in 0..50 {
            c.handle_report(t0 + i * 1000 * MS, 0.0, None, None);
        }
        assert_eq!(c.target(), 1_000_000);
        for i in 50..100 {
            c.handle_report(t0 + i * 1000 * MS, 0.99, None, None);
        }
        assert_eq!(c.target(), 500_000);
        // Swapped bounds and an out-of-range start are put right.
        let c = RateController::new(RateConfig::new(2_000, 1_000, 5_000));
        assert_eq!((c.config().min_bps, c.target()), (1_000, 2_000));
    }

    #[test]
    fn lies_are_dropped_clamped_and_counted() {
        let t0 = Instant::now();
        let mut c = ctl(2_000_000);
        let _ = c.poll_target();
        c.handle_report(t0, f32::NAN, None, None);
        c.handle_report(t0, 1.5, None, None);
        c.handle_report(t0, -0.1, None, None);
        c.handle_remb(t0, 0);
        assert_eq!(c.poll_target(), None);
        // A round trip of an hour is ignored, the report's loss still counts.
        c.handle_report(t0, 0.0, Some(Duration::from_secs(3600)), None);
        c.handle_remb(t0, u64::MAX);
        assert_eq!(c.queue_delay(), None);
        let s = c.stats();
        assert_eq!(
            (s.bad_loss, s.remb_zero, s.bad_rtt, s.remb_clamped),
            (3, 1, 1, 1)
        );
        assert_eq!(c.target(), 2_160_000);
    }

    #[test]
    fn remb_is_a_ceiling_that_expires() {
        let t0 = Instant::now();
        let mut c = ctl(2_000_000);
        let _ = c.poll_target();
        c.handle_remb(t0, 800_000);
        assert_eq!(c.poll_target(), Some((800_000, Reason::Remb)));
        for i in 1..5 {
            c.handle_report(t0 + i * 1000 * MS, 0.0, None, None);
        }
        assert_eq!(c.target(), 800_000);
        // 10 s on with no new REMB: probing resumes.
        for i in 11..13 {
            c.handle_report(t0 + i * 1000 * MS, 0.0, None, None);
        }
        assert!(c.target() > 800_000);
        // A REMB below the minimum holds at the minimum.
        c.handle_remb(t0 + 13_000 * MS, 1_000);
        assert_eq!(c.target(), DEFAULT_MIN_BPS);
    }

    #[test]
    fn delivery_from_sequence_numbers() {
        let t0 = Instant::now();
        let mut d = DeliveryEstimator::default();
        assert_eq!(d.update(t0, 1000, 0, 1000.0), None);
        // 100 packets in 1 s, 10 of them lost: 90 kB/s.
        assert_eq!(d.update(t0 + 1000 * MS, 1100, 10, 1000.0), Some(720_000));
        // Too soon, then backwards.
        assert_eq!(d.update(t0 + 1100 * MS, 1200, 10, 1000.0), None);
        assert_eq!(d.update(t0 + 2000 * MS, 5, 10, 1000.0), None);
        // Lost going down (duplicates) never makes more than was expected.
        assert_eq!(d.update(t0 + 3000 * MS, 105, 0, 1000.0), Some(800_000));
    }

    /// A path with a bandwidth cap in front of a drop-tail queue, in 10 ms
    /// steps of fluid traffic, with a receiver reporting every second.
    struct Link {
        cap_bps: f64,
        queue_bytes: f64,
        queue_limit: f64,
        one_way: Duration,
        sent_pkts: f64,
        lost_pkts: f64,
        highest: f64,
        lost_total: f64,
    }

    const PKT: f64 = 1200.0;

    impl Link {
        fn new(cap_bps: f64) -> Self {
            Self {
                cap_bps,
                queue_bytes: 0.0,
                // A router buffer in bytes: 250 ms at 4 Mbit/s, 1 s at 1.
                queue_limit: 125_000.0,
                one_way: 20 * MS,
                sent_pkts: 0.0,
                lost_pkts: 0.0,
                highest: 0.0,
                lost_total: 0.0,
            }
        }

        fn step(&mut self, bps: f64, dt: Duration) {
            let bytes = bps * dt.as_secs_f64() / 8.0;
            self.queue_bytes += bytes;
            self.queue_bytes = (self.queue_bytes - self.cap_bps * dt.as_secs_f64() / 8.0).max(0.0);
            let over = (self.queue_bytes - self.queue_limit).max(0.0);
            self.queue_bytes -= over;
            self.sent_pkts += bytes / PKT;
            self.lost_pkts += over / PKT;
            self.highest += bytes / PKT;
            self.lost_total += over / PKT;
        }

        fn queue_delay(&self) -> Duration {
            Duration::from_secs_f64(self.queue_bytes * 8.0 / self.cap_bps)
        }

        /// (fraction lost, rtt, highest seq, cumulative lost) since last.
        fn report(&mut self) -> (f32, Duration, u32, i32) {
            let loss = if self.sent_pkts > 0.0 {
                (self.lost_pkts / self.sent_pkts) as f32
            } else {
                0.0
            };
            self.sent_pkts = 0.0;
            self.lost_pkts = 0.0;
            let rtt = self.one_way * 2 + self.queue_delay();
            (loss, rtt, self.highest as u32, self.lost_total as i32)
        }
    }

    /// Runs `secs` seconds with the cap at `caps(t)`, returning the target
    /// and the queue delay every 100 ms.
    fn simulate(
        c: &mut RateController,
        link: &mut Link,
        secs: u64,
        caps: impl Fn(Duration) -> f64,
    ) -> Vec<(Duration, u64, Duration)> {
        let t0 = Instant::now();
        let dt = 10 * MS;
        let mut delivery = DeliveryEstimator::default();
        let mut out = Vec::new();
        let mut next_report = Duration::from_millis(1000);
        let mut t = Duration::ZERO;
        // Reports take their interval 0.5..1.5 s as RFC 3550 randomises it;
        // a fixed sequence keeps the test deterministic.
        let jitter = [0.7, 1.3, 0.9, 1.1, 0.6, 1.4, 1.0];
        let mut n = 0;
        while t < Duration::from_secs(secs) {
            link.cap_bps = caps(t);
            link.step(c.target() as f64, dt);
            t += dt;
            if t >= next_report {
                let (loss, rtt, highest, lost) = link.report();
                // The RR travels back one way.
                let now = t0 + t + link.one_way;
                let delivered = delivery.update(now, highest, lost, PKT);
                c.handle_report(now, loss, Some(rtt), delivered);
                let _ = c.poll_target();
                next_report = t + Duration::from_secs_f64(jitter[n % jitter.len()]);
                n += 1;
            }
            if t.as_millis() % 100 == 0 {
                out.push((t, c.target(), link.queue_delay()));
            }
        }
        out
    }

    #[test]
    fn follows_a_cap_stepping_down_and_back_up() {
        let mut c = RateController::new(RateConfig::new(DEFAULT_MIN_BPS, 6_000_000, 2_500_000));
        let mut link = Link::new(4e6);
        let step_down = Duration::from_secs(20);
        let step_up = Duration::from_secs(40);
        let trace = simulate(&mut c, &mut link, 80, |t| {
            if t >= step_down && t < step_up {
                1e6
            } else {
                4e6
            }
        });
        let at = |from: Duration, to: Duration| {
            trace.iter().filter(move |(t, ..)| *t >= from && *t < to)
        };
        // Under the 1 Mbit/s cap within 5 s of the step down, and staying
        // under it (with its queue drained) from then to the step up, bar
        // the probes that find it again.
        let under = at(step_down, step_up)
            .find(|(_, b, _)| *b <= 1_000_000)
            .map(|(t, ..)| *t - step_down);
        assert!(
            under.is_some_and(|d| d <= Duration::from_secs(5)),
            "under the cap after {under:?}"
        );
        let settled: Vec<_> = at(step_down + Duration::from_secs(10), step_up).collect();
        let mean = settled.iter().map(|(_, b, _)| *b as f64).sum::<f64>() / settled.len() as f64;
        assert!(
            (600_000.0..=1_100_000.0).contains(&mean),
            "mean target {mean} under a 1 Mbit/s cap"
        );
        // RATE_TRACE=1 prints the run, twice a second.
        if std::env::var_os("RATE_TRACE").is_some() {
            for (t, b, q) in trace.iter().step_by(5) {
                eprintln!(
                    "{:5.1} s target {:5.0} kbit/s queue {:4} ms",
                    t.as_secs_f64(),
                    *b as f64 / 1000.0,
                    q.as_millis()
                );
            }
        }
        // The queue drains once the target is under the cap.
        let worst = settled.iter().map(|(_, _, q)| *q).max().unwrap_or_default();
        assert!(
            worst < Duration::from_millis(300),
            "queue reached {worst:?}"
        );
        // Back above 3 Mbit/s within 15 s of the step up.
        let climbed = at(step_up, step_up + Duration::from_secs(40))
            .find(|(_, b, _)| *b >= 3_000_000)
            .map(|(t, ..)| *t - step_up);
        assert!(
            climbed.is_some_and(|d| d <= Duration::from_secs(15)),
            "back over 3 Mbit/s after {climbed:?}"
        );
        // And no more than the 4 Mbit/s cap once there on average.
        let high: Vec<_> = at(step_up + Duration::from_secs(30), Duration::from_secs(80)).collect();
        let mean = high.iter().map(|(_, b, _)| *b as f64).sum::<f64>() / high.len() as f64;
        assert!(
            mean <= 4_400_000.0,
            "mean target {mean} under a 4 Mbit/s cap"
        );
    }

    #[test]
    fn random_loss_below_ten_percent_does_not_starve() {
        // 5% loss on a wide path, with no queue: the target holds.
        let t0 = Instant::now();
        let mut c = ctl(2_500_000);
        for i in 0..60 {
            c.handle_report(t0 + i * 1000 * MS, 0.05, Some(40 * MS), None);
        }
        assert_eq!(c.target(), 2_500_000);
    }

    /// A packet-level path for the receiver's estimate: pictures of
    /// `target / 30` bytes every 33 ms, cut into 1200-byte packets, through
    /// a link of `cap` behind a 125 kB drop-tail queue, 20 ms each way.
    struct PacketPath {
        cap_bps: f64,
        free_at: Duration,
        /// (arrival, RTP timestamp, bytes) in flight, in order.
        flight: VecDeque<(Duration, u32, usize)>,
        sent: u64,
        dropped: u64,
        max_queue: Duration,
    }

    impl PacketPath {
        fn send_picture(&mut self, now: Duration, ts: u32, bytes: usize) {
            let mut left = bytes;
            while left > 0 {
                let len = left.min(1200);
                left -= len;
                let start = self.free_at.max(now);
                let waiting = start - now;
                // A queue of 125 kB at the link's current rate.
                if waiting.as_secs_f64() * self.cap_bps / 8.0 + len as f64 > 125_000.0 {
                    self.dropped += 1;
                    self.sent += 1;
                    continue;
                }
                self.max_queue = self.max_queue.max(waiting);
                self.free_at = start + Duration::from_secs_f64(len as f64 * 8.0 / self.cap_bps);
                self.flight.push_back((self.free_at + 20 * MS, ts, len));
                self.sent += 1;
            }
        }

        fn queue(&self, now: Duration) -> Duration {
            self.free_at.saturating_sub(now)
        }
    }

    /// (time, target, queue) every 100 ms of a run through [`PacketPath`]
    /// with the receiver's REMB every 100 ms and RRs about every second.
    fn simulate_packets(
        c: &mut RateController,
        secs: u64,
        caps: impl Fn(Duration) -> f64,
    ) -> (Vec<(Duration, u64, Duration)>, PacketPath) {
        let t0 = Instant::now();
        let mut path = PacketPath {
            cap_bps: caps(Duration::ZERO),
            free_at: Duration::ZERO,
            flight: VecDeque::new(),
            sent: 0,
            dropped: 0,
            max_queue: Duration::ZERO,
        };
        let mut est = DelayEstimator::new(90_000);
        let mut delivery = DeliveryEstimator::default();
        let mut rembs: VecDeque<(Duration, u64)> = VecDeque::new();
        let (mut arrived, mut last_sent, mut last_lost) = (0u64, 0u64, 0u64);
        let jitter = [0.7, 1.3, 0.9, 1.1, 0.6, 1.4, 1.0];
        let (mut n_rr, mut next_rr) = (0, Duration::from_secs(1));
        let mut out = Vec::new();
        let mut frame = 0u32;
        for ms in 0..secs * 1000 {
            let t = Duration::from_millis(ms);
            path.cap_bps = caps(t);
            if ms * 30 >= u64::from(frame) * 1000 {
                let bytes = (c.target() / 30 / 8) as usize;
                path.send_picture(t, frame * 3000, bytes);
                frame += 1;
            }
            while path.flight.front().is_some_and(|(at, ..)| *at <= t) {
                if let Some((at, ts, len)) = path.flight.pop_front() {
                    est.on_packet(t0 + at, ts, len);
                    arrived += 1;
                }
            }
            if let Some(bps) = est.poll_remb(t0 + t) {
                rembs.push_back((t + 20 * MS, bps));
            }
            while rembs.front().is_some_and(|(at, _)| *at <= t) {
                if let Some((_, bps)) = rembs.pop_front() {
                    c.handle_remb(t0 + t, bps);
                }
            }
            if t >= next_rr {
                let sent = path.sent - last_sent;
                let lost = path.dropped - last_lost;
                (last_sent, last_lost) = (path.sent, path.dropped);
                let loss = if sent > 0 {
                    lost as f32 / sent as f32
                } else {
                    0.0
                };
                // The SR waited in the queue too.
                let rtt = 40 * MS + path.queue(t);
                let now = t0 + t + 20 * MS;
                let highest = (arrived + path.dropped) as u32;
                let d = delivery.update(now, highest, path.dropped as i32, 1200.0);
                c.handle_report(now, loss, Some(rtt), d);
                next_rr = t + Duration::from_secs_f64(jitter[n_rr % jitter.len()]);
                n_rr += 1;
            }
            let _ = c.poll_target();
            if ms % 100 == 0 {
                out.push((t, c.target(), path.queue(t)));
            }
        }
        (out, path)
    }

    #[test]
    fn remb_from_one_way_delay_catches_a_cap_before_its_queue_fills() {
        let mut c = RateController::new(RateConfig::new(DEFAULT_MIN_BPS, 6_000_000, 2_500_000));
        let (down, up) = (Duration::from_secs(20), Duration::from_secs(40));
        let (trace, path) =
            simulate_packets(&mut c, 70, |t| if t >= down && t < up { 1e6 } else { 4e6 });
        if std::env::var_os("RATE_TRACE").is_some() {
            for (t, b, q) in trace.iter().step_by(5) {
                eprintln!(
                    "{:5.1} s target {:5.0} kbit/s queue {:4} ms",
                    t.as_secs_f64(),
                    *b as f64 / 1000.0,
                    q.as_millis()
                );
            }
            eprintln!("dropped {} of {}", path.dropped, path.sent);
        }
        let at = |from: Duration, to: Duration| {
            trace.iter().filter(move |(t, ..)| *t >= from && *t < to)
        };
        let under = at(down, up)
            .find(|(_, b, _)| *b <= 1_000_000)
            .map(|(t, ..)| *t - down);
        assert!(
            under.is_some_and(|d| d <= Duration::from_millis(500)),
            "under the cap after {under:?}"
        );
        let worst = at(down, up).map(|(_, _, q)| *q).max().unwrap_or_default();
        // 4 Mbit/s into 1 Mbit/s grows the queue 300 ms every 100 ms: the
        // packets of the queue's first 100 ms, a REMB tick and the trip
        // back keep it near 600 ms (a full queue would be 1 s).
        assert!(
            worst < Duration::from_millis(800),
            "queue reached {worst:?}"
        );
        let settled: Vec<_> = at(down + Duration::from_secs(5), up).collect();
        let late = settled.iter().map(|(_, _, q)| *q).max().unwrap_or_default();
        assert!(
            late < Duration::from_millis(300),
            "queue {late:?} once settled"
        );
        let mean = settled.iter().map(|(_, b, _)| *b as f64).sum::<f64>() / settled.len() as f64;
        assert!(
            (750_000.0..=1_000_000.0).contains(&mean),
            "mean target {mean} under a 1 Mbit/s cap"
        );
        assert_eq!(path.dropped, 0, "the queue never overflowed");
    }

    #[test]
    fn a_stalled_encoder_is_not_a_queue() {
        // 2 Mbit/s in 30 pictures a second, 7 packets each, over a clear
        // path; every second picture 2..4 s comes 120 ms late after a
        // silence (an encoder stalled on a busy machine).
        let t0 = Instant::now();
        let mut e = DelayEstimator::new(90_000);
        let mut rembs = Vec::new();
        for i in 0..180u32 {
            let mut at = Duration::from_millis(u64::from(i) * 1000 / 30);
            if (60..120).contains(&i) && i % 8 == 0 {
                at += 120 * MS;
            }
            for k in 0..7u32 {
                let now = t0 + at + MS * k;
                e.on_packet(now, i * 3000, 1190);
                if let Some(b) = e.poll_remb(now) {
                    rembs.push(b);
                }
            }
        }
        assert!(rembs.iter().all(|b| *b > 2_000_000), "{rembs:?}");
    }

    #[test]
    fn a_peer_sending_remb_owns_the_delay_signal() {
        let t0 = Instant::now();
        let mut c = ctl(2_000_000);
        c.handle_report(t0, 0.0, Some(40 * MS), Some(2_000_000));
        c.handle_remb(t0 + 900 * MS, 3_000_000);
        let before = c.target();
        // One SR stuck behind a keyframe: 150 ms more round trip.
        c.handle_report(t0 + 1000 * MS, 0.0, Some(190 * MS), Some(2_000_000));
        assert_eq!(c.target(), before);
        // Without REMB for 3 s the round trip counts again.
        c.handle_report(t0 + 5000 * MS, 0.0, Some(190 * MS), Some(2_000_000));
        assert!(matches!(c.reason(), Reason::Delay(_)), "{:?}", c.reason());
    }
}
