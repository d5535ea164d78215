//! Live counters a device source or sink shares with the stats line: what
//! [`AudioSource::device_counters`](crate::AudioSource::device_counters),
//! [`AudioSink::playback_counters`](crate::AudioSink::playback_counters) and
//! [`VideoSource::camera_counters`](crate::VideoSource::camera_counters)
//! return. Devices count with relaxed atomics from their own threads;
//! synthetic and file sources have none.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters an audio device stream shares with the stats line.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Callbacks that found fewer samples than the device wanted (playback),
    /// or reads that found the device had not delivered (capture).
    pub underruns: AtomicU64,
    /// Samples dropped because the ring was full.
    pub overrun_samples: AtomicU64,
    /// Samples handed to (playback) or taken from (capture) the device.
    pub played_samples: AtomicU64,
    /// The device clock's measured drift in thousandths of a ppm
    /// (positive: fast); `i64::MIN` until measured.
    pub drift_milli_ppm: AtomicI64,
    /// Sample frames dropped or repeated to compensate the drift.
    pub drift_adjusted: AtomicU64,
    /// Times the callback was held back because the device ran ahead of
    /// real time (a device that does not pace its callback).
    pub paced: AtomicU64,
    /// How long the device takes to play what its callback just wrote, in
    /// microseconds, as the backend reports it (0: not reported).
    pub device_latency_us: AtomicU64,
}

impl DeviceCounters {
    /// Fresh counters with no drift measured yet.
    pub fn new() -> Self {
        Self {
            drift_milli_ppm: AtomicI64::new(i64::MIN),
            ..Self::default()
        }
    }

    /// The measured drift in ppm, once there is one.
    pub fn drift_ppm(&self) -> Option<f64> {
        match self.drift_milli_ppm.load(Ordering::Relaxed) {
            i64::MIN => None,
            v => Some(v as f64 / 1000.0),
        }
    }

    /// Records a drift measurement.
    pub fn set_drift_ppm(&self, ppm: f64) {
        self.drift_milli_ppm
            .store((ppm * 1000.0).round() as i64, Ordering::Relaxed);
    }

    /// A short stats fragment: seconds of audio through the device at
    /// `rate`/`channels`, xruns, and the drift.
    pub fn summary(&self, verb: &str, rate: u32, channels: u16) -> String {
        let secs = self.played_samples.load(Ordering::Relaxed) as f64
            / (f64::from(rate.max(1)) * f64::from(channels.max(1)));
        let mut s = format!(
            "{verb} {secs:.1} s underruns {} overruns {}",
            self.underruns.load(Ordering::Relaxed),
            self.overrun_samples.load(Ordering::Relaxed)
        );
        match self.drift_ppm() {
            Some(ppm) => s.push_str(&format!(
                " drift {ppm:+.0} ppm adj {}",
                self.drift_adjusted.load(Ordering::Relaxed)
            )),
            None => s.push_str(" drift -"),
        }
        let paced = self.paced.load(Ordering::Relaxed);
        if paced > 0 {
            s.push_str(&format!(" unpaced-device {paced}"));
        }
        s
    }
}

/// Live counters of one camera stream (V4L2 capture).
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames handed on.
    pub frames: AtomicU64,
    /// Frames the driver skipped (gaps in its sequence numbers).
    pub driver_drops: AtomicU64,
    /// Frames dropped as corrupt (error flag, short buffer, undecodable JPEG).
    pub corrupt: AtomicU64,
    /// Frames whose driver timestamp was unusable (stamped at dequeue instead).
    pub restamped: AtomicU64,
    /// Pictures repeated while the device delivered nothing.
    pub repeated: AtomicU64,
}

impl CameraCounters {
    /// The stats line's camera part: frames delivered, and what went wrong
    /// (driver drops, corrupt frames, repeats, restamped timestamps).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "cam frames {} drop {} corrupt {}",
            self.frames.load(Ordering::Relaxed),
            self.driver_drops.load(Ordering::Relaxed),
            self.corrupt.load(Ordering::Relaxed)
        );
        for (label, v) in [("repeat", &self.repeated), ("restamped", &self.restamped)] {
            let v = v.load(Ordering::Relaxed);
            if v > 0 {
                s.push_str(&format!(" {label} {v}"));
            }
        }
        s
    }
}
