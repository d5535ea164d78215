//! costream's GStreamer sender (send-to-peer.go: rtpbin latency=0, x264enc
//! zerolatency + rtph264pay, opusenc + rtpopuspay) into `pstream recv`, with
//! the V4L2 and PulseAudio sources replaced by videotestsrc and audiotestsrc.

mod common;

use std::time::Duration;

use common::video::{scan_y4m, stat, summary};
use common::*;

/// How long GStreamer sends for.
const SECONDS: u64 = 10;
/// Video frames GStreamer sends (30 fps).
const FRAMES: u64 = SECONDS * 30;
/// audiotestsrc's tone.
const TONE_HZ: f64 = 440.0;

#[test]
fn pstream_recv_decodes_costream_gstreamer_sender() {
    let _turn = serial();
    require("gst-launch-1.0");
    require("ffprobe");
    require("tshark");
    let dir = temp_dir("recv-from-gst");
    let base = free_port_base();
    let y4m = dir.join("video.y4m");
    let wav = dir.join("audio.wav");
    let p = |o: u16| (base + o).to_string();

    let recv_args: Vec<String> = [
        "recv",
        "--peer",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        &base.to_string(),
        "--video-out",
        &format!("y4m:{}", y4m.display()),
        "--audio-out",
        &format!("wav:{}", wav.display()),
        // A bound only: the test stops it with SIGTERM once GStreamer is done.
        "--duration",
        &(SECONDS + 60).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut recv = Proc::start("pstream-recv", &pstream_bin(), &recv_args, &dir);

    // tshark watches our RTCP going back to GStreamer's +5/+7.
    let tshark_args: Vec<String> = [
        "-i",
        "lo",
        "-f",
        &format!("udp dst port {} or udp dst port {}", p(5), p(7)),
        "-d",
        &format!("udp.port=={},rtcp", p(5)),
        "-d",
        &format!("udp.port=={},rtcp", p(7)),
        "-a",
        &format!("duration:{}", SECONDS + 60),
        "-T",
        "fields",
        "-e",
        "udp.dstport",
        "-e",
        "rtcp.pt",
        "-e",
        "rtcp.ssrc.identifier",
        "-e",
        "rtcp.sdes.text",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut tshark = Proc::start("tshark", "tshark".as_ref(), &tshark_args, &dir);
    assert!(
        tshark.wait_for_output("Capturing on", Duration::from_secs(30)),
        "tshark did not start:\n{}",
        tshark.stderr()
    );

    // costream's send-to-peer.go, devices swapped for live test sources.
    // 960 samples per buffer at 48 kHz: 500 buffers are exactly 10 s.
    let gst_args: Vec<String> = [
        "-e",
        "-v",
        "rtpbin",
        "name=rtpbin",
        "latency=0",
        "videotestsrc",
        "is-live=true",
        &format!("num-buffers={FRAMES}"),
        "!",
        "video/x-raw,width=1280,height=720,framerate=30/1",
        "!",
        "videoscale",
        "!",
        "videoconvert",
        "!",
        "x264enc",
        "tune=zerolatency",
        "bitrate=1000",
        "speed-preset=ultrafast",
        "!",
        "rtph264pay",
        "!",
        "rtpbin.send_rtp_sink_0",
        "rtpbin.send_rtp_src_0",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(0)),
        "rtpbin.send_rtcp_src_0",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(1)),
        "sync=false",
        "async=false",
        "udpsrc",
        "address=127.0.0.1",
        &format!("port={}", p(5)),
        "!",
        "rtpbin.recv_rtcp_sink_0",
        "audiotestsrc",
        "is-live=true",
        "samplesperbuffer=960",
        &format!("num-buffers={}", SECONDS * 50),
        &format!("freq={TONE_HZ}"),
        "!",
        "audio/x-raw,rate=48000",
        "!",
        "audioresample",
        "!",
        "opusenc",
        "audio-type=voice",
        "!",
        "rtpopuspay",
        "!",
        "rtpbin.send_rtp_sink_1",
        "rtpbin.send_rtp_src_1",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(2)),
        "rtpbin.send_rtcp_src_1",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={}", p(3)),
        "sync=false",
        "async=false",
        "udpsrc",
        "address=127.0.0.1",
        &format!("port={}", p(7)),
        "!",
        "rtpbin.recv_rtcp_sink_1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut gst = Proc::start("gst-launch", "gst-launch-1.0".as_ref(), &gst_args, &dir);
    // Both sources end after num-buffers, but rtpbin's RTCP udpsrcs never
    // do, so the pipeline does not always reach EOS by itself: give it the
    // time it needs and then stop it.
    assert!(
        gst.wait_for_output("Setting pipeline to PLAYING", Duration::from_secs(30)),
        "GStreamer did not start:\n{}",
        gst.stderr()
    );
    // `wait` kills it when the time is up; an exit before that must be clean.
    if let Some(code) = gst.wait(Duration::from_secs(SECONDS + 8)) {
        assert_eq!(code, 0, "gst-launch failed:\n{}", gst.stderr());
    }
    let gst_out = format!("{}{}", gst.stdout(), gst.stderr());
    assert!(
        !gst_out.contains("ERROR"),
        "GStreamer reported an error:\n{gst_out}"
    );

    std::thread::sleep(Duration::from_millis(1000));
    recv.signal("TERM");
    let recv_code = recv.wait(Duration::from_secs(15));
    tshark.signal("INT");
    tshark.wait(Duration::from_secs(10));
    let recv_log = recv.stderr();
    assert_eq!(recv_code, Some(0), "pstream recv failed:\n{recv_log}");
    let line = summary(&recv_log, "recv finished");
    eprintln!("{line}");

    // Video: at least 90% of the frames GStreamer sent, 1280x720 at 30 fps.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=width,height,r_frame_rate,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&y4m)
        .output()
        .expect("run ffprobe");
    let probed = String::from_utf8_lossy(&probe.stdout).into_owned();
    let field = |k: &str| {
        probed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("ffprobe gave no {k}:\n{probed}"))
            .to_string()
    };
    let frames: u64 = field("nb_read_frames").parse().expect("frame count");
    eprintln!("GStreamer sent {FRAMES} frames, ffprobe counts {frames} in pstream's Y4M");
    assert_eq!(
        (field("width"), field("height")),
        ("1280".into(), "720".into())
    );
    assert_eq!(field("r_frame_rate"), "30/1");
    assert!(
        frames * 10 >= FRAMES * 9 && frames <= FRAMES,
        "{frames} of {FRAMES} frames decoded:\n{recv_log}"
    );
    assert_eq!(stat(line, "video", "frames"), Some(frames as f64));
    assert_eq!(stat(line, "video", "lost"), Some(0.0), "loss on loopback");
    // Every picture is whole: videotestsrc's SMPTE bars have no timecode,
    // so just check the file holds exactly the frames ffprobe counted.
    let scan = scan_y4m(&y4m, false);
    assert_eq!(scan.pictures.len() as u64, frames);
    assert!(!scan.truncated);
    let _ = std::fs::remove_file(&y4m);

    // Audio: the 440 Hz tone for 10 s (±10%), 48 kHz.
    let (rate, channels, samples) = read_wav_i16(&wav);
    assert_eq!(rate, 48_000);
    let mono: Vec<f32> = samples
        .chunks_exact(channels as usize)
        .map(|c| c[0] as f32 / 32768.0)
        .collect();
    let secs = mono.len() as f64 / f64::from(rate);
    eprintln!("WAV: {secs:.2} s of audio");
    assert!(
        (SECONDS as f64 * 0.9..=SECONDS as f64 * 1.1).contains(&secs),
        "audio lasted {secs:.2} s, sent {SECONDS} s"
    );
    let mid = &mono[mono.len() / 4..mono.len() * 3 / 4];
    let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
    assert!(rms > 0.05, "decoded audio is near silent (rms {rms})");
    let freq = tone_frequency(mid, rate);
    eprintln!("tone {freq:.1} Hz, rms {rms:.3}");
    assert!(
        (TONE_HZ - 10.0..=TONE_HZ + 10.0).contains(&freq),
        "tone is {freq:.1} Hz, expected {TONE_HZ}"
    );

    // Our RR (+ SDES with our CNAME) reached GStreamer's RTCP ports, with a
    // report block about GStreamer's stream.
    let captured = tshark.stdout();
    for port in [p(5), p(7)] {
        let rrs: Vec<&str> = captured
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f.first() == Some(&port.as_str())
                    && f.get(1).is_some_and(|pt| pt.split(',').any(|t| t == "201"))
            })
            .collect();
        assert!(
            rrs.len() >= 5,
            "only {} RR to GStreamer's port {port}:\n{captured}\n{}",
            rrs.len(),
            tshark.stderr()
        );
        // RR sender SSRC and the reported source's SSRC: two identifiers.
        assert!(
            rrs.iter().any(|l| l
                .split('\t')
                .nth(2)
                .is_some_and(|s| s.split(',').count() >= 2)),
            "RRs to {port} carry no report block:\n{}",
            rrs.join("\n")
        );
    }
    assert!(
        captured.contains("pstream-recv@"),
        "no CNAME in our SDES:\n{captured}"
    );
}
