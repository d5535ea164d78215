//! H.264: an openh264 encoder and decoder, and Annex-B helpers.

pub mod decoder;
pub mod encoder;
pub mod nal;

pub use decoder::{DecodedPicture, H264Decoder};
pub use encoder::{H264Config, H264Encoder, H264Preset};
