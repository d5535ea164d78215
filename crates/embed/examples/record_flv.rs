//! Records a camera (or the test pattern) and a microphone (or a tone) as
//! H.264 + AAC into an FLV file that ffmpeg, VLC and OBS read.
//!
//! `cargo run -p pstream-embed --example record_flv -- OUT.flv [SECONDS] [VIDEO] [AUDIO]`
//! with VIDEO `test`, `v4l2:/dev/video0`, `y4m:PATH`... and AUDIO `test`,
//! `default`, `pipewire`, `wav:PATH`...

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: record_flv OUT.flv [SECONDS] [VIDEO] [AUDIO]");
        return ExitCode::from(2);
    };
    let seconds = match args.next().map(|s| s.parse::<f64>()) {
        None => 5.0,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("record_flv: SECONDS must be a number");
            return ExitCode::from(2);
        }
    };
    let video = args.next().unwrap_or_else(|| "test".into());
    let audio = args.next().unwrap_or_else(|| "test".into());
    let started = pstream_embed::Record::to(&path)
        .video(video)
        .audio(audio)
        .size(640, 360)
        .bitrate_kbps(1000)
        .duration(seconds)
        .start();
    let mut recording = match started {
        Ok(r) => r,
        Err(e) => {
            eprintln!("record_flv: {}", pstream_embed::error::one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = recording.wait() {
        eprintln!("record_flv: {}", pstream_embed::error::one_line(&e));
        return ExitCode::FAILURE;
    }
    eprintln!("record_flv: wrote {path}: {}", recording.summary());
    ExitCode::SUCCESS
}
