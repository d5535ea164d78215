//! One rendition's video path: decode H.264, scale, re-encode smaller.
//!
//! [`Transcoder::push`] takes the source's access units in decode order and
//! returns the rendition's. The scaler and encoder are built from the first
//! decoded picture (and rebuilt if the source size changes); frames above
//! the rendition's frame rate are skipped; a source keyframe asks the
//! encoder for an IDR so that rendition segments start where the source's
//! do. After a gap in the input (the caller's queue dropped units) call
//! [`Transcoder::resync`]: units are then skipped until the next keyframe,
//! so the decoder never works from a missing reference.

use std::time::Duration;

use pstream_core::{Codec, EncodedUnit};

use crate::scale::{Rendition, Scaler};
use crate::{CodecError, H264Config, H264Decoder, H264Encoder, H264Preset};

/// Decode, scale and encode for one rendition (see the module docs).
#[derive(Debug)]
pub struct Transcoder {
    rendition: Rendition,
    decoder: H264Decoder,
    scaler: Option<Scaler>,
    encoder: Option<H264Encoder>,
    last_out: Option<Duration>,
    waiting_for_keyframe: bool,
    frames_in: u64,
    frames_out: u64,
    skipped: u64,
}

impl Transcoder {
    /// A transcoder to `rendition`.
    pub fn new(rendition: Rendition) -> Result<Self, CodecError> {
        Ok(Self {
            rendition,
            decoder: H264Decoder::new()?,
            scaler: None,
            encoder: None,
            last_out: None,
            waiting_for_keyframe: true,
            frames_in: 0,
            frames_out: 0,
            skipped: 0,
        })
    }

    /// The rendition produced.
    pub fn rendition(&self) -> Rendition {
        self.rendition
    }

    /// The output picture size, once the first picture has been decoded.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.scaler.as_ref().map(Scaler::output_size)
    }

    /// Source units taken so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Rendition units produced so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Units skipped (waiting for a keyframe, above the frame rate, undecodable).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The input had a gap: skip to the next keyframe.
    pub fn resync(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Transcodes one source access unit; `Ok(None)` when it yields no output.
    ///
    /// A unit the decoder refuses is skipped and counted, and the stream
    /// resynchronises at the next keyframe; errors are only returned for
    /// failures of the scaler or encoder.
    pub fn push(&mut self, unit: &EncodedUnit) -> Result<Option<EncodedUnit>, CodecError> {
        if unit.codec != Codec::H264 {
            return Ok(None);
        }
        self.frames_in += 1;
        let keyframe = unit.keyframe || crate::h264::nal::contains_idr(&unit.data);
        if self.waiting_for_keyframe {
            if !keyframe {
                self.skipped += 1;
                return Ok(None);
            }
            self.waiting_for_keyframe = false;
        }
        let picture = match self.decoder.decode_unit(unit) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(_) => {
                self.skipped += 1;
                self.waiting_for_keyframe = true;
                return Ok(None);
            }
        };
        // Keep at most the rendition's frame rate (with 10% slack for jittery stamps).
        let interval = Duration::from_secs(1) / self.rendition.fps();
        if let Some(last) = self.last_out {
            if !keyframe && unit.pts < last + interval * 9 / 10 && unit.pts >= last {
                self.skipped += 1;
                return Ok(None);
            }
        }
        let frame = &picture.frame;
        let (w, h) = (frame.width(), frame.height());
        if self.scaler.as_ref().map(Scaler::source_size) != Some((w, h)) {
            let (ow, oh) = self.rendition.output_size(w, h);
            self.scaler = Some(Scaler::new(w, h, ow, oh)?);
            if self.encoder.is_none() {
                self.encoder = Some(H264Encoder::new(H264Config {
                    width: ow,
                    height: oh,
                    fps: self.rendition.fps() as f32,
                    bitrate_bps: self.rendition.bitrate_bps(),
                    // IDRs follow the source's keyframes (requested below).
                    keyint_frames: 0,
                    threads: 1,
                    // Renditions run beside the source on the same cores.
                    preset: H264Preset::Fast,
                })?);
            }
        }
        let (Some(scaler), Some(encoder)) = (self.scaler.as_mut(), self.encoder.as_mut()) else {
            return Ok(None);
        };
        let small = scaler.scale(frame)?;
        if keyframe {
            encoder.request_keyframe();
        }
        let out = encoder.encode(&small)?;
        if out.is_some() {
            self.last_out = Some(unit.pts);
            self.frames_out += 1;
        }
        Ok(out.map(|mut u| {
            // The encoder stamps its own clock; the source's times keep A/V in step.
            u.pts = unit.pts;
            u.dts = None;
            u.capture = unit.capture;
            u
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pstream_core::VideoFrame;
    use std::time::Instant;

    fn source(w: u32, h: u32, n: u64) -> Vec<EncodedUnit> {
        let mut enc = H264Encoder::new(H264Config {
            width: w,
            height: h,
            fps: 30.0,
            bitrate_bps: 1_000_000,
            keyint_frames: 30,
            threads: 1,
            preset: H264Preset::Fast,
        })
        .expect("encoder");
        let start = Instant::now();
        (0..n)
            .filter_map(|i| {
                let pts = Duration::from_nanos(i * 1_000_000_000 / 30);
                let mut data = vec![128u8; VideoFrame::byte_len(w, h)];
                for (j, p) in data.iter_mut().enumerate().take((w * h) as usize) {
                    *p = ((j as u64 + i * 3) % 251) as u8;
                }
                let f = VideoFrame::new(w, h, data.into(), start + pts, pts).expect("frame");
                enc.encode(&f).expect("encode")
            })
            .collect()
    }

    #[test]
    fn transcodes_640x480_to_144_lines_keeping_times_and_keyframes() {
        let units = source(640, 480, 45);
        let mut t = Transcoder::new(Rendition::P144p30fps16x9).expect("transcoder");
        let mut out = Vec::new();
        for u in &units {
            if let Some(o) = t.push(u).expect("push") {
                assert_eq!(o.pts, u.pts);
                assert_eq!(o.keyframe, u.keyframe, "IDRs follow the source");
                out.push(o);
            }
        }
        assert_eq!(t.output_size(), Some((192, 144)));
        assert!(out.len() >= 40, "{} of {}", out.len(), units.len());
        let mut dec = H264Decoder::new().expect("decoder");
        let pic = dec.decode(&out[0].data).expect("decode").expect("picture");
        assert_eq!((pic.frame.width(), pic.frame.height()), (192, 144));
    }

    #[test]
    fn after_a_gap_it_waits_for_a_keyframe() {
        let units = source(320, 240, 40);
        let mut t = Transcoder::new(Rendition::P144p30fps16x9).expect("transcoder");
        assert!(t.push(&units[0]).expect("push").is_some());
        t.resync();
        for u in &units[5..30] {
            assert!(t.push(u).expect("push").is_none(), "P frame after a gap");
        }
        assert!(units[30].keyframe);
        assert!(t.push(&units[30]).expect("push").is_some());
    }
}
