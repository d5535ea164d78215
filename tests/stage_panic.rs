//! A panicking stage is a bug, and it must show: the run ends at once with
//! exit status 70 (EX_SOFTWARE) and one error line naming the stage, never
//! a process that carries on without it or exits 0. The panics come from
//! the stage runner's fault hook (`PSTREAM_FAULT_PANIC`, compiled into
//! test builds only).

mod common;

use std::time::{Duration, Instant};

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
