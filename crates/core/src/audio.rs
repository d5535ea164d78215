//! Raw audio: a block of interleaved samples.

use std::time::{Duration, Instant};

/// A block of interleaved f32 samples in the range -1.0..=1.0.
///
/// f32 is what audio devices (cpal, PipeWire) and libopus's float API speak,
/// so a block moves from device ring to encoder without conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u16,
    /// Interleaved samples: `frames() * channels` values.
    pub samples: Vec<f32>,
    /// When the first sample was captured, on the pipeline clock.
    pub capture: Instant,
    /// Media time of the first sample since the start of the stream.
    pub pts: Duration,
}

impl AudioBlock {
    /// Number of sample frames (samples per channel) in the block.
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / self.channels as usize
        }
    }

    /// How long the block plays for.
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.frames() as u64 * 1_000_000_000 / self.sample_rate as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_follows_rate_and_channels() {
        let b = AudioBlock {
            sample_rate: 48_000,
            channels: 2,
            samples: vec![0.0; 960 * 2],
            capture: Instant::now(),
            pts: Duration::ZERO,
        };
        assert_eq!(b.frames(), 960);
        assert_eq!(b.duration(), Duration::from_millis(20));
    }
}
