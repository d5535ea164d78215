//! Issue 18, WHEP: headless Chromium plays the H.264 that ffmpeg publishes
//! to `pstream serve` over RTMP, forwarded over WebRTC without transcoding
//! (`getStats()`: frames decoded rise, at the published size), and keeps
//! playing while hostile peers send malformed offers, offers without
//! H.264, oversized bodies and garbage datagrams to the WebRTC port.
//!
//! The page comes from a tiny server the test runs on another port, so its
//! WHEP requests to serve are cross-origin (CORS must be right); it reports
//! its stats back to that server.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::hls::{ffmpeg_publish, get_text, start_serve, wait_for};
use common::page::{field, PageServer};
use common::{require, serial, temp_dir, Proc};

const KEY: &str = "whep_test";

/// Frames the browser must decode (two seconds at the publish's 30 fps),
/// before and again after the hostile peers.
const MUST_DECODE: u64 = 60;

/// The page: one receive-only peer connection, WHEP to serve, and every
/// 250 ms the inbound video stats to /report.
fn page(http_port: u16) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WHEP test</title></head>
<body><video id="v" muted autoplay playsinline></video>
<script>
function report(q) {{ fetch('/report?' + q).catch(() => {{}}); }}
const video = document.getElementById('v');
async function play() {{
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {{ direction: 'recvonly' }});
  pc.addTransceiver('audio', {{ direction: 'recvonly' }});
  pc.ontrack = (e) => {{ if (!video.srcObject) video.srcObject = new MediaStream(); video.srcObject.addTrack(e.track); }};
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {{
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => {{ if (pc.iceGatheringState === 'complete') done(); }};
    setTimeout(done, 2000);
  }});
  const resp = await fetch('http://127.0.0.1:{http_port}/stream/{KEY}/whep', {{
    method: 'POST', headers: {{ 'Content-Type': 'application/sdp' }}, body: pc.localDescription.sdp }});
  report('status=' + resp.status + '&location=' + encodeURIComponent(resp.headers.get('Location') || ''));
  await pc.setRemoteDescription({{ type: 'answer', sdp: await resp.text() }});
  setInterval(async () => {{
    const stats = await pc.getStats();
    stats.forEach((s) => {{
      if (s.type === 'inbound-rtp' && s.kind === 'video') {{
        report('frames=' + (s.framesDecoded || 0) + '&w=' + (s.frameWidth || 0) + '&h=' + (s.frameHeight || 0) +
          '&freezes=' + (s.freezeCount || 0) + '&codec=' + encodeURIComponent(s.codecId || '') +
          '&state=' + pc.connectionState);
      }}
    }});
  }}, 250);
}}
play().catch((e) => report('error=' + encodeURIComponent(String(e))));
</script></body></html>
"#
    )
}

/// The latest stats report: (frames decoded, width, height, freezes).
fn latest(pages: &PageServer) -> Option<(u64, u64, u64, u64)> {
    pages.reports().iter().rev().find_map(|r| {
        Some((
            field(r, "frames")?.parse().ok()?,
            field(r, "w")?.parse().ok()?,
            field(r, "h")?.parse().ok()?,
            field(r, "freezes")?.parse().ok()?,
        ))
    })
}

/// A request with curl: (status, headers and body as text).
fn curl(method: &str, url: &str, content_type: Option<&str>, body: Option<&Path>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "-X", method]);
    if let Some(t) = content_type {
        cmd.args(["-H", &format!("Content-Type: {t}")]);
    }
    if let Some(path) = body {
        cmd.args(["--data-binary", &format!("@{}", path.display())]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A minimal offer with one receive-only video line carrying `rtpmap`.
fn offer_sdp(rtpmap: &str) -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
         a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=recvonly\r\na=rtcp-mux\r\n{rtpmap}",
        fp.join(":")
    )
}

