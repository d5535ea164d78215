//! Stage plumbing shared by every command: named threads, and the source
//! stages that pull from a capture source into a link until told to stop.

use std::thread::{self, JoinHandle};

use anyhow::{anyhow, Context};
use pstream_capture::{AudioSource, VideoSource};
use pstream_core::{AudioBlock, LinkSender, VideoFrame};

use crate::shutdown::{fail, FatalSlot, Shutdown};

/// Starts a named thread (names show up in `top -H` and in panics).
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("cannot start thread {name}"))
}

/// Pulls paced frames from `src` into `out` until the run stops, the source
/// ends (which ends the run) or the downstream stage goes away.
pub fn video_source_stage(
    mut src: Box<dyn VideoSource>,
    out: LinkSender<VideoFrame>,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
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
                fail(fatal, shutdown, anyhow!(e).context("video source failed"));
                break;
            }
        }
    }
}

/// Pulls paced audio blocks from `src` into `out`, like [`video_source_stage`].
pub fn audio_source_stage(
    mut src: Box<dyn AudioSource>,
    out: LinkSender<AudioBlock>,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
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
                fail(fatal, shutdown, anyhow!(e).context("audio source failed"));
                break;
            }
        }
    }
}
