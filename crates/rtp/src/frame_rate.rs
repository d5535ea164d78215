//! A video stream's frame rate, inferred from its first RTP timestamps.
//!
//! RTP carries no frame rate, yet a Y4M header or a V4L2 output device needs
//! one before the first picture is written. Live senders (pstream, GStreamer
//! with a live source) stamp capture instants, which jitter by milliseconds
//! under load, and drop frames when they fall behind: one step between two
//! timestamps can read 27 fps or 15 fps for a 30 fps camera. So the estimate
//! takes the median step (robust to a dropped frame), averages the steps near
//! it (which cancels the jitter of the instants in between), and snaps the
//! result to the nearest rate cameras and encoders actually use.
//!
//! A receiver that must not hold its first pictures back has only the first
//! interval: [`estimate_first`] snaps that one step to the nearest common
//! rate with a wider tolerance (one step carries the whole jitter of two
//! capture instants).

/// Units [`estimate`] is best fed: nine steps (the receiver no longer waits
/// for them; see [`estimate_first`]).
pub const RATE_UNITS: usize = 10;

/// Relative distance within which a single step snaps to a common rate:
/// 3 ms of jitter on a 33 ms step is 9%, and 25 and 30 fps are 20% apart.
const FIRST_SNAP_TOLERANCE: f64 = 0.12;

/// The rate assumed when the timestamps say nothing (fewer than two units,
/// or steps of zero).
pub const DEFAULT_RATE: (u32, u32) = (30, 1);

/// Rates cameras, capture cards and encoders produce, as fractions. An
/// estimate within [`SNAP_TOLERANCE`] of one of them is taken to be it.
const COMMON_RATES: [(u32, u32); 19] = [
    (1, 1),
    (2, 1),
    (5, 1),
    (10, 1),
    (12, 1),
    (15, 1),
    (20, 1),
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (90, 1),
    (100, 1),
    (120, 1),
];

/// Relative distance within which an estimate snaps to a common rate.
const SNAP_TOLERANCE: f64 = 0.04;

/// The frame rate of a stream whose first access units carried `stamps`
/// (in order of arrival, on a `clock_rate` Hz RTP clock), as a fraction.
pub fn estimate(stamps: &[u32], clock_rate: u32) -> (u32, u32) {
    let mut steps: Vec<u32> = stamps
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        // Backwards (reordered B-frames, a restart) or over a second: not a
        // frame interval.
        .filter(|&s| s > 0 && s <= clock_rate)
        .collect();
    if steps.is_empty() {
        return DEFAULT_RATE;
    }
    steps.sort_unstable();
    let median = f64::from(steps[steps.len() / 2]);
    // Steps within a quarter of the median are the same interval plus
    // jitter; a doubled step is a dropped frame and stays out.
    let near: Vec<f64> = steps
        .iter()
        .map(|&s| f64::from(s))
        .filter(|s| (s - median).abs() <= median / 4.0)
        .collect();
    let step = near.iter().sum::<f64>() / near.len() as f64;
    let fps = f64::from(clock_rate) / step;
    snap(fps, &steps, clock_rate)
}

/// The frame rate of a stream from its first interval alone: the step
/// between the first two access units' timestamps (`first`, `second`, on a
/// `clock_rate` Hz RTP clock), snapped to the nearest common rate within
/// 12% (a 1001-denominator rate only on its exact step), else rounded;
/// [`DEFAULT_RATE`] when the step is zero, backwards or over a second.
pub fn estimate_first(first: u32, second: u32, clock_rate: u32) -> (u32, u32) {
    let step = second.wrapping_sub(first);
    if step == 0 || step > clock_rate {
        return DEFAULT_RATE;
    }
    let fps = f64::from(clock_rate) / f64::from(step);
    let mut best: Option<((u32, u32), f64)> = None;
    for (num, den) in COMMON_RATES {
        let rate = f64::from(num) / f64::from(den);
        let distance = (fps - rate).abs() / rate;
        let exact = f64::from(clock_rate) * f64::from(den) / f64::from(num);
        if distance > FIRST_SNAP_TOLERANCE || (den == 1001 && (f64::from(step) - exact).abs() > 1.0)
        {
            continue;
        }
        if best.is_none_or(|(_, d)| distance < d) {
            best = Some(((num, den), distance));
        }
    }
    match best {
        Some((rate, _)) => rate,
        None => ((fps.round() as u32).max(1), 1),
    }
}

