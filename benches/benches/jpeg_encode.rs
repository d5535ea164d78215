//! Per-frame baseline 4:2:0 JPEG encode time of a 720p I420 frame, quality
//! 85: pstream's libjpeg-turbo encoder against the pure-Rust `jpeg-encoder`.
//!
//! Both start from the same I420 `VideoFrame`, as the pipeline hands it
//! over. libjpeg-turbo takes the planes directly; `jpeg-encoder` has no
//! planar input, so its figure includes interleaving I420 into packed
//! YCbCr (the cheapest conversion it accepts) before it subsamples again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_main, Criterion, Throughput};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use pstream_codec::MjpegEncoder;
use pstream_core::VideoFrame;

const QUALITY: u8 = 85;

/// A textured moving test picture, like the capture test pattern's detail.
fn frame(width: u32, height: u32, n: u32) -> VideoFrame {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = VideoFrame::chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let n = n as usize;
    let mut data = vec![0u8; VideoFrame::byte_len(width, height)];
    for y in 0..h {
        for x in 0..w {
            let texture = ((x * 7 + y * 13) ^ (x * y)) % 24;
            data[y * w + x] = ((x + y + 4 * n) % 180 + 16 + texture) as u8;
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
        Duration::ZERO,
    )
    .expect("valid frame")
}

/// I420 → packed YCbCr 4:4:4 (chroma repeated), what `jpeg-encoder` takes.
fn interleave(f: &VideoFrame, out: &mut Vec<u8>) {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let cw = w.div_ceil(2);
    out.clear();
    out.reserve(w * h * 3);
    let (y, u, v) = (f.y(), f.u(), f.v());
    for row in 0..h {
        let c = (row / 2) * cw;
        for col in 0..w {
            out.extend_from_slice(&[y[row * w + col], u[c + col / 2], v[c + col / 2]]);
        }
    }
}

fn jpeg_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("jpeg_encode");
    let (width, height) = (1280u32, 720u32);
    let src = frame(width, height, 3);
    group.throughput(Throughput::Elements(1));

    let mut turbo = MjpegEncoder::new(QUALITY).expect("encoder");
    let size = turbo.encode(&src).expect("encode").data.len();
    eprintln!("libjpeg-turbo q{QUALITY} 720p: {size} bytes per frame");
    group.bench_function("turbojpeg_i420_720p", |b| {
        b.iter(|| turbo.encode(&src).expect("encode"))
    });

    let mut packed = Vec::new();
    let mut out = Vec::new();
    let pure_rust = |packed: &mut Vec<u8>, out: &mut Vec<u8>| {
        interleave(&src, packed);
        out.clear();
        let mut enc = Encoder::new(&mut *out, QUALITY);
        enc.set_sampling_factor(SamplingFactor::R_4_2_0);
        enc.encode(packed, width as u16, height as u16, ColorType::Ycbcr)
            .expect("encode");
        out.len()
    };
    let size = pure_rust(&mut packed, &mut out);
    eprintln!("jpeg-encoder q{QUALITY} 720p: {size} bytes per frame");
    group.bench_function("jpeg_encoder_i420_720p", |b| {
        b.iter(|| pure_rust(&mut packed, &mut out))
    });
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    jpeg_encode(&mut c);
}

criterion_main!(benches);
