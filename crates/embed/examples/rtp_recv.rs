//! Plays a peer's H.264 + Opus stream (`pstream send`, the rtp_send
//! example, GStreamer's costream sender) into a Y4M and a WAV file, or
//! into devices: the receiving end a program on a Pi needs. Lost pictures
//! are never shown (a PLI brings the next IDR), lost audio is concealed.
//!
//! `cargo run -p pstream-embed --example rtp_recv -- [PEER] [PORT_BASE] [SECONDS] [VIDEO_OUT] [AUDIO_OUT]`
//! with VIDEO_OUT `y4m:out.y4m` (the default), `v4l2:/dev/video10` or
//! `null`, and AUDIO_OUT `wav:out.wav` (the default) or `null`; sound
//! devices (`default`, `alsa:NAME`, `pipewire`) with `--features alsa`
//! or `--features pipewire`.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let peer = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port_base = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let video_out = args.next().unwrap_or_else(|| "y4m:out.y4m".into());
    let audio_out = args.next().unwrap_or_else(|| "wav:out.wav".into());

    let started = pstream_embed::Receive::from(peer.as_str())
        .port_base(port_base)
        .video_out(video_out)
        .audio_out(audio_out)
        .duration(seconds)
        .start();
    let mut recv = match started {
        Ok(recv) => recv,
        Err(e) => {
            eprintln!("rtp_recv: {}", pstream_embed::error::one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "rtp_recv: receiving from {peer} on ports {port_base}-{}",
        port_base + 3
    );
    while !recv.stopping() {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("rtp_recv: {}", recv.stats_line());
    }
    if let Err(e) = recv.wait() {
        eprintln!("rtp_recv: {}", pstream_embed::error::one_line(&e));
        return ExitCode::FAILURE;
    }
    eprintln!("rtp_recv finished: {}", recv.summary());
    ExitCode::SUCCESS
}
