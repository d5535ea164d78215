//! A sender and a receiver joined by a simulated network (seeded loss,
//! random or bursty, 20 ± 10 ms delay per packet and so reordering), all on
//! simulated `Instant`s: how many pictures come out intact with NACK + RTX,
//! and without.
//!
//! The video is shaped like pstream's 720p30 at 2.5 Mbit/s: an IDR every
//! 2 s (and after every PLI), P pictures of 6–12 KiB, 1200-byte packets. A
//! picture is shown intact when it is complete and the picture before it
//! was decoded (or it is an IDR): after a loss that cannot be repaired the
//! receiver asks for a keyframe and nothing is shown until it arrives, as
//! `pstream recv` does. Loss hits every RTP packet, retransmissions
//! included; RTCP is not dropped (the relay of the peer tests does the same).
//!
//! `cargo test -p pstream-rtp --test repair_sim -- --nocapture` prints the table.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::{Codec, EncodedUnit, PipelineClock};
use pstream_rtp::receiver::{ReceiverConfig, ReceiverStats, RtpReceiver};
use pstream_rtp::rtx::{RtxConfig, RtxReceiveConfig};
use pstream_rtp::sender::{RtpSender, SenderConfig, SenderEvent, SenderStats, TransmitKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FPS: u64 = 30;
const SECONDS: u64 = 60;
const KEYINT: u64 = 2 * FPS;

/// How the network drops RTP packets.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Each packet independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: a good state without loss and a bad state losing
    /// `bad_loss` of its packets; `p` good->bad, `r` bad->good per packet.
    Bursty { p: f64, r: f64, bad_loss: f64 },
}

impl Loss {
    /// The long-run loss rate.
    fn mean(self) -> f64 {
        match self {
            Loss::Random(p) => p,
            Loss::Bursty { p, r, bad_loss } => p / (p + r) * bad_loss,
        }
    }
}

struct Net {
    rng: StdRng,
    loss: Loss,
    bad: bool,
    sent: u64,
    dropped: u64,
}

impl Net {
    fn drops(&mut self) -> bool {
        self.sent += 1;
        let lost = match self.loss {
            Loss::Random(p) => self.rng.random_bool(p),
            Loss::Bursty { p, r, bad_loss } => {
                self.bad = if self.bad {
                    !self.rng.random_bool(r)
                } else {
                    self.rng.random_bool(p)
                };
                self.bad && self.rng.random_bool(bad_loss)
            }
        };
        self.dropped += u64::from(lost);
        lost
    }

    /// 20 ms ± 10 ms, uniform, independent per packet.
    fn delay(&mut self) -> Duration {
        Duration::from_micros(self.rng.random_range(10_000..=30_000))
    }
}

#[derive(Debug)]
enum Hop {
    Rtp(Bytes),
    SenderRtcp(Bytes),
    ReceiverRtcp(Bytes),
}

#[derive(Debug, Default)]
struct Outcome {
    frames: u64,
    shown: u64,
    latencies_ms: Vec<f64>,
    net_sent: u64,
    net_dropped: u64,
    rx: ReceiverStats,
    tx: SenderStats,
    media_bytes: u64,
    rtx_bytes: u64,
}

impl Outcome {
    fn intact(&self) -> f64 {
        self.shown as f64 / self.frames as f64
    }

    fn latency(&self, q: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    }
}

fn picture(rng: &mut StdRng, keyframe: bool) -> Bytes {
    let len = if keyframe {
        40_000
    } else {
        rng.random_range(6_000..12_000)
    };
    let mut d = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    // No zero bytes, so no start code hides in the payload.
    d.extend((0..len).map(|i| (i % 251 + 1) as u8));
    Bytes::from(d)
}

