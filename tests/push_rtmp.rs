//! `pstream push` against real RTMP servers: nginx with Debian's RTMP module
//! (HLS out, record, restart mid-stream) and `ffmpeg -listen 1`, plus two
//! destinations with one dead and the `--out` file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::hls::free_tcp_port;
use common::nginx::{start_nginx, start_nginx_with, wait_listening, wait_listening_ffmpeg};
use common::{pstream_bin, require, serial, temp_dir, Proc};

fn start_push(dir: &Path, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = [
        "push",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--bitrate",
        "800",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start("pstream", &pstream_bin(), &args, dir)
}

/// ffprobe's view of a file: (codec, width, height, frames) per stream, and its warnings.
fn probe(path: &Path) -> (Vec<(String, u32, u32, u64)>, String) {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "warning",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut streams = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        match f.first() {
            Some(&"h264") => streams.push(("h264".into(), num(1) as u32, num(2) as u32, num(3))),
            Some(&"aac") => streams.push(("aac".into(), 0, 0, num(f.len() - 1))),
            _ => {}
        }
    }
    streams.sort();
    (streams, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn frames_of(streams: &[(String, u32, u32, u64)], codec: &str) -> u64 {
    streams.iter().filter(|s| s.0 == codec).map(|s| s.3).sum()
}

fn assert_h264_aac(path: &Path, streams: &[(String, u32, u32, u64)]) {
    let h264 = streams.iter().find(|s| s.0 == "h264");
    assert!(
        matches!(h264, Some((_, 640, 360, n)) if *n > 0),
        "{}: no 640x360 H.264: {streams:?}",
        path.display()
    );
    assert!(
        frames_of(streams, "aac") > 0,
        "{}: no AAC: {streams:?}",
        path.display()
    );
}

/// ffprobe's view of the one FLV nginx recorded under `dir`/rec, checked
/// to hold 640x360 H.264 and AAC.
fn the_one_recording(dir: &Path) -> Vec<(String, u32, u32, u64)> {
    let rec: Vec<PathBuf> = std::fs::read_dir(dir.join("rec"))
        .expect("rec dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(rec.len(), 1, "{rec:?}");
    let (streams, _) = probe(&rec[0]);
    assert_h264_aac(&rec[0], &streams);
    streams
}

/// (segment file, duration) pairs of an HLS playlist.
fn playlist(path: &Path) -> Vec<(PathBuf, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut dur = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            dur = d
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|v| v.parse().ok());
        } else if !line.starts_with('#') && !line.is_empty() {
            if let Some(d) = dur.take() {
                out.push((path.with_file_name(line), d));
            }
        }
    }
    out
}

fn count_in(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

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

#[test]
fn push_to_nginx_makes_h264_aac_hls_segments_of_about_two_seconds() {
    let _turn = serial();
    let dir = temp_dir("push_nginx_hls");
    let port = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let url = format!("rtmp://127.0.0.1:{port}/live/stream?token=abc");
    let mut push = start_push(&dir, &[&url, "--duration", "10"]);
    let code = push.wait(Duration::from_secs(40));
    assert_eq!(code, Some(0), "pstream failed: {}", push.stderr());
    std::thread::sleep(Duration::from_millis(500));

    let segs = playlist(&dir.join("hls/stream.m3u8"));
    assert!(
        segs.len() >= 3,
        "playlist has {} segments: {segs:?}",
        segs.len()
    );
    // All but the last (cut short by the end of the stream) are about 2 s.
    for (path, dur) in &segs[..segs.len() - 1] {
        assert!((1.5..=2.6).contains(dur), "{}: {dur} s", path.display());
    }
    for (path, _) in &segs {
        let (streams, _) = probe(path);
        assert_h264_aac(path, &streams);
    }
    // nginx's recording holds the whole push: at least 90% of 10 s at 30 fps.
    let streams = the_one_recording(&dir);
    assert!(frames_of(&streams, "h264") >= 270, "{streams:?}");
}

#[test]
fn ffmpeg_listener_receives_the_push_with_nearly_every_frame() {
    let _turn = serial();
    require("ffmpeg");
    let dir = temp_dir("push_ffmpeg");
    let port = free_tcp_port();
    let out = dir.join("received.flv");
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
        "-y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect();
    let mut ffmpeg = Proc::start("ffmpeg", Path::new("ffmpeg"), &args, &dir);
    assert!(wait_listening_ffmpeg(port), "ffmpeg did not listen");
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmp://127.0.0.1:{port}/live/x"),
            "--duration",
            "8",
        ],
    );
    assert_eq!(
        push.wait(Duration::from_secs(40)),
        Some(0),
        "{}",
        push.stderr()
    );
    let _ = ffmpeg.wait(Duration::from_secs(15));
    let (streams, _) = probe(&out);
    assert_h264_aac(&out, &streams);
    // 8 s at 30 fps and 48000/1024 AAC frames per second, less the wait for the first keyframe.
    assert!(frames_of(&streams, "h264") >= 216, "{streams:?}");
    assert!(frames_of(&streams, "aac") >= 337, "{streams:?}");
}

