//! SRTP (`--srtp-key`) with real peers on costream's rtpbin port layout:
//! `pstream send` into GStreamer's srtpdec + rtpbin, GStreamer's rtpbin +
//! srtpenc into `pstream recv`, pstream to pstream under each profile, a
//! wrong key and a plaintext sender (nothing decoded, every packet counted
//! as an authentication failure), and ffmpeg opening the stream from the
//! SDP's `a=crypto` line.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::video::{scan_y4m, stat, summary};
use common::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A fresh key from `pstream keygen`: (base64 for pstream, hex for GStreamer).
fn keygen(profile: &str) -> (String, String) {
    let (code, out, err) = run_pstream(
        &["keygen", "--srtp-profile", profile],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "pstream keygen failed: {err}");
    let b64 = out.trim().to_string();
    let hex = err
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    (b64, hex)
}

/// GStreamer's caps fields for an AES_CM_128_HMAC_SHA1_80 key in hex.
fn gst_keycaps(hex: &str) -> String {
    format!(
        "srtp-key=(buffer){hex},srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,\
         srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80,roc=(uint)0"
    )
}

/// What a [`Forward`] saw of the SRTP packets it passed on.
#[derive(Debug, Default)]
struct Seen {
    /// SSRC of the first packet.
    ssrc: Option<u32>,
    /// Datagrams forwarded.
    packets: u64,
    /// Of those, how many start their payload with what an H.264 RTP
    /// payload starts with in clear (F bit 0, NAL type 1, 5, 7, 8, STAP-A
    /// or FU-A): all of them in clear, about 9% when encrypted.
    h264_like: u64,
    /// Tampered copies sent ahead of a genuine packet.
    tampered: u64,
    /// Genuine packets sent a second time.
    replayed: u64,
}

/// Forwards one UDP port to another on loopback and records the SSRC and
/// what the payloads look like: srtpdec needs the sender's SSRC in its caps
/// before the first packet, and pstream picks its SSRCs at random.
struct Forward {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    fn start(from: u16, to: u16) -> Forward {
        Forward::start_tampering(from, to, 0)
    }

    /// Like [`Forward::start`]; with `every` > 0, every `every`-th datagram
    /// is preceded by a copy with one payload bit flipped and followed by
    /// itself again (a replay).
    fn start_tampering(from: u16, to: u16, every: u64) -> Forward {
        let socket = UdpSocket::bind(("127.0.0.1", from)).expect("bind forwarder");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let to = SocketAddr::from(([127, 0, 0, 1], to));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let d = &buf[..n];
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    let tamper = every > 0 && n > 13 && (s.packets + 1) % every == 0;
                    if tamper {
                        let mut forged = d.to_vec();
                        forged[12] ^= 0x10;
                        let _ = socket.send_to(&forged, to);
                        s.tampered += 1;
                    }
                    // Nobody may listen yet: such a datagram is just lost.
                    let _ = socket.send_to(d, to);
                    if tamper {
                        let _ = socket.send_to(d, to);
                        s.replayed += 1;
                    }
                    if n < 13 {
                        continue;
                    }
                    s.ssrc
                        .get_or_insert(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
                    s.packets += 1;
                    let nal = d[12];
                    if nal & 0x80 == 0 && [1, 5, 7, 8, 24, 28].contains(&(nal & 0x1f)) {
                        s.h264_like += 1;
                    }
                }
            })
        };
        Forward {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The first SSRC, waited for up to `limit`.
    fn ssrc(&self, limit: Duration) -> Option<u32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).ssrc {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn keygen_prints_a_fresh_key_per_run_in_base64_and_hex() {
    let (a, hex) = keygen("aes128-cm-sha1-80");
    let (b, _) = keygen("aes128-cm-sha1-80");
    // 30 bytes (16 key + 14 salt): 40 base64 characters, 60 hex digits.
    assert_eq!(a.len(), 40, "{a}");
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
    assert_eq!(hex.len(), 60, "{hex}");
    assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b, "two runs gave the same key");
    let (gcm, gcm_hex) = keygen("aes128-gcm");
    assert_eq!((gcm.len(), gcm_hex.len()), (40, 56), "{gcm} {gcm_hex}");
    assert!(gcm.ends_with('='), "28 bytes pad: {gcm}");
}

