//! Capture -> H.264 + AAC -> FLV to RTMP ingests and files (what `pstream
//! push` runs): encode once, stream to every destination, and keep
//! streaming through drops and server restarts.
//!
//! ```text
//! video source ─link─▶ H.264 encoder ─link─┐                    ┌─link─▶ destination 1 (FLV mux ▶ RTMP/TCP)
//!                            ▲             ├─▶ interleave ─fan-out┼─link─▶ destination 2 (FLV mux ▶ RTMP/TCP)
//! audio source ─link─▶ AAC encoder ───link─┘                    └─link─▶ file:out.flv
//! (or silence)               └──── IDR on (re)connect ◀──── any destination
//! ```
//! Each arrow is a bounded drop-oldest [`pstream_core::link()`] and each box a
//! thread, so a slow or dead destination only ever loses its own frames.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pstream_codec::h264::{H264Config, H264Preset};
use pstream_codec::VideoEncoder;
use pstream_codec::{AacConfig, AacEncoder};
use pstream_core::{
    link, link_bytes, AudioBlock, Codec, EncodedUnit, LinkReceiver, LinkSender, PipelineClock,
    Recv, VideoFrame,
};
use pstream_core::{AudioFormat, DeviceCounters, EncodedVideoSource, VideoFormat, VideoSource};
use pstream_mux::flv::file_header;
use pstream_mux::{AudioInfo, FlvMuxer, FlvTag, Interleaver, StreamInfo, VideoInfo};
use pstream_transport::rtmp::{RtmpConnection, RtmpError, RtmpUrl};

use crate::encode::{self, audio_encode_stage, video_encode_stage, Gop};
use crate::error::one_line;
pub use crate::rtmp_out::DestinationState;
use crate::rtmp_out::{run_rtmp, DestCounters, Feed};
use crate::run::{Stages, Stop};
use crate::sources::OpenedVideo;
use crate::stages::{
    audio_source_stage, camera_h264_stage, capture_part, open_audio, open_video_for, prime_h264,
    video_source_stage,
};
use crate::stats::{kbps, per_second, StatsLine};
use crate::{Error, Result};

/// Raw frames waiting for the encoder.
const FRAME_QUEUE: usize = 2;
/// Audio blocks (10 ms each) waiting for the encoder.
const AUDIO_QUEUE: usize = 16;
/// Encoded units waiting for the interleaver.
const UNIT_QUEUE: usize = 32;
/// Units waiting for one destination: about 3 s of 30 fps video plus AAC.
/// Past that the oldest are dropped, so a stalled destination holds at
/// most this much memory.
const DEST_QUEUE: usize = 256;
/// Bytes of them: 3 s at 80 Mbit/s, far above any stream pushed to an
/// ingest, so only a unit count this high with units this large (a source
/// of outside units) meets it.
const DEST_QUEUE_BYTES: usize = 32 << 20;
/// How long one stream's units wait for the other's before going out alone.
const INTERLEAVE_WAIT: Duration = Duration::from_millis(500);
/// How long the fan-out keeps passing on the encoders' last units after
/// the run stops; destinations finish when it closes their links.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Where one destination writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// An RTMP or RTMPS ingest.
    Rtmp(RtmpUrl),
    /// An FLV file, written from the first keyframe on.
    File(PathBuf),
}