#[test]
fn a_dead_destination_does_not_stall_the_live_one_and_out_file_is_clean() {
    let _turn = serial();
    let dir = temp_dir("push_two");
    let port = free_tcp_port();
    let dead = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let file = dir.join("out.flv");
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmp://127.0.0.1:{dead}/live/nobody"),
            &format!("rtmp://127.0.0.1:{port}/live/two"),
            "--out",
            &file.display().to_string(),
            "--duration",
            "8",
            "--reconnect-max",
            "2",
        ],
    );
    assert_eq!(
        push.wait(Duration::from_secs(40)),
        Some(0),
        "{}",
        push.stderr()
    );
    let log = push.stderr();
    assert!(
        log.contains(&format!("127.0.0.1:{dead}: cannot connect")),
        "{log}"
    );
    assert!(count_in(&log, "retrying in") >= 2, "{log}");
    std::thread::sleep(Duration::from_millis(500));
    let streams = the_one_recording(&dir);
    assert!(
        frames_of(&streams, "h264") >= 216,
        "live destination starved: {streams:?}"
    );

    let (streams, warnings) = probe(&file);
    assert_h264_aac(&file, &streams);
    assert!(frames_of(&streams, "h264") >= 225, "{streams:?}");
    assert!(warnings.trim().is_empty(), "ffprobe warned: {warnings}");
}

#[test]
fn push_reconnects_after_nginx_restarts_and_memory_stays_flat() {
    let _turn = serial();
    let dir = temp_dir("push_reconnect");
    let port = free_tcp_port();
    let nginx = start_nginx(&dir, port, "nginx1");
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmp://127.0.0.1:{port}/live/again"),
            "--duration",
            "24",
            "--reconnect-max",
            "2",
        ],
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(count_in(&push.stderr(), ": live"), 1, "{}", push.stderr());
    drop(nginx);
    // Down for 6 s: pstream retries and drops what it makes, holding no more memory.
    std::thread::sleep(Duration::from_secs(1));
    let rss_down = rss_kib(push.pid());
    std::thread::sleep(Duration::from_secs(5));
    let rss_later = rss_kib(push.pid());
    assert!(
        rss_later <= rss_down + 8 * 1024,
        "memory grew while disconnected: {rss_down} -> {rss_later} KiB"
    );
    let segs_before = playlist(&dir.join("hls/again.m3u8")).len();
    let back = Instant::now();
    let _nginx2 = start_nginx(&dir, port, "nginx2");
    let deadline = back + Duration::from_secs(5);
    while count_in(&push.stderr(), ": live") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        count_in(&push.stderr(), ": live"),
        2,
        "not live again within 5 s of nginx's return: {}",
        push.stderr()
    );
    assert_eq!(
        push.wait(Duration::from_secs(40)),
        Some(0),
        "{}",
        push.stderr()
    );
    let log = push.stderr();
    assert!(log.contains("reconnects"), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    let segs = playlist(&dir.join("hls/again.m3u8"));
    assert!(
        segs.len() >= segs_before + 3,
        "no new segments after the restart: {segs_before} -> {}",
        segs.len()
    );
    let (path, _) = segs.last().expect("a segment");
    let (streams, _) = probe(path);
    assert_h264_aac(path, &streams);
}

