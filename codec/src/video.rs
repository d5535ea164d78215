//! The video encoder and decoder traits the pipeline drives.

use pstream_core::{EncodedUnit, VideoFrame};

use crate::{CodecError, DecodedPicture, H264Decoder, MjpegDecoder};

/// Turns raw pictures into encoded access units.
pub trait VideoEncoder: Send {
    /// Encodes one picture; `Ok(None)` when the encoder dropped it (rate control).
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedUnit>, CodecError>;

    /// Makes the next encoded picture a keyframe (on a received PLI or FIR).
    fn request_keyframe(&mut self);

    /// Changes the target bitrate from the next picture on (`--bitrate
    /// auto`); false if this encoder has no bitrate to steer (JPEG's
    /// quality does not map onto one), which is the default.
    fn set_bitrate(&mut self, bps: u32) -> bool {
        let _ = bps;
        false
    }
}

/// Turns encoded units back into pictures.
pub trait VideoDecoder: Send {
    /// Decodes one unit's payload; `Ok(None)` when it yields no picture yet.
    fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedPicture>, CodecError>;
}

impl VideoDecoder for H264Decoder {
    fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedPicture>, CodecError> {
        H264Decoder::decode(self, data)
    }
}

impl VideoDecoder for MjpegDecoder {
    fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedPicture>, CodecError> {
        MjpegDecoder::decode(self, data).map(Some)
    }
}
