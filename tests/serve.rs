//! `pstream serve` with real publishers (the recipe's ffmpeg command, `pstream
//! push`) and real viewers (curl, ffprobe): HLS within seconds, renditions at
//! 144 lines, keys, end and return of a publisher, and bad clients that must
//! not disturb a healthy publisher and viewer.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::hls::{
    ffmpeg_publish, get, get_text, segment_number, segments, start_serve, start_serve_env, wait_for,
};
use common::{pstream_bin, require, serial, temp_dir, Proc};
use pstream_transport::rtmp::{PublishSession, RtmpUrl, SessionEvent};

/// serve's `/metrics` at `addr`, parsed by python3-prometheus-client's text
/// parser: each sample as `name{label=value,...}` (labels sorted) -> value.
fn scrape(addr: &str) -> std::collections::HashMap<String, f64> {
    // Debian's python3-prometheus-client is installed for the system Python,
    // which a python3 earlier on PATH (pyenv, a venv) may not see.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        require("python3");
        "python3"
    };
    let text = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl");
    assert!(text.status.success(), "no /metrics at {addr}");
    let parse = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(s.name + ("{" + labels + "}" if labels else ""), s.value)
"#;
    let mut py = Command::new(python)
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(&text.stdout)
        .expect("write");
    let out = py.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&text.stdout)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// ffprobe's streams of a file: (codec, width, height).
fn probe(path: &Path) -> Vec<(String, u32, u32)> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let mut streams: Vec<(String, u32, u32)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            (f[0].trim().to_string(), n(1), n(2))
        })
        .collect();
    streams.sort();
    streams.dedup();
    streams
}

/// Downloads `path` into `dir/name`.
fn download(port: u16, path: &str, dir: &Path, name: &str) -> PathBuf {
    let body = get(port, path).unwrap_or_else(|| panic!("GET {path} failed"));
    let file = dir.join(name);
    std::fs::write(&file, body).expect("write download");
    file
}

#[test]
fn recipe_publish_gives_hls_with_a_144p_rendition_within_10_s() {
    let _g = serial();
    let dir = temp_dir("serve-recipe");
    let hls_dir = dir.join("hls");
    let metrics = format!("127.0.0.1:{}", common::hls::free_tcp_port());
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "P144p30fps16x9",
            "--hls-dir",
            hls_dir.to_str().expect("utf-8 path"),
            "--metrics",
            &metrics,
        ],
    );
    let started = Instant::now();
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "hello_world", "640x480", 20);
    // The recipe's test: curl the rendition playlist.
    let playlist = wait_for(Duration::from_secs(10), || {
        let p = get_text(s.http, "/stream/hello_world/P144p30fps16x9.m3u8");
        (segments(&p).len() >= 3).then_some(p)
    });
    let elapsed = started.elapsed();
    let playlist = playlist.unwrap_or_else(|| {
        panic!(
            "no 3 segments within 10 s; serve: {}\nffmpeg: {}",
            s.proc.stderr(),
            ff.stderr()
        )
    });
    assert!(elapsed <= Duration::from_secs(10), "{elapsed:?}");
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:"), "{playlist}");
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");

    let rendition = segments(&playlist)[1].clone();
    let file = download(
        s.http,
        &format!("/stream/hello_world/{rendition}"),
        &dir,
        "r.ts",
    );
    let streams = probe(&file);
    assert!(
        streams.iter().any(|(c, _, h)| c == "h264" && *h == 144),
        "{streams:?}"
    );
    assert!(streams.iter().any(|(c, _, _)| c == "aac"), "{streams:?}");

    let source = get_text(s.http, "/stream/hello_world/source.m3u8");
    let seg = segments(&source)
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no source segment: {source}"));
    let file = download(s.http, &format!("/stream/hello_world/{seg}"), &dir, "s.ts");
    let streams = probe(&file);
    assert!(
        streams.contains(&("h264".to_string(), 640, 480)),
        "{streams:?}"
    );
    assert!(streams.iter().any(|(c, _, _)| c == "aac"), "{streams:?}");

    let master = get_text(s.http, "/stream/hello_world.m3u8");
    assert!(
        master.contains("RESOLUTION=640x480") && master.contains("hello_world/source.m3u8"),
        "{master}"
    );
    assert!(
        master.contains("RESOLUTION=192x144") && master.contains("hello_world/P144p30fps16x9.m3u8"),
        "{master}"
    );
    assert!(master.matches("BANDWIDTH=").count() == 2, "{master}");

    // --hls-dir mirrors the same files, written whole.
    let on_disk = std::fs::read_to_string(hls_dir.join("hello_world/P144p30fps16x9.m3u8"))
        .expect("playlist on disk");
    for seg in segments(&on_disk) {
        assert!(hls_dir.join("hello_world").join(&seg).is_file(), "{seg}");
    }
    assert!(hls_dir.join("hello_world.m3u8").is_file());

    // /metrics, read by the Prometheus client library's own parser.
    let m = scrape(&metrics);
    let value = |name: &str| m.get(name).copied().unwrap_or(-1.0);
    assert_eq!(value("pstream_streams{state=live}"), 1.0, "{m:?}");
    assert_eq!(value("pstream_publishers"), 1.0, "{m:?}");
    // WebRTC is on (its own port): its families parse, nobody watches.
    assert_eq!(value("pstream_webrtc_sessions"), 0.0, "{m:?}");
    assert_eq!(
        value("pstream_webrtc_offers_total{result=accepted}"),
        0.0,
        "{m:?}"
    );
    assert!(
        value("pstream_received_bytes_total{protocol=rtmp}") > 100_000.0,
        "{m:?}"
    );
    assert!(
        value("pstream_sent_bytes_total{protocol=hls}") > 10_000.0,
        "{m:?}"
    );
    assert!(
        value("pstream_http_requests_total{kind=segment}") >= 2.0,
        "{m:?}"
    );
    assert!(
        value("pstream_http_requests_total{kind=master_playlist}") >= 1.0,
        "{m:?}"
    );
    for variant in ["source", "P144p30fps16x9"] {
        let seg = format!("pstream_segments_total{{stream=hello_world,variant={variant}}}");
        assert!(value(&seg) >= 3.0, "{seg}: {m:?}");
        let frames = format!("pstream_frames_total{{stream=hello_world,variant={variant}}}");
        assert!(value(&frames) >= 60.0, "{frames}: {m:?}");
    }
    ff.signal("KILL");
    ff.wait(Duration::from_secs(5));
}

