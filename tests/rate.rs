//! `pstream send --bitrate auto` through a bandwidth cap: send → relay with
//! a bottleneck (a link of settable rate behind a drop-tail queue of
//! 125 kB: 250 ms at 4 Mbit/s, 1 s at 1 Mbit/s) → `pstream recv`, the cap
//! stepping 4 → 1 → 4 Mbit/s (issue 17's Must-show 4).
//!
//! The video is `test:noise` at 720p30: pstream's timecoded pattern with
//! fresh grain in every frame, which openh264 needs a few Mbit/s for, so
//! the 1 Mbit/s cap binds while recv still reads each picture's age off
//! its timecode. recv's REMB (every 100 ms while a queue builds) steers
//! the sender within a few hundred milliseconds of the step.
//!
//! `RATE_SECONDS` lengthens the phases (the default 6 s each keeps the test
//! short); `RATE_TRACE=1` prints the timeline per 500 ms (target, queue,
//! picture age, link rate).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::relay::{Bottleneck, Impairment, QueueLimit, Relay};
use common::video::{latency_figures, summary};
use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Seconds of the UTC day of a log line's timestamp (tracing's
/// `2026-12-07T18:04:39.578131Z`).
fn log_time(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let time = t.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Now in seconds of the UTC day, as the logs write it.
fn day_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() % 86_400.0)
}

/// (seconds from `origin`, target bit/s) of each `video bitrate target`
/// line in send's log.
fn targets(log: &str, origin: f64) -> Vec<(f64, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("video bitrate target ").nth(1)?;
            let kbps: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((log_time(l)? - origin, kbps * 1000))
        })
        .collect()
}

/// The target in force at `t` (the last one set at or before it).
fn target_at(ts: &[(f64, u64)], t: f64) -> Option<u64> {
    ts.iter().rfind(|(at, _)| *at <= t).map(|(_, b)| *b)
}

/// (seconds from `origin`, max picture age in ms) of recv's stats lines.
fn ages(log: &str, origin: f64) -> Vec<(f64, f64)> {
    log.lines()
        .filter(|l| l.contains("recv:"))
        .filter_map(|l| Some((log_time(l)? - origin, latency_figures(l)?.3)))
        .collect()
}

