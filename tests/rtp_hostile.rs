//! Hostile hosts against `pstream recv` and `pstream send` on loopback:
//! a sender at another address that starts before the real peer must not
//! capture the receiver, and a flood of PLIs must neither turn every
//! picture into an IDR nor, from another address, cause any.
//!
//! 127.0.0.2 is "another host": every 127/8 address is local on Linux, so
//! a socket bound there sends with that source address.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let mut recv = start_recv("pstream-recv", &recv_args(peer, base, &y4m, 11), &dir);
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

fn is_idr_packet(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 => true,
        // STAP-A: NALs with 16-bit sizes.
        24 => {
            let mut off = 1;
            while off + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[off], payload[off + 1]]));
                if payload[off + 2] & 0x1f == 5 {
                    return true;
                }
                off += 2 + size;
            }
            false
        }
        // FU-A: the start fragment names the NAL type.
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == 5),
        _ => false,
    }
}

/// Reads the video RTP port until `stop`: the stream's SSRC (0 until the
/// first packet) and the arrival of each access unit holding an IDR slice.
fn watch_idrs(socket: UdpSocket, ssrc: &AtomicU32, stop: &AtomicBool) -> Vec<Instant> {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut idrs = Vec::new();
    let mut last_ts = None;
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let p = &buf[..n];
        if n < 12 || p[0] >> 6 != 2 {
            continue;
        }
        let csrcs = usize::from(p[0] & 0x0f) * 4;
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        ssrc.store(
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            Ordering::Relaxed,
        );
        let Some(payload) = p.get(12 + csrcs..) else {
            continue;
        };
        if is_idr_packet(payload) && last_ts != Some(ts) {
            last_ts = Some(ts);
            idrs.push(Instant::now());
        }
    }
    idrs
}

/// An RTCP compound of an empty RR and a PLI for `media_ssrc`.
fn pli(media_ssrc: u32) -> Vec<u8> {
    let me = 0x5eed_0001u32.to_be_bytes();
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&me);
    p.extend_from_slice(&[0x81, 206, 0, 2]);
    p.extend_from_slice(&me);
    p.extend_from_slice(&media_ssrc.to_be_bytes());
    p
}

/// Sends 1000 PLIs over 2 s from `from` to `to`.
fn pli_flood(from: &str, to: SocketAddr, media_ssrc: u32) {
    let socket = UdpSocket::bind((from, 0)).expect("bind the flooding socket");
    let data = pli(media_ssrc);
    let start = Instant::now();
    for i in 0..1000u32 {
        let due = start + Duration::from_millis(u64::from(i) * 2);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = socket.send_to(&data, to);
    }
}

/// Runs `pstream send` with `keyint` into sockets on 127.0.0.1, floods its
/// video RTCP port with PLIs from `from` 1.5 s after its first packet, and
/// returns the IDRs that arrived from the flood's start until 300 ms after
/// its end, with the sender's summary.
fn flood_sender(from: &str, keyint: &str, name: &str) -> (usize, String) {
    let dir = temp_dir(name);
    let base = free_port_base();
    // Every port the sender sends to is bound, so no ICMP errors come back.
    let video = UdpSocket::bind(("127.0.0.1", base)).expect("bind video RTP");
    let _others: Vec<UdpSocket> = (1..4)
        .map(|i| UdpSocket::bind(("127.0.0.1", base + i)).expect("bind"))
        .collect();
    let ssrc = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (ssrc, stop) = (ssrc.clone(), stop.clone());
        move || watch_idrs(video, &ssrc, &stop)
    });
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &send_args("127.0.0.1", base, "320x240", 6, keyint),
        &dir,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while ssrc.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let media_ssrc = ssrc.load(Ordering::Relaxed);
    assert_ne!(
        media_ssrc,
        0,
        "no RTP from pstream send:\n{}",
        send.stderr()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let flood_start = Instant::now();
    let to: SocketAddr = format!("127.0.0.1:{}", base + 5).parse().expect("addr");
    pli_flood(from, to, media_ssrc);
    std::thread::sleep(Duration::from_millis(300));
    let flood_end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let idrs = watcher.join().expect("watcher");
    let code = send.wait(Duration::from_secs(15));
    let log = send.stderr();
    assert_eq!(code, Some(0), "pstream send:\n{log}");
    let idrs: Vec<f64> = idrs
        .iter()
        .filter(|at| **at >= flood_start && **at <= flood_end)
        .map(|at| at.duration_since(flood_start).as_secs_f64())
        .collect();
    eprintln!("IDRs during the flood from {from} (s after its start): {idrs:.2?}");
    (idrs.len(), summary(&log, "send finished").to_string())
}

/// 1000 PLIs in 2 s from the peer's address: at most one IDR per keyint/4
/// (here 500 ms), so at most 5 in the 2.3 s watched, and at least 3 (the
/// requests are answered, only not every one).
#[test]
fn a_pli_flood_from_the_peer_yields_one_idr_per_quarter_keyint() {
    let _turn = serial();
    let (idrs, sent) = flood_sender("127.0.0.1", "2", "pli-flood-peer");
    eprintln!("{sent}");
    assert!(idrs <= 5, "{idrs} IDRs in 2.3 s of PLI flood");
    assert!(idrs >= 3, "only {idrs} IDRs: the PLIs went unanswered");
}

/// The same flood from another address: ignored and counted, no IDR at all
/// (the keyframe interval of 20 s puts none of the encoder's own in the window).
#[test]
fn plis_from_another_address_yield_no_idr() {
    let _turn = serial();
    let (idrs, sent) = flood_sender("127.0.0.2", "20", "pli-flood-rogue");
    eprintln!("{sent}");
    assert_eq!(idrs, 0, "PLIs from 127.0.0.2 made IDRs");
    let refused = stat(&sent, "video", "not-peer").unwrap_or(0.0);
    assert!(refused >= 900.0, "PLIs from 127.0.0.2 not counted: {sent}");
    assert_eq!(stat(&sent, "video", "kf-req"), None, "{sent}");
}
