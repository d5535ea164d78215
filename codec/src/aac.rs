//! AAC-LC with fdk-aac: 1024-sample raw frames for FLV/RTMP.
//!
//! The encoder takes [`AudioBlock`]s of any size, rate and channel count: it
//! mixes channels to the configured count, resamples to 44.1 or 48 kHz and
//! buffers across calls so that every call to fdk-aac gets exactly one
//! frame. Each output [`EncodedUnit`] holds one raw AAC frame (no ADTS
//! header); [`AacEncoder::audio_specific_config`] gives what FLV's AAC
//! sequence header carries.
//!
//! fdk-aac delays its output by a fixed number of samples
//! ([`AacEncoder::delay_samples`]): the audio a decoder gets from frame `n`
//! began `delay` samples before sample `n * 1024` of the input, so each unit
//! is stamped with that earlier time and decoded audio lines up with the
//! capture times of the video. The first frames, which would start before the
//! first input sample (priming only), are dropped, so pts rise strictly from
//! the first unit on.
//!
//! [`AacDecoder`] turns those raw frames back into samples (for checking
//! what the encoder made, e.g. `pstream bench encode`'s PSNR).

use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};
use pstream_core::{AudioBlock, Codec, EncodedUnit};

use crate::error::{AacDecoderLibError, AacLibError};
use crate::framer::AudioFramer;
use crate::CodecError;

/// Sample frames per channel in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// Largest raw AAC frame fdk-aac may write for two channels (6144 bits per channel).
const MAX_FRAME_BYTES: usize = 2 * 768;

/// Settings for [`AacEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Output sample rate: 44 100 or 48 000 Hz.
    pub sample_rate: u32,
    /// Encoded channels: 1 or 2.
    pub channels: u16,
    /// Constant bitrate in bits per second (16 000..=320 000).
    pub bitrate_bps: u32,
}

impl AacConfig {
    fn validate(&self) -> Result<ChannelMode, CodecError> {
        const C: &str = "AAC";
        if !matches!(self.sample_rate, 44_100 | 48_000) {
            return Err(CodecError::config(
                C,
                format!("sample rate {} Hz (44100 or 48000)", self.sample_rate),
            ));
        }
        if !(16_000..=320_000).contains(&self.bitrate_bps) {
            return Err(CodecError::config(
                C,
                format!("bitrate {} bit/s outside 16000..=320000", self.bitrate_bps),
            ));
        }
        match self.channels {
            1 => Ok(ChannelMode::Mono),
            2 => Ok(ChannelMode::Stereo),
            n => Err(CodecError::config(C, format!("{n} channels (1 or 2)"))),
        }
    }
}

/// An AAC-LC encoder producing one [`EncodedUnit`] per 1024 samples.
pub struct AacEncoder {
    inner: Encoder,
    config: AacConfig,
    asc: Bytes,
    delay: u32,
    framer: AudioFramer,
    /// Frames fdk-aac has output so far (priming included).
    emitted: u64,
    pcm: Vec<i16>,
    out: Vec<u8>,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("config", &self.config)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

fn fdk(op: &'static str, e: fdk_aac::enc::EncoderError) -> CodecError {
    CodecError::Aac {
        op,
        source: AacLibError(e),
    }
}

impl AacEncoder {
    /// Creates an AAC-LC encoder with raw (non-ADTS) output.
    pub fn new(config: AacConfig) -> Result<Self, CodecError> {
        let channels = config.validate()?;
        let inner = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(config.bitrate_bps),
            sample_rate: config.sample_rate,
            transport: Transport::Raw,
            channels,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| fdk("open", e))?;
        let info = inner.info().map_err(|e| fdk("info", e))?;
        let len = (info.confSize as usize).min(info.confBuf.len());
        if len < 2 || info.frameLength as usize != AAC_FRAME_SAMPLES {
            return Err(CodecError::config(
                "AAC",
                format!(
                    "fdk-aac gave a {len}-byte AudioSpecificConfig and {}-sample frames",
                    info.frameLength
                ),
            ));
        }
        let asc = Bytes::copy_from_slice(&info.confBuf[..len]);
        Ok(Self {
            inner,
            config,
            asc,
            delay: info.nDelay,
            framer: AudioFramer::new(config.sample_rate, config.channels, AAC_FRAME_SAMPLES),
            emitted: 0,
            pcm: Vec::with_capacity(AAC_FRAME_SAMPLES * usize::from(config.channels)),
            out: vec![0; MAX_FRAME_BYTES * 2],
        })
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &AacConfig {
        &self.config
    }

    /// The AudioSpecificConfig (ISO 14496-3 §1.6.2.1) describing the stream.
    pub fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    /// fdk-aac's encoder delay in samples per channel.
    pub fn delay_samples(&self) -> u32 {
        self.delay
    }

