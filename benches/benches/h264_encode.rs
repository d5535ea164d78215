//! Per-frame H.264 encode latency at 360p, 720p and 1080p.
//!
//! A ring of pre-built moving frames is reused so the measurement is the
//! encoder, not frame synthesis, and motion keeps it off all-skip blocks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use pstream_codec::{H264Config, H264Encoder, H264Preset};
use pstream_core::VideoFrame;

/// Frames in the reused ring; the motion is periodic over it so the wrap is not a scene cut.
const RING: u32 = 45;

/// A textured diagonal gradient scrolling 4 pixels a frame, with a box sliding back and forth.
fn frame(width: u32, height: u32, n: u32) -> VideoFrame {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = VideoFrame::chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let n = n as usize;
    let mut data = vec![0u8; VideoFrame::byte_len(width, height)];
    // Triangle wave over the ring: 0, 1, .. 22, 22, .. 1.
    let tri = n.min(RING as usize - n);
    let (bx, by) = (tri * 12 % (w - 64), tri * 6 % (h - 64));
    for y in 0..h {
        for x in 0..w {
            let texture = ((x * 7 + y * 13) ^ (x * y)) % 24;
            let inside = (bx..bx + 64).contains(&x) && (by..by + 64).contains(&y);
            data[y * w + x] = if inside {
                200 + (texture as u8)
            } else {
                ((x + y + 4 * n) % 180 + 16 + texture) as u8
            };
        }
    }
    let (u, v) = data[w * h..].split_at_mut(cw * ch);
    for y in 0..ch {
        for x in 0..cw {
            u[y * cw + x] = ((x + 2 * n) % 160 + 48) as u8;
            v[y * cw + x] = ((y + n) % 160 + 48) as u8;
        }
    }
    VideoFrame::new(
        width,
        height,
        Bytes::from(data),
        Instant::now(),
        Duration::from_millis(n as u64 * 33),
    )
    .expect("valid frame")
}

fn h264_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("h264_encode");
    // Two threads cut each picture into two slices encoded side by side
    // (`--threads 2`): the wall time per frame is what a Pi's cores buy.
    for (width, height, bitrate, threads) in [
        (640, 360, 1_000_000, 1),
        (1280, 720, 2_500_000, 1),
        (1280, 720, 2_500_000, 2),
        (1920, 1080, 5_000_000, 1),
        (1920, 1080, 5_000_000, 2),
    ] {
        let frames: Vec<VideoFrame> = (0..RING).map(|n| frame(width, height, n)).collect();
        let mut enc = H264Encoder::new(H264Config {
            width,
            height,
            fps: 30.0,
            bitrate_bps: bitrate,
            keyint_frames: 60,
            threads,
            preset: H264Preset::Fast,
        })
        .expect("encoder");
        let mut i = 0usize;
        // The first frame initialises openh264 and is an IDR; keep it out of the figures.
        let _ = enc.encode(&frames[0]);
        group.throughput(Throughput::Elements(1));
        group.bench_function(
            BenchmarkId::from_parameter(match threads {
                1 => format!("{width}x{height}"),
                n => format!("{width}x{height}/threads-{n}"),
            }),
            |b| {
                b.iter(|| {
                    i += 1;
                    let mut f = frames[i % frames.len()].clone();
                    f.pts = Duration::from_millis(i as u64 * 33);
                    enc.encode(&f).expect("encode")
                })
            },
        );
        // A skipped frame costs almost nothing; say how many there were.
        eprintln!(
            "{width}x{height}, {threads} thread(s): {} of {i} frames skipped by rate control, {} IDRs",
            enc.skipped_frames(),
            enc.keyframes()
        );
    }
    group.finish();
}

// criterion_group! generates an undocumented `pub fn benches`.
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::h264_encode);
}
criterion_main!(group::benches);