#[test]
fn auto_bitrate_follows_a_cap_stepping_down_and_up() {
    let _turn = serial();
    let dir = temp_dir("rate-cap");
    let phase: u64 = std::env::var("RATE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let seconds = 3 * phase;
    let sbase = free_port_base();
    let rbase = loop {
        let b = free_port_base();
        if b.abs_diff(sbase) >= 10 {
            break b;
        }
    };
    let cap = Bottleneck::new(4_000_000, QueueLimit::Bytes(125_000));
    let path = Impairment::delayed(Duration::from_millis(20), Duration::ZERO);
    let video = Impairment {
        bottleneck: Some(cap.clone()),
        ..path.clone()
    };
    // The sender's RTCP shares the capped link with its video, as on a
    // real path: its SRs wait in the queue, so the round trip the RRs give
    // shows the queue. recv's RTCP (RRs and REMBs) comes back uncapped.
    let _relays = [
        Relay::start(addr(sbase), addr(rbase), video.clone(), 1),
        Relay::start(addr(sbase + 1), addr(rbase + 1), video, 2),
        Relay::start(addr(rbase + 5), addr(sbase + 5), path.clone(), 3),
    ];
    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--audio-out",
        "null",
        "--timecode",
        "--port-base",
        &rbase.to_string(),
        "--duration",
        &(seconds + 4).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut recv = start_recv("pstream-recv-rate", &recv_args, &dir);
    let send_args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--audio",
        "none",
        "--video",
        "test:noise",
        "--size",
        "1280x720",
        "--bitrate",
        "auto",
        "--port-base",
        &sbase.to_string(),
        "--duration",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut send = Proc::start("pstream-send-rate", &pstream_bin(), &send_args, &dir);
    // Times count from the first packet through the link, as its timeline.
    let waited = Instant::now();
    while cap.stats().forwarded == 0 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let origin = day_now();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(phase));
    cap.set_rate(1_000_000);
    let down = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(phase));
    cap.set_rate(4_000_000);
    let up = start.elapsed().as_secs_f64();
    let send_code = send.wait(Duration::from_secs(seconds + 20));
    let recv_code = recv.wait(Duration::from_secs(20));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");

    let ts = targets(&send_log, origin);
    let age = ages(&recv_log, origin);
    let link = cap.stats();
    let queue_at = |from: f64, to: f64| {
        link.timeline
            .iter()
            .filter(|(w, ..)| (from..to).contains(&w.as_secs_f64()))
            .map(|(_, d, _)| d.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max)
    };
    // recv's stats line comes once a second: the age of a half second is
    // that of the line covering it.
    let age_at = |t: f64| {
        age.iter()
            .find(|(at, _)| *at > t && *at <= t + 1.0)
            .map_or(f64::NAN, |(_, a)| *a)
    };
    if std::env::var_os("RATE_TRACE").is_some() {
        eprintln!("cap 4 Mbit/s, 1 Mbit/s at {down:.1} s, 4 Mbit/s at {up:.1} s");
        eprintln!("     t  target kbit/s  queue max ms  picture age max ms  link kbit/s");
        for h in 0..2 * seconds {
            let t = h as f64 / 2.0;
            let bytes: u64 = link
                .timeline
                .iter()
                .filter(|(w, ..)| (t..t + 0.5).contains(&w.as_secs_f64()))
                .map(|(.., b)| *b)
                .sum();
            eprintln!(
                "{:6.1} {:13.0} {:13.0} {:19.0} {:12.0}",
                t,
                target_at(&ts, t + 0.5).unwrap_or(0) as f64 / 1000.0,
                queue_at(t, t + 0.5),
                age_at(t),
                bytes as f64 * 8.0 / 500.0
            );
        }
        // Each move of the target and why (loss, queue, probe, remb).
        for l in send_log
            .lines()
            .filter(|l| l.contains("video bitrate target"))
        {
            if let (Some(t), Some(what)) = (log_time(l), l.split("target ").nth(1)) {
                eprintln!("{:6.1} s target {what}", t - origin);
            }
        }
        eprintln!(
            "dropped {} packets at the cap\n{}\n{}",
            link.dropped,
            summary(&send_log, "send finished"),
            summary(&recv_log, "recv finished")
        );
    }
    assert!(!ts.is_empty(), "no target in send's log:\n{send_log}");
    // The pattern is heavy enough for the 1 Mbit/s cap to bind: before the
    // step it ran well above that through the 4 Mbit/s link.
    let before: u64 = link
        .timeline
        .iter()
        .filter(|(w, ..)| (1.0..down).contains(&w.as_secs_f64()))
        .map(|(.., b)| *b)
        .sum();
    let before_bps = before as f64 * 8.0 / (down - 1.0);
    assert!(
        before_bps > 1_500_000.0,
        "only {before_bps} bit/s through the 4 Mbit/s link: the cap would not bind"
    );
    // Under the 1 Mbit/s cap within 5 s of the step down (and under the
    // 4 Mbit/s one within 5 s of the step up, trivially, unless it ran
    // away).
    let after_down = target_at(&ts, down + 5.0).unwrap_or(u64::MAX);
    assert!(
        after_down <= 1_000_000,
        "target {after_down} bit/s 5 s after the cap went to 1 Mbit/s: {ts:?}"
    );
    let after_up = target_at(&ts, up + 5.0).unwrap_or(u64::MAX);
    assert!(
        after_up <= 4_000_000,
        "target {after_up} bit/s 5 s after the cap went to 4 Mbit/s: {ts:?}"
    );
    // The relay's queue stays under a second throughout (its byte limit is
    // a second at 1 Mbit/s, so a full queue would show as 1 s).
    let worst = link.max_queue_delay;
    assert!(
        worst < Duration::from_millis(1000),
        "queue reached {worst:?}"
    );
    // No picture shown is more than a second old (capture to decoded, off
    // the timecode), over the whole run.
    let oldest = latency_figures(
        recv_log
            .lines()
            .rfind(|l| l.contains("recv finished"))
            .unwrap_or_default(),
    )
    .map(|f| f.3);
    assert!(
        oldest.is_some_and(|a| a < 1000.0),
        "oldest picture {oldest:?} ms:\n{recv_log}"
    );
    // The send stats line says the target and why it moved.
    assert!(
        send_log
            .lines()
            .any(|l| l.contains("send:") && l.contains(" rate ") && l.contains("M (")),
        "no rate on the stats line:\n{send_log}"
    );
}
