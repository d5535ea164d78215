//! An HLS back-end in a few lines, the streaming back-end recipe's
//! broadcaster: RTMP publishers in (ffmpeg, OBS, `pstream push`), HLS out
//! with a lighter 144p rendition, for players at `/stream/<key>.m3u8`.
//!
//! `cargo run -p pstream-embed --example hls_serve -- [RTMP_ADDR] [HTTP_ADDR] [SECONDS] [RENDITIONS]`
//! with addresses like `0.0.0.0:1935` (the defaults: 1935 and 8935; port 0
//! picks a free one), SECONDS to stop by itself, and RENDITIONS
//! comma-separated (`P144p30fps16x9,P360p30fps16x9`) or `none` for the
//! source alone (what a Pi Zero can afford).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pstream_embed::serve::{Rendition, Serve};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let renditions: Result<Vec<Rendition>, _> = match arg(3, "P144p30fps16x9").as_str() {
        "none" => Ok(Vec::new()),
        list => list.split(',').map(str::parse).collect(),
    };
    let (Ok(renditions), seconds) = (renditions, args.get(2).map(|s| s.parse::<f64>())) else {
        eprintln!("usage: hls_serve [RTMP_ADDR] [HTTP_ADDR] [SECONDS] [RENDITIONS|none]");
        return ExitCode::from(2);
    };
    let mut serve = Serve::new()
        .rtmp(arg(0, "0.0.0.0:1935"))
        .http(arg(1, "0.0.0.0:8935"))
        .renditions(renditions);
    match seconds {
        Some(Ok(s)) => serve = serve.duration(s),
        Some(Err(_)) => {
            eprintln!("hls_serve: SECONDS must be a number");
            return ExitCode::from(2);
        }
        None => {}
    }
    let mut server = match serve.start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hls_serve: {}", pstream_embed::error::one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "hls_serve: publish to rtmp://{}/<key>, play http://{}/stream/<key>.m3u8",
        server.rtmp_addr(),
        server.http_addr()
    );
    let mut last = Instant::now();
    while !server.stopping() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!("hls_serve: {}", server.stats_line());
        }
    }
    if let Err(e) = server.wait() {
        eprintln!("hls_serve: {}", pstream_embed::error::one_line(&e));
        return ExitCode::FAILURE;
    }
    eprintln!("hls_serve: done: {}", server.summary());
    ExitCode::SUCCESS
}
