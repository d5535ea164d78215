//! Real-time pacing: when the next frame or block of a source is due.
//!
//! Item `n` is due at `start + n / rate`, where `start` is the moment the
//! consumer first asked for an item (so a source opened well after the
//! pipeline clock started does not begin by skipping). What happens when the
//! consumer falls behind depends on the [`Behind`] policy: live generators skip
//! to the item due now, file readers deliver every item but move their
//! schedule so they never burst.

use std::time::{Duration, Instant};

use crate::PipelineClock;

/// What a pacer does when the consumer asks for an item after the next one
/// was already due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// Skip the items whose time has passed and produce the one due now (live sources).
    Skip,
    /// Produce every item; after a stall of more than one period, restart the
    /// schedule from now instead of bursting (file sources).
    Reanchor,
}

/// Schedules items at a fixed rational rate on the pipeline clock.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate_num: u32,
    rate_den: u32,
    policy: Behind,
    /// (instant, item index) the schedule counts from; set on first use.
    anchor: Option<(Instant, u64)>,
    next: u64,
    skipped: u64,
}

impl Pacer {
    /// A pacer for `rate_num / rate_den` items per second (both non-zero; zero is treated as one).
    pub fn new(rate_num: u32, rate_den: u32, policy: Behind) -> Self {
        Self {
            rate_num: rate_num.max(1),
            rate_den: rate_den.max(1),
            policy,
            anchor: None,
            next: 0,
            skipped: 0,
        }
    }

    /// Media time of item `n`: `n / rate` since the start of the stream.
    pub fn pts(&self, n: u64) -> Duration {
        self.periods(n)
    }

    /// How many items the Skip policy has skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Blocks until the next item is due on `clock` and returns its index.
    pub fn wait(&mut self, clock: &PipelineClock) -> u64 {
        loop {
            match self.poll(clock.now()) {
                Ok(n) => return n,
                Err(due) => {
                    let now = clock.now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
            }
        }
    }

    /// Without blocking: `Ok(index)` of the item to produce at `now`, or
    /// `Err(due)` with the instant the next item is due.
    pub fn poll(&mut self, now: Instant) -> Result<u64, Instant> {
        let (at, base) = *self.anchor.get_or_insert((now, self.next));
        let due = at + self.periods(self.next - base);
        if now < due {
            return Err(due);
        }
        match self.policy {
            Behind::Skip => {
                let latest = base + self.periods_in(now - at);
                if latest > self.next {
                    self.skipped += latest - self.next;
                    self.next = latest;
                }
            }
            Behind::Reanchor => {
                if now >= due + self.periods(1) {
                    self.anchor = Some((now, self.next));
                }
            }
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }

    /// The duration of `k` periods.
    fn periods(&self, k: u64) -> Duration {
        let nanos =
            u128::from(k) * u128::from(self.rate_den) * 1_000_000_000 / u128::from(self.rate_num);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many whole periods fit in `d`.
    fn periods_in(&self, d: Duration) -> u64 {
        let k =
            d.as_nanos() * u128::from(self.rate_num) / (u128::from(self.rate_den) * 1_000_000_000);
        u64::try_from(k).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn items_are_due_at_start_plus_n_periods() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 1, Behind::Skip);
        assert_eq!(p.poll(t0), Ok(0));
        assert_eq!(p.poll(t0), Err(t0 + 10 * MS));
        assert_eq!(p.poll(t0 + 10 * MS), Ok(1));
        assert_eq!(p.poll(t0 + 12 * MS), Err(t0 + 20 * MS));
        assert_eq!(p.pts(3), 30 * MS);
    }

    #[test]
    fn skip_policy_jumps_to_the_item_due_now_and_counts() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30, 1, Behind::Skip);
        assert_eq!(p.poll(t0), Ok(0));
        // 200 ms later: items 1..=6 are due (6 * 33.3 ms = 200 ms); produce 6.
        assert_eq!(p.poll(t0 + 200 * MS), Ok(6));
        assert_eq!(p.skipped(), 5);
        assert!(p.poll(t0 + 200 * MS).is_err());
    }

    #[test]
    fn reanchor_policy_delivers_every_item_without_bursting() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10, 1, Behind::Reanchor);
        assert_eq!(p.poll(t0), Ok(0));
        // A 1 s stall: item 1 comes at once, item 2 one period later, not at once.
        assert_eq!(p.poll(t0 + 1000 * MS), Ok(1));
        assert_eq!(p.poll(t0 + 1000 * MS), Err(t0 + 1100 * MS));
        assert_eq!(p.poll(t0 + 1100 * MS), Ok(2));
        assert_eq!(p.skipped(), 0);
    }

    #[test]
    fn rational_rates_do_not_drift() {
        let p = Pacer::new(30_000, 1001, Behind::Skip);
        assert_eq!(p.pts(30_000), Duration::from_secs(1001));
    }

    #[test]
    fn wait_sleeps_until_due() {
        let clock = PipelineClock::start();
        let mut p = Pacer::new(50, 1, Behind::Skip);
        let t = Instant::now();
        for _ in 0..3 {
            p.wait(&clock);
        }
        assert!(t.elapsed() >= 40 * MS, "{:?}", t.elapsed());
    }
}