/// `pstream send --srtp-key` into costream's GStreamer receiver (rtpbin,
/// latency=0) with srtpdec in front of rtpbin and srtpenc behind its RTCP:
/// the pictures decode, GStreamer's SRTCP receiver reports authenticate at
/// pstream (RTT shown, no auth failure), and what crossed the wire is not
/// H.264 in clear.
#[test]
fn gstreamer_srtpdec_decodes_pstream_send() {
    const SECONDS: u64 = 10;
    let _turn = serial();
    require("gst-launch-1.0");
    let dir = temp_dir("srtp-to-gst");
    let (base, gbase) = (free_port_base(), free_port_base());
    let (key, hex) = keygen("aes128-cm-sha1-80");
    // pstream -> forwarders on base+0/+1 -> GStreamer on gbase+0/+1;
    // GStreamer's RTCP goes straight back to pstream's base+5.
    let rtp = Forward::start(base, gbase);
    let rtcp = Forward::start(base + 1, gbase + 1);
    let b = base.to_string();
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &b,
            "--size",
            "640x360",
            "--fps",
            "30",
            "--audio",
            "none",
            "--keyint",
            "1",
            "--srtp-key",
            &key,
            "--duration",
            &SECONDS.to_string(),
        ]),
        &dir,
    );
    let ssrc = rtp
        .ssrc(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no packet from pstream send:\n{}", send.stderr()));

    let caps = gst_keycaps(&hex);
    let gst_args: Vec<String> = [
        "-e", "-v", "rtpbin", "name=rtpbin", "latency=0",
        // One srtpdec per pad: 1.22's srtpdec races when caps reach both
        // sink pads at once from two udpsrc threads (a crash in about one
        // start in ten with no packet sent).
        "srtpdec", "name=d", "srtpdec", "name=dc",
        &format!("srtpenc name=e key={hex}"),
        "udpsrc", "address=127.0.0.1", &format!("port={gbase}"),
        &format!("caps=application/x-srtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H264,payload=(int)96,ssrc=(uint){ssrc},{caps}"),
        "!", "d.rtp_sink",
        "udpsrc", "address=127.0.0.1", &format!("port={}", gbase + 1),
        &format!("caps=application/x-srtcp,ssrc=(uint){ssrc},{caps}"),
        "!", "dc.rtcp_sink",
        "d.rtp_src", "!", "rtpbin.recv_rtp_sink_0",
        "dc.rtcp_src", "!", "rtpbin.recv_rtcp_sink_0",
        "rtpbin.", "!", "rtph264depay", "!", "decodebin", "!", "videoconvert",
        "!", "fakesink", "name=vsink", "silent=false", "sync=false",
        "rtpbin.send_rtcp_src_0", "!", "e.rtcp_sink_0",
        "e.rtcp_src_0", "!", "udpsink", "host=127.0.0.1", &format!("port={}", base + 5),
        "sync=false", "async=false",
    ]
    .iter()
    .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
    .collect();
    let mut gst = Proc::start("gst-launch", "gst-launch-1.0".as_ref(), &gst_args, &dir);
    assert!(
        gst.wait_for_output("Setting pipeline to PLAYING", Duration::from_secs(30)),
        "gst-launch did not start:\n{}\n{}",
        gst.stdout(),
        gst.stderr()
    );
    let code = send.wait(Duration::from_secs(SECONDS + 15));
    let send_log = send.stderr();
    assert_eq!(code, Some(0), "pstream send failed:\n{send_log}");
    std::thread::sleep(Duration::from_millis(500));
    gst.signal("INT");
    gst.wait(Duration::from_secs(10));
    let (seen, _) = (rtp.finish(), rtcp.finish());

    let out = gst.stdout();
    let decoded = out.matches("vsink: last-message = chain").count() as u64;
    let sent = summary(&send_log, "send finished");
    let frames = stat(sent, "video", "frames").expect("frames sent");
    eprintln!(
        "{sent}\nGStreamer decoded {decoded} of {frames} pictures; {} SRTP packets, \
         {} of them H.264-like",
        seen.packets, seen.h264_like
    );
    // GStreamer joins a second or two late (the SSRC is learned first).
    assert!(
        decoded as f64 >= frames - 3.0 * 30.0 && decoded >= (SECONDS - 3) * 30,
        "GStreamer decoded {decoded} of {frames}:\n{}\n{}",
        out.lines().rev().take(30).collect::<Vec<_>>().join("\n"),
        gst.stderr()
    );
    assert!(out.contains("width=(int)640, height=(int)360"), "caps");
    // Ciphertext: a payload start that looks like H.264 by chance.
    assert!(seen.packets >= 300, "{seen:?}");
    assert!(
        seen.h264_like * 4 < seen.packets,
        "payloads look like H.264 in clear: {seen:?}"
    );
    // GStreamer's SRTCP receiver reports reached the session and gave an RTT.
    assert!(sent.contains("rtt"), "no receiver report used: {sent}");
    assert!(!sent.contains("auth-fail"), "{sent}");
}

