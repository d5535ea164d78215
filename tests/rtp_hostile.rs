//! Hostile hosts against `pstream recv` on loopback: a sender at another
//! address that starts before the real peer must not capture the receiver.
//!
//! 127.0.0.2 is "another host": every 127/8 address is local on Linux, so
//! a socket bound there sends with that source address.

mod common;

use std::path::Path;
use std::time::Duration;

use common::video::{scan_y4m, stat, summary};
use common::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `pstream recv` from `peer` on 127.0.0.1 into a Y4M file.
fn recv_args(peer: &str, base: u16, y4m: &Path, secs: u64) -> Vec<String> {
    args(&[
        "recv",
        "--peer",
        peer,
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--audio-out",
        "null",
        "--duration",
        &secs.to_string(),
    ])
}

/// `pstream send` of a `size` test pattern to 127.0.0.1 from `from`.
fn send_args(from: &str, base: u16, size: &str, secs: u64, keyint: &str) -> Vec<String> {
    args(&[
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        from,
        "--port-base",
        &base.to_string(),
        "--size",
        size,
        "--fps",
        "30",
        "--bitrate",
        "800",
        "--keyint",
        keyint,
        "--duration",
        &secs.to_string(),
    ])
}

/// A rogue sender at 127.0.0.2 starts 2 s before the real peer at
/// 127.0.0.1 and keeps sending while it runs; returns the receiver's log
/// and the size of the pictures it wrote.
fn rogue_first(peer: &str, name: &str) -> (String, (u32, u32), usize) {
    let dir = temp_dir(name);
    let base = free_port_base();
    let y4m = dir.join("video.y4m");
    let mut recv = Proc::start(
        "pstream-recv",
        &pstream_bin(),
        &recv_args(peer, base, &y4m, 11),
        &dir,
    );
    assert!(
        recv.wait_for_output("receiving from", Duration::from_secs(20)),
        "pstream recv did not start:\n{}",
        recv.stderr()
    );
    let mut rogue = Proc::start(
        "rogue-send",
        &pstream_bin(),
        &send_args("127.0.0.2", base, "320x240", 10, "1"),
        &dir,
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut real = Proc::start(
        "real-send",
        &pstream_bin(),
        &send_args("127.0.0.1", base, "640x360", 6, "1"),
        &dir,
    );
    let real_code = real.wait(Duration::from_secs(20));
    let rogue_code = rogue.wait(Duration::from_secs(20));
    let recv_code = recv.wait(Duration::from_secs(20));
    let log = recv.stderr();
    assert_eq!(real_code, Some(0), "real sender:\n{}", real.stderr());
    assert_eq!(rogue_code, Some(0), "rogue sender:\n{}", rogue.stderr());
    assert_eq!(recv_code, Some(0), "pstream recv:\n{log}");
    let scan = scan_y4m(&y4m, false);
    let _ = std::fs::remove_file(&y4m);
    (log, (scan.width, scan.height), scan.pictures.len())
}

/// The reported attack: a sender at another address that started first
/// captured `recv --peer 127.0.0.1` for its whole run. Now its packets are
/// dropped and counted, and the real peer's 640x360 pictures come out.
#[test]
fn a_sender_at_another_address_does_not_capture_the_receiver() {
    let _turn = serial();
    let (log, size, pictures) = rogue_first("127.0.0.1", "rogue-first");
    let got = summary(&log, "recv finished");
    eprintln!("{got}");
    assert_eq!(
        size,
        (640, 360),
        "the rogue's pictures were written:\n{log}"
    );
    // The real peer sent 6 s at 30 fps; its first IDR starts the output.
    assert!(pictures >= 150, "only {pictures} pictures:\n{log}");
    let refused = stat(got, "video", "not-peer").unwrap_or(0.0);
    assert!(refused >= 100.0, "rogue video packets not counted: {got}");
    let refused = stat(got, "audio", "not-peer").unwrap_or(0.0);
    assert!(refused >= 100.0, "rogue audio packets not counted: {got}");
}

/// `--peer any` keeps the old behaviour: the first sender heard is followed
/// while it lives, whatever its address.
#[test]
fn peer_any_follows_whoever_sends_first() {
    let _turn = serial();
    let (log, size, pictures) = rogue_first("any", "peer-any");
    let got = summary(&log, "recv finished");
    eprintln!("{got}");
    assert_eq!(size, (320, 240), "{log}");
    assert!(pictures >= 150, "only {pictures} pictures:\n{log}");
    assert_eq!(stat(got, "video", "not-peer"), None, "{got}");
}
