//! `pstream push`: options to a [`PushConfig`], then the library's pipeline
//! (`pstream_embed::push`, where the whole path of a frame is: encode once,
//! FLV to every RTMP ingest and file, reconnecting through drops) with a
//! stats line until Ctrl-C, SIGTERM, `--duration` or every destination
//! giving up.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pstream_embed::{PushConfig, PushStream, Target};
use pstream_transport::rtmp::redact;

use crate::stats::{ProcessPeak, StatsMode, StatsPrinter};

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
    /// `y4m:-` (stdin), `v4l2:/dev/videoN`, `shmdata:PATH` (a shmdata
    /// writer, waited for) or `none`.
    #[arg(long, default_value = "test")]
    pub video: String,
    /// Audio source: `test` (sine tone), `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire`, `pipewire:NODE` (a sink captures its monitor),
    /// `shmdata:PATH` or `none`.
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

fn config(args: &PushArgs) -> anyhow::Result<PushConfig> {
    let mut destinations = Vec::new();
    for u in &args.urls {
        destinations.push(Target::parse(u).with_context(|| format!("destination {}", redact(u)))?);
    }
    if let Some(p) = &args.out {
        destinations.push(Target::File(p.clone()));
    }
    Ok(PushConfig {
        destinations,
        video: args.video.clone(),
        audio: args.audio.clone(),
        silent_audio: args.silent_audio,
        size: args.size,
        fps: args.fps,
        bitrate_kbps: args.bitrate,
        keyint_seconds: args.keyint,
        audio_bitrate_kbps: args.audio_bitrate,
        audio_rate: args.audio_rate,
        channels: args.channels,
        preset: args.encoder.preset.into(),
        threads: args.encoder.threads,
        encoder: args.encoder.encoder.clone(),
        reconnect_max_seconds: args.reconnect_max,
    })
}

/// `pstream push`: runs until `--duration`, Ctrl-C or SIGTERM, or until every destination gave up.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let shutdown = crate::shutdown::install(args.duration)?;
    let mut stream = PushStream::start(&config, shutdown)?;

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "push");
    let mut peak = ProcessPeak::default();
    let mut last = Instant::now();
    while !stream.stopping() {
        thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            peak.sample();
            printer.show(&stream.stats_line());
        }
    }
    let result = stream.wait();
    printer.finish();
    if !args.quiet {
        // The summary averages over the whole run.
        tracing::info!("push finished: {} | {}", stream.summary(), peak.line());
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_rate_and_reconnect_limits() {
        assert_eq!(parse_aac_rate("44100"), Ok(44_100));
        assert!(parse_aac_rate("32000").is_err());
        assert!(parse_reconnect_max("0").is_err());
        assert_eq!(parse_reconnect_max("5"), Ok(5.0));
    }
}
