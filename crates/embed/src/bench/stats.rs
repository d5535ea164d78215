//! The numbers behind a benchmark row: latency percentiles, PSNR of
//! pictures and of sound, and the CPU clocks.

use std::time::Duration;

use crate::stats::Percentiles;

/// PSNR reported for identical signals (a zero error has no finite PSNR;
/// JSON has no infinity).
pub const PSNR_CAP_DB: f64 = 100.0;

pub use crate::stats::percentile;

/// Median, tail and mean of per-frame latencies, in milliseconds: the
/// pipelines' [`Percentiles`] plus the mean.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    /// 50th percentile.
    pub median_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest frame.
    pub max_ms: f64,
    /// The mean: what sets throughput.
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Summarises `samples` (any order); all zero for none.
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let Some(p) = Percentiles::of_sorted(&ms) else {
            return Self::default();
        };
        Self {
            median_ms: p.median,
            p95_ms: p.p95,
            p99_ms: p.p99,
            max_ms: p.max,
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }
}

/// PSNR in dB of a mean squared error against a signal peak, capped at
/// [`PSNR_CAP_DB`] (identical signals).
pub fn psnr_db(mse: f64, peak: f64) -> f64 {
    if mse <= 0.0 {
        return PSNR_CAP_DB;
    }
    (10.0 * (peak * peak / mse).log10()).min(PSNR_CAP_DB)
}

/// Sum of squared differences of two 8-bit planes (over the shorter).
pub fn sse_u8(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = u64::from(x.abs_diff(*y));
            d * d
        })
        .sum()
}

/// Squared errors of pictures summed plane by plane, for one PSNR over a
/// whole run (the PSNR of the mean squared error, as ffmpeg's psnr filter
/// averages), plus the worst single picture's luma PSNR.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PictureError {
    /// Squared luma errors.
    pub sse_y: u64,
    /// Luma samples compared.
    pub n_y: u64,
    /// Squared chroma errors (both planes).
    pub sse_c: u64,
    /// Chroma samples compared.
    pub n_c: u64,
    /// Pictures compared.
    pub pictures: u64,
    /// The lowest luma PSNR of one picture.
    pub min_y_db: Option<f64>,
}

impl PictureError {
    /// Adds one picture pair: I420 planes of the input and of the decoded output.
    pub fn add(&mut self, input: [&[u8]; 3], output: [&[u8]; 3]) {
        let y = sse_u8(input[0], output[0]);
        let n_y = input[0].len().min(output[0].len()) as u64;
        let c = sse_u8(input[1], output[1]) + sse_u8(input[2], output[2]);
        let n_c =
            (input[1].len().min(output[1].len()) + input[2].len().min(output[2].len())) as u64;
        let frame_db = psnr_db(y as f64 / n_y.max(1) as f64, 255.0);
        self.min_y_db = Some(self.min_y_db.map_or(frame_db, |m| m.min(frame_db)));
        self.sse_y += y;
        self.n_y += n_y;
        self.sse_c += c;
        self.n_c += n_c;
        self.pictures += 1;
    }

    /// Luma PSNR over every picture added; `None` before the first.
    pub fn psnr_y(&self) -> Option<f64> {
        (self.n_y > 0).then(|| psnr_db(self.sse_y as f64 / self.n_y as f64, 255.0))
    }

    /// PSNR over all three planes (every sample weighs the same: 4:1:1 for I420).
    pub fn psnr_all(&self) -> Option<f64> {
        let n = self.n_y + self.n_c;
        (n > 0).then(|| psnr_db((self.sse_y + self.sse_c) as f64 / n as f64, 255.0))
    }
}

