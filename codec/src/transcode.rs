//! The renditions' video path: decode H.264 once, then per rendition scale
//! and re-encode smaller.
//!
//! [`SourceDecoder`] takes a stream's access units in decode order and
//! returns its pictures ([`SourcePicture`]: the frame and whether it came
//! from a keyframe). Its frames are one shared buffer each, so every
//! rendition of the stream can be handed the same picture without a copy.
//! After a gap in the input (the caller's queue dropped units) call
//! [`SourceDecoder::resync`]: units are then skipped until the next
//! keyframe, so the decoder never works from a missing reference.
//!
//! [`RenditionEncoder`] takes those pictures for one rendition: its scaler
//! and encoder are built from the first picture (the scaler rebuilt if the
//! source size changes); pictures above the rendition's frame rate are
//! skipped; a source keyframe asks the encoder for an IDR so that rendition
//! segments start where the source's do. Pictures may be missing between
//! two it is given (a rendition that fell behind): its encoder's own
//! references are intact, so it just goes on.
//!
//! [`Transcoder`] is the two for one rendition.

use std::time::Duration;

use pstream_core::{Codec, EncodedUnit, VideoFrame};

use crate::scale::{Rendition, Scaler};
use crate::{CodecError, H264Config, H264Decoder, H264Encoder, H264Preset};

/// One decoded source picture, as every rendition of the stream gets it.
#[derive(Debug, Clone)]
pub struct SourcePicture {
    /// The picture (its planes one shared buffer: clones do not copy them),
    /// with the source unit's pts and capture time.
    pub frame: VideoFrame,
    /// Whether it came from a keyframe of the source.
    pub keyframe: bool,
}

/// The source's H.264 decoder, shared by the renditions (see the module docs).
#[derive(Debug)]
pub struct SourceDecoder {
    decoder: H264Decoder,
    waiting_for_keyframe: bool,
    frames_in: u64,
    skipped: u64,
}

impl SourceDecoder {
    /// A decoder waiting for the source's first keyframe.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            decoder: H264Decoder::new()?,
            waiting_for_keyframe: true,
            frames_in: 0,
            skipped: 0,
        })
    }

    /// Source units taken so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Units skipped (waiting for a keyframe, undecodable).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The input had a gap: skip to the next keyframe.
    pub fn resync(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Decodes one source access unit; `None` when it yields no picture.
    ///
    /// A unit the decoder refuses is skipped and counted, and the stream
    /// resynchronises at the next keyframe; other codecs give nothing.
    pub fn push(&mut self, unit: &EncodedUnit) -> Option<SourcePicture> {
        if unit.codec != Codec::H264 {
            return None;
        }
        self.frames_in += 1;
        let keyframe = unit.keyframe || crate::h264::nal::contains_idr(&unit.data);
        if self.waiting_for_keyframe {
            if !keyframe {
                self.skipped += 1;
                return None;
            }
            self.waiting_for_keyframe = false;
        }
        match self.decoder.decode_unit(unit) {
            Ok(Some(p)) => Some(SourcePicture {
                frame: p.frame,
                keyframe,
            }),
            Ok(None) => None,
            Err(_) => {
                self.skipped += 1;
                self.waiting_for_keyframe = true;
                None
            }
        }
    }
}

/// Scale and encode for one rendition (see the module docs).
#[derive(Debug)]
pub struct RenditionEncoder {
    rendition: Rendition,
    scaler: Option<Scaler>,
    encoder: Option<H264Encoder>,
    last_out: Option<Duration>,
    frames_in: u64,
    frames_out: u64,
    skipped: u64,
}

impl RenditionEncoder {
    /// An encoder to `rendition`; its scaler and encoder come with the first picture.
    pub fn new(rendition: Rendition) -> Self {
        Self {
            rendition,
            scaler: None,
            encoder: None,
            last_out: None,
            frames_in: 0,
            frames_out: 0,
            skipped: 0,
        }
    }

    /// The rendition produced.
    pub fn rendition(&self) -> Rendition {
        self.rendition
    }