#[test]
fn two_publishers_at_once_and_unlisted_keys_refused() {
    let _g = serial();
    let dir = temp_dir("serve-keys");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "# who may publish\nalpha\nbeta\n").expect("write keys");
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--keys",
            keys.to_str().expect("utf-8"),
        ],
    );
    let _alpha = ffmpeg_publish(&dir, "alpha", s.rtmp, "alpha", "320x240", 30);
    let url = format!("rtmp://127.0.0.1:{}/live/beta", s.rtmp);
    let beta_args: Vec<String> = [
        "push",
        "--size",
        "640x360",
        "--bitrate",
        "800",
        "--duration",
        "30",
        "--quiet",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _beta = Proc::start("push-beta", &pstream_bin(), &beta_args, &dir);
    for key in ["alpha", "beta"] {
        let ok = wait_for(Duration::from_secs(15), || {
            let p = get_text(s.http, &format!("/stream/{key}/source.m3u8"));
            (segments(&p).len() >= 2).then_some(())
        });
        assert!(ok.is_some(), "{key} has no segments: {}", s.proc.stderr());
    }
    let p = get_text(s.http, "/stream/beta/source.m3u8");
    let seg = segments(&p)[0].clone();
    let file = download(s.http, &format!("/stream/beta/{seg}"), &dir, "beta.ts");
    let streams = probe(&file);
    assert!(
        streams.contains(&("h264".to_string(), 640, 360)),
        "pstream push's picture: {streams:?}"
    );

    // A key missing from --keys: ffmpeg fails, and so does pstream push.
    let mut gamma = ffmpeg_publish(&dir, "gamma", s.rtmp, "gamma", "320x240", 10);
    let code = gamma.wait(Duration::from_secs(10));
    assert!(matches!(code, Some(c) if c != 0), "ffmpeg exit {code:?}");
    let url = format!("rtmp://127.0.0.1:{}/live/gamma", s.rtmp);
    let push_args: Vec<String> = ["push", "--duration", "10", "--quiet", &url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut push = Proc::start("push-gamma", &pstream_bin(), &push_args, &dir);
    let code = push.wait(Duration::from_secs(10));
    assert!(matches!(code, Some(c) if c != 0), "push exit {code:?}");
    assert!(
        push.stderr().contains("NetStream.Publish.BadName"),
        "{}",
        push.stderr()
    );
    assert!(get(s.http, "/stream/gamma.m3u8").is_none());
    assert!(s
        .proc
        .stderr()
        .contains("publish refused: key **** not in --keys"));
    // Both accepted streams are still live.
    let master = get_text(s.http, "/stream/alpha.m3u8");
    assert!(master.contains("alpha/source.m3u8"), "{master}");
}

/// The HTTP status of GET `path` (0 when curl gets no answer).
fn status(port: u16, path: &str) -> u16 {
    require("curl");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `pstream push` of the test pattern to `key` for `secs` seconds.
fn push(dir: &Path, name: &str, port: u16, key: &str, secs: u32) -> Proc {
    let url = format!("rtmp://127.0.0.1:{port}/live/{key}");
    let args: Vec<String> = ["push", "--duration", &secs.to_string(), "--quiet", &url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Proc::start(name, &pstream_bin(), &args, dir)
}

#[test]
fn publish_keys_are_not_viewing_names() {
    let _g = serial();
    let dir = temp_dir("serve-names");
    let keys = dir.join("keys.txt");
    std::fs::write(
        &keys,
        "# key, then the name viewers use\nPk7s3cret lobby\nopenkey\n",
    )
    .expect("write keys");
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "none",
            "--keys",
            keys.to_str().expect("utf-8"),
        ],
    );
    // One warning for the line whose viewers see its key, the key masked.
    let keys_line = format!(
        "{}:3: stream key **** has no name of its own",
        keys.display()
    );
    assert!(s.proc.stderr().contains(&keys_line), "{}", s.proc.stderr());
    assert_eq!(s.proc.stderr().matches("has no name of its own").count(), 1);
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "Pk7s3cret", "320x240", 20);
    let playlist = wait_for(Duration::from_secs(15), || {
        let p = get_text(s.http, "/stream/lobby/source.m3u8");
        (segments(&p).len() >= 2).then_some(p)
    })
    .unwrap_or_else(|| panic!("no segments under the name: {}", s.proc.stderr()));
    let seg = segments(&playlist)[0].clone();
    assert_eq!(status(s.http, &format!("/stream/lobby/{seg}")), 200);
    let master = get_text(s.http, "/stream/lobby.m3u8");
    assert!(master.contains("lobby/source.m3u8"), "{master}");
    assert!(!master.contains("Pk7s3cret"), "{master}");
    // The key's URLs are not there.
    for path in [
        "/stream/Pk7s3cret.m3u8".to_string(),
        "/stream/Pk7s3cret/source.m3u8".to_string(),
        format!("/stream/Pk7s3cret/{seg}"),
    ] {
        assert_eq!(status(s.http, &path), 404, "{path}");
    }
    // Publishing to the name is publishing with an unknown key.
    let mut by_name = push(&dir, "push-name", s.rtmp, "lobby", 10);
    let code = by_name.wait(Duration::from_secs(15));
    assert!(
        matches!(code, Some(c) if c != 0),
        "push to the name: exit {code:?}"
    );
    assert!(
        by_name.stderr().contains("NetStream.Publish.BadName"),
        "{}",
        by_name.stderr()
    );
    ff.signal("KILL");
    ff.wait(Duration::from_secs(5));
}

