//! Source -> sink without encoding (what `pstream bridge` runs): a shmdata
//! writer to a virtual camera, a camera to a Y4M file, a test pattern to
//! shmdata, any source pstream has to any sink.
//!
//! ```text
//! video source ─link─▶ video sink (scaled to the sink's size when it cannot change size)
//! audio source ─link─▶ audio sink (resampled to the sink's rate when the source's changes)
//! ```
//!
//! Sources pace themselves (a file at its frame rate, a device or a shmdata
//! writer as it delivers); each sink takes what comes through a bounded
//! drop-oldest link, so a sink that blocks (a device, a slow disk) loses
//! the oldest pictures, counted, and never holds the source back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pstream_codec::{Resampler, Scaler};
use pstream_core::{
    link, AudioBlock, AudioFormat, AudioSink, LinkReceiver, PipelineClock, VideoFormat, VideoFrame,
    VideoSink,
};

use crate::run::{Stages, Stop};
use crate::sources::{open_audio_sink, open_video_sink};
use crate::stages::{audio_source_stage, open_audio, open_video, video_source_stage};
use crate::stats::{per_second, StatsLine};
use crate::{Error, Result};

/// Pictures waiting for the sink: a few absorb a sink's hiccup without
/// aging the picture much.
const FRAME_QUEUE: usize = 3;
/// Audio blocks (10 ms each) waiting for the sink.
const AUDIO_QUEUE: usize = 32;

/// What to bridge: every option of `pstream bridge`.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Video source spec (`test`, `y4m:PATH`, `v4l2:DEV`, `shmdata:PATH`, ...) or `none`.
    pub video: String,
    /// Audio source spec (`test`, `wav:PATH`, a device, `shmdata:PATH`) or `none`.
    pub audio: String,
    /// Video sink spec (`y4m:PATH`, `v4l2:DEV`, `shmdata:PATH`, `null`).
    pub video_out: String,
    /// Audio sink spec (`wav:PATH`, a device, `shmdata:PATH`, `null`).
    pub audio_out: String,
    /// Test pattern size, and the size used until a shmdata writer comes.
    pub size: (u32, u32),
    /// Test pattern frame rate (files and writers bring their own).
    pub fps: u32,
    /// Sample rate asked of synthetic audio sources.
    pub sample_rate: u32,
    /// Channels asked of synthetic audio sources.
    pub channels: u16,
}

impl BridgeConfig {
    /// Video from `video` to nowhere (`null`), no audio, 1280x720@30 for
    /// sources that need a size.
    pub fn new(video: impl Into<String>) -> Self {
        Self {
            video: video.into(),
            audio: "none".into(),
            video_out: "null".into(),
            audio_out: "null".into(),
            size: (1280, 720),
            fps: 30,
            sample_rate: 48_000,
            channels: 2,
        }
    }
}

/// Counters of one bridged stream, shared with the stats line.
#[derive(Debug, Default)]
struct Counters {
    /// Pictures or blocks written to the sink.
    written: AtomicU64,
    /// Pictures scaled, or blocks resampled, to fit the sink.
    converted: AtomicU64,
}

/// A stream's name, counters and the drop counter of its link.
type Entry = (&'static str, Arc<Counters>, Arc<AtomicU64>);

/// A running bridge: its stage threads and their counters.
pub struct BridgeRun {
    stages: Stages,
    streams: Vec<Entry>,
    prev: Vec<u64>,
    last: Instant,
    started: Instant,
}

impl std::fmt::Debug for BridgeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeRun")
            .field("threads", &self.stages.count())
            .finish_non_exhaustive()
    }
}

