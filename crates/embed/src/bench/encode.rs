//! `pstream bench encode`: how fast, how heavy and how good each encoder is
//! on this machine, one table row per combination of settings.
//!
//! Each row opens its source afresh, feeds it to one encoder and times
//! every call: wall-clock latency per frame (median, p95, p99, max), CPU
//! time per frame, the bitrate reached, and the PSNR of the encoder's output,
//! decoded again, against the very frames it was given. Frames go in as fast
//! as the encoder takes them (reading and scaling them is not timed), or at
//! the source's own pace with [`EncodeBench::realtime`]; devices and shmdata
//! writers always deliver at their own pace.
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! use pstream_embed::bench::encode::{BenchCodec, EncodeBench};
//! let report = EncodeBench::new()
//!     .codecs([BenchCodec::H264, BenchCodec::Opus])
//!     .sizes([(640, 360), (1280, 720)])
//!     .frames(150)
//!     .run()?;
//! print!("{}", report.table());
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use pstream_capture::tone::{AMPLITUDE, DEFAULT_FREQ_HZ};
use pstream_capture::TestPattern;
use pstream_codec::opus::FRAME_SAMPLES as OPUS_FRAME_SAMPLES;
use pstream_codec::{
    AacConfig, AacDecoder, AacEncoder, H264Config, H264Decoder, H264Encoder, H264Preset,
    MjpegDecoder, MjpegEncoder, OpusApplication, OpusConfig, OpusDecoder, OpusEncoder, Scaler,
    VideoDecoder, VideoEncoder,
};
use pstream_core::{
    AudioBlock, AudioFormat, AudioSource, MediaError, PipelineClock, VideoFormat, VideoFrame,
    VideoSource,
};
use pstream_mux::{FileError, WavReader, Y4mReader};

use super::list::preset_name;
use super::stats::{audio_psnr, CpuClock, LatencySummary, PictureError};
use crate::sources::{open_audio_source, open_video_source};
use crate::{Error, Result};

/// An encoder the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchCodec {
    /// H.264 with openh264 (presets, threads, bitrates).
    H264,
    /// Motion JPEG with libjpeg-turbo (qualities).
    Mjpeg,
    /// Opus with libopus, 20 ms frames (bitrates).
    Opus,
    /// AAC-LC with fdk-aac, 1024-sample frames (bitrates).
    Aac,
}

impl BenchCodec {
    /// Every codec, video first.
    pub const ALL: [BenchCodec; 4] = [
        BenchCodec::H264,
        BenchCodec::Mjpeg,
        BenchCodec::Opus,
        BenchCodec::Aac,
    ];

    /// The name `--codecs` takes and the table shows.
    pub fn name(self) -> &'static str {
        match self {
            BenchCodec::H264 => "h264",
            BenchCodec::Mjpeg => "mjpeg",
            BenchCodec::Opus => "opus",
            BenchCodec::Aac => "aac",
        }
    }

    /// True for the picture codecs.
    pub fn is_video(self) -> bool {
        matches!(self, BenchCodec::H264 | BenchCodec::Mjpeg)
    }
}

/// How much of the source each row encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// This many pictures; audio rows encode as long as that lasts at the
    /// benchmark's frame rate ([`EncodeBench::fps`]).
    Frames(u64),
    /// This many seconds of media (not of wall-clock time).
    Seconds(f64),
}

/// The settings of one table row.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Case {
    /// The encoder.
    pub codec: BenchCodec,
    /// The picture size fed to the encoder; `None`: the source's own.
    pub size: Option<(u32, u32)>,
    /// H.264 preset.
    pub preset: Option<H264Preset>,
    /// H.264 threads (0: one per core).
    pub threads: Option<u16>,
    /// Target bitrate in kbit/s (H.264, Opus, AAC).
    pub bitrate_kbps: Option<u32>,
    /// JPEG quality 1..=100 (MJPEG).
    pub quality: Option<u8>,
}

/// What one row's encoder was fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// Pictures.
    Video {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames per second of the source.
        fps: f64,
    },
    /// Sound.
    Audio {
        /// Samples per second per channel of the source.
        sample_rate: u32,
        /// Channels of the source.
        channels: u16,
    },
}

/// How close the decoded output came to the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Fidelity {
    /// Pictures: PSNR in dB of the run's mean squared error.
    Video {
        /// Luma.
        psnr_y: f64,
        /// All three planes, every sample weighing the same.
        psnr_all: f64,
        /// The worst single picture's luma PSNR.
        min_psnr_y: f64,
    },
    /// Sound: PSNR in dB against full scale, after aligning for the codec delay.
    Audio {
        /// Every channel.
        psnr: f64,
    },
    /// Not measured, and why.
    NotAvailable(String),
}

/// One row of the table: a [`Case`] and what it measured.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RowResult {
    /// The settings.
    pub case: Case,
    /// What the encoder was fed.
    pub input: Input,
    /// Frames given to the encoder (audio: codec frames of input).
    pub frames: u64,
    /// Encoded units that came out.
    pub encoded: u64,
    /// Pictures rate control dropped (H.264): no unit for them.
    pub skipped: u64,
    /// Whether frames came at the source's pace rather than as fast as taken.
    pub paced: bool,
    /// Wall-clock time of each encode call, every frame counted (the
    /// first, with the encoder's set-up and an IDR, included).
    pub latency: LatencySummary,
    /// How many times faster than real time the encoder ran: the frame
    /// interval over the mean encode time.
    pub headroom: f64,
    /// CPU milliseconds per frame over every thread of the process while
    /// the encoder ran (its own worker threads count); `None` without the clock.
    pub cpu_ms_per_frame: Option<f64>,
    /// CPU milliseconds per frame of the calling thread alone.
    pub thread_cpu_ms_per_frame: Option<f64>,
    /// Bits out per second of media, in kbit/s.
    pub bitrate_kbps: f64,
    /// The decoded output against the input.
    pub fidelity: Fidelity,
    /// Wall-clock seconds the row took, reading and checking included.
    pub wall_seconds: f64,
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPU model as /proc/cpuinfo names it (empty if unknown).
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// The architecture this build is for.
    pub arch: &'static str,
}

impl Machine {
    /// The machine this runs on.
    pub fn this() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        // x86 names "model name"; ARM boards "Model" (a Pi's board) or "Hardware".
        let cpu = ["model name", "Model", "Hardware"]
            .iter()
            .find_map(|key| {
                info.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == *key).then(|| v.trim().to_owned())
                })
            })
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arch: std::env::consts::ARCH,
        }
    }
}

