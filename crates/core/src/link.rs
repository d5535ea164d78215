//! The bounded, drop-oldest channel that joins two pipeline stages.
//!
//! A live pipeline must never queue without bound: when the next stage falls
//! behind, the freshest media is worth more than the oldest, so the sender
//! evicts the oldest queued item and counts it. The count is shared so the
//! stats line can show drops per link.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

/// Creates a link holding at most `capacity` items (at least 1).
pub fn link<T>(capacity: usize) -> (LinkSender<T>, LinkReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    (
        LinkSender {
            tx,
            evict: rx.clone(),
            dropped: dropped.clone(),
            closed: closed.clone(),
        },
        LinkReceiver {
            rx,
            dropped,
            closed,
        },
    )
}

/// The upstream end of a link.
#[derive(Debug)]
pub struct LinkSender<T> {
    tx: Sender<T>,
    // A receiver handle used only to evict the oldest item when full.
    evict: Receiver<T>,
    dropped: Arc<AtomicU64>,
    // The eviction handle keeps the channel connected, so the receiver's
    // departure is signalled here instead.
    closed: Arc<AtomicBool>,
}

impl<T> Clone for LinkSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            evict: self.evict.clone(),
            dropped: self.dropped.clone(),
            closed: self.closed.clone(),
        }
    }
}

/// Why a send did not deliver.
#[derive(Debug, PartialEq, Eq)]
pub struct Disconnected;

impl<T> LinkSender<T> {
    /// Sends without blocking, evicting (and counting) the oldest item if full.
    ///
    /// Returns `Err(Disconnected)` once the downstream stage has gone, which
    /// is how an upstream stage learns to stop.
    pub fn send(&self, mut item: T) -> Result<(), Disconnected> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Disconnected);
        }
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(Disconnected),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    // The consumer may drain concurrently; only count what we evict.
                    if self.evict.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// How many items this link has evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A handle to the drop counter, for the stats line.
    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

/// The downstream end of a link.
#[derive(Debug)]
pub struct LinkReceiver<T> {
    rx: Receiver<T>,
    dropped: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl<T> Drop for LinkReceiver<T> {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// What a timed receive returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<T> {
    /// An item arrived.
    Item(T),
    /// Nothing arrived before the deadline.
    Timeout,
    /// The upstream stage has finished and the link is empty.
    Closed,
}

impl<T> LinkReceiver<T> {
    /// Blocks until an item arrives or every sender is gone.
    pub fn recv(&self) -> Option<T> {
        self.rx.recv().ok()
    }

    /// Waits until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Recv<T> {
        match self.rx.recv_deadline(deadline) {
            Ok(v) => Recv::Item(v),
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// Waits at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Recv<T> {
        self.recv_deadline(Instant::now() + timeout)
    }

    /// Takes an item if one is queued.
    pub fn try_recv(&self) -> Recv<T> {
        match self.rx.try_recv() {
            Ok(v) => Recv::Item(v),
            Err(TryRecvError::Empty) => Recv::Timeout,
            Err(TryRecvError::Disconnected) => Recv::Closed,
        }
    }

    /// The underlying receiver, for `crossbeam_channel::select!`.
    pub fn as_receiver(&self) -> &Receiver<T> {
        &self.rx
    }

    /// How many items the sender has evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_link_drops_oldest_and_counts() {
        let (tx, rx) = link::<u32>(2);
        for i in 0..5 {
            tx.send(i).expect("receiver alive");
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!(rx.try_recv(), Recv::Item(3));
        assert_eq!(rx.try_recv(), Recv::Item(4));
        assert_eq!(rx.try_recv(), Recv::Timeout);
    }

    #[test]
    fn send_reports_a_gone_receiver() {
        let (tx, rx) = link::<u32>(1);
        drop(rx);
        assert_eq!(tx.send(1), Err(Disconnected));
    }

    #[test]
    fn receiver_sees_close_after_drain() {
        let (tx, rx) = link::<u32>(4);
        tx.send(7).expect("alive");
        drop(tx);
        assert_eq!(rx.recv(), Some(7));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Recv::Closed);
    }
}
