//! A synthetic sine tone, paced in 10 ms blocks.

use std::f64::consts::TAU;

use pstream_core::{
    AudioBlock, AudioFormat, AudioSource, Behind, MediaError, Pacer, PipelineClock,
};

use crate::CaptureError;

/// The frequency `test` plays.
pub const DEFAULT_FREQ_HZ: f64 = 440.0;
/// Peak amplitude of the tone (full scale is 1.0).
pub const AMPLITUDE: f32 = 0.3;

/// A live source of a sine tone, the same on every channel.
///
/// Block `n` (10 ms) is due `n * 10 ms` after the first call to `next_block`.
/// A caller that falls behind gets the block due now; the ones in between are
/// skipped (counted by [`ToneSource::skipped`]) and the media time jumps, but
/// the waveform itself stays phase-continuous across every block delivered.
#[derive(Debug)]
pub struct ToneSource {
    format: AudioFormat,
    clock: PipelineClock,
    pacer: Pacer,
    /// Phase advance per sample, in radians.
    step: f64,
    /// Phase of the next sample, in radians, kept in `0..TAU`.
    phase: f64,
}

impl ToneSource {
    /// A sine of `freq_hz` (0 < f < rate / 2) in the given format, timed on `clock`.
    pub fn new(
        format: AudioFormat,
        freq_hz: f64,
        clock: PipelineClock,
    ) -> Result<Self, CaptureError> {
        format.validate("test")?;
        let nyquist = f64::from(format.sample_rate) / 2.0;
        if !(freq_hz > 0.0 && freq_hz < nyquist) {
            return Err(CaptureError::invalid_format(
                "test",
                format!("tone frequency {freq_hz} Hz must lie between 0 and {nyquist} Hz"),
            ));
        }
        Ok(Self {
            format,
            clock,
            pacer: Pacer::new(100, 1, Behind::Skip),
            step: TAU * freq_hz / f64::from(format.sample_rate),
            phase: 0.0,
        })
    }

    /// How many blocks were skipped because the caller fell behind.
    pub fn skipped(&self) -> u64 {
        self.pacer.skipped()
    }

    /// Fills `frames` sample frames, continuing the phase.
    fn synthesize(&mut self, frames: usize) -> Vec<f32> {
        let channels = usize::from(self.format.channels);
        let mut samples = Vec::with_capacity(frames * channels);
        for _ in 0..frames {
            let s = AMPLITUDE * self.phase.sin() as f32;
            samples.extend(std::iter::repeat_n(s, channels));
            self.phase += self.step;
            if self.phase >= TAU {
                self.phase -= TAU;
            }
        }
        samples
    }
}

impl AudioSource for ToneSource {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, MediaError> {
        let n = self.pacer.wait(&self.clock);
        let capture = self.clock.now();
        let samples = self.synthesize(self.format.block_frames(n));
        Ok(Some(AudioBlock {
            sample_rate: self.format.sample_rate,
            channels: self.format.channels,
            samples,
            capture,
            pts: self.pacer.pts(n),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stereo48() -> AudioFormat {
        AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        }
    }

    #[test]
    fn blocks_are_10ms_and_phase_continuous() {
        let mut src = ToneSource::new(stereo48(), 440.0, PipelineClock::start()).expect("valid");
        let mut all = Vec::new();
        for i in 0..4 {
            let b = src.next_block().expect("ok").expect("endless");
            assert_eq!(b.frames(), 480);
            assert_eq!(b.channels, 2);
            assert_eq!(b.duration(), Duration::from_millis(10));
            assert_eq!(b.pts, Duration::from_millis(10 * i));
            all.extend(b.samples.chunks(2).map(|c| {
                assert_eq!(c[0], c[1]);
                c[0]
            }));
        }
        // Compare with one continuous sine: no jump at block boundaries.
        for (k, &s) in all.iter().enumerate() {
            let want = AMPLITUDE * (TAU * 440.0 * k as f64 / 48_000.0).sin() as f32;
            assert!((s - want).abs() < 1e-4, "sample {k}: {s} vs {want}");
        }
        let peak = all.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - AMPLITUDE).abs() < 0.01, "{peak}");
    }

    #[test]
    fn pacing_holds_real_time() {
        let mut src = ToneSource::new(stereo48(), 440.0, PipelineClock::start()).expect("valid");
        let t = std::time::Instant::now();
        for _ in 0..6 {
            src.next_block().expect("ok");
        }
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn bad_frequencies_are_refused() {
        for f in [0.0, -5.0, 24_000.0, f64::NAN] {
            assert!(
                ToneSource::new(stereo48(), f, PipelineClock::start()).is_err(),
                "{f}"
            );
        }
    }
}
