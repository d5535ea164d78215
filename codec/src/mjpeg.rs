//! Motion JPEG with libjpeg-turbo (TurboJPEG 3 API): a baseline 4:2:0
//! encoder straight from I420 planes, and a decoder back to I420.
//!
//! Why libjpeg-turbo and not a pure-Rust encoder: it takes the I420 planes
//! as they are (no colour conversion) and its SIMD DCT and Huffman coder
//! encode a 720p frame several times faster (see `benches/jpeg_encode.rs`
//! and BENCHMARKS.md). Its quantization tables are libjpeg's standard tables
//! scaled by `jpeg_set_quality`, which for quality 1..=99 equal RFC 2435's
//! `MakeTables(q)`, so the RTP payloader can send Q = quality and no tables.
//!
//! V4L2 passthrough (planned): a camera that delivers MJPEG needs no
//! encoder. Its capture source would hand each driver buffer over as an
//! [`EncodedUnit`] (`Codec::Mjpeg`, `keyframe: true`, the JPEG as it came)
//! straight to the RTP stage; the payloader parses SOF/DQT/DHT itself, sends
//! Q 1..=99 when the camera's tables are the standard scaled ones and
//! in-band tables otherwise, and refuses (one clear error) a camera whose
//! JPEGs use non-standard Huffman tables or sampling RFC 2435 cannot carry.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pstream_core::{Codec, EncodedUnit, VideoFrame};
use turbojpeg::{Compressor, Decompressor, Subsamp, YuvImage};

use crate::h264::DecodedPicture;
use crate::{CodecError, VideoEncoder};

/// Default JPEG quality of `pstream send --video-codec mjpeg`.
pub const DEFAULT_QUALITY: u8 = 85;

fn tj_err(op: &'static str) -> impl Fn(turbojpeg::Error) -> CodecError {
    move |source| CodecError::Jpeg { op, source }
}

/// A baseline JPEG encoder (4:2:0, standard Huffman tables) taking I420 frames.
pub struct MjpegEncoder {
    inner: Compressor,
    quality: u8,
    frames: u64,
}

impl std::fmt::Debug for MjpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegEncoder")
            .field("quality", &self.quality)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl MjpegEncoder {
    /// An encoder at `quality` 1..=100 (libjpeg's scale).
    pub fn new(quality: u8) -> Result<Self, CodecError> {
        if !(1..=100).contains(&quality) {
            return Err(CodecError::config(
                "MJPEG",
                format!("quality {quality} not in 1..=100"),
            ));
        }
        let mut inner = Compressor::new().map_err(tj_err("create compressor"))?;
        inner
            .set_quality(i32::from(quality))
            .map_err(tj_err("set quality"))?;
        inner
            .set_subsamp(Subsamp::Sub2x2)
            .map_err(tj_err("set subsampling"))?;
        // Standard Huffman tables: RFC 2435 receivers rebuild only those.
        inner
            .set_optimize(false)
            .map_err(tj_err("set Huffman optimisation"))?;
        Ok(Self {
            inner,
            quality,
            frames: 0,
        })
    }

    /// The quality this encoder was built with.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Encodes one I420 picture into a complete JPEG (every frame is a keyframe).
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedUnit, CodecError> {
        let (width, height) = (frame.width(), frame.height());
        if width % 2 != 0 || height % 2 != 0 {
            return Err(CodecError::JpegInput {
                op: "encode",
                why: format!("{width}x{height}: 4:2:0 JPEG from I420 needs even dimensions"),
            });
        }
        // With even sizes and no row padding, TurboJPEG's planar YUV layout
        // is exactly I420: the frame's buffer goes in as it is.
        let image = YuvImage {
            pixels: &frame.data()[..],
            width: width as usize,
            align: 1,
            height: height as usize,
            subsamp: Subsamp::Sub2x2,
        };
        let jpeg = self
            .inner
            .compress_yuv_to_vec(image)
            .map_err(tj_err("compress"))?;
        self.frames += 1;
        Ok(EncodedUnit {
            codec: Codec::Mjpeg,
            keyframe: true,
            pts: frame.pts,
            dts: None,
            capture: frame.capture,
            data: Bytes::from(jpeg),
        })
    }
}

impl VideoEncoder for MjpegEncoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedUnit>, CodecError> {
        MjpegEncoder::encode(self, frame).map(Some)
    }

    /// Every JPEG is a keyframe: nothing to do.
    fn request_keyframe(&mut self) {}
}

/// A JPEG decoder producing tightly packed I420 frames whatever the JPEG's sampling.
pub struct MjpegDecoder {
    inner: Decompressor,
    scratch: Vec<u8>,
    errors: u64,
}