#[test]
fn keys_never_appear_in_serve_logs() {
    let _g = serial();
    let dir = temp_dir("serve-masked");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "Pk7s3cret lobby\nHv9s3cret other\n").expect("write keys");
    let env = [("PSTREAM_LOG".to_string(), "debug".to_string())];
    let mut s = start_serve_env(
        &dir,
        &[
            "--renditions",
            "none",
            "--keys",
            keys.to_str().expect("utf-8"),
        ],
        &env,
    );
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "Pk7s3cret", "320x240", 20);
    let live = wait_for(Duration::from_secs(15), || {
        let p = get_text(s.http, "/stream/lobby/source.m3u8");
        (!segments(&p).is_empty()).then_some(())
    });
    assert!(live.is_some(), "{}", s.proc.stderr());
    // The same key again while it is live, and a key not listed: refused.
    for (name, key) in [("busy", "Pk7s3cret"), ("wrong", "Wr0ngs3cret")] {
        let mut p = push(&dir, name, s.rtmp, key, 10);
        let code = p.wait(Duration::from_secs(15));
        assert!(matches!(code, Some(c) if c != 0), "{name}: exit {code:?}");
    }
    // A listed key whose media the server refuses (HEVC).
    let (mut weird, mut session) = raw_publish(s.rtmp, "Hv9s3cret");
    session
        .send_media(9, 0, &Bytes::from_static(&[0x1C, 0, 0, 0, 0, 1, 2, 3]))
        .expect("send");
    flush(&mut weird, &mut session);
    assert!(closed_within(&mut weird, Duration::from_secs(5)), "HEVC");
    ff.signal("KILL");
    ff.wait(Duration::from_secs(5));
    assert!(
        s.proc
            .wait_for_output("lobby: publisher gone", Duration::from_secs(10)),
        "{}",
        s.proc.stderr()
    );
    s.proc.signal("INT");
    assert_eq!(
        s.proc.wait(Duration::from_secs(15)),
        Some(0),
        "{}",
        s.proc.stderr()
    );
    let log = s.proc.stderr();
    for needle in [
        "not in --keys",
        "lobby is already publishing",
        "video codec id 12 (HEVC)",
        "serve finished",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    for key in ["Pk7s3cret", "Hv9s3cret", "Wr0ngs3cret"] {
        assert!(!log.contains(key), "{key} in the log: {log}");
    }
}