/// The WebRTC UDP port serve logged at start.
fn webrtc_port(serve: &Proc) -> u16 {
    let log = serve.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("WebRTC: udp "))
        .unwrap_or_else(|| panic!("no WebRTC line in serve's log: {log}"));
    let addr = line
        .split("WebRTC: udp ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_default();
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Waits until the page reports at least `frames` decoded; the latest report.
fn wait_frames(pages: &PageServer, frames: u64, limit: Duration) -> Option<(u64, u64, u64, u64)> {
    wait_for(limit, || latest(pages).filter(|r| r.0 >= frames))
}

#[test]
fn chromium_plays_whep_and_keeps_playing_through_hostile_peers() {
    let _guard = serial();
    for tool in ["ffmpeg", "chromium", "curl"] {
        require(tool);
    }
    let dir = temp_dir("whep");
    let s = start_serve(&dir, &["--renditions", "none"]);
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, KEY, "640x480", 40);
    let master = format!("/stream/{KEY}.m3u8");
    assert!(
        wait_for(Duration::from_secs(15), || (!get_text(s.http, &master)
            .is_empty())
        .then_some(()))
        .is_some(),
        "the stream did not go live: {}\n{}",
        s.proc.stderr(),
        ff.stderr()
    );
    // serve's own viewer page is there, naming the stream's WHEP and HLS URLs.
    let viewer = get_text(s.http, &format!("/stream/{KEY}/"));
    assert!(
        viewer.contains(&format!("'/stream/{KEY}/whep'")) && viewer.contains("RTCPeerConnection"),
        "{viewer}"
    );

    let pages = PageServer::start(page(s.http), Vec::new());
    let profile = dir.join("chromium-profile");
    let chromium_args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        // Host candidates with real loopback addresses, not mDNS names.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        &format!("--user-data-dir={}", profile.display()),
        &format!("http://127.0.0.1:{}/", pages.port),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut chromium = Proc::start("chromium", Path::new("chromium"), &chromium_args, &dir);

    let started = Instant::now();
    let first = wait_frames(&pages, MUST_DECODE, Duration::from_secs(40));
    let Some((frames, w, h, _)) = first else {
        panic!(
            "Chromium decoded fewer than {MUST_DECODE} frames in 40 s; reports: {:?}\nserve: {}",
            pages.reports().iter().rev().take(5).collect::<Vec<_>>(),
            s.proc.stderr()
        );
    };
    eprintln!(
        "whep: {frames} frames decoded {:.1} s after Chromium started",
        started.elapsed().as_secs_f64()
    );
    assert_eq!((w, h), (640, 480), "decoded size");
    let location = pages.reports().iter().find_map(|r| {
        Some((
            field(r, "status")?.to_string(),
            field(r, "location")?.to_string(),
        ))
    });
    assert!(
        matches!(&location, Some((status, loc)) if status == "201" && loc.starts_with("%2Fstream%2Fwhep_test%2Fwhep%2F")),
        "{location:?}"
    );

    // Hostile peers, while the healthy one plays.
    let base = format!("http://127.0.0.1:{}/stream/{KEY}/whep", s.http);
    let file = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write a body");
        p
    };
    let garbage = file("garbage.sdp", b"v=0\r\nthis is not an offer\r\n\0\xff\xfe");
    assert_eq!(
        curl("POST", &base, Some("application/sdp"), Some(&garbage)).0,
        400
    );
    let empty = file("empty.sdp", b"");
    assert_eq!(
        curl("POST", &base, Some("application/sdp"), Some(&empty)).0,
        400
    );
    let vp8 = file("vp8.sdp", offer_sdp("a=rtpmap:96 VP8/90000\r\n").as_bytes());
    let (status, text) = curl("POST", &base, Some("application/sdp"), Some(&vp8));
    assert_eq!(status, 406, "{text}");
    let huge = file("huge.sdp", &vec![b'a'; 1 << 20]);
    assert_eq!(
        curl("POST", &base, Some("application/sdp"), Some(&huge)).0,
        413
    );
    assert_eq!(curl("POST", &base, Some("text/plain"), Some(&vp8)).0, 415);
    let nobody = format!("http://127.0.0.1:{}/stream/nobody/whep", s.http);
    assert_eq!(
        curl("POST", &nobody, Some("application/sdp"), Some(&vp8)).0,
        404
    );
    assert_eq!(curl("GET", &base, None, None).0, 405);
    let (status, text) = curl("OPTIONS", &base, None, None);
    assert_eq!(status, 204, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("access-control-allow-methods: post, options"),
        "{text}"
    );
    assert_eq!(
        curl("DELETE", &format!("{base}/0123456789abcdef"), None, None).0,
        404
    );
    // Garbage, fake STUN and fake DTLS on the WebRTC port.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let target = ("127.0.0.1", webrtc_port(&s.proc));
    let mut stun = vec![0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7u8; 12]);
    for i in 0..2000u32 {
        let datagram: Vec<u8> = match i % 4 {
            0 => vec![(i % 251) as u8; 1 + (i as usize % 1400)],
            1 => stun.clone(),
            2 => [&[22u8, 0xfe, 0xfd][..], &[0xaa; 60][..]].concat(),
            _ => [&[0x80u8, 96][..], &[0x55; 200][..]].concat(),
        };
        let _ = udp.send_to(&datagram, target);
    }

    // The healthy viewer goes on decoding at its size.
    let after = wait_frames(&pages, frames + MUST_DECODE, Duration::from_secs(20));
    let Some((more, w, h, freezes)) = after else {
        panic!(
            "the viewer stopped after the hostile peers: {:?}\nserve: {}",
            latest(&pages),
            s.proc.stderr()
        );
    };
    eprintln!("whep: {more} frames decoded after the hostile peers, {freezes} freezes");
    assert_eq!((w, h), (640, 480));

    // serve's own viewer page plays too, over WebRTC: its title says so,
    // read through the DevTools endpoint's page list.
    let devtools = common::hls::free_tcp_port();
    let viewer_args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        &format!("--remote-debugging-port={devtools}"),
        &format!("--user-data-dir={}", dir.join("chromium-viewer").display()),
        &format!("http://127.0.0.1:{}/stream/{KEY}/", s.http),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut viewer = Proc::start("viewer", Path::new("chromium"), &viewer_args, &dir);
    let title = format!("{KEY} · WebRTC 640x480");
    let seen = wait_for(Duration::from_secs(20), || {
        let list = get_text(devtools, "/json/list");
        list.contains(&title).then_some(())
    });
    assert!(
        seen.is_some(),
        "serve's viewer page did not play over WebRTC: {}",
        get_text(devtools, "/json/list")
    );
    viewer.signal("TERM");
    viewer.wait(Duration::from_secs(5));

    // The viewer leaves: its DELETE works once.
    if let Some((_, loc)) = location {
        let path = loc.replace("%2F", "/");
        let url = format!("http://127.0.0.1:{}{path}", s.http);
        assert_eq!(curl("DELETE", &url, None, None).0, 200);
        assert_eq!(curl("DELETE", &url, None, None).0, 404);
    }
    chromium.signal("TERM");
    chromium.wait(Duration::from_secs(5));
    ff.signal("TERM");
    ff.wait(Duration::from_secs(5));

    // serve counted what it refused and dropped, and says so as it ends.
    let mut s = s;
    s.proc.signal("INT");
    s.proc.wait(Duration::from_secs(15));
    let log = s.proc.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("webrtc: "))
        .unwrap_or_else(|| panic!("no webrtc summary: {log}"));
    eprintln!("{line}");
    let count = |what: &str| -> u64 {
        line.split(", ")
            .find_map(|part| {
                part.trim()
                    .strip_suffix(what)?
                    .split_whitespace()
                    .last()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {what:?} in {line:?}"))
    };
    // Two refused offers reach the sessions (the empty one, VP8 only); the
    // garbage (not UTF-8), 413, 415 and 404 are answered before.
    assert_eq!(count(" refused"), 2, "{line}");
    assert!(count(" connected") >= 2, "{line}");
    // Loopback may lose some of a 2000-datagram burst before serve reads
    // them; most must arrive, and every one that does is dropped (the
    // browser's own datagrams after its DELETE add to the count).
    let dropped = count(" datagrams dropped");
    assert!(dropped >= 1000, "{line}");
}