fn run(loss: Loss, rtx: bool, seed: u64) -> Outcome {
    let t0 = Instant::now();
    let clock = PipelineClock::with_origin(t0, 1_700_000_000_000_000);
    let mut scfg = SenderConfig::new(Codec::H264, clock, "tx@sim");
    let mut rcfg = ReceiverConfig::new(Codec::H264, "rx@sim");
    if rtx {
        scfg = scfg.with_rtx(RtxConfig::default());
        rcfg = rcfg.with_rtx(RtxReceiveConfig::default());
    } else {
        // Without RTX the jitter buffer still waits long enough for the
        // reordering (up to 20 ms here): 50 ms, the receiver's default.
        rcfg.latency = Duration::from_millis(50);
    }
    let mut tx = RtpSender::with_seed(scfg, seed).expect("sender");
    let mut rx = RtpReceiver::with_seed(rcfg, seed + 1).expect("receiver");
    let mut net = Net {
        rng: StdRng::seed_from_u64(seed + 2),
        loss,
        bad: false,
        sent: 0,
        dropped: 0,
    };
    let mut content = StdRng::seed_from_u64(seed + 3);
    let mut queue: BinaryHeap<Reverse<(Instant, u64, usize)>> = BinaryHeap::new();
    let mut hops: HashMap<usize, Hop> = HashMap::new();
    let mut next_id = 0usize;
    let mut schedule = |queue: &mut BinaryHeap<_>, hops: &mut HashMap<usize, Hop>, at, hop| {
        next_id += 1;
        hops.insert(next_id, hop);
        queue.push(Reverse((at, next_id as u64, next_id)));
    };

    let frame_interval = Duration::from_nanos(1_000_000_000 / FPS);
    let end = t0 + Duration::from_secs(SECONDS);
    let mut out = Outcome::default();
    let mut captures: HashMap<u32, (u64, Instant)> = HashMap::new();
    let mut next_frame = t0;
    let mut frame = 0u64;
    let mut force_key = false;
    // The decoder model: the last picture decoded, and whether it is broken.
    let mut last_decoded: Option<u64> = None;
    let mut broken = true;
    let mut now = t0;
    let mut guard = 0u64;

    loop {
        let next = [
            Some(next_frame),
            queue.peek().map(|Reverse((at, _, _))| *at),
            tx.next_timeout(),
            rx.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a frame is always next");
        guard = if next <= now { guard + 1 } else { 0 };
        assert!(
            guard < 10_000,
            "the sessions keep asking for the same instant"
        );
        now = next.max(now);
        if now > end {
            break;
        }
        if now >= next_frame {
            let keyframe = frame % KEYINT == 0 || force_key;
            force_key = false;
            let unit = EncodedUnit {
                codec: Codec::H264,
                keyframe,
                pts: frame_interval * frame as u32,
                dts: None,
                capture: now,
                data: picture(&mut content, keyframe),
            };
            captures.insert(tx.rtp_timestamp_at(now), (frame, now));
            tx.push(now, &unit).expect("push");
            out.frames += 1;
            frame += 1;
            next_frame += frame_interval;
        }
        while let Some(Reverse((at, _, id))) = queue.peek().copied() {
            if at > now {
                break;
            }
            queue.pop();
            match hops.remove(&id) {
                Some(Hop::Rtp(d)) => {
                    rx.handle_rtp(at, &d).expect("valid RTP");
                }
                Some(Hop::SenderRtcp(d)) => rx.handle_rtcp(at, &d).expect("valid RTCP"),
                Some(Hop::ReceiverRtcp(d)) => tx.handle_rtcp(at, &d).expect("valid RTCP"),
                None => {}
            }
        }
        if tx.next_timeout().is_some_and(|t| t <= now) {
            tx.handle_timeout(now);
        }
        if rx.next_timeout().is_some_and(|t| t <= now) {
            rx.handle_timeout(now);
        }
        while let Some(ev) = tx.poll_event() {
            if let SenderEvent::KeyframeRequested { .. } = ev {
                force_key = true;
            }
        }
        while let Some(u) = rx.poll_unit() {
            let Some(&(index, captured)) = captures.get(&u.rtp_timestamp) else {
                continue;
            };
            let follows = last_decoded.is_some_and(|l| l + 1 == index) && !broken;
            if u.complete && (u.keyframe || follows) {
                broken = false;
                out.shown += 1;
                out.latencies_ms
                    .push(now.saturating_duration_since(captured).as_secs_f64() * 1000.0);
            } else {
                broken = true;
                rx.request_keyframe(now);
            }
            last_decoded = Some(index);
        }
        while let Some(t) = tx.poll_transmit() {
            let at = now + net.delay();
            match t.kind {
                TransmitKind::Rtp => {
                    let is_rtx = t.data.get(1).is_some_and(|b| b & 0x7f == 98);
                    if is_rtx {
                        out.rtx_bytes += t.data.len() as u64;
                    } else {
                        out.media_bytes += t.data.len() as u64;
                    }
                    if !net.drops() {
                        schedule(&mut queue, &mut hops, at, Hop::Rtp(t.data));
                    }
                }
                TransmitKind::Rtcp => schedule(&mut queue, &mut hops, at, Hop::SenderRtcp(t.data)),
            }
        }
        while let Some(t) = rx.poll_transmit() {
            let at = now + net.delay();
            schedule(&mut queue, &mut hops, at, Hop::ReceiverRtcp(t.data));
        }
    }
    out.net_sent = net.sent;
    out.net_dropped = net.dropped;
    out.rx = rx.stats();
    out.tx = *tx.stats();
    out
}

fn report(name: &str, loss: Loss, rtx: bool, o: &Outcome) {
    eprintln!(
        "{name:>22} {:>5} | net loss {:5.2}% | intact {:6.2}% ({}/{}) | latency p50 {:5.1} p99 {:6.1} ms | \
         nacks {} req {} repaired {} late {} dup {} unrepaired {} lost {} | rtx {} missing {} suppressed {} | \
         overhead {:4.1}% | rtt {:.1} budget {:.0} ms",
        if rtx { "rtx" } else { "plain" },
        100.0 * o.net_dropped as f64 / o.net_sent.max(1) as f64,
        100.0 * o.intact(),
        o.shown,
        o.frames,
        o.latency(0.5),
        o.latency(0.99),
        o.rx.nack_sent,
        o.rx.nack_requests,
        o.rx.rtx_repaired,
        o.rx.rtx_late,
        o.rx.rtx_duplicates,
        o.rx.unrepaired,
        o.rx.lost,
        o.tx.rtx_sent,
        o.tx.rtx_missing,
        o.tx.rtx_suppressed,
        100.0 * o.rtx_bytes as f64 / o.media_bytes.max(1) as f64,
        o.rx.rtt_ms,
        o.rx.latency_ms,
    );
    let _ = loss;
}

/// Runs one case over three seeds and pools the pictures.
fn pooled(name: &str, loss: Loss, rtx: bool) -> Outcome {
    let mut all = Outcome::default();
    for seed in [11, 22, 33] {
        let o = run(loss, rtx, seed * 1000);
        report(name, loss, rtx, &o);
        all.frames += o.frames;
        all.shown += o.shown;
        all.latencies_ms.extend(o.latencies_ms);
        all.net_sent += o.net_sent;
        all.net_dropped += o.net_dropped;
        all.media_bytes += o.media_bytes;
        all.rtx_bytes += o.rtx_bytes;
        all.rx = o.rx;
        all.tx = o.tx;
    }
    assert!(
        (all.net_dropped as f64 / all.net_sent as f64 - loss.mean()).abs()
            < loss.mean() / 4.0 + 0.002,
        "{name}: the network lost {} of {}",
        all.net_dropped,
        all.net_sent
    );
    all
}

#[test]
fn random_loss_is_repaired_in_time() {
    for (p, want) in [(0.01, 0.995), (0.02, 0.995), (0.05, 0.98)] {
        let name = format!("random {:.0}%", p * 100.0);
        let with = pooled(&name, Loss::Random(p), true);
        let without = pooled(&name, Loss::Random(p), false);
        eprintln!(
            "{name}: intact {:.2}% with RTX (median latency {:.1} ms), {:.2}% without ({:.1} ms)",
            100.0 * with.intact(),
            with.latency(0.5),
            100.0 * without.intact(),
            without.latency(0.5)
        );
        assert!(
            with.intact() >= want,
            "{name} with RTX: {:.4}",
            with.intact()
        );
        assert!(
            without.intact() < 0.97,
            "{name} without RTX: {:.4}",
            without.intact()
        );
        // Repair costs little: retransmissions stay near the loss rate.
        assert!(
            (with.rtx_bytes as f64) < (with.media_bytes as f64) * (3.0 * p + 0.01),
            "{name}: {} RTX bytes for {} media bytes",
            with.rtx_bytes,
            with.media_bytes
        );
    }
}

#[test]
fn bursty_loss_is_repaired_in_time() {
    // Bursts of 3 packets on average, 2% and 5% of all packets lost.
    for (p, want) in [(0.02 / 3.0 / 0.98 * 1.0, 0.99), (0.05 / 3.0 / 0.95, 0.97)] {
        let loss = Loss::Bursty {
            p,
            r: 1.0 / 3.0,
            bad_loss: 1.0,
        };
        let name = format!("bursty {:.0}%", loss.mean() * 100.0);
        let with = pooled(&name, loss, true);
        let without = pooled(&name, loss, false);
        eprintln!(
            "{name}: intact {:.2}% with RTX (median latency {:.1} ms), {:.2}% without",
            100.0 * with.intact(),
            with.latency(0.5),
            100.0 * without.intact(),
        );
        assert!(
            with.intact() >= want,
            "{name} with RTX: {:.4}",
            with.intact()
        );
        assert!(without.intact() < with.intact());
    }
}
