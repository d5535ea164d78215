//! The spec dispatch: what `--video`, `--audio`, `--video-out` and
//! `--audio-out` name (`test`, `y4m:PATH`, `wav:PATH`, `v4l2:DEV`,
//! `default`, `alsa:NAME`, `pipewire[:NODE]`, `shmdata:PATH`, `null`, ...)
//! turned into a source or sink: devices and generated media from
//! pstream-capture, files from pstream-mux, shmdata from pstream-shmdata,
//! all behind pstream-core's traits.

use std::path::Path;

use crate::jpeg_decode::JpegDecodeSource;
use pstream_capture::tone::DEFAULT_FREQ_HZ;
use pstream_capture::v4l2::{V4l2Capture, V4l2Sink, V4l2Spec};
use pstream_capture::{
    open_audio_device, open_audio_output, NullAudioSink, NullVideoSink, TestPatternSource,
    ToneSource,
};
use pstream_core::{
    AudioFormat, AudioSink, AudioSource, Codec, EncodedVideoSource, MediaError, PipelineClock,
    VideoFormat, VideoSink, VideoSource,
};
use pstream_mux::{WavSink, WavSource, Y4mSink, Y4mSource};
use pstream_shmdata::{ShmdataAudioSink, ShmdataAudioSource, ShmdataVideoSink, ShmdataVideoSource};

/// The video source specs [`open_video_source`] accepts.
pub const VIDEO_SOURCES: &str = "test, test:noise, y4m:PATH, y4m:- (stdin), \
     v4l2:/dev/videoN[?size=WxH&fps=N&format=YUYV|NV12|YU12|MJPG], shmdata:PATH";
/// The audio source specs [`open_audio_source`] accepts.
pub const AUDIO_SOURCES: &str =
    "test, wav:PATH, wav:- (stdin), default, alsa:NAME, pipewire, pipewire:NODE, shmdata:PATH";
/// The video sink specs [`open_video_sink`] accepts.
pub const VIDEO_SINKS: &str =
    "y4m:PATH, y4m:- (stdout), null, v4l2:/dev/videoN[?format=YU12|YUYV], shmdata:PATH";
/// The audio sink specs [`open_audio_sink`] accepts.
pub const AUDIO_SINKS: &str =
    "wav:PATH, default, alsa:NAME, pipewire, pipewire:NODE, shmdata:PATH, null";

/// Device backends left out of this build (cargo features), by spec prefix.
const DEVICE_BACKENDS: [&str; 2] = ["alsa", "pipewire"];

/// Returns the device backend a spec names (`alsa`, `pipewire:NODE`, ...), if any.
fn device_backend(spec: &str) -> Option<&'static str> {
    let scheme = spec.split_once(':').map_or(spec, |(s, _)| s);
    DEVICE_BACKENDS.into_iter().find(|b| *b == scheme)
}

/// The path after `prefix:` in `spec`, or `None` if the spec has another form.
fn path_after<'a>(spec: &'a str, prefix: &str) -> Option<&'a str> {
    spec.strip_prefix(prefix)?.strip_prefix(':')
}

/// Refuses an empty path after a `scheme:` prefix.
fn non_empty<'a>(spec: &str, path: &'a str) -> Result<&'a str, MediaError> {
    if path.is_empty() {
        Err(MediaError::invalid_format(
            spec,
            "no path given after the colon",
        ))
    } else {
        Ok(path)
    }
}

/// The error for a spec nothing opened: unknown, a device backend this
/// build lacks, or one that cannot be this kind of source or sink.
fn unknown(spec: &str, kind: &'static str, accepted: &'static str) -> MediaError {
    match device_backend(spec) {
        Some(backend) if kind.starts_with("audio") => MediaError::NotBuilt {
            spec: spec.to_owned(),
            backend,
        },
        Some(backend) => MediaError::NotSupportedYet {
            spec: spec.to_owned(),
            backend,
            kind,
            accepted,
        },
        None => MediaError::UnknownSpec {
            kind,
            spec: spec.to_owned(),
            accepted,
        },
    }
}