/// Every row of a benchmark run and where it ran.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EncodeReport {
    /// The rows, in the order they ran.
    pub rows: Vec<RowResult>,
    /// The machine.
    pub machine: Machine,
    /// The video source spec.
    pub video: String,
    /// The audio source spec.
    pub audio: String,
    /// Whether file and test sources were paced at their frame rate.
    pub realtime: bool,
}

/// Opus's default bitrate in kbit/s (what `pstream send` uses).
const OPUS_DEFAULT_KBPS: u32 = 96;
/// AAC's default bitrate in kbit/s (what `pstream push` uses).
const AAC_DEFAULT_KBPS: u32 = 128;
/// The one rate the audio encoders are compared at.
const AUDIO_RATE: u32 = 48_000;
/// Seconds of sound kept for the audio PSNR: enough to judge, bounded in memory.
const AUDIO_COMPARE_SECONDS: u32 = 20;
/// Largest codec delay searched for when aligning decoded sound, in frames.
const AUDIO_MAX_LAG: usize = 4096;
/// Decoded sound not compared at the start, in frames (50 ms): a decoder's
/// first frame has nothing to overlap with (AAC's first units, the
/// encoder's priming, are not sent), a start-up no listener hears twice.
const AUDIO_SKIP_FRAMES: usize = 2400;

/// The benchmark's settings: [`EncodeBench::new`], a few settings, [`EncodeBench::run`].
#[derive(Debug, Clone)]
pub struct EncodeBench {
    video: String,
    audio: String,
    codecs: Vec<BenchCodec>,
    sizes: Option<Vec<(u32, u32)>>,
    fps: u32,
    presets: Vec<H264Preset>,
    threads: Vec<u16>,
    bitrates_kbps: Vec<u32>,
    qualities: Vec<u8>,
    audio_bitrates_kbps: Option<Vec<u32>>,
    channels: u16,
    limit: Limit,
    realtime: bool,
    h264: crate::m2m::H264Backend,
}

impl Default for EncodeBench {
    fn default() -> Self {
        Self::new()
    }
}

impl EncodeBench {
    /// H.264 at 1280x720@30 from the test pattern, every preset, one
    /// thread, 2500 kbit/s, 300 frames: `pstream bench encode` with no options.
    pub fn new() -> Self {
        Self {
            video: "test".into(),
            audio: "test".into(),
            codecs: vec![BenchCodec::H264],
            sizes: None,
            fps: 30,
            presets: super::list::PRESETS.to_vec(),
            threads: vec![1],
            bitrates_kbps: vec![2500],
            qualities: vec![pstream_codec::mjpeg::DEFAULT_QUALITY],
            audio_bitrates_kbps: None,
            channels: 2,
            limit: Limit::Frames(300),
            realtime: false,
            h264: crate::m2m::H264Backend::Openh264,
        }
    }

    /// The H.264 encoder the H.264 rows use (default openh264; a V4L2
    /// memory-to-memory encoder from [`crate::EncoderChoice::resolve`]).
    pub fn h264_encoder(mut self, backend: crate::m2m::H264Backend) -> Self {
        self.h264 = backend;
        self
    }

    /// The video source spec (`test`, `y4m:PATH`, `y4m:-`, `v4l2:...`, `shmdata:PATH`).
    pub fn video(mut self, spec: impl Into<String>) -> Self {
        self.video = spec.into();
        self
    }

    /// The audio source spec (`test`, `wav:PATH`, `wav:-`, a device, `shmdata:PATH`).
    pub fn audio(mut self, spec: impl Into<String>) -> Self {
        self.audio = spec.into();
        self
    }

    /// The encoders to run, in table order.
    pub fn codecs(mut self, codecs: impl IntoIterator<Item = BenchCodec>) -> Self {
        self.codecs = codecs.into_iter().collect();
        self
    }

    /// Picture sizes the video encoders are fed (sources of another size are
    /// scaled first, untimed). Default: 1280x720 for the test pattern, the
    /// source's own size otherwise.
    pub fn sizes(mut self, sizes: impl IntoIterator<Item = (u32, u32)>) -> Self {
        self.sizes = Some(sizes.into_iter().collect());
        self
    }

