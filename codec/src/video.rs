//! The video encoder trait the pipeline drives.

use pstream_core::{EncodedUnit, VideoFrame};

use crate::CodecError;

/// Turns raw pictures into encoded access units.
pub trait VideoEncoder: Send {
    /// Encodes one picture; `Ok(None)` when the encoder dropped it (rate control).
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedUnit>, CodecError>;

    /// Makes the next encoded picture a keyframe (on a received PLI or FIR).
    fn request_keyframe(&mut self);
}
