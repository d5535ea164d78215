//! Structured fuzzing harnesses, built only under `--cfg fuzzing` (as
//! cargo-fuzz builds): each fuzz target hands its input to one function here,
//! which derives a sequence of operations from it with `arbitrary` and checks
//! invariants after every step.
//!
//! - [`flv_demux`]: FLV tag bodies, often well-formed with lying fields
//!   (sequence headers with many and long parameter sets, NAL lengths past
//!   the tag, timestamps that jump or stand still), into [`FlvDemuxer`].
//! - [`hls_segmenter`]: the same tags through the demuxer into an
//!   [`HlsSegmenter`] (as `pstream serve` chains them), with units of any
//!   size, ends, restarts and steps of the clock, out to playlists and
//!   segments.
//! - [`camera_h264`]: access units as a camera that encodes hands them over
//!   (`pstream send`/`push` pass them on without re-encoding): start codes
//!   of three and four bytes, parameter sets that are short, lie or come
//!   late, junk between units, a key frame flag that lies; through the
//!   Annex-B scan, the SPS parser and the FLV muxer, and back through the
//!   demuxer.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;
use pstream_core::{Codec, EncodedUnit};

use crate::flv_demux::MAX_PARAMETER_SET_BYTES;
use crate::hls::MAX_SEGMENT_BYTES;
use crate::ts::MAX_KEPT_PARAMETER_SET;
use crate::{FlvDemuxer, FlvMuxer, HlsConfig, HlsEvent, HlsSegmenter, StreamInfo, VideoInfo};
use pstream_codec::h264::nal;

/// A NAL unit of a chosen type and size (its bytes are filler).
fn nal(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let kind = [1u8, 5, 6, 7, 8, 9][u.choose_index(6)?];
    let len = usize::from(u.int_in_range(1..=600u16)?);
    let mut n = vec![0x60 | kind];
    n.extend(std::iter::repeat_n(u.arbitrary::<u8>()? | 1, len - 1));
    Ok(n)
}

/// One FLV tag body, as RTMP carries it.
#[derive(Debug, Clone)]
pub enum Tag {
    /// An AVC sequence header: `sps` and `pps` sets of the given sizes,
    /// a NAL length size field, and a count that may lie.
    AvcConfig {
        /// Sizes of the SPS NAL units.
        sps: Vec<u16>,
        /// Sizes of the PPS NAL units.
        pps: Vec<u16>,
        /// The lengthSizeMinusOne field (0-3).
        length_size: u8,
        /// Cut the record after this many bytes, if set.
        cut: Option<u16>,
    },
    /// AVC NAL units, length-prefixed with `length_size` bytes (which may
    /// differ from the configured one), with a NAL length that may lie.
    AvcNalus {
        /// Keyframe (frame type 1) or not.
        keyframe: bool,
        /// Composition time offset (signed 24 bits).
        cts: i32,
        /// The NAL units.
        nals: Vec<Vec<u8>>,
        /// Prefix length used (1, 2 or 4).
        length_size: u8,
        /// Added to the last NAL's length field.
        lie: u16,
    },
    /// An AAC sequence header (AudioSpecificConfig bytes).
    AacConfig(Vec<u8>),
    /// A raw AAC frame.
    AacFrame(Vec<u8>),
    /// Any bytes as a video tag body.
    RawVideo(Vec<u8>),
    /// Any bytes as an audio tag body.
    RawAudio(Vec<u8>),
}

