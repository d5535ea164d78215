//! Source stages shared by every pipeline: opening `--video`/`--audio`
//! specs, and the threads that pull from a capture source into a link until
//! told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_core::{
    AudioBlock, AudioFormat, AudioSource, CameraCounters, Codec, DeviceCounters, EncodedUnit,
    EncodedVideoSource, LinkSender, PipelineClock, VideoFormat, VideoFrame, VideoSource,
};

use crate::probe::{hit, Probe, ProbePoint};
use crate::run::Stop;
use crate::sources::{open_audio_source, open_video_source, open_video_source_for, OpenedVideo};
use crate::stats::StatsLine;
use crate::{Error, Result};

/// Opens a video spec (`None` for `none`), asking the test pattern for `size`
/// at `fps`; files bring their own size and rate, read back with `format()`.
pub fn open_video(
    spec: &str,
    size: (u32, u32),
    fps: u32,
    clock: PipelineClock,
) -> Result<Option<Box<dyn VideoSource>>> {
    if spec == "none" {
        return Ok(None);
    }
    let want = VideoFormat {
        width: size.0,
        height: size.1,
        fps_num: fps,
        fps_den: 1,
    };
    Ok(Some(open_video_source(spec, want, clock)?))
}

/// Opens a video spec for a stream in `codec`: a camera that delivers that
/// codec itself (MJPEG) comes back as [`OpenedVideo::Encoded`], to skip the encoder.
pub fn open_video_for(
    spec: &str,
    size: (u32, u32),
    fps: u32,
    codec: Codec,
    clock: PipelineClock,
) -> Result<Option<OpenedVideo>> {
    if spec == "none" {
        return Ok(None);
    }
    let want = VideoFormat {
        width: size.0,
        height: size.1,
        fps_num: fps,
        fps_den: 1,
    };
    Ok(Some(open_video_source_for(spec, codec, want, clock)?))
}

/// Opens an audio spec (`None` for `none`) asking synthetic sources for
/// `sample_rate` and `channels`; files bring their own.
pub fn open_audio(
    spec: &str,
    sample_rate: u32,
    channels: u16,
    clock: PipelineClock,
) -> Result<Option<Box<dyn AudioSource>>> {
    if spec == "none" {
        return Ok(None);
    }
    let want = AudioFormat {
        sample_rate,
        channels,
    };
    Ok(Some(open_audio_source(spec, want, clock)?))
}

/// Adds the stats line's part for an audio capture device (`mic`: samples
/// captured, xruns, drift in ppm); nothing for synthetic and file sources.
pub fn capture_part(
    line: &mut StatsLine,
    device: Option<&DeviceCounters>,
    format: Option<AudioFormat>,
) {
    if let (Some(d), Some(f)) = (device, format) {
        line.section("mic")
            .word(d.summary("captured", f.sample_rate, f.channels));
    }
}

/// Pulls paced frames from `src` into `out` until the run stops, the source
/// ends (which ends the run), it fails, or the downstream stage goes away;
/// `probe` hears of each frame as it is handed on.
pub fn video_source_stage(
    mut src: Box<dyn VideoSource>,
    out: LinkSender<VideoFrame>,
    shutdown: &Stop,
    probe: Option<Probe>,
) -> Result<()> {
    pull_stage(
        "video",
        || src.next_frame(),
        |f| hit(probe.as_ref(), || ProbePoint::Captured(f)),
        out,
        shutdown,
    )
}

/// Pulls encoded pictures from `src` straight into the unit link of the
/// RTP stage, like [`video_source_stage`] (no encoder in between).
pub fn encoded_source_stage(
    mut src: Box<dyn EncodedVideoSource>,
    out: LinkSender<EncodedUnit>,
    shutdown: &Stop,
) -> Result<()> {
    pull_stage("video", || src.next_unit(), |_| {}, out, shutdown)
}

/// Pulls paced audio blocks from `src` into `out`, like [`video_source_stage`].
pub fn audio_source_stage(
    mut src: Box<dyn AudioSource>,
    out: LinkSender<AudioBlock>,
    shutdown: &Stop,
) -> Result<()> {
    pull_stage("audio", || src.next_block(), |_| {}, out, shutdown)
}

