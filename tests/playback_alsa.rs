//! `pstream recv --audio-out default|alsa:NAME` plays through ALSA.
//!
//! This machine has no sound card, so the test gives ALSA a configuration of
//! its own (through HOME/.asoundrc) whose `default` and `silence` PCMs are
//! ALSA's null plugin: the real device path (cpal, its callback thread, the
//! rtrb ring) runs, and the samples it plays are counted.

mod common;

use std::time::Duration;

use common::*;

fn stat(line: &str, key: &str) -> Option<f64> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

fn plays_through(out: &str) {
    let _turn = serial();
    let dir = temp_dir("playback");
    std::fs::write(
        dir.join(".asoundrc"),
        "pcm.!default {\n  type null\n}\npcm.silence {\n  type null\n  hint.description \"discards\"\n}\n",
    )
    .expect("write .asoundrc");
    let base = free_port_base().to_string();
    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base,
        "--audio-out",
        out,
        "--duration",
        "6",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut recv = std::process::Command::new(pstream_bin());
    recv.args(&recv_args)
        .env("HOME", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("recv.stderr")).expect("stderr file"));
    let mut recv = recv.spawn().expect("start recv");
    std::thread::sleep(Duration::from_millis(500));
    let send_args: Vec<String> = [
        "send",
        "--peer",
        "127.0.0.1",
        "--port-base",
        &base,
        "--video",
        "none",
        "--duration",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut send = Proc::start("send", &pstream_bin(), &send_args, &dir);
    assert_eq!(
        send.wait(Duration::from_secs(15)),
        Some(0),
        "{}",
        send.stderr()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(s)) = recv.try_wait() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = recv.kill();
            let _ = recv.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = read_lossy(&dir.join("recv.stderr"));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    let summary = log
        .lines()
        .rfind(|l| l.contains("recv finished"))
        .unwrap_or_default()
        .to_string();
    let audio = summary.split('|').nth(1).unwrap_or_default();
    let frames = stat(audio, "frames").expect("audio frames");
    let played = stat(audio, "played").unwrap_or_else(|| panic!("no playback stats: {summary}"));
    assert!(
        frames >= 180.0,
        "only {frames} Opus frames decoded: {summary}"
    );
    // The null device consumes at least what was decoded (plus silence on underruns).
    assert!(played >= 3.5, "only {played} s played: {summary}");
}

#[test]
fn default_device_plays_decoded_audio() {
    plays_through("default");
}

#[test]
fn named_alsa_device_plays_decoded_audio() {
    plays_through("alsa:silence");
}

#[test]
fn a_missing_alsa_device_is_named_with_what_exists() {
    let dir = temp_dir("playback-missing");
    std::fs::write(
        dir.join(".asoundrc"),
        "pcm.silence {\n  type null\n  hint.description \"discards\"\n}\n",
    )
    .expect("write .asoundrc");
    let out = std::process::Command::new(pstream_bin())
        .args([
            "recv",
            "--peer",
            "127.0.0.1",
            "--audio-out",
            "alsa:nosuch",
            "--duration",
            "1",
        ])
        .env("HOME", &dir)
        .output()
        .expect("run recv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("alsa:nosuch"), "{err}");
    assert!(
        err.contains("silence"),
        "available devices not listed: {err}"
    );
}