#[test]
fn bad_urls_fail_at_once_with_one_clear_line() {
    let dir = temp_dir("push_bad_url");
    for (url, want) in [
        ("rtmp://127.0.0.1/onlyapp", "stream key"),
        ("http://127.0.0.1/live/x", "rtmp://"),
        ("rtmp://127.0.0.1:99999/live/secret", "port"),
    ] {
        let mut p = start_push(&dir, &[url, "--duration", "2"]);
        assert_eq!(p.wait(Duration::from_secs(10)), Some(2), "{url}");
        let err = p.stderr();
        assert!(err.contains(want), "{url}: {err}");
        assert!(!err.contains("secret"), "key leaked: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// Runs `openssl` with `args` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

#[test]
fn rtmps_through_a_tls_front_reaches_nginx() {
    let _turn = serial();
    require("openssl");
    let stream_module = Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    assert!(
        stream_module.is_file(),
        "libnginx-mod-stream is not installed; run scripts/install-deps.sh"
    );
    let dir = temp_dir("push_rtmps");
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=pstream test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext.cnf");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = free_tcp_port();
    let tls_port = free_tcp_port();
    let d = dir.display();
    let front = format!(
        "stream {{ server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {d}/srv.pem; ssl_certificate_key {d}/srv.key; proxy_pass 127.0.0.1:{port}; }} }}"
    );
    let modules = format!("load_module {};", stream_module.display());
    let _nginx = start_nginx_with(&dir, port, "nginx", &modules, &front);
    assert!(
        wait_listening(tls_port, Duration::from_secs(5)),
        "TLS front not up"
    );

    let ca = dir.join("ca.pem").display().to_string();
    let args: Vec<String> = [
        format!("SSL_CERT_FILE={ca}"),
        pstream_bin().display().to_string(),
        "push".into(),
        format!("rtmps://127.0.0.1:{tls_port}/live/secure"),
        "--size".into(),
        "640x360".into(),
        "--bitrate".into(),
        "800".into(),
        "--duration".into(),
        "6".into(),
    ]
    .into_iter()
    .collect();
    let mut push = Proc::start("pstream", Path::new("/usr/bin/env"), &args, &dir);
    assert_eq!(
        push.wait(Duration::from_secs(40)),
        Some(0),
        "{}",
        push.stderr()
    );
    assert_eq!(count_in(&push.stderr(), ": live"), 1, "{}", push.stderr());
    std::thread::sleep(Duration::from_millis(500));
    let streams = the_one_recording(&dir);
    assert!(frames_of(&streams, "h264") >= 160, "{streams:?}");

    // Without the private CA the certificate is refused, and the log says why.
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmps://127.0.0.1:{tls_port}/live/untrusted"),
            "--duration",
            "3",
        ],
    );
    assert_eq!(
        push.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        push.stderr()
    );
    assert!(push.stderr().contains("UnknownIssuer"), "{}", push.stderr());
}

#[test]
fn a_key_already_in_use_is_rejected_and_pstream_gives_up() {
    let _turn = serial();
    let dir = temp_dir("push_badname");
    let port = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let url = format!("rtmp://127.0.0.1:{port}/live/taken");
    let mut first = start_push(&dir, &[&url, "--duration", "12", "--quiet"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_in(&first.stderr(), ": live") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // nginx answers a second publisher of the same name with NetStream.Publish.BadName.
    let args: Vec<String> = [
        "push",
        &url,
        "--size",
        "320x240",
        "--duration",
        "20",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut second = Proc::start("second", &pstream_bin(), &args, &dir);
    let code = second.wait(Duration::from_secs(15));
    let err = second.stderr();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("NetStream.Publish.BadName"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("taken"), "key leaked: {err}");
    assert_eq!(
        first.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        first.stderr()
    );
}

#[test]
fn silent_audio_adds_an_aac_track_to_video_only_pushes() {
    let _turn = serial();
    let dir = temp_dir("push_silent");
    let file = dir.join("silent.flv");
    let target = format!("file:{}", file.display());
    let mut push = start_push(
        &dir,
        &[
            &target,
            "--audio",
            "none",
            "--silent-audio",
            "--duration",
            "4",
        ],
    );
    assert_eq!(
        push.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        push.stderr()
    );
    let (streams, warnings) = probe(&file);
    assert_h264_aac(&file, &streams);
    assert!(frames_of(&streams, "aac") >= 170, "{streams:?}");
    assert!(warnings.trim().is_empty(), "ffprobe warned: {warnings}");
}

#[test]
fn a_frozen_server_does_not_stall_the_other_destination() {
    let _turn = serial();
    let dir_a = temp_dir("push_frozen_a");
    let dir_b = temp_dir("push_frozen_b");
    let (port_a, port_b) = (free_tcp_port(), free_tcp_port());
    let frozen = start_nginx(&dir_a, port_a, "nginx-a");
    let _live = start_nginx(&dir_b, port_b, "nginx-b");
    let mut push = start_push(
        &dir_b,
        &[
            &format!("rtmp://127.0.0.1:{port_a}/live/frozen"),
            &format!("rtmp://127.0.0.1:{port_b}/live/alive"),
            "--duration",
            "12",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_in(&push.stderr(), ": live") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count_in(&push.stderr(), ": live"), 2, "{}", push.stderr());
    // Server A stops reading (SIGSTOP): its socket fills and its writes block.
    frozen.signal("STOP");
    let started = Instant::now();
    let code = push.wait(Duration::from_secs(40));
    frozen.signal("CONT");
    assert_eq!(code, Some(0), "{}", push.stderr());
    // It still ends on time: blocked writes are bounded by the write timeout.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let streams = the_one_recording(&dir_b);
    // 12 s at 30 fps, less the wait for the first keyframe: at least 90% reach B.
    assert!(frames_of(&streams, "h264") >= 324, "B starved: {streams:?}");
}

#[test]
fn a_server_that_answers_garbage_is_named_and_retried() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let _turn = serial();
    let dir = temp_dir("push_garbage");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmp://127.0.0.1:{port}/live/secretkey"),
            "--duration",
            "6",
            "--reconnect-max",
            "2",
        ],
    );
    // Answer every connection with bytes that are no RTMP handshake, then hang up.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut served = 0;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut sock, _)) => {
                let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 1537];
                let _ = sock.read(&mut buf);
                let junk: Vec<u8> = (0..4000u32).map(|i| (i * 7 + 3) as u8).collect();
                let _ = sock.write_all(&junk);
                served += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let code = push.wait(Duration::from_secs(15));
    let log = push.stderr();
    assert!(
        served >= 2,
        "pstream did not retry: {served} connections\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("secretkey"), "key leaked: {log}");
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "destination not named: {log}"
    );
    // The run ends at --duration (the destination never went live), or with
    // status 2 if pstream decided the server will never work: never a hang.
    assert!(matches!(code, Some(0) | Some(2)), "exit {code:?}: {log}");
}

/// A server that completes the handshake and then answers `connect` with a
/// command nested 10,000 deep (which recursed past the stack in the AMF
/// decoder pstream used to read servers with, aborting the process): that
/// destination fails and is retried, the live one and the recording go on.
#[test]
fn a_hostile_server_costs_its_destination_not_the_process() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let _turn = serial();
    let dir = temp_dir("push_hostile");
    let port = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hostile = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let file = dir.join("out.flv");
    let mut push = start_push(
        &dir,
        &[
            &format!("rtmp://127.0.0.1:{hostile}/live/victim"),
            &format!("rtmp://127.0.0.1:{port}/live/survivor"),
            "--out",
            &file.display().to_string(),
            "--duration",
            "8",
            "--reconnect-max",
            "1",
        ],
    );
    // The deep command, as one message of type 20 on chunk stream 3 in
    // 128-byte chunks (the initial chunk size).
    let mut body = vec![0x02, 0, 7];
    body.extend(b"_result");
    body.extend([0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x05]);
    for _ in 0..10_000 {
        body.extend([0x03, 0, 1, b'k']);
    }
    let len = body.len() as u32;
    let mut deep = vec![0x03, 0, 0, 0];
    deep.extend(&len.to_be_bytes()[1..]);
    deep.extend([20, 0, 0, 0, 0]);
    for (i, part) in body.chunks(128).enumerate() {
        if i > 0 {
            deep.push(0xC3);
        }
        deep.extend(part);
    }
    let deadline = Instant::now() + Duration::from_secs(7);
    let mut served = 0;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut sock, _)) => {
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
                let mut c0c1 = [0u8; 1537];
                if sock.read_exact(&mut c0c1).is_err() {
                    continue;
                }
                // The original handshake: S1 without a digest, S2 echoing C1.
                let mut hello = vec![3u8];
                hello.extend([0u8; 1536]);
                hello.extend(&c0c1[1..]);
                let _ = sock.write_all(&hello);
                let mut c2 = [0u8; 1536];
                if sock.read_exact(&mut c2).is_err() {
                    continue;
                }
                let mut connect = [0u8; 256];
                let _ = sock.read(&mut connect);
                let _ = sock.write_all(&deep);
                served += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let code = push.wait(Duration::from_secs(30));
    let log = push.stderr();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(served >= 2, "not retried: {served} connections\n{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{hostile}")),
        "hostile destination not named: {log}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let streams = the_one_recording(&dir);
    assert!(
        frames_of(&streams, "h264") >= 200,
        "live destination starved: {streams:?}"
    );
    let (streams, warnings) = probe(&file);
    assert_h264_aac(&file, &streams);
    assert!(frames_of(&streams, "h264") >= 225, "{streams:?}");
    assert!(warnings.trim().is_empty(), "ffprobe warned: {warnings}");
}

