//! shmdata behind pstream-core's traits: what `--video shmdata:PATH`,
//! `--audio shmdata:PATH`, `--video-out shmdata:PATH` and
//! `--audio-out shmdata:PATH` open.
//!
//! # Waiting for a writer
//!
//! A source whose path has no writer waits for one, and says so once in the
//! log (and once more each time a writer leaves and none is back): score is
//! typically started, stopped and played again while pstream runs. Opening
//! waits up to [`FIRST_WRITER_WAIT`] for the first writer's caps, so that the
//! stream starts at the writer's size and rate; without one by then the
//! source starts at the size and rate asked for.
//!
//! While no writer is there (or a connected one sends nothing for a second),
//! a video source repeats its last picture (black before the first) every
//! [`HOLD_INTERVAL`], and an audio source hands out silence in real time:
//! the stream behind stays alive (receivers keep their picture, encoders
//! their rate control), and a pipeline that is told to stop hears it within
//! that interval, since `next_frame` never blocks longer.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::{
    AudioBlock, AudioFormat, AudioSink, AudioSource, MediaError, PipelineClock, VideoFormat,
    VideoFrame, VideoSink, VideoSource,
};

use crate::{Caps, FollowerEvent, FollowerOptions, ShmdataFollower, ShmdataWriter, WriterOptions};

/// How long opening a source waits for the first writer's caps.
pub const FIRST_WRITER_WAIT: Duration = Duration::from_secs(2);

/// How often a video source repeats its picture while no writer sends.
pub const HOLD_INTERVAL: Duration = Duration::from_millis(250);

/// How long a connected writer may send nothing before the source holds
/// (a paused writer; one that died without a word is noticed by the socket).
const QUIET_WRITER: Duration = Duration::from_secs(1);

/// Audio blocks handed out, as every pstream source does.
const AUDIO_BLOCK_MS: u32 = 10;

/// The spec text of a path, as errors and log lines name it.
fn spec_of(path: &Path) -> String {
    format!("shmdata:{}", path.display())
}

/// Opens a follower and waits up to [`FIRST_WRITER_WAIT`] for the writer's
/// caps; says once in the log when it has to wait.
fn follow(
    path: &Path,
    options: FollowerOptions,
) -> Result<(ShmdataFollower, Option<Caps>), MediaError> {
    let spec = spec_of(path);
    let mut follower =
        ShmdataFollower::open(path, options).map_err(|e| MediaError::failed(&spec, e))?;
    let deadline = Instant::now() + FIRST_WRITER_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match follower
            .next_event(left)
            .map_err(|e| MediaError::failed(&spec, e))?
        {
            Some(FollowerEvent::Connected { caps, .. }) => {
                tracing::info!("{spec}: writer connected: {}", caps.to_caps_string());
                return Ok((follower, Some(caps)));
            }
            // The follower says once in the log that it waits, and why.
            Some(_) => {}
            None => return Ok((follower, None)),
        }
    }
}

/// The error for a writer whose caps are of the other media type.
fn wrong_media(spec: &str, caps: &Caps, want: &str) -> MediaError {
    MediaError::invalid_format(
        spec,
        format!(
            "the writer's caps \"{}\" are not {want}",
            caps.to_caps_string()
        ),
    )
}

/// A black I420 picture.
fn black(width: u32, height: u32, at: Instant) -> Result<VideoFrame, MediaError> {
    let luma = width as usize * height as usize;
    let mut data = vec![16u8; VideoFrame::byte_len(width, height)];
    data[luma..].fill(128);
    VideoFrame::new(width, height, Bytes::from(data), at, Duration::ZERO)
        .map_err(|e| MediaError::invalid_format("shmdata", e.to_string()))
}

/// `--video shmdata:PATH`: a shmdata writer's pictures, as I420.
pub struct ShmdataVideoSource {
    spec: String,
    follower: ShmdataFollower,
    clock: PipelineClock,
    format: VideoFormat,
    /// The picture repeated while no writer sends.
    last: VideoFrame,
    connected: bool,
}