    /// Buffers a block and encodes every complete 1024-sample frame now available.
    pub fn encode(&mut self, block: &AudioBlock) -> Result<Vec<EncodedUnit>, CodecError> {
        self.framer.push(block)?;
        let mut units = Vec::new();
        let (inner, pcm, out, emitted) = (
            &mut self.inner,
            &mut self.pcm,
            &mut self.out,
            &mut self.emitted,
        );
        let delay = f64::from(self.delay);
        self.framer.drain_frames(|frame, _pos, timeline| {
            pcm.clear();
            pcm.extend(
                frame
                    .iter()
                    .map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16),
            );
            let info = inner.encode(pcm, out).map_err(|e| fdk("encode", e))?;
            if info.output_size == 0 {
                return Ok(());
            }
            // Frame `emitted` decodes to the input that began `delay` samples
            // earlier; frames from before the first input sample hold only
            // the encoder's priming and are not handed on.
            let pos = (*emitted * AAC_FRAME_SAMPLES as u64) as f64 - delay;
            *emitted += 1;
            if pos < 0.0 {
                return Ok(());
            }
            let (capture, pts) = timeline.time_of(pos);
            let n = info.output_size.min(out.len());
            units.push(EncodedUnit {
                codec: Codec::Aac,
                keyframe: true,
                pts,
                dts: None,
                capture,
                data: Bytes::copy_from_slice(&out[..n]),
            });
            Ok(())
        })?;
        Ok(units)
    }
}

/// Most samples (all channels) fdk-aac may write for one frame: 2048 per
/// channel (SBR doubles a frame) for up to 8 channels.
const MAX_DECODED_SAMPLES: usize = 2048 * 8;

/// An AAC decoder for raw frames (no ADTS), configured from the stream's
/// AudioSpecificConfig, giving interleaved f32 samples.
pub struct AacDecoder {
    inner: fdk_aac::dec::Decoder,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacDecoder").finish_non_exhaustive()
    }
}

fn fdk_dec(op: &'static str, e: fdk_aac::dec::DecoderError) -> CodecError {
    CodecError::AacDecode {
        op,
        source: AacDecoderLibError(e),
    }
}

impl AacDecoder {
    /// A decoder for the stream `audio_specific_config` describes (what
    /// [`AacEncoder::audio_specific_config`] gives).
    pub fn new(audio_specific_config: &[u8]) -> Result<Self, CodecError> {
        if audio_specific_config.len() < 2 {
            return Err(CodecError::config(
                "AAC decoder",
                format!(
                    "a {}-byte AudioSpecificConfig (at least 2)",
                    audio_specific_config.len()
                ),
            ));
        }
        // fdk-aac's open only fails (a null handle) when it cannot allocate
        // its state, and then Rust's own allocations abort the process too.
        let mut inner = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        inner
            .config_raw(audio_specific_config)
            .map_err(|e| fdk_dec("configure", e))?;
        Ok(Self {
            inner,
            pcm: vec![0; MAX_DECODED_SAMPLES],
        })
    }

    /// Channels of the decoded samples (known after the first frame).
    pub fn channels(&self) -> u16 {
        u16::try_from(self.inner.stream_info().numChannels).unwrap_or(0)
    }

