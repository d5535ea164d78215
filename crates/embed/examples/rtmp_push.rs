//! Pushes a 640x360 test pattern and a tone as H.264 + AAC to an RTMP
//! ingest, reconnecting through drops: what a Pi streaming to Twitch,
//! YouTube or nginx-rtmp runs. Optional further destinations (another
//! `rtmp://` URL or `file:PATH.flv`) get the same encoded stream.
//!
//! `cargo run -p pstream-embed --example rtmp_push -- URL [SECONDS] [MORE_URLS...]`

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: rtmp_push URL [SECONDS] [MORE_URLS...]");
        return ExitCode::from(2);
    };
    let seconds = match args.next().map(|s| s.parse::<f64>()) {
        None => 10.0,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("rtmp_push: SECONDS must be a number");
            return ExitCode::from(2);
        }
    };
    let mut push = pstream_embed::Push::to(url)
        .size(640, 360)
        .bitrate_kbps(800)
        .duration(seconds);
    for more in args {
        push = push.also_to(more);
    }
    let mut stream = match push.start() {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("rtmp_push: {}", pstream_embed::error::one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    while !stream.stopping() {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("rtmp_push: {}", stream.stats_line());
    }
    if let Err(e) = stream.wait() {
        eprintln!("rtmp_push: {}", pstream_embed::error::one_line(&e));
        return ExitCode::FAILURE;
    }
    eprintln!("rtmp_push finished: {}", stream.summary());
    ExitCode::SUCCESS
}
