//! The audio encoder trait the pipelines drive, beside
//! [`VideoEncoder`](crate::VideoEncoder): Opus for RTP, AAC for FLV/RTMP.

use pstream_core::{AudioBlock, Codec, EncodedUnit};

use crate::{AacEncoder, CodecError, OpusEncoder};

/// Turns raw audio blocks into encoded frames.
pub trait AudioEncoder: Send {
    /// The codec of the units this encoder makes.
    fn codec(&self) -> Codec;

    /// Buffers `block` and encodes every complete frame now available
    /// (none while a frame is still filling up).
    fn encode(&mut self, block: &AudioBlock) -> Result<Vec<EncodedUnit>, CodecError>;
}

impl AudioEncoder for OpusEncoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn encode(&mut self, block: &AudioBlock) -> Result<Vec<EncodedUnit>, CodecError> {
        OpusEncoder::encode(self, block)
    }
}

impl AudioEncoder for AacEncoder {
    fn codec(&self) -> Codec {
        Codec::Aac
    }

    fn encode(&mut self, block: &AudioBlock) -> Result<Vec<EncodedUnit>, CodecError> {
        AacEncoder::encode(self, block)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{AacConfig, OpusApplication, OpusConfig};

    fn tone(rate: u32, ms: u32, pts: Duration) -> AudioBlock {
        let frames = (rate * ms / 1000) as usize;
        let samples = (0..frames * 2)
            .map(|i| ((i / 2) as f32 * 0.05).sin() * 0.3)
            .collect();
        AudioBlock {
            sample_rate: rate,
            channels: 2,
            samples,
            capture: Instant::now(),
            pts,
        }
    }

    /// Both encoders work through the trait object the encode stage holds,
    /// each making units of its own codec.
    #[test]
    fn opus_and_aac_encode_through_the_trait() {
        let opus = OpusEncoder::new(OpusConfig {
            channels: 2,
            bitrate_bps: 64_000,
            application: OpusApplication::LowDelay,
        })
        .expect("opus");
        let aac = AacEncoder::new(AacConfig {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
        })
        .expect("aac");
        let encoders: Vec<Box<dyn AudioEncoder>> = vec![Box::new(opus), Box::new(aac)];
        for mut enc in encoders {
            let mut units = Vec::new();
            for i in 0..20 {
                let block = tone(48_000, 10, Duration::from_millis(10 * i));
                units.extend(enc.encode(&block).expect("encode"));
            }
            let codec = enc.codec();
            assert!(!units.is_empty(), "{codec}: no units from 200 ms");
            assert!(units.iter().all(|u| u.codec == codec), "{codec}");
        }
    }
}