/// The loop every source stage runs: `next` until the run stops, the source
/// ends (which ends the run), it fails (which fails the run) or the
/// downstream stage goes away; `seen` is shown each item before it goes.
pub(crate) fn pull_stage<T, E>(
    kind: &str,
    mut next: impl FnMut() -> std::result::Result<Option<T>, E>,
    mut seen: impl FnMut(&T),
    out: LinkSender<T>,
    shutdown: &Stop,
) -> Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    while !shutdown.requested() {
        match next() {
            Ok(Some(item)) => {
                seen(&item);
                if out.send(item).is_err() {
                    break;
                }
            }
            Ok(None) => {
                tracing::info!("{kind} source ended");
                shutdown.trigger();
                break;
            }
            Err(e) => return Err(Error::failed(format!("{kind} source failed"), e)),
        }
    }
    Ok(())
}

/// Longest wait for the SPS and PPS at the start of a camera's H.264.
const CAMERA_PARAMETER_SETS_WAIT: Duration = Duration::from_secs(10);

/// A camera's H.264 with the unit that carried its first SPS and PPS read
/// ahead (for the SDP) and handed out first.
struct PrimedH264 {
    src: Box<dyn EncodedVideoSource>,
    first: Option<EncodedUnit>,
}

impl EncodedVideoSource for PrimedH264 {
    fn format(&self) -> VideoFormat {
        self.src.format()
    }

    fn next_unit(&mut self) -> std::result::Result<Option<EncodedUnit>, pstream_core::MediaError> {
        match self.first.take() {
            Some(u) => Ok(Some(u)),
            None => self.src.next_unit(),
        }
    }

    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        self.src.camera_counters()
    }

    fn request_keyframe(&mut self) -> bool {
        self.src.request_keyframe()
    }
}

/// A camera's H.264 source with its first SPS and PPS (NAL units, no start codes).
pub(crate) type PrimedCamera = (Box<dyn EncodedVideoSource>, Vec<u8>, Vec<u8>);

/// Reads a camera's H.264 up to the first unit with SPS and PPS (asking
/// for a key frame first; units before it cannot be decoded and are
/// dropped): the source that starts with that unit, and the two sets.
pub(crate) fn prime_h264(mut src: Box<dyn EncodedVideoSource>) -> Result<PrimedCamera> {
    src.request_keyframe();
    let deadline = Instant::now() + CAMERA_PARAMETER_SETS_WAIT;
    loop {
        let unit = src.next_unit()?.ok_or_else(|| {
            Error::Config("the camera's H.264 ended before its first SPS and PPS".into())
        })?;
        if let Some((sps, pps)) = pstream_codec::h264::nal::parameter_sets(&unit.data) {
            let (sps, pps) = (sps.to_vec(), pps.to_vec());
            let primed = PrimedH264 {
                src,
                first: Some(unit),
            };
            return Ok((Box::new(primed), sps, pps));
        }
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "the camera's H.264 carried no SPS and PPS within {} s",
                CAMERA_PARAMETER_SETS_WAIT.as_secs()
            )));
        }
    }
}

/// Sends a camera's H.264 units on, asking the camera for a key frame
/// when the peer asks (PLI/FIR); requests it cannot take are counted and
/// said when the stream ends. `units` counts the units passed on, where the
/// stats line reads an encoder's count.
pub(crate) fn camera_h264_stage(
    mut src: Box<dyn EncodedVideoSource>,
    out: LinkSender<EncodedUnit>,
    shutdown: &Stop,
    keyframe: &AtomicBool,
    units: Option<&crate::encode::EncodeCounters>,
) -> Result<()> {
    let mut refused = 0u64;
    let mut asked = 0u64;
    let result = pull_stage(
        "video",
        || {
            if keyframe.swap(false, Ordering::Relaxed) {
                asked += 1;
                if !src.request_keyframe() {
                    refused += 1;
                }
            }
            let unit = src.next_unit();
            if let (Ok(Some(_)), Some(c)) = (&unit, units) {
                c.units.fetch_add(1, Ordering::Relaxed);
            }
            unit
        },
        |_| {},
        out,
        shutdown,
    );
    if asked > 0 {
        tracing::info!(
            "key frame requests passed to the camera: {asked}, of which it could not take {refused}"
        );
    }
    result
}
