//! MJPEG over RTP (RFC 2435) against real players: ffprobe given a fixed
//! hand-written SDP file, GStreamer's rtpjpegdepay, and pstream recv fed by
//! GStreamer's rtpjpegpay and by ffmpeg's RTP muxer.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// pstream's frame count from its closing summary line.
fn frames_sent(log: &str) -> u64 {
    log.lines()
        .rfind(|l| l.contains("send finished"))
        .and_then(|l| l.split("frames ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in pstream's summary:\n{log}"))
}

#[test]
fn ffprobe_decodes_pstream_mjpeg_with_the_guides_sdp_file_unchanged() {
    let _turn = serial();
    require("ffprobe");
    require_port_5000_free();
    let dir = temp_dir("mjpeg-ffprobe");
    let sdp = dir.join("mjpeg.sdp");
    std::fs::write(&sdp, GUIDE_SDP).expect("write sdp");
    const SECONDS: u64 = 10;

    let probe_args = strings(&[
        "-hide_banner",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
        &sdp.to_string_lossy(),
        "-select_streams",
        "v",
        "-show_entries",
        "frame=width,height",
        "-of",
        "csv",
    ]);
    let mut probe = Proc::start("ffprobe", "ffprobe".as_ref(), &probe_args, &dir);
    // ffprobe reads as soon as it has parsed the SDP and bound the port.
    std::thread::sleep(Duration::from_millis(1500));

    let send_args = strings(&[
        "send",
        "--video-codec",
        "mjpeg",
        "--peer",
        "127.0.0.1",
        "--audio",
        "none",
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--duration",
        &SECONDS.to_string(),
    ]);
    let mut send = Proc::start("pstream", &pstream_bin(), &send_args, &dir);
    let code = send.wait(Duration::from_secs(SECONDS + 15));
    let send_log = send.stderr();
    assert_eq!(code, Some(0), "pstream send failed:\n{send_log}");
    std::thread::sleep(Duration::from_millis(1000));
    probe.signal("INT");
    probe.wait(Duration::from_secs(10));

    let out = probe.stdout();
    let decoded = out.lines().filter(|l| l.starts_with("frame,")).count() as u64;
    let sent = frames_sent(&send_log);
    eprintln!("pstream sent {sent} JPEG frames, ffprobe decoded {decoded}");
    let log = probe.stderr();
    assert!(
        log.contains("Video: mjpeg") && log.contains("1280x720"),
        "ffprobe did not see 1280x720 MJPEG:\n{log}"
    );
    assert!(
        sent >= SECONDS * 30 * 9 / 10,
        "pstream sent only {sent} frames in {SECONDS} s:\n{send_log}"
    );
    assert!(
        decoded * 10 >= sent * 9,
        "ffprobe decoded {decoded} of {sent} frames\n--- ffprobe ---\n{log}\n--- pstream ---\n{send_log}"
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("frame,"))
            .all(|l| l == "frame,1280,720"),
        "a frame of another size"
    );
}

