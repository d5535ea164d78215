//! `pstream bench`: benchmarks for users on their own machine or Pi. The
//! measuring is pstream_embed::bench's; this reads the options and prints.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pstream_embed::bench::encode::{BenchCodec, EncodeBench, RowResult};
use pstream_embed::bench::list::{
    parse_codec, parse_list, parse_number, parse_preset, parse_size, ListError,
};
use pstream_embed::bench::loopback::{Compare, LoopbackBench};
use pstream_embed::H264Preset;

/// Options of `pstream bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub what: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Time each encoder frame by frame on this machine: latency (median,
    /// p95, p99, max), headroom over real time, CPU per frame, bitrate and
    /// PSNR of the decoded output against the input. Lists given with
    /// commas run as one table, a row per combination.
    Encode(EncodeArgs),
    /// pstream send -> recv through UDP on 127.0.0.1 with the test
    /// pattern's timecode: capture -> decoded latency per picture (median,
    /// p95, p99, max, from the first picture) and where it goes stage by
    /// stage; with --compare, GStreamer's or ffmpeg's equivalent pipeline
    /// on the same content in the same run, and the ratio.
    Loopback(LoopbackArgs),
}

/// Options of `pstream bench loopback`.
#[derive(Debug, Clone, Args)]
pub struct LoopbackArgs {
    /// Picture sizes, a comma list of WIDTHxHEIGHT.
    #[arg(long, alias = "size", default_value = "1280x720", value_parser = sizes)]
    pub sizes: List<(u32, u32)>,
    /// Frame rates, a comma list.
    #[arg(long, alias = "rate", default_value = "30", value_parser = rates)]
    pub fps: List<u32>,
    /// Target bitrate of every encoder in kbit/s.
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub bitrate: u32,
    /// pstream's H.264 preset: fast, balanced or quality.
    #[arg(long, default_value = "fast", value_parser = one_preset)]
    pub preset: H264Preset,
    /// pstream's H.264 encoder threads (0: one per core).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=16))]
    pub threads: u16,
    /// Pictures per run.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub frames: u64,
    /// Runs of each pipeline, interleaved (default: 3 with --compare, else 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: Option<u32>,
    /// Programs to run beside pstream, a comma list of gstreamer, ffmpeg
    /// (those not installed are reported as not run).
    #[arg(long, value_parser = compares)]
    pub compare: Option<List<Compare>>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw the latency histogram and the stage chart into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

fn rates(s: &str) -> Result<List<u32>, ListError> {
    parse_list(s, "rate", |t| parse_number(t, "rate", 1..=240)).map(List)
}

fn one_preset(s: &str) -> Result<H264Preset, ListError> {
    parse_preset(s.trim())
}

fn compares(s: &str) -> Result<List<Compare>, ListError> {
    parse_list(s, "compare", |t| {
        Compare::parse(t).ok_or_else(|| ListError::BadItem {
            what: "compare",
            item: t.to_owned(),
            why: "not one of gstreamer, ffmpeg".into(),
        })
    })
    .map(List)
}

/// A comma list given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

/// Options of `pstream bench encode`.
#[derive(Debug, Clone, Args)]
pub struct EncodeArgs {
    /// Encoders to run, a comma list of h264, mjpeg, opus, aac.
    #[arg(long, default_value = "h264", value_parser = codecs)]
    pub codecs: List<BenchCodec>,
    /// Video source: `test` (the moving pattern), `y4m:PATH`, `y4m:-`
    /// (stdin: one video row only), `v4l2:/dev/videoN[?...]` or
    /// `shmdata:PATH`; devices and shmdata deliver at their own pace.
    #[arg(long, default_value = "test")]
    pub video: String,
    /// Audio source for opus and aac: `test` (a tone), `wav:PATH`, `wav:-`,
    /// a device (`default`, `alsa:NAME`, `pipewire[:NODE]`) or `shmdata:PATH`.
    #[arg(long, default_value = "test")]
    pub audio: String,
    /// Picture sizes, a comma list of WIDTHxHEIGHT; sources of another size
    /// are scaled first, untimed (default: 1280x720 for `test`, the
    /// source's own size otherwise).
    #[arg(long, alias = "size", value_parser = sizes)]
    pub sizes: Option<List<(u32, u32)>>,
    /// Frame rate of the test pattern and asked of cameras (files bring their own).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// H.264 presets, a comma list of fast, balanced, quality.
    #[arg(long, alias = "preset", default_value = "fast,balanced,quality", value_parser = presets)]
    pub presets: List<H264Preset>,
    /// H.264 encoder threads, a comma list (0: one per core).
    #[arg(long, default_value = "1", value_parser = threads)]
    pub threads: List<u16>,
    /// H.264 encoder: openh264, v4l2m2m[:/dev/videoN] or auto (as for send).
    #[arg(long, default_value = "openh264", value_parser = parse_encoder)]
    pub encoder: pstream_embed::EncoderChoice,
    /// H.264 target bitrates in kbit/s, a comma list.
    #[arg(long, alias = "bitrate", default_value = "2500", value_parser = bitrates)]
    pub bitrates: List<u32>,
    /// MJPEG qualities 1..100, a comma list.
    #[arg(long, alias = "quality", default_value = "85", value_parser = qualities)]
    pub qualities: List<u8>,
    /// Opus and AAC bitrates in kbit/s, a comma list (default: 96 for Opus,
    /// 128 for AAC).
    #[arg(long, alias = "audio-bitrate", value_parser = audio_bitrates)]
    pub audio_bitrates: Option<List<u32>>,
    /// Audio channels encoded: 1 or 2.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=2))]
    pub channels: u16,
    /// Pictures per row (default 300); audio rows encode as long as that
    /// lasts at --fps.
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub frames: Option<u64>,
    /// Seconds of media per row instead of --frames.
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Feed files and the test pattern at their frame rate, as a live
    /// pipeline would, instead of as fast as the encoder takes them.
    #[arg(long)]
    pub realtime: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!(
            "duration {v} must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(v)
}

fn codecs(s: &str) -> Result<List<BenchCodec>, ListError> {
    parse_list(s, "codec", parse_codec).map(List)
}

fn sizes(s: &str) -> Result<List<(u32, u32)>, ListError> {
    parse_list(s, "size", parse_size).map(List)
}

fn presets(s: &str) -> Result<List<H264Preset>, ListError> {
    parse_list(s, "preset", parse_preset).map(List)
}

fn threads(s: &str) -> Result<List<u16>, ListError> {
    parse_list(s, "threads", |t| parse_number(t, "threads", 0..=16)).map(List)
}

fn bitrates(s: &str) -> Result<List<u32>, ListError> {
    parse_list(s, "bitrate", |t| parse_number(t, "bitrate", 50..=100_000)).map(List)
}

fn qualities(s: &str) -> Result<List<u8>, ListError> {
    parse_list(s, "quality", |t| parse_number(t, "quality", 1..=100)).map(List)
}

fn audio_bitrates(s: &str) -> Result<List<u32>, ListError> {
    parse_list(s, "audio bitrate", |t| {
        parse_number(t, "audio bitrate", 6..=510)
    })
    .map(List)
}

/// Runs `pstream bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchCommand::Encode(a) => encode(a),
        BenchCommand::Loopback(a) => loopback(a),
    }
}