impl BridgeRun {
    /// Opens the sources and sinks of `config` (so that a bad spec fails
    /// before anything runs) and starts the stages; the run ends when `stop`
    /// is set, a source ends, or a stage fails.
    pub fn start(config: &BridgeConfig, stop: Stop) -> Result<Self> {
        let clock = PipelineClock::start();
        let video = open_video(&config.video, config.size, config.fps, clock)?;
        let audio = open_audio(&config.audio, config.sample_rate, config.channels, clock)?;
        if video.is_none() && audio.is_none() {
            return Err(Error::Config(
                "nothing to bridge: both --video and --audio are none".into(),
            ));
        }
        let mut me = Self {
            stages: Stages::new(stop),
            streams: Vec::new(),
            prev: Vec::new(),
            last: Instant::now(),
            started: Instant::now(),
        };
        if let Some(src) = video {
            let format = src.format();
            let sink = open_video_sink(&config.video_out, format)?;
            tracing::info!(
                "bridging {} ({}x{} at {:.2} fps) to {}",
                config.video,
                format.width,
                format.height,
                format.fps(),
                config.video_out
            );
            let counters = Arc::new(Counters::default());
            let (tx, rx) = link::<VideoFrame>(FRAME_QUEUE);
            me.streams
                .push(("video", counters.clone(), tx.drop_counter()));
            me.stages.spawn("video-source", move |stop| {
                video_source_stage(src, tx, stop, None)
            })?;
            me.stages.spawn("video-sink", move |_| {
                video_sink_stage(sink, format, rx, &counters)
            })?;
        }
        if let Some(src) = audio {
            let format = src.format();
            let sink = open_audio_sink(&config.audio_out, format)?;
            tracing::info!(
                "bridging {} ({} Hz, {} channels) to {}",
                config.audio,
                format.sample_rate,
                format.channels,
                config.audio_out
            );
            let counters = Arc::new(Counters::default());
            let (tx, rx) = link::<AudioBlock>(AUDIO_QUEUE);
            me.streams
                .push(("audio", counters.clone(), tx.drop_counter()));
            me.stages.spawn("audio-source", move |stop| {
                audio_source_stage(src, tx, stop)
            })?;
            me.stages.spawn("audio-sink", move |_| {
                audio_sink_stage(sink, format, rx, &counters)
            })?;
        }
        me.prev = vec![0; me.streams.len()];
        me.last = Instant::now();
        me.started = Instant::now();
        Ok(me)
    }

    /// True once the run is ending (stop requested, a source ended, or a
    /// stage failed).
    pub fn stopping(&self) -> bool {
        self.stages.ending()
    }

    /// Asks every stage to stop; [`BridgeRun::wait`] then returns promptly.
    pub fn stop(&self) {
        self.stages.stop();
    }

    /// The stats since the last call: per stream the rate written, the
    /// count, drops (pictures the sink had no time for) and conversions.
    pub fn stats_line(&mut self) -> String {
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        stats_line(&self.streams, &mut self.prev, secs).to_string()
    }

    /// The same figures averaged over the whole run.
    pub fn summary(&self) -> String {
        let mut prev = vec![0; self.streams.len()];
        stats_line(
            &self.streams,
            &mut prev,
            self.started.elapsed().as_secs_f64(),
        )
        .to_string()
    }

    /// Waits until the run ends and every stage (sinks finished) is done;
    /// the first stage failure, if any.
    pub fn wait(&mut self) -> Result<()> {
        self.stages.wait()
    }
}

fn stats_line(streams: &[Entry], prev: &mut [u64], secs: f64) -> StatsLine {
    let mut line = StatsLine::new();
    for ((name, c, drops), prev) in streams.iter().zip(prev.iter_mut()) {
        let written = c.written.load(Ordering::Relaxed);
        let rate = per_second(written.saturating_sub(*prev), secs);
        *prev = written;
        line.section(name);
        if *name == "video" {
            line.rate(rate, 1, "fps").count("frames", written);
        } else {
            line.count("blocks", written);
        }
        line.count("drop", drops.load(Ordering::Relaxed))
            .count_nonzero(
                if *name == "video" {
                    "scaled"
                } else {
                    "resampled"
                },
                c.converted.load(Ordering::Relaxed),
            );
    }
    line
}

/// Writes every picture to the sink until the source's link closes, then
/// finishes the sink. A sink that cannot change size (a Y4M file) gets
/// pictures of another size scaled to the size it was opened at.
fn video_sink_stage(
    mut sink: Box<dyn VideoSink>,
    format: VideoFormat,
    frames: LinkReceiver<VideoFrame>,
    counters: &Counters,
) -> Result<()> {
    let fixed = (!sink.accepts_size_changes()).then_some((format.width, format.height));
    let mut scaler: Option<Scaler> = None;
    while let Some(frame) = frames.recv() {
        let size = (frame.width(), frame.height());
        let frame = match fixed {
            Some(out) if out != size => {
                if scaler.as_ref().is_none_or(|s| s.source_size() != size) {
                    tracing::info!(
                        "video source now {}x{}: scaled to the sink's {}x{}",
                        size.0,
                        size.1,
                        out.0,
                        out.1
                    );
                    scaler = Some(
                        Scaler::new(size.0, size.1, out.0, out.1)
                            .map_err(|e| Error::failed("cannot scale for the video sink", e))?,
                    );
                }
                let Some(s) = scaler.as_mut() else { continue };
                counters.converted.fetch_add(1, Ordering::Relaxed);
                s.scale(&frame)
                    .map_err(|e| Error::failed("cannot scale for the video sink", e))?
            }
            _ => frame,
        };
        sink.write_frame(&frame)?;
        counters.written.fetch_add(1, Ordering::Relaxed);
    }
    sink.finish()?;
    Ok(())
}

