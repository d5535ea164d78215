//! `pstream send` → seeded lossy relay → `pstream recv` on loopback.
//!
//! The relay drops 2% of the RTP packets, duplicates 1%, holds 2% back
//! 10–25 ms (reordering) and delays the rest 0–3 ms in order; RTCP passes
//! untouched both ways. The receiver must keep decoding, ask for keyframes,
//! show only clean pictures and be back within one keyframe interval of
//! each loss, and count exactly what the relay did.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::relay::{Impairment, Relay, RelayCounts};
use common::video::{scan_y4m, stat, summary};
use common::*;

/// How long pstream sends.
const SECONDS: u64 = 10;
/// Impairing stops this long after the first packet, so that the last
/// receiver report covers every loss and no loss is at the stream's end.
const IMPAIR_FOR: Duration = Duration::from_secs(7);
/// The sender's keyframe interval (its default).
const KEYINT: f64 = 2.0;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Outcome {
    send_log: String,
    recv_log: String,
    video: RelayCounts,
    audio: RelayCounts,
}

fn run(latency_ms: u64, seed: u64, dir: &std::path::Path) -> Outcome {
    // The sender sends to the relay on `sbase`; the relay forwards to the
    // receiver on `rbase`. The receiver's RTCP goes to its peer's +5/+7,
    // i.e. rbase+5/+7, where the relay passes it back to sbase+5/+7.
    let sbase = free_port_base();
    let lossy = Impairment {
        loss: 0.02,
        duplicate: 0.01,
        reorder: 0.02,
        jitter: Duration::from_millis(3),
        // The first IDR arrives whole, so the receiver starts at frame 0.
        clean_first: 40,
        stop_after: IMPAIR_FOR,
        ..Impairment::none()
    };
    let rbase = loop {
        let b = free_port_base();
        if b.abs_diff(sbase) >= 10 {
            break b;
        }
    };
    let forward = [
        (0, lossy.clone(), seed),
        (1, Impairment::none(), 0),
        (2, lossy, seed ^ 0xa0d10),
        (3, Impairment::none(), 0),
    ];
    let mut relays: Vec<Relay> = forward
        .iter()
        .map(|(o, imp, seed)| Relay::start(addr(sbase + o), addr(rbase + o), imp.clone(), *seed))
        .collect();
    for o in [5, 7] {
        relays.push(Relay::start(
            addr(rbase + o),
            addr(sbase + o),
            Impairment::none(),
            0,
        ));
    }
    let y4m = dir.join(format!("video-{latency_ms}.y4m"));
    let wav = dir.join(format!("audio-{latency_ms}.wav"));
    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &rbase.to_string(),
        "--latency",
        &latency_ms.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--audio-out",
        &format!("wav:{}", wav.display()),
        "--timecode",
        "--duration",
        &(SECONDS + 4).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut recv = start_recv(&format!("pstream-recv-{latency_ms}"), &recv_args, dir);
    let send_args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &sbase.to_string(),
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--keyint",
        &KEYINT.to_string(),
        "--duration",
        &SECONDS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut send = Proc::start(
        &format!("pstream-send-{latency_ms}"),
        &pstream_bin(),
        &send_args,
        dir,
    );
    let send_code = send.wait(Duration::from_secs(SECONDS + 15));
    let recv_code = recv.wait(Duration::from_secs(15));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let video = relays[0].counts();
    let audio = relays[2].counts();
    drop(relays);

    let sent = summary(&send_log, "send finished");
    let got = summary(&recv_log, "recv finished");
    eprintln!("--- latency {latency_ms} ms ---\n{sent}\n{got}");
    eprintln!("RELAY video: {}", video.report());
    eprintln!("RELAY audio: {}", audio.report());

    // Clean pictures only, and never a gap longer than a keyframe interval.
    let scan = scan_y4m(&y4m, true);
    let frames_sent = stat(sent, "video", "frames").expect("frames sent");
    let shown = scan.pictures.len() as f64;
    let tcs: Vec<u64> = scan
        .pictures
        .iter()
        .map(|p| {
            p.timecode
                .unwrap_or_else(|| panic!("picture {} has no timecode", p.index))
        })
        .collect();
    let worst_psnr = scan
        .pictures
        .iter()
        .filter_map(|p| p.psnr)
        .fold(f64::MAX, f64::min);
    let gaps: Vec<f64> = tcs
        .windows(2)
        .map(|w| (w[1] as f64 - w[0] as f64) / 1e6)
        .collect();
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    let outages: Vec<String> = gaps
        .iter()
        .filter(|&&g| g > 0.05)
        .map(|g| format!("{:.0}", g * 1000.0))
        .collect();
    eprintln!(
        "PICTURES latency {latency_ms}: {shown} of {frames_sent} shown, worst PSNR {worst_psnr:.1} dB, \
         {} outages (ms between clean pictures: {}), longest gap {:.0} ms",
        outages.len(),
        outages.join(" "),
        longest * 1000.0
    );
    assert!(tcs.windows(2).all(|w| w[1] > w[0]), "pictures out of order");
    assert!(
        worst_psnr > 40.0,
        "a damaged picture was shown ({worst_psnr:.1} dB)"
    );
    assert!(
        longest <= KEYINT,
        "no clean picture for {longest:.2} s, more than a keyframe interval"
    );
    assert!(
        shown >= frames_sent * 0.75,
        "only {shown} of {frames_sent} pictures shown:\n{got}"
    );
    let _ = std::fs::remove_file(&y4m);
    Outcome {
        send_log,
        recv_log,
        video,
        audio,
    }
}