/// Opens a video source: `test` (a test pattern in the `want` format),
/// `y4m:PATH` or `y4m:-` (stdin; the file's own size and rate apply),
/// `v4l2:/dev/videoN[?...]` (the camera mode closest to `want`; an MJPEG
/// camera's JPEGs are decoded by a [`JpegDecodeSource`]), `shmdata:PATH`
/// (a shmdata writer's pictures; waits for a writer, see
/// [`pstream_shmdata::media`]).
pub fn open_video_source(
    spec: &str,
    want: VideoFormat,
    clock: PipelineClock,
) -> Result<Box<dyn VideoSource>, MediaError> {
    if let Some(v4l2) = V4l2Spec::parse(spec) {
        // An MJPG camera hands out JPEGs: decoded here for whoever wants frames.
        return Ok(
            match pstream_capture::v4l2::open_source(&v4l2?, want, clock)? {
                V4l2Capture::Raw(src) => Box::new(src),
                V4l2Capture::Jpeg(src) => Box::new(JpegDecodeSource::new(Box::new(src), spec)),
                // open_source never takes H.264 (pstream does not decode it).
                V4l2Capture::H264(_) => return Err(pstream_capture::CaptureError::unsupported(
                    spec,
                    "the camera delivers H.264, which is only sent as it is (--video-codec h264)",
                )
                .into()),
            },
        );
    }
    if spec == "test" {
        return Ok(Box::new(TestPatternSource::new(want, clock)?));
    }
    if spec == "test:noise" {
        return Ok(Box::new(TestPatternSource::new(want, clock)?.with_noise()));
    }
    if let Some(path) = path_after(spec, "y4m") {
        return Ok(Box::new(match non_empty(spec, path)? {
            "-" => Y4mSource::stdin(spec, clock)?,
            path => Y4mSource::open(Path::new(path), spec, clock)?,
        }));
    }
    if let Some(path) = path_after(spec, "shmdata") {
        let path = Path::new(non_empty(spec, path)?);
        return Ok(Box::new(ShmdataVideoSource::open(path, want, clock)?));
    }
    Err(unknown(spec, "video source", VIDEO_SOURCES))
}

/// A video source opened for a stream in a given codec: raw frames to
/// encode, or pictures already in that codec to send as they are.
pub enum OpenedVideo {
    /// I420 frames for the encoder.
    Raw(Box<dyn VideoSource>),
    /// Encoded pictures that skip the encoder (an MJPEG camera for an MJPEG stream).
    Encoded(Box<dyn EncodedVideoSource>),
}

/// Like [`open_video_source`], but a camera that can deliver `codec` itself
/// (MJPEG) is opened in that format and handed back as [`OpenedVideo::Encoded`].
pub fn open_video_source_for(
    spec: &str,
    codec: Codec,
    want: VideoFormat,
    clock: PipelineClock,
) -> Result<OpenedVideo, MediaError> {
    if codec == Codec::H264 {
        if let Some(v4l2) = V4l2Spec::parse(spec) {
            // A camera that encodes H.264 itself: its access units as they are.
            return Ok(
                match pstream_capture::v4l2::open_for_h264(&v4l2?, want, clock)? {
                    V4l2Capture::H264(src) => OpenedVideo::Encoded(Box::new(src)),
                    V4l2Capture::Raw(src) => OpenedVideo::Raw(Box::new(src)),
                    V4l2Capture::Jpeg(src) => {
                        OpenedVideo::Raw(Box::new(JpegDecodeSource::new(Box::new(src), spec)))
                    }
                },
            );
        }
    }
    if codec == Codec::Mjpeg {
        if let Some(v4l2) = V4l2Spec::parse(spec) {
            return Ok(
                match pstream_capture::v4l2::open_for_mjpeg(&v4l2?, want, clock)? {
                    V4l2Capture::Jpeg(src) => OpenedVideo::Encoded(Box::new(src)),
                    V4l2Capture::Raw(src) => OpenedVideo::Raw(Box::new(src)),
                    // open_for_mjpeg never takes H.264.
                    V4l2Capture::H264(_) => {
                        return Err(pstream_capture::CaptureError::unsupported(
                            spec,
                            "the camera delivers H.264, which is only sent as H.264",
                        )
                        .into())
                    }
                },
            );
        }
    }
    open_video_source(spec, want, clock).map(OpenedVideo::Raw)
}

