//! Bad input gets one clear error line and exit code 2, never a panic.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

fn fails_with(args: &[&str], needle: &str) {
    let (code, _out, err) = run_pstream(args, Duration::from_secs(20));
    assert_eq!(code, Some(2), "{args:?} exited {code:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "{args:?} printed a backtrace hint: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
    let error_lines = err.lines().filter(|l| l.contains("error")).count();
    assert_eq!(
        error_lines, 1,
        "{args:?}: expected one error line, got: {err}"
    );
}

#[test]
fn unknown_source_is_named() {
    fails_with(
        &["send", "--peer", "127.0.0.1", "--video", "bogus:x"],
        "bogus:x",
    );
}

#[test]
fn unreadable_y4m_is_named() {
    fails_with(
        &[
            "send",
            "--peer",
            "127.0.0.1",
            "--video",
            "y4m:/nonexistent/a.y4m",
        ],
        "/nonexistent/a.y4m",
    );
}

#[test]
fn malformed_y4m_is_refused() {
    let dir = temp_dir("bad-y4m");
    let path = dir.join("bad.y4m");
    std::fs::write(&path, b"YUV4MPEG2 W0 H-3 F30:1\nFRAME\n\x01\x02").expect("write");
    let spec = format!("y4m:{}", path.display());
    fails_with(
        &["send", "--peer", "127.0.0.1", "--video", &spec],
        "bad.y4m",
    );
}

#[test]
fn malformed_wav_is_refused() {
    let dir = temp_dir("bad-wav");
    let path = dir.join("bad.wav");
    std::fs::write(&path, b"RIFF\x10\x00\x00\x00WAVEfmt \xff\xff\xff\xff").expect("write");
    let spec = format!("wav:{}", path.display());
    fails_with(
        &["send", "--peer", "127.0.0.1", "--audio", &spec],
        "bad.wav",
    );
}

#[test]
fn unresolvable_host_is_named() {
    fails_with(
        &["send", "--peer", "no-such-host.invalid"],
        "no-such-host.invalid",
    );
}

#[test]
fn bad_port_base_is_refused() {
    fails_with(
        &["send", "--peer", "127.0.0.1", "--port-base", "65534"],
        "65534",
    );
    fails_with(
        &["send", "--peer", "127.0.0.1", "--port-base", "70000"],
        "70000",
    );
}

#[test]
fn port_in_use_is_named() {
    let base = free_port_base();
    let _taken = UdpSocket::bind(("0.0.0.0", base + 5)).expect("bind");
    fails_with(
        &[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--duration",
            "1",
        ],
        &format!("{}", base + 5),
    );
}

#[test]
fn bad_auto_bitrate_is_refused() {
    fails_with(
        &["send", "--peer", "127.0.0.1", "--bitrate", "fast"],
        "fast",
    );
    fails_with(
        &[
            "send",
            "--peer",
            "127.0.0.1",
            "--bitrate",
            "auto",
            "--min-bitrate",
            "5000",
            "--max-bitrate",
            "1000",
        ],
        "--min-bitrate 5000",
    );
    fails_with(
        &[
            "send",
            "--peer",
            "127.0.0.1",
            "--bitrate",
            "auto",
            "--video-codec",
            "mjpeg",
            "--size",
            "640x360",
        ],
        "MJPEG",
    );
}

#[test]
fn bad_size_is_refused() {
    fails_with(&["send", "--peer", "127.0.0.1", "--size", "12x"], "12x");
}

#[test]
fn garbage_rtcp_is_dropped_and_counted() {
    let base = free_port_base();
    let dir = temp_dir("garbage-rtcp");
    let args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--size",
        "320x240",
        "--duration",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut send = Proc::start("pstream", &pstream_bin(), &args, &dir);
    std::thread::sleep(Duration::from_millis(1000));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..(i as usize % 40))
            .map(|j| (j as u8).wrapping_mul(i))
            .collect();
        let _ = sock.send_to(&junk, ("127.0.0.1", base + 5));
        let _ = sock.send_to(
            &[0x81, 200, 0xff, 0xff, 1, 2, 3, 4],
            ("127.0.0.1", base + 7),
        );
    }
    let code = send.wait(Duration::from_secs(15));
    let log = send.stderr();
    assert_eq!(code, Some(0), "{log}");
    let summary = log
        .lines()
        .rfind(|l| l.contains("send finished"))
        .unwrap_or_default();
    assert!(
        summary.contains("bad-rtcp"),
        "garbage RTCP not counted: {summary}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_bad_srtp_key_is_one_clear_error() {
    // Too short for AES_CM (30 bytes): base64 of 20 bytes.
    fails_with(
        &[
            "recv",
            "--peer",
            "127.0.0.1",
            "--srtp-key",
            "YSBrZXkgb2YgdHdlbnR5IGJ5dGU=",
        ],
        "are 30 bytes, not 20",
    );
    // A GCM key is 28 bytes: a 30-byte AES_CM key is refused for it.
    fails_with(
        &[
            "send",
            "--peer",
            "127.0.0.1",
            "--srtp-profile",
            "aes128-gcm",
            "--srtp-key",
            "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        ],
        "are 28 bytes, not 30",
    );
    fails_with(
        &["send", "--peer", "127.0.0.1", "--srtp-key", "not base64!"],
        "--srtp-key",
    );
}

#[test]
fn a_bad_rtx_payload_type_is_one_clear_error() {
    // Outside the dynamic range.
    fails_with(
        &["send", "--peer", "127.0.0.1", "--rtx", "--rtx-pt", "95"],
        "--rtx-pt",
    );
    fails_with(
        &["recv", "--peer", "127.0.0.1", "--rtx", "--rtx-pt", "128"],
        "--rtx-pt",
    );
    // The video's own payload type.
    fails_with(
        &["send", "--peer", "127.0.0.1", "--rtx", "--rtx-pt", "96"],
        "RTX payload type 96",
    );
    // Without --rtx it would do nothing.
    fails_with(&["recv", "--peer", "127.0.0.1", "--rtx-pt", "99"], "--rtx");
}