    /// The test pattern's frame rate, and the rate asked of cameras (files bring their own).
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }

    /// H.264 presets.
    pub fn presets(mut self, presets: impl IntoIterator<Item = H264Preset>) -> Self {
        self.presets = presets.into_iter().collect();
        self
    }

    /// H.264 thread counts (0: one per core).
    pub fn threads(mut self, threads: impl IntoIterator<Item = u16>) -> Self {
        self.threads = threads.into_iter().collect();
        self
    }

    /// H.264 target bitrates in kbit/s.
    pub fn bitrates_kbps(mut self, kbps: impl IntoIterator<Item = u32>) -> Self {
        self.bitrates_kbps = kbps.into_iter().collect();
        self
    }

    /// MJPEG qualities (1..=100).
    pub fn qualities(mut self, qualities: impl IntoIterator<Item = u8>) -> Self {
        self.qualities = qualities.into_iter().collect();
        self
    }

    /// Opus and AAC bitrates in kbit/s (default: 96 for Opus, 128 for AAC).
    pub fn audio_bitrates_kbps(mut self, kbps: impl IntoIterator<Item = u32>) -> Self {
        self.audio_bitrates_kbps = Some(kbps.into_iter().collect());
        self
    }

    /// Channels the audio encoders encode (1 or 2).
    pub fn channels(mut self, channels: u16) -> Self {
        self.channels = channels;
        self
    }

    /// Encode this many pictures per row.
    pub fn frames(mut self, frames: u64) -> Self {
        self.limit = Limit::Frames(frames);
        self
    }

    /// Encode this many seconds of media per row.
    pub fn seconds(mut self, seconds: f64) -> Self {
        self.limit = Limit::Seconds(seconds);
        self
    }

    /// Feed files and the test pattern at their frame rate instead of as
    /// fast as the encoder takes them.
    pub fn realtime(mut self, on: bool) -> Self {
        self.realtime = on;
        self
    }

    /// The rows this benchmark runs, in order: per codec, every combination
    /// of its lists (H.264: sizes x presets x threads x bitrates; MJPEG:
    /// sizes x qualities; Opus and AAC: bitrates).
    pub fn cases(&self) -> Vec<Case> {
        let base = |codec| Case {
            codec,
            size: None,
            preset: None,
            threads: None,
            bitrate_kbps: None,
            quality: None,
        };
        let sizes: Vec<Option<(u32, u32)>> = match &self.sizes {
            Some(s) => s.iter().copied().map(Some).collect(),
            None if self.video == "test" => vec![Some((1280, 720))],
            None => vec![None],
        };
        let mut out = Vec::new();
        for codec in &self.codecs {
            match codec {
                BenchCodec::H264 => {
                    for size in &sizes {
                        for preset in &self.presets {
                            for threads in &self.threads {
                                for kbps in &self.bitrates_kbps {
                                    out.push(Case {
                                        size: *size,
                                        preset: Some(*preset),
                                        threads: Some(*threads),
                                        bitrate_kbps: Some(*kbps),
                                        ..base(*codec)
                                    });
                                }
                            }
                        }
                    }
                }
                BenchCodec::Mjpeg => {
                    for size in &sizes {
                        for q in &self.qualities {
                            out.push(Case {
                                size: *size,
                                quality: Some(*q),
                                ..base(*codec)
                            });
                        }
                    }
                }
                BenchCodec::Opus | BenchCodec::Aac => {
                    let default = if *codec == BenchCodec::Opus {
                        OPUS_DEFAULT_KBPS
                    } else {
                        AAC_DEFAULT_KBPS
                    };
                    let rates = self.audio_bitrates_kbps.clone();
                    for kbps in rates.unwrap_or_else(|| vec![default]) {
                        out.push(Case {
                            bitrate_kbps: Some(kbps),
                            ..base(*codec)
                        });
                    }
                }
            }
        }
        out
    }

    /// Checks every setting and every row's encoder settings before
    /// anything runs, so a bad one is reported at once, not after minutes.
    pub fn check(&self) -> Result<()> {
        let cases = self.cases();
        if cases.is_empty() {
            return Err(Error::Config(
                "nothing to run: every list is empty".to_owned(),
            ));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(Error::Config(format!(
                "fps {} must be between 1 and 240",
                self.fps
            )));
        }
        match self.limit {
            Limit::Frames(0) => return Err(Error::Config("frames must be at least 1".into())),
            Limit::Seconds(s) if !(s.is_finite() && s > 0.0 && s <= 86_400.0) => {
                return Err(Error::Config(format!(
                    "duration {s} must be more than 0 and at most 86400 seconds"
                )))
            }
            _ => {}
        }
        let video_rows = cases.iter().filter(|c| c.codec.is_video()).count();
        let audio_rows = cases.len() - video_rows;
        for (spec, rows) in [(&self.video, video_rows), (&self.audio, audio_rows)] {
            if spec.ends_with(":-") && rows > 1 {
                return Err(Error::Config(format!(
                    "{spec} (standard input) can be read once, but {rows} rows need it: \
                     list one setting of each, or give a file"
                )));
            }
        }
        if self.video.ends_with(":-")
            && self.audio.ends_with(":-")
            && video_rows > 0
            && audio_rows > 0
        {
            return Err(Error::Config(
                "standard input cannot feed both video and audio rows".into(),
            ));
        }
        for case in &cases {
            self.check_case(case)?;
        }
        Ok(())
    }

    /// Builds the row's encoder once, for its own checks of the settings.
    fn check_case(&self, case: &Case) -> Result<()> {
        match case.codec {
            BenchCodec::H264 => {
                if let Some((w, h)) = case.size {
                    let config = self.h264_config(case, w, h, self.fps as f32);
                    match &self.h264 {
                        crate::m2m::H264Backend::Openh264 => {
                            H264Encoder::new(config)
                                .map_err(|e| Error::codec(describe(case), e))?;
                        }
                        // Opening the device is the run's business.
                        crate::m2m::H264Backend::V4l2M2m(_) => {}
                    }
                }
            }
            BenchCodec::Mjpeg => {
                MjpegEncoder::new(case.quality.unwrap_or(0))
                    .map_err(|e| Error::codec(describe(case), e))?;
            }
            BenchCodec::Opus => {
                OpusEncoder::new(self.opus_config(case))
                    .map_err(|e| Error::codec(describe(case), e))?;
            }
            BenchCodec::Aac => {
                AacEncoder::new(self.aac_config(case))
                    .map_err(|e| Error::codec(describe(case), e))?;
            }
        }
        Ok(())
    }

    fn h264_config(&self, case: &Case, width: u32, height: u32, fps: f32) -> H264Config {
        H264Config {
            width,
            height,
            fps,
            bitrate_bps: case.bitrate_kbps.unwrap_or(0).saturating_mul(1000),
            // What `pstream send` does: an IDR every 2 s.
            keyint_frames: (2.0 * fps).round().max(1.0) as u32,
            threads: case.threads.unwrap_or(1),
            preset: case.preset.unwrap_or_default(),
        }
    }

    fn opus_config(&self, case: &Case) -> OpusConfig {
        OpusConfig {
            channels: self.channels,
            bitrate_bps: case.bitrate_kbps.unwrap_or(0).saturating_mul(1000),
            // What `pstream send` encodes with.
            application: OpusApplication::LowDelay,
        }
    }

    fn aac_config(&self, case: &Case) -> AacConfig {
        AacConfig {
            sample_rate: AUDIO_RATE,
            channels: self.channels,
            bitrate_bps: case.bitrate_kbps.unwrap_or(0).saturating_mul(1000),
        }
    }

    /// Checks the settings and runs every row.
    pub fn run(&self) -> Result<EncodeReport> {
        self.run_with(|_, _, _| {})
    }

    /// Like [`run`](Self::run), calling `progress(row number from 1, rows,
    /// result)` as each row ends.
    pub fn run_with(
        &self,
        mut progress: impl FnMut(usize, usize, &RowResult),
    ) -> Result<EncodeReport> {
        self.check()?;
        let cases = self.cases();
        let clock = PipelineClock::start();
        let mut rows = Vec::with_capacity(cases.len());
        for (i, case) in cases.iter().enumerate() {
            let row = if case.codec.is_video() {
                self.run_video(case, &clock)?
            } else {
                self.run_audio(case, &clock)?
            };
            progress(i + 1, cases.len(), &row);
            rows.push(row);
        }
        Ok(EncodeReport {
            rows,
            machine: Machine::this(),
            video: self.video.clone(),
            audio: self.audio.clone(),
            realtime: self.realtime,
        })
    }

    /// Pictures each video row encodes from a source of `fps` frames per second.
    fn frame_cap(&self, fps: f64) -> u64 {
        match self.limit {
            Limit::Frames(n) => n,
            Limit::Seconds(s) => (s * fps).ceil().max(1.0) as u64,
        }
    }

    /// Seconds of sound each audio row encodes.
    fn audio_seconds(&self) -> f64 {
        match self.limit {
            Limit::Frames(n) => n as f64 / f64::from(self.fps.max(1)),
            Limit::Seconds(s) => s,
        }
    }

    fn run_video(&self, case: &Case, clock: &PipelineClock) -> Result<RowResult> {
        let started = Instant::now();
        let want = case.size.unwrap_or((1280, 720));
        let want = VideoFormat {
            width: want.0,
            height: want.1,
            fps_num: self.fps,
            fps_den: 1,
        };
        let mut input = VideoInput::open(&self.video, want, self.realtime, clock)?;
        let format = input.format();
        let fps = f64::from(format.fps_num) / f64::from(format.fps_den.max(1));
        let (width, height) = case.size.unwrap_or((format.width, format.height));
        let what = describe(case);
        let (mut encoder, mut decoder): (Box<dyn VideoEncoder>, Box<dyn VideoDecoder>) =
            match case.codec {
                BenchCodec::H264 => (
                    crate::m2m::h264_encoder(
                        &self.h264,
                        self.h264_config(case, width, height, fps as f32),
                    )?,
                    Box::new(
                        H264Decoder::new()
                            .map_err(|e| Error::codec("cannot start the H.264 decoder", e))?,
                    ),
                ),
                _ => (
                    Box::new(
                        MjpegEncoder::new(case.quality.unwrap_or(0))
                            .map_err(|e| Error::codec(what.clone(), e))?,
                    ),
                    Box::new(
                        MjpegDecoder::new()
                            .map_err(|e| Error::codec("cannot start the JPEG decoder", e))?,
                    ),
                ),
            };
        let cap = self.frame_cap(fps);
        let mut timer = Timer::with_capacity(cap);
        let mut scaler: Option<Scaler> = None;
        let mut error = PictureError::default();
        let mut last_decoded: Option<VideoFrame> = None;
        let (mut bytes, mut encoded, mut skipped, mut undecodable) = (0u64, 0u64, 0u64, 0u64);
        while timer.frames() < cap {
            let Some(frame) = input.next(clock)? else {
                break;
            };
            let frame = if (frame.width(), frame.height()) == (width, height) {
                frame
            } else {
                let s = match &mut scaler {
                    Some(s) if s.source_size() == (frame.width(), frame.height()) => s,
                    slot => slot.insert(
                        Scaler::new(frame.width(), frame.height(), width, height)
                            .map_err(|e| Error::codec("cannot scale the source", e.into()))?,
                    ),
                };
                s.scale(&frame)
                    .map_err(|e| Error::codec("cannot scale the source", e.into()))?
            };
            let out = timer
                .time(|| encoder.encode(&frame))
                .map_err(|e| Error::codec(format!("{what}: encode failed"), e))?;
            match out {
                Some(unit) => {
                    bytes += unit.data.len() as u64;
                    encoded += 1;
                    match decoder.decode(&unit.data) {
                        Ok(Some(pic)) => last_decoded = Some(pic.frame),
                        // A unit the decoder cannot turn into a picture is
                        // counted; the comparison goes on with the last one.
                        Ok(None) | Err(_) => undecodable += 1,
                    }
                }
                None => skipped += 1,
            }
            // Compared with what a viewer sees: the last decoded picture,
            // also for a frame rate control skipped.
            if let Some(seen) = &last_decoded {
                if (seen.width(), seen.height()) == (frame.width(), frame.height()) {
                    error.add(
                        [frame.y(), frame.u(), frame.v()],
                        [seen.y(), seen.u(), seen.v()],
                    );
                }
            }
        }
        let fidelity = match (error.psnr_y(), error.psnr_all(), error.min_y_db) {
            _ if undecodable > 0 => Fidelity::NotAvailable(format!(
                "the decoder refused {undecodable} of {encoded} units"
            )),
            (Some(psnr_y), Some(psnr_all), Some(min_psnr_y)) => Fidelity::Video {
                psnr_y,
                psnr_all,
                min_psnr_y,
            },
            _ => Fidelity::NotAvailable("no picture was decoded".into()),
        };
        Ok(timer.finish(RowParts {
            case: *case,
            input: Input::Video { width, height, fps },
            frame_seconds: 1.0 / fps,
            encoded,
            skipped,
            bytes,
            paced: input.paced(),
            fidelity,
            started,
        }))
    }

    fn run_audio(&self, case: &Case, clock: &PipelineClock) -> Result<RowResult> {
        let started = Instant::now();
        let want = AudioFormat {
            sample_rate: AUDIO_RATE,
            channels: self.channels,
        };
        let mut input = AudioInput::open(&self.audio, want, self.realtime, clock)?;
        let format = input.format();
        let what = describe(case);
        let (mut codec, frame_samples) = match case.codec {
            BenchCodec::Opus => {
                let enc = OpusEncoder::new(self.opus_config(case))
                    .map_err(|e| Error::codec(what.clone(), e))?;
                let dec = OpusDecoder::new(self.channels)
                    .map_err(|e| Error::codec("cannot start the Opus decoder", e))?;
                (AudioPair::Opus(enc, dec), OPUS_FRAME_SAMPLES)
            }
            _ => {
                let enc = AacEncoder::new(self.aac_config(case))
                    .map_err(|e| Error::codec(what.clone(), e))?;
                let dec = AacDecoder::new(&enc.audio_specific_config())
                    .map_err(|e| Error::codec("cannot start the AAC decoder", e))?;
                (
                    AudioPair::Aac(enc, dec),
                    pstream_codec::aac::AAC_FRAME_SAMPLES,
                )
            }
        };
        // One codec frame of the source per call, so each call is one frame.
        let frame_seconds = frame_samples as f64 / f64::from(AUDIO_RATE);
        let chunk = ((frame_seconds * f64::from(format.sample_rate)).round() as usize).max(1);
        let cap = (self.audio_seconds() / frame_seconds).ceil().max(1.0) as u64;
        let comparable = format.sample_rate == AUDIO_RATE && format.channels == self.channels;
        let keep = (AUDIO_RATE * AUDIO_COMPARE_SECONDS) as usize * usize::from(self.channels);
        let (mut fed, mut decoded) = (Vec::new(), Vec::new());
        let mut timer = Timer::with_capacity(cap);
        let (mut bytes, mut encoded, mut undecodable) = (0u64, 0u64, 0u64);
        while timer.frames() < cap {
            let Some(block) = input.next(chunk, clock)? else {
                break;
            };
            let units = timer
                .time(|| codec.encode(&block))
                .map_err(|e| Error::codec(format!("{what}: encode failed"), e))?;
            if comparable && fed.len() < keep {
                fed.extend_from_slice(&block.samples);
            }
            for unit in units {
                bytes += unit.data.len() as u64;
                encoded += 1;
                match codec.decode(&unit.data) {
                    Ok(pcm)
                        if decoded.len()
                            < keep + 2 * AUDIO_MAX_LAG * usize::from(self.channels) =>
                    {
                        decoded.extend_from_slice(&pcm)
                    }
                    Ok(_) => {}
                    Err(_) => undecodable += 1,
                }
            }
        }
        let fidelity = if !comparable {
            Fidelity::NotAvailable(format!(
                "the source is {} Hz {} ch, the encoder {AUDIO_RATE} Hz {} ch: not compared",
                format.sample_rate, format.channels, self.channels
            ))
        } else if undecodable > 0 {
            Fidelity::NotAvailable(format!(
                "the decoder refused {undecodable} of {encoded} frames"
            ))
        } else {
            let ch = usize::from(self.channels);
            match audio_psnr(&fed, &decoded, ch, AUDIO_MAX_LAG, AUDIO_SKIP_FRAMES) {
                Some(psnr) => Fidelity::Audio { psnr },
                None => Fidelity::NotAvailable("too little sound to align and compare".into()),
            }
        };
        Ok(timer.finish(RowParts {
            case: *case,
            input: Input::Audio {
                sample_rate: format.sample_rate,
                channels: format.channels,
            },
            frame_seconds,
            encoded,
            skipped: 0,
            bytes,
            paced: input.paced(),
            fidelity,
            started,
        }))
    }
}

