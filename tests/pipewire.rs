//! PipeWire capture and playback against a real (userspace) PipeWire:
//! dbus-daemon, pipewire and wireplumber in a temporary XDG_RUNTIME_DIR with
//! two null sinks, A and B.
//!
//! - a tone pw-cat plays into A is captured by `pstream send --audio
//!   pipewire:A` (A's monitor) and arrives in `pstream recv`'s WAV at its
//!   frequency;
//! - `pstream recv --audio-out pipewire:B` plays the sender's tone into B,
//!   and pw-record, recording B's monitor, hears it at its frequency;
//! - with both streams going to live outputs, `pstream recv --sync on`
//!   holds video back by the audio path's measured latency (ring and
//!   PipeWire's own delay) until the A/V offset is near zero, which with
//!   `--sync off` it is not;
//! - `pstream setup --apply --only audio` makes costream's two null sinks,
//!   which a second `pstream setup` finds already there;
//! - `pstream devices` lists both sinks; a node that does not exist is
//!   refused with the ones that do.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pipewire::{missing_tool, PipeWire};
use common::*;

const SINK_A: &str = "pstream_test_a";
const SINK_B: &str = "pstream_test_b";

/// Starts PipeWire, or says clearly why the test cannot run here.
fn pipewire(test: &str) -> Option<PipeWire> {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "SKIPPED {test}: {tool} is not installed (scripts/install-deps.sh installs \
             pipewire, pipewire-bin, wireplumber and dbus)"
        );
        return None;
    }
    Some(PipeWire::start(test, &[SINK_A, SINK_B]))
}

/// Writes a 16-bit stereo 48 kHz WAV of a sine at `freq` for `secs`.
fn write_tone(path: &Path, freq: f64, secs: f64) {
    let frames = (48_000.0 * secs) as usize;
    let mut data = Vec::with_capacity(frames * 4);
    for i in 0..frames {
        let v = (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin() * 32_767.0)
            as i16;
        data.extend_from_slice(&v.to_le_bytes());
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&48_000u32.to_le_bytes());
    wav.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).expect("write tone");
}

/// The first channel of the loud part of a recording (the tone), trimmed
/// by 0.2 s at both ends; empty when nothing is loud.
fn loud_part(samples: &[i16], channels: u16, rate: u32) -> Vec<f32> {
    let mono: Vec<f32> = samples
        .chunks_exact(usize::from(channels.max(1)))
        .map(|f| f32::from(f[0]) / 32_768.0)
        .collect();
    let loud = |v: &f32| v.abs() > 0.05;
    let (Some(first), Some(last)) = (mono.iter().position(loud), mono.iter().rposition(loud))
    else {
        return Vec::new();
    };
    let trim = (rate / 5) as usize;
    if last <= first + 2 * trim {
        return Vec::new();
    }
    mono[first + trim..last - trim].to_vec()
}