#[test]
fn without_keys_anyone_may_publish_up_to_max_streams() {
    let _g = serial();
    let dir = temp_dir("serve-max-streams");
    let s = start_serve(&dir, &["--renditions", "none", "--max-streams", "1"]);
    assert!(
        s.proc.stderr().contains("anyone may publish under any key"),
        "{}",
        s.proc.stderr()
    );
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "first", "320x240", 30);
    let live = wait_for(Duration::from_secs(15), || {
        let p = get_text(s.http, "/stream/first/source.m3u8");
        (!segments(&p).is_empty()).then_some(())
    });
    assert!(live.is_some(), "first stream: {}", s.proc.stderr());
    let mut second = push(&dir, "push-second", s.rtmp, "second", 10);
    let code = second.wait(Duration::from_secs(15));
    assert!(
        matches!(code, Some(c) if c != 0),
        "second stream: exit {code:?}"
    );
    assert!(
        second.stderr().contains("NetStream.Publish.BadName"),
        "{}",
        second.stderr()
    );
    assert!(
        s.proc.wait_for_output(
            "publish of a new stream refused: 1 streams are live, the --max-streams limit",
            Duration::from_secs(2)
        ),
        "{}",
        s.proc.stderr()
    );
    assert_eq!(status(s.http, "/stream/second.m3u8"), 404);
    // The refusal is counted on the stats line.
    assert!(
        s.proc.wait_for_output("streams 1,", Duration::from_secs(3)),
        "{}",
        s.proc.stderr()
    );
    // The first stream ends: a new one may come.
    ff.signal("KILL");
    ff.wait(Duration::from_secs(5));
    let mut third = ffmpeg_publish(&dir, "third", s.rtmp, "third", "320x240", 20);
    let live = wait_for(Duration::from_secs(20), || {
        let p = get_text(s.http, "/stream/third/source.m3u8");
        (!segments(&p).is_empty()).then_some(())
    });
    assert!(live.is_some(), "third stream: {}", s.proc.stderr());
    third.signal("KILL");
    third.wait(Duration::from_secs(5));
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The streams serve lists by state, from `/metrics` at `addr`: (live, ended).
fn listed_streams(addr: &str) -> (u64, u64) {
    let text = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&text.stdout);
    let value = |state: &str| {
        let name = format!("pstream_streams{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (value("live"), value("ended"))
}

/// serve's thread count now.
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .expect("Threads:")
}