impl<'a> Arbitrary<'a> for Tag {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=11)? {
            0 | 1 => {
                let sizes = |u: &mut Unstructured<'a>| -> Result<Vec<u16>> {
                    let n = u.int_in_range(0..=40)?;
                    (0..n)
                        .map(|_| {
                            if u.ratio(1, 4)? {
                                u.int_in_range(0..=9000)
                            } else {
                                u.int_in_range(0..=40)
                            }
                        })
                        .collect()
                };
                Tag::AvcConfig {
                    sps: sizes(u)?,
                    pps: sizes(u)?,
                    length_size: u.int_in_range(0..=3)?,
                    cut: if u.ratio(1, 8)? {
                        Some(u.arbitrary()?)
                    } else {
                        None
                    },
                }
            }
            2..=6 => {
                let n = u.int_in_range(0..=6)?;
                let nals = (0..n).map(|_| nal(u)).collect::<Result<Vec<_>>>()?;
                Tag::AvcNalus {
                    keyframe: u.arbitrary()?,
                    cts: u.int_in_range(-(1 << 23)..=(1 << 23) - 1)?,
                    nals,
                    length_size: [1, 2, 4][u.choose_index(3)?],
                    lie: if u.ratio(1, 8)? { u.arbitrary()? } else { 0 },
                }
            }
            7 => Tag::AacConfig(if u.arbitrary()? {
                vec![0x12, 0x10]
            } else {
                u.arbitrary()?
            }),
            8 | 9 => Tag::AacFrame(u.arbitrary()?),
            10 => Tag::RawVideo(u.arbitrary()?),
            _ => Tag::RawAudio(u.arbitrary()?),
        })
    }
}

impl Tag {
    /// The tag body and whether it is video.
    pub fn body(&self) -> (Vec<u8>, bool) {
        match self {
            Tag::AvcConfig {
                sps,
                pps,
                length_size,
                cut,
            } => {
                let mut b = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFC | (length_size & 3)];
                for (i, sizes) in [sps, pps].into_iter().enumerate() {
                    let count = sizes.len().min(255) as u8;
                    b.push(if i == 0 { 0xE0 | (count & 0x1F) } else { count });
                    for (j, &len) in sizes.iter().enumerate() {
                        b.extend(len.to_be_bytes());
                        let head = if i == 0 { 0x67 } else { 0x68 };
                        b.extend((0..len).map(|k| if k == 0 { head } else { j as u8 | 1 }));
                    }
                }
                if let Some(cut) = cut {
                    b.truncate(usize::from(*cut));
                }
                (b, true)
            }
            Tag::AvcNalus {
                keyframe,
                cts,
                nals,
                length_size,
                lie,
            } => {
                let c = cts.to_be_bytes();
                let mut b = vec![if *keyframe { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]];
                for (i, n) in nals.iter().enumerate() {
                    let mut len = n.len() as u32;
                    if i + 1 == nals.len() {
                        len += u32::from(*lie);
                    }
                    let l = len.to_be_bytes();
                    b.extend(&l[4 - usize::from(*length_size)..]);
                    b.extend(n);
                }
                (b, true)
            }
            Tag::AacConfig(asc) => ([&[0xAF, 0][..], asc].concat(), false),
            Tag::AacFrame(raw) => ([&[0xAF, 1][..], raw].concat(), false),
            Tag::RawVideo(b) => (b.clone(), true),
            Tag::RawAudio(b) => (b.clone(), false),
        }
    }
}

/// A tag and the step of its timestamp.
#[derive(Debug, Clone)]
pub struct TimedTag {
    /// The tag.
    pub tag: Tag,
    /// Added to the running timestamp (wrapping): often a frame, sometimes
    /// nothing, a step back or a jump of 2^31 ms.
    pub step: u32,
}

impl<'a> Arbitrary<'a> for TimedTag {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let step = match u.int_in_range(0..=7)? {
            0..=3 => 33,
            4 => 0,
            5 => (-100i32) as u32,
            6 => 1 << 31,
            _ => u.arbitrary()?,
        };
        Ok(TimedTag {
            tag: u.arbitrary()?,
            step,
        })
    }
}

/// The most bytes the demuxer may emit for a tag body of `len` bytes: each
/// NAL unit's length prefix (at least one byte) becomes a 4-byte start code,
/// and a keyframe may get the sequence header's parameter sets (at most
/// [`MAX_PARAMETER_SET_BYTES`], 31 SPS and 255 PPS with their start codes).
fn demux_bound(len: usize) -> usize {
    4 * len + MAX_PARAMETER_SET_BYTES + 4 * (31 + 255)
}