/// The tone's frequency from the median interval between zero crossings:
/// a dropout (counted by the stats line) moves a plain crossing count, not
/// the median.
fn median_frequency(samples: &[f32], rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| (w[0] < 0.0) != (w[1] < 0.0))
        .map(|(i, _)| i)
        .collect();
    let mut half_periods: Vec<usize> = crossings.windows(2).map(|w| w[1] - w[0]).collect();
    if half_periods.is_empty() {
        return 0.0;
    }
    half_periods.sort_unstable();
    // Crossings alternate between slightly shorter and longer intervals
    // (sample grid); the mean of the middle half is the half period.
    let n = half_periods.len();
    let mid = &half_periods[n / 4..(3 * n / 4).max(n / 4 + 1)];
    let half = mid.iter().sum::<usize>() as f64 / mid.len() as f64;
    f64::from(rate) / (2.0 * half)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_tone_played_into_a_sink_is_captured_from_its_monitor_and_received() {
    let _turn = serial();
    let Some(pw) = pipewire("pw-capture") else {
        return;
    };
    let dir = pw.dir.clone();
    let tone = dir.join("tone-1000.wav");
    write_tone(&tone, 1000.0, 12.0);
    let _player = pw.spawn(
        "pw-cat-play",
        "pw-cat",
        &[
            "--playback",
            "--target",
            SINK_A,
            &tone.display().to_string(),
        ],
    );
    let base = free_port_base().to_string();
    let wav = dir.join("received.wav");
    let mut recv = Proc::start(
        "recv",
        &pstream_bin(),
        &args(&[
            "recv",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base,
            "--audio-out",
            &format!("wav:{}", wav.display()),
            "--duration",
            "8",
        ]),
        &dir,
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut send = Proc::start_env(
        "send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base,
            "--video",
            "none",
            "--audio",
            &format!("pipewire:{SINK_A}"),
            "--duration",
            "5",
        ]),
        &dir,
        pw.env(),
    );
    let send_code = send.wait(Duration::from_secs(20));
    let recv_code = recv.wait(Duration::from_secs(20));
    let context = format!(
        "send: {}\nrecv: {}\n{}",
        send.stderr(),
        recv.stderr(),
        pw.logs()
    );
    assert_eq!(send_code, Some(0), "{context}");
    assert_eq!(recv_code, Some(0), "{context}");
    let summary = send
        .stderr()
        .lines()
        .rfind(|l| l.contains("send finished"))
        .unwrap_or_default()
        .to_string();
    assert!(
        summary.contains("mic captured"),
        "no capture stats: {summary}"
    );
    let (rate, channels, samples) = read_wav_i16(&wav);
    assert_eq!(rate, 48_000);
    let tone = loud_part(&samples, channels, rate);
    let secs = tone.len() as f64 / f64::from(rate);
    assert!(secs > 3.0, "only {secs:.1} s of tone arrived\n{context}");
    let f = median_frequency(&tone, rate);
    eprintln!(
        "captured through PipeWire: {secs:.1} s of tone at {f:.1} Hz (zero-crossing count {:.1} Hz)",
        tone_frequency(&tone, rate)
    );
    assert!(
        (f - 1000.0).abs() < 20.0,
        "received {f:.1} Hz, sent 1000 Hz"
    );
}

#[test]
fn received_audio_plays_into_a_sink_and_is_recorded_from_its_monitor() {
    let _turn = serial();
    let Some(pw) = pipewire("pw-playback") else {
        return;
    };
    let dir = pw.dir.clone();
    let recording = dir.join("recorded.wav");
    let mut recorder = pw.spawn(
        "pw-record",
        "pw-cat",
        &[
            "--record",
            "--target",
            SINK_B,
            "-P",
            "{ stream.capture.sink = true }",
            "--rate",
            "48000",
            "--channels",
            "2",
            "--format",
            "s16",
            &recording.display().to_string(),
        ],
    );
    // The sender's test tone is 440 Hz.
    let sink = format!("pipewire:{SINK_B}");
    let (send, recv, send_code, recv_code) =
        send_to_recv(&pw, &["--audio-out", &sink], &["--video", "none"]);
    // SIGINT lets pw-record finish the WAV header.
    recorder.signal("INT");
    recorder.wait(Duration::from_secs(5));
    let context = format!(
        "send: {}\nrecv: {}\npw-record: {}\n{}",
        send.stderr(),
        recv.stderr(),
        recorder.stderr(),
        pw.logs()
    );
    assert_eq!(send_code, Some(0), "{context}");
    assert_eq!(recv_code, Some(0), "{context}");
    let summary = recv
        .stderr()
        .lines()
        .rfind(|l| l.contains("recv finished"))
        .unwrap_or_default()
        .to_string();
    assert!(summary.contains("played"), "no playback stats: {summary}");
    let (rate, channels, samples) = read_wav_i16(&recording);
    assert_eq!(rate, 48_000);
    let tone = loud_part(&samples, channels, rate);
    let secs = tone.len() as f64 / f64::from(rate);
    assert!(secs > 3.0, "only {secs:.1} s of tone recorded\n{context}");
    let f = median_frequency(&tone, rate);
    eprintln!(
        "played through PipeWire: {secs:.1} s of tone at {f:.1} Hz (zero-crossing count {:.1} Hz); {summary}",
        tone_frequency(&tone, rate)
    );
    assert!((f - 440.0).abs() < 10.0, "recorded {f:.1} Hz, sent 440 Hz");
}