impl Case {
    /// The settings in a few words: `h264 640x360 fast threads 1 2500 kbit/s`.
    pub fn label(&self) -> String {
        describe(self)
    }
}

/// A short name of a row's settings for messages.
fn describe(case: &Case) -> String {
    let mut s = case.codec.name().to_owned();
    if let Some((w, h)) = case.size {
        s += &format!(" {w}x{h}");
    }
    if let Some(p) = case.preset {
        s += &format!(" {}", preset_name(p));
    }
    if let Some(t) = case.threads {
        s += &format!(" threads {t}");
    }
    if let Some(q) = case.quality {
        s += &format!(" quality {q}");
    }
    if let Some(k) = case.bitrate_kbps {
        s += &format!(" {k} kbit/s");
    }
    s
}

/// Times encode calls: wall clock and both CPU clocks around each.
struct Timer {
    latencies: Vec<Duration>,
    thread_cpu: Option<Duration>,
    process_cpu: Option<Duration>,
}

impl Timer {
    fn with_capacity(frames: u64) -> Self {
        Self {
            latencies: Vec::with_capacity(frames.min(1 << 20) as usize),
            thread_cpu: Some(Duration::ZERO),
            process_cpu: Some(Duration::ZERO),
        }
    }

    fn frames(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Runs `f` (one frame's encode) and adds its times.
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        // The CPU clocks are read outside the wall-clock interval so that
        // their system calls do not count as encoding.
        let (t0, p0) = (CpuClock::Thread.now(), CpuClock::Process.now());
        let start = Instant::now();
        let out = f();
        let wall = start.elapsed();
        let (t1, p1) = (CpuClock::Thread.now(), CpuClock::Process.now());
        self.latencies.push(wall);
        let add = |sum: Option<Duration>, a: Option<Duration>, b: Option<Duration>| {
            Some(sum? + b?.saturating_sub(a?))
        };
        self.thread_cpu = add(self.thread_cpu, t0, t1);
        self.process_cpu = add(self.process_cpu, p0, p1);
        out
    }

    fn finish(self, parts: RowParts) -> RowResult {
        let frames = self.latencies.len() as u64;
        let latency = LatencySummary::of(&self.latencies);
        let per_frame = |d: Option<Duration>| {
            d.filter(|_| frames > 0)
                .map(|d| d.as_secs_f64() * 1e3 / frames as f64)
        };
        let media_seconds = frames as f64 * parts.frame_seconds;
        RowResult {
            case: parts.case,
            input: parts.input,
            frames,
            encoded: parts.encoded,
            skipped: parts.skipped,
            paced: parts.paced,
            headroom: if latency.mean_ms > 0.0 {
                parts.frame_seconds * 1e3 / latency.mean_ms
            } else {
                0.0
            },
            latency,
            cpu_ms_per_frame: per_frame(self.process_cpu),
            thread_cpu_ms_per_frame: per_frame(self.thread_cpu),
            bitrate_kbps: if media_seconds > 0.0 {
                parts.bytes as f64 * 8.0 / media_seconds / 1e3
            } else {
                0.0
            },
            fidelity: parts.fidelity,
            wall_seconds: parts.started.elapsed().as_secs_f64(),
        }
    }
}

/// What a row adds to the timer's figures.
struct RowParts {
    case: Case,
    input: Input,
    frame_seconds: f64,
    encoded: u64,
    skipped: u64,
    bytes: u64,
    paced: bool,
    fidelity: Fidelity,
    started: Instant,
}

/// An audio encoder and the decoder that checks it.
enum AudioPair {
    Opus(OpusEncoder, OpusDecoder),
    Aac(AacEncoder, AacDecoder),
}

impl AudioPair {
    fn encode(
        &mut self,
        block: &AudioBlock,
    ) -> std::result::Result<Vec<pstream_core::EncodedUnit>, pstream_codec::CodecError> {
        match self {
            AudioPair::Opus(e, _) => e.encode(block),
            AudioPair::Aac(e, _) => e.encode(block),
        }
    }

