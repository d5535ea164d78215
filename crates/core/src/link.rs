//! The bounded, drop-oldest channel that joins two pipeline stages.
//!
//! A live pipeline must never queue without bound: when the next stage falls
//! behind, the freshest media is worth more than the oldest, so the sender
//! evicts the oldest queued item and counts it. The count is shared so the
//! stats line can show drops per link.
//!
//! A link is bounded in items, and with [`link_bytes`] in bytes as well: a
//! count alone lets items that are megabytes each (an RTMP message may be
//! 16 MiB, an H.264 access unit from a peer 8 MiB) fill hundreds of
//! megabytes, so every link that carries data from outside is made with a
//! byte budget. Past either bound the oldest items go; an item larger than
//! the whole byte budget is dropped (and counted) on its own.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, TrySendError,
};

use crate::{AudioBlock, EncodedUnit, VideoFrame};

/// How many bytes of media an item holds, for links bounded in bytes.
pub trait Weigh {
    /// The item's size in bytes (its payload; headers are noise beside it).
    fn weight(&self) -> usize;
}

impl Weigh for EncodedUnit {
    fn weight(&self) -> usize {
        self.data.len()
    }
}

impl Weigh for VideoFrame {
    fn weight(&self) -> usize {
        self.data().len()
    }
}

impl Weigh for AudioBlock {
    fn weight(&self) -> usize {
        std::mem::size_of_val(self.samples.as_slice())
    }
}

/// The byte side of a link, shared by both ends.
#[derive(Debug)]
struct Budget<T> {
    /// Bytes queued now: added before an item is queued, taken off once it
    /// is received or evicted, so the receiver never takes off bytes not
    /// yet added.
    queued: AtomicUsize,
    max: usize,
    weigh: fn(&T) -> usize,
}

/// What a link without a byte budget weighs its items at.
fn weightless<T>(_: &T) -> usize {
    0
}

/// Creates a link holding at most `capacity` items (at least 1).
///
/// For items pstream makes itself at a known size (its own captured frames
/// and encoded units); data from outside goes through [`link_bytes`].
pub fn link<T>(capacity: usize) -> (LinkSender<T>, LinkReceiver<T>) {
    with_budget(capacity, usize::MAX, weightless::<T>)
}

/// Creates a link holding at most `capacity` items and `max_bytes` bytes of
/// them (each at least 1).
pub fn link_bytes<T: Weigh>(capacity: usize, max_bytes: usize) -> (LinkSender<T>, LinkReceiver<T>) {
    with_budget(capacity, max_bytes.max(1), T::weight)
}