    /// The output picture size, once the first picture has come.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.scaler.as_ref().map(Scaler::output_size)
    }

    /// Pictures taken so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Rendition units produced so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Pictures skipped: above the frame rate, or skipped by rate control.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Scales and encodes one source picture; `Ok(None)` when it yields no
    /// output. Errors are failures of the scaler or encoder.
    pub fn push(&mut self, picture: &SourcePicture) -> Result<Option<EncodedUnit>, CodecError> {
        self.frames_in += 1;
        let frame = &picture.frame;
        // Keep at most the rendition's frame rate (with 10% slack for jittery stamps).
        let interval = Duration::from_secs(1) / self.rendition.fps();
        if let Some(last) = self.last_out {
            if !picture.keyframe && frame.pts < last + interval * 9 / 10 && frame.pts >= last {
                self.skipped += 1;
                return Ok(None);
            }
        }
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
        if picture.keyframe {
            encoder.request_keyframe();
        }
        let out = encoder.encode(&small)?;
        match &out {
            Some(_) => {
                self.last_out = Some(frame.pts);
                self.frames_out += 1;
            }
            None => self.skipped += 1,
        }
        Ok(out.map(|mut u| {
            // The encoder stamps its own clock; the source's times keep A/V in step.
            u.pts = frame.pts;
            u.dts = None;
            u.capture = frame.capture;
            u
        }))
    }
}

/// Decode, scale and encode for one rendition: a [`SourceDecoder`] of its
/// own feeding a [`RenditionEncoder`].
#[derive(Debug)]
pub struct Transcoder {
    decoder: SourceDecoder,
    encoder: RenditionEncoder,
}

impl Transcoder {
    /// A transcoder to `rendition`.
    pub fn new(rendition: Rendition) -> Result<Self, CodecError> {
        Ok(Self {
            decoder: SourceDecoder::new()?,
            encoder: RenditionEncoder::new(rendition),
        })
    }

    /// The rendition produced.
    pub fn rendition(&self) -> Rendition {
        self.encoder.rendition()
    }

    /// The output picture size, once the first picture has been decoded.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.encoder.output_size()
    }

    /// Source units taken so far.
    pub fn frames_in(&self) -> u64 {
        self.decoder.frames_in()
    }

    /// Rendition units produced so far.
    pub fn frames_out(&self) -> u64 {
        self.encoder.frames_out()
    }

    /// Units skipped (waiting for a keyframe, above the frame rate, undecodable).
    pub fn skipped(&self) -> u64 {
        self.decoder.skipped() + self.encoder.skipped()
    }

    /// The input had a gap: skip to the next keyframe.
    pub fn resync(&mut self) {
        self.decoder.resync();
    }

    /// Transcodes one source access unit; `Ok(None)` when it yields no output.
    ///
    /// A unit the decoder refuses is skipped and counted, and the stream
    /// resynchronises at the next keyframe; errors are only returned for
    /// failures of the scaler or encoder.
    pub fn push(&mut self, unit: &EncodedUnit) -> Result<Option<EncodedUnit>, CodecError> {
        match self.decoder.push(unit) {
            Some(picture) => self.encoder.push(&picture),
            None => Ok(None),
        }
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
    fn one_decode_feeds_every_rendition_without_copying_the_picture() {
        let units = source(640, 480, 35);
        let mut dec = SourceDecoder::new().expect("decoder");
        let mut small = RenditionEncoder::new(Rendition::P144p30fps16x9);
        let mut large = RenditionEncoder::new(Rendition::P360p30fps16x9);
        let (mut n_small, mut n_large, mut keys) = (0, 0, 0);
        for u in &units {
            let Some(pic) = dec.push(u) else { continue };
            assert_eq!(pic.keyframe, u.keyframe);
            assert_eq!(pic.frame.pts, u.pts);
            // What a rendition stage gets is the decoder's buffer itself.
            let shared = pic.clone();
            assert_eq!(shared.frame.data().as_ptr(), pic.frame.data().as_ptr());
            for (enc, n) in [(&mut small, &mut n_small), (&mut large, &mut n_large)] {
                if let Some(o) = enc.push(&shared).expect("encode") {
                    assert_eq!(o.pts, u.pts);
                    assert_eq!(o.keyframe, u.keyframe, "IDRs follow the source");
                    keys += usize::from(o.keyframe);
                    *n += 1;
                }
            }
        }
        assert_eq!(dec.frames_in(), units.len() as u64);
        assert_eq!(
            (small.output_size(), large.output_size()),
            (Some((192, 144)), Some((480, 360)))
        );
        assert!(
            n_small >= 30 && n_large >= 30,
            "{n_small} and {n_large} of {}",
            units.len()
        );
        assert_eq!(keys, 4, "two source keyframes, in each rendition");
        // A rendition that missed pictures (its queue dropped them) goes on
        // from the next one it gets: no keyframe needed.
        let mut dec = SourceDecoder::new().expect("decoder");
        let pics: Vec<SourcePicture> = units.iter().filter_map(|u| dec.push(u)).collect();
        let mut late = RenditionEncoder::new(Rendition::P144p30fps16x9);
        assert!(late.push(&pics[0]).expect("encode").is_some());
        let out = late.push(&pics[10]).expect("encode").expect("a P picture");
        assert!(!out.keyframe);
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