/// Feeds [`TimedTag`]s to an [`FlvDemuxer`]. After each: a unit's bytes are
/// bounded by the tag's ([`demux_bound`]), video units are H.264 and audio
/// AAC, H.264 units are Annex B, the dropped count never falls, and once a
/// sequence header was accepted the configuration stays.
pub fn flv_demux(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut d = FlvDemuxer::new();
    let now = Instant::now();
    let mut ts = 0u32;
    let mut dropped = 0;
    let mut configured = false;
    while !u.is_empty() {
        let Ok(t) = TimedTag::arbitrary(&mut u) else {
            return;
        };
        ts = ts.wrapping_add(t.step);
        let (body, video) = t.tag.body();
        let got = if video {
            d.push_video(ts, &body, now)
        } else {
            d.push_audio(ts, &body, now)
        };
        if let Ok(Some(unit)) = &got {
            assert!(
                unit.data.len() <= demux_bound(body.len()),
                "{} bytes out of a {}-byte tag",
                unit.data.len(),
                body.len()
            );
            if video {
                assert_eq!(unit.codec, Codec::H264);
                assert!(unit.data.starts_with(&[0, 0, 0, 1]), "not Annex B");
            } else {
                assert_eq!(unit.codec, Codec::Aac);
                assert!(!unit.data.is_empty() && unit.data.len() <= 8191 - 7);
            }
        }
        assert!(d.dropped() >= dropped);
        dropped = d.dropped();
        assert!(!configured || d.has_video_config(), "configuration lost");
        configured = d.has_video_config();
    }
}

/// What happens next to the segmenter.
#[derive(Debug)]
pub enum HlsStep {
    /// A tag from the publisher, through the demuxer.
    Tag(TimedTag),
    /// A unit straight in (any bytes, any time).
    Unit {
        /// Video or audio.
        video: bool,
        /// Keyframe flag.
        keyframe: bool,
        /// Presentation time in ms.
        pts_ms: u32,
        /// Payload.
        data: Vec<u8>,
    },
    /// Wall-clock time passes (ms): the capture instant of later units.
    Tick(u16),
    /// The publisher stops.
    End,
    /// The publisher comes back, with or without audio.
    Restart(bool),
    /// A mirror drains the events.
    Poll,
}

impl<'a> Arbitrary<'a> for HlsStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=15)? {
            0..=8 => HlsStep::Tag(u.arbitrary()?),
            9 => HlsStep::Unit {
                video: u.arbitrary()?,
                keyframe: u.arbitrary()?,
                pts_ms: u.arbitrary()?,
                data: u.arbitrary()?,
            },
            10 | 11 => HlsStep::Tick(u.arbitrary()?),
            12 => HlsStep::End,
            13 => HlsStep::Restart(u.arbitrary()?),
            _ => HlsStep::Poll,
        })
    }
}