#[test]
fn streams_that_end_release_their_entries_threads_and_hls_dir_files() {
    let _g = serial();
    require("curl");
    let dir = temp_dir("serve-release");
    let hls = dir.join("hls");
    let metrics = format!("127.0.0.1:{}", common::hls::free_tcp_port());
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "P144p30fps16x9",
            "--segment",
            "1",
            "--max-streams",
            "2",
            "--keep-ended",
            "20",
            "--hls-dir",
            hls.to_str().expect("utf-8"),
            "--metrics",
            &metrics,
        ],
    );
    let idle_threads = threads(s.proc.pid());
    // Five keys, one after another, each live until its first segments.
    let (mut most_listed, mut most_files) = (0, 0);
    for i in 0..5 {
        let key = format!("cycle{i}");
        let mut ff = ffmpeg_publish(&dir, &key, s.rtmp, &key, "320x240", 30);
        let live = wait_for(Duration::from_secs(15), || {
            let p = get_text(s.http, &format!("/stream/{key}/P144p30fps16x9.m3u8"));
            (!segments(&p).is_empty()).then_some(())
        });
        assert!(live.is_some(), "{key} not live: {}", s.proc.stderr());
        ff.signal("KILL");
        ff.wait(Duration::from_secs(5));
        assert!(
            s.proc
                .wait_for_output(&format!("{key}: publisher gone"), Duration::from_secs(10)),
            "{}",
            s.proc.stderr()
        );
        // The keeper evicts once a second.
        std::thread::sleep(Duration::from_millis(1500));
        let (live, ended) = listed_streams(&metrics);
        let files = files_below(&hls);
        let streams_on_disk: std::collections::BTreeSet<&str> = files
            .iter()
            .filter_map(|f| f.split(['/', '.']).next())
            .filter(|n| !n.is_empty())
            .collect();
        eprintln!(
            "after {key}: listed live {live} ended {ended}, {} files of {streams_on_disk:?}",
            files.len()
        );
        assert!(live + ended <= 2, "after {key}: {live} live, {ended} ended");
        assert!(streams_on_disk.len() <= 2, "after {key}: {files:?}");
        most_listed = most_listed.max(live + ended);
        most_files = most_files.max(files.len());
    }
    // The two newest are still listed, ended (the others were dropped oldest first).
    assert_eq!(status(s.http, "/stream/cycle0.m3u8"), 404);
    assert!(get_text(s.http, "/stream/cycle4/source.m3u8").contains("#EXT-X-ENDLIST"));
    // After --keep-ended nothing is left: no stream, no file, no stage thread.
    let released = wait_for(Duration::from_secs(30), || {
        let (live, ended) = listed_streams(&metrics);
        (live + ended == 0 && files_below(&hls).is_empty() && threads(s.proc.pid()) <= idle_threads)
            .then_some(())
    });
    assert!(
        released.is_some(),
        "listed {:?}, files {:?}, threads {} (idle {idle_threads}): {}",
        listed_streams(&metrics),
        files_below(&hls),
        threads(s.proc.pid()),
        s.proc.stderr()
    );
    eprintln!(
        "5 streams: at most {most_listed} listed and {most_files} files at once; threads back to {} (idle {idle_threads})",
        threads(s.proc.pid())
    );
    assert!(
        s.proc.stderr().contains("cycle4: ended stream dropped"),
        "{}",
        s.proc.stderr()
    );
}

