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
/// 250 ms the inbound video and audio stats to /report.
fn page(http_port: u16) -> String {
    viewers_page(http_port, &[("src", &format!("/stream/{KEY}/whep"))], None)
}

/// A page with one WebRTC viewer per (label, WHEP path) on serve at
/// `http_port`, each reporting its stats every 250 ms as
/// `label=..&frames=..&w=..&h=..&freezes=..&apackets=..&asamples=..&aconcealed=..`;
/// with `hls` (a playlist path), also an hls.js player (hls.js served by the
/// test's page server at /hls.min.js). Every player reads the timecode band
/// of each frame it shows off a canvas and reports `lat=label&median=..&n=..`,
/// the median glass-to-glass latency (ms) of all its frames so far, each second.
fn viewers_page(http_port: u16, viewers: &[(&str, &str)], hls: Option<&str>) -> String {
    let viewers: Vec<String> = viewers
        .iter()
        .map(|(label, path)| format!("['{label}', 'http://127.0.0.1:{http_port}{path}']"))
        .collect();
    let hls = hls.map_or("null".to_string(), |p| {
        format!("'http://127.0.0.1:{http_port}{p}'")
    });
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WHEP test</title></head>
<body>
<script>
function report(q) {{ fetch('/report?' + q).catch(() => {{}}); }}
// The timecode band (capture/src/timecode.rs): 64 blocks across the top 16
// rows, MSB first, luma 235 a 1 and 16 a 0; microseconds since the epoch.
const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', {{ willReadFrequently: true }});
function timecode(video) {{
  const w = video.videoWidth;
  if (w < 64 || video.videoHeight < 16) return null;
  canvas.width = w; canvas.height = 16;
  ctx.drawImage(video, 0, 0, w, 16, 0, 0, w, 16);
  const d = ctx.getImageData(0, 0, w, 16).data;
  const bw = Math.floor(w / 64);
  let v = 0n;
  for (let i = 0; i < 64; i++) {{
    const start = i * bw, end = i === 63 ? w : start + bw;
    const x0 = start + Math.floor((end - start) / 4), x1 = Math.max(end - Math.floor((end - start) / 4), x0 + 1);
    let sum = 0, n = 0;
    for (let y = 4; y < 12; y++) for (let x = x0; x < x1; x++) {{
      const k = (y * w + x) * 4; sum += 0.299 * d[k] + 0.587 * d[k + 1] + 0.114 * d[k + 2]; n++;
    }}
    const avg = sum / n;
    if (Math.abs(avg - 128) < 45) return null;
    v = (v << 1n) | (avg >= 128 ? 1n : 0n);
  }}
  const us = Number(v);
  // Between 2000 and 2100, or it was no timecode.
  return us > 946684800e6 && us < 4102444800e6 ? us : null;
}}
function measure(label, video) {{
  const samples = [];
  const onFrame = (now) => {{
    const tc = timecode(video);
    if (tc !== null) samples.push((performance.timeOrigin + now) - tc / 1000);
    video.requestVideoFrameCallback(onFrame);
  }};
  video.requestVideoFrameCallback(onFrame);
  setInterval(() => {{
    if (!samples.length) return;
    const sorted = samples.slice().sort((a, b) => a - b);
    report('lat=' + label + '&median=' + sorted[sorted.length >> 1].toFixed(1) + '&n=' + samples.length);
  }}, 1000);
}}
function newVideo() {{
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  return video;
}}
async function play(label, url) {{
  const video = newVideo();
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
  const resp = await fetch(url, {{
    method: 'POST', headers: {{ 'Content-Type': 'application/sdp' }}, body: pc.localDescription.sdp }});
  report('label=' + label + '&status=' + resp.status + '&location=' + encodeURIComponent(resp.headers.get('Location') || ''));
  await pc.setRemoteDescription({{ type: 'answer', sdp: await resp.text() }});
  measure(label, video);
  setInterval(async () => {{
    const stats = await pc.getStats();
    let v = null, a = null;
    stats.forEach((s) => {{
      if (s.type === 'inbound-rtp' && s.kind === 'video') v = s;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') a = s;
    }});
    if (!v) return;
    report('label=' + label + '&frames=' + (v.framesDecoded || 0) + '&w=' + (v.frameWidth || 0) + '&h=' + (v.frameHeight || 0) +
      '&freezes=' + (v.freezeCount || 0) + '&apackets=' + ((a && a.packetsReceived) || 0) +
      '&asamples=' + ((a && a.totalSamplesReceived) || 0) + '&aconcealed=' + ((a && a.concealedSamples) || 0) +
      '&state=' + pc.connectionState);
  }}, 250);
}}
for (const [label, url] of [{viewers}]) play(label, url).catch((e) => report('label=' + label + '&error=' + encodeURIComponent(String(e))));
const hls = {hls};
if (hls) {{
  const s = document.createElement('script');
  s.src = '/hls.min.js';
  s.onload = () => {{
    const video = newVideo();
    const h = new Hls();
    h.loadSource(hls); h.attachMedia(video);
    measure('hls', video);
  }};
  document.head.appendChild(s);
}}
</script></body></html>
"#,
        viewers = viewers.join(", ")
    )
}

