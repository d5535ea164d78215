//! Source stages shared by every pipeline: opening `--video`/`--audio`
//! specs, and the threads that pull from a capture source into a link until
//! told to stop.

use pstream_capture::{
    open_audio_source, open_video_source, AudioFormat, AudioSource, VideoFormat, VideoSource,
};
use pstream_core::{AudioBlock, LinkSender, PipelineClock, VideoFrame};

use crate::run::{fail, Fatal, Stop};
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

/// Pulls paced frames from `src` into `out` until the run stops, the source
/// ends (which ends the run) or the downstream stage goes away.
pub fn video_source_stage(
    mut src: Box<dyn VideoSource>,
    out: LinkSender<VideoFrame>,
    shutdown: &Stop,
    fatal: &Fatal,
) {
    while !shutdown.requested() {
        match src.next_frame() {
            Ok(Some(frame)) => {
                if out.send(frame).is_err() {
                    break;
                }
            }
            Ok(None) => {
                tracing::info!("video source ended");
                shutdown.trigger();
                break;
            }
            Err(e) => {
                fail(fatal, shutdown, Error::failed("video source failed", e));
                break;
            }
        }
    }
}

/// Pulls paced audio blocks from `src` into `out`, like [`video_source_stage`].
pub fn audio_source_stage(
    mut src: Box<dyn AudioSource>,
    out: LinkSender<AudioBlock>,
    shutdown: &Stop,
    fatal: &Fatal,
) {
    while !shutdown.requested() {
        match src.next_block() {
            Ok(Some(block)) => {
                if out.send(block).is_err() {
                    break;
                }
            }
            Ok(None) => {
                tracing::info!("audio source ended");
                shutdown.trigger();
                break;
            }
            Err(e) => {
                fail(fatal, shutdown, Error::failed("audio source failed", e));
                break;
            }
        }
    }
}
