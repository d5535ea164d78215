//! NACK + RTX end to end: `pstream send --rtx` → lossy relay → `pstream
//! recv --rtx` on loopback, and the same path without `--rtx` for contrast.
//!
//! The relay drops a share of every packet on the video RTP port,
//! retransmissions included, and delays every packet on every port (RTCP
//! too, never dropped) by 20 ms ± 10 ms, in order. A picture counts as
//! intact when recv wrote it clean (luma PSNR over 40 dB against the test
//! pattern frame it should be, in the short test) under its own timecode;
//! the share is intact pictures over frames sent.
//!
//! `must_show_1_table` (ignored; run by hand, see its doc) measures the
//! 720p30 table of issue 17: 1%, 2% and 5% loss with and without `--rtx`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::relay::{Impairment, Relay, RelayCounts};
use common::video::{latency_figures, scan_y4m, stat, summary};
use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One run's settings.
#[derive(Clone)]
struct Case {
    /// Share of video RTP packets dropped (RTX included).
    loss: f64,
    /// `--rtx` on both ends.
    rtx: bool,
    /// How long pstream sends.
    seconds: u64,
    seed: u64,
    /// Check every picture against the test pattern (a Y4M file; 415 MB
    /// per 10 s of 720p) or only read timecodes off a FIFO (long runs).
    compare: bool,
    size: &'static str,
}

/// What one run did.
struct Outcome {
    send_log: String,
    recv_log: String,
    video: RelayCounts,
    frames_sent: f64,
    /// Pictures written clean, each under a timecode not seen before.
    intact: u64,
    /// Pictures written at all.
    shown: u64,
    worst_psnr: f64,
    /// Capture-to-decoded median over the run (ms).
    median_ms: f64,
}

impl Outcome {
    fn share(&self) -> f64 {
        self.intact as f64 / self.frames_sent.max(1.0)
    }
}

/// The path's delay on every port, dropped packets only on video RTP.
fn path_delay() -> Impairment {
    Impairment::delayed(Duration::from_millis(20), Duration::from_millis(10))
}

/// The relays between a sender on `sbase` and a receiver on `rbase`:
/// `loss` of video RTP dropped (after the first 40 packets, so the first
/// IDR arrives whole), every port delayed 20 ± 10 ms; the first relay is
/// the video RTP one.
fn relay_path(sbase: u16, rbase: u16, loss: f64, seed: u64, seconds: u64) -> Vec<Relay> {
    let lossy = Impairment {
        loss,
        clean_first: 40,
        stop_after: Duration::from_secs(seconds + 60),
        ..path_delay()
    };
    let mut relays = vec![Relay::start(addr(sbase), addr(rbase), lossy, seed)];
    for o in [1, 2, 3] {
        relays.push(Relay::start(
            addr(sbase + o),
            addr(rbase + o),
            path_delay(),
            seed ^ u64::from(o),
        ));
    }
    // The receiver's RTCP goes to its peer's +5/+7, i.e. rbase+5/+7, and
    // on to the sender's.
    for o in [5, 7] {
        relays.push(Relay::start(
            addr(rbase + o),
            addr(sbase + o),
            path_delay(),
            seed ^ u64::from(o),
        ));
    }
    relays
}

/// Two port bases at least 10 apart.
fn two_bases() -> (u16, u16) {
    let sbase = free_port_base();
    loop {
        let b = free_port_base();
        if b.abs_diff(sbase) >= 10 {
            return (sbase, b);
        }
    }
}