/// The common rate nearest `fps` when there is one close enough; otherwise
/// `fps` rounded to a whole number. A 1001-denominator rate needs every step
/// to be its exact step, since jittery 30 fps stamps average near 29.97 too.
fn snap(fps: f64, steps: &[u32], clock_rate: u32) -> (u32, u32) {
    let mut best: Option<((u32, u32), f64)> = None;
    for (num, den) in COMMON_RATES {
        let rate = f64::from(num) / f64::from(den);
        let distance = (fps - rate).abs() / rate;
        if distance > SNAP_TOLERANCE {
            continue;
        }
        if den == 1001 {
            let exact = f64::from(clock_rate) * f64::from(den) / f64::from(num);
            if steps.iter().any(|&s| (f64::from(s) - exact).abs() > 1.0) {
                continue;
            }
        }
        if best.is_none_or(|(_, d)| distance < d) {
            best = Some(((num, den), distance));
        }
    }
    match best {
        Some((rate, _)) => rate,
        None => ((fps.round() as u32).max(1), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: u32 = 90_000;

    /// Stamps of a `step`-tick stream with each instant moved by `jitter`.
    fn stamps(step: u32, jitter: &[i32]) -> Vec<u32> {
        jitter
            .iter()
            .enumerate()
            .map(|(i, j)| (i as u32 * step).wrapping_add_signed(*j))
            .collect()
    }

    #[test]
    fn exact_steps_give_their_rate() {
        for (step, rate) in [
            (3000, (30, 1)),
            (3600, (25, 1)),
            (1500, (60, 1)),
            (6000, (15, 1)),
            (3003, (30000, 1001)),
            (3753, (24000, 1001)),
        ] {
            assert_eq!(estimate(&stamps(step, &[0; 10]), VIDEO), rate, "{step}");
        }
    }

    #[test]
    fn capture_jitter_under_load_still_reads_30() {
        // CI once read 29 fps from five such stamps (median step 3103).
        let jitter = [0, -100, 110, 400, -300, 250, 0, -450, 200, 90];
        assert_eq!(estimate(&stamps(3000, &jitter), VIDEO), (30, 1));
        // Jitter whose steps average 3003 ticks (29.97 fps) is not NTSC.
        let jitter = [0, -10, 16, 9, 12, 20, 18, 21, 24, 27];
        assert_eq!(estimate(&stamps(3000, &jitter), VIDEO), (30, 1));
    }

    #[test]
    fn dropped_frames_do_not_halve_the_rate() {
        let s = [
            0, 3000, 9000, 12000, 15000, 21000, 24000, 27000, 30000, 33000,
        ];
        assert_eq!(estimate(&s, VIDEO), (30, 1));
    }

    #[test]
    fn odd_rates_round_and_wrapping_timestamps_work() {
        // 7 fps is nobody's standard: rounded, not snapped to 5 or 10.
        assert_eq!(estimate(&stamps(12857, &[0; 6]), VIDEO), (7, 1));
        let s: Vec<u32> = (0..10u32)
            .map(|i| (u32::MAX - 4000).wrapping_add(i * 3000))
            .collect();
        assert_eq!(estimate(&s, VIDEO), (30, 1));
    }

    #[test]
    fn the_first_interval_alone_snaps_through_jitter() {
        assert_eq!(estimate_first(0, 3000, VIDEO), (30, 1));
        // 3 ms of capture jitter either way is still 30 fps, not 27 or 33.
        assert_eq!(estimate_first(0, 3270, VIDEO), (30, 1));
        assert_eq!(estimate_first(1000, 3730, VIDEO), (30, 1));
        assert_eq!(estimate_first(0, 3600, VIDEO), (25, 1));
        assert_eq!(estimate_first(0, 3003, VIDEO), (30000, 1001));
        assert_eq!(estimate_first(0, 1500, VIDEO), (60, 1));
        assert_eq!(estimate_first(u32::MAX - 1000, 2000, VIDEO), (30, 1));
        // 7 fps is nobody's standard; nothing to go on is the default.
        assert_eq!(estimate_first(0, 12857, VIDEO), (7, 1));
        assert_eq!(estimate_first(5, 5, VIDEO), DEFAULT_RATE);
        assert_eq!(estimate_first(3000, 0, VIDEO), DEFAULT_RATE);
    }

    #[test]
    fn too_little_to_go_on_is_the_default() {
        assert_eq!(estimate(&[], VIDEO), DEFAULT_RATE);
        assert_eq!(estimate(&[1000], VIDEO), DEFAULT_RATE);
        assert_eq!(estimate(&[1000, 1000, 1000], VIDEO), DEFAULT_RATE);
        assert_eq!(estimate(&[0, 6000], VIDEO), (15, 1));
    }
}