fn loopback(a: LoopbackArgs) -> Result<()> {
    let compare = a.compare.map(|c| c.0).unwrap_or_default();
    let runs = a.runs.unwrap_or(if compare.is_empty() { 1 } else { 3 });
    let bench = LoopbackBench::new()
        .sizes(a.sizes.0)
        .rates(a.fps.0)
        .bitrate_kbps(a.bitrate)
        .preset(a.preset)
        .threads(a.threads)
        .frames(a.frames)
        .runs(runs)
        .compare(compare);
    bench.check()?;
    if let Some(path) = &a.plot {
        // Fail on an unwritable path now, not after minutes of runs.
        std::fs::write(path, "")
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    let report = bench.run_with(|label, _, run| {
        eprintln!(
            "bench: {label}: {}/{} pictures, median {:.1} ms, p99 {:.1} ms",
            run.timecoded, run.pictures_in, run.latency.median_ms, run.latency.p99_ms
        );
    })?;
    if let Some(path) = &a.plot {
        std::fs::write(path, crate::bench_plot::svg(&report)?)
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    if a.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn parse_encoder(s: &str) -> std::result::Result<pstream_embed::EncoderChoice, String> {
    s.parse()
}

fn encode(a: EncodeArgs) -> Result<()> {
    let mut bench = EncodeBench::new()
        .codecs(a.codecs.0)
        .video(a.video)
        .audio(a.audio)
        .fps(a.fps)
        .presets(a.presets.0)
        .threads(a.threads.0)
        .bitrates_kbps(a.bitrates.0)
        .qualities(a.qualities.0)
        .channels(a.channels)
        .realtime(a.realtime)
        .h264_encoder(a.encoder.resolve()?);
    if let Some(s) = a.sizes {
        bench = bench.sizes(s.0);
    }
    if let Some(b) = a.audio_bitrates {
        bench = bench.audio_bitrates_kbps(b.0);
    }
    bench = match (a.frames, a.duration) {
        (_, Some(s)) => bench.seconds(s),
        (Some(n), None) => bench.frames(n),
        (None, None) => bench,
    };
    let report = bench.run_with(progress)?;
    if a.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// One line on stderr per finished row: a long run shows it is alive.
fn progress(i: usize, n: usize, row: &RowResult) {
    eprintln!(
        "bench: row {i}/{n} ({}) done in {:.1} s",
        row.case.label(),
        row.wall_seconds
    );
}