    fn decode(&mut self, data: &[u8]) -> std::result::Result<Vec<f32>, pstream_codec::CodecError> {
        match self {
            AudioPair::Opus(_, d) => d.decode(Some(data)),
            AudioPair::Aac(_, d) => d.decode(data),
        }
    }
}

/// Opens a file named by a `scheme:PATH` spec, or standard input for `-`.
fn open_reader(spec: &str, path: &str) -> std::result::Result<Box<dyn BufRead + Send>, FileError> {
    if path == "-" {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            std::io::stdin(),
        )));
    }
    let file = File::open(Path::new(path))
        .map_err(|e| FileError::io(spec, "cannot open for reading", e))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Where a row's pictures come from.
enum VideoInput {
    /// The test pattern, rendered as fast as asked.
    Pattern {
        pattern: TestPattern,
        format: VideoFormat,
        n: u64,
    },
    /// A Y4M file or standard input, read as fast as asked.
    File {
        reader: Y4mReader<Box<dyn BufRead + Send>>,
        n: u64,
    },
    /// A paced source: a device, shmdata, or anything with `--realtime`.
    Live(Box<dyn VideoSource>),
}

impl VideoInput {
    fn open(spec: &str, want: VideoFormat, realtime: bool, clock: &PipelineClock) -> Result<Self> {
        if !realtime {
            if spec == "test" {
                want.validate("test")?;
                return Ok(VideoInput::Pattern {
                    pattern: TestPattern::new(want.width, want.height),
                    format: want,
                    n: 0,
                });
            }
            if let Some(path) = spec.strip_prefix("y4m:").filter(|p| !p.is_empty()) {
                let reader =
                    Y4mReader::new(open_reader(spec, path).map_err(MediaError::from)?, spec)
                        .map_err(MediaError::from)?;
                return Ok(VideoInput::File { reader, n: 0 });
            }
        }
        Ok(VideoInput::Live(open_video_source(spec, want, *clock)?))
    }