impl std::fmt::Debug for MjpegDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegDecoder")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl MjpegDecoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: Decompressor::new().map_err(tj_err("create decompressor"))?,
            scratch: Vec::new(),
            errors: 0,
        })
    }

    /// JPEGs refused so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Decodes a unit, giving the picture the unit's capture time and pts.
    pub fn decode_unit(&mut self, unit: &EncodedUnit) -> Result<DecodedPicture, CodecError> {
        self.decode_at(&unit.data, unit.capture, unit.pts)
    }

    /// Decodes one JPEG, stamped with the time of decoding and a zero pts.
    pub fn decode(&mut self, jpeg: &[u8]) -> Result<DecodedPicture, CodecError> {
        self.decode_at(jpeg, Instant::now(), Duration::ZERO)
    }

    fn decode_at(
        &mut self,
        jpeg: &[u8],
        capture: Instant,
        pts: Duration,
    ) -> Result<DecodedPicture, CodecError> {
        let result = self.decode_inner(jpeg, capture, pts);
        if result.is_err() {
            self.errors += 1;
        }
        result
    }

    fn decode_inner(
        &mut self,
        jpeg: &[u8],
        capture: Instant,
        pts: Duration,
    ) -> Result<DecodedPicture, CodecError> {
        let header = self
            .inner
            .read_header(jpeg)
            .map_err(tj_err("read header"))?;
        let (w, h) = (header.width, header.height);
        let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
            (Ok(a), Ok(b)) if a > 0 && b > 0 && a <= 16384 && b <= 16384 => (a, b),
            _ => {
                return Err(CodecError::JpegInput {
                    op: "read header",
                    why: format!("unusable size {w}x{h}"),
                })
            }
        };
        let len = VideoFrame::byte_len(width, height);
        let data = if header.subsamp == Subsamp::Sub2x2 && w % 2 == 0 && h % 2 == 0 {
            // TurboJPEG's layout is I420 here: decode in place.
            let mut out = vec![0u8; len];
            self.inner
                .decompress_to_yuv(
                    jpeg,
                    YuvImage {
                        pixels: &mut out[..],
                        width: w,
                        align: 1,
                        height: h,
                        subsamp: Subsamp::Sub2x2,
                    },
                )
                .map_err(tj_err("decompress"))?;
            Bytes::from(out)
        } else {
            self.decode_resampled(jpeg, w, h, header.subsamp)?
        };
        let frame = VideoFrame::new(width, height, data, capture, pts).map_err(|source| {
            CodecError::Frame {
                codec: "JPEG",
                source,
            }
        })?;
        Ok(DecodedPicture { frame })
    }

    /// Decodes at the JPEG's own sampling, then repacks into I420.
    fn decode_resampled(
        &mut self,
        jpeg: &[u8],
        w: usize,
        h: usize,
        subsamp: Subsamp,
    ) -> Result<Bytes, CodecError> {
        let sub = subsamp;
        let layout = YuvImage {
            pixels: (),
            width: w,
            align: 1,
            height: h,
            subsamp: sub,
        };
        let (yw, yh) = layout.y_size();
        let (uw, uh) = if sub == Subsamp::Gray {
            (0, 0)
        } else {
            layout.uv_size()
        };
        let need = turbojpeg::yuv_pixels_len(w, 1, h, sub).map_err(tj_err("plane size"))?;
        self.scratch.clear();
        self.scratch.resize(need, 0);
        self.inner
            .decompress_to_yuv(
                jpeg,
                YuvImage {
                    pixels: &mut self.scratch[..],
                    width: w,
                    align: 1,
                    height: h,
                    subsamp: sub,
                },
            )
            .map_err(tj_err("decompress"))?;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = BytesMut::with_capacity(w * h + 2 * cw * ch);
        let src = &self.scratch;
        for row in 0..h {
            out.extend_from_slice(&src[row * yw..row * yw + w]);
        }
        let uv_base = yw * yh;
        for plane in 0..2 {
            let base = uv_base + plane * uw * uh;
            for y in 0..ch {
                for x in 0..cw {
                    let v = if uw == 0 || uh == 0 {
                        128
                    } else {
                        // Nearest chroma sample for this 2x2 block's centre.
                        let sx = ((2 * x * uw) / w.max(1)).min(uw - 1);
                        let sy = ((2 * y * uh) / h.max(1)).min(uh - 1);
                        src.get(base + sy * uw + sx).copied().unwrap_or(128)
                    };
                    out.extend_from_slice(&[v]);
                }
            }
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::encoder::tests::{gradient, psnr};

    /// The DQT tables (id → zigzag bytes) of a JPEG.
    fn dqt(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 2;
        while pos + 4 <= jpeg.len() && jpeg[pos] == 0xff && jpeg[pos + 1] != 0xda {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] == 0xdb {
                let mut s = &jpeg[pos + 4..pos + 2 + len];
                while let [pt, rest @ ..] = s {
                    out.push((pt & 0x0f, rest[..64].to_vec()));
                    s = &rest[64..];
                }
            }
            pos += 2 + len;
        }
        out
    }

    #[test]
    fn encode_decode_round_trip_keeps_size_times_and_quality() {
        let mut enc = MjpegEncoder::new(DEFAULT_QUALITY).expect("encoder");
        let mut dec = MjpegDecoder::new().expect("decoder");
        for i in 0..3 {
            let src = gradient(320, 240, i);
            let unit = enc.encode(&src).expect("encode");
            assert_eq!(unit.codec, Codec::Mjpeg);
            assert!(unit.keyframe);
            assert_eq!((unit.pts, unit.capture), (src.pts, src.capture));
            assert_eq!(&unit.data[..2], &[0xff, 0xd8]);
            let pic = dec.decode_unit(&unit).expect("decode");
            let f = &pic.frame;
            assert_eq!((f.width(), f.height()), (320, 240));
            assert_eq!((f.pts, f.capture), (src.pts, src.capture));
            assert!(psnr(src.y(), f.y()) > 30.0, "luma PSNR");
            assert!(psnr(src.u(), f.u()) > 30.0, "chroma PSNR");
        }
        assert_eq!(enc.frames(), 3);
    }

    /// The payloader relies on this: for quality 1..=99 libjpeg-turbo's
    /// tables are exactly RFC 2435's MakeTables(quality).
    #[test]
    fn quantization_tables_are_rfc2435_make_tables_for_1_to_99() {
        let src = gradient(64, 48, 0);
        for q in [1u8, 10, 25, 49, 50, 51, 75, 85, 95, 99] {
            let mut enc = MjpegEncoder::new(q).expect("encoder");
            let unit = enc.encode(&src).expect("encode");
            let tables = dqt(&unit.data);
            assert_eq!(tables.len(), 2, "q {q}");
            assert_eq!(
                pstream_rtp_tables::standard_q(&tables[0].1, &tables[1].1),
                Some(q),
                "q {q}"
            );
        }
        // Quality 100 is all ones: not expressible as an RFC Q.
        let unit = MjpegEncoder::new(100)
            .expect("encoder")
            .encode(&src)
            .expect("encode");
        let tables = dqt(&unit.data);
        assert!(tables[0].1.iter().all(|&v| v == 1));
        assert_eq!(
            pstream_rtp_tables::standard_q(&tables[0].1, &tables[1].1),
            None
        );
    }

    /// A copy of RFC 2435's MakeTables, independent of crates/rtp's, so
    /// each crate checks the other.
    mod pstream_rtp_tables {
        const ZIGZAG: [usize; 64] = [
            0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
            27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
            44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
        ];
        const LUMA: [u32; 64] = [
            16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
            69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
            64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
            103, 99,
        ];
        const CHROMA: [u32; 64] = [
            17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99,
            99, 99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
            99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
        ];

        pub fn standard_q(luma: &[u8], chroma: &[u8]) -> Option<u8> {
            (1..=99u32).find_map(|q| {
                let s = if q < 50 { 5000 / q } else { 200 - 2 * q };
                let ok = (0..64).all(|i| {
                    let l = ((LUMA[ZIGZAG[i]] * s + 50) / 100).clamp(1, 255) as u8;
                    let c = ((CHROMA[ZIGZAG[i]] * s + 50) / 100).clamp(1, 255) as u8;
                    luma.get(i) == Some(&l) && chroma.get(i) == Some(&c)
                });
                ok.then_some(q as u8)
            })
        }
    }

    #[test]
    fn non_420_jpegs_decode_to_i420() {
        // Encode RGB at 4:2:2 and 4:4:4 and grey, odd size, through TurboJPEG directly.
        let (w, h) = (37usize, 21usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 13 % 256) as u8).collect();
        for sub in [
            Subsamp::Sub2x1,
            Subsamp::None,
            Subsamp::Gray,
            Subsamp::Sub2x2,
        ] {
            let image = turbojpeg::Image {
                pixels: &rgb[..],
                width: w,
                pitch: w * 3,
                height: h,
                format: turbojpeg::PixelFormat::RGB,
            };
            let jpeg = turbojpeg::compress(image, 90, sub).expect("compress");
            let pic = MjpegDecoder::new()
                .expect("decoder")
                .decode(&jpeg)
                .expect("decode");
            assert_eq!(
                (pic.frame.width(), pic.frame.height()),
                (w as u32, h as u32)
            );
            assert_eq!(pic.frame.data().len(), VideoFrame::byte_len(37, 21));
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let mut dec = MjpegDecoder::new().expect("decoder");
        assert!(dec.decode(&[]).is_err());
        assert!(dec.decode(b"\xff\xd8\xff\xd9").is_err());
        let good = MjpegEncoder::new(50)
            .expect("encoder")
            .encode(&gradient(64, 48, 1))
            .expect("encode");
        for cut in [3, 20, 100, 300, good.data.len() - 10] {
            let _ = dec.decode(&good.data[..cut]);
        }
        let mut seed = 7u32;
        for _ in 0..200 {
            let mut d = good.data.to_vec();
            for _ in 0..4 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = seed as usize % d.len();
                d[at] = (seed >> 24) as u8;
            }
            let _ = dec.decode(&d);
        }
        assert!(MjpegEncoder::new(0).is_err());
        assert!(MjpegEncoder::new(101).is_err());
        let odd = VideoFrame::new(
            3,
            2,
            Bytes::from(vec![0u8; VideoFrame::byte_len(3, 2)]),
            Instant::now(),
            Duration::ZERO,
        )
        .expect("frame");
        assert!(MjpegEncoder::new(50)
            .expect("encoder")
            .encode(&odd)
            .is_err());
    }
}
