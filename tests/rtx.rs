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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

fn run(case: &Case, dir: &Path) -> Outcome {
    let tag = format!(
        "{}-{}",
        (case.loss * 1000.0).round(),
        if case.rtx { "rtx" } else { "plain" }
    );
    // send → relay on `sbase` → recv on `rbase`; recv's RTCP goes to
    // rbase+5/+7, where the relay passes it back to sbase+5/+7.
    let sbase = free_port_base();
    let rbase = loop {
        let b = free_port_base();
        if b.abs_diff(sbase) >= 10 {
            break b;
        }
    };
    let lossy = Impairment {
        loss: case.loss,
        // The first IDR arrives whole, so the first picture is frame 0
        // (what the PSNR comparison counts from) in both modes.
        clean_first: 40,
        stop_after: Duration::from_secs(case.seconds + 60),
        ..path_delay()
    };
    let mut relays = vec![Relay::start(addr(sbase), addr(rbase), lossy, case.seed)];
    for o in [1, 2, 3] {
        relays.push(Relay::start(
            addr(sbase + o),
            addr(rbase + o),
            path_delay(),
            case.seed ^ u64::from(o),
        ));
    }
    for o in [5, 7] {
        relays.push(Relay::start(
            addr(rbase + o),
            addr(sbase + o),
            path_delay(),
            case.seed ^ u64::from(o),
        ));
    }
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
         PICTURES {tag}: {} intact of {} sent ({:.2}%), {} shown, worst PSNR {:.1} dB, median latency {:.1} ms",
        case.loss * 100.0,
        case.rtx,
        o.video.report(),
        o.intact,
        o.frames_sent,
        o.share() * 100.0,
        o.shown,
        o.worst_psnr,
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
