//! H.264 packetization throughput: RFC 6184 payloading alone, and the whole
//! send path of `RtpSender` (payload + RTP header + queue) for real encoder
//! output at 720p, keyframes and P-frames.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_main, Criterion, Throughput};
use pstream_capture::testpattern::TestPattern;
use pstream_codec::{H264Config, H264Encoder, H264Preset};
use pstream_core::{EncodedUnit, PipelineClock, VideoFrame};
use pstream_rtp::sender::{RtpSender, SenderConfig};
use pstream_rtp::H264Payloader;

/// Encodes `n` real 720p test-pattern frames; the first is an IDR.
fn units(n: u64) -> Vec<EncodedUnit> {
    let (w, h) = (1280, 720);
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
            let data: Bytes = pattern.render(i, 1_700_000_000_000_000 + i * 33_333);
            let frame =
                VideoFrame::new(w, h, data, start, Duration::from_millis(i * 33)).expect("frame");
            enc.encode(&frame).expect("encode")
        })
        .collect()
}

fn h264_packetize(c: &mut Criterion) {
    let units = units(30);
    let key = units.iter().find(|u| u.keyframe).expect("an IDR").clone();
    let deltas: Vec<EncodedUnit> = units.iter().filter(|u| !u.keyframe).cloned().collect();
    let delta_bytes: usize = deltas.iter().map(|u| u.data.len()).sum();

    let mut group = c.benchmark_group("h264_packetize");
    let mut pay = H264Payloader::new(1200).expect("payloader");
    group.throughput(Throughput::Bytes(key.data.len() as u64));
    group.bench_function("payloader_720p_idr", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            pay.packetize(&key.data, |parts, _marker| {
                bytes += parts.iter().map(|p| p.len()).sum::<usize>();
            });
            bytes
        })
    });
    group.throughput(Throughput::Bytes(delta_bytes as u64));
    group.bench_function("payloader_720p_p_frames", |b| {
        b.iter(|| {
            let mut packets = 0usize;
            for u in &deltas {
                packets += pay.packetize(&u.data, |_, _| {});
            }
            packets
        })
    });

    let clock = PipelineClock::start();
    let mut sender = RtpSender::with_seed(
        SenderConfig::new(pstream_core::Codec::H264, clock, "bench"),
        7,
    )
    .expect("sender");
    let now = clock.origin();
    group.throughput(Throughput::Bytes(key.data.len() as u64));
    group.bench_function("rtp_sender_720p_idr", |b| {
        b.iter(|| {
            sender.push(now, &key).expect("push");
            let mut n = 0;
            while let Some(t) = sender.poll_transmit() {
                n += t.data.len();
            }
            n
        })
    });
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    h264_packetize(&mut c);
}

criterion_main!(benches);
