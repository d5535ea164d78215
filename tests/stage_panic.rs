//! A panicking stage is a bug, and it must show: the run ends at once with
//! exit status 70 (EX_SOFTWARE) and one error line naming the stage, never
//! a process that carries on without it or exits 0. In `pstream serve` a
//! stage belongs to one published stream: that stream ends (its key free
//! again), the others and the server go on. The panics come from the stage
//! runner's fault hook (`PSTREAM_FAULT_PANIC`, compiled into test builds
//! only).

mod common;

use std::time::{Duration, Instant};

use common::hls::{ffmpeg_publish, get_text, segments, start_serve_env, wait_for};
use common::video::{stat, summary};
use common::*;

/// Runs pstream with `stage` made to panic; returns (exit code, seconds taken, stderr).
fn run_with_panic(test: &str, stage: &str, args: &[String]) -> (Option<i32>, f64, String) {
    let dir = temp_dir(test);
    let started = Instant::now();
    let mut p = Proc::start_env(
        "pstream",
        &pstream_bin(),
        args,
        &dir,
        &[("PSTREAM_FAULT_PANIC".into(), stage.into())],
    );
    let code = p.wait(Duration::from_secs(30));
    let secs = started.elapsed().as_secs_f64();
    let err = p.stderr();
    let _ = std::fs::remove_dir_all(&dir);
    (code, secs, err)
}

fn assert_named_panic(stage: &str, code: Option<i32>, secs: f64, err: &str) {
    assert_eq!(code, Some(70), "exit status: {err}");
    // The run was meant to last 20 s: the panic ended it.
    assert!(secs < 15.0, "took {secs:.1} s to end: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("pstream: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        line.contains(&format!("stage {stage} panicked")),
        "error line does not name {stage}: {line}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("pstream: error:"))
            .count(),
        1,
        "one error line: {err}"
    );
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace hint: {err}");
}

#[test]
fn send_ends_with_status_70_naming_a_panicking_encoder() {
    let _turn = serial();
    let base = free_port_base();
    let args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--size",
        "320x240",
        "--duration",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, secs, err) = run_with_panic("panic-send", "video-encode", &args);
    assert_named_panic("video-encode", code, secs, &err);
}

#[test]
fn push_ends_with_status_70_naming_a_panicking_destination() {
    let _turn = serial();
    let dir = temp_dir("panic-push-out");
    let out = dir.join("out.flv");
    let args: Vec<String> = vec![
        format!("file:{}", out.display()),
        "--size".into(),
        "320x240".into(),
        "--duration".into(),
        "20".into(),
    ];
    let args: Vec<String> = std::iter::once("push".to_string()).chain(args).collect();
    let (code, secs, err) = run_with_panic("panic-push", "dest-1", &args);
    let _ = std::fs::remove_dir_all(&dir);
    assert_named_panic("dest-1", code, secs, &err);
}

