//! `pstream push`: encode once, stream H.264 + AAC as FLV to every RTMP
//! ingest (and file) given, and keep streaming through drops and restarts.
//!
//! ```text
//! video source ─link─▶ H.264 encoder ─link─┐                    ┌─link─▶ destination 1 (FLV mux ▶ RTMP/TCP)
//!                            ▲             ├─▶ interleave ─fan-out┼─link─▶ destination 2 (FLV mux ▶ RTMP/TCP)
//! audio source ─link─▶ AAC encoder ───link─┘                    └─link─▶ file:out.flv
//! (or silence)               └──── IDR on (re)connect ◀──── any destination
//! ```
//! Each arrow is a bounded drop-oldest [`pstream_core::link`] and each box a
//! thread, so a slow or dead destination only ever loses its own frames.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use pstream_codec::h264::{H264Config, H264Encoder};
use pstream_codec::{AacConfig, AacEncoder};
use pstream_core::{
    link, AudioBlock, EncodedUnit, LinkReceiver, LinkSender, PipelineClock, Recv, VideoFrame,
};
use pstream_mux::flv::file_header;
use pstream_mux::{AudioInfo, FlvMuxer, FlvTag, Interleaver, StreamInfo, VideoInfo};
use pstream_transport::rtmp::{redact, RtmpConnection, RtmpError, RtmpUrl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::shutdown::{fail, FatalSlot, Shutdown};
use crate::stats::{kbps, StatsMode, StatsPrinter};
use pstream_embed::run::spawn;
use pstream_embed::stages::{
    audio_source_stage, capture_fragment, open_audio, open_video, video_source_stage,
};

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
/// How long one stream's units wait for the other's before going out alone.
const INTERLEAVE_WAIT: Duration = Duration::from_millis(500);
/// Longest a connect + handshake + publish may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; later ones grow by [`BACKOFF_FACTOR`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Growth of the retry delay after each failed attempt.
const BACKOFF_FACTOR: f64 = 1.5;

/// Options of `pstream push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Destinations: `rtmp://host[:port]/app/KEY`, `rtmps://...`, or `file:PATH.flv`.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Also write the FLV stream to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Video source: `test` (moving pattern with a timecode), `y4m:PATH`,
    /// `y4m:-` (stdin) or `none`.
    #[arg(long, default_value = "test")]
    pub video: String,
    /// Audio source: `test` (sine tone), `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire`, `pipewire:NODE` (a sink captures its monitor) or `none`.
    #[arg(long, default_value = "test")]
    pub audio: String,
    /// With `--audio none`, send a silent AAC track (some ingests refuse video-only streams).
    #[arg(long)]
    pub silent_audio: bool,
    /// Picture size for the test pattern, WIDTHxHEIGHT (files bring their own).
    #[arg(long, default_value = "1280x720", value_parser = crate::cli::parse_size)]
    pub size: (u32, u32),
    /// Frame rate for the test pattern (files bring their own).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub bitrate: u32,
    /// Seconds between keyframes (ingests ask for 2; an IDR also starts every (re)connect).
    #[arg(long, default_value_t = 2.0, value_parser = crate::cli::parse_keyint)]
    pub keyint: f64,
    /// AAC-LC bitrate in kbit/s.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(16..=320))]
    pub audio_bitrate: u32,
    /// AAC sample rate: 44100 or 48000.
    #[arg(long, default_value_t = 48_000, value_parser = parse_aac_rate)]
    pub audio_rate: u32,
    /// Audio channels sent: 1 or 2.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=2))]
    pub channels: u16,
    /// Encoder preset and threads.
    #[command(flatten)]
    pub encoder: crate::cli::EncoderArgs,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 30.0, value_parser = parse_reconnect_max)]
    pub reconnect_max: f64,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_aac_rate(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(r @ (44_100 | 48_000)) => Ok(r),
        _ => Err(format!("{s:?}: AAC rate must be 44100 or 48000")),
    }
}

