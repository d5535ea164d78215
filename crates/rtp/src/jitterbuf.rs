//! A reorder buffer keyed by extended sequence number.
//!
//! Packets leave in sequence order as soon as they are contiguous. A packet
//! behind a gap waits for the missing ones at most `latency` (counted from
//! the arrival of the oldest packet held); then the gap is declared lost and
//! skipped. The very first packet also waits `latency`, in case packets sent
//! before it arrive after it. With a latency of zero nothing ever waits. A packet that arrives
//! after its place was skipped is late; one already seen is a duplicate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

// How many released sequence numbers are remembered to tell late from duplicate.
const WINDOW: u64 = 1024;

/// What [`JitterBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Held for release.
    Accepted,
    /// Already held or released; dropped.
    Duplicate,
    /// Its place was already skipped as lost (or is too old to know); dropped.
    Late,
}

/// A packet leaving the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released<T> {
    /// Its extended sequence number.
    pub ext: u64,
    /// When it arrived.
    pub arrival: Instant,
    /// How many sequence numbers right before it were given up as lost.
    pub lost_before: u64,
    /// The packet.
    pub item: T,
}

/// The reorder buffer.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    latency: Duration,
    capacity: usize,
    next: Option<u64>,
    held: BTreeMap<u64, (Instant, T)>,
    oldest_arrival: Option<Instant>,
    // Bit i: whether sequence number `x` with `x % WINDOW == i` and
    // `x < next` was received. Only the last WINDOW numbers are meaningful.
    released: [u64; (WINDOW / 64) as usize],
}

impl<T> JitterBuffer<T> {
    /// A buffer holding packets at most `latency` and at most `capacity` of them.
    pub fn new(latency: Duration, capacity: usize) -> Self {
        Self {
            latency,
            capacity: capacity.max(1),
            next: None,
            held: BTreeMap::new(),
            oldest_arrival: None,
            released: [0; (WINDOW / 64) as usize],
        }
    }