impl Target {
    /// Parses `rtmp://host[:port]/app/KEY`, `rtmps://...` or `file:PATH`.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(Error::Config(format!("destination {s:?} has no path")));
            }
            return Ok(Target::File(PathBuf::from(path)));
        }
        Ok(Target::Rtmp(RtmpUrl::parse(s).map_err(RtmpError::from)?))
    }

    /// The name on the stats line and in logs, with any stream key hidden.
    pub fn name(&self) -> String {
        match self {
            Target::Rtmp(u) => u.to_string(),
            Target::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// What to push where: every option of `pstream push`.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Destinations, each fed the same encoded stream.
    pub destinations: Vec<Target>,
    /// Video source spec: `test`, `y4m:PATH`, `y4m:-`, `v4l2:DEVICE` or `none`.
    pub video: String,
    /// Audio source spec: `test`, `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire[:NODE]` or `none`.
    pub audio: String,
    /// With no audio source, send a silent AAC track (some ingests refuse
    /// video-only streams).
    pub silent_audio: bool,
    /// Test pattern size (files bring their own).
    pub size: (u32, u32),
    /// Test pattern frame rate (files bring their own).
    pub fps: u32,
    /// Video bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Seconds between keyframes (an IDR also starts every (re)connect).
    pub keyint_seconds: f64,
    /// AAC-LC bitrate in kbit/s.
    pub audio_bitrate_kbps: u32,
    /// AAC sample rate: 44100 or 48000.
    pub audio_rate: u32,
    /// Audio channels sent: 1 or 2.
    pub channels: u16,
    /// H.264 encoder preset.
    pub preset: H264Preset,
    /// openh264 worker threads (0: one per core).
    pub threads: u16,
    /// Which H.264 encoder: openh264, a V4L2 memory-to-memory device, or auto.
    pub encoder: crate::m2m::EncoderChoice,
    /// Longest wait between reconnect attempts, in seconds (1..=3600).
    pub reconnect_max_seconds: f64,
}

impl PushConfig {
    /// `pstream push`'s defaults: 1280x720@30 test pattern at 2.5 Mbit/s
    /// with a 2 s GOP, a 48 kHz stereo tone as 128 kbit/s AAC, no destination yet.
    pub fn new() -> Self {
        Self {
            destinations: Vec::new(),
            video: "test".into(),
            audio: "test".into(),
            silent_audio: false,
            size: (1280, 720),
            fps: 30,
            bitrate_kbps: 2500,
            keyint_seconds: 2.0,
            audio_bitrate_kbps: 128,
            audio_rate: 48_000,
            channels: 2,
            preset: H264Preset::Fast,
            threads: 1,
            encoder: crate::m2m::EncoderChoice::Openh264,
            reconnect_max_seconds: 30.0,
        }
    }

    /// Settings the command line's parser would refuse, refused here too
    /// for programs that fill the fields themselves.
    fn check(&self) -> Result<()> {
        if self.destinations.is_empty() {
            return Err(Error::Config(
                "no destination: give an rtmp:// URL, a file:PATH or --out FILE.flv".into(),
            ));
        }
        if !matches!(self.audio_rate, 44_100 | 48_000) {
            return Err(Error::Config(format!(
                "AAC rate {} must be 44100 or 48000",
                self.audio_rate
            )));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(Error::Config(format!(
                "{} audio channels: AAC is sent in mono or stereo",
                self.channels
            )));
        }
        if !(1.0..=3600.0).contains(&self.reconnect_max_seconds) {
            return Err(Error::Config(format!(
                "reconnect wait {} must be between 1 and 3600 seconds",
                self.reconnect_max_seconds
            )));
        }
        if !(self.keyint_seconds.is_finite() && self.keyint_seconds > 0.0) {
            return Err(Error::Config(format!(
                "keyframe interval {} must be a positive number of seconds",
                self.keyint_seconds
            )));
        }
        if self.bitrate_kbps == 0 || self.audio_bitrate_kbps == 0 {
            return Err(Error::Config("bitrates must be above zero".into()));
        }
        Ok(())
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A destination's name, counters and the drop counter of its link.
type DestEntry = (String, Arc<DestCounters>, Arc<AtomicU64>);

/// Counters of the two encode stages.
#[derive(Debug, Default)]
struct EncodeCounters {
    video: encode::EncodeCounters,
    audio: encode::EncodeCounters,
}

/// A running push: its stage threads and their counters.
pub struct PushStream {
    stages: Stages,
    encode: Arc<EncodeCounters>,
    upstream_drops: Vec<Arc<AtomicU64>>,
    dests: Vec<DestEntry>,
    prev_video: u64,
    prev_bytes: Vec<u64>,
    last: Instant,
    started: Instant,
    capture_device: Option<Arc<DeviceCounters>>,
    capture_format: Option<AudioFormat>,
}

impl std::fmt::Debug for PushStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushStream")
            .field("destinations", &self.dests.len())
            .field("threads", &self.stages.count())
            .finish_non_exhaustive()
    }
}

/// The video of a push: pictures to encode, or a camera's own H.264.
enum PushVideo {
    /// Raw pictures, their encoder, its settings and the GOP timing.
    Encode(Box<dyn VideoSource>, Box<dyn VideoEncoder>, H264Config, Gop),
    /// A camera's H.264, sent as it is, and its format.
    Camera(Box<dyn EncodedVideoSource>, VideoFormat),
}

impl PushStream {
    /// Opens the sources and encoders of `config` (so bad settings fail
    /// before anything starts), then starts every stage; the stream runs
    /// until `stop` is set, a source ends, a stage fails or every
    /// destination gave up.
    pub fn start(config: &PushConfig, stop: Stop) -> Result<Self> {
        config.check()?;
        // Files are created first: a path that cannot be written is a bad
        // setting, refused before anything starts.
        let mut sinks = Vec::new();
        for target in &config.destinations {
            sinks.push(match target {
                Target::File(path) => {
                    let file = File::create(path).map_err(|e| {
                        Error::failed(format!("cannot create {}", path.display()), e)
                    })?;
                    Sink::File(file, path.clone())
                }
                Target::Rtmp(url) => Sink::Rtmp(url.clone()),
            });
        }
        let clock = PipelineClock::start();
        let video =
            match open_video_for(&config.video, config.size, config.fps, Codec::H264, clock)? {
                // A camera that encodes H.264 itself: its stream is pushed as it
                // is; the FLV headers take the SPS and PPS it starts with.
                Some(OpenedVideo::Encoded(cam)) => {
                    let (cam, _, _) = prime_h264(cam)?;
                    tracing::info!(
                        "pushing the camera's H.264 as it is (no decoding or re-encoding)"
                    );
                    let f = cam.format();
                    Some(PushVideo::Camera(cam, f))
                }
                Some(OpenedVideo::Raw(src)) => {
                    let f = src.format();
                    let fps = f.fps();
                    let cfg = H264Config {
                        width: f.width,
                        height: f.height,
                        fps,
                        bitrate_bps: config.bitrate_kbps.saturating_mul(1000),
                        // 0: openh264 makes IDRs only when asked; video_encode_stage times them.
                        keyint_frames: 0,
                        threads: config.threads,
                        preset: config.preset,
                    };
                    let keyint_frames =
                        ((config.keyint_seconds * f64::from(fps)).round() as u32).max(1);
                    let enc = crate::m2m::h264_encoder(&config.encoder.resolve()?, cfg)?;
                    // GOPs are timed by the encode stage rather than by the
                    // encoder's frame counter, so that an IDR forced by a
                    // (re)connect restarts the 2 s cadence instead of being
                    // followed by a short GOP.
                    let gop = Gop::every_frames(keyint_frames, f64::from(cfg.fps));
                    Some(PushVideo::Encode(src, enc, cfg, gop))
                }
                None => None,
            };
        let audio_source = open_audio(&config.audio, config.audio_rate, config.channels, clock)?;
        let want_audio = audio_source.is_some() || config.silent_audio;
        let capture_device = audio_source.as_ref().and_then(|s| s.device_counters());
        let capture_format = audio_source.as_ref().map(|s| s.format());
        let aac = if want_audio {
            let cfg = AacConfig {
                sample_rate: config.audio_rate,
                channels: config.channels,
                bitrate_bps: config.audio_bitrate_kbps.saturating_mul(1000),
            };
            Some(
                AacEncoder::new(cfg)
                    .map_err(|e| Error::failed("cannot start the AAC encoder", e))?,
            )
        } else {
            None
        };
        if video.is_none() && aac.is_none() {
            return Err(Error::Config(
                "nothing to push: --video none and --audio none (add --silent-audio?)".into(),
            ));
        }
        let info = StreamInfo {
            video: video.as_ref().map(|v| match v {
                PushVideo::Encode(_, _, cfg, _) => VideoInfo {
                    width: cfg.width,
                    height: cfg.height,
                    fps: f64::from(cfg.fps),
                    bitrate_kbps: f64::from(config.bitrate_kbps),
                },
                PushVideo::Camera(_, f) => VideoInfo {
                    width: f.width,
                    height: f.height,
                    fps: f64::from(f.fps()),
                    bitrate_kbps: f64::from(config.bitrate_kbps),
                },
            }),
            audio: aac.as_ref().map(|enc| AudioInfo {
                sample_rate: enc.config().sample_rate,
                channels: enc.config().channels,
                bitrate_kbps: f64::from(config.audio_bitrate_kbps),
                config: enc.audio_specific_config(),
            }),
            encoder: format!("pstream {}", env!("CARGO_PKG_VERSION")),
        };

        // Threads belong to `me` from the first one on, so that a stage
        // failing to start stops and joins those already running.
        let mut me = Self {
            stages: Stages::new(stop.clone()),
            encode: Arc::new(EncodeCounters::default()),
            upstream_drops: Vec::new(),
            dests: Vec::new(),
            prev_video: 0,
            prev_bytes: vec![0; config.destinations.len()],
            last: Instant::now(),
            started: Instant::now(),
            capture_device,
            capture_format,
        };
        let keyframe = Arc::new(AtomicBool::new(false));
        let has_video = video.is_some();
        let has_audio = aac.is_some();

        let (video_units_tx, video_units_rx) = link::<EncodedUnit>(UNIT_QUEUE);
        let (audio_units_tx, audio_units_rx) = link::<EncodedUnit>(UNIT_QUEUE);
        me.upstream_drops.push(video_units_tx.drop_counter());
        me.upstream_drops.push(audio_units_tx.drop_counter());

        if let Some(PushVideo::Camera(cam, _)) = video {
            // (Re)connects ask the camera for a key frame, as they ask the encoder.
            me.stages.spawn("video-source", {
                let (keyframe, encode) = (keyframe.clone(), me.encode.clone());
                move |stop| {
                    camera_h264_stage(cam, video_units_tx, stop, &keyframe, Some(&encode.video))
                }
            })?;
        } else if let Some(PushVideo::Encode(src, enc, _, gop)) = video {
            let (frame_tx, frame_rx) = link::<VideoFrame>(FRAME_QUEUE);
            me.upstream_drops.push(frame_tx.drop_counter());
            me.stages.spawn("video-source", move |stop| {
                video_source_stage(src, frame_tx, stop, None)
            })?;
            me.stages.spawn("video-encode", {
                let (keyframe, encode) = (keyframe.clone(), me.encode.clone());
                move |_| {
                    video_encode_stage(
                        enc,
                        Codec::H264,
                        gop,
                        frame_rx,
                        video_units_tx,
                        &keyframe,
                        &encode.video,
                        None,
                    )
                }
            })?;
        } else {
            drop(video_units_tx);
        }

        if let Some(enc) = aac {
            let (block_tx, block_rx) = link::<AudioBlock>(AUDIO_QUEUE);
            me.upstream_drops.push(block_tx.drop_counter());
            match audio_source {
                Some(src) => me.stages.spawn("audio-source", move |stop| {
                    audio_source_stage(src, block_tx, stop)
                })?,
                None => me.stages.spawn("audio-silence", {
                    let (rate, channels) = (config.audio_rate, config.channels);
                    move |stop| {
                        silence_stage(clock, rate, channels, block_tx, stop);
                        Ok(())
                    }
                })?,
            }
            me.stages.spawn("audio-encode", {
                let encode = me.encode.clone();
                move |_| audio_encode_stage(Box::new(enc), block_rx, audio_units_tx, &encode.audio)
            })?;
        } else {
            drop(audio_units_tx);
        }

        // One thread and one link per destination.
        let reconnect_max = Duration::from_secs_f64(config.reconnect_max_seconds);
        let mut dest_links = Vec::new();
        for (target, sink) in config.destinations.iter().zip(sinks) {
            let (tx, rx) = link_bytes::<EncodedUnit>(DEST_QUEUE, DEST_QUEUE_BYTES);
            let counters = Arc::new(DestCounters::default());
            let name = target.name();
            me.dests
                .push((name.clone(), counters.clone(), tx.drop_counter()));
            dest_links.push(tx);
            let dest = Destination {
                name,
                sink: Some(sink),
                units: rx,
                counters,
                muxer: FlvMuxer::new(info.clone()),
                keyframe: keyframe.clone(),
                reconnect_max,
                started: Instant::now(),
            };
            me.stages
                .spawn(&format!("dest-{}", me.dests.len()), move |stop| {
                    dest.run(stop);
                    Ok(())
                })?;
        }

        let states: Vec<(String, Arc<DestCounters>)> = me
            .dests
            .iter()
            .map(|d| (d.0.clone(), d.1.clone()))
            .collect();
        me.stages.spawn("interleave", move |stop| {
            let fan = Fanout {
                has_video,
                has_audio,
                dests: dest_links,
                states,
            };
            fan.run(video_units_rx, audio_units_rx, stop)
        })?;

        tracing::info!(
            "pushing to {}",
            me.dests
                .iter()
                .map(|d| d.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        me.last = Instant::now();
        me.started = Instant::now();
        Ok(me)
    }

    /// True once the stream is ending (stop requested, a source ended, a
    /// stage failed or every destination gave up).
    pub fn stopping(&self) -> bool {
        self.stages.ending()
    }

    /// Asks every stage to stop; [`PushStream::wait`] then returns promptly.
    pub fn stop(&self) {
        self.stages.stop();
    }

    /// Each destination's name (stream key hidden) and state.
    pub fn destinations(&self) -> Vec<(String, DestinationState)> {
        self.dests
            .iter()
            .map(|(name, c, _)| (name.clone(), c.state()))
            .collect()
    }

    /// The stats since the last call: encoder rate and drops, then per
    /// destination its state, rate, drops and reconnects.
    pub fn stats_line(&mut self) -> String {
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let (mut video, mut bytes) = (self.prev_video, std::mem::take(&mut self.prev_bytes));
        let line = self.line(&mut video, &mut bytes, secs);
        (self.prev_video, self.prev_bytes) = (video, bytes);
        line
    }

    /// The same figures averaged over the whole run.
    pub fn summary(&self) -> String {
        let mut zero = vec![0; self.dests.len()];
        self.line(&mut 0, &mut zero, self.started.elapsed().as_secs_f64())
    }

    fn line(&self, prev_video: &mut u64, prev_bytes: &mut [u64], secs: f64) -> String {
        let encode = &self.encode;
        let frames = encode.video.units();
        let fps = per_second(frames.saturating_sub(*prev_video), secs);
        *prev_video = frames;
        let up: u64 = self
            .upstream_drops
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum::<u64>()
            + encode.video.skips();
        let mut line = StatsLine::new();
        line.section("video")
            .rate(fps, 1, "fps")
            .count("frames", frames)
            .count("audio", encode.audio.units())
            .count("drop", up);
        let now_ms = self.started.elapsed().as_millis() as u64;
        for ((name, c, link_drops), prev) in self.dests.iter().zip(prev_bytes.iter_mut()) {
            let bytes = c.bytes.load(Ordering::Relaxed);
            let rate = kbps(bytes.saturating_sub(*prev), secs);
            *prev = bytes;
            line.section(name);
            c.state_words(&mut line, now_ms);
            line.rate(rate, 0, "kbit/s")
                .count(
                    "drop",
                    c.dropped.load(Ordering::Relaxed) + link_drops.load(Ordering::Relaxed),
                )
                .count("reconnects", c.reconnects.load(Ordering::Relaxed));
        }
        capture_part(
            &mut line,
            self.capture_device.as_deref(),
            self.capture_format,
        );
        line.to_string()
    }

    /// Waits until the run ends (its duration, a source's end, a failure,
    /// every destination giving up, or [`PushStream::stop`]) and every stage
    /// has finished. An error when a stage failed or any destination gave up.
    pub fn wait(&mut self) -> Result<()> {
        self.stages.wait()?;
        let failed: Vec<&str> = self
            .dests
            .iter()
            .filter(|d| d.1.state() == DestinationState::Failed)
            .map(|d| d.0.as_str())
            .collect();
        if !failed.is_empty() {
            return Err(Error::DestinationsFailed {
                names: failed.into_iter().map(str::to_string).collect(),
            });
        }
        Ok(())
    }
}

/// What a destination writes to, opened (files) or parsed (URLs) before
/// the run starts.
enum Sink {
    /// A created FLV file and its path (for error messages).
    File(File, PathBuf),
    /// An RTMP(S) ingest, connected by the destination thread.
    Rtmp(RtmpUrl),
}

/// One destination's thread-side state.
struct Destination {
    name: String,
    /// Where it writes; taken when the destination thread starts.
    sink: Option<Sink>,
    units: LinkReceiver<EncodedUnit>,
    counters: Arc<DestCounters>,
    muxer: FlvMuxer,
    keyframe: Arc<AtomicBool>,
    reconnect_max: Duration,
    started: Instant,
}

impl Destination {
    fn run(mut self, stop: &Stop) {
        let result = match self.sink.take() {
            Some(Sink::File(file, path)) => self.run_file(file, &path),
            Some(Sink::Rtmp(url)) => self.run_rtmp(&url, stop),
            None => Ok(()),
        };
        match result {
            Ok(()) => self.counters.set(DestinationState::Done),
            Err(e) => {
                tracing::error!("{}: giving up: {}", self.name, one_line(&e));
                self.counters.set(DestinationState::Failed);
                // Keep draining so upstream never notices, and count what is lost.
                while !stop.requested() {
                    match self.units.recv_timeout(Duration::from_millis(100)) {
                        Recv::Item(_) => {
                            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Recv::Timeout => {}
                        Recv::Closed => break,
                    }
                }
            }
        }
    }

    fn run_file(&mut self, file: File, path: &Path) -> Result<()> {
        let cannot_write = |source| Error::File {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let mut w = BufWriter::new(file);
        let info = self.muxer.info();
        w.write_all(&file_header(info.video.is_some(), info.audio.is_some()))
            .map_err(cannot_write)?;
        self.counters.set(DestinationState::Live);
        let mut tags = Vec::new();
        let mut buf = Vec::new();
        loop {
            // The fan-out closes the link shortly after the run stops,
            // once the last units are through.
            let unit = match self.units.recv_timeout(Duration::from_millis(100)) {
                Recv::Item(u) => u,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            tags.clear();
            let muxed = self
                .muxer
                .push(&unit, &mut tags)
                .map_err(|e| Error::failed("FLV muxing failed", e))?;
            if !muxed {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            buf.clear();
            for t in &tags {
                t.write_to(&mut buf);
            }
            w.write_all(&buf).map_err(cannot_write)?;
            self.counters
                .bytes
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        w.flush().map_err(cannot_write)?;
        Ok(())
    }

    fn run_rtmp(&mut self, url: &RtmpUrl, stop: &Stop) -> Result<()> {
        let (name, counters) = (self.name.clone(), self.counters.clone());
        let (max, started) = (self.reconnect_max, self.started);
        run_rtmp(&name, url, &counters, max, started, self, stop)
    }
}

impl Feed for Destination {
    fn idle(&mut self, until: Instant, stop: &Stop) -> bool {
        while Instant::now() < until && !stop.requested() {
            match self.units.recv_timeout(Duration::from_millis(50)) {
                Recv::Item(_) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Recv::Timeout => {}
                Recv::Closed => return false,
            }
        }
        true
    }

    /// Streams until the fan-out closes the link after the run stops (Ok)
    /// or a connection error.
    fn stream(&mut self, mut conn: RtmpConnection, _stop: &Stop) -> Result<(), RtmpError> {
        // A fresh start: headers again, from a keyframe the encoder makes now.
        self.muxer.restart();
        self.keyframe.store(true, Ordering::Relaxed);
        // Whatever queued while we were away is stale.
        while let Recv::Item(_) = self.units.try_recv() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.set(DestinationState::Live);
        let mut seen_drops = self.units.dropped();
        let mut need_keyframe = false;
        let mut tags: Vec<FlvTag> = Vec::new();
        let mut polled = Instant::now();
        loop {
            // Acknowledgements, pings and status messages from the server.
            if polled.elapsed() >= Duration::from_millis(100) {
                polled = Instant::now();
                conn.poll()?;
            }
            let unit = match self.units.recv_timeout(Duration::from_millis(50)) {
                Recv::Item(u) => u,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            // After a drop in our own link, the picture is broken until the next IDR.
            let drops = self.units.dropped();
            if drops != seen_drops {
                seen_drops = drops;
                need_keyframe = true;
                self.keyframe.store(true, Ordering::Relaxed);
            }
            if unit.codec.is_video() && need_keyframe {
                if !unit.keyframe {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                need_keyframe = false;
            }
            tags.clear();
            match self.muxer.push(&unit, &mut tags) {
                Ok(true) => {}
                Ok(false) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    tracing::debug!("{}: unit dropped: {e}", self.name);
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            for t in &tags {
                conn.send(t.kind.type_id(), t.timestamp_ms, &t.data)?;
                self.counters
                    .bytes
                    .fetch_add(t.data.len() as u64, Ordering::Relaxed);
            }
        }
        tracing::info!("{}: closing", self.name);
        conn.close();
        Ok(())
    }
}

/// The interleave + fan-out stage: merges audio and video in capture order
/// and hands every unit to every destination.
struct Fanout {
    has_video: bool,
    has_audio: bool,
    dests: Vec<LinkSender<EncodedUnit>>,
    /// Watched so the run ends (with an error) once every destination gave up.
    states: Vec<(String, Arc<DestCounters>)>,
}

impl Fanout {
    fn run(
        self,
        video: LinkReceiver<EncodedUnit>,
        audio: LinkReceiver<EncodedUnit>,
        stop: &Stop,
    ) -> Result<()> {
        let mut il = Interleaver::new(self.has_video, self.has_audio, INTERLEAVE_WAIT);
        let never = crossbeam_channel::never();
        let (mut v_open, mut a_open) = (self.has_video, self.has_audio);
        // Once the run stops, what the encoders still finish goes out too
        // (the tail of a recording), for at most this long.
        let mut drain_until: Option<Instant> = None;
        while v_open || a_open {
            if stop.requested() {
                let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_TIME);
                if Instant::now() >= until {
                    break;
                }
            } else if self
                .states
                .iter()
                .all(|s| s.1.state() == DestinationState::Failed)
            {
                return Err(Error::DestinationsFailed {
                    names: self.states.iter().map(|s| s.0.clone()).collect(),
                });
            }
            let vr = if v_open { video.as_receiver() } else { &never };
            let ar = if a_open { audio.as_receiver() } else { &never };
            crossbeam_channel::select! {
                recv(vr) -> m => match video.taken(m) {
                    Some(u) => il.push(u),
                    None => v_open = false,
                },
                recv(ar) -> m => match audio.taken(m) {
                    Some(u) => il.push(u),
                    None => a_open = false,
                },
                default(Duration::from_millis(100)) => {}
            }
            while let Some(u) = il.pop() {
                self.send_all(u);
            }
        }
        for u in il.drain() {
            self.send_all(u);
        }
        Ok(())
    }

    fn send_all(&self, unit: EncodedUnit) {
        for d in &self.dests {
            // A destination that has gone is simply skipped.
            let _ = d.send(unit.clone());
        }
    }
}

/// Paced 10 ms blocks of silence, for [`PushConfig::silent_audio`].
fn silence_stage(
    clock: PipelineClock,
    rate: u32,
    channels: u16,
    out: LinkSender<AudioBlock>,
    stop: &Stop,
) {
    let frames = (rate / 100) as usize;
    let step = Duration::from_millis(10);
    let mut n: u32 = 0;
    while !stop.requested() {
        let pts = step * n;
        let due = clock.origin() + pts;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let block = AudioBlock {
            sample_rate: rate,
            channels,
            samples: vec![0.0; frames * usize::from(channels)],
            capture: due,
            pts,
        };
        if out.send(block).is_err() {
            break;
        }
        n = n.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_hide_keys() {
        let t = Target::parse("rtmp://127.0.0.1:1935/live/secret").expect("rtmp");
        assert_eq!(t.name(), "rtmp://127.0.0.1:1935/live/****");
        assert!(matches!(
            Target::parse("file:/tmp/x.flv"),
            Ok(Target::File(_))
        ));
        assert!(Target::parse("file:").is_err());
        let e = Target::parse("rtmp://host/onlyapp").expect_err("no key");
        assert!(e.to_string().contains("stream key"), "{e}");
    }

    #[test]
    fn settings_the_cli_refuses_are_refused_here_too() {
        let mut c = PushConfig::new();
        assert!(c.check().is_err(), "no destination");
        c.destinations
            .push(Target::File(std::env::temp_dir().join("x.flv")));
        assert!(c.check().is_ok());
        for bad in [
            PushConfig {
                audio_rate: 32_000,
                ..c.clone()
            },
            PushConfig {
                channels: 3,
                ..c.clone()
            },
            PushConfig {
                reconnect_max_seconds: 0.0,
                ..c.clone()
            },
            PushConfig {
                keyint_seconds: f64::NAN,
                ..c.clone()
            },
            PushConfig {
                bitrate_kbps: 0,
                ..c.clone()
            },
        ] {
            assert!(matches!(bad.check(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_recording_of_the_test_pattern_is_flv_with_both_tracks() {
        let path = std::env::temp_dir().join(format!("pstream-embed-{}.flv", std::process::id()));
        let mut c = PushConfig::new();
        c.destinations.push(Target::File(path.clone()));
        c.size = (160, 96);
        c.fps = 15;
        c.bitrate_kbps = 200;
        let mut stream = PushStream::start(&c, Stop::after(1.0).expect("stop")).expect("start");
        while !stream.stopping() {
            thread::sleep(Duration::from_millis(20));
        }
        stream.wait().expect("recorded");
        assert_eq!(
            stream.destinations(),
            vec![(format!("file:{}", path.display()), DestinationState::Done)]
        );
        let data = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        // FLV header with audio (4) and video (1) flags, then tags of both kinds.
        assert_eq!(&data[..3], b"FLV");
        assert_eq!(data[4], 5);
        let mut pos = 13;
        let (mut video, mut audio) = (0, 0);
        while pos + 11 <= data.len() {
            let len = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
            match data[pos] {
                8 => audio += 1,
                9 => video += 1,
                _ => {}
            }
            pos += 11 + len + 4;
        }
        assert_eq!(pos, data.len(), "tags end where the file does");
        assert!(video >= 10, "{video} video tags in 1 s at 15 fps");
        assert!(audio >= 30, "{audio} audio tags in 1 s");
    }
}