fn parse_reconnect_max(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(1.0..=3600.0).contains(&v) {
        return Err(format!("{v} must be between 1 and 3600 seconds"));
    }
    Ok(v)
}

/// Where one destination writes.
#[derive(Debug, Clone)]
enum Target {
    Rtmp(RtmpUrl),
    File(PathBuf),
}

impl Target {
    fn parse(s: &str) -> anyhow::Result<Self> {
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                anyhow::bail!("destination {s:?} has no path");
            }
            return Ok(Target::File(PathBuf::from(path)));
        }
        Ok(Target::Rtmp(RtmpUrl::parse(s)?))
    }

    fn name(&self) -> String {
        match self {
            Target::Rtmp(u) => u.to_string(),
            Target::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// Destination states shown on the stats line.
const CONNECTING: u8 = 0;
const LIVE: u8 = 1;
const RETRYING: u8 = 2;
const FAILED: u8 = 3;
const DONE: u8 = 4;

/// What one destination shares with the stats line.
#[derive(Debug, Default)]
struct DestCounters {
    state: AtomicU8,
    retry_at_ms: AtomicU64,
    bytes: AtomicU64,
    /// Units dropped by this destination itself (disconnected, waiting for a keyframe).
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

/// Counters of the encoders.
#[derive(Debug, Default)]
struct EncodeCounters {
    video_units: AtomicU64,
    audio_units: AtomicU64,
    encoder_skips: AtomicU64,
}

/// One destination's thread-side state.
struct Destination {
    name: String,
    target: Target,
    units: LinkReceiver<EncodedUnit>,
    counters: Arc<DestCounters>,
    muxer: FlvMuxer,
    keyframe: Arc<AtomicBool>,
    reconnect_max: Duration,
    started: Instant,
}

/// `pstream push`: runs until `--duration`, Ctrl-C or SIGTERM, or until every destination gave up.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for u in &args.urls {
        targets.push(Target::parse(u).with_context(|| format!("destination {}", redact(u)))?);
    }
    if let Some(p) = &args.out {
        targets.push(Target::File(p.clone()));
    }
    if targets.is_empty() {
        anyhow::bail!("no destination: give an rtmp:// URL, a file:PATH or --out FILE.flv");
    }
    let shutdown = crate::shutdown::install(args.duration)?;
    let clock = PipelineClock::start();

    // Sources and encoders, opened before any thread starts so bad options fail early.
    let video = if let Some(src) = open_video(&args.video, args.size, args.fps, clock)? {
        let f = src.format();
        let fps = f.fps();
        let cfg = H264Config {
            width: f.width,
            height: f.height,
            fps,
            bitrate_bps: args.bitrate * 1000,
            // 0: openh264 makes IDRs only when asked; video_encode_stage times them.
            keyint_frames: 0,
            threads: args.encoder.threads,
            preset: args.encoder.preset.into(),
        };
        let keyint_frames = ((args.keyint * f64::from(fps)).round() as u32).max(1);
        let enc = H264Encoder::new(cfg).context("cannot start the H.264 encoder")?;
        Some((src, enc, cfg, keyint_frames))
    } else {
        None
    };
    let audio_source = open_audio(&args.audio, args.audio_rate, args.channels, clock)?;
    let want_audio = audio_source.is_some() || args.silent_audio;
    let capture_device = audio_source.as_ref().and_then(|s| s.device_counters());
    let capture_format = audio_source.as_ref().map(|s| s.format());
    let aac = if want_audio {
        let cfg = AacConfig {
            sample_rate: args.audio_rate,
            channels: args.channels,
            bitrate_bps: args.audio_bitrate * 1000,
        };
        Some(AacEncoder::new(cfg).context("cannot start the AAC encoder")?)
    } else {
        None
    };
    if video.is_none() && aac.is_none() {
        anyhow::bail!("nothing to push: --video none and --audio none (add --silent-audio?)");
    }
    let info = StreamInfo {
        video: video.as_ref().map(|(_, _, cfg, _)| VideoInfo {
            width: cfg.width,
            height: cfg.height,
            fps: f64::from(cfg.fps),
            bitrate_kbps: f64::from(args.bitrate),
        }),
        audio: aac.as_ref().map(|enc| AudioInfo {
            sample_rate: enc.config().sample_rate,
            channels: enc.config().channels,
            bitrate_kbps: f64::from(args.audio_bitrate),
            config: enc.audio_specific_config(),
        }),
        encoder: format!("pstream {}", env!("CARGO_PKG_VERSION")),
    };

    let fatal: FatalSlot = Arc::new(Mutex::new(None));
    let encode = Arc::new(EncodeCounters::default());
    let keyframe = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut upstream_drops: Vec<Arc<AtomicU64>> = Vec::new();
    let has_video = video.is_some();
    let has_audio = aac.is_some();

    let (video_units_tx, video_units_rx) = link::<EncodedUnit>(UNIT_QUEUE);
    let (audio_units_tx, audio_units_rx) = link::<EncodedUnit>(UNIT_QUEUE);
    upstream_drops.push(video_units_tx.drop_counter());
    upstream_drops.push(audio_units_tx.drop_counter());

    if let Some((src, enc, _, keyint_frames)) = video {
        let (frame_tx, frame_rx) = link::<VideoFrame>(FRAME_QUEUE);
        upstream_drops.push(frame_tx.drop_counter());
        threads.push(spawn("video-source", {
            let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
            move || video_source_stage(src, frame_tx, &shutdown, &fatal)
        })?);
        threads.push(spawn("video-encode", {
            let (shutdown, fatal, keyframe, encode) = (
                shutdown.clone(),
                fatal.clone(),
                keyframe.clone(),
                encode.clone(),
            );
            move || {
                video_encode_stage(
                    (enc, keyint_frames),
                    frame_rx,
                    video_units_tx,
                    &keyframe,
                    &encode,
                    &shutdown,
                    &fatal,
                )
            }
        })?);
    } else {
        drop(video_units_tx);
    }

    if let Some(enc) = aac {
        let (block_tx, block_rx) = link::<AudioBlock>(AUDIO_QUEUE);
        upstream_drops.push(block_tx.drop_counter());
        match audio_source {
            Some(src) => threads.push(spawn("audio-source", {
                let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
                move || audio_source_stage(src, block_tx, &shutdown, &fatal)
            })?),
            None => threads.push(spawn("audio-silence", {
                let (shutdown, rate, channels) = (shutdown.clone(), args.audio_rate, args.channels);
                move || silence_stage(clock, rate, channels, block_tx, &shutdown)
            })?),
        }
        threads.push(spawn("audio-encode", {
            let (shutdown, fatal, encode) = (shutdown.clone(), fatal.clone(), encode.clone());
            move || audio_encode_stage(enc, block_rx, audio_units_tx, &encode, &shutdown, &fatal)
        })?);
    } else {
        drop(audio_units_tx);
    }

    // One thread and one link per destination.
    let reconnect_max = Duration::from_secs_f64(args.reconnect_max);
    let mut dest_links = Vec::new();
    let mut dests: Vec<(String, Arc<DestCounters>, Arc<AtomicU64>)> = Vec::new();
    let mut dest_threads = Vec::new();
    for target in targets {
        let (tx, rx) = link::<EncodedUnit>(DEST_QUEUE);
        let counters = Arc::new(DestCounters::default());
        let name = target.name();
        dests.push((name.clone(), counters.clone(), tx.drop_counter()));
        dest_links.push(tx);
        let dest = Destination {
            name: name.clone(),
            target,
            units: rx,
            counters,
            muxer: FlvMuxer::new(info.clone()),
            keyframe: keyframe.clone(),
            reconnect_max,
            started: Instant::now(),
        };
        dest_threads.push(spawn(&format!("dest-{}", dests.len()), {
            let shutdown = shutdown.clone();
            move || dest.run(&shutdown)
        })?);
    }

    threads.push(spawn("interleave", {
        let shutdown = shutdown.clone();
        move || {
            fanout_stage(
                video_units_rx,
                audio_units_rx,
                has_video,
                has_audio,
                dest_links,
                &shutdown,
            )
        }
    })?);

    tracing::info!(
        "pushing to {}",
        dests
            .iter()
            .map(|d| d.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "push");
    let mut peak = crate::stats::ProcessPeak::default();
    let mut last = Instant::now();
    let mut prev = Prev {
        video: 0,
        bytes: vec![0; dests.len()],
    };
    while !shutdown.requested() {
        thread::sleep(Duration::from_millis(50));
        let gave_up = dests
            .iter()
            .all(|d| d.1.state.load(Ordering::Relaxed) == FAILED);
        if gave_up {
            fail(
                &fatal,
                &shutdown,
                anyhow!("every destination gave up (see the errors above)"),
            );
            break;
        }
        let elapsed = last.elapsed();
        if elapsed >= Duration::from_secs(1) {
            last = Instant::now();
            let mut line = stats_line(
                &encode,
                &upstream_drops,
                &dests,
                &mut prev,
                elapsed.as_secs_f64(),
                started,
            );
            line.push_str(&capture_fragment(capture_device.as_deref(), capture_format));
            peak.sample();
            printer.show(&line);
        }
    }
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    for t in dest_threads {
        let _ = t.join();
    }
    printer.finish();
    let mut zero = Prev {
        video: 0,
        bytes: vec![0; dests.len()],
    };
    let summary = stats_line(
        &encode,
        &upstream_drops,
        &dests,
        &mut zero,
        started.elapsed().as_secs_f64(),
        started,
    );
    if !args.quiet {
        let process = peak.line();
        tracing::info!("push finished: {summary} | {process}");
    }
    if let Some(err) = fatal.lock().ok().and_then(|mut f| f.take()) {
        return Err(err.into());
    }
    let failed: Vec<&str> = dests
        .iter()
        .filter(|d| d.1.state.load(Ordering::Relaxed) == FAILED)
        .map(|d| d.0.as_str())
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("gave up on {}", failed.join(", "));
    }
    Ok(())
}

struct Prev {
    video: u64,
    bytes: Vec<u64>,
}

fn stats_line(
    encode: &EncodeCounters,
    upstream_drops: &[Arc<AtomicU64>],
    dests: &[(String, Arc<DestCounters>, Arc<AtomicU64>)],
    prev: &mut Prev,
    secs: f64,
    started: Instant,
) -> String {
    let frames = encode.video_units.load(Ordering::Relaxed);
    let fps = if secs > 0.0 {
        (frames - prev.video) as f64 / secs
    } else {
        0.0
    };
    prev.video = frames;
    let up: u64 = upstream_drops
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .sum::<u64>()
        + encode.encoder_skips.load(Ordering::Relaxed);
    let mut parts = vec![format!(
        "video {fps:.1} fps frames {frames} audio {} drop {up}",
        encode.audio_units.load(Ordering::Relaxed)
    )];
    let now_ms = started.elapsed().as_millis() as u64;
    for ((name, c, link_drops), prev_bytes) in dests.iter().zip(prev.bytes.iter_mut()) {
        let bytes = c.bytes.load(Ordering::Relaxed);
        let rate = kbps(bytes.saturating_sub(*prev_bytes), secs);
        *prev_bytes = bytes;
        let state = match c.state.load(Ordering::Relaxed) {
            CONNECTING => "connecting".to_string(),
            LIVE => "live".to_string(),
            RETRYING => {
                let at = c.retry_at_ms.load(Ordering::Relaxed);
                format!("retrying in {} s", at.saturating_sub(now_ms).div_ceil(1000))
            }
            FAILED => "failed".to_string(),
            _ => "done".to_string(),
        };
        parts.push(format!(
            "{name} {state} {rate:.0} kbit/s drop {} reconnects {}",
            c.dropped.load(Ordering::Relaxed) + link_drops.load(Ordering::Relaxed),
            c.reconnects.load(Ordering::Relaxed)
        ));
    }
    parts.join(" | ")
}

impl Destination {
    fn run(mut self, shutdown: &Shutdown) {
        let result = match self.target.clone() {
            Target::File(path) => self.run_file(&path, shutdown),
            Target::Rtmp(url) => self.run_rtmp(&url, shutdown),
        };
        match result {
            Ok(()) => self.counters.state.store(DONE, Ordering::Relaxed),
            Err(e) => {
                tracing::error!("{}: giving up: {e:#}", self.name);
                self.counters.state.store(FAILED, Ordering::Relaxed);
                // Keep draining so upstream never notices, and count what is lost.
                while !shutdown.requested() {
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

    fn run_file(&mut self, path: &PathBuf, shutdown: &Shutdown) -> anyhow::Result<()> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = BufWriter::new(file);
        let info = self.muxer.info();
        w.write_all(&file_header(info.video.is_some(), info.audio.is_some()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.counters.state.store(LIVE, Ordering::Relaxed);
        let mut tags = Vec::new();
        let mut buf = Vec::new();
        loop {
            let unit = match self.units.recv_timeout(Duration::from_millis(100)) {
                Recv::Item(u) => u,
                Recv::Timeout if shutdown.requested() => break,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            tags.clear();
            if !self
                .muxer
                .push(&unit, &mut tags)
                .context("FLV muxing failed")?
            {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            buf.clear();
            for t in &tags {
                t.write_to(&mut buf);
            }
            w.write_all(&buf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            self.counters
                .bytes
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn run_rtmp(&mut self, url: &RtmpUrl, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut backoff = FIRST_RETRY;
        let mut attempts = 0u64;
        while !shutdown.requested() {
            self.counters.state.store(CONNECTING, Ordering::Relaxed);
            attempts += 1;
            if attempts > 1 {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            match RtmpConnection::connect(url, CONNECT_TIMEOUT) {
                Ok(conn) => {
                    tracing::info!("{}: live", self.name);
                    backoff = FIRST_RETRY;
                    match self.stream(conn, shutdown) {
                        Ok(()) => return Ok(()),
                        Err(e) if e.is_retryable() => tracing::warn!("{}: {e}", self.name),
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.is_retryable() => tracing::warn!("{}: {e}", self.name),
                Err(e) => return Err(e.into()),
            }
            if shutdown.requested() {
                break;
            }
            // Wait with jitter (up to +20%, so the first retry comes after
            // 1 s at the earliest), dropping and counting what is made meanwhile.
            let jitter = StdRng::from_os_rng().random_range(1.0..1.2);
            let wait = backoff.mul_f64(jitter).min(self.reconnect_max);
            backoff = backoff.mul_f64(BACKOFF_FACTOR).min(self.reconnect_max);
            tracing::info!("{}: retrying in {:.1} s", self.name, wait.as_secs_f64());
            let until = Instant::now() + wait;
            self.counters
                .retry_at_ms
                .store((until - self.started).as_millis() as u64, Ordering::Relaxed);
            self.counters.state.store(RETRYING, Ordering::Relaxed);
            while Instant::now() < until && !shutdown.requested() {
                if let Recv::Item(_) = self.units.recv_timeout(Duration::from_millis(50)) {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Streams until shutdown (Ok) or a connection error.
    fn stream(&mut self, mut conn: RtmpConnection, shutdown: &Shutdown) -> Result<(), RtmpError> {
        // A fresh start: headers again, from a keyframe the encoder makes now.
        self.muxer.restart();
        self.keyframe.store(true, Ordering::Relaxed);
        // Whatever queued while we were away is stale.
        while let Recv::Item(_) = self.units.try_recv() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.state.store(LIVE, Ordering::Relaxed);
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
                Recv::Timeout if shutdown.requested() => break,
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

/// Merges audio and video in capture order and hands every unit to every destination.
fn fanout_stage(
    video: LinkReceiver<EncodedUnit>,
    audio: LinkReceiver<EncodedUnit>,
    has_video: bool,
    has_audio: bool,
    dests: Vec<LinkSender<EncodedUnit>>,
    shutdown: &Shutdown,
) {
    let mut il = Interleaver::new(has_video, has_audio, INTERLEAVE_WAIT);
    let never = crossbeam_channel::never();
    let (mut v_open, mut a_open) = (has_video, has_audio);
    let send_all = |unit: EncodedUnit| {
        for d in &dests {
            // A destination that has gone is simply skipped.
            let _ = d.send(unit.clone());
        }
    };
    while (v_open || a_open) && !shutdown.requested() {
        let vr = if v_open { video.as_receiver() } else { &never };
        let ar = if a_open { audio.as_receiver() } else { &never };
        crossbeam_channel::select! {
            recv(vr) -> m => match m {
                Ok(u) => il.push(u),
                Err(_) => v_open = false,
            },
            recv(ar) -> m => match m {
                Ok(u) => il.push(u),
                Err(_) => a_open = false,
            },
            default(Duration::from_millis(100)) => {}
        }
        while let Some(u) = il.pop() {
            send_all(u);
        }
    }
    for u in il.drain() {
        send_all(u);
    }
}

/// Paced 10 ms blocks of silence, for `--silent-audio`.
fn silence_stage(
    clock: PipelineClock,
    rate: u32,
    channels: u16,
    out: LinkSender<AudioBlock>,
    shutdown: &Shutdown,
) {
    let frames = (rate / 100) as usize;
    let step = Duration::from_millis(10);
    let mut n: u32 = 0;
    while !shutdown.requested() {
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

fn video_encode_stage(
    (mut enc, keyint_frames): (H264Encoder, u32),
    frames: LinkReceiver<VideoFrame>,
    out: LinkSender<EncodedUnit>,
    keyframe: &AtomicBool,
    counters: &EncodeCounters,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
) {
    // GOPs are timed here rather than by openh264's frame counter, so that
    // an IDR forced by a (re)connect restarts the 2 s cadence instead of
    // being followed by a short GOP.
    let fps = f64::from(enc.config().fps).max(1.0);
    let keyint = Duration::from_secs_f64((f64::from(keyint_frames) / fps - 0.5 / fps).max(0.0));
    let mut last_idr: Option<Duration> = None;
    while let Some(frame) = frames.recv() {
        let due = last_idr.is_none_or(|t| frame.pts.saturating_sub(t) >= keyint);
        if keyframe.swap(false, Ordering::Relaxed) || due {
            enc.request_keyframe();
        }
        match enc.encode(&frame) {
            Ok(Some(unit)) => {
                if unit.keyframe {
                    last_idr = Some(frame.pts);
                }
                counters.video_units.fetch_add(1, Ordering::Relaxed);
                if out.send(unit).is_err() {
                    break;
                }
            }
            Ok(None) => {
                counters.encoder_skips.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                fail(fatal, shutdown, anyhow!(e).context("H.264 encoding failed"));
                break;
            }
        }
    }
}

fn audio_encode_stage(
    mut enc: AacEncoder,
    blocks: LinkReceiver<AudioBlock>,
    out: LinkSender<EncodedUnit>,
    counters: &EncodeCounters,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
) {
    while let Some(block) = blocks.recv() {
        match enc.encode(&block) {
            Ok(units) => {
                for unit in units {
                    counters.audio_units.fetch_add(1, Ordering::Relaxed);
                    if out.send(unit).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                fail(fatal, shutdown, anyhow!(e).context("AAC encoding failed"));
                return;
            }
        }
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
    fn aac_rate_and_reconnect_limits() {
        assert_eq!(parse_aac_rate("44100"), Ok(44_100));
        assert!(parse_aac_rate("32000").is_err());
        assert!(parse_reconnect_max("0").is_err());
        assert_eq!(parse_reconnect_max("5"), Ok(5.0));
    }
}
