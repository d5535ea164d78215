//! The sink traits: where raw video frames and audio blocks go (devices,
//! files, nowhere).

use std::sync::Arc;
use std::time::Duration;

use crate::counters::DeviceCounters;
use crate::{AudioBlock, MediaError, VideoFrame};

/// A consumer of raw I420 pictures.
pub trait VideoSink: Send {
    /// Writes one picture.
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), MediaError>;

    /// Flushes and closes the output; later writes fail.
    fn finish(&mut self) -> Result<(), MediaError>;

    /// Whether frames may change size mid-stream (a device renegotiates;
    /// a Y4M file has one size for good).
    fn accepts_size_changes(&self) -> bool {
        false
    }

    /// Whether pictures are shown as they are written (a device another
    /// program reads live), so that holding them for lip sync matters.
    fn is_live(&self) -> bool {
        false
    }

    /// The frame rate, for a sink opened before it was known (a shmdata
    /// writer binds at start); given before the first picture. Sinks that
    /// took it at open ignore it.
    fn set_frame_rate(&mut self, _num: u32, _den: u32) {}
}

/// A consumer of raw audio blocks.
pub trait AudioSink: Send {
    /// Writes one block.
    fn write_block(&mut self, block: &AudioBlock) -> Result<(), MediaError>;

    /// Flushes and closes the output; later writes fail.
    fn finish(&mut self) -> Result<(), MediaError>;

    /// A device sink's live counters (underruns, overruns, samples played);
    /// file sinks have none.
    fn playback_counters(&self) -> Option<Arc<DeviceCounters>> {
        None
    }

    /// How long a block written now takes to be heard, not counting a hold;
    /// `None` for outputs that are not heard live (files).
    fn latency(&self) -> Option<Duration> {
        None
    }

    /// Delays what is written from now on by `hold` (lip sync); outputs that
    /// are not live ignore it.
    fn set_hold(&mut self, _hold: Duration) {}
}
