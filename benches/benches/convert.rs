//! Camera pixel-format conversions to and from I420 (capture/src/convert.rs)
//! at 720p and 1080p, in MB/s of camera-side bytes: a 720p30 YUYV camera
//! delivers 55 MB/s, so anything well above that costs little of a core.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use pstream_capture::convert::{
    i420_len, i420_to_yu12, i420_to_yuyv, nv12_to_i420, yu12_to_i420, yuyv_to_i420,
};

/// Bytes with some structure (a gradient), so nothing is all zeros.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 1280) as u8).collect()
}

fn convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert");
    for (w, h) in [(1280usize, 720usize), (1920, 1080)] {
        let size = format!("{w}x{h}");
        let mut i420 = vec![0u8; i420_len(w, h)];

        let yuyv = pattern(w * 2 * h);
        group.throughput(Throughput::Bytes(yuyv.len() as u64));
        group.bench_function(BenchmarkId::new("yuyv_to_i420", &size), |b| {
            b.iter(|| yuyv_to_i420(&yuyv, w * 2, w, h, &mut i420).expect("fits"))
        });

        let nv12 = pattern(w * h * 3 / 2);
        group.throughput(Throughput::Bytes(nv12.len() as u64));
        group.bench_function(BenchmarkId::new("nv12_to_i420", &size), |b| {
            b.iter(|| nv12_to_i420(&nv12, w, w, h, &mut i420).expect("fits"))
        });

        // Rows padded to a 64-byte multiple plus 64, as some drivers do.
        let stride = (w + 64).next_multiple_of(64);
        let yu12 = pattern(stride * h + 2 * (stride / 2) * (h / 2));
        group.throughput(Throughput::Bytes((w * h * 3 / 2) as u64));
        group.bench_function(BenchmarkId::new("yu12_padded_to_i420", &size), |b| {
            b.iter(|| yu12_to_i420(&yu12, stride, w, h, &mut i420).expect("fits"))
        });

        let src = pattern(i420_len(w, h));
        let mut out = vec![0u8; w * 2 * h];
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_function(BenchmarkId::new("i420_to_yuyv", &size), |b| {
            b.iter(|| i420_to_yuyv(&src, w, h, w * 2, &mut out))
        });

        let mut padded = vec![0u8; stride * h + 2 * (stride / 2) * (h / 2)];
        group.throughput(Throughput::Bytes((w * h * 3 / 2) as u64));
        group.bench_function(BenchmarkId::new("i420_to_yu12_padded", &size), |b| {
            b.iter(|| i420_to_yu12(&src, w, h, stride, &mut padded))
        });
    }
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    convert(&mut c);
}

criterion_main!(benches);