/// The counts every latency must agree on.
fn check_common(o: &Outcome) {
    let sent = summary(&o.send_log, "send finished");
    let got = summary(&o.recv_log, "recv finished");
    assert!(
        o.video.dropped > 0 && o.audio.dropped > 0,
        "the relay lost nothing"
    );
    // Duplicates: every extra copy is seen and dropped.
    assert_eq!(
        stat(got, "video", "dup"),
        Some(o.video.duplicated as f64),
        "{got}"
    );
    assert_eq!(
        stat(got, "audio", "dup"),
        Some(o.audio.duplicated as f64),
        "{got}"
    );
    // The receiver report's cumulative loss counts packets never received,
    // late ones included as received: exactly what the relay dropped.
    assert_eq!(
        stat(sent, "video", "lost"),
        Some(o.video.dropped as f64),
        "{sent}"
    );
    assert_eq!(
        stat(sent, "audio", "lost"),
        Some(o.audio.dropped as f64),
        "{sent}"
    );
    // Losses asked for keyframes, and the sender got the requests.
    let pli = stat(got, "video", "pli").expect("pli count");
    let kf = stat(sent, "video", "kf-req").unwrap_or(0.0);
    assert!(pli > 0.0 && kf > 0.0, "pli {pli}, kf-req {kf}");
    assert!(
        kf <= pli,
        "the sender saw more requests ({kf}) than were sent ({pli})"
    );
    // Opus loss is concealed, one frame per lost packet.
    let lost_audio = stat(got, "audio", "lost").expect("audio lost");
    assert_eq!(stat(got, "audio", "concealed"), Some(lost_audio), "{got}");
}

#[test]
fn with_latency_50_reordering_is_repaired_and_losses_counted_exactly() {
    let _turn = serial();
    let dir = temp_dir("lossy-50");
    let o = run(50, 0x5eed_0050, &dir);
    check_common(&o);
    let got = summary(&o.recv_log, "recv finished");
    // A 50 ms buffer puts every held-back packet (≤ 25 ms) back in place:
    // the jitter buffer's losses are exactly the relay's drops, nothing late.
    for (stream, c) in [("video", &o.video), ("audio", &o.audio)] {
        assert!(c.overtaken > 0, "{stream}: nothing was reordered");
        assert_eq!(
            stat(got, stream, "lost"),
            Some(c.dropped as f64),
            "{stream}: {got}"
        );
        assert_eq!(stat(got, stream, "late"), Some(0.0), "{stream}: {got}");
    }
}

#[test]
fn with_latency_0_overtaken_packets_are_late_and_counted() {
    let _turn = serial();
    let dir = temp_dir("lossy-0");
    let o = run(0, 0x5eed_0000, &dir);
    check_common(&o);
    let got = summary(&o.recv_log, "recv finished");
    // Without a buffer, a packet that is overtaken is skipped as lost the
    // moment the later one arrives and counted late when it comes; the RR's
    // cumulative loss (checked above) still counts only the real drops.
    for (stream, c) in [("video", &o.video), ("audio", &o.audio)] {
        assert_eq!(
            stat(got, stream, "lost"),
            Some((c.dropped + c.overtaken) as f64),
            "{stream}: {got}"
        );
        assert_eq!(
            stat(got, stream, "late"),
            Some(c.overtaken as f64),
            "{stream}: {got}"
        );
    }
}