/// The delay of `output` against `input` (interleaved, `channels`), in
/// sample frames, searched within `-max_lag..=max_lag`: the lag that
/// minimises the squared error of the first channel over a window of
/// `window` frames. `output[j + lag]` then matches `input[j]`.
pub fn find_lag(
    input: &[f32],
    output: &[f32],
    channels: usize,
    max_lag: usize,
    window: usize,
) -> Option<isize> {
    let ch = channels.max(1);
    let a: Vec<f32> = input.iter().step_by(ch).copied().collect();
    let b: Vec<f32> = output.iter().step_by(ch).copied().collect();
    let max_lag = max_lag as isize;
    // Compare away from either end so every lag sees the same input frames.
    let start = max_lag as usize;
    let end = (start + window)
        .min(a.len())
        .min(b.len().saturating_sub(max_lag as usize));
    if end <= start {
        return None;
    }
    (-max_lag..=max_lag)
        .map(|lag| {
            let err: f64 = (start..end)
                .map(|j| {
                    let o = b[(j as isize + lag) as usize];
                    f64::from(o - a[j]).powi(2)
                })
                .sum();
            (lag, err)
        })
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(lag, _)| lag)
}

/// PSNR in dB (full scale 1.0) of `output` against `input` (interleaved,
/// the same channels and rate) after shifting by the lag [`find_lag`]
/// finds within `max_lag` frames; every overlapping sample counts but the
/// first `skip` frames of the output (a decoder's start-up: its first frame
/// has no previous one to overlap with). `None` when they do not overlap
/// enough to align.
pub fn audio_psnr(
    input: &[f32],
    output: &[f32],
    channels: usize,
    max_lag: usize,
    skip: usize,
) -> Option<f64> {
    let ch = channels.max(1);
    let lag = find_lag(input, output, ch, max_lag, 4800)?;
    let frames_in = input.len() / ch;
    let frames_out = output.len() / ch;
    let (mut sse, mut n) = (0.0f64, 0u64);
    for j in 0..frames_in {
        let k = j as isize + lag;
        if k < 0 {
            continue;
        }
        let k = k as usize;
        if k < skip {
            continue;
        }
        if k >= frames_out {
            break;
        }
        for c in 0..ch {
            sse += f64::from(output[k * ch + c] - input[j * ch + c]).powi(2);
            n += 1;
        }
    }
    (n > 0).then(|| psnr_db(sse / n as f64, 1.0))
}

/// CPU time a clock has counted: the calling thread's or the whole process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuClock {
    /// The calling thread only (CLOCK_THREAD_CPUTIME_ID).
    Thread,
    /// Every thread of the process (CLOCK_PROCESS_CPUTIME_ID): an encoder's
    /// own worker threads count.
    Process,
}

