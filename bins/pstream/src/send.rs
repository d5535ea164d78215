//! `pstream send` and `pstream sdp`: options to an [`RtpConfig`], then the
//! library's pipeline (`pstream_embed::rtp`, where the whole path of a frame
//! is) with a stats line until Ctrl-C, SIGTERM or `--duration`.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use pstream_embed::{AutoBitrate, RtpConfig, RtpSend, VideoCodec};

use crate::cli::{BitrateArg, SendArgs, VideoCodecArg};
use crate::stats::{ProcessPeak, StatsMode, StatsPrinter};

fn config(args: &SendArgs) -> anyhow::Result<RtpConfig> {
    Ok(RtpConfig {
        peer: args.peer.clone(),
        listen: args.listen,
        port_base: args.port_base,
        video: args.video.clone(),
        audio: args.audio.clone(),
        video_codec: match args.video_codec {
            VideoCodecArg::H264 => VideoCodec::H264,
            VideoCodecArg::Mjpeg => VideoCodec::Mjpeg,
        },
        quality: args.quality,
        size: args.size,
        fps: args.fps,
        // auto starts at the fixed default, or at the max if that is lower.
        bitrate_kbps: match args.bitrate {
            BitrateArg::Kbps(k) => k,
            BitrateArg::Auto => {
                2500u32.clamp(args.min_bitrate.min(args.max_bitrate), args.max_bitrate)
            }
        },
        auto_bitrate: (args.bitrate == BitrateArg::Auto).then_some(AutoBitrate {
            min_kbps: args.min_bitrate,
            max_kbps: args.max_bitrate,
        }),
        keyint_seconds: args.keyint,
        audio_bitrate_kbps: args.audio_bitrate,
        channels: args.channels,
        preset: args.encoder.preset.into(),
        threads: args.encoder.threads,
        encoder: args.encoder.encoder.clone(),
        mtu: args.mtu,
        srtp: args.srtp.key()?,
        rtx: args.rtx.rtx,
        rtx_payload_type: args.rtx.rtx_pt,
        probe: None,
    })
}

fn write_sdp(args: &SendArgs, sdp: &str) -> anyhow::Result<()> {
    if let Some(path) = &args.sdp {
        std::fs::write(path, sdp).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `pstream sdp`: prints the description and exits.
pub fn print_sdp(args: SendArgs) -> anyhow::Result<()> {
    let sdp = RtpSend::prepare(&config(&args)?)?.sdp()?;
    print!("{sdp}");
    write_sdp(&args, &sdp)
}

/// `pstream send`: runs until `--duration`, Ctrl-C or SIGTERM.
pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::install(args.duration)?;
    let plan = RtpSend::prepare(&config(&args)?)?;
    if args.sdp.is_some() {
        write_sdp(&args, &plan.sdp()?)?;
    }
    let mut stream = plan.start(shutdown)?;

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "send");
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
        tracing::info!("send finished: {} | {}", stream.summary(), peak.line());
    }
    Ok(result?)
}
