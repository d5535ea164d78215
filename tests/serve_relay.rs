//! `pstream serve --relay`: the recipe's ffmpeg publish into serve, passed
//! on as it arrives to real RTMP servers (two nginx-rtmp, an
//! `ffmpeg -listen 1`), one of them killed and restarted mid-stream; a
//! platform that stops reading; garbage URLs and garbage answers.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hls::{ffmpeg_publish, free_tcp_port, get_text, start_serve, wait_for};
use common::nginx::{start_nginx, wait_listening_ffmpeg};
use common::{require, serial, temp_dir, Proc};
use pstream_transport::rtmp::{ServerEvent, ServerSession};

/// Video frames of an FLV file, as ffprobe counts them (0 when unreadable).
fn video_frames(path: &Path) -> u64 {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or(0)
}

/// The recordings nginx made under `dir`/rec, oldest first.
fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir.join("rec"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| Some((e.metadata().ok()?.created().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Bytes of every file under `dir`/rec together.
fn recorded_bytes(dir: &Path) -> u64 {
    recordings(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// serve's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `ffmpeg -listen 1` receiving rtmp://127.0.0.1:`port`/live/x into `out` as FLV.
fn ffmpeg_listener(dir: &Path, port: u16, out: &Path) -> Proc {
    require("ffmpeg");
    let args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-listen",
        "1",
        "-i",
        &format!("rtmp://127.0.0.1:{port}/live/x"),
        "-c",
        "copy",
        // Each packet written as it comes, so the file's growth shows the relay's pace.
        "-flush_packets",
        "1",
        "-f",
        "flv",
        "-y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect();
    let p = Proc::start("ffmpeg-listen", Path::new("ffmpeg"), &args, dir);
    assert!(wait_listening_ffmpeg(port), "ffmpeg did not listen");
    p
}

/// The last media sequence number of serve's source playlist of `name`.
fn hls_sequence(http: u16, name: &str) -> Option<u64> {
    let text = get_text(http, &format!("/stream/{name}/source.m3u8"));
    let first: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    Some(first + common::hls::segments(&text).len() as u64)
}

/// Samples `sizes` every 250 ms for `span`; the longest time any of them did not grow.
fn longest_stall(span: Duration, sizes: &[&dyn Fn() -> u64]) -> Vec<Duration> {
    let start = Instant::now();
    let mut last: Vec<(u64, Instant)> = sizes.iter().map(|f| (f(), start)).collect();
    let mut worst = vec![Duration::ZERO; sizes.len()];
    while start.elapsed() < span {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        for (i, f) in sizes.iter().enumerate() {
            let v = f();
            if v != last[i].0 {
                last[i] = (v, now);
            }
            worst[i] = worst[i].max(now - last[i].1);
        }
    }
    worst
}

#[test]
fn one_publish_relayed_to_two_nginx_and_an_ffmpeg_listener_through_a_restart() {
    let _g = serial();
    let dir = temp_dir("serve-relay-three");
    let (dir_a, dir_b) = (dir.join("nginx-a"), dir.join("nginx-b"));
    let (port_a, port_b, port_f) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let nginx_a = start_nginx(&dir_a, port_a, "nginx-a");
    let _nginx_b = start_nginx(&dir_b, port_b, "nginx-b");
    let received = dir.join("listener.flv");
    let mut listener = ffmpeg_listener(&dir, port_f, &received);
    let relay_a = format!("show=rtmp://127.0.0.1:{port_a}/live/s3cretA");
    let relay_b = format!("show=rtmp://127.0.0.1:{port_b}/live/s3cretB");
    let relay_f = format!("show=rtmp://127.0.0.1:{port_f}/live/x");
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--relay",
            &relay_a,
            "--relay",
            &relay_b,
            "--relay",
            &relay_f,
        ],
    );
    let secs = 16;
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "show", "640x360", secs);
    let published = Instant::now();
    let live_a = format!("show>rtmp://127.0.0.1:{port_a}/live/****: live");
    assert!(
        s.proc.wait_for_output(&live_a, Duration::from_secs(10)),
        "relay A not live: {}",
        s.proc.stderr()
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(published.elapsed()));
    // Kill nginx A mid-stream and keep it down for 2 s: B, the listener
    // and serve's own HLS must not stall meanwhile.
    drop(nginx_a);
    let seq_before = hls_sequence(s.http, "show").unwrap_or(0);
    let stalls = longest_stall(
        Duration::from_secs(2),
        &[&|| recorded_bytes(&dir_b), &|| file_len(&received)],
    );
    let back = Instant::now();
    let _nginx_a2 = start_nginx(&dir_a, port_a, "nginx-a2");
    let fed_again = wait_for(Duration::from_secs(5), || {
        (s.proc.stderr().matches(&live_a).count() >= 2).then(Instant::now)
    })
    .map(|t| t - back);
    // Its new recording grows: media arrives, not just a handshake.
    let recs_before = recordings(&dir_a).len();
    let grows = wait_for(Duration::from_secs(5), || {
        let recs = recordings(&dir_a);
        (recs.len() > 1 && file_len(recs.last()?) > 100_000).then_some(())
    });
    let stalls_after = longest_stall(
        Duration::from_secs(2),
        &[&|| recorded_bytes(&dir_b), &|| file_len(&received)],
    );
    let seq_after = hls_sequence(s.http, "show").unwrap_or(0);
    assert_eq!(ff.wait(Duration::from_secs(40)), Some(0), "{}", ff.stderr());
    // The publisher's end is a clean end for every platform: the listener
    // finishes its file and exits by itself.
    let listener_exit = listener.wait(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let log = s.proc.stderr();
    let frames_b = recordings(&dir_b)
        .iter()
        .map(|p| video_frames(p))
        .sum::<u64>();
    let frames_f = video_frames(&received);
    let recs_a = recordings(&dir_a);
    let frames_a: Vec<u64> = recs_a.iter().map(|p| video_frames(p)).collect();
    eprintln!(
        "relay figures: {secs} s at 30 fps published; nginx B {frames_b} frames, ffmpeg listener {frames_f}, \
         nginx A {frames_a:?} (killed at 5 s, down 2 s), A fed again {fed_again:?} after its restart, \
         longest stalls while A was down {stalls:?} and after {stalls_after:?}, HLS sequence {seq_before} -> {seq_after}"
    );
    assert!(
        fed_again.is_some(),
        "relay A not live within 5 s of nginx's return: {log}"
    );
    assert!(
        grows.is_some(),
        "nginx A's new recording does not grow ({recs_before} recordings): {log}"
    );
    for (what, stall) in ["nginx B", "ffmpeg listener"].iter().zip(&stalls) {
        assert!(
            *stall < Duration::from_millis(1500),
            "{what} stalled {stall:?} while A was down"
        );
    }
    assert!(
        seq_after > seq_before,
        "HLS stalled: {seq_before} -> {seq_after}"
    );
    let all = u64::from(secs) * 30;
    assert!(
        frames_b >= all * 9 / 10,
        "nginx B got {frames_b} of {all} frames"
    );
    assert!(
        frames_f >= all * 9 / 10,
        "the listener got {frames_f} of {all} frames"
    );
    assert_eq!(
        listener_exit,
        Some(0),
        "ffmpeg listener: {}",
        listener.stderr()
    );
    // A got both sides of its outage: before the kill, and from its return on.
    assert!(frames_a.len() >= 2, "{frames_a:?}");
    assert!(frames_a[0] >= 90, "{frames_a:?}");
    assert!(*frames_a.last().unwrap_or(&0) >= 180, "{frames_a:?}");
    assert!(
        !log.contains("s3cret"),
        "a stream key in serve's log: {log}"
    );
    assert!(log.contains("stream ended, relay idle"), "{log}");
}

/// A platform that answers the RTMP handshake and the publish, then never
/// reads again: it holds each connection until `stop`.
fn deaf_platform(
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    slow_kbps: u32,
) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    l.set_nonblocking(true).expect("nonblocking");
    // A small receive buffer (inherited by accepted sockets, and with no
    // autotuning) so that what the kernel absorbs is the sender's buffer alone.
    let size: libc::c_int = 16 << 10;
    // SAFETY: a valid socket and a c_int option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&l),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((mut sock, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let _ = sock.set_nonblocking(false);
            let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
            let mut session = ServerSession::new();
            let mut buf = vec![0u8; 64 << 10];
            let until = Instant::now() + Duration::from_secs(5);
            while !session.is_publishing() && Instant::now() < until {
                match sock.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if session.handle_input(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(_) => {}
                }
                while let Some(ev) = session.poll_event() {
                    if let ServerEvent::PublishRequested { key, .. } = ev {
                        let _ = session.accept_publish(&key);
                    }
                }
                while let Some(out) = session.poll_transmit() {
                    let _ = sock.write_all(&out);
                }
            }
            // Publishing: from now on nothing is read, or (for the long run
            // by hand) a trickle of `slow_kbps`, so that the relay stays
            // live and its queue fills up to its bound.
            if slow_kbps > 0 {
                let stop = stop.clone();
                let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
                std::thread::spawn(move || {
                    let mut sock = sock;
                    let mut buf = vec![0u8; 1024];
                    let deadline = Instant::now() + Duration::from_secs(300);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        if matches!(sock.read(&mut buf), Ok(0)) {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs_f64(1.0 / f64::from(slow_kbps)));
                    }
                });
            } else {
                held.push(sock);
            }
        }
    });
    (port, t)
}

