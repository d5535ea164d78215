//! The queue between a publisher and one of its stages: bounded drop-oldest
//! like [`pstream_core::link()`], and bounded in bytes as well as in units.
//!
//! What a publisher sends is outside data: a unit count alone lets a
//! publisher whose units are megabytes each (RTMP messages go up to 16 MiB)
//! fill hundreds of megabytes per stage. Past either bound the oldest units
//! are dropped and counted, as the link does, so the freshest media goes on;
//! a unit larger than the whole byte bound is dropped (and counted) at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use pstream_core::{Disconnected, EncodedUnit, Recv};

/// What both ends share.
#[derive(Debug)]
struct Shared {
    /// Payload bytes queued now (added before a unit is queued, taken off
    /// once it is received or evicted).
    bytes: AtomicUsize,
    max_bytes: usize,
    dropped: AtomicU64,
    /// The receiver has gone (the eviction handle keeps the channel open).
    closed: AtomicBool,
}

/// A queue of at most `units` units and `max_bytes` payload bytes (each at least 1).
pub(crate) fn unit_queue(units: usize, max_bytes: usize) -> (UnitSender, UnitReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(units.max(1));
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        dropped: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    (
        UnitSender {
            tx,
            evict: rx.clone(),
            shared: shared.clone(),
        },
        UnitReceiver { rx, shared },
    )
}

/// The publisher's end.
#[derive(Debug)]
pub(crate) struct UnitSender {
    tx: Sender<EncodedUnit>,
    /// Used only to evict the oldest unit.
    evict: Receiver<EncodedUnit>,
    shared: Arc<Shared>,
}

impl UnitSender {
    /// Queues `unit` without blocking, first evicting (and counting) the
    /// oldest units while either bound would be passed. `Err` once the
    /// stage has gone.
    pub(crate) fn send(&self, unit: EncodedUnit) -> Result<(), Disconnected> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(Disconnected);
        }
        let size = unit.data.len();
        if size > s.max_bytes {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        while s.bytes.load(Ordering::Acquire) + size > s.max_bytes && self.evict_one() {}
        // Counted before it is queued, so the receiver never takes off
        // bytes not yet added.
        s.bytes.fetch_add(size, Ordering::AcqRel);
        let mut unit = unit;
        loop {
            match self.tx.try_send(unit) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => {
                    s.bytes.fetch_sub(size, Ordering::AcqRel);
                    return Err(Disconnected);
                }
                Err(TrySendError::Full(back)) => {
                    unit = back;
                    self.evict_one();
                }
            }
        }
    }

    /// Evicts the oldest unit, if the stage has not just taken it.
    fn evict_one(&self) -> bool {
        match self.evict.try_recv() {
            Ok(old) => {
                self.shared
                    .bytes
                    .fetch_sub(old.data.len(), Ordering::AcqRel);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Payload bytes queued now.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Units dropped so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The stage's end.
#[derive(Debug)]
pub(crate) struct UnitReceiver {
    rx: Receiver<EncodedUnit>,
    shared: Arc<Shared>,
}

impl UnitReceiver {
    /// Waits at most `timeout` for a unit; `Closed` once the publisher has
    /// gone and the queue is empty.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Recv<EncodedUnit> {
        match self.rx.recv_deadline(Instant::now() + timeout) {
            Ok(unit) => {
                self.shared
                    .bytes
                    .fetch_sub(unit.data.len(), Ordering::AcqRel);
                Recv::Item(unit)
            }
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// Units dropped so far (either bound).
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for UnitReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pstream_core::Codec;

    fn unit(len: usize, pts_ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec: Codec::H264,
            keyframe: false,
            pts: Duration::from_millis(pts_ms),
            dts: None,
            capture: Instant::now(),
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn past_the_byte_bound_the_oldest_units_are_dropped_and_counted() {
        let (tx, rx) = unit_queue(100, 10_000);
        for i in 0..10 {
            tx.send(unit(3_000, i)).expect("alive");
            assert!(tx.queued_bytes() <= 10_000, "{}", tx.queued_bytes());
        }
        // 3 fit in 10 000 bytes: the 7 oldest went.
        assert_eq!(tx.dropped(), 7);
        assert_eq!(rx.dropped(), 7);
        let pts: Vec<u64> = std::iter::from_fn(|| match rx.recv_timeout(Duration::ZERO) {
            Recv::Item(u) => Some(u.pts.as_millis() as u64),
            _ => None,
        })
        .collect();
        assert_eq!(pts, [7, 8, 9]);
        assert_eq!(tx.queued_bytes(), 0);
        // A unit larger than the whole bound is dropped on its own.
        tx.send(unit(10_001, 10)).expect("alive");
        assert_eq!(tx.dropped(), 8);
        assert_eq!(rx.recv_timeout(Duration::ZERO), Recv::Timeout);
    }

    #[test]
    fn the_unit_bound_still_holds_and_a_gone_stage_is_reported() {
        let (tx, rx) = unit_queue(2, 1 << 20);
        for i in 0..5 {
            tx.send(unit(10, i)).expect("alive");
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!(tx.queued_bytes(), 20);
        drop(rx);
        assert_eq!(tx.send(unit(10, 5)), Err(Disconnected));
    }
}
