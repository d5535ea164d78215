//! Encoders and decoders behind small traits: H.264, Opus.
//!
//! - [`h264`]: openh264 encoder ([`H264Encoder`]) and decoder ([`H264Decoder`]),
//!   plus Annex-B helpers in [`h264::nal`].
//! - [`opus`]: 48 kHz / 20 ms Opus encoder and decoder with buffering,
//!   resampling and channel mixing on the way in.
//! - [`resample`]: a streaming windowed-sinc sample-rate converter.

pub mod error;
pub mod h264;
pub mod opus;
pub mod resample;
pub mod video;

pub use crate::opus::{OpusApplication, OpusConfig, OpusDecoder, OpusEncoder};
pub use crate::resample::Resampler;
pub use error::CodecError;
pub use h264::{DecodedPicture, H264Config, H264Decoder, H264Encoder};
pub use video::VideoEncoder;
