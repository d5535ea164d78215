//! Audio device clock drift: measure it, and compensate inaudibly.
//!
//! A sound card's crystal runs a little fast or slow against the system
//! clock the pipeline runs on (tens to a few hundred ppm). Left alone, a
//! capture device that is 100 ppm fast puts 360 ms more audio on the
//! sample-clock timeline per hour than video gets on the pipeline clock, and
//! a slow playback device fills its ring until it overruns.
//!
//! [`DriftEstimator`] measures the device's rate against the pipeline clock
//! (frames delivered or consumed over elapsed pipeline time, from a start
//! point taken after a warm-up) and reports ppm. [`DriftCompensator`] keeps a
//! caller-defined "excess" (how far the stream is ahead of where it should
//! be, in frames) at its starting value with a PI controller whose output is
//! a drop/repeat rate in ppm; single sample frames are dropped or repeated, at
//! most one per block, so a correction of 100 ppm at 48 kHz touches one frame
//! in 10 000 — far below anything audible. The integral term converges to the
//! device's drift, so at steady state the excess stays where it started.

use std::time::Duration;

/// Time the estimator ignores after opening (devices start in bursts).
const WARMUP: Duration = Duration::from_secs(2);
/// Time measured before a ppm figure is reported.
const MIN_SPAN: Duration = Duration::from_secs(10);
/// Proportional gain: ppm of correction per ms of excess.
const KP: f64 = 50.0;
/// Integral gain: ppm per ms of excess per second.
const KI: f64 = 0.5;
/// Largest correction rate (about one frame per 10 ms block at 48 kHz).
const MAX_PPM: f64 = 2000.0;
/// Time constant of the low-pass on the excess: a device period or an Opus
/// frame of jitter should not turn into a drop followed by a repeat.
const SMOOTHING: Duration = Duration::from_secs(2);
/// Observations averaged into the baseline the excess is held at.
const BASELINE_SAMPLES: u32 = 100;

/// Measures a device's sample clock against the pipeline clock.
#[derive(Debug, Clone)]
pub struct DriftEstimator {
    rate: f64,
    start: Option<(u64, Duration)>,
    ppm: Option<f64>,
}

impl DriftEstimator {
    /// An estimator for a device running at nominally `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            start: None,
            ppm: None,
        }
    }

    /// Records that the device had delivered (or consumed) `frames` in total
    /// when `elapsed` pipeline time had passed since it was opened.
    pub fn observe(&mut self, frames: u64, elapsed: Duration) {
        if elapsed < WARMUP {
            return;
        }
        let Some((f0, t0)) = self.start else {
            self.start = Some((frames, elapsed));
            return;
        };
        let span = elapsed.saturating_sub(t0);
        if span < MIN_SPAN {
            return;
        }
        // Cumulative from the start point: the device's period quantisation
        // (one burst of frames) weighs less the longer it runs.
        let measured = frames.saturating_sub(f0) as f64 / span.as_secs_f64();
        self.ppm = Some((measured / self.rate - 1.0) * 1e6);
    }

    /// The device's rate relative to nominal in ppm (positive: fast), once
    /// enough time has been measured.
    pub fn ppm(&self) -> Option<f64> {
        self.ppm
    }
}

/// What to do to the next block to keep the stream on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// Leave it as it is.
    None,
    /// Drop one sample frame (the stream is ahead).
    Drop,
    /// Repeat one sample frame (the stream is behind).
    Repeat,
}

/// Holds a stream's excess at its starting value by dropping or repeating
/// single sample frames, spread out.
#[derive(Debug, Clone)]
pub struct DriftCompensator {
    rate: f64,
    baseline_sum: f64,
    baseline_n: u32,
    integral_ppm: f64,
    smoothed_ms: Option<f64>,
    last: Option<Duration>,
    acc: f64,
    net_dropped: i64,
    adjustments: u64,
}

