//! `pstream recv`: options to a [`RecvConfig`], then the library's receiver
//! (`pstream_embed::recv`, where the whole path of a packet is: sockets,
//! RTP session, decoders, lip sync, outputs) with a stats line until
//! Ctrl-C, SIGTERM or `--duration`.

use std::thread;
use std::time::{Duration, Instant};

use pstream_embed::{RecvConfig, RtpRecv, SyncMode, VideoCodec};

use crate::cli::{RecvArgs, SyncArg, VideoCodecArg};
use crate::stats::{StatsMode, StatsPrinter};

fn config(args: &RecvArgs) -> anyhow::Result<RecvConfig> {
    Ok(RecvConfig {
        peer: args.peer.clone(),
        listen: args.listen,
        port_base: args.port_base,
        latency_ms: args.latency,
        video_codec: match args.video_codec {
            VideoCodecArg::H264 => VideoCodec::H264,
            VideoCodecArg::Mjpeg => VideoCodec::Mjpeg,
        },
        video_out: args.video_out.clone(),
        framerate: args.framerate,
        audio_out: args.audio_out.clone(),
        sync: match args.sync {
            SyncArg::Auto => SyncMode::Auto,
            SyncArg::On => SyncMode::On,
            SyncArg::Off => SyncMode::Off,
        },
        timecode: args.timecode,
        srtp: args.srtp.key()?,
        rtx: args.rtx.rtx,
        rtx_payload_type: args.rtx.rtx_pt,
        remb: !args.no_remb,
        probe: None,
    })
}

/// `pstream recv`: runs until `--duration`, Ctrl-C or SIGTERM.
pub fn run(args: RecvArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::install(args.duration)?;
    let mut recv = RtpRecv::start(&config(&args)?, shutdown)?;

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "recv");
    let mut last = Instant::now();
    while !recv.stopping() {
        thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            printer.show(&recv.stats_line());
        }
    }
    let result = recv.wait();
    printer.finish();
    if !args.quiet {
        // The summary covers the whole run, every latency sample included.
        tracing::info!("recv finished: {}", recv.summary());
    }
    Ok(result?)
}
