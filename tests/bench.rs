//! `pstream bench encode` as a user runs it: every row of the table has
//! plausible figures, the lists multiply into rows, bad arguments get one
//! error line, and its PSNR agrees with ffmpeg's on the same pictures.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Runs `pstream bench encode ARGS --json` and returns its rows.
fn bench_rows(args: &[&str]) -> Vec<Value> {
    let mut argv = vec!["bench", "encode", "--json"];
    argv.extend_from_slice(args);
    let (code, out, err) = run_pstream(&argv, Duration::from_secs(300));
    assert_eq!(code, Some(0), "{argv:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(
        json["machine"]["cores"].as_u64().is_some_and(|n| n >= 1),
        "{json}"
    );
    json["rows"].as_array().cloned().unwrap_or_default()
}

fn num(row: &Value, path: &[&str]) -> f64 {
    let mut v = row;
    for key in path {
        v = &v[*key];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {row}"))
}

/// What every row must show, whatever the codec.
fn check_common(row: &Value, frames: u64) {
    assert_eq!(row["frames"].as_u64(), Some(frames), "{row}");
    assert_eq!(row["paced"], false, "{row}");
    let (median, p95, p99, max) = (
        num(row, &["latency_ms", "median"]),
        num(row, &["latency_ms", "p95"]),
        num(row, &["latency_ms", "p99"]),
        num(row, &["latency_ms", "max"]),
    );
    assert!(
        median > 0.0 && median <= p95 && p95 <= p99 && p99 <= max,
        "{row}"
    );
    assert!(max < 5000.0, "{row}");
    assert!(num(row, &["headroom"]) > 0.0, "{row}");
    let cpu = num(row, &["cpu_ms_per_frame"]);
    assert!(cpu > 0.0 && cpu < 10.0 * max, "{row}");
    assert!(num(row, &["thread_cpu_ms_per_frame"]) > 0.0, "{row}");
}

#[test]
fn h264_rows_are_the_product_of_the_lists() {
    let _serial = serial();
    let rows = bench_rows(&[
        "--sizes",
        "320x240,640x360",
        "--presets",
        "fast,quality",
        "--frames",
        "30",
    ]);
    assert_eq!(rows.len(), 2 * 2, "{rows:?}");
    let mut seen = Vec::new();
    for row in &rows {
        assert_eq!(row["codec"], "h264", "{row}");
        check_common(row, 30);
        assert_eq!(row["threads"], 1);
        assert_eq!(row["target_kbps"], 2500);
        assert_eq!(row["fps"], 30.0);
        let psnr = num(row, &["psnr_db", "y"]);
        assert!(psnr > 30.0 && psnr <= 100.0, "{row}");
        assert!(num(row, &["psnr_db", "min_y"]) <= psnr + 1e-9, "{row}");
        let kbps = num(row, &["bitrate_kbps"]);
        // Never far over the target. Far under it only where openh264 is at
        // its finest quantiser (QP 12, above 45 dB): the pattern needs no
        // more bits there. (psnr_agrees_with_ffmpeg checks the rate on
        // content that takes the bits.)
        assert!(kbps > 0.0 && kbps <= 2500.0 * 1.5, "{row}");
        assert!(kbps >= 2500.0 / 2.0 || psnr > 45.0, "{row}");
        assert_eq!(
            row["encoded"].as_u64().unwrap_or(0) + row["skipped"].as_u64().unwrap_or(0),
            30,
            "{row}"
        );
        seen.push((
            row["width"].as_u64().unwrap_or(0),
            row["preset"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let want: Vec<(u64, String)> = [
        (320, "fast"),
        (320, "quality"),
        (640, "fast"),
        (640, "quality"),
    ]
    .iter()
    .map(|(w, p)| (*w, p.to_string()))
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn mjpeg_and_audio_rows() {
    let _serial = serial();
    let rows = bench_rows(&[
        "--codecs",
        "mjpeg,opus,aac",
        "--sizes",
        "320x240",
        "--qualities",
        "50,95",
        "--audio-bitrates",
        "64,128",
        "--frames",
        "60",
    ]);
    assert_eq!(rows.len(), 2 + 2 + 2, "{rows:?}");
    let (q50, q95) = (&rows[0], &rows[1]);
    for row in [q50, q95] {
        assert_eq!(row["codec"], "mjpeg");
        check_common(row, 60);
        assert_eq!(row["encoded"], 60);
        assert!(num(row, &["psnr_db", "y"]) > 30.0, "{row}");
    }
    assert!(num(q95, &["psnr_db", "y"]) > num(q50, &["psnr_db", "y"]) + 3.0);
    assert!(num(q95, &["bitrate_kbps"]) > 1.5 * num(q50, &["bitrate_kbps"]));
    for (row, codec, kbps) in [
        (&rows[2], "opus", 64.0),
        (&rows[3], "opus", 128.0),
        (&rows[4], "aac", 64.0),
        (&rows[5], "aac", 128.0),
    ] {
        assert_eq!(row["codec"], codec, "{row}");
        // 60 pictures at 30 fps: 2 s of sound, 100 Opus or 94 AAC frames.
        let frames = if codec == "opus" { 100 } else { 94 };
        check_common(row, frames);
        assert_eq!(
            (row["sample_rate"].as_u64(), row["channels"].as_u64()),
            (Some(48_000), Some(2))
        );
        let got = num(row, &["bitrate_kbps"]);
        assert!((kbps * 0.5..=kbps * 1.5).contains(&got), "{row}");
        // Each 20 ms or 21 ms frame encodes in a fraction of its duration.
        assert!(num(row, &["headroom"]) > 5.0, "{row}");
        let psnr = num(row, &["psnr_db", "all"]);
        assert!(psnr > 20.0 && psnr < 100.0, "{row}");
    }
}

fn fails_with(args: &[&str], needle: &str) {
    let (code, _out, err) = run_pstream(args, Duration::from_secs(60));
    assert_eq!(code, Some(2), "{args:?} exited {code:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
    let error_lines = err.lines().filter(|l| l.contains("error")).count();
    assert_eq!(
        error_lines, 1,
        "{args:?}: expected one error line, got: {err}"
    );
}

#[test]
fn bad_arguments_get_one_error_line() {
    let b = ["bench", "encode"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        b.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails_with(&with(&["--sizes", "640x361"]), "640x361");
    fails_with(&with(&["--sizes", "640x360,,1280x720"]), "empty item");
    fails_with(&with(&["--presets", "fast,slow"]), "\"slow\"");
    fails_with(&with(&["--threads", "1,17"]), "between 0 and 16");
    fails_with(&with(&["--codecs", "h265"]), "h265");
    fails_with(
        &with(&["--qualities", "85,85", "--codecs", "mjpeg"]),
        "listed twice",
    );
    fails_with(&with(&["--frames", "10", "--duration", "2"]), "--duration");
    // Past the parser: the encoder's own limits, before any row runs.
    fails_with(
        &with(&["--sizes", "4096x2160", "--frames", "1"]),
        "3840x2160",
    );
    fails_with(
        &with(&["--video", "y4m:-", "--sizes", "320x240,640x360"]),
        "standard input",
    );
    fails_with(
        &with(&["--video", "y4m:/nonexistent/a.y4m"]),
        "/nonexistent/a.y4m",
    );
}

/// A Y4M file ffmpeg made, through the bench (the file source at its own
/// size), and as a sanity check of the PSNR's scale: ffmpeg's psnr filter
/// on x264 at the same bitrate lands in the same ballpark.
#[test]
fn psnr_agrees_with_ffmpeg() {
    require("ffmpeg");
    let _serial = serial();
    let dir = temp_dir("bench-ffmpeg");
    let y4m = dir.join("in.y4m");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30")
        .args(["-frames:v", "30", "-pix_fmt", "yuv420p", "-y"])
        .arg(&y4m)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let spec = format!("y4m:{}", y4m.display());
    let rows = bench_rows(&[
        "--video",
        &spec,
        "--codecs",
        "h264,mjpeg",
        "--presets",
        "fast",
        "--bitrates",
        "800",
        "--frames",
        "30",
    ]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        check_common(row, 30);
        assert_eq!(
            (row["width"].as_u64(), row["height"].as_u64()),
            (Some(320), Some(240))
        );
        assert!(num(row, &["psnr_db", "y"]) > 30.0, "{row}");
    }
    // testsrc2 takes the bits: rate control lands near the target.
    let kbps = num(&rows[0], &["bitrate_kbps"]);
    assert!((800.0 * 0.8..=800.0 * 1.25).contains(&kbps), "{}", rows[0]);
    // ffmpeg's x264 at the same bitrate on the same file: a different
    // encoder, so only the same ballpark (this checks the bench's PSNR is
    // on ffmpeg's scale, not which encoder is better).
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(&y4m)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-b:v",
            "800k",
        ])
        .args(["-f", "h264", "-y"])
        .arg(dir.join("x264.h264"))
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    // A raw H.264 stream has no timestamps: -r 30 lines its pictures up
    // with the file's, one for one.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-r", "30", "-i"])
        .arg(dir.join("x264.h264"))
        .arg("-i")
        .arg(&y4m)
        .args(["-lavfi", "psnr", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr);
    let y: f64 = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix("y:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no PSNR in: {log}"));
    let ours = num(&rows[0], &["psnr_db", "y"]);
    assert!(
        (ours - y).abs() < 6.0,
        "bench {ours:.2} dB, ffmpeg x264 {y:.2} dB"
    );
    eprintln!("luma PSNR at 800 kbit/s: pstream openh264 fast {ours:.2} dB, ffmpeg x264 ultrafast {y:.2} dB");
}

/// Runs `pstream bench loopback ARGS --json` and returns its report.
fn loopback(args: &[&str]) -> Value {
    let mut argv = vec!["bench", "loopback", "--json"];
    argv.extend_from_slice(args);
    let (code, out, err) = run_pstream(&argv, Duration::from_secs(300));
    assert_eq!(code, Some(0), "{argv:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A run's or a median's latency figures are ordered and finite.
fn check_latency(l: &Value) {
    let (median, p95, p99, max) = (
        num(l, &["median_ms"]),
        num(l, &["p95_ms"]),
        num(l, &["p99_ms"]),
        num(l, &["max_ms"]),
    );
    assert!(
        median > 0.0 && median <= p95 && p95 <= p99 && p99 <= max && max < 5000.0,
        "{l}"
    );
}

/// pstream send -> recv on loopback, two sizes: every picture that went in
/// comes out with its timecode read, and the seven stages, taken from the
/// pipelines' own probes, add up to capture -> read out per picture.
#[test]
fn loopback_rows_and_stages() {
    let _serial = serial();
    let json = loopback(&["--sizes", "320x240,640x360", "--frames", "40"]);
    let rows = json["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{json}");
    for row in &rows {
        let pipelines = row["pipelines"].as_array().cloned().unwrap_or_default();
        assert_eq!(pipelines.len(), 1, "{row}");
        let p = &pipelines[0];
        assert_eq!(p["pipeline"], "pstream", "{row}");
        let runs = p["runs"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "{row}");
        let run = &runs[0];
        let pictures_in = num(run, &["pictures_in"]);
        assert!(pictures_in >= 40.0, "{run}");
        // Loopback loses nothing; the decoder may wait for the first IDR
        // only if the first packets beat the receiver (they do not: it
        // starts first), so every picture comes out, timecode read.
        assert_eq!(run["pictures_out"], run["pictures_in"], "{run}");
        assert_eq!(run["timecoded"], run["pictures_out"], "{run}");
        check_latency(&run["latency"]);
        let stages = row["stages"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = stages.iter().filter_map(|s| s["stage"].as_str()).collect();
        assert_eq!(
            names,
            [
                "capture+convert",
                "encode",
                "packetize+send",
                "network+receive",
                "depacketize",
                "decode",
                "output"
            ],
            "{row}"
        );
        assert_eq!(row["staged_pictures"], run["timecoded"], "{row}");
        let sum: f64 = stages.iter().map(|s| num(s, &["latency", "mean_ms"])).sum();
        for s in &stages {
            let l = &s["latency"];
            assert!(num(l, &["median_ms"]) >= 0.0, "{s}");
            assert!(num(l, &["p99_ms"]) >= num(l, &["median_ms"]), "{s}");
        }
        assert!(
            num(&stages[1], &["latency", "median_ms"]) > 0.0,
            "encoding takes time: {row}"
        );
        assert!(
            num(&stages[5], &["latency", "median_ms"]) > 0.0,
            "decoding takes time: {row}"
        );
        // The stage instants and the timecode are two clocks' readings of
        // the same interval: their means agree within a millisecond.
        let total = num(row, &["staged_total_mean_ms"]);
        let timecoded_mean = num(run, &["latency", "mean_ms"]);
        assert!(
            // Not exact: a stage whose end is stamped after the next
            // stage's (the sender stamps 'sent' after its send call
            // returns; the receiver may have read the datagram by then)
            // counts as zero, not negative.
            (sum - total).abs() < 0.5,
            "stages {sum} vs total {total}: {row}"
        );
        assert!(
            (total - timecoded_mean).abs() < 1.0,
            "stage instants {total} ms vs timecode {timecoded_mean} ms: {row}"
        );
    }
}

/// With --compare gstreamer, GStreamer's x264 and openh264 pipelines run on
/// the same pictures beside pstream's, interleaved, and get a ratio.
#[test]
fn loopback_compares_with_gstreamer() {
    require("gst-launch-1.0");
    let _serial = serial();
    let json = loopback(&[
        "--sizes",
        "320x240",
        "--frames",
        "30",
        "--runs",
        "1",
        "--compare",
        "gstreamer",
    ]);
    let row = &json["rows"][0];
    let pipelines = row["pipelines"].as_array().cloned().unwrap_or_default();
    let labels: Vec<&str> = pipelines
        .iter()
        .filter_map(|p| p["pipeline"].as_str())
        .collect();
    assert_eq!(
        labels,
        ["pstream", "gstreamer-x264", "gstreamer-openh264"],
        "{row}"
    );
    for p in &pipelines {
        assert!(p["skipped"].is_null(), "{p}");
        let run = &p["runs"][0];
        // pstream's test source may capture one more before it is stopped.
        assert!(num(run, &["pictures_in"]) >= 30.0, "{p}");
        // Every picture fed to GStreamer comes out timecoded, but x264's
        // first may be waited for by the decoder: at most one short.
        assert!(num(run, &["timecoded"]) >= 29.0, "{p}");
        check_latency(&run["latency"]);
        check_latency(&p["median"]);
        if p["pipeline"] != "pstream" {
            let ratio = num(p, &["ratio"]);
            let want =
                num(&pipelines[0], &["median", "median_ms"]) / num(p, &["median", "median_ms"]);
            assert!((ratio - want).abs() < 1e-9 && ratio > 0.0, "{p}");
        }
    }
}

/// --plot writes one SVG with the latency histogram (a series per
/// pipeline) and the stage bars (every stage named).
#[test]
fn loopback_plot_is_an_svg() {
    let _serial = serial();
    let dir = temp_dir("bench-plot");
    let svg = dir.join("latency.svg");
    let svg_arg = svg.to_string_lossy().into_owned();
    let (code, out, err) = run_pstream(
        &[
            "bench", "loopback", "--sizes", "320x240", "--frames", "30", "--plot", &svg_arg,
        ],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("pstream stages over"), "{out}");
    let text = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
    assert!(
        text.trim_start().starts_with("<svg"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.trim_end().ends_with("</svg>"));
    // The text of every <text> element, trimmed (plotters puts it on a line of its own).
    let texts: Vec<&str> = text
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("capture -&gt; decoded latency")),
        "no histogram title: {texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("pstream: median")),
        "no pstream series: {texts:?}"
    );
    assert!(text.contains("<polyline"), "no histogram line");
    for stage in [
        "capture+convert",
        "encode",
        "packetize+send",
        "network+receive",
        "depacketize",
        "decode",
        "output",
    ] {
        assert!(texts.contains(&stage), "no bar label {stage}: {texts:?}");
    }
    assert!(text.matches("<rect").count() >= 14, "no stage bars");
}

#[test]
fn loopback_bad_arguments_get_one_error_line() {
    let b = ["bench", "loopback"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        b.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails_with(&with(&["--sizes", "640x361"]), "640x361");
    fails_with(&with(&["--fps", "30,30"]), "listed twice");
    fails_with(&with(&["--fps", "0"]), "rate");
    fails_with(&with(&["--compare", "vlc"]), "\"vlc\"");
    fails_with(&with(&["--preset", "slow"]), "\"slow\"");
    fails_with(&with(&["--frames", "5"]), "--frames");
    fails_with(&with(&["--runs", "0"]), "--runs");
    fails_with(&with(&["--sizes", "4096x2160"]), "3840x2160");
    fails_with(
        &with(&["--plot", "/nonexistent/dir/a.svg"]),
        "/nonexistent/dir/a.svg",
    );
}