/// Writes every block to the sink until the source's link closes, then
/// finishes the sink; blocks at another rate than the sink was opened with
/// (a shmdata writer back at another rate) are resampled to it, and other
/// channel counts mixed or spread to it.
fn audio_sink_stage(
    mut sink: Box<dyn AudioSink>,
    format: AudioFormat,
    blocks: LinkReceiver<AudioBlock>,
    counters: &Counters,
) -> Result<()> {
    let mut resampler: Option<Resampler> = None;
    while let Some(block) = blocks.recv() {
        let block = if block.sample_rate == format.sample_rate && block.channels == format.channels
        {
            block
        } else {
            counters.converted.fetch_add(1, Ordering::Relaxed);
            convert_audio(block, format, &mut resampler)?
        };
        sink.write_block(&block)?;
        counters.written.fetch_add(1, Ordering::Relaxed);
    }
    sink.finish()?;
    Ok(())
}

/// `block` in the sink's channel count and rate.
fn convert_audio(
    block: AudioBlock,
    format: AudioFormat,
    resampler: &mut Option<Resampler>,
) -> Result<AudioBlock> {
    let (from, to) = (usize::from(block.channels), usize::from(format.channels));
    let samples: Vec<f32> = if from == to || from == 0 {
        block.samples
    } else {
        block
            .samples
            .chunks_exact(from)
            .flat_map(|frame| {
                // Down to mono: the mean; otherwise channel i from i (or the last).
                (0..to).map(move |i| {
                    if to == 1 {
                        frame.iter().sum::<f32>() / from as f32
                    } else {
                        frame[i.min(from - 1)]
                    }
                })
            })
            .collect()
    };
    let samples = if block.sample_rate == format.sample_rate {
        samples
    } else {
        let fresh = resampler
            .as_ref()
            .is_none_or(|r| r.in_rate() != block.sample_rate);
        if fresh {
            *resampler = Some(
                Resampler::new(block.sample_rate, format.sample_rate, format.channels)
                    .map_err(|e| Error::codec("cannot resample for the audio sink", e))?,
            );
        }
        let mut out = Vec::new();
        if let Some(r) = resampler.as_mut() {
            r.process(&samples, &mut out);
        }
        out
    };
    Ok(AudioBlock {
        sample_rate: format.sample_rate,
        channels: format.channels,
        samples,
        capture: block.capture,
        pts: block.pts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_pattern_is_bridged_to_a_y4m_file() {
        let path = std::env::temp_dir().join(format!("pstream-bridge-{}.y4m", std::process::id()));
        let mut config = BridgeConfig::new("test");
        config.video_out = format!("y4m:{}", path.display());
        config.size = (64, 48);
        config.fps = 50;
        let mut run = BridgeRun::start(&config, Stop::after(0.5).expect("valid")).expect("start");
        run.wait().expect("ran");
        let summary = run.summary();
        let data = std::fs::read(&path).expect("y4m written");
        let _ = std::fs::remove_file(&path);
        let frames = data.windows(6).filter(|w| w == b"FRAME\n").count();
        assert!((15..=30).contains(&frames), "{frames} frames; {summary}");
        assert!(summary.starts_with("video"), "{summary}");
    }

    #[test]
    fn nothing_to_bridge_is_refused() {
        let mut config = BridgeConfig::new("none");
        config.audio = "none".into();
        let e = BridgeRun::start(&config, Stop::new()).expect_err("refused");
        assert!(e.to_string().contains("nothing to bridge"), "{e}");
    }

    #[test]
    fn audio_is_converted_to_the_sinks_format() {
        let block = AudioBlock {
            sample_rate: 48_000,
            channels: 2,
            samples: vec![0.5, -0.5, 0.25, 0.25],
            capture: Instant::now(),
            pts: std::time::Duration::ZERO,
        };
        let mono = AudioFormat {
            sample_rate: 48_000,
            channels: 1,
        };
        let out = convert_audio(block, mono, &mut None).expect("converted");
        assert_eq!(out.samples, vec![0.0, 0.25]);
    }
}