/// The rtpbin sender of costream (x264enc + opusenc) with srtpenc behind
/// rtpbin's RTP and RTCP pads into `pstream recv --srtp-key`: every picture
/// decodes, nothing fails authentication, and our RTCP goes back as SRTCP.
#[test]
fn pstream_recv_decodes_gstreamer_srtpenc() {
    const SECONDS: u64 = 8;
    const FRAMES: u64 = SECONDS * 30;
    let _turn = serial();
    require("gst-launch-1.0");
    let dir = temp_dir("srtp-from-gst");
    let base = free_port_base();
    let (key, hex) = keygen("aes128-cm-sha1-80");
    let y4m = dir.join("video.y4m");
    let p = |o: u16| (base + o).to_string();
    // Our RTCP back to GStreamer's +5 is read here instead: its SSRC is
    // pstream's, which srtpdec would need up front.
    let back = UdpSocket::bind(("127.0.0.1", base + 5)).expect("bind +5");
    back.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut recv = Proc::start(
        "pstream-recv",
        &pstream_bin(),
        &args(&[
            "recv",
            "--peer",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--port-base",
            &p(0),
            "--video-out",
            &format!("y4m:{}", y4m.display()),
            "--srtp-key",
            &key,
            "--duration",
            &(SECONDS + 60).to_string(),
        ]),
        &dir,
    );
    assert!(
        recv.wait_for_output("receiving from", Duration::from_secs(20)),
        "pstream recv did not start:\n{}",
        recv.stderr()
    );
    let gst_args: Vec<String> = [
        "-e",
        "rtpbin",
        "name=rtpbin",
        "latency=0",
        &format!("srtpenc name=e key={hex}"),
        "videotestsrc",
        "is-live=true",
        &format!("num-buffers={FRAMES}"),
        "!",
        "video/x-raw,width=640,height=360,framerate=30/1",
        "!",
        "videoconvert",
        "!",
        "x264enc",
        "tune=zerolatency",
        "bitrate=800",
        "speed-preset=ultrafast",
        "!",
        "rtph264pay",
        "!",
        "rtpbin.send_rtp_sink_0",
        "rtpbin.send_rtp_src_0",
        "!",
        "e.rtp_sink_0",
        "e.rtp_src_0",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(0)),
        "rtpbin.send_rtcp_src_0",
        "!",
        "e.rtcp_sink_0",
        "e.rtcp_src_0",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(1)),
        "sync=false",
        "async=false",
        "audiotestsrc",
        "is-live=true",
        "samplesperbuffer=960",
        &format!("num-buffers={}", SECONDS * 50),
        "!",
        "audio/x-raw,rate=48000",
        "!",
        "opusenc",
        "!",
        "rtpopuspay",
        "!",
        "rtpbin.send_rtp_sink_1",
        "rtpbin.send_rtp_src_1",
        "!",
        "e.rtp_sink_1",
        "e.rtp_src_1",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(2)),
        "rtpbin.send_rtcp_src_1",
        "!",
        "e.rtcp_sink_1",
        "e.rtcp_src_1",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(3)),
        "sync=false",
        "async=false",
    ]
    .iter()
    .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
    .collect();
    let mut gst = Proc::start("gst-launch", "gst-launch-1.0".as_ref(), &gst_args, &dir);
    // Our SRTCP: the E bit and SRTCP index ahead of the 10-byte tag, the
    // index counting up from 1 (a plain RR has neither).
    let mut indices = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 4);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Ok(n) = back.recv(&mut buf) {
            if n >= 8 + 4 + 10 {
                let w = &buf[n - 14..n - 10];
                indices.push(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
    }
    // Both sources end after num-buffers; EOS ends gst-launch by itself.
    gst.wait(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    recv.signal("TERM");
    let code = recv.wait(Duration::from_secs(15));
    let log = recv.stderr();
    assert_eq!(code, Some(0), "pstream recv failed:\n{log}");
    let got = summary(&log, "recv finished");
    eprintln!("{got}\nour SRTCP E+index words: {:x?}", indices);

    let frames = stat(got, "video", "frames").expect("frames");
    assert!(
        frames >= (FRAMES * 9 / 10) as f64 && frames <= FRAMES as f64,
        "{frames} of {FRAMES} pictures:\n{log}"
    );
    assert_eq!(scan_y4m(&y4m, false).pictures.len() as f64, frames);
    assert!(stat(got, "audio", "frames").unwrap_or(0.0) >= (SECONDS * 50 * 8 / 10) as f64);
    for stream in ["video", "audio"] {
        assert_eq!(stat(got, stream, "auth-fail"), Some(0.0), "{got}");
        assert_eq!(stat(got, stream, "lost"), Some(0.0), "{got}");
    }
    assert!(indices.len() >= 3, "too few RTCP packets back: {indices:?}");
    assert!(
        indices.iter().all(|w| w & 0x8000_0000 != 0),
        "E bit missing: {indices:x?}"
    );
    assert_eq!(indices[0] & 0x7fff_ffff, 1, "{indices:x?}");
    let _ = std::fs::remove_file(&y4m);
}

fn recv_args(base: u16, y4m: &Path, srtp: &[&str], secs: u64) -> Vec<String> {
    let mut a = args(&[
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--duration",
        &secs.to_string(),
    ]);
    a.extend(args(srtp));
    a
}

fn send_args(base: u16, srtp: &[&str], secs: u64) -> Vec<String> {
    let mut a = args(&[
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--size",
        "640x360",
        "--fps",
        "30",
        "--duration",
        &secs.to_string(),
    ]);
    a.extend(args(srtp));
    a
}

/// Runs `pstream recv` with `recv_srtp` and `pstream send` with `send_srtp`
/// for `secs`; returns the two summary lines and the pictures in the Y4M.
fn send_to_recv(
    name: &str,
    recv_srtp: &[&str],
    send_srtp: &[&str],
    secs: u64,
) -> (String, String, usize) {
    let dir = temp_dir(name);
    let base = free_port_base();
    let y4m = dir.join("video.y4m");
    let mut recv = start_recv(
        "pstream-recv",
        &recv_args(base, &y4m, recv_srtp, secs + 4),
        &dir,
    );
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &send_args(base, send_srtp, secs),
        &dir,
    );
    let send_code = send.wait(Duration::from_secs(secs + 15));
    let recv_code = recv.wait(Duration::from_secs(15));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let sent = summary(&send_log, "send finished").to_string();
    let got = summary(&recv_log, "recv finished").to_string();
    eprintln!("{name}:\n  {sent}\n  {got}");
    let pictures = if y4m.exists() {
        scan_y4m(&y4m, false).pictures.len()
    } else {
        0
    };
    let _ = std::fs::remove_file(&y4m);
    (sent, got, pictures)
}

/// pstream to pstream under each profile: every picture and audio frame
/// arrives, none fails authentication either way.
#[test]
fn pstream_send_to_recv_under_each_profile() {
    let _turn = serial();
    for profile in ["aes128-cm-sha1-80", "aes128-cm-sha1-32", "aes128-gcm"] {
        let (key, _) = keygen(profile);
        let srtp = ["--srtp-key", key.as_str(), "--srtp-profile", profile];
        let (sent, got, pictures) = send_to_recv("srtp-pstream", &srtp, &srtp, 5);
        let frames = stat(&sent, "video", "frames").expect("frames sent");
        assert!(frames >= 4.0 * 30.0, "{profile}: {sent}");
        assert_eq!(
            stat(&got, "video", "frames"),
            Some(frames),
            "{profile}: {got}"
        );
        assert_eq!(pictures as f64, frames, "{profile}");
        assert!(
            stat(&got, "audio", "frames").unwrap_or(0.0) >= 200.0,
            "{profile}: {got}"
        );
        for stream in ["video", "audio"] {
            assert_eq!(
                stat(&got, stream, "auth-fail"),
                Some(0.0),
                "{profile}: {got}"
            );
            assert_eq!(stat(&got, stream, "lost"), Some(0.0), "{profile}: {got}");
        }
        // recv's SRTCP reports authenticated at the sender.
        assert!(
            sent.contains("rtt") && !sent.contains("auth-fail"),
            "{profile}: {sent}"
        );
    }
}

/// A sender with another key, and one in clear, into an SRTP receiver:
/// not one picture, every packet counted as an authentication failure,
/// and both ends exit cleanly.
#[test]
fn wrong_key_and_plaintext_are_dropped_and_counted() {
    let _turn = serial();
    let (key, _) = keygen("aes128-cm-sha1-80");
    let (other, _) = keygen("aes128-cm-sha1-80");
    let recv_srtp = ["--srtp-key", key.as_str()];
    for (case, send_srtp) in [
        ("another key", vec!["--srtp-key", other.as_str()]),
        ("plaintext", vec![]),
    ] {
        let (sent, got, pictures) = send_to_recv("srtp-wrong", &recv_srtp, &send_srtp, 4);
        let frames = stat(&sent, "video", "frames").expect("frames sent");
        assert!(frames >= 3.0 * 30.0, "{case}: {sent}");
        assert_eq!(pictures, 0, "{case}: pictures decoded");
        assert_eq!(stat(&got, "video", "frames"), Some(0.0), "{case}: {got}");
        assert_eq!(stat(&got, "video", "pkts"), Some(0.0), "{case}: {got}");
        let failed = stat(&got, "video", "auth-fail").expect("auth-fail shown");
        assert!(
            failed >= frames,
            "{case}: {failed} auth failures for {frames} pictures: {got}"
        );
        assert!(
            stat(&got, "audio", "auth-fail").unwrap_or(0.0) >= 150.0,
            "{case}: {got}"
        );
        // recv reports on no stream it could not authenticate: no RTT.
        assert!(!sent.contains("rtt"), "{case}: {sent}");
    }
}

/// A man in the middle between pstream send and recv (both SRTP) sends a
/// tampered copy ahead of every 25th video packet and the packet again
/// after it: each forgery is counted as an authentication failure, each
/// replay as a replay, and every picture still arrives whole.
#[test]
fn tampered_and_replayed_packets_are_refused_and_counted() {
    const SECONDS: u64 = 5;
    let _turn = serial();
    let dir = temp_dir("srtp-tamper");
    let (base, rbase) = (free_port_base(), free_port_base());
    let (key, _) = keygen("aes128-cm-sha1-80");
    let srtp = ["--srtp-key", key.as_str()];
    let y4m = dir.join("video.y4m");
    // send's layout on base, recv's on rbase: video RTP through the
    // tampering forwarder, every other port through a plain one (recv's
    // RTCP leaves for rbase+5/+7 and is carried back to base+5/+7).
    let mitm = Forward::start_tampering(base, rbase, 25);
    let _rtcp = Forward::start(base + 1, rbase + 1);
    let _audio = Forward::start(base + 2, rbase + 2);
    let _audio_rtcp = Forward::start(base + 3, rbase + 3);
    let _back = Forward::start(rbase + 5, base + 5);
    let _audio_back = Forward::start(rbase + 7, base + 7);
    let mut recv = start_recv(
        "pstream-recv",
        &recv_args(rbase, &y4m, &srtp, SECONDS + 4),
        &dir,
    );
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &send_args(base, &srtp, SECONDS),
        &dir,
    );
    let send_code = send.wait(Duration::from_secs(SECONDS + 15));
    let recv_code = recv.wait(Duration::from_secs(15));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let seen = mitm.finish();
    let sent = summary(&send_log, "send finished");
    let got = summary(&recv_log, "recv finished");
    eprintln!("{sent}\n{got}\nforwarder: {seen:?}");
    assert!(seen.tampered >= 5, "{seen:?}");
    assert_eq!(
        stat(got, "video", "auth-fail"),
        Some(seen.tampered as f64),
        "{got}"
    );
    assert_eq!(
        stat(got, "video", "replayed"),
        Some(seen.replayed as f64),
        "{got}"
    );
    let frames = stat(sent, "video", "frames").expect("frames sent");
    assert_eq!(stat(got, "video", "frames"), Some(frames), "{got}");
    assert_eq!(stat(got, "video", "lost"), Some(0.0), "{got}");
    assert_eq!(stat(got, "video", "dup"), Some(0.0), "{got}");
    assert_eq!(scan_y4m(&y4m, false).pictures.len() as f64, frames);
    let _ = std::fs::remove_file(&y4m);
}

