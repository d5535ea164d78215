//! I420 downscaling for renditions: the source sizes pstream serve meets
//! (the recipe's 640x480, 720p, 1080p) to the rendition sizes.

use std::time::{Duration, Instant};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use pstream_capture::testpattern::TestPattern;
use pstream_codec::{Rendition, Scaler};
use pstream_core::VideoFrame;

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

fn benches() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    scale(&mut c);
}

criterion_main!(benches);