/// The `A/V` figure of a recv summary: (offset in ms, video hold in ms).
fn av_offset(summary: &str) -> Option<(f64, f64)> {
    let rest = &summary[summary.find("A/V ")? + 4..];
    let mut words = rest.split_whitespace();
    let offset = words.next()?.parse().ok()?;
    let hold = match (words.next(), words.next(), words.next()) {
        (Some("ms"), Some("video"), Some("held")) => words.next()?.parse().ok()?,
        _ => 0.0,
    };
    Some((offset, hold))
}

/// Starts `pstream recv` (9 s, in PipeWire's environment, with
/// `recv_extra`) and half a second later `pstream send` (6 s, with
/// `send_extra`) on a free port base; waits for both. Returns them and
/// their exit codes.
fn send_to_recv(
    pw: &PipeWire,
    recv_extra: &[&str],
    send_extra: &[&str],
) -> (Proc, Proc, Option<i32>, Option<i32>) {
    let base = free_port_base().to_string();
    let common = ["--peer", "127.0.0.1", "--port-base", &base];
    let recv_args: Vec<&str> = ["recv"]
        .iter()
        .chain(&common)
        .chain(recv_extra)
        .chain(&["--duration", "9"])
        .copied()
        .collect();
    let mut recv = Proc::start_env("recv", &pstream_bin(), &args(&recv_args), &pw.dir, pw.env());
    std::thread::sleep(Duration::from_millis(500));
    let send_args: Vec<&str> = ["send"]
        .iter()
        .chain(&common)
        .chain(send_extra)
        .chain(&["--duration", "6"])
        .copied()
        .collect();
    let mut send = Proc::start("send", &pstream_bin(), &args(&send_args), &pw.dir);
    let send_code = send.wait(Duration::from_secs(20));
    let recv_code = recv.wait(Duration::from_secs(20));
    (send, recv, send_code, recv_code)
}