    /// Decodes one raw AAC frame to interleaved f32 in -1.0..1.0.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Vec<f32>, CodecError> {
        if frame.is_empty() {
            return Ok(Vec::new());
        }
        let used = self.inner.fill(frame).map_err(|e| fdk_dec("fill", e))?;
        if used != frame.len() {
            return Err(CodecError::AudioBlock(format!(
                "fdk-aac decoder took {used} of a {}-byte frame",
                frame.len()
            )));
        }
        self.inner
            .decode_frame(&mut self.pcm)
            .map_err(|e| fdk_dec("decode", e))?;
        let n = self.inner.decoded_frame_size().min(self.pcm.len());
        Ok(self.pcm[..n]
            .iter()
            .map(|s| f32::from(*s) / 32768.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn block(rate: u32, channels: u16, frames: usize, start: usize, t0: Instant) -> AudioBlock {
        let mut samples = Vec::with_capacity(frames * usize::from(channels));
        for i in start..start + frames {
            let v = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5;
            for _ in 0..channels {
                samples.push(v);
            }
        }
        let offset = Duration::from_secs_f64(start as f64 / f64::from(rate));
        AudioBlock {
            sample_rate: rate,
            channels,
            samples,
            capture: t0 + offset,
            pts: offset,
        }
    }

    fn config() -> AacConfig {
        AacConfig {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
        }
    }

    #[test]
    fn asc_says_aac_lc_48k_stereo() {
        let enc = AacEncoder::new(config()).expect("encoder");
        let asc = enc.audio_specific_config();
        // 5 bits object type 2, 4 bits frequency index 3, 4 bits channel config 2.
        assert_eq!(&asc[..2], &[0x11, 0x90]);
        let enc = AacEncoder::new(AacConfig {
            sample_rate: 44_100,
            channels: 1,
            ..config()
        })
        .expect("encoder");
        assert_eq!(&enc.audio_specific_config()[..2], &[0x12, 0x08]);
    }

    #[test]
    fn one_unit_per_1024_samples_with_rising_timestamps() {
        let t0 = Instant::now();
        let mut enc = AacEncoder::new(config()).expect("encoder");
        let mut units = Vec::new();
        // One second of 10 ms blocks.
        for i in 0..100 {
            units.extend(
                enc.encode(&block(48_000, 2, 480, i * 480, t0))
                    .expect("encode"),
            );
        }
        // One second is 46.9 frames, less the priming frames dropped for the delay.
        let delay = f64::from(enc.delay_samples());
        assert!((1024.0..=4096.0).contains(&delay), "delay {delay}");
        let primed = (delay / 1024.0).ceil();
        let want_units = (48_000.0 / 1024.0 - primed).floor() as usize;
        assert!(
            units.len().abs_diff(want_units) <= 1,
            "{} units, delay {delay}",
            units.len()
        );
        let first = primed * 1024.0 - delay;
        for (i, u) in units.iter().enumerate() {
            assert_eq!(u.codec, Codec::Aac);
            assert!(!u.data.is_empty() && u.data.len() <= MAX_FRAME_BYTES);
            let want = Duration::from_secs_f64((first + i as f64 * 1024.0) / 48_000.0);
            assert!(
                u.pts.abs_diff(want) < Duration::from_micros(50),
                "{i}: {:?}",
                u.pts
            );
        }
        let bytes: usize = units.iter().map(|u| u.data.len()).sum();
        let kbps = bytes as f64 * 8.0 / (units.len() as f64 * 1024.0 / 48_000.0) / 1000.0;
        assert!((90.0..170.0).contains(&kbps), "{kbps} kbit/s");
    }

    #[test]
    fn other_rates_and_mono_input_are_converted() {
        let t0 = Instant::now();
        let mut enc = AacEncoder::new(config()).expect("encoder");
        let mut n = 0;
        for i in 0..50 {
            n += enc
                .encode(&block(44_100, 1, 441, i * 441, t0))
                .expect("encode")
                .len();
        }
        // Half a second at 48 kHz is 23.4 frames; allow for resampler and encoder delay.
        assert!((17..=24).contains(&n), "{n} units");
    }

    #[test]
    fn bad_settings_are_refused() {
        for c in [
            AacConfig {
                sample_rate: 32_000,
                ..config()
            },
            AacConfig {
                channels: 3,
                ..config()
            },
            AacConfig {
                bitrate_bps: 1_000,
                ..config()
            },
        ] {
            assert!(AacEncoder::new(c).is_err(), "{c:?}");
        }
    }

    /// What the encoder makes decodes back to the tone, one frame of
    /// samples per frame, close to the input once the codec delay is taken
    /// into account.
    #[test]
    fn decoder_gets_the_tone_back() {
        let t0 = Instant::now();
        let mut enc = AacEncoder::new(config()).expect("encoder");
        let mut dec = AacDecoder::new(&enc.audio_specific_config()).expect("decoder");
        let mut input = Vec::new();
        let mut output = Vec::new();
        for i in 0..100 {
            let b = block(48_000, 2, 480, i * 480, t0);
            input.extend(b.samples.iter().step_by(2).copied());
            for unit in enc.encode(&b).expect("encode") {
                let pcm = dec.decode(&unit.data).expect("decode");
                assert_eq!(pcm.len(), 2 * AAC_FRAME_SAMPLES);
                output.extend(pcm.iter().step_by(2).copied());
            }
        }
        assert_eq!(dec.channels(), 2);
        // Find the codec delay: output[j + lag] against input[j]. (With
        // fdk-aac 2 at 48 kHz the lag is 544: the decoded sound comes that
        // much later than the units' stamps, which count the encoder's
        // reported delay of 2048 samples only.)
        let best = (-3072isize..=3072)
            .map(|lag| {
                let err: f32 = (4096..8192isize)
                    .map(|j| (output[(j + lag) as usize] - input[j as usize]).powi(2))
                    .sum();
                (lag, err / 4096.0)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("lags");
        assert!(best.1 < 1e-4, "best lag {} mse {}", best.0, best.1);
        assert!(AacDecoder::new(&[0x11]).is_err());
        assert!(dec.decode(&[]).expect("nothing to decode").is_empty());
    }
}
