//! Driver buffer timestamps onto the pipeline clock.
//!
//! V4L2 stamps a buffer when the frame was captured (start or end of
//! exposure, per driver) on CLOCK_MONOTONIC when the buffer says
//! V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC. `Instant` is CLOCK_MONOTONIC on Linux
//! too, but opaque; so the age of the stamp (monotonic now − stamp) is
//! subtracted from an `Instant` read at the same moment. That capture time
//! is earlier than the dequeue by the driver's latency, which is what the
//! latency figures should include.

use std::time::{Duration, Instant};

/// Stamps older than this are not trusted (a driver with a broken clock);
/// the dequeue time is used instead.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// The instant of a driver timestamp `stamp`, given CLOCK_MONOTONIC
/// `mono_now` read together with `now`; `None` when the stamp lies in the
/// future or more than [`MAX_AGE`] in the past.
pub fn stamp_to_instant(stamp: Duration, mono_now: Duration, now: Instant) -> Option<Instant> {
    let age = mono_now.checked_sub(stamp)?;
    if age > MAX_AGE {
        return None;
    }
    now.checked_sub(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_stamp_is_moved_back_by_its_age() {
        let now = Instant::now();
        let mono = Duration::from_secs(1000);
        let t = stamp_to_instant(mono - Duration::from_millis(12), mono, now).expect("recent");
        assert_eq!(now - t, Duration::from_millis(12));
        assert_eq!(stamp_to_instant(mono, mono, now), Some(now));
    }

    #[test]
    fn future_and_stale_stamps_are_refused() {
        let now = Instant::now();
        let mono = Duration::from_secs(1000);
        assert_eq!(
            stamp_to_instant(mono + Duration::from_millis(1), mono, now),
            None
        );
        assert_eq!(
            stamp_to_instant(mono - Duration::from_secs(2), mono, now),
            None
        );
        // A realtime-clock stamp (~1.7e9 s) on a monotonic clock (~1e3 s).
        assert_eq!(
            stamp_to_instant(Duration::from_secs(1_700_000_000), mono, now),
            None
        );
    }

    #[test]
    fn the_live_clocks_agree() {
        let mono = super::super::sys::monotonic_now();
        let now = Instant::now();
        let t = stamp_to_instant(mono, super::super::sys::monotonic_now(), now).expect("fresh");
        assert!(now - t < Duration::from_millis(50));
    }
}
