//! Devices and generated media: V4L2 cameras and outputs, ALSA (through
//! cpal) and PipeWire audio, the test pattern, tone and timecode, null sinks,
//! pixel conversion, audio drift compensation, and `pstream setup`.
//!
//! Each implements one of pstream-core's traits: a
//! [`VideoSource`](pstream_core::VideoSource),
//! [`EncodedVideoSource`](pstream_core::EncodedVideoSource) (an MJPEG
//! camera's own JPEGs) or [`AudioSource`](pstream_core::AudioSource) hands
//! out media stamped on the [`PipelineClock`](pstream_core::PipelineClock);
//! a [`VideoSink`](pstream_core::VideoSink) or
//! [`AudioSink`](pstream_core::AudioSink) takes it back out. Files (Y4M, WAV)
//! are pstream-mux's, and pstream-embed turns command-line specs into one or
//! the other. The audio device backends are cargo features, on by default:
//! `alsa` (cpal) and `pipewire`.

#[cfg(feature = "alsa")]
pub mod alsa;
pub mod convert;
pub mod device;
pub mod drift;
pub mod error;
pub mod null;
pub mod open;
#[cfg(feature = "pipewire")]
pub mod pipewire;
pub mod setup;
pub mod testpattern;
pub mod timecode;
pub mod tone;
pub mod v4l2;

pub use error::CaptureError;
pub use null::{NullAudioSink, NullVideoSink};
pub use open::{
    is_alsa_spec, is_pipewire_spec, open_audio_device, open_audio_output, AUDIO_BACKENDS,
};
pub use testpattern::{TestPattern, TestPatternSource};
pub use timecode::{read_timecode, write_timecode};
pub use tone::ToneSource;
