//! `pstream send` into `pstream recv` on loopback: every frame arrives, the
//! capture-to-decoded latency at 1280x720@30, and a sender killed and
//! restarted mid-stream is picked up again without restarting the receiver.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::video::{latency_figures, scan_y4m, stat, summary, y4m_frames_so_far};
use common::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn recv_args(base: u16, y4m: &Path, wav: &Path, secs: u64) -> Vec<String> {
    args(&[
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--audio-out",
        &format!("wav:{}", wav.display()),
        "--duration",
        &secs.to_string(),
        "--timecode",
    ])
}

fn send_args(base: u16, secs: u64) -> Vec<String> {
    args(&[
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--duration",
        &secs.to_string(),
    ])
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[test]
fn every_frame_arrives_and_latency_is_reported() {
    const SECONDS: u64 = 8;
    let _turn = serial();
    let dir = temp_dir("send-to-recv");
    let base = free_port_base();
    let (y4m, wav) = (dir.join("video.y4m"), dir.join("audio.wav"));
    let mut recv = start_recv(
        "pstream-recv",
        &recv_args(base, &y4m, &wav, SECONDS + 5),
        &dir,
    );
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &send_args(base, SECONDS),
        &dir,
    );
    let send_code = send.wait(Duration::from_secs(SECONDS + 15));
    let recv_code = recv.wait(Duration::from_secs(15));
    let (send_log, recv_log) = (send.stderr(), recv.stderr());
    assert_eq!(send_code, Some(0), "pstream send failed:\n{send_log}");
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let sent = summary(&send_log, "send finished");
    let got = summary(&recv_log, "recv finished");
    eprintln!("{sent}\n{got}");

    // Every frame sent arrives and is decoded; nothing lost, nothing discarded.
    let frames_sent = stat(sent, "video", "frames").expect("send frame count");
    assert!(
        frames_sent >= (SECONDS * 30 * 9 / 10) as f64,
        "pstream sent only {frames_sent} frames in {SECONDS} s:\n{send_log}"
    );
    assert_eq!(
        stat(got, "video", "frames"),
        Some(frames_sent),
        "frames sent vs decoded"
    );
    for (stream, key) in [
        ("video", "lost"),
        ("video", "late"),
        ("video", "discarded"),
        ("audio", "lost"),
        ("audio", "concealed"),
    ] {
        assert_eq!(stat(got, stream, key), Some(0.0), "{stream} {key}: {got}");
    }

    // Capture-to-decoded latency at 1280x720@30.
    let (p50, p95, p99, max) = latency_figures(got).expect("latency figures in the summary");
    eprintln!(
        "LATENCY 1280x720@30 capture-to-decoded: median {p50} ms, p95 {p95} ms, p99 {p99} ms, max {max} ms"
    );
    assert!(0.0 < p50 && p50 < 200.0, "median latency {p50} ms");
    assert!(p50 <= p95 && p95 <= p99 && p99 <= max);

    // The Y4M holds every frame, each whole: its timecode reads and it
    // matches the test pattern the sender rendered.
    let scan = scan_y4m(&y4m, true);
    assert_eq!((scan.width, scan.height, scan.fps), (1280, 720, (30, 1)));
    assert_eq!(scan.pictures.len() as f64, frames_sent);
    let worst = scan
        .pictures
        .iter()
        .map(|p| {
            p.psnr
                .unwrap_or_else(|| panic!("picture {} has no timecode", p.index))
        })
        .fold(f64::MAX, f64::min);
    eprintln!("worst luma PSNR against the source pattern: {worst:.1} dB");
    assert!(worst > 40.0, "a picture is damaged: {worst:.1} dB");
    let _ = std::fs::remove_file(&y4m);
}