fn recv_args(base: u16) -> Vec<String> {
    [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--duration",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A receiver with nothing arriving: the hook fires as the stage starts.
#[test]
fn recv_ends_with_status_70_naming_a_panicking_decoder() {
    let _turn = serial();
    for stage in ["video-decode", "audio-decode"] {
        let base = free_port_base();
        let (code, secs, err) =
            run_with_panic(&format!("panic-recv-{stage}"), stage, &recv_args(base));
        assert_named_panic(stage, code, secs, &err);
    }
}

/// A receiver that a sender is already streaming to: its decoder panics
/// mid-stream, after N units went through it (`STAGE@N`), with packets
/// arriving on every socket. The run still ends at once with the panic
/// named, the summary shows what was decoded before, and the sender carries on.
#[test]
fn recv_panicking_mid_stream_ends_with_status_70() {
    let _turn = serial();
    for (stage, after) in [("video-decode", 30), ("audio-decode", 50)] {
        let base = free_port_base();
        let dir = temp_dir(&format!("panic-recv-streaming-{stage}"));
        let send_args: Vec<String> = [
            "send",
            "--peer",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--size",
            "320x240",
            "--duration",
            "30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut send = Proc::start("pstream-send", &pstream_bin(), &send_args, &dir);
        assert!(
            send.wait_for_output("sending to", Duration::from_secs(20)),
            "pstream send did not start:\n{}",
            send.stderr()
        );
        let (code, secs, err) = run_with_panic(
            &format!("panic-recv-data-{stage}"),
            &format!("{stage}@{after}"),
            &recv_args(base),
        );
        assert_named_panic(stage, code, secs, &err);
        let got = summary(&err, "recv finished");
        let stream = &stage[..5];
        let decoded = stat(got, stream, "frames").unwrap_or_else(|| panic!("{got}"));
        assert!(
            decoded >= f64::from(after),
            "panicked before {after}: {got}"
        );
        assert_eq!(
            send.wait(Duration::from_millis(100)),
            None,
            "the sender stopped too:\n{}",
            send.stderr()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The number in a segment URI (`source/<session>-12.ts` -> 12).
fn segment_number(uri: &str) -> u64 {
    common::hls::segment_number(uri).unwrap_or(0)
}

/// The newest segment number `path` lists, once it lists at least `at_least` segments.
fn newest_segment(http: u16, path: &str, at_least: usize) -> Option<u64> {
    let list = segments(&get_text(http, path));
    (list.len() >= at_least)
        .then(|| list.last().map(|s| segment_number(s)))
        .flatten()
}

#[test]
fn serve_ends_only_the_stream_of_a_panicking_stage_and_frees_its_key() {
    let _turn = serial();
    let dir = temp_dir("panic-serve");
    // Serve's stage names carry the publish session
    // (`serve/<key>/<session>/<variant>`), so the hook hits the source
    // stage of `bad`'s first session only: its second publish runs clean.
    let stage = "serve/bad/1/source";
    let s = start_serve_env(
        &dir,
        &["--renditions", "P144p30fps16x9"],
        &[("PSTREAM_FAULT_PANIC".into(), stage.into())],
    );
    let mut good = ffmpeg_publish(&dir, "good", s.rtmp, "good", "320x240", 90);
    let good_source = "/stream/good/source.m3u8";
    let good_low = "/stream/good/P144p30fps16x9.m3u8";
    wait_for(Duration::from_secs(15), || {
        newest_segment(s.http, good_low, 2)
    })
    .unwrap_or_else(|| panic!("good did not start: {}", s.proc.stderr()));

    // bad's source stage panics as its stages start: its publish ends (the
    // server closes the connection and ffmpeg exits), its playlists end.
    let mut bad = ffmpeg_publish(&dir, "bad", s.rtmp, "bad", "320x240", 60);
    let code = bad.wait(Duration::from_secs(20));
    assert!(
        code.is_some(),
        "bad's ffmpeg was not cut off: {}\n{}",
        bad.stderr(),
        s.proc.stderr()
    );
    let bad_ended = Instant::now();
    for variant in ["source", "P144p30fps16x9"] {
        let path = format!("/stream/bad/{variant}.m3u8");
        let ended = wait_for(Duration::from_secs(5), || {
            get_text(s.http, &path)
                .contains("#EXT-X-ENDLIST")
                .then_some(())
        });
        assert!(
            ended.is_some(),
            "no ENDLIST in {path}: {}",
            get_text(s.http, &path)
        );
    }
    let good_then = newest_segment(s.http, good_source, 1).expect("good's playlist");
    let good_low_then = newest_segment(s.http, good_low, 1).expect("good's rendition");

    // The key is free at once: bad publishes again, without the fault.
    let _bad_again = ffmpeg_publish(&dir, "bad-again", s.rtmp, "bad", "320x240", 60);
    // (The first session ended before its first segment: the playlist's
    // ENDLIST goes and new segments come.)
    let back = wait_for(Duration::from_secs(15), || {
        let p = get_text(s.http, "/stream/bad/source.m3u8");
        (segments(&p).len() >= 2 && !p.contains("#EXT-X-ENDLIST")).then_some(p)
    });
    assert!(
        back.is_some(),
        "bad's second publish gave no new segments: {}\n{}",
        get_text(s.http, "/stream/bad/source.m3u8"),
        s.proc.stderr()
    );
    assert!(
        s.proc.stderr().contains("bad: publishing from") && s.proc.stderr().contains("(session 2)"),
        "{}",
        s.proc.stderr()
    );

    // good went on producing segments for several seconds after bad ended.
    let wait = Duration::from_secs(8).saturating_sub(bad_ended.elapsed());
    std::thread::sleep(wait);
    let good_now = newest_segment(s.http, good_source, 1).expect("good's playlist");
    let good_low_now = newest_segment(s.http, good_low, 1).expect("good's rendition");
    assert!(
        good_now >= good_then + 3 && good_low_now >= good_low_then + 3,
        "good stalled: source {good_then} -> {good_now}, P144 {good_low_then} -> {good_low_now}\n{}",
        s.proc.stderr()
    );
    for path in [good_source, good_low] {
        assert!(!get_text(s.http, path).contains("#EXT-X-ENDLIST"), "{path}");
    }
    assert!(
        good.wait(Duration::from_millis(10)).is_none(),
        "good's publisher stopped: {}",
        good.stderr()
    );

    // serve is still running, and stops cleanly when asked.
    s.proc.signal("INT");
    let mut serve = s.proc;
    let code = serve.wait(Duration::from_secs(15));
    let err = serve.stderr();
    assert_eq!(code, Some(0), "serve's exit: {err}");
    // One error line says which stream ended and which stage panicked;
    // besides it only the panic hook's line (where the panic happened).
    let ended: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("stream ended (session"))
        .collect();
    assert_eq!(ended.len(), 1, "{err}");
    assert!(
        ended[0].contains(" ERROR ")
            && ended[0].contains("bad: stream ended (session 1)")
            && ended[0].contains(&format!("stage {stage} panicked")),
        "{}",
        ended[0]
    );
    let other_errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(" ERROR ") && !l.contains("stream ended (session"))
        .filter(|l| !l.contains(&format!("thread {stage} panicked at")))
        .collect();
    assert!(other_errors.is_empty(), "{other_errors:?}");
    assert!(!err.contains("pstream: error:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
