//! H.264 decoding with openh264 into tightly packed I420 frames.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use pstream_core::{EncodedUnit, VideoFrame};

use crate::CodecError;

/// One decoded picture.
#[derive(Debug, Clone)]
pub struct DecodedPicture {
    /// The picture, planes packed (stride = width).
    pub frame: VideoFrame,
}

/// An H.264 decoder taking whole Annex-B access units.
pub struct H264Decoder {
    inner: Decoder,
    errors: u64,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::H264Decode {
                len: 0,
                state: e.native_code(),
            })?;
        Ok(Self { inner, errors: 0 })
    }

    /// Access units openh264 refused so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Decodes one access unit; `Ok(None)` when it yields no picture (e.g. only SPS/PPS).
    ///
    /// The frame is stamped with the time of decoding and a zero pts; use
    /// [`decode_unit`](Self::decode_unit) to carry an [`EncodedUnit`]'s times over.
    pub fn decode(&mut self, annexb: &[u8]) -> Result<Option<DecodedPicture>, CodecError> {
        self.decode_at(annexb, Instant::now(), Duration::ZERO)
    }

    /// Decodes an encoded unit, giving the picture the unit's capture time and pts.
    pub fn decode_unit(
        &mut self,
        unit: &EncodedUnit,
    ) -> Result<Option<DecodedPicture>, CodecError> {
        self.decode_at(&unit.data, unit.capture, unit.pts)
    }

    fn decode_at(
        &mut self,
        annexb: &[u8],
        capture: Instant,
        pts: Duration,
    ) -> Result<Option<DecodedPicture>, CodecError> {
        if annexb.is_empty() || annexb.len() > i32::MAX as usize {
            return Ok(None);
        }
        let yuv = match self.inner.decode(annexb) {
            Ok(Some(yuv)) => yuv,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.errors += 1;
                return Err(CodecError::H264Decode {
                    len: annexb.len(),
                    state: e.native_code(),
                });
            }
        };
        let (width, height, data) = pack_i420(&yuv)?;
        let frame = VideoFrame::new(width, height, data, capture, pts).map_err(|source| {
            CodecError::Frame {
                codec: "H.264",
                source,
            }
        })?;
        Ok(Some(DecodedPicture { frame }))
    }
}