/// Opens an audio source: `test` (a 440 Hz tone in the `want` format),
/// `wav:PATH` or `wav:-` (stdin; the file's own rate and channels apply),
/// `default`, `alsa:NAME`, `pipewire` or `pipewire:NODE` (a device),
/// `shmdata:PATH` (a shmdata writer's audio; silence while none is there).
pub fn open_audio_source(
    spec: &str,
    want: AudioFormat,
    clock: PipelineClock,
) -> Result<Box<dyn AudioSource>, MediaError> {
    if spec == "test" {
        return Ok(Box::new(ToneSource::new(want, DEFAULT_FREQ_HZ, clock)?));
    }
    if let Some(path) = path_after(spec, "wav") {
        return Ok(Box::new(match non_empty(spec, path)? {
            "-" => WavSource::stdin(spec, clock)?,
            path => WavSource::open(Path::new(path), spec, clock)?,
        }));
    }
    if let Some(path) = path_after(spec, "shmdata") {
        let path = Path::new(non_empty(spec, path)?);
        return Ok(Box::new(ShmdataAudioSource::open(path, want, clock)?));
    }
    if let Some(device) = open_audio_device(spec, want, clock) {
        return Ok(device?);
    }
    Err(unknown(spec, "audio source", AUDIO_SOURCES))
}

/// Opens a video sink: `y4m:PATH`, `y4m:-` (stdout), `null`,
/// `v4l2:/dev/videoN` (an output device; the frames set its size) or
/// `shmdata:PATH` (a shmdata writer for any number of followers; its socket
/// file is removed when the sink is finished or dropped).
pub fn open_video_sink(spec: &str, format: VideoFormat) -> Result<Box<dyn VideoSink>, MediaError> {
    if let Some(v4l2) = V4l2Spec::parse(spec) {
        return Ok(Box::new(V4l2Sink::open(&v4l2?, format)?));
    }
    if spec == "null" {
        return Ok(Box::new(NullVideoSink::new()));
    }
    if let Some(path) = path_after(spec, "y4m") {
        return Ok(Box::new(match non_empty(spec, path)? {
            "-" => Y4mSink::stdout(spec, format)?,
            path => Y4mSink::create(Path::new(path), spec, format)?,
        }));
    }
    if let Some(path) = path_after(spec, "shmdata") {
        let path = Path::new(non_empty(spec, path)?);
        return Ok(Box::new(ShmdataVideoSink::open(path, format)?));
    }
    Err(unknown(spec, "video sink", VIDEO_SINKS))
}

/// Opens an audio sink: `wav:PATH` (16-bit PCM; not stdout, the header
/// sizes are patched by seeking), `null`, or a device (`default`,
/// `alsa:NAME`, `pipewire`, `pipewire:NODE`), or `shmdata:PATH` (a shmdata
/// writer of F32LE audio).
pub fn open_audio_sink(spec: &str, format: AudioFormat) -> Result<Box<dyn AudioSink>, MediaError> {
    if spec == "null" {
        return Ok(Box::new(NullAudioSink::new()));
    }
    if let Some(path) = path_after(spec, "wav") {
        return match non_empty(spec, path)? {
            "-" => Err(MediaError::Unsupported {
                spec: spec.to_owned(),
                reason: "a WAVE sink needs a seekable file to patch its sizes; \
                         stdout is not supported",
            }),
            path => Ok(Box::new(WavSink::create(Path::new(path), spec, format)?)),
        };
    }
    if let Some(path) = path_after(spec, "shmdata") {
        let path = Path::new(non_empty(spec, path)?);
        return Ok(Box::new(ShmdataAudioSink::open(path, format)?));
    }
    if let Some(device) = open_audio_output(spec, format) {
        return Ok(device?);
    }
    Err(unknown(spec, "audio sink", AUDIO_SINKS))
}
#[cfg(test)]
mod tests {
    use super::*;
    use pstream_core::error::one_line;

    const VIDEO: VideoFormat = VideoFormat {
        width: 320,
        height: 240,
        fps_num: 30,
        fps_den: 1,
    };
    const AUDIO: AudioFormat = AudioFormat {
        sample_rate: 48_000,
        channels: 2,
    };

