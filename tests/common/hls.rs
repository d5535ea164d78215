//! `pstream serve` and its publishers and viewers, for the tests that run
//! it (tests/serve.rs, tests/stage_panic.rs): the recipe's ffmpeg publish,
//! and curl fetching playlists and segments the way the recipe does.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{pstream_bin, require, Proc};

/// A TCP port free on 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// `pstream serve` on fresh ports, waiting until it listens.
pub struct Serve {
    /// The running `pstream serve`.
    pub proc: Proc,
    /// Its RTMP port.
    pub rtmp: u16,
    /// Its HTTP port.
    pub http: u16,
}

/// Starts `pstream serve` with `extra` options on two free loopback ports.
pub fn start_serve(dir: &Path, extra: &[&str]) -> Serve {
    start_serve_env(dir, extra, &[])
}

/// Like [`start_serve`], with extra environment variables.
pub fn start_serve_env(dir: &Path, extra: &[&str], env: &[(String, String)]) -> Serve {
    let (rtmp, http) = (free_tcp_port(), free_tcp_port());
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--rtmp".into(),
        format!("127.0.0.1:{rtmp}"),
        "--http".into(),
        format!("127.0.0.1:{http}"),
        // Tests run servers side by side: each its own WebRTC port.
        "--webrtc-port".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::start_env("serve", &pstream_bin(), &args, dir, env);
    assert!(
        proc.wait_for_output("listening:", Duration::from_secs(10)),
        "pstream serve did not start: {}",
        proc.stderr()
    );
    Serve { proc, rtmp, http }
}

/// The recipe's publisher, bounded to `secs` seconds, to `key` (size and rate as given).
pub fn ffmpeg_publish(dir: &Path, name: &str, port: u16, key: &str, size: &str, secs: u32) -> Proc {
    require("ffmpeg");
    let input = format!("testsrc=size={size}:rate=30,format=yuv420p");
    let url = format!("rtmp://127.0.0.1:{port}/{key}");
    let secs = secs.to_string();
    let args: Vec<String> = [
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &input,
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-c:v",
        "libx264",
        "-b:v",
        "10000k",
        "-preset",
        "ultrafast",
        "-x264-params",
        "keyint=30",
        "-c:a",
        "aac",
        "-t",
        &secs,
        "-f",
        "flv",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::start(name, Path::new("ffmpeg"), &args, dir)
}

/// GET over loopback with curl: the body, or None on any HTTP or transport error.
pub fn get(port: u16, path: &str) -> Option<Vec<u8>> {
    require("curl");
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

pub fn get_text(port: u16, path: &str) -> String {
    get(port, path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The segment URIs a media playlist lists.
pub fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(str::to_string)
        .collect()
}

/// The sequence number in a segment URI (`source/<session>-12.ts` -> 12).
pub fn segment_number(uri: &str) -> Option<u64> {
    let stem = uri.rsplit('/').next()?.strip_suffix(".ts")?;
    stem.rsplit('-').next()?.parse().ok()
}

/// Polls `f` every 200 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
