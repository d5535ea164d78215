//! Encoders and decoders behind small traits (H.264, Opus, AAC, MJPEG), and
//! what sits around them: I420 scaling, resampling, the rendition transcoder,
//! Annex-B/NAL helpers.
//!
//! - [`h264`]: openh264 encoder ([`H264Encoder`]) and decoder ([`H264Decoder`]),
//!   plus Annex-B helpers in [`h264::nal`].
//! - [`mjpeg`]: libjpeg-turbo baseline 4:2:0 JPEG encoder from I420
//!   ([`MjpegEncoder`]) and decoder to I420 ([`MjpegDecoder`]).
//! - [`opus`]: 48 kHz / 20 ms Opus encoder and decoder with buffering,
//!   resampling and channel mixing on the way in.
//! - [`aac`]: AAC-LC encoder over fdk-aac ([`AacEncoder`]) for FLV/RTMP, and its decoder ([`AacDecoder`]).
//! - [`transcode`]: [`SourceDecoder`], one decode shared by a stream's
//!   renditions, [`RenditionEncoder`], one rendition's scale and encode, and
//!   [`Transcoder`], the two for one rendition.
//! - [`resample`]: a streaming windowed-sinc sample-rate converter.
//! - [`scale`]: [`Scaler`], tent-filter I420 scaling, and the [`Rendition`]s.
//! - [`video`] and [`audio`]: the [`VideoEncoder`], [`VideoDecoder`] and [`AudioEncoder`] traits.
//! - [`error`]: [`CodecError`], which keeps the libraries' own errors as causes.

pub mod aac;
pub mod audio;
pub mod error;
mod framer;
pub mod h264;
pub mod mjpeg;
pub mod opus;
pub mod resample;
pub mod scale;
pub mod transcode;
pub mod video;

pub use crate::aac::{AacConfig, AacDecoder, AacEncoder};
pub use crate::audio::AudioEncoder;
pub use crate::opus::{OpusApplication, OpusConfig, OpusDecoder, OpusEncoder};
pub use crate::resample::Resampler;
pub use crate::scale::{Rendition, Scaler};
pub use crate::transcode::{RenditionEncoder, SourceDecoder, SourcePicture, Transcoder};
pub use error::CodecError;
pub use h264::{DecodedPicture, H264Config, H264Decoder, H264Encoder, H264Preset};
pub use mjpeg::{MjpegDecoder, MjpegEncoder};
pub use video::{VideoDecoder, VideoEncoder};