fn run(case: &Case, dir: &Path) -> Outcome {
    let tag = format!(
        "{}-{}",
        (case.loss * 1000.0).round(),
        if case.rtx { "rtx" } else { "plain" }
    );
    // send → relay on `sbase` → recv on `rbase`; recv's RTCP goes to
    // rbase+5/+7, where the relay passes it back to sbase+5/+7.
    let (sbase, rbase) = two_bases();
    let relays = relay_path(sbase, rbase, case.loss, case.seed, case.seconds);
    let y4m: PathBuf = dir.join(format!("video-{tag}.y4m"));
    let _ = std::fs::remove_file(&y4m);
    let scanner = if case.compare {
        None
    } else {
        // A FIFO read as it is written: a 60 s 720p file would be 2.5 GB.
        let ok = std::process::Command::new("mkfifo")
            .arg(&y4m)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo {}", y4m.display());
        let path = y4m.clone();
        Some(std::thread::spawn(move || scan_y4m(&path, false)))
    };
    let mut recv_args = vec![
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--audio-out",
        "null",
        "--timecode",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    recv_args.extend([
        "--port-base".into(),
        rbase.to_string(),
        "--video-out".into(),
        format!("y4m:{}", y4m.display()),
        "--duration".into(),
        (case.seconds + 4).to_string(),
    ]);
    let mut send_args = vec![
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--fps",
        "30",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    send_args.extend([
        "--size".into(),
        case.size.into(),
        "--port-base".into(),
        sbase.to_string(),
        "--duration".into(),
        case.seconds.to_string(),
    ]);
    if case.rtx {
        recv_args.push("--rtx".into());
        send_args.push("--rtx".into());
    }
    let mut recv = start_recv(&format!("pstream-recv-{tag}"), &recv_args, dir);
    let mut send = Proc::start(
        &format!("pstream-send-{tag}"),
        &pstream_bin(),
        &send_args,
        dir,
    );
    let send_code = send.wait(Duration::from_secs(case.seconds + 20));
    let recv_code = recv.wait(Duration::from_secs(20));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let video = relays[0].counts();
    drop(relays);
    let scan = match scanner {
        Some(t) => t.join().expect("scanner thread"),
        None => scan_y4m(&y4m, true),
    };
    let _ = std::fs::remove_file(&y4m);
    let sent = summary(&send_log, "send finished");
    let got = summary(&recv_log, "recv finished");
    let frames_sent = stat(sent, "video", "frames").expect("frames sent");
    let mut last_tc = None;
    let mut intact = 0;
    let mut worst_psnr = f64::MAX;
    for p in &scan.pictures {
        let Some(tc) = p.timecode else { continue };
        if let Some(psnr) = p.psnr {
            worst_psnr = worst_psnr.min(psnr);
            if psnr <= 40.0 {
                continue;
            }
        }
        if last_tc.is_some_and(|l| tc <= l) {
            continue;
        }
        last_tc = Some(tc);
        intact += 1;
    }
    let median_ms = latency_figures(got).map_or(f64::NAN, |l| l.0);
    let o = Outcome {
        frames_sent,
        intact,
        shown: scan.pictures.len() as u64,
        worst_psnr,
        median_ms,
        video,
        send_log: send_log.clone(),
        recv_log: recv_log.clone(),
    };
    eprintln!(
        "--- {tag}: {:.0}% loss, rtx {} ---\n{sent}\n{got}\nRELAY video: {}\n\
         PICTURES {tag}: {} intact of {} sent ({:.2}%), {} shown, worst PSNR {}, median latency {:.1} ms",
        case.loss * 100.0,
        case.rtx,
        o.video.report(),
        o.intact,
        o.frames_sent,
        o.share() * 100.0,
        o.shown,
        if o.worst_psnr == f64::MAX {
            "not compared".to_string()
        } else {
            format!("{:.1} dB", o.worst_psnr)
        },
        o.median_ms
    );
    o
}

/// At 2% loss on video RTP (retransmissions too) and 20 ± 10 ms of delay,
/// `--rtx` shows at least 99% of the pictures intact; without it clearly
/// fewer come out, each loss costing pictures until a PLI's IDR.
#[test]
fn rtx_repairs_2_percent_loss_through_the_relay() {
    let _turn = serial();
    let dir = temp_dir("rtx-2pct");
    let with = Case {
        loss: 0.02,
        rtx: true,
        seconds: 10,
        seed: 0x5eed_2701,
        compare: true,
        // 720p decoding on two shared cores falls behind now and then (the
        // link drops a unit: a PLI unrelated to loss); the table runs 720p.
        size: "640x360",
    };
    let on = run(&with, &dir);
    let off = run(
        &Case {
            rtx: false,
            ..with.clone()
        },
        &dir,
    );
    let got = summary(&on.recv_log, "recv finished");
    let sent = summary(&on.send_log, "send finished");
    assert!(on.video.dropped > 0, "the relay lost nothing");
    assert!(on.worst_psnr > 40.0 || on.intact == on.shown, "{got}");
    // The receiver asked, the sender answered, and losses came back.
    let nacks = stat(got, "video", "nack").expect("nack count");
    let repaired = stat(got, "video", "repaired").expect("repaired count");
    let rtx_sent = stat(sent, "video", "rtx-sent").expect("rtx-sent count");
    let nack_rcvd = stat(sent, "video", "nack-rcvd").expect("nack-rcvd count");
    assert!(nacks > 0.0 && nack_rcvd > 0.0, "{got}\n{sent}");
    assert!(rtx_sent > 0.0 && repaired > 0.0, "{got}\n{sent}");
    // The relay dropped some retransmissions too, so a few losses may need
    // a retry; every RTX received is accounted for.
    let rtx = stat(got, "video", "rtx").expect("rtx count");
    assert!(rtx <= rtx_sent, "{got}\n{sent}");
    assert!(
        on.share() >= 0.99,
        "with --rtx only {} of {} pictures intact:\n{got}",
        on.intact,
        on.frames_sent
    );
    assert!(
        off.share() + 0.03 <= on.share(),
        "without --rtx {:.1}% intact, with {:.1}%: not clearly lower",
        off.share() * 100.0,
        on.share() * 100.0
    );
    eprintln!(
        "RTX 2%: intact {:.2}% with --rtx, {:.2}% without; median latency {:.1} / {:.1} ms",
        on.share() * 100.0,
        off.share() * 100.0,
        on.median_ms,
        off.median_ms
    );
}

/// The GStreamer peer program (tests/peers/gst_rtx.py) with `args`.
fn gst_peer(name: &str, args: &[String], dir: &Path) -> Proc {
    require("gst-inspect-1.0");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/gst_rtx.py");
    let mut all = vec![script.display().to_string()];
    all.extend(args.iter().cloned());
    // The system python: it has the GStreamer bindings (python3-gi).
    Proc::start(name, Path::new("/usr/bin/python3"), &all, dir)
}

/// The `RESULT {json}` line of the GStreamer peer, parsed.
fn gst_result(p: &Proc) -> serde_json::Value {
    let out = p.stdout();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT from {}:\n{out}\n{}", p.name(), p.stderr()));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key)
        .and_then(|n| n.as_f64())
        .unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// GStreamer's rtpbin with retransmission (rtprtxreceive through
/// `request-aux-receiver`, AVPF, `do-retransmission=true`) receives
/// `pstream send --rtx` through the relay at 2%: it NACKs, pstream
/// answers, rtprtxreceive takes the RTX packets and the pictures decode.
#[test]
fn gstreamer_rtpbin_with_retransmission_receives_pstream_send_rtx() {
    let _turn = serial();
    let dir = temp_dir("rtx-gst-recv");
    let seconds = 10;
    let (sbase, rbase) = two_bases();
    let relays = relay_path(sbase, rbase, 0.02, 0x5eed_6571, seconds);
    let mut gst = gst_peer(
        "gst-recv",
        &[
            "recv".into(),
            "--port-base".into(),
            rbase.to_string(),
            "--seconds".into(),
            (seconds + 4).to_string(),
        ],
        &dir,
    );
    assert!(
        gst.wait_for_output("READY", Duration::from_secs(30)),
        "the GStreamer receiver did not start:\n{}",
        gst.stderr()
    );
    let send_args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--size",
        "640x360",
        "--audio",
        "none",
        "--rtx",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--port-base".into(),
        sbase.to_string(),
        "--duration".into(),
        seconds.to_string(),
    ])
    .collect();
    let mut send = Proc::start("pstream-send", &pstream_bin(), &send_args, &dir);
    let send_code = send.wait(Duration::from_secs(seconds + 20));
    let gst_code = gst.wait(Duration::from_secs(20));
    let send_log = send.stderr();
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    let video = relays[0].counts();
    drop(relays);
    let r = gst_result(&gst);
    assert_eq!(
        gst_code,
        Some(0),
        "GStreamer receiver failed: {r}\n{}",
        gst.stderr()
    );
    let sent = summary(&send_log, "send finished");
    eprintln!("{sent}\nRELAY video: {}\nGSTREAMER {r}", video.report());
    let frames = stat(sent, "video", "frames").expect("frames");
    assert!(video.dropped > 0, "the relay lost nothing");
    assert!(
        stat(sent, "video", "nack-rcvd").unwrap_or(0.0) > 0.0
            && stat(sent, "video", "rtx-sent").unwrap_or(0.0) > 0.0,
        "pstream got no NACK or sent no RTX: {sent}"
    );
    // GStreamer's own counters: RTX packets taken and requests answered.
    assert!(num(&r, "num-rtx-packets") > 0.0, "{r}");
    assert!(num(&r, "jb-rtx-success-count") > 0.0, "{r}");
    assert_eq!(
        r.get("size").and_then(|s| s.as_str()),
        Some("640x360"),
        "{r}"
    );
    assert!(
        num(&r, "decoded") >= frames * 0.9,
        "GStreamer decoded {} of {frames} pictures: {r}",
        num(&r, "decoded")
    );
}

/// GStreamer's rtpbin with rtprtxsend (through `request-aux-sender`, AVPF)
/// sends to `pstream recv --rtx` through the relay at 2%: recv NACKs,
/// GStreamer resends, recv repairs and writes the pictures.
#[test]
fn pstream_recv_rtx_repairs_a_gstreamer_rtprtxsend_sender() {
    let _turn = serial();
    let dir = temp_dir("rtx-gst-send");
    let seconds = 10;
    let (sbase, rbase) = two_bases();
    let relays = relay_path(sbase, rbase, 0.02, 0x5eed_6572, seconds);
    let y4m = dir.join("video.y4m");
    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--audio-out",
        "null",
        "--rtx",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--port-base".into(),
        rbase.to_string(),
        "--video-out".into(),
        format!("y4m:{}", y4m.display()),
        "--duration".into(),
        (seconds + 8).to_string(),
    ])
    .collect();
    let mut recv = start_recv("pstream-recv", &recv_args, &dir);
    let mut gst = gst_peer(
        "gst-send",
        &[
            "send".into(),
            "--port-base".into(),
            sbase.to_string(),
            "--seconds".into(),
            seconds.to_string(),
        ],
        &dir,
    );
    let gst_code = gst.wait(Duration::from_secs(seconds + 30));
    recv.signal("TERM");
    let recv_code = recv.wait(Duration::from_secs(20));
    let recv_log = recv.stderr();
    let video = relays[0].counts();
    drop(relays);
    let r = gst_result(&gst);
    assert_eq!(
        gst_code,
        Some(0),
        "GStreamer sender failed: {r}\n{}",
        gst.stderr()
    );
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let got = summary(&recv_log, "recv finished");
    eprintln!("{got}\nRELAY video: {}\nGSTREAMER {r}", video.report());
    let scan = scan_y4m(&y4m, false);
    let _ = std::fs::remove_file(&y4m);
    let frames = num(&r, "frames");
    assert!(video.dropped > 0, "the relay lost nothing");
    assert!(num(&r, "num-rtx-requests") > 0.0, "{r}");
    assert!(num(&r, "num-rtx-packets") > 0.0, "{r}");
    let repaired = stat(got, "video", "repaired").expect("repaired");
    assert!(repaired > 0.0, "nothing repaired: {got}");
    assert_eq!((scan.width, scan.height), (640, 360));
    // Pictures are only written clean (recv waits for an IDR after any
    // damage); with the losses repaired nearly all of them come out.
    let shown = scan.pictures.len() as f64;
    eprintln!("PICTURES gst rtprtxsend: {shown} of {frames} written");
    assert!(
        shown >= frames * 0.97,
        "only {shown} of {frames} pictures written: {got}"
    );
}