impl std::fmt::Debug for ShmdataVideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmdataVideoSource")
            .field("spec", &self.spec)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl ShmdataVideoSource {
    /// Follows the writer at `path`; `want` is the format used until a
    /// writer comes when none is there within [`FIRST_WRITER_WAIT`] (and
    /// the frame rate when the writer's caps announce a variable one).
    pub fn open(path: &Path, want: VideoFormat, clock: PipelineClock) -> Result<Self, MediaError> {
        let spec = spec_of(path);
        let options = FollowerOptions {
            queue_frames: 2,
            ..FollowerOptions::default()
        };
        let (follower, caps) = follow(path, options)?;
        let format = match caps {
            Some(Caps::Video(v)) => {
                let (fps_num, fps_den) = if v.fps_num == 0 {
                    (want.fps_num, want.fps_den)
                } else {
                    (v.fps_num, v.fps_den)
                };
                VideoFormat {
                    width: v.width,
                    height: v.height,
                    fps_num,
                    fps_den,
                }
            }
            Some(other) => return Err(wrong_media(&spec, &other, "video")),
            None => {
                tracing::info!(
                    "{spec}: no writer within {} s; starting at {}x{}, black until one comes",
                    FIRST_WRITER_WAIT.as_secs(),
                    want.width,
                    want.height
                );
                want
            }
        };
        format.validate(&spec)?;
        let last = black(format.width, format.height, clock.now())?;
        Ok(Self {
            spec,
            follower,
            clock,
            format,
            last,
            connected: caps.is_some(),
        })
    }
}

impl VideoSource for ShmdataVideoSource {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        let started = Instant::now();
        loop {
            let wait = if self.connected {
                QUIET_WRITER
            } else {
                HOLD_INTERVAL
            };
            let left = (started + wait).saturating_duration_since(Instant::now());
            let event = self
                .follower
                .next_event(left)
                .map_err(|e| MediaError::failed(&self.spec, e))?;
            match event {
                Some(FollowerEvent::Video(mut frame)) => {
                    frame.pts = self.clock.elapsed_at(frame.capture);
                    self.last = frame.clone();
                    return Ok(Some(frame));
                }
                Some(FollowerEvent::Connected { caps, .. }) => {
                    if !matches!(caps, Caps::Video(_)) {
                        return Err(wrong_media(&self.spec, &caps, "video"));
                    }
                    tracing::info!("{}: writer connected: {}", self.spec, caps.to_caps_string());
                    self.connected = true;
                }
                Some(FollowerEvent::WriterGone) => {
                    // The follower logs the departure and the wait.
                    tracing::debug!("{}: holding the last picture", self.spec);
                    self.connected = false;
                }
                Some(_) => {}
                None => {
                    let now = self.clock.now();
                    let mut held = self.last.clone();
                    held.capture = now;
                    held.pts = self.clock.elapsed_at(now);
                    return Ok(Some(held));
                }
            }
        }
    }
}

/// `--audio shmdata:PATH`: a shmdata writer's audio, in 10 ms blocks of f32.
pub struct ShmdataAudioSource {
    spec: String,
    follower: ShmdataFollower,
    clock: PipelineClock,
    format: AudioFormat,
    connected: bool,
    /// When the next block of silence is due while no writer sends.
    silence_due: Instant,
    silence_blocks: u64,
}

impl std::fmt::Debug for ShmdataAudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmdataAudioSource")
            .field("spec", &self.spec)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl ShmdataAudioSource {
    /// Follows the writer at `path`; `want` is the format of the silence
    /// handed out when no writer is there within [`FIRST_WRITER_WAIT`].
    pub fn open(path: &Path, want: AudioFormat, clock: PipelineClock) -> Result<Self, MediaError> {
        let spec = spec_of(path);
        let options = FollowerOptions {
            queue_frames: 32,
            audio_block_ms: Some(AUDIO_BLOCK_MS),
            ..FollowerOptions::default()
        };
        let (follower, caps) = follow(path, options)?;
        let format = match caps {
            Some(Caps::Audio(a)) => AudioFormat {
                sample_rate: a.rate,
                channels: a.channels,
            },
            Some(other) => return Err(wrong_media(&spec, &other, "audio")),
            None => {
                tracing::info!(
                    "{spec}: no writer within {} s; silence until one comes",
                    FIRST_WRITER_WAIT.as_secs()
                );
                want
            }
        };
        format.validate(&spec)?;
        Ok(Self {
            spec,
            follower,
            clock,
            format,
            connected: caps.is_some(),
            silence_due: Instant::now(),
            silence_blocks: 0,
        })
    }

    fn silence(&mut self) -> AudioBlock {
        let frames = self.format.block_frames(self.silence_blocks);
        self.silence_blocks += 1;
        let now = self.clock.now();
        let rate = u64::from(self.format.sample_rate.max(1));
        let floor = now.checked_sub(Duration::from_millis(50)).unwrap_or(now);
        self.silence_due = self.silence_due.max(floor)
            + Duration::from_nanos(frames as u64 * 1_000_000_000 / rate);
        AudioBlock {
            sample_rate: self.format.sample_rate,
            channels: self.format.channels,
            samples: vec![0.0; frames * usize::from(self.format.channels)],
            capture: now,
            pts: self.clock.elapsed_at(now),
        }
    }
}

