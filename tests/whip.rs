//! Issue 18, must show 2 and 4 for WHIP: headless Chromium publishes its
//! fake camera and microphone over WHIP (`POST /whip` with the publish key
//! as bearer token) into `pstream serve`; the stream's HLS segments hold
//! H.264 at the camera's size (ffprobe counts the frames) and AAC made from
//! the Opus, and a second Chromium plays the stream over WHEP. Meanwhile a
//! bad token gets 401, a malformed offer 400, an offer without H.264 406
//! and a second publisher of the same stream 409, and the healthy
//! publisher's stream goes on.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::hls::{get, get_text, segments, start_serve, wait_for};
use common::page::{field, PageServer};
use common::{require, serial, temp_dir, Proc};

/// The publish key (the bearer token) and the stream's public name.
const KEY: &str = "s3cret_key";
const NAME: &str = "cam";

/// The publisher page: the fake camera and microphone, send-only, WHIP to
/// serve; it reports the answer's status and Location, then its encoder's
/// frame count.
fn publisher_page(http_port: u16) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WHIP test</title></head><body>
<script>
function report(q) {{ fetch('/report?' + q).catch(() => {{}}); }}
async function publish() {{
  const media = await navigator.mediaDevices.getUserMedia({{ video: {{ width: 640, height: 480, frameRate: 30 }}, audio: true }});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, {{ direction: 'sendonly' }});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {{
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => {{ if (pc.iceGatheringState === 'complete') done(); }};
    setTimeout(done, 2000);
  }});
  const resp = await fetch('http://127.0.0.1:{http_port}/whip', {{
    method: 'POST', headers: {{ 'Content-Type': 'application/sdp', 'Authorization': 'Bearer {KEY}' }},
    body: pc.localDescription.sdp }});
  report('status=' + resp.status + '&location=' + encodeURIComponent(resp.headers.get('Location') || ''));
  await pc.setRemoteDescription({{ type: 'answer', sdp: await resp.text() }});
  setInterval(async () => {{
    const stats = await pc.getStats();
    stats.forEach((s) => {{
      if (s.type === 'outbound-rtp' && s.kind === 'video') {{
        report('sent=' + (s.framesEncoded || 0) + '&state=' + pc.connectionState);
      }}
    }});
  }}, 250);
}}
publish().catch((e) => report('error=' + encodeURIComponent(String(e))));
</script></body></html>
"#
    )
}

/// The viewer page: WHEP from serve, the inbound video stats reported.
fn viewer_page(http_port: u16) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WHEP viewer</title></head>
<body><video id="v" muted autoplay playsinline></video>
<script>
function report(q) {{ fetch('/report?' + q).catch(() => {{}}); }}
const video = document.getElementById('v');
async function play() {{
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {{ direction: 'recvonly' }});
  pc.ontrack = (e) => {{ if (!video.srcObject) video.srcObject = new MediaStream(); video.srcObject.addTrack(e.track); }};
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {{
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => {{ if (pc.iceGatheringState === 'complete') done(); }};
    setTimeout(done, 2000);
  }});
  const resp = await fetch('http://127.0.0.1:{http_port}/stream/{NAME}/whep', {{
    method: 'POST', headers: {{ 'Content-Type': 'application/sdp' }}, body: pc.localDescription.sdp }});
  report('status=' + resp.status);
  await pc.setRemoteDescription({{ type: 'answer', sdp: await resp.text() }});
  setInterval(async () => {{
    const stats = await pc.getStats();
    stats.forEach((s) => {{
      if (s.type === 'inbound-rtp' && s.kind === 'video') {{
        report('frames=' + (s.framesDecoded || 0) + '&w=' + (s.frameWidth || 0) + '&h=' + (s.frameHeight || 0));
      }}
    }});
  }}, 250);
}}
play().catch((e) => report('error=' + encodeURIComponent(String(e))));
</script></body></html>
"#
    )
}