#[test]
fn receiver_resumes_after_the_sender_is_killed_and_restarted() {
    let _turn = serial();
    let dir = temp_dir("send-restart");
    let base = free_port_base();
    let (y4m, wav) = (dir.join("video.y4m"), dir.join("audio.wav"));
    let mut recv = start_recv("pstream-recv", &recv_args(base, &y4m, &wav, 14), &dir);
    let mut first = Proc::start("pstream-send-1", &pstream_bin(), &send_args(base, 60), &dir);

    // Let the first sender run, then kill it without a BYE.
    let wait_frames = |n: u64, limit: Duration| {
        let deadline = Instant::now() + limit;
        while y4m_frames_so_far(&y4m, 1280, 720) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        y4m_frames_so_far(&y4m, 1280, 720)
    };
    let before = wait_frames(90, Duration::from_secs(10));
    assert!(
        before >= 90,
        "only {before} frames before the kill:\n{}",
        recv.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    let killed_at = Instant::now();
    let frames_at_kill = y4m_frames_so_far(&y4m, 1280, 720);

    // A new sender: new SSRC, sequence and timestamp bases.
    let restart_unix = unix_micros();
    let restarted_at = Instant::now();
    let mut second = Proc::start("pstream-send-2", &pstream_bin(), &send_args(base, 5), &dir);
    // Watch the receiver's output grow: (when, frames written).
    let mut growth: Vec<(Instant, u64)> = Vec::new();
    let deadline = restarted_at + Duration::from_secs(8);
    let mut last = frames_at_kill;
    while Instant::now() < deadline {
        let n = y4m_frames_so_far(&y4m, 1280, 720);
        if n != last {
            growth.push((Instant::now(), n));
            last = n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let send_code = second.wait(Duration::from_secs(10));
    assert_eq!(
        send_code,
        Some(0),
        "second sender failed:\n{}",
        second.stderr()
    );
    let recv_code = recv.wait(Duration::from_secs(15));
    let recv_log = recv.stderr();
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let got = summary(&recv_log, "recv finished");
    let sent2 = summary(&second.stderr(), "send finished").to_string();
    eprintln!("{got}\n{sent2}");

    // The first picture of the new sender is the first one whose capture
    // time is after the restart; it appeared in the file at `resumed`.
    let scan = scan_y4m(&y4m, false);
    let first_new = scan
        .pictures
        .iter()
        .find(|p| p.timecode.is_some_and(|tc| tc >= restart_unix))
        .unwrap_or_else(|| panic!("no picture from the restarted sender:\n{recv_log}"))
        .index;
    let resumed = growth
        .iter()
        .find(|(_, n)| *n > first_new)
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("picture {first_new} never appeared while watching"));
    let resume = resumed.duration_since(restarted_at);
    let outage = resumed.duration_since(killed_at);
    eprintln!(
        "RESTART: receiver showed the new sender's first picture {} ms after it started \
         ({} ms after the old one was killed); {} pictures before, {} after",
        resume.as_millis(),
        outage.as_millis(),
        first_new,
        scan.pictures.len() as u64 - first_new
    );
    assert!(
        resume < Duration::from_secs(2),
        "resumed only after {resume:?}:\n{recv_log}"
    );
    assert_eq!(stat(got, "video", "restarts"), Some(1.0), "{got}");
    assert_eq!(stat(got, "audio", "restarts"), Some(1.0), "{got}");
    // Every picture is whole and every one after the restart is newer than it.
    assert!(scan.pictures.iter().all(|p| p.timecode.is_some()));
    assert!(scan.pictures[first_new as usize..]
        .iter()
        .all(|p| p.timecode.is_some_and(|tc| tc >= restart_unix)));
    // The new sender's pictures keep flowing to the end: at most what the
    // takeover (source timeout) cost is missing.
    let sent_after = stat(&sent2, "video", "frames").expect("frames");
    let shown_after = (scan.pictures.len() as u64 - first_new) as f64;
    assert!(
        shown_after >= sent_after - 30.0 * 2.0,
        "only {shown_after} of the new sender's {sent_after} frames shown"
    );
    let _ = std::fs::remove_file(&y4m);
}

/// No start-up stall on `--video-out y4m:-`: a reader of recv's stdout
/// timestamps each picture as it comes out and reads its timecode. Before,
/// recv held its first ten pictures until it had estimated the frame rate
/// (nine intervals, 300 ms at 30 fps) and wrote them in a burst. The bar is
/// a correctness one, not a speed one: none of the first ten pictures may
/// come out later than three frame intervals past the run's median
/// (holding them for the rate would put the first at nine intervals).
#[test]
fn the_first_pictures_on_y4m_stdout_are_not_held_for_the_frame_rate() {
    use std::io::BufReader;
    use std::process::{Command, Stdio};

    const SECONDS: u64 = 3;
    const FPS: u64 = 30;
    let _turn = serial();
    let dir = temp_dir("startup-stall");
    let base = free_port_base();
    let stderr = std::fs::File::create(dir.join("recv.stderr")).expect("stderr file");
    let mut recv = Command::new(pstream_bin())
        .args(args(&[
            "recv",
            "--peer",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--video-out",
            "y4m:-",
            "--audio-out",
            "null",
            "--duration",
            &(SECONDS + 6).to_string(),
        ]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start pstream recv");
    let stdout = recv.stdout.take().expect("recv stdout");
    // (arrival in unix microseconds, timecode) of each picture, read as
    // recv writes it.
    let reader = std::thread::spawn(move || {
        let mut out: Vec<(u64, Option<u64>)> = Vec::new();
        let Ok(mut y4m) = pstream_mux::Y4mReader::new(BufReader::new(stdout), "y4m:-") else {
            return ((0, 0), out);
        };
        let f = y4m.header().format;
        let fps = (f.fps_num, f.fps_den);
        while let Ok(Some(data)) = y4m.read_frame() {
            let now = unix_micros();
            let luma = &data[..(f.width * f.height) as usize];
            let tc = pstream_capture::timecode::read_timecode_luma(
                luma,
                f.width as usize,
                f.width,
                f.height,
            );
            out.push((now, tc));
        }
        (fps, out)
    });
    let recv_log = dir.join("recv.stderr");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_lossy(&recv_log).contains("receiving from") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut send = Proc::start(
        "pstream-send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--size",
            "640x360",
            "--fps",
            &FPS.to_string(),
            "--audio",
            "none",
            "--duration",
            &SECONDS.to_string(),
        ]),
        &dir,
    );
    let send_code = send.wait(Duration::from_secs(SECONDS + 15));
    // recv stops at its --duration; killed by PID if it does not.
    let until = Instant::now() + Duration::from_secs(15);
    while recv.try_wait().ok().flatten().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = recv.kill();
    let _ = recv.wait();
    let (fps, pictures) = reader.join().expect("reader thread");
    // The header's rate, read off the first interval, is the sender's.
    assert_eq!(fps, (FPS as u32, 1), "Y4M header rate");
    assert_eq!(
        send_code,
        Some(0),
        "pstream send failed:\n{}",
        send.stderr()
    );
    let latencies: Vec<f64> = pictures
        .iter()
        .filter_map(|&(at, tc)| tc.map(|tc| at.saturating_sub(tc) as f64 / 1000.0))
        .collect();
    assert!(
        latencies.len() as u64 >= SECONDS * FPS * 9 / 10,
        "only {} pictures with a timecode came out:\n{}",
        latencies.len(),
        read_lossy(&recv_log)
    );
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let first: Vec<String> = latencies[..10].iter().map(|l| format!("{l:.1}")).collect();
    eprintln!(
        "STARTUP y4m:- latency of the first 10 pictures (ms): {}; median of {} pictures {median:.1} ms",
        first.join(" "),
        latencies.len()
    );
    let bar = median + 3.0 * 1000.0 / FPS as f64;
    assert!(
        latencies[..10].iter().all(|&l| l <= bar),
        "a picture of the first ten was held: {} ms against a median of {median:.1} ms",
        first.join(" ")
    );
}
