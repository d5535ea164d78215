//! Issue 6, must show 2: hls.js in headless Chromium (Debian's) plays the
//! source playlist of a running `pstream serve` that ffmpeg publishes to,
//! and playback time advances.
//!
//! The page and hls.js come from a tiny server the test runs itself on
//! another port, so the player's requests to `pstream serve` are
//! cross-origin: playback only works if the CORS headers are right. The page
//! reports `video.currentTime` back to that same tiny server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hls::free_tcp_port;
use common::nginx::wait_listening;
use common::page::{field, hls_js, PageServer};
use common::{pstream_bin, require, serial, temp_dir, Proc};

const KEY: &str = "browser_test";

/// How far playback must get for the test to pass, in media seconds.
const MUST_PLAY_SECS: f64 = 4.0;

/// GET `path` from 127.0.0.1:`port`: (status, body), or None if no answer.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The page: hls.js plays the source playlist muted and reports what it
/// sees to /report every 250 ms.
fn page(http_port: u16) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>pstream serve in hls.js</title></head>
<body><video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
const video = document.getElementById('v');
function report(q) {{ fetch('/report?' + q).catch(() => {{}}); }}
const mse = !!(window.MediaSource &&
  MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'));
report('start&hls=' + (typeof Hls !== 'undefined' && Hls.isSupported()) + '&mse=' + mse);
const hls = new Hls();
hls.on(Hls.Events.ERROR, (e, d) =>
  report('error=' + encodeURIComponent(d.details) + '&fatal=' + d.fatal));
hls.on(Hls.Events.MANIFEST_PARSED, () =>
  video.play().catch(e => report('play_error=' + encodeURIComponent(String(e)))));
hls.loadSource('http://127.0.0.1:{http_port}/stream/{KEY}/source.m3u8');
hls.attachMedia(video);
setInterval(() => report('t=' + video.currentTime + '&ready=' + video.readyState +
  '&paused=' + video.paused), 250);
</script></body></html>
"#
    )
}

#[test]
fn hls_js_in_chromium_plays_the_source_playlist() {
    let _guard = serial();
    for tool in ["ffmpeg", "chromium"] {
        require(tool);
    }
    let script = std::fs::read(hls_js()).expect("read hls.min.js");
    let dir = temp_dir("serve_browser");
    let (rtmp_port, http_port) = (free_tcp_port(), free_tcp_port());

    let serve_args: Vec<String> = [
        "serve",
        "--rtmp",
        &format!("127.0.0.1:{rtmp_port}"),
        "--http",
        &format!("127.0.0.1:{http_port}"),
        "--webrtc-port",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let serve = Proc::start("pstream", &pstream_bin(), &serve_args, &dir);
    assert!(
        wait_listening(http_port, Duration::from_secs(10))
            && wait_listening(rtmp_port, Duration::from_secs(5)),
        "pstream serve is not listening: {}",
        serve.stderr()
    );

    // The issue's publisher, as the recipe runs it.
    let ffmpeg_args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x480:rate=30,format=yuv420p",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-x264-params",
        "keyint=30",
        "-c:a",
        "aac",
        "-f",
        "flv",
        &format!("rtmp://127.0.0.1:{rtmp_port}/{KEY}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ffmpeg = Proc::start("ffmpeg", Path::new("ffmpeg"), &ffmpeg_args, &dir);

    // Wait for a live playlist with a few segments before the player starts.
    let playlist_path = format!("/stream/{KEY}/source.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = http_get(http_port, &playlist_path);
        if let Some((200, body)) = &last {
            if body.lines().filter(|l| l.ends_with(".ts")).count() >= 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    match &last {
        Some((200, body)) if body.lines().filter(|l| l.ends_with(".ts")).count() >= 3 => {}
        other => panic!(
            "no source playlist with 3 segments within 30 s: {other:?}\npstream: {}\nffmpeg: {}",
            serve.stderr(),
            ffmpeg.stderr()
        ),
    }

    let pages = PageServer::start(
        page(http_port),
        vec![("/hls.min.js", "text/javascript", script)],
    );
    let profile = dir.join("chromium-profile");
    let chromium_args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        &format!("--user-data-dir={}", profile.display()),
        &format!("http://127.0.0.1:{}/", pages.port),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let chromium = Proc::start("chromium", Path::new("chromium"), &chromium_args, &dir);

    // Playback must start and advance; give a loaded machine time to start
    // the browser and buffer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut played = (f64::NAN, f64::NAN);
    let mut fatal = None;
    while Instant::now() < deadline {
        let reports = pages.reports();
        let times: Vec<f64> = reports
            .iter()
            .filter_map(|r| field(r, "t")?.parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .collect();
        if let (Some(first), Some(max)) = (
            times.first().copied(),
            times.iter().copied().reduce(f64::max),
        ) {
            played = (first, max);
            if max - first >= MUST_PLAY_SECS {
                break;
            }
        }
        fatal = reports
            .iter()
            .find(|r| field(r, "fatal") == Some("true"))
            .cloned();
        if fatal.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let reports = pages.reports();
    let summary = || {
        let n = reports.len();
        format!(
            "page reports (first 5, last 5 of {n}): {:?} ... {:?}\npstream: {}\nffmpeg: {}\nchromium: {}",
            &reports[..n.min(5)],
            &reports[n.saturating_sub(5)..],
            serve.stderr(),
            ffmpeg.stderr(),
            chromium.stderr().lines().rev().take(20).collect::<Vec<_>>().join("\n")
        )
    };
    assert!(
        reports
            .iter()
            .any(|r| r.starts_with("start") && field(r, "mse") == Some("true")),
        "the page did not load, or this Chromium cannot play H.264+AAC through MSE\n{}",
        summary()
    );
    assert!(
        fatal.is_none(),
        "hls.js fatal error: {fatal:?}\n{}",
        summary()
    );
    let (first, max) = played;
    assert!(
        max - first >= MUST_PLAY_SECS,
        "playback did not advance {MUST_PLAY_SECS} s within 60 s (first {first}, max {max})\n{}",
        summary()
    );
    let errors: Vec<&String> = reports.iter().filter(|r| r.starts_with("error=")).collect();
    eprintln!(
        "hls.js played {first:.2} s -> {max:.2} s of the source playlist; {} reports, non-fatal errors: {errors:?}",
        reports.len()
    );
    drop(chromium);
    drop(ffmpeg);
    drop(serve);
}