impl DriftCompensator {
    /// A compensator for a stream of `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            baseline_sum: 0.0,
            baseline_n: 0,
            integral_ppm: 0.0,
            smoothed_ms: None,
            last: None,
            acc: 0.0,
            net_dropped: 0,
            adjustments: 0,
        }
    }

    /// Decides the adjustment for the next block of `block_frames`, given the
    /// stream's `excess` in frames (positive: ahead) at pipeline time `now`.
    pub fn update(&mut self, excess: f64, now: Duration, block_frames: usize) -> Adjust {
        // The first observations only set the baseline: the excess jitters
        // by a device period, so one sample could be off by that much.
        if self.baseline_n < BASELINE_SAMPLES {
            self.baseline_sum += excess;
            self.baseline_n += 1;
            self.last = Some(now);
            return Adjust::None;
        }
        let baseline = self.baseline_sum / f64::from(self.baseline_n);
        let error_ms = (excess - baseline) / self.rate * 1000.0;
        let dt = self
            .last
            .map(|l| now.saturating_sub(l).as_secs_f64())
            .unwrap_or(0.0)
            .min(1.0);
        self.last = Some(now);
        let alpha = (dt / SMOOTHING.as_secs_f64()).min(1.0);
        let error_ms = match self.smoothed_ms {
            Some(s) => s + alpha * (error_ms - s),
            None => error_ms,
        };
        self.smoothed_ms = Some(error_ms);
        self.integral_ppm = (self.integral_ppm + KI * error_ms * dt).clamp(-MAX_PPM, MAX_PPM);
        let ppm = (KP * error_ms + self.integral_ppm).clamp(-MAX_PPM, MAX_PPM);
        self.acc += ppm * 1e-6 * block_frames as f64;
        if self.acc >= 1.0 {
            self.acc -= 1.0;
            self.net_dropped += 1;
            self.adjustments += 1;
            Adjust::Drop
        } else if self.acc <= -1.0 {
            self.acc += 1.0;
            self.net_dropped -= 1;
            self.adjustments += 1;
            Adjust::Repeat
        } else {
            Adjust::None
        }
    }

    /// Moves the fill the compensator holds by `frames` (positive: more),
    /// for a writer that changed how much it keeps queued on purpose.
    pub fn shift_baseline(&mut self, frames: f64) {
        if self.baseline_n < BASELINE_SAMPLES {
            // Still measuring: start again from the new fill.
            self.baseline_sum = 0.0;
            self.baseline_n = 0;
        } else {
            self.baseline_sum += frames * f64::from(self.baseline_n);
            // The jump is not drift: forget the smoothed error from before it.
            self.smoothed_ms = None;
        }
    }

    /// Frames dropped minus frames repeated so far.
    pub fn net_dropped(&self) -> i64 {
        self.net_dropped
    }

    /// Frames dropped or repeated so far.
    pub fn adjustments(&self) -> u64 {
        self.adjustments
    }
}