/// The recipe's publisher with noise on the picture, so that x264 spends
/// its whole 8 Mbit/s (a test pattern alone compresses to a fraction):
/// a deaf platform's socket buffers then fill within seconds.
fn noisy_publish(dir: &Path, port: u16, key: &str, secs: u32) -> Proc {
    require("ffmpeg");
    let url = format!("rtmp://127.0.0.1:{port}/{key}");
    let secs = secs.to_string();
    let args: Vec<String> = [
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x360:rate=30,format=yuv420p,noise=alls=60:allf=t",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-c:v",
        "libx264",
        "-b:v",
        "8000k",
        "-maxrate",
        "8000k",
        "-bufsize",
        "4000k",
        "-preset",
        "ultrafast",
        "-x264-params",
        "keyint=30",
        "-c:a",
        "aac",
        "-t",
        &secs,
        "-f",
        "flv",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::start("ffmpeg", Path::new("ffmpeg"), &args, dir)
}

#[test]
fn a_platform_that_stops_reading_costs_at_most_its_queue_and_stalls_nothing_else() {
    let _g = serial();
    let dir = temp_dir("serve-relay-deaf");
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    // By hand, for the default bound: PSTREAM_RELAY_QUEUE_MIB=64
    // PSTREAM_RELAY_SLOW_KBPS=8 PSTREAM_RELAY_SECS=100 (a platform reading
    // 8 KiB/s keeps the connection live while the queue fills to 64 MiB).
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let slow_kbps = env("PSTREAM_RELAY_SLOW_KBPS").unwrap_or(0);
    let (deaf_port, deaf) = deaf_platform(stop.clone(), accepted.clone(), slow_kbps);
    let port_b = free_tcp_port();
    let dir_b = dir.join("nginx-b");
    let _nginx_b = start_nginx(&dir_b, port_b, "nginx-b");
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    // 4 MiB keeps the test short: at 8 Mbit/s a deaf platform's connection
    // is reset by the 5 s write timeout before 64 MiB could fill. For the
    // default bound, run with PSTREAM_RELAY_QUEUE_MIB=64 (drops then need a
    // slow reader rather than a deaf one, so only the memory bar applies).
    let queue_mib: u64 = std::env::var("PSTREAM_RELAY_QUEUE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--relay-queue-mib",
            &queue_mib.to_string(),
            "--relay",
            &format!("show=rtmp://127.0.0.1:{deaf_port}/live/deafkey"),
            "--relay",
            &format!("show=rtmp://127.0.0.1:{port_b}/live/b"),
            "--metrics",
            &metrics,
            "--window",
            "2",
        ],
    );
    let secs = env("PSTREAM_RELAY_SECS").unwrap_or(16);
    let mut ff = noisy_publish(&dir, s.rtmp, "show", secs);
    // The baseline once the stream runs and HLS holds its window; the deaf
    // relay is live (its queue about to fill at 10 Mbit/s).
    let deaf_live = format!("show>rtmp://127.0.0.1:{deaf_port}/live/****: live");
    assert!(
        s.proc.wait_for_output(&deaf_live, Duration::from_secs(10)),
        "{}",
        s.proc.stderr()
    );
    std::thread::sleep(Duration::from_secs(1));
    let base = rss_kib(s.proc.pid());
    let seq_start = hls_sequence(s.http, "show").unwrap_or(0);
    // 10 s: nginx B's recording must keep growing, serve's memory is sampled.
    let (mut peak, mut stall) = (base, Duration::ZERO);
    let (mut last, mut last_at) = (recorded_bytes(&dir_b), Instant::now());
    let until = Instant::now() + Duration::from_secs(u64::from(secs.saturating_sub(6)));
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss_kib(s.proc.pid()));
        let b = recorded_bytes(&dir_b);
        if b != last {
            (last, last_at) = (b, Instant::now());
        }
        stall = stall.max(last_at.elapsed());
    }
    let seq_end = hls_sequence(s.http, "show").unwrap_or(0);
    let scrape = String::from_utf8_lossy(
        &Command::new("curl")
            .args(["-sf", "--max-time", "5"])
            .arg(format!("http://{metrics}/metrics"))
            .output()
            .expect("curl")
            .stdout,
    )
    .into_owned();
    assert_eq!(ff.wait(Duration::from_secs(40)), Some(0), "{}", ff.stderr());
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = deaf.join();
    let log = s.proc.stderr();
    let frames_b = recordings(&dir_b)
        .iter()
        .map(|p| video_frames(p))
        .sum::<u64>();
    let dropped = scrape
        .lines()
        .find(|l| {
            l.starts_with("pstream_relay_dropped_total") && l.contains(&deaf_port.to_string())
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    eprintln!(
        "deaf platform figures: queue {queue_mib} MiB, serve RSS {base} KiB -> peak {peak} KiB \
         (+{} KiB), deaf relay dropped {dropped} tags, {} connections to it, nginx B {frames_b} frames \
         of {}, HLS sequence {seq_start} -> {seq_end}, longest stall of nginx B {stall:?}",
        peak.saturating_sub(base),
        accepted.load(Ordering::Relaxed),
        secs * 30,
    );
    if queue_mib <= 4 {
        assert!(
            dropped > 0,
            "the deaf relay's queue never overflowed: {scrape}"
        );
    }
    assert!(!scrape.contains("deafkey"), "a key in /metrics");
    assert!(
        scrape.contains("destination=\"rtmp://127.0.0.1:"),
        "no relay in /metrics: {scrape}"
    );
    // Its queue's bound, plus slack for HLS segments and the allocator.
    let slack_mib = 24;
    assert!(
        peak.saturating_sub(base) <= (queue_mib + slack_mib) * 1024,
        "serve grew {} KiB with a {queue_mib} MiB relay queue",
        peak.saturating_sub(base)
    );
    assert!(
        stall < Duration::from_millis(1500),
        "nginx B stalled {stall:?}"
    );
    assert!(
        frames_b >= u64::from(secs) * 30 * 9 / 10,
        "nginx B got {frames_b} frames"
    );
    assert!(
        seq_end >= seq_start + 3,
        "HLS stalled: {seq_start} -> {seq_end}"
    );
    assert!(!log.contains("deafkey"), "a key in serve's log");
}

#[test]
fn garbage_relays_are_one_error_line_and_garbage_answers_are_retried() {
    let _g = serial();
    // Bad relay specs: one clear line, non-zero exit, no key shown.
    for (args, needle) in [
        (
            vec!["serve", "--relay", "rtmp://h/live/s3cret"],
            "must be NAME=URL",
        ),
        (
            vec!["serve", "--relay", "x=http://h/live/s3cret"],
            "rtmp://",
        ),
        (
            vec!["serve", "--relay", "x=%%garbage s3cret"],
            "must start with rtmp://",
        ),
        (
            vec![
                "serve",
                "--renditions",
                "none",
                "--relay",
                "x/P360p30fps16x9=rtmp://h/live/s3cret",
            ],
            "P360p30fps16x9 is not among the renditions",
        ),
    ] {
        let (code, _out, err) = common::run_pstream(&args, Duration::from_secs(10));
        assert!(matches!(code, Some(c) if c != 0), "{args:?}: exit {code:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("s3cret"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // A platform that answers with garbage: counted, and retried with backoff.
    let dir = temp_dir("serve-relay-garbage");
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    l.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let (st, an) = (stop.clone(), answers.clone());
    let garbage = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((mut sock, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            an.fetch_add(1, Ordering::Relaxed);
            let junk: Vec<u8> = (0..4096)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = sock.write_all(&junk);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--relay",
            &format!("show=rtmp://127.0.0.1:{port}/live/s3cret"),
            "--metrics",
            &metrics,
        ],
    );
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "show", "320x240", 8);
    let errors = wait_for(Duration::from_secs(20), || {
        let text = String::from_utf8_lossy(
            &Command::new("curl")
                .args(["-sf", "--max-time", "5"])
                .arg(format!("http://{metrics}/metrics"))
                .output()
                .ok()?
                .stdout,
        )
        .into_owned();
        let n: u64 = text
            .lines()
            .find(|l| l.starts_with("pstream_relay_errors_total"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (n >= 3).then_some(n)
    });
    let tries = answers.load(Ordering::Relaxed);
    let _ = ff.wait(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let _ = garbage.join();
    let log = s.proc.stderr();
    eprintln!("garbage platform: errors {errors:?}, {tries} connections");
    assert!(errors.is_some(), "garbage answers not counted: {log}");
    assert!(log.contains("retrying in"), "{log}");
    // Backoff: 1 s, 1.5 s, 2.25 s ... so within the ~10 s far fewer than one try a second.
    assert!((3..=8).contains(&tries), "{tries} connections: {log}");
    assert!(!log.contains("s3cret"), "{log}");
}

/// ffprobe's first video stream of a file: (width, height).
fn video_size(path: &Path) -> (u32, u32) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text
        .trim()
        .split(',')
        .map(|v| v.trim().parse().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

#[test]
fn keys_file_relays_a_rendition_and_the_source_again_on_republish() {
    let _g = serial();
    let dir = temp_dir("serve-relay-keys");
    let port_n = free_tcp_port();
    let dir_n = dir.join("nginx");
    let _nginx = start_nginx(&dir_n, port_n, "nginx");
    let port_f = free_tcp_port();
    let received = dir.join("rendition.flv");
    let mut listener = ffmpeg_listener(&dir, port_f, &received);
    let keys = dir.join("keys.txt");
    std::fs::write(
        &keys,
        format!(
            "# key name relays...\npubs3cret show rtmp://127.0.0.1:{port_n}/live/n3ykey P144p30fps16x9=rtmp://127.0.0.1:{port_f}/live/x\n"
        ),
    )
    .expect("write keys");
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "P144p30fps16x9",
            "--keys",
            keys.to_str().expect("utf-8 path"),
        ],
    );
    // Two publishes of 6 s, a second apart: the source relay ends cleanly
    // after the first and starts again with the second.
    for round in 0..2 {
        let mut ff = ffmpeg_publish(
            &dir,
            &format!("ffmpeg{round}"),
            s.rtmp,
            "pubs3cret",
            "640x360",
            6,
        );
        assert_eq!(ff.wait(Duration::from_secs(30)), Some(0), "{}", ff.stderr());
        std::thread::sleep(Duration::from_secs(1));
    }
    let listener_exit = listener.wait(Duration::from_secs(10));
    let log = s.proc.stderr();
    let recs = recordings(&dir_n);
    let frames_n: Vec<u64> = recs.iter().map(|p| video_frames(p)).collect();
    let frames_r = video_frames(&received);
    let size_r = video_size(&received);
    eprintln!(
        "keys-file relays: nginx recordings {frames_n:?} (two publishes of 180 frames), \
         rendition listener {frames_r} frames at {size_r:?}"
    );
    assert_eq!(listener_exit, Some(0), "{}", listener.stderr());
    assert_eq!(size_r, (256, 144), "the rendition's pictures");
    assert!(frames_r >= 150, "rendition relay: {frames_r} frames");
    assert_eq!(
        frames_n.len(),
        2,
        "one recording per publish: {frames_n:?}: {log}"
    );
    assert!(frames_n.iter().all(|&n| n >= 160), "{frames_n:?}");
    let relaying = format!("show>rtmp://127.0.0.1:{port_n}/live/****: stream published, relaying");
    assert_eq!(log.matches(&relaying).count(), 2, "{log}");
    assert!(
        !log.contains("s3cret") && !log.contains("n3ykey"),
        "a key in serve's log: {log}"
    );
}
