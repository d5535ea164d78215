//! A seeded, lossy UDP relay on loopback for RTP.
//!
//! Each [`Relay`] forwards one port. For RTP it impairs packets between
//! `start` and `stop` (measured in packets forwarded and time since the first
//! packet), so the counts are exact: the receiver sees every impaired packet
//! inside its stream, never as the very first or last one.
//!
//! Impairments, decided per packet with a seeded RNG:
//! - loss: the packet is dropped, at random ([`Impairment::loss`]) or in
//!   bursts ([`Impairment::burst`], a Gilbert-Elliott chain);
//! - duplicate: it is sent twice, back to back;
//! - reorder: it is held back until the next packet has been sent (at most
//!   25 ms), so the next packet always overtakes it;
//! - jitter: every packet is delayed 0–`jitter`, but never past a later one
//!   (order is kept; only `reorder` reorders);
//! - path delay: every packet (from the first one, not only while impairing:
//!   it is a property of the path) is delayed `delay` ± `delay_jitter`,
//!   again in order;
//! - a bottleneck ([`Bottleneck`]): a link of a given rate (changeable at
//!   any time, shareable by several relays) with a bounded FIFO queue in
//!   front of it; a packet that does not fit is dropped (tail drop), and the
//!   queueing delay each packet saw is recorded.
//!
//! Order of the stages: loss, then the bottleneck queue, then path delay,
//! as on a real path (a packet lost upstream never takes queue space).
//!
//! The relay records the sequence numbers in the order it sent them, so it
//! can say exactly how many packets arrived after a later one ("overtaken",
//! per SSRC, so an RTX stream on the same port is its own sequence), which
//! is what a zero-latency receiver counts as late.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bursty loss: a two-state Gilbert-Elliott chain, stepped once per packet
/// (while impairing), that starts in the good state.
#[derive(Debug, Clone, Copy)]
pub struct GilbertElliott {
    /// Chance per packet of going from good to bad.
    pub p_good_to_bad: f64,
    /// Chance per packet of going from bad back to good (1 / mean burst length).
    pub p_bad_to_good: f64,
    /// Loss rate in the good state.
    pub loss_good: f64,
    /// Loss rate in the bad state.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// Bursts with the given long-run loss rate and mean burst length (in
    /// packets), losing everything in the bad state and nothing in the good.
    pub fn with_mean(loss: f64, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        // Stationary share of bad = p / (p + r) = loss.
        let p = loss * r / (1.0 - loss).max(1e-9);
        Self {
            p_good_to_bad: p,
            p_bad_to_good: r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run loss rate of the chain.
    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (self.p_good_to_bad, self.p_bad_to_good);
        if p + r <= 0.0 {
            return self.loss_good;
        }
        let bad = p / (p + r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// What the relay does to the packets of one port.
#[derive(Debug, Clone)]
pub struct Impairment {
    /// Random (independent) loss rate; ignored when `burst` is set.
    pub loss: f64,
    /// Bursty loss instead of `loss`.
    pub burst: Option<GilbertElliott>,
    pub duplicate: f64,
    pub reorder: f64,
    /// Largest in-order delay added to every packet.
    pub jitter: Duration,
    /// Fixed path delay added to every packet (e.g. 20 ms).
    pub delay: Duration,
    /// The path delay varies uniformly by ± this much (e.g. 10 ms), in order.
    pub delay_jitter: Duration,
    /// A rate-limited link with a bounded queue, possibly shared.
    pub bottleneck: Option<Bottleneck>,
    /// Packets forwarded untouched before impairing starts.
    pub clean_first: u64,
    /// Impairing stops this long after the first packet.
    pub stop_after: Duration,
}

impl Impairment {
    /// Forwards everything untouched.
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            jitter: Duration::ZERO,
            delay: Duration::ZERO,
            delay_jitter: Duration::ZERO,
            bottleneck: None,
            clean_first: 0,
            stop_after: Duration::ZERO,
        }
    }

    /// Only path delay `delay` ± `jitter` (in order), nothing lost: for the
    /// RTCP ports of a path whose RTP port is lossy.
    pub fn delayed(delay: Duration, jitter: Duration) -> Self {
        Self {
            delay,
            delay_jitter: jitter,
            ..Self::none()
        }
    }
}

/// How much the bottleneck's queue holds before it drops.
#[derive(Debug, Clone, Copy)]
pub enum QueueLimit {
    /// At most this many bytes waiting.
    Bytes(usize),
    /// At most this much waiting at the link's current rate (a packet that
    /// would wait longer is dropped).
    Time(Duration),
}

/// A link of a settable rate with a FIFO queue in front of it. Clones share
/// the link: give one clone to the video and audio relays to model one
/// access link. Departure times are computed when a packet arrives
/// (virtual time), so a rate change applies to packets arriving after it.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    rate: Arc<AtomicU64>,
    limit: QueueLimit,
    state: Arc<Mutex<LinkState>>,
}

/// What a bottleneck did, over all relays sharing it.
#[derive(Debug, Clone, Default)]
pub struct BottleneckStats {
    /// Packets that went through the queue.
    pub forwarded: u64,
    /// Packets dropped because the queue was full.
    pub dropped: u64,
    /// Bytes dropped because the queue was full.
    pub dropped_bytes: u64,
    /// Longest time a packet waited (queue plus its own serialization).
    pub max_queue_delay: Duration,
    /// Per 100 ms window since the first packet: (window start, longest
    /// wait in it, bytes forwarded in it), for a timeline of the queue.
    pub timeline: Vec<(Duration, Duration, u64)>,
}

#[derive(Debug, Default)]
struct LinkState {
    /// When the link has sent everything queued so far.
    free_at: Option<Instant>,
    first: Option<Instant>,
    stats: BottleneckStats,
}

/// Width of one timeline window.
const WINDOW: Duration = Duration::from_millis(100);

impl Bottleneck {
    /// A link of `bits_per_sec` (0 = unlimited) with a queue of `limit`.
    pub fn new(bits_per_sec: u64, limit: QueueLimit) -> Self {
        Self {
            rate: Arc::new(AtomicU64::new(bits_per_sec)),
            limit,
            state: Arc::new(Mutex::new(LinkState::default())),
        }
    }