/// An RTCP compound of an empty RR and a generic NACK (RFC 4585 §6.2.1)
/// for `seqs` of `media_ssrc`, one FCI entry per sequence number.
fn nack(media_ssrc: u32, seqs: &[u16]) -> Vec<u8> {
    let me = 0x5eed_0002u32.to_be_bytes();
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&me);
    p.extend_from_slice(&[0x81, 205]);
    p.extend_from_slice(&(2 + seqs.len() as u16).to_be_bytes());
    p.extend_from_slice(&me);
    p.extend_from_slice(&media_ssrc.to_be_bytes());
    for s in seqs {
        p.extend_from_slice(&s.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
    }
    p
}

/// What arrived on the video RTP port: (SSRC, highest sequence number) of
/// the media, and bytes of media (payload type 96) and of RTX (98).
#[derive(Default)]
struct Seen {
    media_ssrc: AtomicU32,
    highest: AtomicU32,
    media_bytes: AtomicU64,
    rtx_bytes: AtomicU64,
}

fn watch(socket: UdpSocket, seen: &Seen, stop: &AtomicBool) {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        if n < 12 || buf[0] >> 6 != 2 {
            continue;
        }
        if buf[1] & 0x7f == 98 {
            seen.rtx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            seen.media_bytes.fetch_add(n as u64, Ordering::Relaxed);
            let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
            seen.media_ssrc.store(ssrc, Ordering::Relaxed);
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            seen.highest.store(u32::from(seq), Ordering::Relaxed);
        }
    }
}