/// Headless Chromium on `url` with a profile under `dir`; `extra` flags.
fn chromium(dir: &Path, name: &str, url: &str, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = [
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
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    args.push(format!(
        "--user-data-dir={}",
        dir.join(format!("{name}-profile")).display()
    ));
    args.push(url.to_string());
    Proc::start(name, Path::new("chromium"), &args, dir)
}

/// The latest value of `name` in a page's reports.
fn latest(pages: &PageServer, name: &str) -> Option<u64> {
    pages
        .reports()
        .iter()
        .rev()
        .find_map(|r| field(r, name)?.parse().ok())
}

/// A WHIP request with curl: the status and the whole answer.
fn curl(method: &str, url: &str, headers: &[&str], body: Option<&Path>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
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

/// A minimal publisher's offer: one send-only video line carrying `rtpmap`.
fn offer_sdp(rtpmap: &str) -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
         a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=sendonly\r\na=rtcp-mux\r\n{rtpmap}",
        fp.join(":")
    )
}

/// ffprobe of a segment: per stream `codec,width,height,frames read`.
fn probe(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn chromium_publishes_over_whip_and_hls_and_whep_play_it() {
    let _guard = serial();
    for tool in ["chromium", "curl", "ffprobe"] {
        require(tool);
    }
    let dir = temp_dir("whip");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, format!("{KEY} {NAME}\n")).expect("write keys");
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--segment",
            "1",
            "--keys",
            keys.to_str().expect("utf-8 path"),
        ],
    );
    let started = Instant::now();
    let publisher_pages = PageServer::start(publisher_page(s.http), Vec::new());
    let mut publisher = chromium(
        &dir,
        "publisher",
        &format!("http://127.0.0.1:{}/", publisher_pages.port),
        &[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ],
    );

    // HLS: the source playlist gets segments of the camera's H.264 and AAC.
    let playlist = format!("/stream/{NAME}/source.m3u8");
    let listed = wait_for(Duration::from_secs(30), || {
        let text = get_text(s.http, &playlist);
        (segments(&text).len() >= 2).then_some(text)
    });
    let Some(listed) = listed else {
        panic!(
            "no HLS segments in 30 s; publisher: {:?}\nserve: {}",
            publisher_pages
                .reports()
                .iter()
                .rev()
                .take(5)
                .collect::<Vec<_>>(),
            s.proc.stderr()
        );
    };
    eprintln!(
        "whip: 2 segments listed {:.1} s after Chromium started",
        started.elapsed().as_secs_f64()
    );
    let location = publisher_pages
        .reports()
        .iter()
        .find_map(|r| {
            Some((
                field(r, "status")?.to_string(),
                field(r, "location")?.replace("%2F", "/"),
            ))
        })
        .expect("the publisher reported its answer");
    assert_eq!(location.0, "201", "{location:?}");
    assert!(location.1.starts_with("/whip/"), "{location:?}");
    // The first two segments (the first starts at the first key frame).
    let mut body = Vec::new();
    for uri in &segments(&listed)[..2] {
        body.extend(get(s.http, &format!("/stream/{NAME}/{uri}")).expect("the segment"));
    }
    let file = dir.join("segments.ts");
    std::fs::write(&file, body).expect("write the segments");
    let streams = probe(&file);
    eprintln!("whip: first two segments: {streams:?}");
    let video = streams
        .iter()
        .find(|l| l.starts_with("h264,"))
        .unwrap_or_else(|| panic!("no H.264 in the segment: {streams:?}"));
    let f: Vec<&str> = video.split(',').collect();
    assert_eq!((f[1], f[2]), ("640", "480"), "{video}");
    let frames: u64 = f[3].trim().parse().unwrap_or(0);
    assert!(frames >= 10, "{video}");
    assert!(
        streams.iter().any(|l| l.starts_with("aac")),
        "no AAC in the segment: {streams:?}"
    );

    // WHEP: a second Chromium plays the published stream.
    let viewer_pages = PageServer::start(viewer_page(s.http), Vec::new());
    let mut viewer = chromium(
        &dir,
        "viewer",
        &format!("http://127.0.0.1:{}/", viewer_pages.port),
        &[],
    );
    let decoded = wait_for(Duration::from_secs(20), || {
        latest(&viewer_pages, "frames").filter(|f| *f >= 30)
    });
    assert!(
        decoded.is_some(),
        "the WHEP viewer decoded too little: {:?}\nserve: {}",
        viewer_pages
            .reports()
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>(),
        s.proc.stderr()
    );
    assert_eq!(
        (latest(&viewer_pages, "w"), latest(&viewer_pages, "h")),
        (Some(640), Some(480))
    );
    eprintln!(
        "whip: WHEP viewer decoded {:?} frames, {:.1} s after the publisher started",
        decoded,
        started.elapsed().as_secs_f64()
    );

    // Hostile publishers, while the healthy one publishes.
    let endpoint = format!("http://127.0.0.1:{}/whip", s.http);
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write a body");
        p
    };
    let h264 = write(
        "h264.sdp",
        offer_sdp(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n",
        )
        .as_bytes(),
    );
    let sdp = "Content-Type: application/sdp";
    let good = format!("Authorization: Bearer {KEY}");
    let (status, text) = curl(
        "POST",
        &endpoint,
        &[sdp, "Authorization: Bearer wrong"],
        Some(&h264),
    );
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{text}"
    );
    assert_eq!(curl("POST", &endpoint, &[sdp], Some(&h264)).0, 401);
    let garbage = write("garbage.sdp", b"v=0\r\nthis is not an offer\r\n");
    assert_eq!(
        curl("POST", &endpoint, &[sdp, &good], Some(&garbage)).0,
        400
    );
    let vp8 = write("vp8.sdp", offer_sdp("a=rtpmap:96 VP8/90000\r\n").as_bytes());
    assert_eq!(curl("POST", &endpoint, &[sdp, &good], Some(&vp8)).0, 406);
    let (status, text) = curl("POST", &endpoint, &[sdp, &good], Some(&h264));
    assert_eq!(status, 409, "a second publisher of {NAME}: {text}");
    let (status, text) = curl("OPTIONS", &endpoint, &[], None);
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        curl("DELETE", &format!("{endpoint}/0123456789abcdef"), &[], None).0,
        404
    );

    // The healthy publisher goes on: the viewer decodes more, HLS grows.
    let before = latest(&viewer_pages, "frames").unwrap_or(0);
    let last_seq = |text: &str| {
        segments(text)
            .last()
            .and_then(|u| common::hls::segment_number(u))
            .unwrap_or(0)
    };
    let seq = last_seq(&get_text(s.http, &playlist));
    let more = wait_for(Duration::from_secs(15), || {
        let frames = latest(&viewer_pages, "frames").unwrap_or(0);
        (frames >= before + 30 && last_seq(&get_text(s.http, &playlist)) >= seq + 2)
            .then_some(frames)
    });
    assert!(
        more.is_some(),
        "the stream stalled after the hostile publishers: viewer {:?}, playlist {}",
        latest(&viewer_pages, "frames"),
        get_text(s.http, &playlist)
    );

    // The publisher leaves with DELETE: the playlist ends.
    let resource = format!("http://127.0.0.1:{}{}", s.http, location.1);
    assert_eq!(curl("DELETE", &resource, &[], None).0, 200);
    assert_eq!(curl("DELETE", &resource, &[], None).0, 404);
    let ended = wait_for(Duration::from_secs(10), || {
        get_text(s.http, &playlist)
            .contains("#EXT-X-ENDLIST")
            .then_some(())
    });
    assert!(ended.is_some(), "{}", get_text(s.http, &playlist));
    eprintln!("whip: whole test {:.1} s", started.elapsed().as_secs_f64());
    viewer.signal("TERM");
    viewer.wait(Duration::from_secs(5));
    publisher.signal("TERM");
    publisher.wait(Duration::from_secs(5));
    let mut s = s;
    s.proc.signal("INT");
    s.proc.wait(Duration::from_secs(15));
    let log = s.proc.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("whip: "))
        .unwrap_or_else(|| panic!("no whip summary: {log}"));
    eprintln!("{line}");
    // Chromium's offer; the malformed, VP8 and second-publisher offers
    // refused (the 401s never reach the sessions).
    assert!(
        line.contains("whip: 1 offers accepted, 3 refused, 1 connected"),
        "{line}"
    );
}
