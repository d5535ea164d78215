//! Streams a 320x240 test pattern and a tone as H.264 + Opus over RTP: the
//! few lines a program on a Pi needs. Receive with
//! `pstream recv --peer 127.0.0.1 --port-base 5000 --video-out y4m:out.y4m`.
//!
//! `cargo run -p pstream-embed --example rtp_send -- [PEER] [PORT_BASE] [SECONDS]`

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let peer = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port_base = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);

    let started = pstream_embed::Rtp::to(peer)
        .size(320, 240)
        .fps(15)
        .bitrate_kbps(400)
        .port_base(port_base)
        .duration(seconds)
        .start();
    let mut stream = match started {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("rtp_send: {e}");
            return ExitCode::FAILURE;
        }
    };
    while !stream.stopping() {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("rtp_send: {}", stream.stats_line());
    }
    if let Err(e) = stream.wait() {
        eprintln!("rtp_send: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("rtp_send finished: {}", stream.summary());
    ExitCode::SUCCESS
}
