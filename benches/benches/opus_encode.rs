//! Encoding one 20 ms stereo Opus frame at 96 kbit/s.

use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use pstream_codec::{OpusApplication, OpusConfig, OpusEncoder};
use pstream_core::AudioBlock;

fn opus_encode(c: &mut Criterion) {
    let mut enc = OpusEncoder::new(OpusConfig {
        channels: 2,
        bitrate_bps: 96_000,
        application: OpusApplication::Audio,
    })
    .expect("encoder");
    // Two tones and a little pseudo-noise so the encoder has real work.
    let mut seed = 1u32;
    let samples: Vec<f32> = (0..960)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 16) as f32 / 65_536.0 * 0.02 - 0.01;
            let l = (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 0.4 + noise;
            let r = (2.0 * std::f32::consts::PI * 660.0 * t).sin() * 0.4 - noise;
            [l, r]
        })
        .collect();
    let mut block = AudioBlock {
        sample_rate: 48_000,
        channels: 2,
        samples,
        capture: Instant::now(),
        pts: Duration::ZERO,
    };
    c.bench_function("opus_encode/20ms_stereo_96k", |b| {
        b.iter(|| {
            block.pts += Duration::from_millis(20);
            let units = enc.encode(&block).expect("encode");
            debug_assert_eq!(units.len(), 1);
            units
        })
    });
}

// criterion_group! generates an undocumented `pub fn benches`.
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::opus_encode);
}
criterion_main!(group::benches);