    /// Changes the link's rate (bits/s, 0 = unlimited) from now on.
    pub fn set_rate(&self, bits_per_sec: u64) {
        self.rate.store(bits_per_sec, Ordering::Relaxed);
    }

    /// The link's current rate in bits/s (0 = unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// The shared rate, for a thread that steps it on a schedule.
    pub fn rate_handle(&self) -> Arc<AtomicU64> {
        self.rate.clone()
    }

    /// What it has done so far.
    pub fn stats(&self) -> BottleneckStats {
        lock(&self.state).stats.clone()
    }

    /// One packet of `len` bytes arrives at `now`: when it leaves the link,
    /// or None when the queue is full and it is dropped.
    fn admit(&self, len: usize, now: Instant) -> Option<Instant> {
        let rate = self.rate();
        let mut st = lock(&self.state);
        let first = *st.first.get_or_insert(now);
        let free_at = st.free_at.unwrap_or(now).max(now);
        let waiting = free_at - now;
        let serialize = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(len as f64 * 8.0 / rate as f64)
        };
        let fits = match self.limit {
            QueueLimit::Time(t) => waiting + serialize <= t,
            QueueLimit::Bytes(b) => {
                let queued = if rate == 0 {
                    0.0
                } else {
                    waiting.as_secs_f64() * rate as f64 / 8.0
                };
                queued + len as f64 <= b as f64
            }
        };
        if !fits {
            st.stats.dropped += 1;
            st.stats.dropped_bytes += len as u64;
            return None;
        }
        let leave = free_at + serialize;
        st.free_at = Some(leave);
        let delay = leave - now;
        let s = &mut st.stats;
        s.forwarded += 1;
        s.max_queue_delay = s.max_queue_delay.max(delay);
        let since = now.duration_since(first);
        let w = Duration::from_millis((since.as_millis() / WINDOW.as_millis()) as u64 * 100);
        match s.timeline.last_mut() {
            Some(last) if last.0 == w => {
                last.1 = last.1.max(delay);
                last.2 += len as u64;
            }
            _ => s.timeline.push((w, delay, len as u64)),
        }
        Some(leave)
    }
}

