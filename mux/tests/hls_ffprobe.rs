//! Peer tests: ffprobe and ffmpeg read what the TS muxer and HLS segmenter write.
//!
//! Input is real: openh264 output of the capture crate's test pattern and
//! fdk-aac output of a sine tone. Needs ffmpeg/ffprobe (scripts/install-deps.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pstream_capture::TestPattern;
use pstream_codec::{
    AacConfig, AacEncoder, H264Config, H264Decoder, H264Encoder, H264Preset, Rendition, Scaler,
};
use pstream_core::{AudioBlock, Codec, EncodedUnit, VideoFrame};
use pstream_mux::hls::{HlsConfig, HlsEvent, HlsSegmenter};
use pstream_mux::ts::{AudioSpecificConfig, TsMuxer, TsStreams};

/// Panics with a pointer to the install script if a peer tool is missing.
fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} not found: this peer test needs it; run scripts/install-deps.sh"
    );
}

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pstream-mux-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs a tool, asserting success, and returns its stdout.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().expect("run peer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "{tool} {args:?} complained: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ffprobe's `flat` output for the `streams` and `format` sections (not the
/// program's copy of each stream): each field's values in stream order.
fn entries(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if !(line.starts_with("streams.") || line.starts_with("format.")) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let key = k.rsplit('.').next().unwrap_or(k);
            map.entry(key.to_owned())
                .or_default()
                .push(v.trim_matches('"').to_owned());
        }
    }
    map
}

fn float(map: &BTreeMap<String, Vec<String>>, key: &str) -> f64 {
    map.get(key)
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in {map:?}"))
}

/// `secs` of 640x480 30 fps H.264 (IDR every second) and, if `audio`, 48 kHz stereo AAC,
/// interleaved by pts; with the AAC AudioSpecificConfig.
fn encode(secs: u64, audio: bool) -> (Vec<EncodedUnit>, Option<AudioSpecificConfig>) {
    let (w, h) = (640, 480);
    let pattern = TestPattern::new(w, h);
    let mut enc = H264Encoder::new(H264Config {
        width: w,
        height: h,
        fps: 30.0,
        bitrate_bps: 1_500_000,
        keyint_frames: 30,
        threads: 1,
        preset: H264Preset::Fast,
    })
    .expect("H.264 encoder");
    let start = Instant::now();
    let mut units = Vec::new();
    for i in 0..secs * 30 {
        let pts = Duration::from_nanos(i * 1_000_000_000 / 30);
        let frame = VideoFrame::new(
            w,
            h,
            pattern.render(i, 1_700_000_000_000_000 + i * 33_333),
            start + pts,
            pts,
        )
        .expect("frame");
        if let Some(u) = enc.encode(&frame).expect("encode") {
            units.push(u);
        }
    }
    let mut asc = None;
    if audio {
        let mut aac = AacEncoder::new(AacConfig {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
        })
        .expect("AAC encoder");
        asc = Some(AudioSpecificConfig::parse(&aac.audio_specific_config()).expect("ASC"));
        for n in 0..secs * 50 {
            let samples = (0..960)
                .flat_map(|k| {
                    let t = (n * 960 + k) as f32 / 48_000.0;
                    let s = (t * 440.0 * std::f32::consts::TAU).sin() * 0.3;
                    [s, s]
                })
                .collect();
            let pts = Duration::from_millis(n * 20);
            let block = AudioBlock {
                sample_rate: 48_000,
                channels: 2,
                samples,
                capture: start + pts,
                pts,
            };
            units.extend(aac.encode(&block).expect("AAC encode"));
        }
    }
    units.sort_by_key(|u| (u.pts, u.codec != Codec::H264));
    (units, asc)
}

/// Segments a stream into `dir` the way `--hls-dir` would: files from events, then the playlist.
fn segment_into(dir: &Path, units: &[EncodedUnit], streams: TsStreams) -> HlsSegmenter {
    let mut hls = HlsSegmenter::new(HlsConfig::default(), streams).expect("segmenter");
    let mirror = |hls: &mut HlsSegmenter| {
        while let Some(e) = hls.poll_event() {
            match e {
                HlsEvent::SegmentReady { name, data, .. } => {
                    std::fs::write(dir.join(name), &data).expect("write segment")
                }
                HlsEvent::SegmentRemoved { name } => {
                    std::fs::remove_file(dir.join(name)).expect("remove segment")
                }
                HlsEvent::PlaylistUpdated => {
                    std::fs::write(dir.join("playlist.m3u8"), hls.playlist())
                        .expect("write playlist")
                }
            }
        }
    };
    for u in units {
        hls.push(u, Instant::now()).expect("push");
        mirror(&mut hls);
    }
    hls.end(Instant::now());
    mirror(&mut hls);
    hls
}