#[test]
fn publisher_leaves_then_returns_endlist_then_discontinuity() {
    let _g = serial();
    let dir = temp_dir("serve-return");
    let s = start_serve(&dir, &["--renditions", "P144p30fps16x9"]);
    let mut first = ffmpeg_publish(&dir, "first", s.rtmp, "again", "640x480", 7);
    assert!(
        first.wait(Duration::from_secs(20)).is_some(),
        "ffmpeg did not finish"
    );
    for variant in ["source", "P144p30fps16x9"] {
        let path = format!("/stream/again/{variant}.m3u8");
        let ended = wait_for(Duration::from_secs(10), || {
            let p = get_text(s.http, &path);
            p.contains("#EXT-X-ENDLIST").then_some(p)
        });
        let p =
            ended.unwrap_or_else(|| panic!("no ENDLIST in {path}: {}", get_text(s.http, &path)));
        assert!(segments(&p).len() >= 2, "{p}");
        assert!(!p.contains("#EXT-X-DISCONTINUITY"), "{p}");
    }
    let before = segments(&get_text(s.http, "/stream/again/source.m3u8"));
    let _second = ffmpeg_publish(&dir, "second", s.rtmp, "again", "640x480", 20);
    for variant in ["source", "P144p30fps16x9"] {
        let path = format!("/stream/again/{variant}.m3u8");
        let back = wait_for(Duration::from_secs(15), || {
            let p = get_text(s.http, &path);
            let after = p.split("#EXT-X-DISCONTINUITY").nth(1).map(segments)?;
            (after.len() >= 2 && !p.contains("#EXT-X-ENDLIST")).then_some(p)
        });
        assert!(
            back.is_some(),
            "no discontinuity and new segments in {path}: {}\n{}",
            get_text(s.http, &path),
            s.proc.stderr()
        );
    }
    let after = segments(&get_text(s.http, "/stream/again/source.m3u8"));
    let last_before = before.last().and_then(|s| segment_number(s));
    assert!(
        after.iter().any(|a| segment_number(a) > last_before),
        "{before:?} -> {after:?}"
    );
}

/// Segments are served as immutable for a day, so a URL must never name
/// another segment: serve started again with the same key (as after a
/// crash or an upgrade) names its segments differently, and the old URLs
/// are gone rather than answered with new bytes.
#[test]
fn segment_names_are_new_after_serve_restarts() {
    let _g = serial();
    let dir = temp_dir("serve-names");
    let mut runs: Vec<(String, Vec<u8>)> = Vec::new();
    for run in 0..2 {
        let s = start_serve(&dir, &["--renditions", "none"]);
        let _ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "names", "320x240", 15);
        let path = "/stream/names/source.m3u8";
        let first = wait_for(Duration::from_secs(10), || {
            segments(&get_text(s.http, path)).first().cloned()
        })
        .unwrap_or_else(|| panic!("run {run}: no segment: {}", s.proc.stderr()));
        assert_eq!(segment_number(&first), Some(0), "run {run}: {first}");
        let body = get(s.http, &format!("/stream/names/{first}"))
            .unwrap_or_else(|| panic!("run {run}: GET {first} failed"));
        if let Some((old, _)) = runs.first() {
            assert_ne!(&first, old, "run {run} reuses a name of run 0");
            assert_eq!(
                get(s.http, &format!("/stream/names/{old}")),
                None,
                "run 0's {old} is answered by run {run}"
            );
        }
        runs.push((first, body));
    }
    for (name, _) in &runs {
        let stem = name
            .strip_prefix("source/")
            .and_then(|n| n.strip_suffix("-0.ts"))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `from`.
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local = std::net::SocketAddr::from((from, 0));
    sock.bind(&local.into()).expect("bind the local address");
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    sock.connect(&server.into()).expect("connect");
    sock.into()
}

/// A publish set up by hand over a raw socket, so that the test can then misbehave.
fn raw_publish(port: u16, key: &str) -> (TcpStream, PublishSession) {
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/{key}")).expect("url");
    let mut session = PublishSession::new(url);
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    session.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    while !session.is_live() {
        assert!(Instant::now() < deadline, "raw publish of {key} not live");
        while let Some(out) = session.poll_transmit() {
            sock.write_all(&out).expect("write");
        }
        match sock.read(&mut buf) {
            Ok(0) => panic!("server closed the raw publish of {key}"),
            Ok(n) => session.handle_input(&buf[..n]).expect("input"),
            Err(_) => {}
        }
        while let Some(ev) = session.poll_event() {
            assert_eq!(ev, SessionEvent::Live, "raw publish of {key}");
        }
    }
    (sock, session)
}

/// Sends the session's queued bytes.
fn flush(sock: &mut TcpStream, session: &mut PublishSession) {
    while let Some(out) = session.poll_transmit() {
        let _ = sock.write_all(&out);
    }
}