/// What the relay did on one port.
#[derive(Debug, Clone, Default)]
pub struct RelayCounts {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped by loss (random or bursty; not the bottleneck's).
    pub dropped: u64,
    /// Of the loss drops, how many by RTP payload type.
    pub dropped_by_pt: BTreeMap<u8, u64>,
    /// Longest run of consecutive packets lost.
    pub longest_burst: u64,
    /// Datagrams dropped because the bottleneck's queue was full.
    pub cap_dropped: u64,
    /// Longest wait in the bottleneck's queue seen here.
    pub max_queue_delay: Duration,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub delayed: u64,
    /// Of the forwarded first copies: how many went out after a packet with
    /// a higher sequence number of the same SSRC.
    pub overtaken: u64,
    /// Shortest and longest path delay added (delay ± delay_jitter).
    pub min_path_delay: Option<Duration>,
    pub max_path_delay: Option<Duration>,
    /// Sequence numbers of the dropped packets, in order.
    pub dropped_seqs: Vec<u16>,
    /// When (since the relay started) each packet was dropped.
    pub dropped_at: Vec<Duration>,
}

impl RelayCounts {
    /// One line saying what the relay did, for a test's log.
    pub fn report(&self) -> String {
        let pts: Vec<String> = self
            .dropped_by_pt
            .iter()
            .map(|(pt, n)| format!("pt{pt}:{n}"))
            .collect();
        let ms =
            |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
        format!(
            "received {} dropped {} ({}) longest-burst {} cap-dropped {} max-queue-ms {:.1} \
             duplicated {} delayed {} overtaken {} path-delay-ms {}..{}",
            self.received,
            self.dropped,
            pts.join(" "),
            self.longest_burst,
            self.cap_dropped,
            self.max_queue_delay.as_secs_f64() * 1e3,
            self.duplicated,
            self.delayed,
            self.overtaken,
            ms(self.min_path_delay),
            ms(self.max_path_delay),
        )
    }
}

struct Scheduled {
    at: Instant,
    order: u64,
    data: Vec<u8>,
    first_copy: bool,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // BinaryHeap is a max-heap: the earliest (then first scheduled) on top.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

/// One forwarding thread: `listen` → `to`, stopped and joined on drop.
pub struct Relay {
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<RelayCounts>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Binds `listen` now (so the caller knows the port is taken) and starts forwarding.
    pub fn start(listen: SocketAddr, to: SocketAddr, imp: Impairment, seed: u64) -> Relay {
        let sock = UdpSocket::bind(listen).unwrap_or_else(|e| panic!("relay bind {listen}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(RelayCounts::default()));
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::Builder::new()
            .name(format!("relay-{}", listen.port()))
            .spawn(move || run(sock, to, imp, seed, &s, &c))
            .expect("spawn relay thread");
        Relay {
            stop,
            counts,
            thread: Some(thread),
        }
    }

    /// What it has done so far.
    pub fn counts(&self) -> RelayCounts {
        lock(&self.counts).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (SSRC, sequence number, payload type) of an RTP packet; None for RTCP
/// (payload types 72–79 with the marker bit are RTCP 200–207) and others.
fn rtp_id(d: &[u8]) -> Option<(u32, u16, u8)> {
    if d.len() < 12 || d[0] >> 6 != 2 || (192..=223).contains(&d[1]) {
        return None;
    }
    Some((
        u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        u16::from_be_bytes([d[2], d[3]]),
        d[1] & 0x7f,
    ))
}

/// The loss decision: independent, or a Gilbert-Elliott chain.
struct LossModel {
    /// Draws for the chain, apart from the main RNG so that one seed still
    /// gives the same random-loss pattern as before bursts existed.
    rng: StdRng,
    bad: bool,
}

impl LossModel {
    /// Whether this (impaired) packet is lost; `r_loss` is the main RNG's draw.
    fn lost(&mut self, imp: &Impairment, r_loss: f64) -> bool {
        let Some(ge) = imp.burst else {
            return r_loss < imp.loss;
        };
        let step = self.rng.random::<f64>();
        self.bad = if self.bad {
            step >= ge.p_bad_to_good
        } else {
            step < ge.p_good_to_bad
        };
        let rate = if self.bad { ge.loss_bad } else { ge.loss_good };
        self.rng.random::<f64>() < rate
    }
}

fn run(
    sock: UdpSocket,
    to: SocketAddr,
    imp: Impairment,
    seed: u64,
    stop: &AtomicBool,
    counts: &Mutex<RelayCounts>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Path delay draws: their own RNG, for the same reason as the chain's.
    let mut delay_rng = StdRng::seed_from_u64(seed ^ 0xde1a_7000);
    let mut loss = LossModel {
        rng: StdRng::seed_from_u64(seed ^ 0xb0a5_7000),
        bad: false,
    };
    let mut queue: BinaryHeap<Scheduled> = BinaryHeap::new();
    let mut order = 0u64;
    let mut last_in_order = Instant::now();
    let mut first_at: Option<Instant> = None;
    let started = Instant::now();
    // Highest sequence number sent per SSRC, for the overtaken count.
    let mut highest_sent: HashMap<u32, u16> = HashMap::new();
    let mut burst = 0u64;
    // A packet held back for reordering: (datagram, duplicated, release by).
    let mut held: Option<(Vec<u8>, bool, Instant)> = None;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // No later packet came in time (end of stream): let it go anyway.
        if held.as_ref().is_some_and(|h| h.2 <= now) {
            if let Some((data, dup, _)) = held.take() {
                release(&mut queue, &mut order, data, dup, now);
            }
        }
        // Send what is due.
        while queue.peek().is_some_and(|s| s.at <= now) {
            let Some(s) = queue.pop() else { break };
            let _ = sock.send_to(&s.data, to);
            if let Some((ssrc, seq, _)) = rtp_id(&s.data) {
                match highest_sent.get(&ssrc) {
                    Some(&h) if (seq.wrapping_sub(h) as i16) < 0 => {
                        if s.first_copy {
                            lock(counts).overtaken += 1;
                        }
                    }
                    _ => {
                        highest_sent.insert(ssrc, seq);
                    }
                }
            }
        }
        let wait = queue
            .peek()
            .map(|s| s.at)
            .into_iter()
            .chain(held.as_ref().map(|h| h.2))
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(20))
            .clamp(Duration::from_micros(200), Duration::from_millis(20));
        let _ = sock.set_read_timeout(Some(wait));
        let Ok((n, _from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let now = Instant::now();
        let data = buf[..n].to_vec();
        let t0 = *first_at.get_or_insert(now);
        let index = {
            let mut c = lock(counts);
            c.received += 1;
            c.received - 1
        };
        let impair = index >= imp.clean_first && now.duration_since(t0) < imp.stop_after;
        // Draw every random number for every packet, so one seed gives one
        // pattern whatever the impairment probabilities.
        let (r_loss, r_dup, r_reorder) = (
            rng.random::<f64>(),
            rng.random::<f64>(),
            rng.random::<f64>(),
        );
        let jitter = imp.jitter.mul_f64(rng.random::<f64>());
        // Kept so one seed draws the same numbers as before; the hold itself
        // now ends when the next packet goes out.
        let _ = rng.random_range(10..=25u64);
        let path = if imp.delay_jitter.is_zero() {
            imp.delay
        } else {
            let d = imp.delay.as_secs_f64()
                + imp.delay_jitter.as_secs_f64() * (2.0 * delay_rng.random::<f64>() - 1.0);
            Duration::from_secs_f64(d.max(0.0))
        };
        if impair && loss.lost(&imp, r_loss) {
            let mut c = lock(counts);
            c.dropped += 1;
            burst += 1;
            c.longest_burst = c.longest_burst.max(burst);
            if let Some((_, seq, pt)) = rtp_id(&data) {
                c.dropped_seqs.push(seq);
                *c.dropped_by_pt.entry(pt).or_default() += 1;
            }
            c.dropped_at.push(now.duration_since(started));
            continue;
        }
        burst = 0;
        // The bottleneck: wait in its queue, or be dropped when it is full.
        let leave = match &imp.bottleneck {
            None => now,
            Some(b) => match b.admit(n, now) {
                Some(t) => {
                    let mut c = lock(counts);
                    c.max_queue_delay = c.max_queue_delay.max(t - now);
                    t
                }
                None => {
                    lock(counts).cap_dropped += 1;
                    continue;
                }
            },
        };
        {
            let mut c = lock(counts);
            c.min_path_delay = Some(c.min_path_delay.map_or(path, |m| m.min(path)));
            c.max_path_delay = Some(c.max_path_delay.map_or(path, |m| m.max(path)));
        }
        // In-order delay: never earlier than the previous in-order packet.
        let at = (leave + path + jitter).max(last_in_order);
        last_in_order = at;
        let dup = impair && r_dup < imp.duplicate;
        if dup {
            lock(counts).duplicated += 1;
        }
        if impair && r_reorder < imp.reorder && held.is_none() {
            // Released right behind the next packet, or after HOLD_LIMIT.
            lock(counts).delayed += 1;
            held = Some((data, dup, leave + path + HOLD_LIMIT));
            continue;
        }
        for copy in 0..if dup { 2 } else { 1 } {
            queue.push(Scheduled {
                at,
                order,
                data: data.clone(),
                first_copy: copy == 0,
            });
            order += 1;
        }
        if let Some((data, dup, _)) = held.take() {
            release(&mut queue, &mut order, data, dup, at);
        }
    }
}

/// Longest a reordered packet waits for a later one to overtake it.
const HOLD_LIMIT: Duration = Duration::from_millis(25);

/// Queues a held-back packet (and its duplicate) to go out at `at`, after
/// everything already queued for that moment.
fn release(
    queue: &mut BinaryHeap<Scheduled>,
    order: &mut u64,
    data: Vec<u8>,
    dup: bool,
    at: Instant,
) {
    for copy in 0..if dup { 2 } else { 1 } {
        queue.push(Scheduled {
            at,
            order: *order,
            data: data.clone(),
            first_copy: copy == 0,
        });
        *order += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