    /// Changes how long a packet behind a gap waits (the repair budget).
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// How long a packet behind a gap waits.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The next extended sequence number to leave, once one has left.
    pub fn next_out(&self) -> Option<u64> {
        self.next
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Forgets everything (the source restarted).
    pub fn reset(&mut self) {
        self.next = None;
        self.held.clear();
        self.oldest_arrival = None;
        self.released = [0; (WINDOW / 64) as usize];
    }

    fn bit(&self, ext: u64) -> bool {
        let i = (ext % WINDOW) as usize;
        self.released[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, ext: u64, on: bool) {
        let i = (ext % WINDOW) as usize;
        if on {
            self.released[i / 64] |= 1 << (i % 64);
        } else {
            self.released[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Offers a packet that arrived at `now`.
    pub fn insert(&mut self, now: Instant, ext: u64, item: T) -> Insert {
        if let Some(next) = self.next.filter(|&n| ext < n) {
            if next - ext > WINDOW || self.bit(ext) {
                return if next - ext > WINDOW {
                    Insert::Late
                } else {
                    Insert::Duplicate
                };
            }
            // Remember it so a second copy counts as a duplicate.
            self.set_bit(ext, true);
            return Insert::Late;
        }
        if self.held.contains_key(&ext) {
            return Insert::Duplicate;
        }
        self.held.insert(ext, (now, item));
        if self.oldest_arrival.is_none_or(|t| now < t) {
            self.oldest_arrival = Some(now);
        }
        Insert::Accepted
    }

    /// When the oldest packet held behind a gap stops waiting (`None` if
    /// nothing waits).
    pub fn deadline(&self) -> Option<Instant> {
        let (&first, _) = self.held.first_key_value()?;
        if self.next.is_some_and(|n| n == first) {
            // Releasable right now.
            return self.oldest_arrival;
        }
        Some(self.oldest_arrival? + self.latency)
    }

    /// Releases the next packet if it is in order or has waited long enough.
    pub fn pop(&mut self, now: Instant) -> Option<Released<T>> {
        let (&first, _) = self.held.first_key_value()?;
        let mut lost_before = 0;
        if self.next != Some(first) {
            let waited = self.oldest_arrival.is_some_and(|t| now >= t + self.latency);
            if !(self.latency.is_zero() || waited || self.held.len() > self.capacity) {
                return None;
            }
            // At the start (`next` unset) nothing is known to be missing.
            let next = self.next.unwrap_or(first);
            lost_before = first - next;
            for x in next.max(first.saturating_sub(WINDOW))..first {
                self.set_bit(x, false);
            }
        }
        let (arrival, item) = self.held.remove(&first)?;
        self.set_bit(first, true);
        self.next = Some(first + 1);
        if lost_before > 0 || arrival == self.oldest_arrival.unwrap_or(arrival) {
            self.oldest_arrival = self.held.values().map(|(t, _)| *t).min();
        }
        Some(Released {
            ext: first,
            arrival,
            lost_before,
            item,
        })
    }

    /// Releases the next held packet whatever the gap before it (for flushing).
    pub fn pop_any(&mut self) -> Option<Released<T>> {
        // Waiting ends `latency` after the oldest arrival, so that moment releases.
        let at = self.oldest_arrival? + self.latency;
        self.pop(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(jb: &mut JitterBuffer<u64>, now: Instant) -> Vec<(u64, u64)> {
        std::iter::from_fn(|| jb.pop(now).map(|r| (r.item, r.lost_before))).collect()
    }

    #[test]
    fn reorders_within_latency() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(50), 100);
        assert_eq!(jb.insert(t0, 10, 10), Insert::Accepted);
        assert_eq!(drain(&mut jb, t0), [], "the first packet waits too");
        assert_eq!(jb.insert(t0, 9, 9), Insert::Accepted);
        assert_eq!(jb.deadline(), Some(t0 + Duration::from_millis(50)));
        assert_eq!(
            drain(&mut jb, t0 + Duration::from_millis(50)),
            [(9, 0), (10, 0)]
        );
        assert_eq!(jb.insert(t0, 12, 12), Insert::Accepted);
        assert_eq!(jb.insert(t0, 13, 13), Insert::Accepted);
        assert_eq!(drain(&mut jb, t0), []);
        assert_eq!(jb.deadline(), Some(t0 + Duration::from_millis(50)));
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(jb.insert(t1, 11, 11), Insert::Accepted);
        assert_eq!(jb.insert(t1, 12, 12), Insert::Duplicate);
        assert_eq!(drain(&mut jb, t1), [(11, 0), (12, 0), (13, 0)]);
        assert_eq!(jb.insert(t1, 12, 12), Insert::Duplicate);
        assert_eq!(jb.deadline(), None);
    }

    #[test]
    fn gives_up_on_a_gap_after_latency() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(50), 100);
        jb.insert(t0, 1, 1);
        jb.insert(t0, 4, 4);
        let t1 = t0 + Duration::from_millis(20);
        jb.insert(t1, 5, 5);
        assert_eq!(drain(&mut jb, t0 + Duration::from_millis(49)), []);
        assert_eq!(
            drain(&mut jb, t0 + Duration::from_millis(50)),
            [(1, 0), (4, 2), (5, 0)]
        );
        assert_eq!(jb.insert(t1, 2, 2), Insert::Late);
        assert_eq!(jb.insert(t1, 2, 2), Insert::Duplicate);
        assert_eq!(jb.insert(t1, 3, 3), Insert::Late);
        assert_eq!(jb.insert(t1, 4, 4), Insert::Duplicate);
    }

    #[test]
    fn zero_latency_never_waits_and_capacity_is_enforced() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::ZERO, 100);
        jb.insert(t0, 1, 1);
        jb.insert(t0, 3, 3);
        assert_eq!(drain(&mut jb, t0), [(1, 0), (3, 1)]);
        let mut jb = JitterBuffer::new(Duration::from_secs(10), 2);
        jb.insert(t0, 1, 1);
        for x in [3, 4, 5] {
            jb.insert(t0, x, x);
        }
        assert_eq!(drain(&mut jb, t0), [(1, 0), (3, 1), (4, 0), (5, 0)]);
        assert_eq!(jb.insert(t0, 1, 1), Insert::Duplicate);
        assert_eq!(jb.insert(t0, 5000, 1), Insert::Accepted);
        assert_eq!(jb.pop_any().map(|r| r.lost_before), Some(4994));
        assert_eq!(jb.insert(t0, 6, 6), Insert::Late, "beyond the window");
    }
}
