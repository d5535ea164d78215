//! Media sources and sinks: test pattern, tone, Y4M, WAV, devices.
//!
//! A [`VideoSource`] or [`AudioSource`] hands out raw media paced in real time
//! on the [`PipelineClock`](pstream_core::PipelineClock), stamped with its
//! capture time; a [`VideoSink`] or [`AudioSink`] takes it back out. The
//! `open_*` functions turn a command-line spec (`test`, `y4m:PATH`,
//! `wav:PATH`, `null`, `default`, `alsa:NAME`, `pipewire:NODE`, ...) into
//! one of them. The device backends are cargo features, on by default:
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
pub mod wav;
pub mod y4m;

pub use error::CaptureError;
pub use null::{NullAudioSink, NullVideoSink};
pub use open::{
    is_alsa_spec, is_pipewire_spec, open_audio_device, open_audio_output, AUDIO_BACKENDS,
};
pub use testpattern::{TestPattern, TestPatternSource};
pub use timecode::{read_timecode, write_timecode};
pub use tone::ToneSource;
pub use wav::{WavReader, WavSink, WavSource};
pub use y4m::{Y4mReader, Y4mSink, Y4mSource};
