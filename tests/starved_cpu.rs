//! A sender starved of CPU stays live: pinned with `taskset` to one core
//! beside busy loops pinned to the same core, `pstream send` at 1080p60 with
//! the slowest preset cannot encode every frame. Frames must then be dropped
//! before the encoder (counted as `src-drop`) while the age of what is sent
//! and the process's memory stay bounded: no queue grows.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::video::{stat, summary};
use common::*;

/// Busy loops sharing the sender's core: the sender gets about a quarter of it.
const BUSY_LOOPS: usize = 3;
const SECONDS: u64 = 8;

#[test]
fn starved_sender_drops_at_the_source_with_bounded_age_and_memory() {
    let _turn = serial();
    require("taskset");
    let dir = temp_dir("starved");
    let taskset = PathBuf::from("taskset");
    let busy: Vec<Proc> = (0..BUSY_LOOPS)
        .map(|i| {
            let args = ["-c", "0", "sh", "-c", "while :; do :; done"].map(String::from);
            Proc::start(&format!("busy{i}"), &taskset, &args, &dir)
        })
        .collect();
    let base = free_port_base();
    let args: Vec<String> = [
        "-c",
        "0",
        &pstream_bin().display().to_string(),
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--size",
        "1920x1080",
        "--fps",
        "60",
        "--preset",
        "quality",
        "--duration",
        &SECONDS.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut send = Proc::start("send", &taskset, &args, &dir);
    let code = send.wait(Duration::from_secs(SECONDS + 30));
    drop(busy);
    let log = send.stderr();
    assert_eq!(code, Some(0), "send failed:\n{log}");
    let line = summary(&log, "send finished");

    let frames = stat(line, "video", "frames").unwrap_or_else(|| panic!("no frames: {line}"));
    let src_drop = stat(line, "video", "src-drop").unwrap_or_else(|| panic!("no src-drop: {line}"));
    let age_ms = stat(line, "video", "age-max").unwrap_or_else(|| panic!("no age-max: {line}"));
    let rss_mib = stat(line, "rss-peak", "rss-peak").unwrap_or_else(|| panic!("no rss: {line}"));
    eprintln!("starved sender: {line}");

    // It kept sending, and what it could not encode was dropped and counted.
    assert!(frames >= 10.0, "almost nothing was encoded: {line}");
    assert!(
        src_drop > 0.0,
        "a starved encoder must drop at the source: {line}"
    );
    let made = 60.0 * SECONDS as f64;
    assert!(
        frames + src_drop <= made + 30.0,
        "more frames than the source made: {line}"
    );
    // Bounded: two queued raw frames plus one in the encoder, each taking at
    // most a few hundred milliseconds on a quarter core. A queue that grew
    // would age pictures by seconds over the run.
    assert!(age_ms < 1500.0, "frames aged {age_ms} ms: {line}");
    // 1080p raw frames are 3.1 MB each; a growing queue over 8 s would pass
    // this by far (480 frames = 1.5 GB).
    assert!(rss_mib < 150.0, "peak RSS {rss_mib} MiB: {line}");
}