    /// The error line a user sees: the message and its causes.
    fn video_err(spec: &str) -> String {
        match open_video_source(spec, VIDEO, PipelineClock::start()) {
            Ok(_) => panic!("{spec} should fail"),
            Err(e) => one_line(&e),
        }
    }

    fn audio_err(spec: &str) -> String {
        match open_audio_source(spec, AUDIO, PipelineClock::start()) {
            Ok(_) => panic!("{spec} should fail"),
            Err(e) => one_line(&e),
        }
    }

    #[test]
    fn test_sources_open_in_the_wanted_format() {
        let v = open_video_source("test", VIDEO, PipelineClock::start()).expect("video");
        assert_eq!(v.format(), VIDEO);
        let a = open_audio_source("test", AUDIO, PipelineClock::start()).expect("audio");
        assert_eq!(a.format(), AUDIO);
    }

    #[test]
    fn unknown_specs_list_the_accepted_forms() {
        assert_eq!(
            video_err("foo"),
            "unknown video source \"foo\"; accepted forms: test, test:noise, y4m:PATH, y4m:- (stdin), \
             v4l2:/dev/videoN[?size=WxH&fps=N&format=YUYV|NV12|YU12|MJPG], shmdata:PATH"
        );
        assert!(audio_err("mp3:x").contains("accepted forms: test, wav:PATH"));
        assert!(video_err("y4m").contains("unknown video source"));
        assert!(video_err("y4m:").contains("no path given"));
    }

    #[test]
    fn devices_are_not_supported_yet() {
        assert!(video_err("v4l2")
            .contains("accepted forms: test, test:noise, y4m:PATH, y4m:- (stdin), v4l2:"));
        assert!(video_err("pipewire").contains("pipewire video source is not supported yet"));
        if !pstream_capture::AUDIO_BACKENDS.contains(&"alsa") {
            assert!(audio_err("alsa:hw:0").contains("built without the alsa feature"));
        }
    }

    #[test]
    fn v4l2_specs_reach_the_device_backend() {
        let e = video_err("v4l2:/dev/video-pstream-none?size=640x480");
        assert!(
            e.starts_with(
                "v4l2:/dev/video-pstream-none?size=640x480: no such device /dev/video-pstream-none"
            ),
            "{e}"
        );
        assert!(video_err("v4l2:/dev/video0?fps=x").contains("fps \"x\""));
        let e = open_video_sink("v4l2:/dev/video-pstream-none", VIDEO)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("no such device")));
        let opened = open_video_source_for(
            "test",
            pstream_core::Codec::Mjpeg,
            VIDEO,
            PipelineClock::start(),
        );
        assert!(matches!(opened, Ok(OpenedVideo::Raw(_))));
    }

    #[test]
    fn missing_files_are_named() {
        let e = video_err("y4m:/nonexistent/pstream.y4m");
        assert!(
            e.starts_with("y4m:/nonexistent/pstream.y4m: cannot open for reading: "),
            "{e}"
        );
        let e = audio_err("wav:/nonexistent/pstream.wav");
        assert!(
            e.starts_with("wav:/nonexistent/pstream.wav: cannot open"),
            "{e}"
        );
    }

    #[test]
    fn sinks_open_by_spec() {
        assert!(open_video_sink("null", VIDEO).is_ok());
        assert!(open_audio_sink("null", AUDIO).is_ok());
        let e = open_audio_sink("wav:-", AUDIO).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("seekable")));
        let e = open_video_sink("png:x", VIDEO).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("y4m:PATH, y4m:- (stdout), null, v4l2:")));
        let path = std::env::temp_dir().join(format!("pstream-open-{}.y4m", std::process::id()));
        let spec = format!("y4m:{}", path.display());
        let mut sink = open_video_sink(&spec, VIDEO).expect("create");
        sink.finish().expect("finish");
        drop(sink);
        let mut src = open_video_source(&spec, VIDEO, PipelineClock::start()).expect("open");
        assert_eq!(src.format(), VIDEO);
        assert!(src.next_frame().expect("ok").is_none());
        let _ = std::fs::remove_file(&path);
    }
}