/// Feeds [`HlsStep`]s to an [`FlvDemuxer`] and an [`HlsSegmenter`] (short
/// target duration and window, so segments turn over). After each step:
/// the segments in memory are at most `window + retain_extra`, numbered
/// consecutively, whole transport stream packets starting with a sync
/// byte, none over [`MAX_SEGMENT_BYTES`] plus one unit's worth; the
/// playlist lists at most `window` of them, each servable by name, with
/// `EXT-X-ENDLIST` exactly when ended; the bytes of all segments ever made
/// are bounded by the bytes pushed in (plus a constant per unit and
/// segment); no segment is announced after [`HlsSegmenter::end`] until the
/// publisher is back; and the event queue stays bounded.
pub fn hls_segmenter(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = HlsConfig {
        target_duration: Duration::from_millis(500),
        window: 3,
        retain_extra: 1,
        max_segment_duration: Duration::from_secs(2),
        max_segment_wall_time: Duration::from_millis(1500),
        // Small, so that trimming by bytes happens too.
        max_kept_bytes: 256 << 10,
        session: "fz".into(),
        ..HlsConfig::default()
    };
    let budget = config.max_kept_bytes;
    let window = config.window;
    let kept = config.window + config.retain_extra;
    let mut demux = FlvDemuxer::new();
    let Ok(mut seg) = HlsSegmenter::new(config, demux.streams()) else {
        return;
    };
    let mut now = Instant::now();
    let mut ts = 0u32;
    let (mut bytes_in, mut units, mut largest) = (0usize, 0usize, 0usize);
    let (mut bytes_out, mut segments) = (0usize, 0usize);
    while !u.is_empty() {
        let Ok(step) = HlsStep::arbitrary(&mut u) else {
            return;
        };
        let was_ended = seg.is_ended();
        let unit = match step {
            HlsStep::Tag(t) => {
                ts = ts.wrapping_add(t.step);
                let (body, video) = t.tag.body();
                let streams = demux.streams();
                let got = if video {
                    demux.push_video(ts, &body, now)
                } else {
                    demux.push_audio(ts, &body, now)
                };
                if demux.streams() != streams {
                    seg.restart(demux.streams(), now);
                }
                got.ok().flatten()
            }
            HlsStep::Unit {
                video,
                keyframe,
                pts_ms,
                data,
            } => Some(EncodedUnit {
                codec: if video { Codec::H264 } else { Codec::Aac },
                keyframe,
                pts: Duration::from_millis(u64::from(pts_ms)),
                dts: None,
                capture: now,
                data: Bytes::from(data),
            }),
            HlsStep::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms));
                None
            }
            HlsStep::End => {
                seg.end(now);
                None
            }
            HlsStep::Restart(audio) => {
                let mut streams = demux.streams();
                if !audio {
                    streams.audio = None;
                }
                seg.restart(streams, now);
                None
            }
            HlsStep::Poll => {
                while seg.poll_event().is_some() {}
                None
            }
        };
        if let Some(unit) = unit {
            bytes_in += unit.data.len();
            units += 1;
            largest = largest.max(unit.data.len());
            let _ = seg.push(&unit, now);
        }
        let mut ready_after_end = false;
        // Events are looked at without taking them (a mirror may lag);
        // those already seen are counted by sequence below.
        let listed: Vec<&crate::hls::Segment> = seg.segments().collect();
        assert!(listed.len() <= kept, "{} segments kept", listed.len());
        let held: usize = listed.iter().map(|s| s.data.len()).sum();
        assert!(
            held <= budget || listed.len() <= crate::hls::MIN_KEPT_SEGMENTS,
            "{held} bytes in {} segments past the budget",
            listed.len()
        );
        for w in listed.windows(2) {
            assert_eq!(w[0].sequence + 1, w[1].sequence, "sequence gap");
        }
        for s in &listed {
            assert!(s.data.len() % 188 == 0 && s.data.first() == Some(&0x47));
            // The per-unit TS overhead: a PES header, AUD and adaptation
            // fields, and the parameter sets the muxer repeats.
            assert!(
                s.data.len() <= MAX_SEGMENT_BYTES + 4 * largest + 3 * MAX_KEPT_PARAMETER_SET,
                "segment of {} bytes",
                s.data.len()
            );
        }
        let newest = listed.last().map(|s| s.sequence);
        if let Some(n) = newest {
            if n as usize + 1 > segments {
                for s in listed.iter().filter(|s| s.sequence as usize >= segments) {
                    bytes_out += s.data.len();
                }
                ready_after_end = was_ended && seg.is_ended();
                segments = n as usize + 1;
            }
        }
        assert!(!ready_after_end, "a segment was cut after the end");
        // Per unit: PES header, AUD, padding of its last packet, and the
        // SPS and PPS the muxer repeats before an IDR (each at most
        // MAX_KEPT_PARAMETER_SET); per segment: PAT and PMT.
        let per_unit = 1024 + 2 * (MAX_KEPT_PARAMETER_SET + 4) * 188 / 184;
        assert!(
            bytes_out <= 2 * bytes_in + per_unit * (units + 1) + 1024 * segments,
            "{bytes_out} bytes of segments from {bytes_in} bytes of {units} units"
        );
        let playlist = seg.playlist();
        let text = String::from_utf8_lossy(&playlist);
        let names: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(names.len() <= window, "{} segments listed", names.len());
        for name in &names {
            assert!(seg.segment(name).is_some(), "{name} listed but not served");
        }
        assert_eq!(text.contains("#EXT-X-ENDLIST"), seg.is_ended());
        let mut pending = 0;
        while let Some(ev) = seg.poll_event() {
            pending += 1;
            if let HlsEvent::SegmentReady { data, .. } = ev {
                assert!(data.len() % 188 == 0);
            }
        }
        assert!(pending <= crate::hls::MAX_PENDING_EVENTS);
    }
}