/// The latest stats report of viewer `label`: every field by name.
fn latest_of(pages: &PageServer, label: &str) -> Option<String> {
    pages
        .reports()
        .into_iter()
        .rev()
        .find(|r| field(r, "label") == Some(label) && field(r, "frames").is_some())
}

/// A numeric field of a report.
fn num(report: &str, name: &str) -> Option<u64> {
    field(report, name)?.parse().ok()
}

/// The latest latency report of player `label`: (median ms, samples).
fn latency_of(pages: &PageServer, label: &str) -> Option<(f64, u64)> {
    pages.reports().iter().rev().find_map(|r| {
        if field(r, "lat") != Some(label) {
            return None;
        }
        Some((field(r, "median")?.parse().ok()?, num(r, "n")?))
    })
}

/// The latest stats report: (frames decoded, width, height, freezes).
fn latest(pages: &PageServer) -> Option<(u64, u64, u64, u64)> {
    let r = latest_of(pages, "src")?;
    Some((
        num(&r, "frames")?,
        num(&r, "w")?,
        num(&r, "h")?,
        num(&r, "freezes")?,
    ))
}

/// The latest audio stats: (packets, samples, concealed samples).
fn audio(pages: &PageServer) -> Option<(u64, u64, u64)> {
    let r = latest_of(pages, "src")?;
    Some((
        num(&r, "apackets")?,
        num(&r, "asamples")?,
        num(&r, "aconcealed")?,
    ))
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

/// Headless Chromium on the test's page server at `port`.
fn start_chromium(dir: &Path, port: u16) -> Proc {
    let profile = dir.join("chromium-profile");
    let args: Vec<String> = [
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
        &format!("http://127.0.0.1:{port}/"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::start("chromium", Path::new("chromium"), &args, dir)
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
    let mut chromium = start_chromium(&dir, pages.port);

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
    // The published AAC plays as Opus: two seconds of packets, little of
    // it concealed (Chromium conceals what does not arrive in time).
    let sound = wait_for(Duration::from_secs(10), || {
        audio(&pages).filter(|a| a.0 >= 100)
    });
    let Some((packets, samples, concealed)) = sound else {
        panic!(
            "fewer than 100 Opus packets in 10 s: {:?}\nserve: {}",
            latest_of(&pages, "src"),
            s.proc.stderr()
        );
    };
    eprintln!("whep: audio {packets} packets, {samples} samples, {concealed} concealed");
    assert!(
        concealed * 10 <= samples,
        "{concealed} of {samples} samples concealed"
    );
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
        // Still a flood (20 000 a second), but in bursts a socket buffer
        // holds: on a loaded machine serve's reader may not run during one
        // 2000-datagram burst, and the kernel would drop most of it.
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
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
    let later = audio(&pages).map_or(0, |a| a.0);
    assert!(later > packets, "audio stopped at {later} packets");

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

/// A rendition plays over WHEP at its own size; and a source published in
/// H.264 High (which Chromium does not offer) is served to a source viewer
/// from the rendition instead, as serve's log says.
#[test]
fn chromium_plays_a_rendition_and_a_high_source_from_it() {
    let _guard = serial();
    for tool in ["ffmpeg", "chromium", "curl"] {
        require(tool);
    }
    const RENDITION: &str = "P240p30fps16x9";
    let dir = temp_dir("whep-rendition");
    let s = start_serve(&dir, &["--renditions", RENDITION]);
    // The recipe's publish, but in High profile (veryfast uses CABAC and
    // 8x8 transforms; zerolatency leaves out B-frames).
    let url = format!("rtmp://127.0.0.1:{}/{KEY}", s.rtmp);
    let args: Vec<String> = [
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
        "-profile:v",
        "high",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-x264-params",
        "keyint=30",
        "-c:a",
        "aac",
        "-t",
        "30",
        "-f",
        "flv",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut ff = Proc::start("ffmpeg", Path::new("ffmpeg"), &args, &dir);
    let master_path = format!("/stream/{KEY}.m3u8");
    assert!(
        wait_for(Duration::from_secs(20), || {
            get_text(s.http, &master_path)
                .contains(RENDITION)
                .then_some(())
        })
        .is_some(),
        "no rendition went live: {}\n{}",
        s.proc.stderr(),
        ff.stderr()
    );
    // The rendition's size for this source: its box, the aspect kept.
    let (w, h) = pstream_codec::Rendition::P240p30fps16x9.output_size(640, 480);
    let size = (u64::from(w), u64::from(h));

    let rendition = format!("/stream/{KEY}/{RENDITION}/whep");
    let source = format!("/stream/{KEY}/whep");
    let page = viewers_page(s.http, &[("r", &rendition), ("src", &source)], None);
    let pages = PageServer::start(page, Vec::new());
    let mut chromium = start_chromium(&dir, pages.port);
    let both = wait_for(Duration::from_secs(30), || {
        let r = latest_of(&pages, "r").filter(|r| num(r, "frames") >= Some(MUST_DECODE))?;
        let src = latest_of(&pages, "src").filter(|r| num(r, "frames") >= Some(MUST_DECODE))?;
        Some((r, src))
    });
    let Some((r, src)) = both else {
        panic!(
            "the viewers did not decode {MUST_DECODE} frames each in 30 s: {:?}\nserve: {}",
            pages.reports().iter().rev().take(6).collect::<Vec<_>>(),
            s.proc.stderr()
        );
    };
    eprintln!("whep rendition: {r}\nwhep source (High): {src}");
    let dims = |r: &str| (num(r, "w").unwrap_or(0), num(r, "h").unwrap_or(0));
    assert_eq!(dims(&r), size, "the rendition's decoded size");
    assert_eq!(
        dims(&src),
        size,
        "the High source's viewer plays the rendition"
    );
    let location = pages.reports().into_iter().find_map(|r| {
        (field(&r, "label") == Some("r")).then(|| field(&r, "location").map(str::to_string))?
    });
    assert!(
        location
            .as_deref()
            .is_some_and(|l| l.starts_with(&format!("%2Fstream%2F{KEY}%2F{RENDITION}%2Fwhep%2F"))),
        "{location:?}"
    );
    let log = s.proc.stderr();
    assert!(
        log.contains(&format!("playing rendition {RENDITION} instead")),
        "serve did not say which rendition: {log}"
    );
    // An unknown rendition is no stream.
    let vp8 = dir.join("offer.sdp");
    std::fs::write(&vp8, offer_sdp("a=rtpmap:96 VP8/90000\r\n")).expect("write the offer");
    let nobody = format!("http://127.0.0.1:{}/stream/{KEY}/P999p/whep", s.http);
    assert_eq!(
        curl("POST", &nobody, Some("application/sdp"), Some(&vp8)).0,
        404
    );
    chromium.signal("TERM");
    chromium.wait(Duration::from_secs(5));
    ff.signal("TERM");
    ff.wait(Duration::from_secs(5));
}

/// Must show 1, latency: `pstream push`'s test pattern (its timecode band
/// is the capture time) published over RTMP into serve, played over WHEP
/// and over HLS (hls.js) in the same page; the page reads the band off a
/// canvas for every frame shown. About 10 s of WHEP frames; the WHEP
/// median must be under 300 ms on loopback. Both medians are printed.
#[test]
fn whep_glass_to_glass_latency_beside_hls() {
    let _guard = serial();
    for tool in ["chromium", "curl"] {
        require(tool);
    }
    let hls_script = std::fs::read(common::page::hls_js()).expect("read hls.min.js");
    let dir = temp_dir("whep-latency");
    let s = start_serve(&dir, &["--renditions", "none"]);
    let push_args: Vec<String> = [
        "push".to_string(),
        format!("rtmp://127.0.0.1:{}/live/{KEY}", s.rtmp),
        "--size".into(),
        "640x360".into(),
        "--bitrate".into(),
        "1500".into(),
        "--keyint".into(),
        "1".into(),
        "--duration".into(),
        "60".into(),
        "-q".into(),
    ]
    .into_iter()
    .collect();
    let mut push = Proc::start("push", &common::pstream_bin(), &push_args, &dir);
    let master = format!("/stream/{KEY}.m3u8");
    assert!(
        wait_for(Duration::from_secs(15), || (!get_text(s.http, &master)
            .is_empty())
        .then_some(()))
        .is_some(),
        "the stream did not go live: {}\n{}",
        s.proc.stderr(),
        push.stderr()
    );
    let whep = format!("/stream/{KEY}/whep");
    let page = viewers_page(s.http, &[("src", &whep)], Some(&master));
    let pages = PageServer::start(
        page,
        vec![("/hls.min.js", "application/javascript", hls_script)],
    );
    let mut chromium = start_chromium(&dir, pages.port);
    // WHEP's first timecode, then 10 s of frames; HLS's first comes later
    // (a few segments behind), so it may take up to 30 s in all.
    let first = wait_for(Duration::from_secs(30), || latency_of(&pages, "src"));
    assert!(
        first.is_some(),
        "no timecode read over WHEP: {:?}\nserve: {}",
        pages.reports().iter().rev().take(5).collect::<Vec<_>>(),
        s.proc.stderr()
    );
    let start = Instant::now();
    let done = wait_for(Duration::from_secs(30), || {
        let hls = latency_of(&pages, "hls")?;
        (start.elapsed() >= Duration::from_secs(10) && hls.1 >= 30).then_some(hls)
    });
    let (whep_median, whep_n) = latency_of(&pages, "src").unwrap_or_default();
    eprintln!(
        "glass-to-glass latency, pstream push -> serve -> Chromium on loopback: WHEP median {whep_median:.0} ms ({whep_n} frames), HLS median {} ",
        done.map_or("(no HLS frames in 30 s)".to_string(), |(m, n)| format!("{m:.0} ms ({n} frames)"))
    );
    assert!(whep_n >= 200, "only {whep_n} WHEP frames measured");
    assert!(whep_median < 300.0, "WHEP median {whep_median:.0} ms");
    chromium.signal("TERM");
    chromium.wait(Duration::from_secs(5));
    push.signal("TERM");
    push.wait(Duration::from_secs(5));
}