fn with_budget<T>(
    capacity: usize,
    max: usize,
    weigh: fn(&T) -> usize,
) -> (LinkSender<T>, LinkReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(Budget {
        queued: AtomicUsize::new(0),
        max,
        weigh,
    });
    (
        LinkSender {
            tx,
            evict: rx.clone(),
            dropped: dropped.clone(),
            closed: closed.clone(),
            budget: budget.clone(),
        },
        LinkReceiver {
            rx,
            dropped,
            closed,
            budget,
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
    budget: Arc<Budget<T>>,
}

impl<T> Clone for LinkSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            evict: self.evict.clone(),
            dropped: self.dropped.clone(),
            closed: self.closed.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// Why a send did not deliver.
#[derive(Debug, PartialEq, Eq)]
pub struct Disconnected;

impl<T> LinkSender<T> {
    /// Sends without blocking, evicting (and counting) the oldest items while
    /// either bound would be passed.
    ///
    /// Returns `Err(Disconnected)` once the downstream stage has gone, which
    /// is how an upstream stage learns to stop.
    pub fn send(&self, mut item: T) -> Result<(), Disconnected> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Disconnected);
        }
        let b = &self.budget;
        let size = (b.weigh)(&item);
        if size > b.max {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        while b.queued.load(Ordering::Acquire).saturating_add(size) > b.max && self.evict_one() {}
        b.queued.fetch_add(size, Ordering::AcqRel);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => {
                    b.queued.fetch_sub(size, Ordering::AcqRel);
                    return Err(Disconnected);
                }
                Err(TrySendError::Full(back)) => {
                    item = back;
                    self.evict_one();
                }
            }
        }
    }

    /// Evicts the oldest item, unless the consumer has just taken it (only
    /// what we evict is counted).
    fn evict_one(&self) -> bool {
        match self.evict.try_recv() {
            Ok(old) => {
                let b = &self.budget;
                b.queued.fetch_sub((b.weigh)(&old), Ordering::AcqRel);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// How many items this link has evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued now (0 on a link without a byte budget).
    pub fn queued_bytes(&self) -> usize {
        self.budget.queued.load(Ordering::Acquire)
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
    budget: Arc<Budget<T>>,
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
    /// Takes `item` off the byte budget as it leaves the link.
    fn out(&self, item: T) -> T {
        let b = &self.budget;
        b.queued.fetch_sub((b.weigh)(&item), Ordering::AcqRel);
        item
    }

    /// Blocks until an item arrives or every sender is gone.
    pub fn recv(&self) -> Option<T> {
        self.rx.recv().ok().map(|v| self.out(v))
    }

    /// Waits until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Recv<T> {
        match self.rx.recv_deadline(deadline) {
            Ok(v) => Recv::Item(self.out(v)),
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
            Ok(v) => Recv::Item(self.out(v)),
            Err(TryRecvError::Empty) => Recv::Timeout,
            Err(TryRecvError::Disconnected) => Recv::Closed,
        }
    }

    /// The underlying receiver, for `crossbeam_channel::select!`; what a
    /// select takes from it must go through [`LinkReceiver::taken`].
    pub fn as_receiver(&self) -> &Receiver<T> {
        &self.rx
    }

    /// Accounts for a message a select took through [`LinkReceiver::as_receiver`]
    /// (`None` once every sender is gone).
    pub fn taken(&self, msg: Result<T, RecvError>) -> Option<T> {
        msg.ok().map(|v| self.out(v))
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

    fn unit(len: usize, pts_ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec: crate::Codec::H264,
            keyframe: false,
            pts: Duration::from_millis(pts_ms),
            dts: None,
            capture: Instant::now(),
            data: bytes::Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn past_the_byte_budget_the_oldest_items_are_dropped_and_counted() {
        let (tx, rx) = link_bytes::<EncodedUnit>(100, 10_000);
        for i in 0..10 {
            tx.send(unit(3_000, i)).expect("alive");
            assert!(tx.queued_bytes() <= 10_000, "{}", tx.queued_bytes());
        }
        // 3 fit in 10 000 bytes: the 7 oldest went.
        assert_eq!(tx.dropped(), 7);
        assert_eq!(rx.dropped(), 7);
        let pts: Vec<u64> = std::iter::from_fn(|| match rx.try_recv() {
            Recv::Item(u) => Some(u.pts.as_millis() as u64),
            _ => None,
        })
        .collect();
        assert_eq!(pts, [7, 8, 9]);
        assert_eq!(tx.queued_bytes(), 0);
        // An item larger than the whole budget is dropped on its own.
        tx.send(unit(10_001, 10)).expect("alive");
        assert_eq!(tx.dropped(), 8);
        assert_eq!(rx.try_recv(), Recv::Timeout);
    }

    #[test]
    fn the_item_bound_still_holds_beside_the_byte_budget() {
        let (tx, rx) = link_bytes::<EncodedUnit>(2, 1 << 20);
        for i in 0..5 {
            tx.send(unit(10, i)).expect("alive");
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!(tx.queued_bytes(), 20);
        drop(rx);
        assert_eq!(tx.send(unit(10, 5)), Err(Disconnected));
    }

    #[test]
    fn what_a_select_takes_leaves_the_budget_too() {
        let (tx, rx) = link_bytes::<EncodedUnit>(8, 1_000);
        tx.send(unit(600, 0)).expect("alive");
        let got = crossbeam_channel::select! {
            recv(rx.as_receiver()) -> m => rx.taken(m),
        };
        assert_eq!(got.map(|u| u.data.len()), Some(600));
        assert_eq!(tx.queued_bytes(), 0);
        // With the budget free again, a second 600-byte unit evicts nothing.
        tx.send(unit(600, 1)).expect("alive");
        assert_eq!(tx.dropped(), 0);
        drop(tx);
        assert_eq!(rx.recv().map(|u| u.pts), Some(Duration::from_millis(1)));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Recv::Closed);
    }

    #[test]
    fn a_link_without_budget_counts_no_bytes() {
        let (tx, _rx) = link::<EncodedUnit>(4);
        tx.send(unit(1 << 20, 0)).expect("alive");
        assert_eq!(tx.queued_bytes(), 0);
        assert_eq!(tx.dropped(), 0);
    }
}