    fn format(&self) -> VideoFormat {
        match self {
            VideoInput::Pattern { format, .. } => *format,
            VideoInput::File { reader, .. } => reader.header().format,
            VideoInput::Live(src) => src.format(),
        }
    }

    fn paced(&self) -> bool {
        matches!(self, VideoInput::Live(_))
    }

    fn next(&mut self, clock: &PipelineClock) -> Result<Option<VideoFrame>> {
        let format = self.format();
        let pts = |n: u64| {
            Duration::from_secs_f64(
                n as f64 * f64::from(format.fps_den.max(1)) / f64::from(format.fps_num.max(1)),
            )
        };
        let (data, n) = match self {
            VideoInput::Pattern { pattern, n, .. } => {
                // The timecode band shows the media time, not the wall
                // clock: every row then encodes the very same pictures.
                let micros = u64::try_from(pts(*n).as_micros()).unwrap_or(u64::MAX);
                (pattern.render(*n, micros), n)
            }
            VideoInput::File { reader, n } => {
                match reader.read_frame().map_err(MediaError::from)? {
                    Some(data) => (data, n),
                    None => return Ok(None),
                }
            }
            VideoInput::Live(src) => return Ok(src.next_frame()?),
        };
        let frame = VideoFrame::new(format.width, format.height, data, clock.now(), pts(*n))
            .map_err(|e| Error::failed("the source gave an unusable picture", e))?;
        *n += 1;
        Ok(Some(frame))
    }
}

/// Where a row's sound comes from, cut into blocks of one codec frame.
enum AudioInput {
    /// The test tone, synthesised as fast as asked.
    Tone {
        format: AudioFormat,
        phase: f64,
        step: f64,
        done: u64,
    },
    /// A WAV file or standard input, read as fast as asked.
    File {
        reader: WavReader<Box<dyn BufRead + Send>>,
        done: u64,
    },
    /// A paced source (a device, shmdata, anything with `--realtime`),
    /// with what it gave beyond the last whole block.
    Live {
        src: Box<dyn AudioSource>,
        pending: Vec<f32>,
        done: u64,
    },
}

impl AudioInput {
    fn open(spec: &str, want: AudioFormat, realtime: bool, clock: &PipelineClock) -> Result<Self> {
        if !realtime {
            if spec == "test" {
                want.validate("test")?;
                return Ok(AudioInput::Tone {
                    format: want,
                    phase: 0.0,
                    step: std::f64::consts::TAU * DEFAULT_FREQ_HZ / f64::from(want.sample_rate),
                    done: 0,
                });
            }
            if let Some(path) = spec.strip_prefix("wav:").filter(|p| !p.is_empty()) {
                let reader =
                    WavReader::new(open_reader(spec, path).map_err(MediaError::from)?, spec)
                        .map_err(MediaError::from)?;
                return Ok(AudioInput::File { reader, done: 0 });
            }
        }
        Ok(AudioInput::Live {
            src: open_audio_source(spec, want, *clock)?,
            pending: Vec::new(),
            done: 0,
        })
    }

    fn format(&self) -> AudioFormat {
        match self {
            AudioInput::Tone { format, .. } => *format,
            AudioInput::File { reader, .. } => reader.format().audio,
            AudioInput::Live { src, .. } => src.format(),
        }
    }

    fn paced(&self) -> bool {
        matches!(self, AudioInput::Live { .. })
    }

    /// The next `frames` sample frames; `None` at the end (a last partial
    /// block is dropped: it would not make a whole codec frame).
    fn next(&mut self, frames: usize, clock: &PipelineClock) -> Result<Option<AudioBlock>> {
        let format = self.format();
        let ch = usize::from(format.channels.max(1));
        let (samples, done) = match self {
            AudioInput::Tone {
                phase, step, done, ..
            } => {
                let mut samples = Vec::with_capacity(frames * ch);
                for _ in 0..frames {
                    let s = AMPLITUDE * phase.sin() as f32;
                    samples.extend(std::iter::repeat_n(s, ch));
                    *phase = (*phase + *step) % std::f64::consts::TAU;
                }
                (samples, done)
            }
            AudioInput::File { reader, done } => {
                let mut samples = Vec::with_capacity(frames * ch);
                while samples.len() < frames * ch {
                    let want = frames - samples.len() / ch;
                    if reader
                        .read_frames(want, &mut samples)
                        .map_err(MediaError::from)?
                        == 0
                    {
                        return Ok(None);
                    }
                }
                (samples, done)
            }
            AudioInput::Live { src, pending, done } => {
                while pending.len() < frames * ch {
                    match src.next_block()? {
                        Some(block) => pending.extend_from_slice(&block.samples),
                        None => return Ok(None),
                    }
                }
                let rest = pending.split_off(frames * ch);
                (std::mem::replace(pending, rest), done)
            }
        };
        let pts = Duration::from_secs_f64(*done as f64 / f64::from(format.sample_rate.max(1)));
        *done += frames as u64;
        Ok(Some(AudioBlock {
            sample_rate: format.sample_rate,
            channels: format.channels,
            samples,
            capture: clock.now(),
            pts,
        }))
    }
}

