//! An FLV written by [`FlvMuxer`] from the real H.264 and AAC encoders is
//! read by ffprobe with both streams, every frame and no warnings.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_codec::h264::{H264Config, H264Encoder, H264Preset};
use pstream_codec::{AacConfig, AacEncoder};
use pstream_core::{AudioBlock, VideoFrame};
use pstream_mux::flv::file_header;
use pstream_mux::{AudioInfo, FlvMuxer, Interleaver, StreamInfo, VideoInfo};

const W: u32 = 320;
const H: u32 = 240;

fn frame(n: u32, t0: Instant) -> VideoFrame {
    let mut data = vec![128u8; VideoFrame::byte_len(W, H)];
    for (i, px) in data[..(W * H) as usize].iter_mut().enumerate() {
        *px = ((i as u32 % W + n * 4) % 220 + 16) as u8;
    }
    let pts = Duration::from_secs_f64(f64::from(n) / 30.0);
    VideoFrame::new(W, H, Bytes::from(data), t0 + pts, pts).expect("frame")
}

#[test]
fn ffprobe_reads_both_streams_of_a_written_flv() {
    let t0 = Instant::now();
    let mut venc = H264Encoder::new(H264Config {
        width: W,
        height: H,
        fps: 30.0,
        bitrate_bps: 500_000,
        keyint_frames: 60,
        threads: 1,
        preset: H264Preset::Fast,
    })
    .expect("H.264 encoder");
    let mut aenc = AacEncoder::new(AacConfig {
        sample_rate: 48_000,
        channels: 2,
        bitrate_bps: 128_000,
    })
    .expect("AAC encoder");
    let mut muxer = FlvMuxer::new(StreamInfo {
        video: Some(VideoInfo {
            width: W,
            height: H,
            fps: 30.0,
            bitrate_kbps: 500.0,
        }),
        audio: Some(AudioInfo {
            sample_rate: 48_000,
            channels: 2,
            bitrate_kbps: 128.0,
            config: aenc.audio_specific_config(),
        }),
        encoder: "pstream test".into(),
    });
    let mut il = Interleaver::new(true, true, Duration::from_millis(500));
    // Three seconds: 90 pictures and 300 blocks of 10 ms.
    for n in 0..90u32 {
        if let Some(u) = venc.encode(&frame(n, t0)).expect("encode") {
            il.push(u);
        }
    }
    for b in 0..300u32 {
        let pts = Duration::from_millis(u64::from(b) * 10);
        let samples = (0..480)
            .flat_map(|i| {
                let v =
                    ((b * 480 + i) as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3;
                [v, v]
            })
            .collect();
        let block = AudioBlock {
            sample_rate: 48_000,
            channels: 2,
            samples,
            capture: t0 + pts,
            pts,
        };
        for u in aenc.encode(&block).expect("encode") {
            il.push(u);
        }
    }
    let mut file = file_header(true, true).to_vec();
    let mut tags = Vec::new();
    let mut last = 0;
    for u in il.drain() {
        tags.clear();
        muxer.push(&u, &mut tags).expect("mux");
        for t in &tags {
            assert!(t.timestamp_ms >= last, "timestamps went backwards");
            last = t.timestamp_ms;
            t.write_to(&mut file);
        }
    }
    let dir = std::env::temp_dir().join(format!("pstream-flv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("t.flv");
    std::fs::write(&path, &file).expect("write flv");

    let out = Command::new("ffprobe")
        .args(["-v", "warning", "-count_frames", "-show_entries"])
        .args(["stream=codec_name,profile,width,height,sample_rate,channels,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe is installed (scripts/install-deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "ffprobe warned: {warnings}");
    let video = text
        .lines()
        .find(|l| l.starts_with("h264"))
        .unwrap_or_default();
    let audio = text
        .lines()
        .find(|l| l.starts_with("aac"))
        .unwrap_or_default();
    assert!(
        video.starts_with("h264,Constrained Baseline,320,240,90"),
        "{text}"
    );
    assert!(audio.starts_with("aac,LC,48000,2,"), "{text}");
    let aac_frames: u64 = audio
        .rsplit(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(aac_frames >= 138, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