/// True if the server closes `sock` within `limit` (reads drain anything it sends first).
fn closed_within(sock: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// An AMF0 `connect` command in one type-0 chunk on chunk stream 3.
fn connect_chunk() -> Vec<u8> {
    let mut body = vec![0x02, 0, 7];
    body.extend(b"connect");
    body.push(0x00);
    body.extend(1.0f64.to_be_bytes());
    body.extend([0x03, 0, 3]);
    body.extend(b"app");
    body.extend([0x02, 0, 4]);
    body.extend(b"live");
    body.extend([0, 0, 0x09]);
    let len = body.len() as u32;
    let mut chunk = vec![0x03, 0, 0, 0];
    chunk.extend(&len.to_be_bytes()[1..]);
    chunk.push(20);
    chunk.extend([0, 0, 0, 0]);
    chunk.extend(body);
    chunk
}

#[test]
fn bad_clients_do_not_disturb_a_healthy_publisher_and_viewer() {
    let _g = serial();
    let dir = temp_dir("serve-bad");
    // Every bad client comes from 127.0.0.1, as the healthy publisher does.
    let s = start_serve(
        &dir,
        &[
            "--renditions",
            "P144p30fps16x9",
            "--max-connections",
            "64",
            "--max-connections-per-ip",
            "64",
        ],
    );
    let mut healthy = ffmpeg_publish(&dir, "healthy", s.rtmp, "healthy", "640x480", 60);
    let playlist = "/stream/healthy/P144p30fps16x9.m3u8";
    let first = wait_for(Duration::from_secs(15), || {
        let p = segments(&get_text(s.http, playlist));
        (p.len() >= 2).then_some(p)
    })
    .unwrap_or_else(|| panic!("healthy stream did not start: {}", s.proc.stderr()));
    let attack_start = Instant::now();
    let port = s.rtmp;

    // A viewer polls throughout and must always get the playlist.
    let http = s.http;
    let viewer = std::thread::spawn(move || {
        let mut failures = 0;
        let mut polls = 0;
        let deadline = Instant::now() + Duration::from_secs(22);
        while Instant::now() < deadline {
            polls += 1;
            if get(http, playlist).is_none() {
                failures += 1;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        (polls, failures)
    });

    // Garbage instead of a handshake: closed at once.
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = garbage.write_all(&junk);
    assert!(
        closed_within(&mut garbage, Duration::from_secs(5)),
        "garbage"
    );

    // Half a handshake, then silence: closed by the setup timeout.
    let mut half = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = half.write_all(&[3u8; 700]);
    let half_thread = std::thread::spawn(move || closed_within(&mut half, Duration::from_secs(16)));

    // A client that never reads: handshake, then commands whose answers pile up.
    let never_reads = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = sock.set_write_timeout(Some(Duration::from_millis(500)));
        let mut hello = vec![3u8];
        hello.extend(vec![0u8; 1536 * 2]);
        let _ = sock.write_all(&hello);
        let burst: Vec<u8> = std::iter::repeat_n(connect_chunk(), 200)
            .flatten()
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match sock.write(&burst) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    });

    // A lying NAL length inside a video tag: dropped and counted, the publish goes on;
    // then a chunk claiming a 16 MiB message: closed.
    let (mut liar, mut session) = raw_publish(port, "liar");
    let mut seq = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4];
    seq.extend([0x67, 0x42, 0xc0, 0x1e]);
    seq.extend([1, 0, 3, 0x68, 0xce, 0x3c]);
    session.send_media(9, 0, &Bytes::from(seq)).expect("send");
    let lying = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0x65, 1, 2]);
    session.send_media(9, 33, &lying).expect("send");
    flush(&mut liar, &mut session);
    assert!(
        !closed_within(&mut liar, Duration::from_secs(1)),
        "a malformed tag closed the connection"
    );
    let _ = liar.write_all(&[0x05, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0]);
    assert!(
        closed_within(&mut liar, Duration::from_secs(5)),
        "lying length"
    );

    // An unknown codec (HEVC by FLV codec id 12): the stream is refused.
    let (mut weird, mut session) = raw_publish(port, "weird");
    session
        .send_media(9, 0, &Bytes::from_static(&[0x1C, 0, 0, 0, 0, 1, 2, 3]))
        .expect("send");
    flush(&mut weird, &mut session);
    assert!(
        closed_within(&mut weird, Duration::from_secs(5)),
        "unknown codec"
    );
    assert!(
        s.proc
            .wait_for_output("video codec id 12 (HEVC)", Duration::from_secs(2)),
        "{}",
        s.proc.stderr()
    );

    // A flood of 200 connections: past --max-connections they are closed at once.
    let mut flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(flood.len() >= 100, "only {} connected", flood.len());
    // Let the server get through its accept queue.
    std::thread::sleep(Duration::from_secs(1));
    let closed = flood
        .iter_mut()
        .filter_map(|c| {
            let _ = c.set_read_timeout(Some(Duration::from_millis(20)));
            let gone = matches!(c.read(&mut [0u8; 1]), Ok(0) | Err(_))
                && matches!(c.read(&mut [0u8; 1]), Ok(0));
            gone.then_some(())
        })
        .count();
    assert!(closed >= 100, "only {closed} of 200 closed at the limit");
    drop(flood);

    assert!(
        half_thread.join().expect("half"),
        "half handshake not closed"
    );
    assert!(
        never_reads.join().expect("never reads"),
        "non-reading client not closed"
    );
    let (polls, failures) = viewer.join().expect("viewer");
    assert_eq!(failures, 0, "viewer failed {failures} of {polls} polls");

    // The healthy stream kept going all along.
    assert!(attack_start.elapsed() >= Duration::from_secs(10));
    let now = segments(&get_text(s.http, playlist));
    let advanced = now
        .last()
        .zip(first.last())
        .map(|(a, b)| {
            let n = |s: &str| segment_number(s).unwrap_or(0);
            n(a).saturating_sub(n(b))
        })
        .unwrap_or(0);
    assert!(advanced >= 4, "{first:?} -> {now:?}\n{}", s.proc.stderr());
    assert!(!get_text(s.http, playlist).contains("#EXT-X-ENDLIST"));
    // Still running (wait() kills it after the 10 ms and reports None).
    assert!(
        healthy.wait(Duration::from_millis(10)).is_none(),
        "the healthy publisher stopped: {}",
        healthy.stderr()
    );
}

