//! Opus at 48 kHz in 20 ms packets, over libopus.
//!
//! The encoder takes [`AudioBlock`]s of any size, rate and channel count: it
//! mixes channels to the configured count, resamples to 48 kHz and buffers
//! across calls so that every packet holds exactly 20 ms.

use bytes::Bytes;
use pstream_core::{AudioBlock, Codec, EncodedUnit};

use crate::framer::AudioFramer;
use crate::CodecError;

/// The only rate pstream runs Opus at (and the Opus RTP clock rate).
pub const OPUS_RATE: u32 = 48_000;
/// Sample frames per channel in one 20 ms packet at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Largest packet libopus is asked to write (its recommended bound).
const MAX_PACKET: usize = 4000;
/// Longest packet a decoder may meet: 120 ms at 48 kHz.
const MAX_DECODE_SAMPLES: usize = 5760;

/// What the encoder optimises for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusApplication {
    /// Music and general audio, best fidelity.
    Audio,
    /// Speech intelligibility for calls.
    Voip,
    /// Lowest algorithmic delay (CELT only).
    LowDelay,
}

impl From<OpusApplication> for ::opus::Application {
    fn from(a: OpusApplication) -> Self {
        match a {
            OpusApplication::Audio => ::opus::Application::Audio,
            OpusApplication::Voip => ::opus::Application::Voip,
            OpusApplication::LowDelay => ::opus::Application::LowDelay,
        }
    }
}

/// Settings for [`OpusEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Encoded channels: 1 or 2.
    pub channels: u16,
    /// Target bitrate in bits per second (6 000..=510 000).
    pub bitrate_bps: u32,
    /// Encoder tuning.
    pub application: OpusApplication,
}

fn opus_channels(channels: u16) -> Result<::opus::Channels, CodecError> {
    match channels {
        1 => Ok(::opus::Channels::Mono),
        2 => Ok(::opus::Channels::Stereo),
        n => Err(CodecError::config(
            "Opus",
            format!("{n} channels (1 or 2 supported)"),
        )),
    }
}

/// An Opus encoder producing one [`EncodedUnit`] per 20 ms.
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    config: OpusConfig,
    framer: AudioFramer,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .field("consumed", &self.framer.consumed())
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Creates a 48 kHz encoder.
    pub fn new(config: OpusConfig) -> Result<Self, CodecError> {
        let channels = opus_channels(config.channels)?;
        if !(6_000..=510_000).contains(&config.bitrate_bps) {
            return Err(CodecError::config(
                "Opus",
                format!("bitrate {} bit/s outside 6000..=510000", config.bitrate_bps),
            ));
        }
        let mut inner = ::opus::Encoder::new(OPUS_RATE, channels, config.application.into())
            .map_err(|source| CodecError::Opus {
                op: "create encoder",
                source,
            })?;
        inner
            .set_bitrate(::opus::Bitrate::Bits(config.bitrate_bps as i32))
            .map_err(|source| CodecError::Opus {
                op: "set bitrate",
                source,
            })?;
        Ok(Self {
            inner,
            config,
            framer: AudioFramer::new(OPUS_RATE, config.channels, FRAME_SAMPLES),
            packet: vec![0; MAX_PACKET],
        })
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Buffers a block and encodes every complete 20 ms frame now available.
    ///
    /// Each unit's capture time and pts are those of its first sample,
    /// derived from the latest block's times plus the sample offset.
    pub fn encode(&mut self, block: &AudioBlock) -> Result<Vec<EncodedUnit>, CodecError> {
        self.framer.push(block)?;
        let mut units = Vec::new();
        let (inner, packet) = (&mut self.inner, &mut self.packet);
        self.framer.drain_frames(|pcm, pos, timeline| {
            let n = inner
                .encode_float(pcm, packet)
                .map_err(|source| CodecError::Opus {
                    op: "encode",
                    source,
                })?;
            let (capture, pts) = timeline.time_of(pos as f64);
            units.push(EncodedUnit {
                codec: Codec::Opus,
                keyframe: true,
                pts,
                dts: None,
                capture,
                data: Bytes::copy_from_slice(&packet[..n]),
            });
            Ok(())
        })?;
        Ok(units)
    }
}

