//! RTP payload formats: the payloader and depayloader traits, the unit they
//! hand out, their errors, and one leaf per codec.
//!
//! The shared part lives in three files that import no leaf: `types`
//! (payload types, RFC 2435 limits, [`DepacketizedUnit`]), `error` and
//! `traits`. The leaves [`h264`], [`opus`] and [`jpeg`] build on those and
//! never on each other. Only this file knows every leaf: [`Packetizer`] and
//! [`Depacketizer`] pick one by codec.

mod error;
pub mod h264;
pub mod jpeg;
pub mod opus;
mod traits;
mod types;

use pstream_core::Codec;

use crate::packet::RtpPacket;

pub use error::{DepayError, DepayErrorKind, JpegError, JpegUnsupported, PayloaderError};
pub use traits::{Depayloader, Payloader};
pub use types::{
    DepacketizedUnit, MAX_DIMENSION, MAX_H264_UNIT, MAX_OPUS_PACKET, MAX_SCAN_LEN, PT_H264,
    PT_JPEG, PT_OPUS,
};

use h264::{H264Depacketizer, H264Payloader};
use jpeg::{JpegDepacketizer, JpegPayloader};
use opus::{OpusDepacketizer, OpusPayloader};

/// A payloader for one of the codecs pstream sends over RTP.
#[derive(Debug)]
pub enum Packetizer {
    /// H.264 (RFC 6184, packetization mode 1).
    H264(H264Payloader),
    /// Opus (RFC 7587).
    Opus(OpusPayloader),
    /// Motion JPEG (RFC 2435).
    Jpeg(JpegPayloader),
}

impl Packetizer {
    /// A payloader for `codec` whose packets fit in `mtu` bytes, or `None`
    /// if pstream has no RTP mapping for the codec.
    pub fn new(codec: Codec, mtu: usize) -> Option<Result<Self, PayloaderError>> {
        Some(match codec {
            Codec::H264 => H264Payloader::new(mtu).map(Self::H264),
            Codec::Opus => OpusPayloader::new(mtu).map(Self::Opus),
            Codec::Mjpeg => JpegPayloader::new(mtu).map(Self::Jpeg),
            Codec::Aac => return None,
        })
    }
}

impl Payloader for Packetizer {
    fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        unit: &[u8],
        emit: F,
    ) -> Result<usize, PayloaderError> {
        match self {
            Self::H264(p) => Payloader::packetize(p, unit, emit),
            Self::Opus(p) => Payloader::packetize(p, unit, emit),
            Self::Jpeg(p) => Payloader::packetize(p, unit, emit),
        }
    }
}

/// A depacketizer for one of the codecs pstream receives over RTP.
#[derive(Debug)]
pub enum Depacketizer {
    /// H.264 (RFC 6184, packetization modes 0 and 1).
    H264(H264Depacketizer),
    /// Opus (RFC 7587).
    Opus(OpusDepacketizer),
    /// Motion JPEG (RFC 2435).
    Jpeg(JpegDepacketizer),
}

impl Depacketizer {
    /// A depacketizer for `codec`, or `None` if pstream has no RTP mapping for it.
    pub fn new(codec: Codec) -> Option<Self> {
        match codec {
            Codec::H264 => Some(Self::H264(H264Depacketizer::new())),
            Codec::Opus => Some(Self::Opus(OpusDepacketizer::new())),
            Codec::Mjpeg => Some(Self::Jpeg(JpegDepacketizer::new())),
            Codec::Aac => None,
        }
    }

    /// Feeds one packet, in sequence order; completed units queue for [`Self::pop`].
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        match self {
            Self::H264(d) => Depayloader::push(d, pkt),
            Self::Opus(d) => Depayloader::push(d, pkt),
            Self::Jpeg(d) => Depayloader::push(d, pkt),
        }
    }

    /// Takes the next completed unit.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        match self {
            Self::H264(d) => Depayloader::pop(d),
            Self::Opus(d) => Depayloader::pop(d),
            Self::Jpeg(d) => Depayloader::pop(d),
        }
    }

    /// Ends the unit in progress (its sender went away), queueing it if non-empty.
    pub fn flush(&mut self) {
        match self {
            Self::H264(d) => Depayloader::flush(d),
            Self::Opus(d) => Depayloader::flush(d),
            Self::Jpeg(d) => Depayloader::flush(d),
        }
    }
}

impl Depayloader for Depacketizer {
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        Depacketizer::push(self, pkt)
    }

    fn pop(&mut self) -> Option<DepacketizedUnit> {
        Depacketizer::pop(self)
    }

    fn flush(&mut self) {
        Depacketizer::flush(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rtp_codec_has_both_directions() {
        for codec in [Codec::H264, Codec::Opus, Codec::Mjpeg] {
            assert!(Depacketizer::new(codec).is_some(), "{codec}");
            assert!(
                matches!(Packetizer::new(codec, 1200), Some(Ok(_))),
                "{codec}"
            );
            assert!(matches!(
                Packetizer::new(codec, 12),
                Some(Err(PayloaderError::MtuTooSmall { mtu: 12, .. }))
            ));
        }
        assert!(Depacketizer::new(Codec::Aac).is_none());
        assert!(Packetizer::new(Codec::Aac, 1200).is_none());
    }
}