/// One piece of a camera's access unit.
#[derive(Debug, Clone)]
pub enum CameraPiece {
    /// A start code (four bytes or three) and a NAL unit of a type with
    /// filler bytes, some of them zero (so emulation prevention and
    /// trailing zeros happen).
    Nal {
        /// Four-byte start code, else three.
        long: bool,
        /// NAL header byte (type in the low five bits).
        header: u8,
        /// Body bytes.
        body: Vec<u8>,
    },
    /// An SPS that parses (baseline or high, any size in macroblocks,
    /// cropping that may remove everything).
    Sps {
        /// High profile (with chroma format and scaling lists), else baseline.
        high: bool,
        /// Width in macroblocks minus one.
        w: u16,
        /// Height in map units minus one.
        h: u16,
        /// Bottom cropping in crop units.
        crop: u16,
    },
    /// Bytes as they come.
    Raw(Vec<u8>),
}

impl<'a> Arbitrary<'a> for CameraPiece {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=9)? {
            0..=5 => CameraPiece::Nal {
                long: u.arbitrary()?,
                header: [0x65u8, 0x41, 0x67, 0x68, 0x06, 0x09, 0x00][u.choose_index(7)?]
                    | (u.arbitrary::<u8>()? & 0x80),
                body: u.arbitrary()?,
            },
            6 | 7 => CameraPiece::Sps {
                high: u.arbitrary()?,
                w: u.int_in_range(0..=300)?,
                h: u.int_in_range(0..=300)?,
                crop: u.arbitrary()?,
            },
            _ => CameraPiece::Raw(u.arbitrary()?),
        })
    }
}

/// Appends unsigned Exp-Golomb `v` to a bit vector.
fn ue(bits: &mut Vec<bool>, v: u32) {
    let x = u64::from(v) + 1;
    let n = 64 - x.leading_zeros();
    bits.extend(std::iter::repeat_n(false, n as usize - 1));
    bits.extend((0..n).rev().map(|i| x >> i & 1 == 1));
}

/// An SPS NAL unit (header byte included) with emulation prevention.
fn sps_nal(high: bool, w: u16, h: u16, crop: u16) -> Vec<u8> {
    let mut bits = Vec::new();
    let profile: u8 = if high { 100 } else { 66 };
    for b in [profile, 0xc0, 31] {
        bits.extend((0..8).rev().map(|i| b >> i & 1 == 1));
    }
    ue(&mut bits, 0); // seq_parameter_set_id
    if high {
        ue(&mut bits, 1); // chroma_format_idc
        ue(&mut bits, 0); // bit_depth_luma_minus8
        ue(&mut bits, 0); // bit_depth_chroma_minus8
        bits.push(false); // qpprime_y_zero_transform_bypass
        bits.push(false); // no scaling matrix
    }
    ue(&mut bits, 0); // log2_max_frame_num_minus4
    ue(&mut bits, 2); // pic_order_cnt_type
    ue(&mut bits, 1); // max_num_ref_frames
    bits.push(false); // gaps
    ue(&mut bits, u32::from(w));
    ue(&mut bits, u32::from(h));
    bits.push(true); // frame_mbs_only
    bits.push(true); // direct_8x8_inference
    bits.push(crop > 0);
    if crop > 0 {
        for c in [0, 0, 0, u32::from(crop)] {
            ue(&mut bits, c);
        }
    }
    bits.push(false); // no VUI
    bits.push(true); // rbsp stop bit
    let rbsp: Vec<u8> = bits
        .chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |a, (i, &b)| a | (u8::from(b) << (7 - i)))
        })
        .collect();
    let mut out = vec![0x67];
    let mut zeros = 0;
    for b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// A camera's access unit: its pieces and the key frame flag the driver set.
#[derive(Debug, Clone)]
pub struct CameraUnit {
    /// What the buffer holds, in order.
    pub pieces: Vec<CameraPiece>,
    /// V4L2's key frame flag, which may lie.
    pub keyframe: bool,
    /// Milliseconds since the previous unit.
    pub step_ms: u8,
}

impl<'a> Arbitrary<'a> for CameraUnit {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(0..=8)?;
        let pieces = (0..n)
            .map(|_| CameraPiece::arbitrary(u))
            .collect::<Result<_>>()?;
        Ok(CameraUnit {
            pieces,
            keyframe: u.arbitrary()?,
            step_ms: u.arbitrary()?,
        })
    }
}