impl EncodeReport {
    /// The report as an aligned table with units, a legend and notes,
    /// ending in a newline.
    pub fn table(&self) -> String {
        let header = [
            "codec",
            "input",
            "preset",
            "threads",
            "target",
            "frames",
            "median",
            "p95",
            "p99",
            "max",
            "headroom",
            "cpu/frame",
            "bitrate",
            "PSNR-Y",
            "PSNR",
        ];
        let units = [
            "",
            "",
            "",
            "",
            "",
            "",
            "ms",
            "ms",
            "ms",
            "ms",
            "x realtime",
            "ms",
            "kbit/s",
            "dB",
            "dB",
        ];
        // Text columns are left-aligned, numbers right-aligned.
        let left = [true, true, true, false, false, false];
        let mut notes: Vec<(String, Vec<usize>)> = Vec::new();
        let mut rows: Vec<Vec<String>> = vec![
            header.iter().map(|s| (*s).to_owned()).collect(),
            units.iter().map(|s| (*s).to_owned()).collect(),
        ];
        for (i, r) in self.rows.iter().enumerate() {
            let c = &r.case;
            let dash = || "-".to_owned();
            let input = match r.input {
                Input::Video { width, height, fps } => format!("{width}x{height}@{}", trim(fps)),
                Input::Audio {
                    sample_rate,
                    channels,
                } => format!("{sample_rate}Hz/{channels}ch"),
            };
            let target = match (c.quality, c.bitrate_kbps) {
                (Some(q), _) => format!("q{q}"),
                (None, Some(k)) => format!("{k} kbit/s"),
                _ => dash(),
            };
            let frames = if r.skipped > 0 {
                format!("{} ({} skipped)", r.frames, r.skipped)
            } else {
                r.frames.to_string()
            };
            let (psnr_y, psnr) = match &r.fidelity {
                Fidelity::Video {
                    psnr_y, psnr_all, ..
                } => (format!("{psnr_y:.2}"), format!("{psnr_all:.2}")),
                Fidelity::Audio { psnr } => (dash(), format!("{psnr:.2}")),
                Fidelity::NotAvailable(why) => {
                    note(&mut notes, format!("PSNR n/a: {why}"), i + 1);
                    ("n/a".into(), "n/a".into())
                }
            };
            if let (BenchCodec::H264, Some(target)) = (c.codec, c.bitrate_kbps) {
                if r.bitrate_kbps < 0.5 * f64::from(target) {
                    let why = "under half the target bitrate: openh264 quantises no finer \
                               than QP 12, and this content needs no more bits there (the \
                               test pattern is easy to compress; harder content, such as \
                               a Y4M of camera footage, takes the bits)";
                    note(&mut notes, why.to_owned(), i + 1);
                }
            }
            rows.push(vec![
                c.codec.name().to_owned(),
                input,
                c.preset.map_or_else(dash, |p| preset_name(p).to_owned()),
                c.threads.map_or_else(dash, |t| t.to_string()),
                target,
                frames,
                format!("{:.2}", r.latency.median_ms),
                format!("{:.2}", r.latency.p95_ms),
                format!("{:.2}", r.latency.p99_ms),
                format!("{:.2}", r.latency.max_ms),
                format!("{:.1}", r.headroom),
                r.cpu_ms_per_frame.map_or_else(dash, |v| format!("{v:.2}")),
                format!("{:.0}", r.bitrate_kbps),
                psnr_y,
                psnr,
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|col| {
                rows.iter()
                    .map(|r| r[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(col, cell)| {
                    if left.get(col).copied().unwrap_or(false) {
                        format!("{cell:<w$}", w = widths[col])
                    } else {
                        format!("{cell:>w$}", w = widths[col])
                    }
                })
                .collect();
            out += cells.join("  ").trim_end();
            out.push('\n');
        }
        let m = &self.machine;
        let cpu = if m.cpu.is_empty() {
            "unknown CPU"
        } else {
            &m.cpu
        };
        out += &format!(
            "\n{cpu}, {} cores, {}; video {}, audio {}; frames fed {}.\n",
            m.cores,
            m.arch,
            self.video,
            self.audio,
            if self.realtime {
                "at the source's pace"
            } else {
                "as fast as the encoder takes them (devices at their own pace)"
            }
        );
        out += "latency: wall clock of each encode call, every frame counted (the first, \
                with the encoder's set-up, too).\n\
                headroom: frame interval / mean latency. cpu/frame: CPU time of the whole \
                process while encoding (encoder threads included).\n\
                PSNR: the decoded output against the input (PSNR-Y luma; PSNR all planes, \
                or sound against full scale after aligning for the codec delay); 100 = \
                identical.\n";
        for (text, rows) in notes {
            let s = if rows.len() > 1 { "s" } else { "" };
            out += &format!("row{s} {}: {text}\n", row_list(&rows));
        }
        out
    }

    /// The report as JSON: `machine`, `video`, `audio`, `realtime` and one
    /// object per row under `rows`, with the same figures as the table.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let c = &r.case;
                let mut row = json!({
                    "codec": c.codec.name(),
                    "preset": c.preset.map(preset_name),
                    "threads": c.threads,
                    "target_kbps": c.bitrate_kbps,
                    "quality": c.quality,
                    "frames": r.frames,
                    "encoded": r.encoded,
                    "skipped": r.skipped,
                    "paced": r.paced,
                    "latency_ms": {
                        "median": r.latency.median_ms,
                        "p95": r.latency.p95_ms,
                        "p99": r.latency.p99_ms,
                        "max": r.latency.max_ms,
                        "mean": r.latency.mean_ms,
                    },
                    "headroom": r.headroom,
                    "cpu_ms_per_frame": r.cpu_ms_per_frame,
                    "thread_cpu_ms_per_frame": r.thread_cpu_ms_per_frame,
                    "bitrate_kbps": r.bitrate_kbps,
                    "wall_seconds": r.wall_seconds,
                });
                let fields = match &r.input {
                    Input::Video { width, height, fps } => {
                        json!({"width": width, "height": height, "fps": fps})
                    }
                    Input::Audio {
                        sample_rate,
                        channels,
                    } => json!({"sample_rate": sample_rate, "channels": channels}),
                };
                let psnr = match &r.fidelity {
                    Fidelity::Video {
                        psnr_y,
                        psnr_all,
                        min_psnr_y,
                    } => json!({"psnr_db": {"y": psnr_y, "all": psnr_all, "min_y": min_psnr_y}}),
                    Fidelity::Audio { psnr } => json!({"psnr_db": {"all": psnr}}),
                    Fidelity::NotAvailable(why) => json!({"psnr_db": null, "psnr_na": why}),
                };
                if let (Some(obj), serde_json::Value::Object(a), serde_json::Value::Object(b)) =
                    (row.as_object_mut(), fields, psnr)
                {
                    obj.extend(a);
                    obj.extend(b);
                }
                row
            })
            .collect();
        json!({
            "machine": {"cpu": self.machine.cpu, "cores": self.machine.cores, "arch": self.machine.arch},
            "video": self.video,
            "audio": self.audio,
            "realtime": self.realtime,
            "rows": rows,
        })
    }
}

/// Adds row `row` under the note `text`, one note per distinct text.
fn note(notes: &mut Vec<(String, Vec<usize>)>, text: String, row: usize) {
    match notes.iter_mut().find(|(t, _)| *t == text) {
        Some((_, rows)) => rows.push(row),
        None => notes.push((text, vec![row])),
    }
}

/// Ascending row numbers with runs joined: `1-3, 5, 7-8`.
fn row_list(rows: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && rows[j + 1] == rows[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", rows[i], rows[j])
        } else {
            rows[i].to_string()
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// A frame rate without a needless fraction: 30, 29.97.
fn trim(fps: f64) -> String {
    if (fps - fps.round()).abs() < 1e-9 {
        format!("{fps:.0}")
    } else {
        format!("{fps:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_list_rows_in_runs() {
        assert_eq!(row_list(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(row_list(&[4]), "4");
        assert_eq!(row_list(&[]), "");
    }

    #[test]
    fn rows_are_the_product_of_the_lists() {
        let b = EncodeBench::new()
            .codecs([
                BenchCodec::H264,
                BenchCodec::Mjpeg,
                BenchCodec::Opus,
                BenchCodec::Aac,
            ])
            .sizes([(320, 240), (640, 360)])
            .presets([H264Preset::Fast, H264Preset::Quality])
            .threads([1, 2])
            .qualities([50, 90]);
        let cases = b.cases();
        // H.264 2x2x2x1, MJPEG 2x2, Opus 1, AAC 1.
        assert_eq!(cases.len(), 8 + 4 + 1 + 1);
        assert_eq!(cases[0].size, Some((320, 240)));
        assert_eq!(
            (cases[1].preset, cases[1].threads),
            (Some(H264Preset::Fast), Some(2))
        );
        assert_eq!(cases[12].bitrate_kbps, Some(OPUS_DEFAULT_KBPS));
        assert_eq!(cases[13].bitrate_kbps, Some(AAC_DEFAULT_KBPS));
        // A file with no sizes runs at its own size.
        let file = EncodeBench::new()
            .video("y4m:x.y4m")
            .presets([H264Preset::Fast]);
        assert_eq!(file.cases().len(), 1);
        assert_eq!(file.cases()[0].size, None);
    }

    #[test]
    fn bad_settings_are_refused_before_anything_runs() {
        let err = |b: EncodeBench| {
            b.check()
                .err()
                .map(|e| crate::error::one_line(&e))
                .unwrap_or_default()
        };
        assert!(err(EncodeBench::new().sizes([(4096, 4096)])).contains("3840x2160"));
        assert!(err(EncodeBench::new()
            .codecs([BenchCodec::Opus])
            .audio_bitrates_kbps([1000]))
        .contains("Opus"));
        assert!(err(EncodeBench::new()
            .codecs([BenchCodec::Mjpeg])
            .qualities([0]))
        .contains("quality 0"));
        assert!(err(EncodeBench::new()
            .video("y4m:-")
            .sizes([(320, 240), (640, 360)]))
        .contains("standard input"));
        assert!(err(EncodeBench::new().frames(0)).contains("at least 1"));
        assert!(err(EncodeBench::new().codecs([])).contains("nothing to run"));
    }

    /// Every run of a row encodes the same pictures (the pattern's timecode
    /// shows media time), so rows and runs compare: the same bits, the same PSNR.
    #[test]
    fn the_test_pattern_is_the_same_in_every_run() {
        let run = || {
            EncodeBench::new()
                .sizes([(320, 240)])
                .presets([H264Preset::Fast])
                .frames(10)
                .run()
                .expect("run")
        };
        let (a, b) = (run(), run());
        assert_eq!(a.rows[0].bitrate_kbps, b.rows[0].bitrate_kbps);
        assert_eq!(a.rows[0].fidelity, b.rows[0].fidelity);
    }

    /// A short run of every codec from the test sources: plausible figures
    /// in every row.
    #[test]
    fn every_codec_measures_plausible_figures() {
        let report = EncodeBench::new()
            .codecs(BenchCodec::ALL)
            .sizes([(320, 240)])
            .presets([H264Preset::Fast])
            .frames(20)
            .run()
            .expect("run");
        assert_eq!(report.rows.len(), 4);
        for r in &report.rows {
            let name = r.case.codec.name();
            assert!(
                r.latency.median_ms > 0.0 && r.latency.max_ms >= r.latency.p99_ms,
                "{name}"
            );
            assert!(r.headroom > 0.0 && r.bitrate_kbps > 0.0, "{name}: {r:?}");
            assert!(!r.paced, "{name}");
            match r.fidelity {
                Fidelity::Video { psnr_y, .. } => assert!(psnr_y > 30.0, "{name}: {psnr_y}"),
                Fidelity::Audio { psnr } => assert!(psnr > 20.0, "{name}: {psnr}"),
                Fidelity::NotAvailable(ref why) => panic!("{name}: {why}"),
            }
        }
        assert_eq!(report.rows[0].frames, 20);
        // 20 frames at 30 fps are 0.67 s of sound: 34 Opus frames.
        assert_eq!(report.rows[2].frames, 34);
        let table = report.table();
        assert_eq!(
            table.lines().filter(|l| l.starts_with("h264 ")).count(),
            1,
            "{table}"
        );
        let json = report.to_json();
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["rows"][0]["width"], 320);
        assert_eq!(json["rows"][3]["codec"], "aac");
    }
}
