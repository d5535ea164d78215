//! ffmpeg, given only the output of `pstream sdp`, decodes both streams,
//! over IPv4 and over IPv6, and pictures cut into slices by encoder threads.

mod common;

use std::time::Duration;

use common::*;

fn ffmpeg_decodes_pstream(peer: &str, seconds: u64, extra: &[&str]) {
    let _turn = serial();
    require("ffmpeg");
    let dir = temp_dir("ffmpeg-recv");
    let base = free_port_base().to_string();
    let mut common_args = vec![
        "--peer",
        peer,
        "--port-base",
        &base,
        "--size",
        "640x360",
        "--fps",
        "30",
    ];
    common_args.extend(extra);

    let mut sdp_args = vec!["sdp"];
    sdp_args.extend(&common_args);
    let (code, sdp, err) = run_pstream(&sdp_args, Duration::from_secs(20));
    assert_eq!(code, Some(0), "pstream sdp failed: {err}");
    assert!(sdp.contains(&format!("m=video {base} RTP/AVP 96")), "{sdp}");
    assert!(sdp.contains("sprop-parameter-sets="), "{sdp}");
    let sdp_path = dir.join("stream.sdp");
    std::fs::write(&sdp_path, &sdp).expect("write sdp");

    let out = dir.join("frames.txt");
    let ff_args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
        &sdp_path.to_string_lossy(),
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-f",
        "framemd5",
        "-y",
        &out.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut ff = Proc::start("ffmpeg", "ffmpeg".as_ref(), &ff_args, &dir);
    std::thread::sleep(Duration::from_millis(1500));

    let mut send_args: Vec<String> = vec!["send".into()];
    send_args.extend(common_args.iter().map(|s| s.to_string()));
    send_args.extend(["--duration".to_string(), seconds.to_string()]);
    let mut send = Proc::start("pstream", &pstream_bin(), &send_args, &dir);
    let code = send.wait(Duration::from_secs(seconds + 15));
    assert_eq!(code, Some(0), "pstream send failed:\n{}", send.stderr());
    // ffmpeg runs behind real time after probing (it buffers the first
    // second or so); stopping it before it has caught up would cut the last
    // picture short. Wait until its output stops growing (at most 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last_len = None;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(400));
        let len = std::fs::metadata(&out).map(|m| m.len()).ok();
        if len.is_some() && len == last_len {
            break;
        }
        last_len = len;
    }
    ff.signal("INT");
    ff.wait(Duration::from_secs(10));

    let frames = read_lossy(&out);
    let video = frames.lines().filter(|l| l.starts_with("0,")).count() as u64;
    let audio = frames.lines().filter(|l| l.starts_with("1,")).count() as u64;
    eprintln!("ffmpeg decoded {video} video frames and {audio} audio frames");
    let log = ff.stderr();
    assert!(log.contains("Video: h264"), "ffmpeg saw no H.264:\n{log}");
    assert!(log.contains("640x360"), "ffmpeg saw the wrong size:\n{log}");
    assert!(log.contains("Audio: opus"), "ffmpeg saw no Opus:\n{log}");
    // ffmpeg spends up to a second probing; the rest must decode.
    assert!(
        video >= (seconds - 2) * 30,
        "only {video} video frames decoded:\n{log}"
    );
    assert!(
        audio >= (seconds - 2) * 50 * 9 / 10,
        "only {audio} audio frames decoded:\n{log}"
    );
    // ffmpeg says "concealing ... errors" for a picture with a slice missing.
    assert!(!log.contains("concealing"), "damaged pictures:\n{log}");
}

#[test]
fn ffmpeg_decodes_both_streams_from_the_sdp_ipv4() {
    ffmpeg_decodes_pstream("127.0.0.1", 6, &[]);
}

#[test]
fn ffmpeg_decodes_both_streams_from_the_sdp_ipv6() {
    ffmpeg_decodes_pstream("::1", 5, &[]);
}

#[test]
fn ffmpeg_decodes_pictures_cut_into_slices_by_two_encoder_threads() {
    ffmpeg_decodes_pstream("127.0.0.1", 5, &["--threads", "2"]);
}
