//! `pstream bridge`: options to a [`BridgeConfig`], then the library's
//! source -> sink stages (`pstream_embed::bridge`: no encoding, pictures
//! scaled and audio resampled only when a sink needs it) with a stats line
//! until Ctrl-C, SIGTERM, `--duration` or the source's end.

use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use pstream_embed::{BridgeConfig, BridgeRun};

use crate::stats::{ProcessPeak, StatsMode, StatsPrinter};

/// Options of `pstream bridge`.
#[derive(Debug, Clone, Args)]
pub struct BridgeArgs {
    /// Video source: `shmdata:PATH` (a shmdata writer such as score's
    /// Shmdata output, waited for), `test`, `y4m:PATH`, `y4m:-` (stdin),
    /// `v4l2:/dev/videoN[?...]` or `none`.
    #[arg(long, default_value = "none")]
    pub video: String,
    /// Audio source: `shmdata:PATH`, `test`, `wav:PATH`, `default`,
    /// `alsa:NAME`, `pipewire`, `pipewire:NODE` or `none`.
    #[arg(long, default_value = "none")]
    pub audio: String,
    /// Video sink: `v4l2:/dev/videoN[?format=YU12|YUYV]` (a v4l2loopback
    /// virtual camera), `shmdata:PATH`, `y4m:PATH`, `y4m:-` (stdout) or
    /// `null`. A Y4M file keeps its first size: later pictures are scaled to it.
    #[arg(long, default_value = "null")]
    pub video_out: String,
    /// Audio sink: `wav:PATH`, `default`, `alsa:NAME`, `pipewire`,
    /// `pipewire:NODE`, `shmdata:PATH` or `null`.
    #[arg(long, default_value = "null")]
    pub audio_out: String,
    /// Picture size for the test pattern, and of the black pictures sent
    /// until a shmdata writer comes, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = crate::cli::parse_size)]
    pub size: (u32, u32),
    /// Frame rate for the test pattern (files and writers bring their own).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

fn config(args: &BridgeArgs) -> BridgeConfig {
    BridgeConfig {
        video: args.video.clone(),
        audio: args.audio.clone(),
        video_out: args.video_out.clone(),
        audio_out: args.audio_out.clone(),
        size: args.size,
        fps: args.fps,
        ..BridgeConfig::new("none")
    }
}

/// `pstream bridge`: runs until `--duration`, Ctrl-C, SIGTERM or the source's end.
pub fn run(args: BridgeArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::install(args.duration)?;
    let mut run = BridgeRun::start(&config(&args), shutdown)?;

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "bridge");
    let mut peak = ProcessPeak::default();
    let mut last = Instant::now();
    while !run.stopping() {
        thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            peak.sample();
            printer.show(&run.stats_line());
        }
    }
    let result = run.wait();
    printer.finish();
    if !args.quiet {
        // The summary averages over the whole run.
        tracing::info!("bridge finished: {} | {}", run.summary(), peak.line());
    }
    Ok(result?)
}