impl CpuClock {
    /// The CPU time so far; `None` where the system has no such clock.
    pub fn now(self) -> Option<Duration> {
        let id = match self {
            CpuClock::Thread => libc::CLOCK_THREAD_CPUTIME_ID,
            CpuClock::Process => libc::CLOCK_PROCESS_CPUTIME_ID,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the pointer,
        // which points at a live local for the whole call.
        let rc = unsafe { libc::clock_gettime(id, &raw mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u32::try_from(ts.tv_nsec).ok()?;
        Some(Duration::new(secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let data: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&data, 0.0), Some(1.0));
        assert_eq!(percentile(&data, 100.0), Some(100.0));
        assert_eq!(percentile(&data, 50.0), Some(50.5));
        assert!((percentile(&data, 95.0).unwrap_or(0.0) - 95.05).abs() < 1e-9);
        assert!((percentile(&data, 99.0).unwrap_or(0.0) - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.5));
    }

    #[test]
    fn latency_summary_in_any_order() {
        // 1..=100 ms shuffled, and one 500 ms outlier for the max.
        let mut samples: Vec<Duration> = (1..=100u64)
            .map(|i| Duration::from_millis((i * 37) % 100 + 1))
            .collect();
        samples.push(Duration::from_millis(500));
        let s = LatencySummary::of(&samples);
        assert_eq!(s.median_ms, 51.0);
        assert_eq!(s.max_ms, 500.0);
        assert!((s.p99_ms - 100.0).abs() < 1e-9, "{}", s.p99_ms);
        assert!((s.mean_ms - (5050.0 + 500.0) / 101.0).abs() < 1e-9);
        assert_eq!(LatencySummary::of(&[]), LatencySummary::default());
    }

    #[test]
    fn psnr_of_known_pictures() {
        let a: Vec<u8> = (0..64 * 64).map(|i| (i % 200 + 20) as u8).collect();
        let mut e = PictureError::default();
        e.add([&a, &a[..1024], &a[..1024]], [&a, &a[..1024], &a[..1024]]);
        assert_eq!(e.psnr_y(), Some(PSNR_CAP_DB));
        assert_eq!(e.psnr_all(), Some(PSNR_CAP_DB));
        // Every sample off by exactly 2: MSE 4, PSNR = 10 log10(255^2 / 4) = 42.11 dB.
        let b: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v + 2 } else { v - 2 })
            .collect();
        let mut e = PictureError::default();
        e.add([&a, &a[..1024], &a[..1024]], [&b, &b[..1024], &b[..1024]]);
        let want = 10.0 * (255.0f64 * 255.0 / 4.0).log10();
        assert!((e.psnr_y().unwrap_or(0.0) - want).abs() < 1e-9);
        assert!((e.psnr_all().unwrap_or(0.0) - want).abs() < 1e-9);
        assert!((want - 42.11).abs() < 0.01);
        // Noise of known power: a uniform error in -8..=8 has MSE (17^2 - 1) / 12 = 24.
        let noisy: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, v)| (i32::from(*v) + (i as i32 * 7919 % 17) - 8) as u8)
            .collect();
        let mse = sse_u8(&a, &noisy) as f64 / a.len() as f64;
        assert!((mse - 24.0).abs() < 0.5, "mse {mse}");
        assert!((psnr_db(mse, 255.0) - 34.31).abs() < 0.1);
        // The run's PSNR is that of the mean error, the minimum is per picture.
        e.add([&a, &a[..1024], &a[..1024]], [&a, &a[..1024], &a[..1024]]);
        assert!((e.psnr_y().unwrap_or(0.0) - 10.0 * (255.0f64 * 255.0 / 2.0).log10()).abs() < 1e-9);
        assert!((e.min_y_db.unwrap_or(0.0) - want).abs() < 1e-9);
        assert_eq!(PictureError::default().psnr_y(), None);
    }

    #[test]
    fn audio_is_aligned_before_comparing() {
        let tone: Vec<f32> = (0..20_000)
            .flat_map(|i| {
                let v = ((i as f32) * 0.031).sin() * 0.5 + ((i as f32) * 0.0071).sin() * 0.2;
                [v, -v]
            })
            .collect();
        // Delayed by 312 frames, as Opus's look-ahead delays.
        let mut late = vec![0.0f32; 312 * 2];
        late.extend_from_slice(&tone);
        assert_eq!(find_lag(&tone, &late, 2, 1000, 4800), Some(312));
        assert_eq!(audio_psnr(&tone, &late, 2, 1000, 0), Some(PSNR_CAP_DB));
        // Early by 100 frames (a stream that starts after the first samples).
        assert_eq!(find_lag(&tone, &tone[200..], 2, 1000, 4800), Some(-100));
        // Error of known power: 0.01 everywhere is MSE 1e-4, 40 dB.
        let off: Vec<f32> = late.iter().map(|s| s + 0.01).collect();
        let p = audio_psnr(&tone, &off, 2, 1000, 0).unwrap_or(0.0);
        assert!((p - 40.0).abs() < 0.01, "{p}");
        assert_eq!(audio_psnr(&tone[..10], &late[..10], 2, 1000, 0), None);
        // A start-up glitch in the first frames of the output counts unless skipped.
        let mut glitch = late.clone();
        glitch[312 * 2..400 * 2].fill(0.9);
        assert!(audio_psnr(&tone, &glitch, 2, 1000, 0).unwrap_or(100.0) < 40.0);
        assert_eq!(audio_psnr(&tone, &glitch, 2, 1000, 400), Some(PSNR_CAP_DB));
    }

    #[test]
    fn cpu_clocks_advance_with_work() {
        let t0 = CpuClock::Thread.now().expect("thread clock");
        let p0 = CpuClock::Process.now().expect("process clock");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let t1 = CpuClock::Thread.now().expect("thread clock");
        let p1 = CpuClock::Process.now().expect("process clock");
        assert!(t1 > t0 && p1 > p0);
        assert!(p1 - p0 >= (t1 - t0) / 2);
    }
}