impl CameraUnit {
    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for p in &self.pieces {
            match p {
                CameraPiece::Nal { long, header, body } => {
                    b.extend_from_slice(if *long {
                        &[0, 0, 0, 1][..]
                    } else {
                        &[0, 0, 1][..]
                    });
                    b.push(*header);
                    b.extend_from_slice(body);
                }
                CameraPiece::Sps { high, w, h, crop } => {
                    b.extend_from_slice(&[0, 0, 0, 1]);
                    b.extend(sps_nal(*high, *w, *h, *crop));
                }
                CameraPiece::Raw(r) => b.extend_from_slice(r),
            }
        }
        b
    }
}

/// NAL units FLV carries in a picture's tag: all but parameter sets and
/// access unit delimiters.
fn picture_nals(annexb: &[u8]) -> Vec<&[u8]> {
    nal::nal_units(annexb)
        .filter(|n| {
            !matches!(
                nal::nal_type(n),
                Some(nal::NAL_SPS | nal::NAL_PPS | nal::NAL_AUD) | None
            )
        })
        .collect()
}

/// Feeds [`CameraUnit`]s as camera passthrough does. For each unit: every
/// NAL unit the Annex-B scan finds is a non-empty slice of the buffer that
/// holds no start code and does not end in a zero byte, and their bytes
/// add up to at most the buffer's; `contains_idr` agrees with the scan;
/// `parameter_sets` gives an SPS and a PPS found by the scan; an SPS that
/// parses has a picture at least one pixel wide and high. Then the FLV
/// muxer and the demuxer in a row (as `push` and `serve` chain them):
/// every picture the demuxer gives back carries the same NAL units as the
/// camera's (parameter sets and delimiters aside), with the same key frame
/// flag, and its time never goes back.
pub fn camera_h264(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut mux = FlvMuxer::new(StreamInfo {
        video: Some(VideoInfo {
            width: 1280,
            height: 720,
            fps: 30.0,
            bitrate_kbps: 2000.0,
        }),
        audio: None,
        encoder: "fuzz".into(),
    });
    let mut demux = FlvDemuxer::new();
    let start = Instant::now();
    let mut now = start;
    let mut last_pts = Duration::ZERO;
    let mut tags = Vec::new();
    while !u.is_empty() {
        let Ok(cam) = CameraUnit::arbitrary(&mut u) else {
            return;
        };
        let buf = cam.bytes();
        let range = buf.as_ptr_range();
        let mut total = 0;
        for n in nal::nal_units(&buf) {
            assert!(!n.is_empty(), "an empty NAL unit");
            assert!(range.contains(&n.as_ptr()), "not a slice of the buffer");
            assert_ne!(n.last(), Some(&0), "a trailing zero kept");
            assert!(!n.windows(3).any(|w| w == [0, 0, 1]), "a start code inside");
            total += n.len();
        }
        assert!(total <= buf.len());
        assert_eq!(
            nal::contains_idr(&buf),
            nal::nal_units(&buf).any(|n| nal::nal_type(n) == Some(nal::NAL_IDR))
        );
        if let Some((sps, pps)) = nal::parameter_sets(&buf) {
            assert_eq!(nal::nal_type(sps), Some(nal::NAL_SPS));
            assert_eq!(nal::nal_type(pps), Some(nal::NAL_PPS));
            if let Ok(info) = nal::parse_sps(sps) {
                assert!(info.width >= 1 && info.height >= 1, "{info:?}");
            }
        }

        now += Duration::from_millis(u64::from(cam.step_ms));
        let unit = EncodedUnit {
            codec: Codec::H264,
            keyframe: cam.keyframe,
            pts: now - start,
            dts: None,
            capture: now,
            data: Bytes::from(buf),
        };
        tags.clear();
        if mux.push(&unit, &mut tags).is_err() {
            continue;
        }
        for t in &tags {
            if t.kind != crate::TagKind::Video {
                continue;
            }
            let Ok(Some(back)) = demux.push_video(t.timestamp_ms, &t.data, now) else {
                continue;
            };
            assert_eq!(back.keyframe, unit.keyframe);
            assert_eq!(picture_nals(&back.data), picture_nals(&unit.data));
            assert!(back.pts >= last_pts, "{:?} after {last_pts:?}", back.pts);
            last_pts = back.pts;
        }
    }
}