#[test]
fn an_unresolvable_host_is_named() {
    let dir = temp_dir("push_unresolvable");
    let mut p = start_push(
        &dir,
        &[
            "rtmp://no-such-host.invalid/live/key",
            "--duration",
            "3",
            "--reconnect-max",
            "1",
        ],
    );
    let code = p.wait(Duration::from_secs(15));
    let err = p.stderr();
    assert!(err.contains("no-such-host.invalid"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(code, Some(0) | Some(2)), "exit {code:?}: {err}");
}

#[test]
fn the_embedding_api_pushes_to_nginx_and_records_flv() {
    use pstream_embed::{error::one_line, DestinationState, Push, Record};
    let _turn = serial();
    let dir = temp_dir("embed_push");
    let port = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let file = dir.join("record.flv");
    const SECONDS: f64 = 6.0;
    let mut push = Push::to(format!("rtmp://127.0.0.1:{port}/live/embedded"))
        .size(640, 360)
        .bitrate_kbps(800)
        .duration(SECONDS)
        .start()
        .unwrap_or_else(|e| panic!("push did not start: {}", one_line(&e)));
    let mut record = Record::to(&file)
        .size(640, 360)
        .bitrate_kbps(800)
        .duration(SECONDS)
        .start()
        .unwrap_or_else(|e| panic!("recording did not start: {}", one_line(&e)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_live = false;
    while !push.stopping() && Instant::now() < deadline {
        seen_live |= push.destinations()[0].1 == DestinationState::Live;
        std::thread::sleep(Duration::from_millis(100));
    }
    let (line, summary) = (push.stats_line(), push.summary());
    push.wait()
        .unwrap_or_else(|e| panic!("push failed: {}", one_line(&e)));
    record
        .wait()
        .unwrap_or_else(|e| panic!("recording failed: {}", one_line(&e)));
    assert!(seen_live, "never live: {line}");
    assert!(line.contains("rtmp://127.0.0.1"), "{line}");
    assert!(!summary.contains("embedded"), "key shown: {summary}");
    assert_eq!(
        record.destinations(),
        vec![(format!("file:{}", file.display()), DestinationState::Done)]
    );

    std::thread::sleep(Duration::from_millis(500));
    let streams = the_one_recording(&dir);
    // At least 90% of the frames of the run reached nginx and the file.
    assert!(frames_of(&streams, "h264") >= 162, "{streams:?}");
    let (streams, warnings) = probe(&file);
    assert_h264_aac(&file, &streams);
    assert!(frames_of(&streams, "h264") >= 162, "{streams:?}");
    assert!(warnings.trim().is_empty(), "ffprobe warned: {warnings}");

    // Bad settings fail at start, with the reason, before anything runs.
    let err = Record::to(dir.join("no/such/dir/x.flv"))
        .start()
        .expect_err("unwritable path");
    assert!(
        one_line(&err).contains("cannot create"),
        "{}",
        one_line(&err)
    );
    let err = Push::to("rtmp://127.0.0.1/onlyapp")
        .start()
        .expect_err("no key");
    assert!(one_line(&err).contains("stream key"), "{}", one_line(&err));
}

/// #15 must-show 2, the guide's Twitch pipeline without GStreamer: score's
/// video from shmdata (here the reference writer, GStreamer's
/// `shmdatasink`, built by scripts/peers.sh) and its audio from PipeWire (a
/// null sink's monitor in a private PipeWire) -> `pstream push` -> nginx-rtmp:
/// every HLS segment holds 640x360 H.264 and AAC, and the recording about
/// every picture.
#[test]
fn shmdata_video_and_pipewire_audio_are_pushed_as_h264_aac_segments() {
    use common::pipewire::{missing_tool, PipeWire};
    let _turn = serial();
    assert!(
        missing_tool().is_none(),
        "{:?} is not installed; run scripts/install-deps.sh",
        missing_tool()
    );
    let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/shmdata");
    assert!(
        peers.join("gst/libgstshmdata.so").is_file(),
        "the shmdata reference peer is not built in {}; run scripts/peers.sh",
        peers.display()
    );
    let sink = "pstream_push_shm";
    let pw = PipeWire::start("push-shm-pw", &[sink]);
    let dir = pw.dir.clone();
    let sock = PathBuf::from(format!("/tmp/pst-push-shm-{}", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let peer_env = [
        (
            "LD_LIBRARY_PATH".to_string(),
            peers.join("lib").display().to_string(),
        ),
        (
            "GST_PLUGIN_PATH".to_string(),
            peers.join("gst").display().to_string(),
        ),
    ];
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball ! \
         video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! \
         shmdatasink socket-path={}",
        sock.display()
    );
    let words: Vec<String> = pipeline.split_whitespace().map(str::to_owned).collect();
    let writer = Proc::start_env("writer", "gst-launch-1.0".as_ref(), &words, &dir, &peer_env);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        sock.exists(),
        "shmdatasink made no socket:\n{}",
        writer.stderr()
    );
    let port = free_tcp_port();
    let _nginx = start_nginx(&dir, port, "nginx");
    let url = format!("rtmp://127.0.0.1:{port}/live/stream");
    let seconds = 6u64;
    let push_args: Vec<String> = [
        "push",
        "--video",
        &format!("shmdata:{}", sock.display()),
        "--audio",
        &format!("pipewire:{sink}"),
        "--bitrate",
        "800",
        &url,
        "--duration",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut push = Proc::start_env("push", &pstream_bin(), &push_args, &dir, pw.env());
    let code = push.wait(Duration::from_secs(seconds + 30));
    drop(writer);
    let _ = std::fs::remove_file(&sock);
    let log = push.stderr();
    assert_eq!(code, Some(0), "pstream push failed:\n{log}\n{}", pw.logs());
    std::thread::sleep(Duration::from_millis(500));
    let segs = playlist(&dir.join("hls/stream.m3u8"));
    assert!(
        segs.len() >= 2,
        "playlist has {} segments: {segs:?}\n{log}",
        segs.len()
    );
    for (path, _) in &segs {
        let (streams, _) = probe(path);
        assert_h264_aac(path, &streams);
    }
    let streams = the_one_recording(&dir);
    let (pictures, aac) = (frames_of(&streams, "h264"), frames_of(&streams, "aac"));
    eprintln!(
        "shmdata + PipeWire -> push -> nginx: {} HLS segments, recording {pictures} H.264 pictures and {aac} AAC frames",
        segs.len()
    );
    assert!(pictures >= seconds * 30 * 9 / 10, "{streams:?}\n{log}");
    // 48 kHz AAC is 46.9 frames a second; 80% of them at least.
    assert!(
        aac as f64 >= seconds as f64 * 46.9 * 0.8,
        "{streams:?}\n{log}"
    );
}