/// ffmpeg opens `pstream sdp --srtp-key`'s description (RTP/SAVP with an
/// `a=crypto` line per stream) and decodes both streams.
#[test]
fn ffmpeg_decodes_the_stream_from_the_sdp_crypto_line() {
    const SECONDS: u64 = 6;
    let _turn = serial();
    require("ffmpeg");
    let dir = temp_dir("srtp-ffmpeg");
    let base = free_port_base().to_string();
    let (key, _) = keygen("aes128-cm-sha1-80");
    let common = [
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base,
        "--size",
        "640x360",
        "--fps",
        "30",
        "--srtp-key",
        &key,
    ];
    let mut sdp_args = vec!["sdp"];
    sdp_args.extend(common);
    let (code, sdp, err) = run_pstream(&sdp_args, Duration::from_secs(20));
    assert_eq!(code, Some(0), "pstream sdp failed: {err}");
    assert!(
        sdp.contains(&format!("m=video {base} RTP/SAVP 96\r\n")),
        "{sdp}"
    );
    let crypto = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n");
    assert_eq!(sdp.matches(&crypto).count(), 2, "one per stream:\n{sdp}");
    let sdp_path = dir.join("stream.sdp");
    std::fs::write(&sdp_path, &sdp).expect("write sdp");

    let out = dir.join("frames.txt");
    let ff_args = args(&[
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
        &sdp_path.to_string_lossy(),
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-f",
        "framemd5",
        "-y",
        &out.to_string_lossy(),
    ]);
    let mut ff = Proc::start("ffmpeg", "ffmpeg".as_ref(), &ff_args, &dir);
    std::thread::sleep(Duration::from_millis(1500));
    let mut send_args = vec!["send".to_string()];
    send_args.extend(args(&common));
    send_args.extend(args(&["--duration", &SECONDS.to_string()]));
    let mut send = Proc::start("pstream-send", &pstream_bin(), &send_args, &dir);
    let code = send.wait(Duration::from_secs(SECONDS + 15));
    assert_eq!(code, Some(0), "pstream send failed:\n{}", send.stderr());
    // ffmpeg runs behind real time after probing: stop it once its output
    // stops growing (at most 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_len = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(400));
        let len = std::fs::metadata(&out).map(|m| m.len()).ok();
        if len.is_some() && len == last_len {
            break;
        }
        last_len = len;
    }
    ff.signal("INT");
    ff.wait(Duration::from_secs(10));
    let log = ff.stderr();
    let frames = read_lossy(&out);
    let video = frames.lines().filter(|l| l.starts_with("0,")).count() as u64;
    let audio = frames.lines().filter(|l| l.starts_with("1,")).count() as u64;
    let sent = summary(&send.stderr(), "send finished").to_string();
    eprintln!(
        "ffmpeg decoded {video} pictures and {audio} Opus frames\n{sent}\n--- ffmpeg ---\n{log}"
    );
    assert!(log.contains("Video: h264"), "ffmpeg saw no H.264:\n{log}");
    assert!(log.contains("640x360"), "ffmpeg saw the wrong size:\n{log}");
    assert!(
        video >= (SECONDS - 2) * 30,
        "only {video} pictures decoded:\n{log}"
    );
    assert!(log.contains("Audio: opus"), "ffmpeg saw no Opus:\n{log}");
    assert!(
        audio >= (SECONDS - 2) * 50 * 9 / 10,
        "only {audio} Opus frames decoded:\n{log}"
    );
    assert!(!log.contains("concealing"), "damaged pictures:\n{log}");
}