#[test]
fn gstreamer_rtpjpegdepay_decodes_pstream_and_pstream_sdp_describes_it() {
    let _turn = serial();
    require("gst-launch-1.0");
    let dir = temp_dir("mjpeg-gst");
    let base = free_port_base();
    let port = base.to_string();

    let (code, sdp, err) = run_pstream(
        &[
            "sdp",
            "--video-codec",
            "mjpeg",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &port,
            "--audio",
            "none",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "pstream sdp failed: {err}");
    assert!(
        sdp.contains(&format!("m=video {base} RTP/AVP 26\r\n")),
        "{sdp}"
    );
    assert!(sdp.contains("a=rtpmap:26 JPEG/90000\r\n"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"), "{sdp}");
    assert!(!sdp.contains("m=audio"), "{sdp}");

    let gst_args = strings(&[
        "-e",
        "-v",
        "udpsrc",
        "address=127.0.0.1",
        &format!("port={base}"),
        "caps=application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)JPEG,payload=(int)26",
        "!",
        "rtpjpegdepay",
        "!",
        "jpegdec",
        "!",
        "fakesink",
        "name=vsink",
        "silent=false",
        "sync=false",
    ]);
    let mut gst = Proc::start("gst-launch", "gst-launch-1.0".as_ref(), &gst_args, &dir);
    std::thread::sleep(Duration::from_millis(2000));
    const SECONDS: u64 = 5;
    let send_args = strings(&[
        "send",
        "--video-codec",
        "mjpeg",
        "--quality",
        "70",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &port,
        "--audio",
        "none",
        "--size",
        "640x360",
        "--duration",
        &SECONDS.to_string(),
    ]);
    let mut send = Proc::start("pstream", &pstream_bin(), &send_args, &dir);
    let code = send.wait(Duration::from_secs(SECONDS + 15));
    let send_log = send.stderr();
    assert_eq!(code, Some(0), "pstream send failed:\n{send_log}");
    std::thread::sleep(Duration::from_millis(1000));
    gst.signal("INT");
    gst.wait(Duration::from_secs(10));
    let out = gst.stdout();
    let decoded = out.matches("vsink: last-message = chain").count() as u64;
    let sent = frames_sent(&send_log);
    eprintln!("pstream sent {sent} frames, GStreamer decoded {decoded}");
    assert!(
        decoded * 10 >= sent * 9 && sent > 0,
        "GStreamer decoded {decoded} of {sent} frames\n{}\n{}",
        gst.stderr(),
        out.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.contains("width=(int)640, height=(int)360"),
        "decoded caps not 640x360:\n{out}"
    );
}

/// (width, height, frames, mean Y, mean U, mean V of the middle frame) of a Y4M file.
fn y4m_summary(path: &Path) -> (usize, usize, usize, f64, f64, f64) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let nl = data
        .iter()
        .position(|&b| b == b'\n')
        .expect("Y4M header line");
    let header = String::from_utf8_lossy(&data[..nl]).into_owned();
    let field = |tag: char| -> usize {
        header
            .split(' ')
            .find_map(|f| f.strip_prefix(tag))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {tag} in {header:?}"))
    };
    let (w, h) = (field('W'), field('H'));
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let picture = w * h + 2 * cw * ch;
    let frame_len = b"FRAME\n".len() + picture;
    let body = &data[nl + 1..];
    let frames = body.len() / frame_len;
    if frames == 0 {
        return (w, h, 0, 0.0, 0.0, 0.0);
    }
    let mid = &body[frames / 2 * frame_len + 6..][..picture];
    let mean = |s: &[u8]| s.iter().map(|&b| f64::from(b)).sum::<f64>() / s.len() as f64;
    (
        w,
        h,
        frames,
        mean(&mid[..w * h]),
        mean(&mid[w * h..w * h + cw * ch]),
        mean(&mid[w * h + cw * ch..]),
    )
}

/// Starts `pstream recv --video-codec mjpeg`, runs `peer`, and returns the Y4M summary.
fn recv_from(
    peer_name: &str,
    peer_program: &str,
    peer_args: impl Fn(u16) -> Vec<String>,
) -> (usize, usize, usize, f64, f64, f64) {
    let dir = temp_dir(&format!("mjpeg-recv-{peer_name}"));
    let base = free_port_base();
    let y4m = dir.join("video.y4m");
    let recv_args = strings(&[
        "recv",
        "--video-codec",
        "mjpeg",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--duration",
        "9",
    ]);
    let mut recv = Proc::start("pstream-recv", &pstream_bin(), &recv_args, &dir);
    std::thread::sleep(Duration::from_millis(1000));
    let mut peer = Proc::start(peer_name, peer_program.as_ref(), &peer_args(base), &dir);
    let peer_code = peer.wait(Duration::from_secs(20));
    assert_eq!(peer_code, Some(0), "{peer_name} failed:\n{}", peer.stderr());
    let code = recv.wait(Duration::from_secs(20));
    let log = recv.stderr();
    assert_eq!(code, Some(0), "pstream recv failed:\n{log}");
    eprintln!(
        "{}",
        log.lines()
            .rfind(|l| l.contains("recv finished"))
            .unwrap_or_default()
    );
    let s = y4m_summary(&y4m);
    eprintln!("{peer_name}: {s:?}");
    s
}

#[test]
fn pstream_recv_decodes_gstreamer_rtpjpegpay() {
    let _turn = serial();
    require("gst-launch-1.0");
    // 120 pictures of solid red (BT.601 limited range: Y 81, Cb 90, Cr 240).
    let (w, h, frames, y, u, v) = recv_from("gst-launch", "gst-launch-1.0", |base| {
        strings(&[
            "-q",
            "videotestsrc",
            "num-buffers=120",
            "is-live=true",
            "pattern=red",
            "!",
            "video/x-raw,format=I420,width=640,height=480,framerate=30/1",
            "!",
            "jpegenc",
            "!",
            "rtpjpegpay",
            "!",
            "udpsink",
            "host=127.0.0.1",
            &format!("port={base}"),
        ])
    });
    assert_eq!((w, h), (640, 480));
    assert!(frames >= 108, "only {frames} of 120 pictures decoded");
    assert!((70.0..=95.0).contains(&y), "luma {y} is not red's");
    assert!(u < 110.0 && v > 220.0, "chroma ({u}, {v}) is not red's");
}

#[test]
fn pstream_recv_decodes_ffmpeg_rtp_mjpeg() {
    let _turn = serial();
    require("ffmpeg");
    // 120 pictures of solid red, full range (Y 76, Cb 85, Cr 255); ffmpeg's
    // RTP muxer needs the encoder's standard Huffman tables.
    let (w, h, frames, y, u, v) = recv_from("ffmpeg", "ffmpeg", |base| {
        strings(&[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:size=320x240:rate=30",
            "-frames:v",
            "120",
            "-c:v",
            "mjpeg",
            "-huffman",
            "default",
            "-pix_fmt",
            "yuvj420p",
            "-f",
            "rtp",
            &format!("rtp://127.0.0.1:{base}"),
        ])
    });
    assert_eq!((w, h), (320, 240));
    assert!(frames >= 108, "only {frames} of 120 pictures decoded");
    assert!((60.0..=95.0).contains(&y), "luma {y} is not red's");
    assert!(u < 110.0 && v > 220.0, "chroma ({u}, {v}) is not red's");
}

#[test]
fn mjpeg_larger_than_2040_pixels_is_refused_up_front() {
    for cmd in ["send", "sdp"] {
        let (code, _, err) = run_pstream(
            &[
                cmd,
                "--video-codec",
                "mjpeg",
                "--peer",
                "127.0.0.1",
                "--port-base",
                &free_port_base().to_string(),
                "--audio",
                "none",
                "--size",
                "2048x1152",
                "--duration",
                "1",
            ],
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(2), "{cmd}: {err}");
        assert!(
            err.contains("2048x1152") && err.contains("RFC 2435") && err.contains("2040"),
            "{cmd}: unclear error: {err}"
        );
    }
}
