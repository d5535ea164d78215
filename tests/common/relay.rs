//! A seeded, lossy UDP relay on loopback for RTP.
//!
//! Each [`Relay`] forwards one port. For RTP it impairs packets between
//! `start` and `stop` (measured in packets forwarded and time since the first
//! packet), so the counts are exact: the receiver sees every impaired packet
//! inside its stream, never as the very first or last one.
//!
//! Impairments, decided per packet with a seeded RNG:
//! - loss: the packet is dropped;
//! - duplicate: it is sent twice, back to back;
//! - reorder: it is held back until the next packet has been sent (at most
//!   25 ms), so the next packet always overtakes it;
//! - jitter: every packet is delayed 0–3 ms, but never past a later one
//!   (order is kept; only `reorder` reorders).
//!
//! The relay records the sequence numbers in the order it sent them, so it
//! can say exactly how many packets arrived after a later one ("overtaken"),
//! which is what a zero-latency receiver counts as late.

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the relay does to the packets of one port.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    /// Largest in-order delay added to every packet.
    pub jitter: Duration,
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
            duplicate: 0.0,
            reorder: 0.0,
            jitter: Duration::ZERO,
            clean_first: 0,
            stop_after: Duration::ZERO,
        }
    }
}

/// What the relay did on one port.
#[derive(Debug, Clone, Default)]
pub struct RelayCounts {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub delayed: u64,
    /// Of the forwarded first copies: how many went out after a packet with
    /// a higher sequence number.
    pub overtaken: u64,
    /// Sequence numbers of the dropped packets, in order.
    pub dropped_seqs: Vec<u16>,
    /// When (since the relay started) each packet was dropped.
    pub dropped_at: Vec<Duration>,
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
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

fn rtp_seq(d: &[u8]) -> Option<u16> {
    (d.len() >= 12 && d[0] >> 6 == 2).then(|| u16::from_be_bytes([d[2], d[3]]))
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
    let mut queue: BinaryHeap<Scheduled> = BinaryHeap::new();
    let mut order = 0u64;
    let mut last_in_order = Instant::now();
    let mut first_at: Option<Instant> = None;
    let started = Instant::now();
    // Highest sequence number sent, for the overtaken count.
    let mut highest_sent: Option<u16> = None;
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
            if let Some(seq) = rtp_seq(&s.data) {
                match highest_sent {
                    Some(h) if (seq.wrapping_sub(h) as i16) < 0 => {
                        if s.first_copy {
                            lock(counts).overtaken += 1;
                        }
                    }
                    _ => highest_sent = Some(seq),
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
        if impair && r_loss < imp.loss {
            let mut c = lock(counts);
            c.dropped += 1;
            if let Some(seq) = rtp_seq(&data) {
                c.dropped_seqs.push(seq);
            }
            c.dropped_at.push(now.duration_since(started));
            continue;
        }
        // In-order delay: never earlier than the previous in-order packet.
        let at = (now + jitter).max(last_in_order);
        last_in_order = at;
        let dup = impair && r_dup < imp.duplicate;
        if dup {
            lock(counts).duplicated += 1;
        }
        if impair && r_reorder < imp.reorder && held.is_none() {
            // Released right behind the next packet, or after HOLD_LIMIT.
            lock(counts).delayed += 1;
            held = Some((data, dup, now + HOLD_LIMIT));
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

fn lock(m: &Mutex<RelayCounts>) -> std::sync::MutexGuard<'_, RelayCounts> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