#[test]
fn one_address_holding_half_handshakes_does_not_keep_another_out() {
    let _g = serial();
    let dir = temp_dir("serve-per-ip");
    let s = start_serve(&dir, &["--renditions", "none", "--max-connections", "16"]);
    // 32 connections from 127.0.0.2, each half a handshake and then silence:
    // more than every slot there is, each held until the setup deadline.
    let held: Vec<TcpStream> = (0..32)
        .map(|_| {
            let mut c = connect_from([127, 0, 0, 2], s.rtmp);
            let _ = c.write_all(&[3u8; 700]);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // The recipe's publisher from 127.0.0.1 still gets in and goes live,
    // well before the held connections' setup deadline (10 s) frees slots.
    let started = Instant::now();
    let mut ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, "elsewhere", "320x240", 20);
    let live = wait_for(Duration::from_secs(15), || {
        let p = get_text(s.http, "/stream/elsewhere/source.m3u8");
        (!segments(&p).is_empty()).then_some(())
    });
    assert!(
        live.is_some(),
        "no playlist: {}\n{}",
        s.proc.stderr(),
        ff.stderr()
    );
    eprintln!("playlist with a segment after {:?}", started.elapsed());
    assert!(
        s.proc
            .stderr()
            .contains("elsewhere: publishing from 127.0.0.1"),
        "{}",
        s.proc.stderr()
    );
    // The address's connections past its 4 were refused and counted.
    assert!(
        s.proc.wait_for_output("per-ip 28,", Duration::from_secs(3)),
        "{}",
        s.proc.stderr()
    );
    ff.signal("KILL");
    ff.wait(Duration::from_secs(5));
    drop(held);
}

#[test]
fn bad_options_are_one_error_line_and_a_non_zero_exit() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["serve", "--keys", "/nonexistent/keys.txt"],
            "cannot read --keys /nonexistent/keys.txt",
        ),
        (&["serve", "--renditions", "P100p"], "unknown rendition"),
        (&["serve", "--segment", "0"], "between 0.5 and 60"),
        (
            &["serve", "--rtmp", &busy_addr, "--http", "127.0.0.1:0"],
            "cannot listen on --rtmp",
        ),
    ];
    for (args, needle) in cases {
        let (code, _out, err) = common::run_pstream(args, Duration::from_secs(10));
        assert!(matches!(code, Some(c) if c != 0), "{args:?}: exit {code:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