/// The relay's own impairments, with plain UDP sockets (no pstream): bursty
/// loss comes in bursts at about its mean rate, path delay stays within its
/// bounds, and the bottleneck drops what its queue cannot hold, never
/// queueing longer than its limit, and stops dropping once its rate is raised.
#[test]
fn relay_bursts_delays_and_caps_as_configured() {
    use common::relay::{Bottleneck, GilbertElliott, QueueLimit};
    use std::time::Instant;

    let base = free_port_base();
    let rx = std::net::UdpSocket::bind(addr(base + 1)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let tx = std::net::UdpSocket::bind(addr(base + 2)).expect("bind sender");
    let cap = Bottleneck::new(2_000_000, QueueLimit::Time(Duration::from_millis(100)));
    let ge = GilbertElliott::with_mean(0.05, 4.0);
    let imp = Impairment {
        burst: Some(ge),
        delay: Duration::from_millis(20),
        delay_jitter: Duration::from_millis(10),
        bottleneck: Some(cap.clone()),
        clean_first: 0,
        stop_after: Duration::from_secs(60),
        ..Impairment::none()
    };
    let relay = Relay::start(addr(base), addr(base + 1), imp, 0x5eed_b057);
    // 1000-byte RTP packets at 4 Mbit/s for 1 s (twice the cap), then the cap
    // goes up to 20 Mbit/s and another second follows at 4 Mbit/s.
    let receiver = std::thread::spawn(move || {
        let mut got: Vec<(u16, Instant)> = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = rx.recv_from(&mut buf) {
            if n >= 12 {
                got.push((u16::from_be_bytes([buf[2], buf[3]]), Instant::now()));
            }
        }
        got
    });
    let start = Instant::now();
    let mut sent_at = Vec::new();
    let mut dropped_after_raise = None;
    for i in 0..1000u16 {
        if i == 500 {
            // Let the queue drain, then raise the cap.
            std::thread::sleep(Duration::from_millis(150));
            cap.set_rate(20_000_000);
            dropped_after_raise = Some(cap.stats().dropped);
        }
        let due = start + Duration::from_millis(2 * i as u64 + if i >= 500 { 150 } else { 0 });
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut pkt = vec![0u8; 1000];
        pkt[0] = 0x80;
        pkt[1] = 96;
        pkt[2..4].copy_from_slice(&i.to_be_bytes());
        pkt[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        sent_at.push(Instant::now());
        tx.send_to(&pkt, addr(base)).expect("send");
    }
    let got = receiver.join().expect("receiver thread");
    let c = relay.counts();
    drop(relay);
    let stats = cap.stats();
    eprintln!("RELAY self-test: {}", c.report());
    eprintln!(
        "BOTTLENECK: forwarded {} dropped {} max-queue-ms {:.1}",
        stats.forwarded,
        stats.dropped,
        stats.max_queue_delay.as_secs_f64() * 1e3
    );
    // Every packet is accounted for.
    assert_eq!(c.received, 1000);
    assert_eq!(got.len() as u64, c.received - c.dropped - c.cap_dropped);
    assert_eq!(stats.dropped, c.cap_dropped);
    // Bursty loss: near its mean rate, with bursts longer than one packet.
    let rate = c.dropped as f64 / c.received as f64;
    assert!((0.01..0.12).contains(&rate), "burst loss rate {rate}");
    assert!(c.longest_burst >= 2, "no burst: {}", c.report());
    // Path delay within 20 ± 10 ms as drawn; nothing arrives before 10 ms.
    let (lo, hi) = (
        c.min_path_delay.expect("min"),
        c.max_path_delay.expect("max"),
    );
    assert!(lo >= Duration::from_millis(10) && hi <= Duration::from_millis(30));
    assert!(hi - lo >= Duration::from_millis(10), "delay does not vary");
    for &(seq, at) in &got {
        let d = at.duration_since(sent_at[seq as usize]);
        assert!(d >= Duration::from_millis(10), "packet {seq} after {d:?}");
    }
    // In order (one SSRC): nothing overtaken.
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "reordered");
    assert_eq!(c.overtaken, 0);
    // The cap: about half of the first second dropped, the queue at its
    // limit but never past it, and nothing dropped after the raise.
    let before = dropped_after_raise.expect("raised");
    assert!(before > 100, "cap dropped only {before}");
    assert_eq!(stats.dropped, before, "dropped after the cap went up");
    assert!(stats.max_queue_delay <= Duration::from_millis(100));
    assert!(stats.max_queue_delay >= Duration::from_millis(80));
    assert_eq!(c.max_queue_delay, stats.max_queue_delay);
    assert!(!stats.timeline.is_empty());
}