/// Copies openh264's strided planes into one tightly packed I420 buffer.
fn pack_i420(yuv: &DecodedYUV<'_>) -> Result<(u32, u32, Bytes), CodecError> {
    let (w, h) = yuv.dimensions();
    let (ys, us, vs) = yuv.strides();
    let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(a), Ok(b)) if a > 0 && b > 0 => (a, b),
        _ => return Err(CodecError::DecodedPicture(format!("size {w}x{h}"))),
    };
    let (cw, ch) = VideoFrame::chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let mut out = BytesMut::with_capacity(VideoFrame::byte_len(width, height));
    for (plane, stride, pw, ph) in [
        (yuv.y(), ys, w, h),
        (yuv.u(), us, cw, ch),
        (yuv.v(), vs, cw, ch),
    ] {
        if stride < pw {
            return Err(CodecError::DecodedPicture(format!(
                "stride {stride} below plane width {pw}"
            )));
        }
        for row in 0..ph {
            let line = plane.get(row * stride..row * stride + pw).ok_or_else(|| {
                CodecError::DecodedPicture(format!("plane shorter than {ph} rows"))
            })?;
            out.put_slice(line);
        }
    }
    Ok((width, height, out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::encoder::tests::{config, gradient, psnr};
    use crate::h264::encoder::H264Encoder;

    #[test]
    fn encode_decode_round_trip_keeps_quality_and_times() {
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        for i in 0..10 {
            let src = gradient(320, 240, i);
            let unit = enc.encode(&src).expect("encode").expect("not skipped");
            let pic = dec.decode_unit(&unit).expect("decode").expect("a picture");
            let f = &pic.frame;
            assert_eq!((f.width(), f.height()), (320, 240));
            assert_eq!(f.pts, src.pts);
            assert_eq!(f.capture, src.capture);
            let p = psnr(src.y(), f.y());
            assert!(p > 30.0, "frame {i}: luma PSNR {p:.1} dB");
            assert!(psnr(src.u(), f.u()) > 30.0);
        }
    }

    /// Slice NAL units (IDR or not) in an access unit.
    fn slices(au: &[u8]) -> usize {
        crate::h264::nal::nal_units(au)
            .filter(|n| matches!(crate::h264::nal::nal_type(n), Some(1 | 5)))
            .count()
    }

    #[test]
    fn threads_cut_pictures_into_slices_that_decode_cleanly() {
        for threads in [2u16, 3] {
            let mut c = config(10);
            c.threads = threads;
            let mut enc = H264Encoder::new(c).expect("encoder");
            let mut dec = H264Decoder::new().expect("decoder");
            let mut keys = Vec::new();
            for i in 0..21 {
                let src = gradient(320, 240, i);
                let unit = enc.encode(&src).expect("encode").expect("not skipped");
                assert_eq!(slices(&unit.data), usize::from(threads), "frame {i}");
                if unit.keyframe {
                    keys.push(i);
                    let (sps, _) =
                        crate::h264::nal::parameter_sets(&unit.data).expect("SPS and PPS");
                    let info = crate::h264::nal::parse_sps(sps).expect("parse");
                    assert_eq!((info.width, info.height), (320, 240));
                }
                let pic = dec.decode_unit(&unit).expect("decode").expect("a picture");
                let p = psnr(src.y(), pic.frame.y());
                assert!(
                    p > 30.0,
                    "{threads} threads, frame {i}: luma PSNR {p:.1} dB"
                );
            }
            // The priming picture left no trace: the stream starts at an IDR
            // and keeps its GOP.
            assert_eq!(keys, vec![0, 10, 20], "{threads} threads");
            assert_eq!(enc.keyframes(), 3);
        }
    }

    #[test]
    fn a_new_picture_size_is_sliced_again() {
        let mut c = config(0);
        c.threads = 2;
        let mut enc = H264Encoder::new(c).expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let mut seen = Vec::new();
        for (i, (w, h)) in [(320, 240), (320, 240), (640, 360), (640, 360), (640, 360)]
            .into_iter()
            .enumerate()
        {
            let src = gradient(w, h, i as u32);
            let unit = enc.encode(&src).expect("encode").expect("not skipped");
            let pic = dec.decode_unit(&unit).expect("decode").expect("a picture");
            assert_eq!((pic.frame.width(), pic.frame.height()), (w, h));
            assert!(psnr(src.y(), pic.frame.y()) > 30.0, "frame {i}");
            seen.push((slices(&unit.data), unit.keyframe));
        }
        // The crate restarts openh264 with one slice at the new size; from
        // the picture after, two again (a fresh stream: an IDR).
        assert_eq!(
            seen,
            vec![(2, true), (2, false), (1, true), (2, true), (2, false)]
        );
    }

    #[test]
    fn sizes_that_need_cropping_survive_the_round_trip() {
        let mut c = config(0);
        (c.width, c.height) = (350, 202);
        let mut enc = H264Encoder::new(c).expect("encoder");
        let src = gradient(350, 202, 0);
        let unit = enc.encode(&src).expect("encode").expect("not skipped");
        let (sps, _) = crate::h264::nal::parameter_sets(&unit.data).expect("SPS and PPS");
        let info = crate::h264::nal::parse_sps(sps).expect("parse");
        assert_eq!((info.width, info.height), (350, 202));
        let mut dec = H264Decoder::new().expect("decoder");
        let pic = dec.decode(&unit.data).expect("decode").expect("a picture");
        assert_eq!((pic.frame.width(), pic.frame.height()), (350, 202));
        assert!(psnr(src.y(), pic.frame.y()) > 30.0);
        assert!(psnr(src.v(), pic.frame.v()) > 30.0);
    }

    #[test]
    fn codecs_can_move_to_their_threads() {
        fn send<T: Send>() {}
        send::<H264Decoder>();
        send::<H264Encoder>();
        send::<crate::OpusEncoder>();
        send::<crate::OpusDecoder>();
    }

    #[test]
    fn corrupt_input_is_an_error_or_nothing_never_a_panic() {
        let mut dec = H264Decoder::new().expect("decoder");
        assert!(dec.decode(&[]).expect("empty is fine").is_none());
        let mut seed = 0x1234_5678u32;
        let mut junk = vec![0u8; 4096];
        for b in &mut junk {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (seed >> 24) as u8;
        }
        for start in [
            &[0u8, 0, 0, 1, 0x65][..],
            &[0, 0, 0, 1, 0x67],
            &[0, 0, 1, 0x41],
        ] {
            let mut au = start.to_vec();
            au.extend_from_slice(&junk);
            let _ = dec.decode(&au);
        }
        // A truncated keyframe from a real encoder.
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let unit = enc
            .encode(&gradient(320, 240, 0))
            .expect("encode")
            .expect("not skipped");
        let mut dec = H264Decoder::new().expect("decoder");
        let cut = &unit.data[..unit.data.len() / 2];
        let _ = dec.decode(cut);
        // A P-frame without its reference.
        let p = enc
            .encode(&gradient(320, 240, 1))
            .expect("encode")
            .expect("not skipped");
        let mut fresh = H264Decoder::new().expect("decoder");
        let _ = fresh.decode(&p.data);
    }
}