/// Runs recv into sink B with the sender's video and audio; returns recv's
/// last summary line.
fn receive_into_sink_b(pw: &PipeWire, sync: &str) -> String {
    let sink = format!("pipewire:{SINK_B}");
    let (send, recv, send_code, recv_code) = send_to_recv(
        pw,
        &["--audio-out", &sink, "--video-out", "null", "--sync", sync],
        &["--size", "320x240"],
    );
    let context = format!(
        "send: {}\nrecv: {}\n{}",
        send.stderr(),
        recv.stderr(),
        pw.logs()
    );
    assert_eq!(send_code, Some(0), "{context}");
    assert_eq!(recv_code, Some(0), "{context}");
    recv.stderr()
        .lines()
        .rfind(|l| l.contains("recv finished"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn lip_sync_holds_video_by_the_audio_devices_latency() {
    let _turn = serial();
    let Some(pw) = pipewire("pw-lipsync") else {
        return;
    };
    let off = receive_into_sink_b(&pw, "off");
    let on = receive_into_sink_b(&pw, "on");
    eprintln!("sync off: {off}\nsync on: {on}");
    let (unsynced, none) = av_offset(&off).unwrap_or_else(|| panic!("no A/V figure: {off}"));
    assert!(off.contains("sync off"), "{off}");
    assert_eq!(none, 0.0, "{off}");
    // pstream send stamps both streams with their capture instants, and
    // decoding takes a few ms either way: what separates them is the audio
    // waiting in the ring and in PipeWire's graph before it is heard.
    assert!(
        unsynced < -20.0,
        "the audio device's latency is not in the offset: {off}"
    );
    let (synced, hold) = av_offset(&on).unwrap_or_else(|| panic!("no A/V figure: {on}"));
    assert!(synced.abs() <= 10.0, "not in sync: {on}");
    // What got it there is a hold of the same order as the offset without
    // one (the two runs' rings fill to within a device period or two of
    // each other, so the figures are not compared exactly).
    assert!(
        hold >= 20.0,
        "held {hold} ms where the unsynced offset was {unsynced} ms: {on}"
    );
}

#[test]
fn setup_apply_makes_the_null_sinks_once() {
    let _turn = serial();
    let Some(pw) = pipewire("pw-setup") else {
        return;
    };
    let names = ["pstream-topeer", "pstream-frompeer"];
    let run = |extra: &[&str]| {
        let out = pw
            .command(pstream_bin())
            .arg("setup")
            .args(extra)
            .output()
            .expect("run pstream setup");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Before: both sinks are still to make, and shown as pw-cli lines.
    let (code, plan, err) = run(&["--only", "audio"]);
    assert_eq!(code, Some(0), "{plan}{err}");
    assert_eq!(
        plan.matches("pw-cli create-node adapter").count(),
        2,
        "{plan}"
    );
    assert!(
        !plan.contains("modprobe"),
        "--only audio showed the cameras: {plan}"
    );
    let (code, out, err) = run(&["--apply", "--only", "audio"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        err.matches("pstream setup: running pw-cli").count(),
        2,
        "{err}"
    );
    // The nodes outlive pw-cli (object.linger) and are what recv and send
    // address by name.
    let listing = pw.output("pw-cli", &["ls", "Node"]);
    for name in names {
        assert!(
            listing.contains(&format!("\"{name}\"")),
            "{name} missing:\n{listing}"
        );
    }
    let devices = pw
        .command(pstream_bin())
        .arg("devices")
        .output()
        .expect("run pstream devices");
    let devices = String::from_utf8_lossy(&devices.stdout).to_string();
    for name in names {
        assert!(
            devices
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == name) && l.contains("Audio/Sink")),
            "{name} not listed:\n{devices}"
        );
    }
    // Again: nothing to do, nothing made twice.
    let (code, again, err) = run(&["--apply", "--only", "audio"]);
    assert_eq!(code, Some(0), "{again}{err}");
    assert_eq!(
        again.matches("already done: the node exists").count(),
        2,
        "{again}"
    );
    assert!(!err.contains("running"), "{err}");
    let listing = pw.output("pw-cli", &["ls", "Node"]);
    for name in names {
        assert_eq!(
            listing.matches(&format!("node.name = \"{name}\"")).count(),
            1,
            "{listing}"
        );
    }
}

#[test]
fn devices_lists_the_sinks_and_a_missing_node_is_named() {
    let _turn = serial();
    let Some(pw) = pipewire("pw-devices") else {
        return;
    };
    let out = pw
        .command(pstream_bin())
        .arg("devices")
        .output()
        .expect("run pstream devices");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for sink in [SINK_A, SINK_B] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == sink))
            .unwrap_or_else(|| panic!("{sink} not listed:\n{text}"));
        assert!(line.contains("Audio/Sink"), "{line}");
        assert!(line.contains(&format!("test sink {sink}")), "{line}");
    }
    let out = pw
        .command(pstream_bin())
        .args([
            "send",
            "--peer",
            "127.0.0.1",
            "--video",
            "none",
            "--audio",
            "pipewire:nosuch",
            "--duration",
            "1",
        ])
        .output()
        .expect("run pstream send");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("pipewire:nosuch"), "{err}");
    assert!(err.contains(SINK_A) && err.contains(SINK_B), "{err}");
}