#[test]
fn ffprobe_reads_h264_and_aac_segments_and_the_playlist() {
    require("ffprobe");
    require("ffmpeg");
    let dir = temp_dir("hls-av");
    let (units, asc) = encode(5, true);
    let video_units = units.iter().filter(|u| u.codec == Codec::H264).count();
    let streams = TsStreams {
        video: true,
        audio: asc,
    };
    let hls = segment_into(&dir, &units, streams);
    let playlist = std::fs::read_to_string(dir.join("playlist.m3u8")).expect("playlist");
    println!("{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"), "{playlist}");
    assert!(playlist.contains("#EXTINF:2.000,\n0.ts\n#EXTINF:2.000,\n1.ts\n"));
    assert!(playlist.ends_with("2.ts\n#EXT-X-ENDLIST\n"), "{playlist}");
    // Constrained baseline (42, constraint flags with set1) plus AAC-LC.
    let codecs = hls.codecs().expect("codecs");
    assert!(
        codecs.starts_with("avc1.42") && codecs.ends_with(",mp4a.40.2"),
        "{codecs}"
    );
    assert_eq!(hls.resolution(), Some((640, 480)));

    // One segment: H.264 640x480 plus AAC 48 kHz stereo, 2 s long.
    let seg = dir.join("0.ts");
    let seg = seg.to_str().expect("utf-8 path");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels:format=format_name,duration",
            "-of",
            "flat",
            seg,
        ],
    );
    println!("ffprobe 0.ts:\n{out}");
    let e = entries(&out);
    assert_eq!(e["codec_name"], ["h264", "aac"]);
    assert_eq!(e["width"], ["640"]);
    assert_eq!(e["height"], ["480"]);
    assert_eq!(e["sample_rate"], ["48000"]);
    assert_eq!(e["channels"], ["2"]);
    assert_eq!(e["format_name"], ["mpegts"]);
    let d = float(&e, "duration");
    assert!((d - 2.0).abs() < 0.1, "segment lasts {d} s");

    // Video PTS: monotonic, 1/30 s apart, starting at the 1.4 s offset, first a keyframe.
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts,flags",
            "-of",
            "csv=p=0",
            seg,
        ],
    );
    let packets: Vec<(i64, String)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let pts = f.next().and_then(|p| p.parse().ok());
            let flags = f.next().unwrap_or_default().to_owned();
            (pts.unwrap_or_else(|| panic!("no pts in {l:?}")), flags)
        })
        .collect();
    println!(
        "video packets in 0.ts: {} (first {:?}, last {:?})",
        packets.len(),
        packets.first(),
        packets.last()
    );
    assert_eq!(packets.len(), 60);
    assert_eq!(packets[0].0, 126_000);
    assert!(packets[0].1.starts_with('K'));
    for w in packets.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 3000, "pts step in {packets:?}");
    }

    // The playlist as a whole: 5 s, every frame decodes without a complaint.
    let pl = dir.join("playlist.m3u8");
    let pl = pl.to_str().expect("utf-8 path");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
            "-of",
            "flat",
            pl,
        ],
    );
    println!("ffprobe playlist.m3u8:\n{out}");
    let e = entries(&out);
    assert_eq!(e["codec_name"], ["h264", "aac"]);
    assert_eq!(e["nb_read_frames"][0], video_units.to_string());
    let d = float(&e, "duration");
    assert!((d - 5.0).abs() < 0.15, "playlist lasts {d} s");
    run("ffmpeg", &["-v", "error", "-i", pl, "-f", "null", "-"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffprobe_reads_a_video_only_stream() {
    require("ffprobe");
    let dir = temp_dir("ts-video");
    let (units, _) = encode(2, false);
    let mut ts = TsMuxer::new(TsStreams {
        video: true,
        audio: None,
    });
    let mut buf = BytesMut::new();
    ts.write_tables(&mut buf);
    for u in &units {
        ts.write_unit(u, &mut buf).expect("mux");
    }
    let path = dir.join("video.ts");
    std::fs::write(&path, &buf).expect("write");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,profile,width,height,nb_read_frames",
            "-of",
            "flat",
            path.to_str().expect("utf-8 path"),
        ],
    );
    println!("ffprobe video.ts:\n{out}");
    let e = entries(&out);
    assert_eq!(e["codec_name"], ["h264"]);
    assert_eq!(e["width"], ["640"]);
    assert_eq!(e["nb_read_frames"], [units.len().to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffprobe_reads_adts_built_from_the_audio_specific_config() {
    require("ffprobe");
    let dir = temp_dir("adts");
    let (units, asc) = encode(0, true);
    assert!(units.is_empty());
    let asc = asc.expect("ASC");
    // 0 s of stream gives no audio; encode 2 s of audio alone.
    let mut aac = AacEncoder::new(AacConfig {
        sample_rate: 48_000,
        channels: 2,
        bitrate_bps: 96_000,
    })
    .expect("AAC encoder");
    let mut file = Vec::new();
    let mut frames = 0;
    for n in 0..100u64 {
        let block = AudioBlock {
            sample_rate: 48_000,
            channels: 2,
            samples: vec![0.1; 1920],
            capture: Instant::now(),
            pts: Duration::from_millis(n * 20),
        };
        for u in aac.encode(&block).expect("encode") {
            file.extend_from_slice(&asc.adts_header(u.data.len()).expect("fits"));
            file.extend_from_slice(&u.data);
            frames += 1;
        }
    }
    let path = dir.join("tone.aac");
    std::fs::write(&path, &file).expect("write");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels,nb_read_frames",
            "-of",
            "flat",
            path.to_str().expect("utf-8 path"),
        ],
    );
    println!("ffprobe tone.aac:\n{out}");
    let e = entries(&out);
    assert_eq!(e["codec_name"], ["aac"]);
    assert_eq!(e["profile"], ["LC"]);
    assert_eq!(e["sample_rate"], ["48000"]);
    assert_eq!(e["channels"], ["2"]);
    assert_eq!(e["nb_read_frames"], [frames.to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_reads_a_playlist_across_a_publisher_restart() {
    require("ffprobe");
    require("ffmpeg");
    let dir = temp_dir("hls-restart");
    let (units, asc) = encode(3, true);
    let streams = TsStreams {
        video: true,
        audio: asc,
    };
    let mut hls = HlsSegmenter::new(HlsConfig::default(), streams).expect("segmenter");
    // First session, publisher gone, then back with timestamps from zero again.
    for u in &units {
        hls.push(u, Instant::now()).expect("push");
    }
    hls.end(Instant::now());
    hls.restart(streams, Instant::now());
    for u in &units {
        hls.push(u, Instant::now()).expect("push");
    }
    hls.end(Instant::now());
    for s in hls.segments() {
        std::fs::write(dir.join(s.name()), &s.data).expect("write segment");
    }
    std::fs::write(dir.join("playlist.m3u8"), hls.playlist()).expect("write playlist");
    let playlist = String::from_utf8(hls.playlist().to_vec()).expect("utf-8");
    println!("{playlist}");
    assert!(
        playlist.contains("1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n2.ts\n"),
        "{playlist}"
    );
    let pl = dir.join("playlist.m3u8");
    let pl = pl.to_str().expect("utf-8 path");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "flat",
            pl,
        ],
    );
    println!("ffprobe playlist.m3u8 across the restart:\n{out}");
    let video = units.iter().filter(|u| u.codec == Codec::H264).count();
    assert_eq!(entries(&out)["nb_read_frames"], [(2 * video).to_string()]);
    run("ffmpeg", &["-v", "error", "-i", pl, "-f", "null", "-"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A publisher's timestamps leap 2^31 ms forward, then back to zero: the
/// playlist has a discontinuity at each leap, no EXTINF or TARGETDURATION
/// shows them, and ffprobe and ffmpeg read every picture across both.
#[test]
fn ffmpeg_reads_a_playlist_across_timestamp_jumps() {
    require("ffprobe");
    require("ffmpeg");
    let dir = temp_dir("hls-jumps");
    let (units, asc) = encode(3, true);
    let streams = TsStreams {
        video: true,
        audio: asc,
    };
    let mut hls = HlsSegmenter::new(HlsConfig::default(), streams).expect("segmenter");
    let shifted = |u: &EncodedUnit, by: Duration| EncodedUnit {
        pts: u.pts + by,
        dts: u.dts.map(|d| d + by),
        ..u.clone()
    };
    for by in [0, 1u64 << 31, 0] {
        for u in &units {
            hls.push(&shifted(u, Duration::from_millis(by)), Instant::now())
                .expect("push");
        }
    }
    hls.end(Instant::now());
    assert_eq!(hls.timestamp_jumps(), 2);
    for s in hls.segments() {
        std::fs::write(dir.join(s.name()), &s.data).expect("write segment");
    }
    std::fs::write(dir.join("playlist.m3u8"), hls.playlist()).expect("write playlist");
    let playlist = String::from_utf8(hls.playlist().to_vec()).expect("utf-8");
    println!("{playlist}");
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"), "{playlist}");
    for d in hls.segments().map(|s| s.duration) {
        assert!(d <= Duration::from_secs(2), "{d:?}:\n{playlist}");
    }
    let pl = dir.join("playlist.m3u8");
    let pl = pl.to_str().expect("utf-8 path");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "flat",
            pl,
        ],
    );
    println!("ffprobe playlist.m3u8 across the jumps:\n{out}");
    let video = units.iter().filter(|u| u.codec == Codec::H264).count();
    assert_eq!(entries(&out)["nb_read_frames"], [(3 * video).to_string()]);
    run("ffmpeg", &["-v", "error", "-i", pl, "-f", "null", "-"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_144p_rendition_segment_reads_as_192x144_h264_plus_aac() {
    require("ffprobe");
    let dir = temp_dir("hls-144p");
    // The recipe's 640x480 source: decode, scale to P144p30fps16x9, encode; audio passes through.
    let (units, asc) = encode(3, true);
    let r = Rendition::P144p30fps16x9;
    let (w, h) = r.output_size(640, 480);
    assert_eq!((w, h), (192, 144));
    let mut dec = H264Decoder::new().expect("decoder");
    let mut scaler = Scaler::new(640, 480, w, h).expect("scaler");
    let mut enc = H264Encoder::new(H264Config {
        width: w,
        height: h,
        fps: r.fps() as f32,
        bitrate_bps: r.bitrate_bps(),
        keyint_frames: 30,
        threads: 1,
        preset: H264Preset::Fast,
    })
    .expect("encoder");
    let mut hls = HlsSegmenter::new(
        HlsConfig {
            uri_prefix: format!("{}/", r.name()),
            ..HlsConfig::default()
        },
        TsStreams {
            video: true,
            audio: asc,
        },
    )
    .expect("segmenter");
    for u in &units {
        if u.codec == Codec::Aac {
            hls.push(u, Instant::now()).expect("push audio");
            continue;
        }
        let Some(pic) = dec.decode_unit(u).expect("decode") else {
            continue;
        };
        let small = scaler.scale(&pic.frame).expect("scale");
        if let Some(out) = enc.encode(&small).expect("encode") {
            hls.push(&out, Instant::now()).expect("push video");
        }
    }
    hls.end(Instant::now());
    assert_eq!(hls.resolution(), Some((192, 144)));
    let playlist = String::from_utf8(hls.playlist().to_vec()).expect("utf-8");
    assert!(playlist.contains("\nP144p30fps16x9/0.ts\n"), "{playlist}");
    let seg = dir.join("0.ts");
    std::fs::write(&seg, &hls.segment("0.ts").expect("segment 0").data).expect("write");
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate:format=duration",
            "-of",
            "flat",
            seg.to_str().expect("utf-8 path"),
        ],
    );
    println!("ffprobe P144p30fps16x9 0.ts:\n{out}");
    let e = entries(&out);
    assert_eq!(e["codec_name"], ["h264", "aac"]);
    assert_eq!(e["width"], ["192"]);
    assert_eq!(e["height"], ["144"]);
    assert_eq!(e["sample_rate"], ["48000"]);
    let d = float(&e, "duration");
    assert!((d - 2.0).abs() < 0.1, "segment lasts {d} s");
    let _ = std::fs::remove_dir_all(&dir);
}
