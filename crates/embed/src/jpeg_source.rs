//! A camera's JPEGs made fit for RFC 2435.
//!
//! RTP/JPEG carries only the scan data and rebuilds the headers at the
//! receiver from a type and a Q value, so it can carry only baseline JPEGs
//! sampled 4:2:0 (2x2) or 4:2:2 (2x1) with the standard Huffman tables. Most
//! UVC cameras deliver exactly that, and their JPEGs are sent untouched. A
//! camera (or a capture card, or a program feeding a loopback device) whose
//! JPEGs are otherwise (optimised Huffman tables, 4:2:2 as 2x2 luma over 1x2
//! chroma, progressive) would be refused frame after frame; those frames are
//! decoded and encoded again instead, which costs CPU but keeps the stream.

use pstream_codec::mjpeg::{MjpegDecoder, MjpegEncoder};
use pstream_codec::CodecError;
use pstream_core::{CameraCounters, EncodedUnit, EncodedVideoSource, MediaError, VideoFormat};
use pstream_rtp::jpeg::parse_jpeg;

/// Why a camera JPEG could not be re-encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReencodeError {
    /// libjpeg-turbo could not start, decode or encode.
    #[error("camera JPEG: cannot {what} it")]
    Codec {
        /// "decode", "encode".
        what: &'static str,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
}

/// Wraps a source of JPEGs: passes on those RFC 2435 can carry, and
/// re-encodes the others at `quality`.
pub struct RtpJpegSource {
    inner: Box<dyn EncodedVideoSource>,
    quality: u8,
    /// Made on the first JPEG that needs it: most cameras never do.
    transcoder: Option<(MjpegDecoder, MjpegEncoder)>,
    reencoded: u64,
}

impl RtpJpegSource {
    /// A source of `inner`'s JPEGs, re-encoding at `quality` where needed.
    pub fn new(inner: Box<dyn EncodedVideoSource>, quality: u8) -> Self {
        Self {
            inner,
            quality,
            transcoder: None,
            reencoded: 0,
        }
    }

    /// JPEGs that had to be decoded and encoded again.
    pub fn reencoded(&self) -> u64 {
        self.reencoded
    }

    fn reencode(&mut self, unit: &EncodedUnit, why: &str) -> Result<EncodedUnit, ReencodeError> {
        let bad = |what: &'static str| move |source| ReencodeError::Codec { what, source };
        let (decoder, encoder) = match &mut self.transcoder {
            Some((d, e)) => (d, e),
            None => {
                tracing::warn!(
                    "the camera's JPEGs cannot go over RTP as they are ({why}); \
                     decoding and re-encoding them at quality {}",
                    self.quality
                );
                let decoder = MjpegDecoder::new().map_err(bad("decode"))?;
                let encoder = MjpegEncoder::new(self.quality).map_err(bad("encode"))?;
                let (d, e) = self.transcoder.insert((decoder, encoder));
                (d, e)
            }
        };
        let picture = decoder.decode_unit(unit).map_err(bad("decode"))?;
        let mut out = encoder.encode(&picture.frame).map_err(bad("encode"))?;
        // The camera's timing, not the transcoder's.
        out.capture = unit.capture;
        out.pts = unit.pts;
        out.dts = unit.dts;
        self.reencoded += 1;
        Ok(out)
    }
}

impl EncodedVideoSource for RtpJpegSource {
    fn format(&self) -> VideoFormat {
        self.inner.format()
    }

    fn camera_counters(&self) -> Option<std::sync::Arc<CameraCounters>> {
        self.inner.camera_counters()
    }

    fn next_unit(&mut self) -> Result<Option<EncodedUnit>, MediaError> {
        let Some(unit) = self.inner.next_unit()? else {
            return Ok(None);
        };
        let why = match parse_jpeg(&unit.data) {
            Ok(_) => return Ok(Some(unit)),
            Err(e) => e.to_string(),
        };
        self.reencode(&unit, &why)
            .map(Some)
            .map_err(|e| MediaError::failed("camera JPEG", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pstream_core::{Codec, VideoFrame};
    use std::time::{Duration, Instant};

    /// ffmpeg's MJPEG encoder at its defaults: optimised Huffman tables and
    /// 4:2:2 as 2x2 luma over 1x2 chroma, neither of which RFC 2435 carries.
    const FFMPEG_JPEG: &[u8] = include_bytes!("../testdata/ffmpeg-422-optimal-huffman.jpg");

    /// JPEGs from a list, as a camera would hand them over.
    struct Jpegs(Vec<Bytes>);

    impl EncodedVideoSource for Jpegs {
        fn format(&self) -> VideoFormat {
            VideoFormat {
                width: 64,
                height: 48,
                fps_num: 25,
                fps_den: 1,
            }
        }

        fn next_unit(&mut self) -> Result<Option<EncodedUnit>, MediaError> {
            if self.0.is_empty() {
                return Ok(None);
            }
            Ok(Some(EncodedUnit {
                codec: Codec::Mjpeg,
                data: self.0.remove(0),
                keyframe: true,
                capture: Instant::now(),
                pts: Duration::from_millis(40),
                dts: None,
            }))
        }
    }

    fn gray_jpeg() -> Bytes {
        let data = Bytes::from(vec![128u8; VideoFrame::byte_len(64, 48)]);
        let frame = VideoFrame::new(64, 48, data, Instant::now(), Duration::ZERO).expect("a frame");
        let mut enc = MjpegEncoder::new(80).expect("encoder");
        enc.encode(&frame).expect("encodes").data
    }

    #[test]
    fn sendable_jpegs_pass_untouched_and_others_are_reencoded() {
        let good = gray_jpeg();
        assert!(
            parse_jpeg(&good).is_ok(),
            "our own encoder's JPEG is sendable"
        );
        assert!(parse_jpeg(FFMPEG_JPEG).is_err(), "ffmpeg's is not");
        let odd = Bytes::from_static(FFMPEG_JPEG);
        let mut src = RtpJpegSource::new(Box::new(Jpegs(vec![good.clone(), odd.clone()])), 90);
        let first = src.next_unit().expect("no error").expect("a unit");
        assert_eq!(first.data, good);
        assert_eq!(src.reencoded(), 0);
        let second = src.next_unit().expect("no error").expect("a unit");
        assert_eq!(src.reencoded(), 1);
        assert!(parse_jpeg(&second.data).is_ok(), "re-encoded for RFC 2435");
        assert_eq!(second.pts, Duration::from_millis(40), "the camera's timing");
        // The same picture: compare both decodings' luma.
        let mut dec = MjpegDecoder::new().expect("decoder");
        let a = dec.decode(&odd).expect("ffmpeg's JPEG decodes").frame;
        let b = dec.decode(&second.data).expect("ours decodes").frame;
        let se: f64 = a
            .y()
            .iter()
            .zip(b.y())
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let psnr = 10.0 * (255.0f64.powi(2) / (se / a.y().len() as f64).max(1e-9)).log10();
        assert!(psnr > 30.0, "re-encoded picture differs: {psnr:.1} dB");
        assert!(src.next_unit().expect("no error").is_none());
    }
}