/// An Opus decoder at 48 kHz with packet-loss concealment.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    channels: usize,
    out: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Creates a 48 kHz decoder with 1 or 2 output channels.
    pub fn new(channels: u16) -> Result<Self, CodecError> {
        let inner =
            ::opus::Decoder::new(OPUS_RATE, opus_channels(channels)?).map_err(|source| {
                CodecError::Opus {
                    op: "create decoder",
                    source,
                }
            })?;
        let channels = usize::from(channels);
        Ok(Self {
            inner,
            channels,
            out: vec![0.0; MAX_DECODE_SAMPLES * channels],
        })
    }

    /// Decodes one packet to interleaved f32; `None` conceals a lost packet with 20 ms.
    pub fn decode(&mut self, packet: Option<&[u8]>) -> Result<Vec<f32>, CodecError> {
        let (input, len) = match packet {
            Some(p) if !p.is_empty() => (p, self.out.len()),
            // An empty slice is libopus's signal for a lost packet.
            _ => (&[][..], FRAME_SAMPLES * self.channels),
        };
        let frames = self
            .inner
            .decode_float(input, &mut self.out[..len], false)
            .map_err(|source| CodecError::Opus {
                op: if input.is_empty() {
                    "conceal"
                } else {
                    "decode"
                },
                source,
            })?;
        Ok(self.out[..frames * self.channels].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framer::mix_channels;
    use std::time::{Duration, Instant};

    fn block(
        rate: u32,
        channels: u16,
        frames: usize,
        start: usize,
        capture: Instant,
    ) -> AudioBlock {
        let samples = (start..start + frames)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5;
                std::iter::repeat_n(v, usize::from(channels))
            })
            .collect();
        AudioBlock {
            sample_rate: rate,
            channels,
            samples,
            capture,
            pts: Duration::from_secs_f64(start as f64 / f64::from(rate)),
        }
    }

    #[test]
    fn jittery_block_stamps_give_a_smooth_timeline() {
        let mut enc = OpusEncoder::new(config(2)).expect("encoder");
        let t0 = Instant::now();
        let mut units = Vec::new();
        for i in 0..200usize {
            // 10 ms blocks stamped up to 7 ms late, as a busy thread would.
            let late = Duration::from_micros((i as u64 * 7919) % 7000);
            let capture = t0 + Duration::from_millis(i as u64 * 10) + late;
            units.extend(
                enc.encode(&block(48_000, 2, 480, i * 480, capture))
                    .expect("encode"),
            );
        }
        assert!(units.len() >= 98);
        for pair in units.windows(2) {
            let step = pair[1].capture - pair[0].capture;
            assert!(
                step.abs_diff(Duration::from_millis(20)) < Duration::from_micros(2),
                "capture step {step:?}"
            );
        }
        // A real gap (a block 100 ms late) moves the timeline.
        let before = units.last().expect("units").capture;
        let capture = t0 + Duration::from_millis(2000 + 100);
        let after = enc
            .encode(&block(48_000, 2, 960, 200 * 480, capture))
            .expect("encode");
        let first = after.first().expect("a unit");
        assert!(first.capture - before > Duration::from_millis(90));
    }

    fn config(channels: u16) -> OpusConfig {
        OpusConfig {
            channels,
            bitrate_bps: 96_000,
            application: OpusApplication::Audio,
        }
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn buffers_odd_blocks_into_20ms_units_with_times_of_their_first_sample() {
        let mut enc = OpusEncoder::new(config(2)).expect("encoder");
        let t0 = Instant::now();
        let mut units = Vec::new();
        let mut at = 0;
        for n in [100, 1000, 2500, 7, 1233] {
            let capture = t0 + Duration::from_secs_f64(at as f64 / 48_000.0);
            units.extend(
                enc.encode(&block(48_000, 2, n, at, capture))
                    .expect("encode"),
            );
            at += n;
        }
        assert_eq!(units.len(), at / FRAME_SAMPLES);
        for (i, u) in units.iter().enumerate() {
            let want = Duration::from_millis(20 * i as u64);
            assert!(
                u.pts.abs_diff(want) < Duration::from_micros(2),
                "unit {i}: {:?}",
                u.pts
            );
            assert!((u.capture - t0).abs_diff(want) < Duration::from_micros(2));
            assert_eq!(u.codec, Codec::Opus);
        }
    }

    #[test]
    fn round_trip_keeps_energy_and_plc_gives_20ms() {
        let mut enc = OpusEncoder::new(config(2)).expect("encoder");
        let mut dec = OpusDecoder::new(2).expect("decoder");
        let units = enc
            .encode(&block(48_000, 2, 48_000, 0, Instant::now()))
            .expect("encode");
        assert_eq!(units.len(), 50);
        let mut pcm = Vec::new();
        for u in &units {
            let out = dec.decode(Some(&u.data)).expect("decode");
            assert_eq!(out.len(), FRAME_SAMPLES * 2);
            pcm.extend(out);
        }
        // Skip the codec's start-up; a 0.5-amplitude sine has RMS 0.354.
        let level = rms(&pcm[9600..]);
        assert!((level - 0.354).abs() < 0.04, "rms {level}");
        let concealed = dec.decode(None).expect("plc");
        assert_eq!(concealed.len(), FRAME_SAMPLES * 2);
        // Garbage must come back as an error or samples, never a panic.
        let _ = dec.decode(Some(&[0xff, 0xff, 0xff]));
    }

    #[test]
    fn resamples_and_downmixes_other_inputs() {
        let mut enc = OpusEncoder::new(config(1)).expect("encoder");
        let mut dec = OpusDecoder::new(1).expect("decoder");
        let t0 = Instant::now();
        let mut units = Vec::new();
        let mut at = 0;
        while at < 44_100 {
            let capture = t0 + Duration::from_secs_f64(at as f64 / 44_100.0);
            units.extend(
                enc.encode(&block(44_100, 2, 441, at, capture))
                    .expect("encode"),
            );
            at += 441;
        }
        // One second at 44.1 kHz is 50 packets, less the resampler's look-ahead.
        assert!((48..=50).contains(&units.len()), "{} units", units.len());
        for (i, u) in units.iter().enumerate() {
            let want = Duration::from_millis(20 * i as u64);
            assert!(
                u.pts.abs_diff(want) < Duration::from_micros(25),
                "unit {i}: {:?}",
                u.pts
            );
        }
        let pcm: Vec<f32> = units
            .iter()
            .flat_map(|u| dec.decode(Some(&u.data)).expect("decode"))
            .collect();
        let level = rms(&pcm[9600..]);
        assert!((level - 0.354).abs() < 0.04, "rms {level}");
    }

    #[test]
    fn bad_blocks_and_configs_are_refused() {
        assert!(OpusEncoder::new(config(3)).is_err());
        assert!(OpusDecoder::new(0).is_err());
        let mut enc = OpusEncoder::new(config(2)).expect("encoder");
        let mut b = block(48_000, 2, 10, 0, Instant::now());
        b.samples.pop();
        assert!(matches!(enc.encode(&b), Err(CodecError::AudioBlock(_))));
        b.channels = 0;
        assert!(enc.encode(&b).is_err());
    }

    #[test]
    fn channel_mixing() {
        let mut out = Vec::new();
        mix_channels(&[1.0, 3.0, 0.0, 2.0], 2, 1, &mut out);
        assert_eq!(out, vec![2.0, 1.0]);
        mix_channels(&[1.0, 2.0], 1, 2, &mut out);
        assert_eq!(out, vec![1.0, 1.0, 2.0, 2.0]);
        mix_channels(&[1.0, 2.0, 3.0, 6.0], 4, 2, &mut out);
        assert_eq!(out, vec![1.0, 2.0]);
    }
}
