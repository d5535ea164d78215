//! The source traits: where raw video frames, encoded pictures and audio
//! blocks come from (devices, generators, files), and the formats they
//! deliver.

use std::sync::Arc;

use crate::counters::{CameraCounters, DeviceCounters};
use crate::{AudioBlock, EncodedUnit, MediaError, VideoFrame};

/// Largest width or height a source or sink accepts, to refuse absurd allocations.
pub const MAX_DIMENSION: u32 = 16_384;

/// The size and frame rate of a raw video stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoFormat {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frame rate numerator (frames per `fps_den` seconds).
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
}

impl VideoFormat {
    /// Frames per second as a float (a zero denominator counts as 1).
    pub fn fps(&self) -> f32 {
        self.fps_num as f32 / self.fps_den.max(1) as f32
    }

    /// Checks the format is one a source can produce; `name` is used in the error.
    pub fn validate(&self, name: &str) -> Result<(), MediaError> {
        if self.width == 0 || self.height == 0 {
            return Err(MediaError::invalid_format(
                name,
                format!("picture size {}x{} is empty", self.width, self.height),
            ));
        }
        if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            return Err(MediaError::invalid_format(
                name,
                format!(
                    "picture size {}x{} exceeds the limit of {MAX_DIMENSION} per side",
                    self.width, self.height
                ),
            ));
        }
        if self.fps_num == 0 || self.fps_den == 0 {
            return Err(MediaError::invalid_format(
                name,
                format!(
                    "frame rate {}/{} must have a non-zero numerator and denominator",
                    self.fps_num, self.fps_den
                ),
            ));
        }
        Ok(())
    }
}

/// A producer of raw I420 pictures, paced in real time.
pub trait VideoSource: Send {
    /// The size and frame rate of the frames this source produces.
    fn format(&self) -> VideoFormat;

    /// Blocks until the next frame is due (paced), stamps capture = clock now,
    /// and returns `Ok(None)` at end of stream.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError>;

    /// A camera's live counters (driver drops, corrupt and repeated
    /// frames); synthetic and file sources have none.
    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        None
    }
}

/// A producer of already encoded pictures (an MJPEG camera): the sender
/// passes them on without re-encoding, and a pipeline that needs raw frames
/// puts a decoder behind it.
pub trait EncodedVideoSource: Send {
    /// The size and frame rate of the pictures.
    fn format(&self) -> VideoFormat;

    /// Blocks until the next unit (capture time and pts set, keyframe for
    /// JPEG); `Ok(None)` at end of stream.
    fn next_unit(&mut self) -> Result<Option<EncodedUnit>, MediaError>;

    /// The camera's live counters, as for [`VideoSource::camera_counters`].
    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        None
    }

    /// Asks the source for a key frame soon (a peer's PLI); `false` when it
    /// cannot be asked (the caller counts those).
    fn request_keyframe(&mut self) -> bool {
        false
    }
}

/// The sample rate and channel count of a raw audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u16,
}

/// Lowest sample rate a source produces: every 10 ms block holds at least one sample.
pub const MIN_SAMPLE_RATE: u32 = 100;

/// Highest sample rate a source or sink accepts.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Highest channel count a source or sink accepts.
pub const MAX_CHANNELS: u16 = 8;

impl AudioFormat {
    /// Checks the format is one a source can produce; `name` is used in the error.
    pub fn validate(&self, name: &str) -> Result<(), MediaError> {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(MediaError::invalid_format(
                name,
                format!(
                    "sample rate {} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz",
                    self.sample_rate
                ),
            ));
        }
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return Err(MediaError::invalid_format(
                name,
                format!("{} channels is outside 1..={MAX_CHANNELS}", self.channels),
            ));
        }
        Ok(())
    }

    /// Sample frames in 10 ms block number `n` (blocks alternate in length when
    /// the rate is not a multiple of 100 Hz, so that none drifts).
    pub fn block_frames(&self, n: u64) -> usize {
        let rate = u64::from(self.sample_rate);
        let start = n.saturating_mul(rate) / 100;
        let end = n.saturating_add(1).saturating_mul(rate) / 100;
        (end - start) as usize
    }
}

/// A producer of raw audio in 10 ms blocks of interleaved f32, paced in real time.
pub trait AudioSource: Send {
    /// The sample rate and channel count of the blocks this source produces.
    fn format(&self) -> AudioFormat;

    /// Blocks until the next 10 ms block is due (paced), stamps capture =
    /// clock now, and returns `Ok(None)` at end of stream.
    fn next_block(&mut self) -> Result<Option<AudioBlock>, MediaError>;

    /// A device source's live counters (overruns, samples captured, drift);
    /// synthetic and file sources have none.
    fn device_counters(&self) -> Option<Arc<DeviceCounters>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_odd_rates_add_up_without_drift() {
        let f = AudioFormat {
            sample_rate: 22_050,
            channels: 1,
        };
        let total: usize = (0..100).map(|n| f.block_frames(n)).sum();
        assert_eq!(total, 22_050);
        assert_eq!(f.block_frames(0), 220);
        assert_eq!(f.block_frames(1), 221);
        let f = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        assert_eq!(f.block_frames(7), 480);
    }

    #[test]
    fn bad_formats_are_named() {
        let e = VideoFormat {
            width: 0,
            height: 10,
            fps_num: 30,
            fps_den: 1,
        }
        .validate("test")
        .expect_err("empty");
        assert!(e.to_string().contains("0x10"), "{e}");
        let e = AudioFormat {
            sample_rate: 48_000,
            channels: 9,
        }
        .validate("test")
        .expect_err("too many channels");
        assert!(e.to_string().contains("9 channels"), "{e}");
    }
}
