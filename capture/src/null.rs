//! Sinks that discard what they are given, counting it.

use pstream_core::{AudioBlock, AudioSink, MediaError, VideoFrame, VideoSink};

/// A video sink that drops every frame (for benchmarks and dry runs).
#[derive(Debug, Default)]
pub struct NullVideoSink {
    frames: u64,
}

impl NullVideoSink {
    /// A new sink that has seen no frames.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many frames were written.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

impl VideoSink for NullVideoSink {
    fn write_frame(&mut self, _frame: &VideoFrame) -> Result<(), MediaError> {
        self.frames += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
}

/// An audio sink that drops every block (for benchmarks and dry runs).
#[derive(Debug, Default)]
pub struct NullAudioSink {
    blocks: u64,
}

impl NullAudioSink {
    /// A new sink that has seen no blocks.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many blocks were written.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }
}

impl AudioSink for NullAudioSink {
    fn write_block(&mut self, _block: &AudioBlock) -> Result<(), MediaError> {
        self.blocks += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;

    #[test]
    fn counts_what_it_drops() {
        let mut v = NullVideoSink::new();
        let f = VideoFrame::new(
            2,
            2,
            Bytes::from(vec![0; 6]),
            Instant::now(),
            Duration::ZERO,
        )
        .expect("valid");
        v.write_frame(&f).expect("ok");
        v.finish().expect("ok");
        assert_eq!(v.frames(), 1);
        let mut a = NullAudioSink::new();
        let b = AudioBlock {
            sample_rate: 48_000,
            channels: 1,
            samples: vec![0.0; 480],
            capture: Instant::now(),
            pts: Duration::ZERO,
        };
        a.write_block(&b).expect("ok");
        a.write_block(&b).expect("ok");
        assert_eq!(a.blocks(), 2);
    }
}
