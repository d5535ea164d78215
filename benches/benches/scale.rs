//! I420 downscaling for renditions: the source sizes pstream serve meets
//! (the recipe's 640x480, 720p, 1080p) to the rendition sizes; and the whole
//! per-frame rendition path (`Transcoder`: decode 720p, scale, encode 144p, as
//! `pstream serve` runs it), whose time per frame against 33.3 ms gives the
//! transcoder's real-time factor.

use std::time::{Duration, Instant};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use pstream_capture::testpattern::TestPattern;
use pstream_codec::{H264Config, H264Encoder, H264Preset, Rendition, Scaler, Transcoder};
use pstream_core::{EncodedUnit, VideoFrame};

fn scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ((1280, 720), Rendition::P144p30fps16x9),
        ((1280, 720), Rendition::P360p30fps16x9),
        ((640, 480), Rendition::P144p30fps16x9),
        ((1920, 1080), Rendition::P720p30fps16x9),
    ];
    for ((w, h), r) in cases {
        let (dw, dh) = r.output_size(w, h);
        let frame = VideoFrame::new(
            w,
            h,
            TestPattern::new(w, h).render(7, 1_700_000_000_000_000),
            Instant::now(),
            Duration::ZERO,
        )
        .expect("frame");
        let mut scaler = Scaler::new(w, h, dw, dh).expect("scaler");
        let mut out = vec![0u8; VideoFrame::byte_len(dw, dh)];
        group.bench_function(
            BenchmarkId::new(format!("{w}x{h}"), format!("{dw}x{dh}")),
            |b| b.iter(|| scaler.scale_into(&frame, &mut out).expect("scale")),
        );
    }
    group.finish();
}

/// `n` frames of test pattern as a publisher would send them (IDR first, then every 2 s).
fn source_units(w: u32, h: u32, n: u64) -> Vec<EncodedUnit> {
    let pattern = TestPattern::new(w, h);
    let mut enc = H264Encoder::new(H264Config {
        width: w,
        height: h,
        fps: 30.0,
        bitrate_bps: 2_500_000,
        keyint_frames: 60,
        threads: 1,
        preset: H264Preset::Fast,
    })
    .expect("encoder");
    let start = Instant::now();
    (0..n)
        .filter_map(|i| {
            let pts = Duration::from_nanos(i * 1_000_000_000 / 30);
            let data = pattern.render(i, 1_700_000_000_000_000 + i * 33_333);
            let frame = VideoFrame::new(w, h, data, start + pts, pts).expect("frame");
            enc.encode(&frame).expect("encode")
        })
        .collect()
}

fn transcode(c: &mut Criterion) {
    let (w, h) = (1280, 720);
    let r = Rendition::P144p30fps16x9;
    let units = source_units(w, h, 60);
    // The rendition stage of `pstream serve`: decode, scale, encode.
    let mut transcoder = Transcoder::new(r).expect("transcoder");
    // The ring restarts at the IDR, so the decoder never misses a reference.
    let mut next = 0usize;
    let mut group = c.benchmark_group("transcode");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{w}x{h}_to_{}", r.name()), |b| {
        b.iter(|| {
            let unit = &units[next % units.len()];
            next += 1;
            transcoder.push(unit).expect("transcode")
        })
    });
    group.finish();
    let made = transcoder.frames_out();
    assert!(made > 0 && transcoder.output_size() == Some(r.output_size(w, h)));
}

fn benches() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    scale(&mut c);
    transcode(&mut c);
}

criterion_main!(benches);