/// Applies `adjust` to interleaved `samples`: removes or duplicates the
/// middle sample frame (a single frame is inaudible; the middle keeps block
/// edges, where the next block continues, untouched).
pub fn apply(adjust: Adjust, samples: &mut Vec<f32>, channels: usize) {
    let channels = channels.max(1);
    let frames = samples.len() / channels;
    if frames < 2 {
        return;
    }
    let at = frames / 2 * channels;
    match adjust {
        Adjust::None => {}
        Adjust::Drop => {
            samples.drain(at..at + channels);
        }
        Adjust::Repeat => {
            let frame: Vec<f32> = samples[at..at + channels].to_vec();
            samples.splice(at..at, frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const PERIOD: u64 = 480;
    const HOUR: f64 = 3600.0;

    /// A capture device `ppm` fast delivers PERIOD frames every 10 ms of its
    /// own clock; a reader emits 480-frame blocks as they become available,
    /// compensated. Returns the largest timeline offset after the start (ms)
    /// and the estimated ppm.
    fn simulate_capture(ppm: f64) -> (f64, f64) {
        let device_period = PERIOD as f64 / f64::from(RATE) / (1.0 + ppm * 1e-6);
        let mut comp = DriftCompensator::new(RATE);
        let mut est = DriftEstimator::new(RATE);
        let (mut delivered, mut available, mut emitted) = (0u64, 0i64, 0u64);
        let mut first_offset = None;
        let mut worst: f64 = 0.0;
        let mut k = 0u64;
        loop {
            k += 1;
            let t = k as f64 * device_period;
            if t > HOUR {
                break;
            }
            delivered += PERIOD;
            available += PERIOD as i64;
            let now = Duration::from_secs_f64(t);
            est.observe(delivered, now);
            // The reader decides once a block plus one spare frame is in,
            // so a Drop can always be served.
            while available > 480 {
                let excess = delivered as f64 - comp.net_dropped() as f64 - f64::from(RATE) * t;
                let need = match comp.update(excess, now, 480) {
                    Adjust::None => 480,
                    Adjust::Drop => 481,
                    Adjust::Repeat => 479,
                };
                available -= need;
                emitted += 480;
                // Timeline offset: media time of what was emitted against
                // the pipeline time it was emitted at.
                let offset_ms = (emitted as f64 / f64::from(RATE) - t) * 1000.0;
                let first = *first_offset.get_or_insert(offset_ms);
                if t > 5.0 {
                    worst = worst.max((offset_ms - first).abs());
                }
            }
        }
        (worst, est.ppm().unwrap_or(f64::NAN))
    }

    #[test]
    fn a_fast_capture_clock_stays_within_20_ms_over_an_hour() {
        let (worst, ppm) = simulate_capture(100.0);
        eprintln!("+100 ppm: worst offset {worst:.2} ms, estimated {ppm:.2} ppm");
        assert!(worst < 20.0, "offset reached {worst:.1} ms");
        assert!((ppm - 100.0).abs() < 2.0, "estimated {ppm:.1} ppm");
    }

    #[test]
    fn a_slow_capture_clock_stays_within_20_ms_over_an_hour() {
        let (worst, ppm) = simulate_capture(-100.0);
        eprintln!("-100 ppm: worst offset {worst:.2} ms, estimated {ppm:.2} ppm");
        assert!(worst < 20.0, "offset reached {worst:.1} ms");
        assert!((ppm + 100.0).abs() < 2.0, "estimated {ppm:.1} ppm");
    }

    #[test]
    fn without_compensation_the_offset_would_be_360_ms() {
        // The yardstick for the tests above: 100 ppm over an hour.
        let drift_ms = 100e-6 * HOUR * 1000.0;
        assert!((drift_ms - 360.0).abs() < 1e-9);
    }

    /// A playback device `ppm` off consumes PERIOD frames per 10 ms of its
    /// clock; a decoder writes 960 compensated frames every 20 ms of
    /// pipeline time. Returns the largest change of the ring fill (ms).
    fn simulate_playback(ppm: f64) -> f64 {
        let device_period = PERIOD as f64 / f64::from(RATE) / (1.0 + ppm * 1e-6);
        let mut comp = DriftCompensator::new(RATE);
        let mut fill: i64 = 9600; // 200 ms primed
        let mut next_device = device_period;
        let mut first = None;
        let mut worst: f64 = 0.0;
        let mut k = 0u64;
        loop {
            k += 1;
            let t = k as f64 * 0.02;
            if t > HOUR {
                break;
            }
            while next_device <= t {
                fill -= PERIOD as i64;
                next_device += device_period;
            }
            let now = Duration::from_secs_f64(t);
            let mut block = vec![0.0f32; 960];
            apply(comp.update(fill as f64, now, 960), &mut block, 1);
            fill += block.len() as i64;
            let ms = fill as f64 / f64::from(RATE) * 1000.0;
            let f = *first.get_or_insert(ms);
            if t > 5.0 {
                worst = worst.max((ms - f).abs());
            }
        }
        worst
    }

    #[test]
    fn playback_fill_holds_against_fast_and_slow_devices() {
        for ppm in [100.0, -100.0] {
            let worst = simulate_playback(ppm);
            eprintln!("playback {ppm} ppm: fill moved at most {worst:.2} ms");
            assert!(worst < 20.0, "{ppm} ppm: fill moved {worst:.1} ms");
        }
    }

    #[test]
    fn apply_drops_and_repeats_the_middle_frame() {
        let mut s = vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5];
        apply(Adjust::Drop, &mut s, 2);
        assert_eq!(s, vec![1.0, 1.5, 2.0, 2.5, 4.0, 4.5]);
        apply(Adjust::Repeat, &mut s, 2);
        assert_eq!(s, vec![1.0, 1.5, 2.0, 2.5, 2.0, 2.5, 4.0, 4.5]);
        let mut one = vec![1.0];
        apply(Adjust::Drop, &mut one, 1);
        assert_eq!(one, vec![1.0]);
    }

    #[test]
    fn estimator_waits_before_reporting() {
        let mut e = DriftEstimator::new(RATE);
        e.observe(0, Duration::from_secs(1));
        e.observe(96_000, Duration::from_secs(2));
        e.observe(96_000 + 480_048, Duration::from_secs(12));
        let ppm = e.ppm().expect("10 s measured");
        assert!((ppm - 100.0).abs() < 0.01, "{ppm}");
    }
}
