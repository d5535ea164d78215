//! Stats lines: one builder for every pipeline's line, so that they read
//! alike and the tests that parse them (`stat(line, "video", "frames")`)
//! keep working: sections joined by ` | `, each a name followed by its
//! figures as `label value` words.
//!
//! ```
//! use pstream_embed::stats::StatsLine;
//! let mut line = StatsLine::new();
//! line.section("video")
//!     .rate(29.94, 1, "fps")
//!     .count("frames", 240)
//!     .figure("jitter", 0.21, 1, "ms")
//!     .count_nonzero("restarts", 0);
//! line.section("dest-1").word("live");
//! assert_eq!(line.to_string(), "video 29.9 fps frames 240 jitter 0.2 ms | dest-1 live");
//! ```

use std::fmt;

/// Formats a byte count over an interval as kbit/s.
pub fn kbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / 1000.0 / secs
    }
}

/// Events per second: `count` over `secs` (0 for an empty interval).
pub fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// The value at percentile `p` (0..=100) of `sorted` (ascending), linearly
/// interpolated between the two nearest ranks (numpy's default); `None`
/// for no data. The one percentile every figure of pstream uses (recv's
/// latency line, `pstream bench`), so the same samples give the same
/// figures everywhere and can be checked with numpy.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (p.clamp(0.0, 100.0) / 100.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi.min(last)] - sorted[lo]) * frac)
}

/// The median, 95th and 99th percentiles and the maximum of a set of
/// samples, in the samples' unit ([`percentile`]'s interpolation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// The 50th percentile.
    pub median: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted in place), each divided by
    /// `scale` (1000 turns microseconds into milliseconds); `None` without
    /// samples.
    pub fn of(samples: &mut [u64], scale: f64) -> Option<Self> {
        samples.sort_unstable();
        let scaled: Vec<f64> = samples.iter().map(|s| *s as f64 / scale).collect();
        Self::of_sorted(&scaled)
    }

    /// The percentiles of `sorted` (ascending); `None` when empty.
    pub fn of_sorted(sorted: &[f64]) -> Option<Self> {
        Some(Self {
            median: percentile(sorted, 50.0)?,
            p95: percentile(sorted, 95.0)?,
            p99: percentile(sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// A stats line under construction: [`StatsLine::section`] starts a part,
/// the other methods append words to the current one; `to_string()` joins
/// the parts with ` | `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsLine {
    parts: Vec<String>,
}

impl StatsLine {
    /// An empty line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new part named `name` (`video`, a destination, `latency`).
    pub fn section(&mut self, name: impl fmt::Display) -> &mut Self {
        self.parts.push(name.to_string());
        self
    }

    /// Adds a part made elsewhere as it is (a device's own summary).
    pub fn part(&mut self, text: impl Into<String>) -> &mut Self {
        self.parts.push(text.into());
        self
    }

    /// Appends words to the current part as they are (a state such as
    /// `live` or `retrying in 3 s`, a device's summary).
    pub fn word(&mut self, text: impl fmt::Display) -> &mut Self {
        use fmt::Write;
        let part = self.current();
        if !part.is_empty() {
            part.push(' ');
        }
        let _ = write!(part, "{text}");
        self
    }

    /// `label N`: a count.
    pub fn count(&mut self, label: &str, n: u64) -> &mut Self {
        self.word(format_args!("{label} {n}"))
    }

    /// `label N` only when N is not zero: rare events (restarts, bad packets).
    pub fn count_nonzero(&mut self, label: &str, n: u64) -> &mut Self {
        if n > 0 {
            self.count(label, n);
        }
        self
    }

    /// `VALUE UNIT` with `decimals` digits: a rate (`29.9 fps`, `2400 kbit/s`).
    pub fn rate(&mut self, value: f64, decimals: usize, unit: &str) -> &mut Self {
        self.word(format_args!("{value:.decimals$} {unit}"))
    }

    /// `label VALUE UNIT` with `decimals` digits (`jitter 0.2 ms`).
    pub fn figure(&mut self, label: &str, value: f64, decimals: usize, unit: &str) -> &mut Self {
        self.word(format_args!("{label} {value:.decimals$} {unit}"))
    }

    /// `label VALUE%` with `decimals` digits (`loss 0.5%`).
    pub fn percent(&mut self, label: &str, value: f64, decimals: usize) -> &mut Self {
        self.word(format_args!("{label} {value:.decimals$}%"))
    }

    /// `median A p95 B p99 C max D UNIT` with `decimals` digits.
    pub fn percentiles(&mut self, p: &Percentiles, decimals: usize, unit: &str) -> &mut Self {
        self.word(format_args!(
            "median {:.decimals$} p95 {:.decimals$} p99 {:.decimals$} max {:.decimals$} {unit}",
            p.median, p.p95, p.p99, p.max
        ))
    }

    /// True when nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn current(&mut self) -> &mut String {
        if self.parts.is_empty() {
            self.parts.push(String::new());
        }
        let last = self.parts.len() - 1;
        &mut self.parts[last]
    }
}

impl fmt::Display for StatsLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbps_is_kilobits_per_second() {
        assert_eq!(kbps(125_000, 1.0), 1000.0);
        assert_eq!(kbps(1, 0.0), 0.0);
        assert_eq!(per_second(30, 2.0), 15.0);
        assert_eq!(per_second(30, 0.0), 0.0);
    }

    #[test]
    fn percentiles_of_samples() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        v.reverse();
        let p = Percentiles::of(&mut v, 1000.0).expect("samples");
        // Interpolated between ranks, as numpy.percentile does by default.
        assert_eq!(p.median, 50.5);
        assert!((p.p95 - 95.05).abs() < 1e-9, "{p:?}");
        assert!((p.p99 - 99.01).abs() < 1e-9, "{p:?}");
        assert_eq!(p.max, 100.0);
        assert!(Percentiles::of(&mut [], 1.0).is_none());
        let one = Percentiles::of(&mut [7000], 1000.0).expect("one sample");
        assert_eq!((one.median, one.p99, one.max), (7.0, 7.0, 7.0));
    }

    /// Every kind of part the pipelines' lines use, in one line.
    #[test]
    fn parts_and_figures_join_as_the_lines_always_did() {
        let mut l = StatsLine::new();
        assert!(l.is_empty());
        l.section("video")
            .rate(29.96, 1, "fps")
            .rate(2400.4, 0, "kbit/s")
            .count("frames", 240)
            .percent("loss", 1.26, 1)
            .figure("age-max", 12.6, 0, "ms")
            .count_nonzero("kf-req", 0)
            .count_nonzero("bad-rtcp", 2);
        l.section("rtmp://h/live/****")
            .word("retrying in 3 s")
            .count("reconnects", 1);
        l.part("cam frames 3");
        l.section("streams").word(2);
        let p = Percentiles {
            median: 6.14,
            p95: 8.0,
            p99: 9.5,
            max: 12.0,
        };
        l.section("latency").percentiles(&p, 1, "ms");
        assert_eq!(
            l.to_string(),
            "video 30.0 fps 2400 kbit/s frames 240 loss 1.3% age-max 13 ms bad-rtcp 2 \
             | rtmp://h/live/**** retrying in 3 s reconnects 1 | cam frames 3 | streams 2 \
             | latency median 6.1 p95 8.0 p99 9.5 max 12.0 ms"
        );
        // Words before any section start the first part.
        let mut bare = StatsLine::new();
        bare.word("A/V +1.0 ms");
        assert_eq!(bare.to_string(), "A/V +1.0 ms");
    }
}
