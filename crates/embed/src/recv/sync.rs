//! What the two decode stages share with each other and with the stats
//! line: the lip-sync state and the timecode latencies.

use std::sync::Mutex;
use std::time::Duration;

use pstream_rtp::lipsync::{LipSync, LipSyncConfig, Stream};

use crate::stats::Percentiles;

/// Most latency samples kept for the whole-run percentiles: an hour at
/// 60 fps is 216k samples, about 1.7 MB.
const MAX_LATENCY_SAMPLES: usize = 1 << 18;

/// Lip sync shared by the two decode stages: both observe, each reads the
/// hold it applies, the stats line reads the offset.
#[derive(Debug)]
pub(crate) struct AvSync {
    /// Whether holds are applied (`--sync`); the offset is measured anyway.
    enabled: bool,
    state: Mutex<LipSync>,
}

impl AvSync {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: Mutex::new(LipSync::new(LipSyncConfig::default())),
        }
    }

    /// Whether holds are applied.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records a presentation delay; returns the hold `stream` applies now
    /// (zero when sync is off).
    pub(crate) fn observe(&self, stream: Stream, delay_us: i64) -> Duration {
        match self.state.lock() {
            Ok(mut s) => {
                let hold = s.observe(stream, delay_us);
                if self.enabled {
                    hold
                } else {
                    Duration::ZERO
                }
            }
            Err(_) => Duration::ZERO,
        }
    }

    /// Video's presentation delay minus audio's in microseconds (holds
    /// included when sync is on); `None` until both streams have SR mappings.
    pub(crate) fn offset_us(&self) -> Option<i64> {
        let s = self.state.lock().ok()?;
        if self.enabled {
            s.offset_us()
        } else {
            s.path_difference_us()
        }
    }

    /// `A/V +x ms` (video presented later than its audio is heard, holds
    /// included) and the hold that got it there; `None` until both streams
    /// have SR mappings.
    pub(crate) fn summary(&self) -> Option<String> {
        let s = self.state.lock().ok()?;
        if !self.enabled {
            let offset = s.path_difference_us()?;
            return Some(format!("A/V {:+.1} ms sync off", offset as f64 / 1000.0));
        }
        let offset = s.offset_us()?;
        let hold = match (s.video_hold(), s.audio_hold()) {
            (v, _) if !v.is_zero() => format!(" video held {} ms", v.as_millis()),
            (_, a) if !a.is_zero() => format!(" audio held {} ms", a.as_millis()),
            _ => String::new(),
        };
        Some(format!("A/V {:+.1} ms{hold}", offset as f64 / 1000.0))
    }
}

/// Capture-to-decoded latencies read off the timecode, in microseconds:
/// those since the last stats line, and (bounded) those of the whole run.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    window: Vec<u64>,
    all: Vec<u64>,
}

impl Latencies {
    pub(crate) fn push(&mut self, us: u64) {
        self.window.push(us);
        if self.all.len() < MAX_LATENCY_SAMPLES {
            self.all.push(us);
        }
    }

    /// Percentiles in milliseconds of the samples since the last call.
    pub(crate) fn take_window(&mut self) -> Option<Percentiles> {
        let mut window = std::mem::take(&mut self.window);
        Percentiles::of(&mut window, 1000.0)
    }

    /// Percentiles in milliseconds of every sample kept.
    pub(crate) fn whole_run(&self) -> Option<Percentiles> {
        Percentiles::of(&mut self.all.clone(), 1000.0)
    }

    /// Samples so far (whole run, as kept).
    pub(crate) fn count(&self) -> usize {
        self.all.len()
    }
}
