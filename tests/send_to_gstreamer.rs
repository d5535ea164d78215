//! `pstream send` into costream's GStreamer receiver (rtpbin, latency=0),
//! with the V4L2 and PulseAudio sinks replaced by a fakesink and a WAV file.

mod common;

use std::time::Duration;

use common::*;

/// How long pstream sends for.
const SECONDS: u64 = 10;

#[test]
fn gstreamer_rtpbin_receiver_decodes_pstream_video_and_audio() {
    let _turn = serial();
    require("gst-launch-1.0");
    require("tshark");
    let dir = temp_dir("gst-recv");
    let base = free_port_base();
    let wav = dir.join("audio.wav");
    let p = |o: u16| (base + o).to_string();

    // costream's recv-from-peer.go, device sinks swapped for test sinks.
    let gst_args: Vec<String> = [
        "-e", "-v", "rtpbin", "name=rtpbin", "latency=0",
        "udpsrc", "address=127.0.0.1",
        "caps=application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H264",
        &format!("port={}", p(0)), "!", "rtpbin.recv_rtp_sink_0",
        "rtpbin.", "!", "rtph264depay", "!", "decodebin", "!", "videoconvert",
        "!", "fakesink", "name=vsink", "silent=false", "sync=false",
        "udpsrc", &format!("port={}", p(1)), "!", "rtpbin.recv_rtcp_sink_0",
        "rtpbin.send_rtcp_src_0", "!", "udpsink", "host=127.0.0.1", &format!("port={}", p(5)),
        "sync=false", "async=false",
        "udpsrc",
        "caps=application/x-rtp,media=(string)audio,clock-rate=(int)48000,encoding-name=(string)OPUS,encoding-params=(string)1,octet-align=(string)1",
        "address=127.0.0.1", &format!("port={}", p(2)), "!", "rtpbin.recv_rtp_sink_1",
        "rtpbin.", "!", "rtpopusdepay", "!", "opusdec", "!", "audioconvert", "!", "audioresample",
        "!", "audio/x-raw,format=S16LE", "!", "wavenc", "!", "filesink",
        &format!("location={}", wav.display()),
        "udpsrc", &format!("port={}", p(3)), "!", "rtpbin.recv_rtcp_sink_1",
        "rtpbin.send_rtcp_src_1", "!", "udpsink", "host=127.0.0.1", &format!("port={}", p(7)),
        "sync=false", "async=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut gst = Proc::start("gst-launch", "gst-launch-1.0".as_ref(), &gst_args, &dir);

    // tshark watches the sender's RTCP going to the receiver.
    let tshark_args: Vec<String> = [
        "-i",
        "lo",
        "-f",
        &format!("udp dst port {} or udp dst port {}", p(1), p(3)),
        "-d",
        &format!("udp.port=={},rtcp", p(1)),
        "-d",
        &format!("udp.port=={},rtcp", p(3)),
        "-a",
        &format!("duration:{}", SECONDS + 4),
        "-T",
        "fields",
        "-e",
        "udp.dstport",
        "-e",
        "rtcp.pt",
        "-e",
        "rtcp.sdes.text",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut tshark = Proc::start("tshark", "tshark".as_ref(), &tshark_args, &dir);
    assert!(
        gst.wait_for_output("Setting pipeline to PLAYING", Duration::from_secs(30)),
        "gst-launch did not start:\n{}\n{}",
        gst.stdout(),
        gst.stderr()
    );
    // tshark prints "Capturing on" once it listens.
    assert!(
        tshark.wait_for_output("Capturing on", Duration::from_secs(30)),
        "tshark did not start:\n{}",
        tshark.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));

    let send_args: Vec<String> = [
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
        &SECONDS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut send = Proc::start("pstream", &pstream_bin(), &send_args, &dir);
    let code = send.wait(Duration::from_secs(SECONDS + 15));
    let send_log = send.stderr();
    assert_eq!(code, Some(0), "pstream send failed:\n{send_log}");

    std::thread::sleep(Duration::from_millis(1000));
    gst.signal("INT");
    gst.wait(Duration::from_secs(10));
    tshark.wait(Duration::from_secs(10));
    let gst_out = gst.stdout();

    let sent = frames_sent(&send_log);
    let decoded = gst_out.matches("vsink: last-message = chain").count() as u64;
    eprintln!("pstream sent {sent} frames, GStreamer decoded {decoded}");
    assert!(
        sent >= SECONDS * 30 * 9 / 10,
        "pstream sent only {sent} frames in {SECONDS} s:\n{send_log}"
    );
    assert!(
        decoded * 10 >= sent * 9,
        "GStreamer decoded {decoded} of {sent} frames\n--- gst ---\n{}\n--- pstream ---\n{send_log}",
        tail(&gst_out, 40)
    );
    assert!(
        gst_out.contains("width=(int)1280, height=(int)720"),
        "decoded caps not 1280x720"
    );

    // Opus decoded into a WAV holding the tone for about as long as we sent.
    let (rate, channels, samples) = read_wav_i16(&wav);
    assert_eq!(rate, 48_000);
    let mono: Vec<f32> = samples
        .chunks_exact(channels as usize)
        .map(|c| c[0] as f32 / 32768.0)
        .collect();
    let secs = mono.len() as f64 / rate as f64;
    assert!(
        (SECONDS as f64 * 0.9..=SECONDS as f64 * 1.1).contains(&secs),
        "audio lasted {secs:.2} s"
    );
    let mid = &mono[mono.len() / 4..mono.len() * 3 / 4];
    let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
    assert!(rms > 0.05, "decoded audio is near silent (rms {rms})");
    let freq = tone_frequency(mid, rate);
    assert!(
        (420.0..=460.0).contains(&freq),
        "tone is {freq:.1} Hz, expected 440"
    );

    // RTCP both ways: SR + SDES reached the receiver's ports...
    let captured = tshark.stdout();
    for port in [p(1), p(3)] {
        let srs = captured
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f.first() == Some(&port.as_str())
                    && f.get(1).is_some_and(|pt| pt.split(',').any(|t| t == "200"))
            })
            .count();
        assert!(
            srs >= 3,
            "only {srs} SR to port {port}:\n{captured}\n{}",
            tshark.stderr()
        );
    }
    assert!(
        captured.contains("pstream@"),
        "no CNAME in SDES:\n{captured}"
    );
    // pstream said goodbye on both streams when --duration ran out.
    for port in [p(1), p(3)] {
        let byes = captured
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f.first() == Some(&port.as_str())
                    && f.get(1).is_some_and(|pt| pt.split(',').any(|t| t == "203"))
            })
            .count();
        assert_eq!(byes, 1, "expected one BYE to port {port}:\n{captured}");
    }
    // ... and the receiver's RR came back and gave loss, jitter and RTT.
    let summary = send_log
        .lines()
        .rfind(|l| l.contains("send finished"))
        .unwrap_or_default();
    assert!(
        summary.matches("rtt").count() >= 2,
        "no receiver report from GStreamer for both streams: {summary}"
    );
    assert!(
        summary.contains("loss 0.0%"),
        "unexpected loss on loopback: {summary}"
    );
}

/// Frames pstream says it sent, from its final summary line.
fn frames_sent(log: &str) -> u64 {
    log.lines()
        .rfind(|l| l.contains("send finished"))
        .and_then(|l| l.split("frames ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in pstream's summary:\n{log}"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