/// `pstream send --rtx` into sockets on 127.0.0.1; 1.5 s after its first
/// packet, 1000 NACKs over 2 s from `from` to its video RTCP port, each
/// asking for the last 200 packets and 50 never sent. Returns its summary
/// and what came out on the video port.
fn nack_flood(from: &str, name: &str) -> (String, Arc<Seen>) {
    let dir = temp_dir(name);
    let base = free_port_base();
    let video = UdpSocket::bind(("127.0.0.1", base)).expect("bind video RTP");
    let _others: Vec<UdpSocket> = (1..4)
        .map(|i| UdpSocket::bind(("127.0.0.1", base + i)).expect("bind"))
        .collect();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (seen, stop) = (seen.clone(), stop.clone());
        move || watch(video, &seen, &stop)
    });
    let args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--size",
        "640x360",
        "--audio",
        "none",
        "--duration",
        "6",
        "--rtx",
        "--port-base",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([base.to_string()])
    .collect();
    let mut send = Proc::start("pstream-send", &pstream_bin(), &args, &dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.media_ssrc.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let media_ssrc = seen.media_ssrc.load(Ordering::Relaxed);
    assert_ne!(
        media_ssrc,
        0,
        "no RTP from pstream send:\n{}",
        send.stderr()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let socket = UdpSocket::bind((from, 0)).expect("bind the flooding socket");
    let to: SocketAddr = format!("127.0.0.1:{}", base + 5).parse().expect("addr");
    let start = Instant::now();
    for i in 0..1000u32 {
        let due = start + Duration::from_millis(u64::from(i) * 2);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let top = seen.highest.load(Ordering::Relaxed) as u16;
        let seqs: Vec<u16> = (0..250u16)
            .map(|k| top.wrapping_sub(199).wrapping_add(k))
            .collect();
        // 64 FCI entries per NACK are read; the rest counted as dropped.
        for chunk in seqs.chunks(64) {
            let _ = socket.send_to(&nack(media_ssrc, chunk), to);
        }
    }
    let code = send.wait(Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    let log = send.stderr();
    assert_eq!(code, Some(0), "pstream send:\n{log}");
    (summary(&log, "send finished").to_string(), seen)
}

/// A NACK flood from the peer's own address (every recent packet asked
/// for 250 times a second, and packets never sent): retransmissions stay
/// within their share of the stream (256 KiB at once, then as much as the
/// media), the rest and the never-sent ones are dropped and counted.
#[test]
fn a_nack_flood_from_the_peer_is_held_to_the_rtx_share() {
    let _turn = serial();
    let (sent, seen) = nack_flood("127.0.0.1", "nack-flood-peer");
    let media = seen.media_bytes.load(Ordering::Relaxed) as f64;
    let rtx = seen.rtx_bytes.load(Ordering::Relaxed) as f64;
    eprintln!("{sent}\nvideo port: media {media} bytes, RTX {rtx} bytes");
    let st = |k| stat(&sent, "video", k).unwrap_or(0.0);
    assert!(st("nack-rcvd") > 10_000.0, "{sent}");
    assert!(st("rtx-sent") > 0.0, "{sent}");
    assert!(
        st("rtx-missing") > 0.0,
        "never-sent packets not counted: {sent}"
    );
    assert!(
        st("rtx-limited") + st("rtx-suppressed") > 0.0,
        "nothing held back: {sent}"
    );
    // 2 bytes of OSN per RTX packet on top of the media they carry.
    assert!(
        rtx <= 256.0 * 1024.0 + media + 2.0 * st("rtx-sent"),
        "{rtx} RTX bytes for {media} media bytes: {sent}"
    );
}

/// The same flood from another address: dropped and counted, nothing resent.
#[test]
fn nacks_from_another_address_are_not_answered() {
    let _turn = serial();
    let (sent, seen) = nack_flood("127.0.0.2", "nack-flood-rogue");
    eprintln!("{sent}");
    assert_eq!(seen.rtx_bytes.load(Ordering::Relaxed), 0, "{sent}");
    assert_eq!(stat(&sent, "video", "rtx-sent"), Some(0.0), "{sent}");
    assert!(
        stat(&sent, "video", "not-peer").unwrap_or(0.0) >= 3000.0,
        "{sent}"
    );
}

/// Bad RTX at `pstream recv --rtx` from the peer's own address while it
/// receives a clean stream: RTX packets of strangers' SSRCs with random
/// OSNs (packets never NACKed), RTX too short for an OSN, and RTX for
/// packets far ahead of the stream. All dropped and counted, none repairs
/// or damages a picture; the same from another host is `not-peer`.
#[test]
fn garbage_rtx_is_dropped_and_counted_and_never_shown() {
    let _turn = serial();
    let dir = temp_dir("rtx-garbage");
    let base = free_port_base();
    let y4m = dir.join("video.y4m");
    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--audio-out",
        "null",
        "--rtx",
        "--duration",
        "9",
        "--port-base",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        base.to_string(),
        "--video-out".into(),
        format!("y4m:{}", y4m.display()),
    ])
    .collect();
    let mut recv = start_recv("pstream-recv", &recv_args, &dir);
    let send_args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--size",
        "640x360",
        "--audio",
        "none",
        "--duration",
        "5",
        "--port-base",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([base.to_string()])
    .collect();
    let mut send = Proc::start("pstream-send", &pstream_bin(), &send_args, &dir);
    std::thread::sleep(Duration::from_millis(1000));
    let to: SocketAddr = format!("127.0.0.1:{base}").parse().expect("addr");
    let peer = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
    let rogue = UdpSocket::bind(("127.0.0.2", 0)).expect("bind 127.0.0.2");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut from_peer, mut from_rogue) = (0u64, 0u64);
    for i in 0..600u32 {
        let r = next();
        let mut p = vec![0x80, 98];
        p.extend_from_slice(&(i as u16).to_be_bytes());
        p.extend_from_slice(&(r as u32).to_be_bytes());
        p.extend_from_slice(&((r >> 32) as u32).to_be_bytes());
        match i % 3 {
            // A random OSN and payload.
            0 => p.extend((0..200).map(|_| next() as u8)),
            // Too short to hold an OSN.
            1 => p.push(0x42),
            // An OSN just ahead of the stream (never sent yet).
            _ => {
                p.extend_from_slice(&(r as u16 | 0x8000).to_be_bytes());
                p.extend_from_slice(&[0x7c, 0x85, 0xde, 0xad]);
            }
        }
        if i % 5 == 4 {
            let _ = rogue.send_to(&p, to);
            from_rogue += 1;
        } else {
            let _ = peer.send_to(&p, to);
            from_peer += 1;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let send_code = send.wait(Duration::from_secs(20));
    let recv_code = recv.wait(Duration::from_secs(20));
    let log = recv.stderr();
    assert_eq!(send_code, Some(0), "pstream send:\n{}", send.stderr());
    assert_eq!(recv_code, Some(0), "pstream recv:\n{log}");
    let sent_frames =
        stat(summary(&send.stderr(), "send finished"), "video", "frames").expect("frames");
    let got = summary(&log, "recv finished");
    eprintln!(
        "{got}\ngarbage RTX: {from_peer} from the peer's address, {from_rogue} from 127.0.0.2"
    );
    let scan = scan_y4m(&y4m, true);
    let _ = std::fs::remove_file(&y4m);
    let st = |k| stat(got, "video", k).unwrap_or(0.0);
    assert_eq!(st("rtx"), from_peer as f64, "{got}");
    assert_eq!(st("rtx-dropped"), from_peer as f64, "{got}");
    assert_eq!(st("repaired"), 0.0, "{got}");
    assert!(st("not-peer") >= from_rogue as f64, "{got}");
    assert_eq!(st("discarded"), 0.0, "{got}");
    let worst = scan
        .pictures
        .iter()
        .filter_map(|p| p.psnr)
        .fold(f64::MAX, f64::min);
    assert!(worst > 40.0, "a damaged picture was shown ({worst:.1} dB)");
    assert!(
        scan.pictures.len() as f64 >= sent_frames * 0.97,
        "{} of {sent_frames} pictures: {got}",
        scan.pictures.len()
    );
}

/// Issue 17's must-show 1: 720p30 through the relay at 1%, 2% and 5%
/// random loss of video RTP (retransmissions included) with 20 ± 10 ms of
/// delay, with and without `--rtx`, plus a lossless baseline of each for
/// the added median latency. Long (7 runs × `PSTREAM_RTX_SECONDS`, default
/// 60 s), so ignored; run it by hand:
///
/// ```sh
/// PSTREAM_RTX_SECONDS=60 cargo test -p pstream --test rtx must_show_1_table \
///     -- --ignored --nocapture
/// ```
#[test]
#[ignore]
fn must_show_1_table() {
    let _turn = serial();
    let seconds = std::env::var("PSTREAM_RTX_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = temp_dir("rtx-table");
    let case = |loss: f64, rtx: bool| Case {
        loss,
        rtx,
        seconds,
        seed: 0x5eed_1700 ^ (loss * 1000.0) as u64,
        compare: false,
        size: "1280x720",
    };
    let mut rows = Vec::new();
    let mut base = [f64::NAN; 2];
    for (i, rtx) in [false, true].into_iter().enumerate() {
        base[i] = run(&case(0.0, rtx), &dir).median_ms;
    }
    for loss in [0.01, 0.02, 0.05] {
        for (i, rtx) in [false, true].into_iter().enumerate() {
            let o = run(&case(loss, rtx), &dir);
            let got = summary(&o.recv_log, "recv finished").to_string();
            rows.push(format!(
                "| {:.0}% | {} | {} / {} ({:.2}%) | {:.1} ms | {:+.1} ms | dropped {} | pli {} nack {} repaired {} unrepaired {} |",
                loss * 100.0,
                if rtx { "--rtx" } else { "no" },
                o.intact,
                o.frames_sent,
                o.share() * 100.0,
                o.median_ms,
                o.median_ms - base[i],
                o.video.dropped,
                stat(&got, "video", "pli").unwrap_or(0.0),
                stat(&got, "video", "nack").unwrap_or(0.0),
                stat(&got, "video", "repaired").unwrap_or(0.0),
                stat(&got, "video", "unrepaired").unwrap_or(0.0),
            ));
        }
    }
    eprintln!(
        "TABLE ({seconds} s each, 720p30, 20±10 ms; baseline median {:.1} ms without --rtx, {:.1} ms with)\n\
         | loss | rtx | intact / sent | median latency | added | relay | recv |\n|---|---|---|---|---|---|---|\n{}",
        base[0],
        base[1],
        rows.join("\n")
    );
}
