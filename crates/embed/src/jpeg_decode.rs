//! An MJPEG camera as a source of raw frames.
//!
//! pstream-capture hands an MJPG camera out as its JPEGs (an
//! [`EncodedVideoSource`]), which an MJPEG stream sends as they are. A
//! pipeline that needs raw frames (H.264 encode, push, record) puts this
//! decoder behind it: libjpeg-turbo (pstream-codec) decodes on the pulling
//! stage's thread, off the capture thread. A JPEG that does not decode, or
//! decodes to another size than the camera negotiated, is dropped and
//! counted as corrupt on the camera's counters; [`MAX_BAD_IN_A_ROW`] of them
//! in a row end the stream with the last reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pstream_capture::v4l2::capture::MAX_BAD_IN_A_ROW;
use pstream_codec::mjpeg::MjpegDecoder;
use pstream_codec::CodecError;
use pstream_core::{
    CameraCounters, EncodedUnit, EncodedVideoSource, MediaError, VideoFormat, VideoFrame,
    VideoSource,
};

/// Why a camera's JPEGs cannot become frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JpegDecodeError {
    /// libjpeg-turbo's decompressor could not be made.
    #[error("{spec}: cannot start the JPEG decoder")]
    Start {
        /// The camera, as named on the command line.
        spec: String,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },
    /// Too many JPEGs in a row could not be used.
    #[error("{spec}: {count} JPEGs in a row could not be used")]
    TooManyBad {
        /// The camera, as named on the command line.
        spec: String,
        /// How many in a row.
        count: u32,
        /// Why the last one could not.
        #[source]
        source: BadJpeg,
    },
}

/// Why one JPEG could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadJpeg {
    /// It does not decode.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// It decodes to another size than the camera negotiated.
    #[error("JPEGs are {width}x{height}, not the negotiated {want_width}x{want_height}")]
    Size {
        /// The decoded width.
        width: u32,
        /// The decoded height.
        height: u32,
        /// The negotiated width.
        want_width: u32,
        /// The negotiated height.
        want_height: u32,
    },
}

/// Decodes the JPEGs of an MJPEG camera into I420 frames.
pub struct JpegDecodeSource {
    inner: Box<dyn EncodedVideoSource>,
    spec: String,
    /// Made on the first JPEG.
    decoder: Option<MjpegDecoder>,
    counters: Option<Arc<CameraCounters>>,
    bad_in_a_row: u32,
}

impl JpegDecodeSource {
    /// Frames from `inner`'s JPEGs; `spec` names the camera in errors.
    pub fn new(inner: Box<dyn EncodedVideoSource>, spec: &str) -> Self {
        let counters = inner.camera_counters();
        Self {
            inner,
            spec: spec.to_owned(),
            decoder: None,
            counters,
            bad_in_a_row: 0,
        }
    }

    /// The frame in `unit`, `Ok(None)` when it is unusable (counted), an
    /// error when too many in a row were.
    fn decode(&mut self, unit: &EncodedUnit) -> Result<Option<VideoFrame>, JpegDecodeError> {
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => self.decoder.insert(MjpegDecoder::new().map_err(|source| {
                JpegDecodeError::Start {
                    spec: self.spec.clone(),
                    source,
                }
            })?),
        };
        let f = self.inner.format();
        let why = match decoder.decode_unit(unit) {
            Ok(p) if (p.frame.width(), p.frame.height()) == (f.width, f.height) => {
                self.bad_in_a_row = 0;
                return Ok(Some(p.frame));
            }
            Ok(p) => BadJpeg::Size {
                width: p.frame.width(),
                height: p.frame.height(),
                want_width: f.width,
                want_height: f.height,
            },
            Err(e) => BadJpeg::Decode(e),
        };
        if let Some(c) = &self.counters {
            c.corrupt.fetch_add(1, Ordering::Relaxed);
        }
        self.bad_in_a_row += 1;
        if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
            return Err(JpegDecodeError::TooManyBad {
                spec: self.spec.clone(),
                count: MAX_BAD_IN_A_ROW,
                source: why,
            });
        }
        Ok(None)
    }
}

impl VideoSource for JpegDecodeSource {
    fn format(&self) -> VideoFormat {
        self.inner.format()
    }

    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        self.counters.clone()
    }

    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        loop {
            let Some(unit) = self.inner.next_unit()? else {
                return Ok(None);
            };
            match self.decode(&unit) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => continue,
                Err(e) => return Err(MediaError::failed(self.spec.clone(), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pstream_codec::mjpeg::MjpegEncoder;
    use pstream_core::Codec;
    use std::time::{Duration, Instant};

    const FORMAT: VideoFormat = VideoFormat {
        width: 64,
        height: 48,
        fps_num: 25,
        fps_den: 1,
    };

    /// JPEGs from a list, as a camera would hand them over, with its counters.
    struct Jpegs(Vec<Bytes>, Arc<CameraCounters>);

    impl EncodedVideoSource for Jpegs {
        fn format(&self) -> VideoFormat {
            FORMAT
        }

        fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
            Some(self.1.clone())
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

    fn jpeg(width: u32, height: u32, luma: u8) -> Bytes {
        let data = Bytes::from(vec![luma; VideoFrame::byte_len(width, height)]);
        let frame =
            VideoFrame::new(width, height, data, Instant::now(), Duration::ZERO).expect("a frame");
        let mut enc = MjpegEncoder::new(90).expect("encoder");
        enc.encode(&frame).expect("encodes").data
    }

    #[test]
    fn jpegs_become_frames_and_bad_ones_are_counted_as_corrupt() {
        let counters = Arc::new(CameraCounters::default());
        let jpegs = vec![
            jpeg(64, 48, 100),
            Bytes::from_static(b"\xff\xd8 not a JPEG"),
            jpeg(32, 16, 50),
            jpeg(64, 48, 200),
        ];
        let mut src = JpegDecodeSource::new(Box::new(Jpegs(jpegs, counters.clone())), "v4l2:x");
        assert_eq!(src.format(), FORMAT);
        let a = src.next_frame().expect("ok").expect("a frame");
        assert_eq!((a.width(), a.height()), (64, 48));
        assert_eq!(a.pts, Duration::from_millis(40), "the camera's timing");
        assert!(a.y().iter().all(|&y| y.abs_diff(100) <= 2));
        // The garbage and the wrong size are skipped and counted.
        let b = src.next_frame().expect("ok").expect("a frame");
        assert!(b.y().iter().all(|&y| y.abs_diff(200) <= 2));
        assert_eq!(counters.corrupt.load(Ordering::Relaxed), 2);
        assert!(src.camera_counters().is_some());
        assert!(src.next_frame().expect("ok").is_none());
    }

    #[test]
    fn a_run_of_bad_jpegs_ends_the_stream_naming_the_camera() {
        let counters = Arc::new(CameraCounters::default());
        let jpegs = vec![jpeg(32, 16, 50); MAX_BAD_IN_A_ROW as usize];
        let mut src = JpegDecodeSource::new(Box::new(Jpegs(jpegs, counters)), "v4l2:/dev/video7");
        let e = src.next_frame().expect_err("too many bad JPEGs");
        assert_eq!(e.spec(), "v4l2:/dev/video7");
        assert_eq!(
            pstream_core::error::one_line(&e),
            "v4l2:/dev/video7: 60 JPEGs in a row could not be used: \
             JPEGs are 32x16, not the negotiated 64x48"
        );
    }
}
