//! Opening the audio devices a spec names, whichever backends this build has.
//!
//! The spec dispatch (`test`, `y4m:`, `wav:`, `v4l2:`, ...) lives in
//! pstream-embed, which picks a device or generated source from this crate
//! or a file from pstream-mux; cameras open through [`crate::v4l2`]. The
//! audio backends are cargo features, so these openers answer `None` for a
//! spec whose backend is left out, and the dispatch says so.

use pstream_core::{AudioFormat, AudioSink, AudioSource, PipelineClock};

use crate::CaptureError;

/// The audio device backends this build has (cargo features).
pub const AUDIO_BACKENDS: &[&str] = &[
    #[cfg(feature = "alsa")]
    "alsa",
    #[cfg(feature = "pipewire")]
    "pipewire",
];

/// Whether a spec names an ALSA device (through cpal).
pub fn is_alsa_spec(spec: &str) -> bool {
    spec == "default" || spec.starts_with("alsa:")
}

/// Whether a spec names a PipeWire node (or PipeWire's default).
pub fn is_pipewire_spec(spec: &str) -> bool {
    spec == "pipewire" || spec.starts_with("pipewire:")
}

/// Opens the capture device `spec` names (`default`, `alsa:NAME`,
/// `pipewire`, `pipewire:NODE`) for `want`; `None` when it names no device
/// of a backend this build has.
pub fn open_audio_device(
    spec: &str,
    want: AudioFormat,
    clock: PipelineClock,
) -> Option<Result<Box<dyn AudioSource>, CaptureError>> {
    #[cfg(feature = "alsa")]
    if is_alsa_spec(spec) {
        return Some(crate::alsa::open_capture(spec, want, clock));
    }
    #[cfg(feature = "pipewire")]
    if is_pipewire_spec(spec) {
        return Some(crate::pipewire::open_capture(spec, want, clock));
    }
    let _ = (spec, want, clock);
    None
}

/// Opens the playback device `spec` names (`default`, `alsa:NAME`,
/// `pipewire`, `pipewire:NODE`) for `format`; `None` when it names no
/// device of a backend this build has.
pub fn open_audio_output(
    spec: &str,
    format: AudioFormat,
) -> Option<Result<Box<dyn AudioSink>, CaptureError>> {
    #[cfg(feature = "alsa")]
    if is_alsa_spec(spec) {
        return Some(
            crate::alsa::PlaybackSink::open(spec, format)
                .map(|s| Box::new(s) as Box<dyn AudioSink>),
        );
    }
    #[cfg(feature = "pipewire")]
    if is_pipewire_spec(spec) {
        return Some(
            crate::pipewire::PipeWireSink::open(spec, format)
                .map(|s| Box::new(s) as Box<dyn AudioSink>),
        );
    }
    let _ = (spec, format);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_are_recognised() {
        assert!(is_alsa_spec("default") && is_alsa_spec("alsa:hw:0"));
        assert!(!is_alsa_spec("alsa") && !is_alsa_spec("test"));
        assert!(is_pipewire_spec("pipewire") && is_pipewire_spec("pipewire:sink"));
        assert!(!is_pipewire_spec("pipewirex"));
        let want = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        assert!(open_audio_device("test", want, PipelineClock::start()).is_none());
        assert!(open_audio_output("wav:x.wav", want).is_none());
    }
}