impl AudioSource for ShmdataAudioSource {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, MediaError> {
        let started = Instant::now();
        loop {
            let until = if self.connected {
                started + QUIET_WRITER
            } else {
                self.silence_due
            };
            let left = until.saturating_duration_since(Instant::now());
            let event = self
                .follower
                .next_event(left)
                .map_err(|e| MediaError::failed(&self.spec, e))?;
            match event {
                Some(FollowerEvent::Audio(mut block)) => {
                    block.pts = self.clock.elapsed_at(block.capture);
                    self.silence_due = Instant::now() + block.duration();
                    return Ok(Some(block));
                }
                Some(FollowerEvent::Connected { caps, .. }) => {
                    let Caps::Audio(a) = caps else {
                        return Err(wrong_media(&self.spec, &caps, "audio"));
                    };
                    tracing::info!("{}: writer connected: {}", self.spec, caps.to_caps_string());
                    self.format = AudioFormat {
                        sample_rate: a.rate,
                        channels: a.channels,
                    };
                    self.connected = true;
                }
                Some(FollowerEvent::WriterGone) => {
                    // The follower logs the departure and the wait.
                    self.connected = false;
                    self.silence_due = Instant::now();
                }
                Some(_) => {}
                None => {
                    // A connected writer that went quiet: silence from now on.
                    self.connected = false;
                    return Ok(Some(self.silence()));
                }
            }
        }
    }
}

/// `--video-out shmdata:PATH`: pictures served as I420 to every follower.
#[derive(Debug)]
pub struct ShmdataVideoSink {
    spec: String,
    writer: Option<ShmdataWriter>,
}

impl ShmdataVideoSink {
    /// Binds the writer's socket at `path` (a stale one is replaced); the
    /// caps announce `format`'s frame rate, and the size of each picture.
    pub fn open(path: &Path, format: VideoFormat) -> Result<Self, MediaError> {
        let framerate = (format.fps_num > 0).then_some((format.fps_num, format.fps_den.max(1)));
        let options = WriterOptions {
            framerate,
            ..WriterOptions::default()
        };
        let spec = spec_of(path);
        let mut writer =
            ShmdataWriter::bind(path, options).map_err(|e| MediaError::failed(&spec, e))?;
        // A size known at open (bridge's sources) greets followers at once;
        // recv opens with none and the first picture brings it.
        if format.width > 0 && format.height > 0 {
            writer
                .announce_video(format.width, format.height)
                .map_err(|e| MediaError::failed(&spec, e))?;
        }
        Ok(Self {
            spec,
            writer: Some(writer),
        })
    }

    /// The writer's live counters (frames, followers, drops).
    pub fn counters(&self) -> Option<std::sync::Arc<crate::WriterCounters>> {
        self.writer.as_ref().map(ShmdataWriter::counters)
    }
}

/// The error for a write after `finish`.
fn finished(spec: &str) -> MediaError {
    MediaError::Unsupported {
        spec: spec.to_owned(),
        reason: "written to after it was finished",
    }
}

impl VideoSink for ShmdataVideoSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(finished(&self.spec));
        };
        w.write_video(frame)
            .map_err(|e| MediaError::failed(&self.spec, e))
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        // Dropping the writer says goodbye to the followers and removes the
        // socket file, segment and semaphores.
        self.writer = None;
        Ok(())
    }

    fn accepts_size_changes(&self) -> bool {
        // A new size re-greets every follower with the new caps.
        true
    }

    fn is_live(&self) -> bool {
        true
    }

    fn set_frame_rate(&mut self, num: u32, den: u32) {
        if let Some(w) = self.writer.as_mut() {
            w.set_framerate((num > 0).then_some((num, den.max(1))));
        }
    }
}

/// `--audio-out shmdata:PATH`: audio served as interleaved F32LE.
#[derive(Debug)]
pub struct ShmdataAudioSink {
    spec: String,
    writer: Option<ShmdataWriter>,
}

impl ShmdataAudioSink {
    /// Binds the writer's socket at `path` (a stale one is replaced) and
    /// announces `format` at once, so that followers that connect before
    /// the first block are greeted (libshmdata's gives up on a writer that
    /// has not greeted it within a second).
    pub fn open(path: &Path, format: AudioFormat) -> Result<Self, MediaError> {
        let spec = spec_of(path);
        let mut writer = ShmdataWriter::bind(path, WriterOptions::default())
            .map_err(|e| MediaError::failed(&spec, e))?;
        writer
            .announce_audio(format.sample_rate, format.channels)
            .map_err(|e| MediaError::failed(&spec, e))?;
        Ok(Self {
            spec,
            writer: Some(writer),
        })
    }
}

impl AudioSink for ShmdataAudioSink {
    fn write_block(&mut self, block: &AudioBlock) -> Result<(), MediaError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(finished(&self.spec));
        };
        w.write_audio(block)
            .map_err(|e| MediaError::failed(&self.spec, e))
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        self.writer = None;
        Ok(())
    }
}
