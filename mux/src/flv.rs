//! FLV tags from encoded units: what RTMP carries and what `.flv` files hold.
//!
//! The muxer is sans-IO: [`FlvMuxer::push`] turns one [`EncodedUnit`] into
//! zero or more [`FlvTag`]s; the caller writes them to a file
//! ([`FlvTag::write_to`] after [`file_header`]) or sends each tag's body as
//! an RTMP message. Before the first media tag (and again after
//! [`FlvMuxer::restart`]) it emits `onMetaData`, the AVC sequence header
//! built from the keyframe's own SPS/PPS and the AAC sequence header, and it
//! starts at a keyframe.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_codec::h264::nal::{self, NAL_AUD, NAL_PPS, NAL_SPS};
use pstream_core::{Codec, EncodedUnit};

use crate::amf0::{self, Value};
use crate::MuxError;

/// Largest tag body FLV's 24-bit size field can describe.
const MAX_TAG_BODY: usize = 0x00ff_ffff;
/// FLV video codec id of AVC (H.264).
const CODEC_AVC: u8 = 7;
/// FLV sound format of AAC.
const SOUND_AAC: u8 = 10;
/// FLV audio tag's first byte for AAC: format 10, "44 kHz", 16-bit, stereo,
/// as the specification requires for AAC whatever the real rate (the
/// AudioSpecificConfig tells the truth).
const AAC_FLAGS: u8 = (SOUND_AAC << 4) | (3 << 2) | (1 << 1) | 1;

/// The kind of an FLV tag (its TagType byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Audio data (8).
    Audio,
    /// Video data (9).
    Video,
    /// Script data, e.g. `onMetaData` (18).
    Script,
}

impl TagKind {
    /// The TagType byte (and RTMP message type id) of this kind.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }
}

/// One FLV tag: kind, timestamp in milliseconds and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// What the tag carries.
    pub kind: TagKind,
    /// Milliseconds since the start of the stream.
    pub timestamp_ms: u32,
    /// Whether this is a sequence header or metadata (never to be dropped).
    pub is_header: bool,
    /// Whether this is a video keyframe.
    pub keyframe: bool,
    /// The tag body (the RTMP message payload).
    pub data: Bytes,
}

impl FlvTag {
    /// Appends the tag as stored in a file: 11-byte header, body, PreviousTagSize.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let len = self.data.len().min(MAX_TAG_BODY) as u32;
        let ts = self.timestamp_ms;
        out.push(self.kind.type_id());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data[..len as usize]);
        out.extend_from_slice(&(len + 11).to_be_bytes());
    }
}

/// The 9-byte FLV file header followed by PreviousTagSize0.
pub fn file_header(has_video: bool, has_audio: bool) -> [u8; 13] {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// What `onMetaData` says about the video track.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: f64,
}

/// What the AAC track is: `onMetaData` fields and the AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: f64,
    /// The AudioSpecificConfig (the AAC sequence header's payload).
    pub config: Bytes,
}

/// The tracks of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The H.264 track, if any.
    pub video: Option<VideoInfo>,
    /// The AAC track, if any.
    pub audio: Option<AudioInfo>,
    /// Written as `encoder` in `onMetaData`.
    pub encoder: String,
}

/// Turns H.264 and AAC units into FLV tags (see the module docs).
#[derive(Debug, Clone)]
pub struct FlvMuxer {
    info: StreamInfo,
    /// Capture time that maps to timestamp 0; set by the first tag after a (re)start.
    base: Option<Instant>,
    last_ms: u32,
    /// SPS and PPS of the last AVC sequence header sent.
    avc_header: Option<(Bytes, Bytes)>,
    scratch: Vec<u8>,
}

impl FlvMuxer {
    /// A muxer for the given tracks; the first tags wait for a keyframe.
    pub fn new(info: StreamInfo) -> Self {
        Self {
            info,
            base: None,
            last_ms: 0,
            avc_header: None,
            scratch: Vec::new(),
        }
    }

    /// The tracks this muxer writes.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Starts over, as for a new connection: headers again, then a keyframe, timestamps from 0.
    pub fn restart(&mut self) {
        self.base = None;
        self.last_ms = 0;
        self.avc_header = None;
    }

    /// True until the stream has started (for video: until a keyframe arrived).
    pub fn waiting(&self) -> bool {
        self.base.is_none()
    }

    /// The body of the `onMetaData` script tag: the name and an ECMA array.
    pub fn metadata_body(&self) -> Bytes {
        let mut entries: Vec<(&str, Value)> = vec![("duration", Value::Number(0.0))];
        if let Some(v) = &self.info.video {
            entries.extend([
                ("width", Value::Number(f64::from(v.width))),
                ("height", Value::Number(f64::from(v.height))),
                ("framerate", Value::Number(v.fps)),
                ("videodatarate", Value::Number(v.bitrate_kbps)),
                ("videocodecid", Value::Number(f64::from(CODEC_AVC))),
            ]);
        }
        if let Some(a) = &self.info.audio {
            entries.extend([
                ("audiodatarate", Value::Number(a.bitrate_kbps)),
                ("audiosamplerate", Value::Number(f64::from(a.sample_rate))),
                ("audiosamplesize", Value::Number(16.0)),
                ("stereo", Value::Bool(a.channels >= 2)),
                ("audiochannels", Value::Number(f64::from(a.channels))),
                ("audiocodecid", Value::Number(f64::from(SOUND_AAC))),
            ]);
        }
        entries.push(("encoder", Value::Str(self.info.encoder.clone())));
        let mut out = Vec::with_capacity(512);
        amf0::write_string(&mut out, "onMetaData");
        amf0::write_ecma_array(&mut out, &entries);
        Bytes::from(out)
    }

    /// Muxes one unit, appending the resulting tags to `out`.
    ///
    /// Returns `Ok(false)` when the unit was dropped: it came before the
    /// stream could start (no keyframe yet, or captured before the start).
    pub fn push(&mut self, unit: &EncodedUnit, out: &mut Vec<FlvTag>) -> Result<bool, MuxError> {
        match unit.codec {
            Codec::H264 if self.info.video.is_some() => {}
            Codec::Aac if self.info.audio.is_some() => {}
            other => return Err(MuxError::UnsupportedCodec(other)),
        }
        let base = match self.base {
            Some(b) => b,
            None => {
                // Video streams start at a keyframe; audio-only at once.
                if self.info.video.is_some() && !(unit.codec == Codec::H264 && unit.keyframe) {
                    return Ok(false);
                }
                self.base = Some(unit.capture);
                self.last_ms = 0;
                out.push(FlvTag {
                    kind: TagKind::Script,
                    timestamp_ms: 0,
                    is_header: true,
                    keyframe: false,
                    data: self.metadata_body(),
                });
                if let Some(a) = &self.info.audio {
                    let mut body = vec![AAC_FLAGS, 0];
                    body.extend_from_slice(&a.config);
                    out.push(FlvTag {
                        kind: TagKind::Audio,
                        timestamp_ms: 0,
                        is_header: true,
                        keyframe: false,
                        data: Bytes::from(body),
                    });
                }
                unit.capture
            }
        };
        let Some(since) = unit.capture.checked_duration_since(base) else {
            return Ok(false);
        };
        let ms = millis(since).max(self.last_ms);
        self.last_ms = ms;
        match unit.codec {
            Codec::H264 => self.push_video(unit, ms, out)?,
            _ => self.push_audio(unit, ms, out)?,
        }
        Ok(true)
    }

    fn push_video(
        &mut self,
        unit: &EncodedUnit,
        ms: u32,
        out: &mut Vec<FlvTag>,
    ) -> Result<(), MuxError> {
        if unit.keyframe {
            let (sps, pps) = nal::parameter_sets(&unit.data).ok_or(MuxError::NoParameterSets {
                pts_ms: unit.pts.as_millis(),
            })?;
            let same = self
                .avc_header
                .as_ref()
                .is_some_and(|(s, p)| s[..] == *sps && p[..] == *pps);
            if !same {
                let record = avc_decoder_configuration_record(sps, pps)?;
                let mut body = Vec::with_capacity(record.len() + 5);
                body.extend_from_slice(&[(1 << 4) | CODEC_AVC, 0, 0, 0, 0]);
                body.extend_from_slice(&record);
                out.push(FlvTag {
                    kind: TagKind::Video,
                    timestamp_ms: ms,
                    is_header: true,
                    keyframe: true,
                    data: Bytes::from(body),
                });
                self.avc_header = Some((Bytes::copy_from_slice(sps), Bytes::copy_from_slice(pps)));
            }
        }
        self.scratch.clear();
        let frame_type: u8 = if unit.keyframe { 1 } else { 2 };
        // Composition time 0: pstream's encoders emit no B-frames.
        self.scratch
            .extend_from_slice(&[(frame_type << 4) | CODEC_AVC, 1, 0, 0, 0]);
        for n in nal::nal_units(&unit.data) {
            // Parameter sets travel in the sequence header; AUDs mean nothing in FLV.
            if matches!(nal::nal_type(n), Some(NAL_SPS | NAL_PPS | NAL_AUD) | None) {
                continue;
            }
            self.scratch
                .extend_from_slice(&(n.len() as u32).to_be_bytes());
            self.scratch.extend_from_slice(n);
        }
        if self.scratch.len() > MAX_TAG_BODY {
            return Err(MuxError::TooLarge {
                what: "H.264 access unit",
                len: self.scratch.len(),
            });
        }
        out.push(FlvTag {
            kind: TagKind::Video,
            timestamp_ms: ms,
            is_header: false,
            keyframe: unit.keyframe,
            data: Bytes::copy_from_slice(&self.scratch),
        });
        Ok(())
    }

    fn push_audio(
        &mut self,
        unit: &EncodedUnit,
        ms: u32,
        out: &mut Vec<FlvTag>,
    ) -> Result<(), MuxError> {
        if unit.data.len() + 2 > MAX_TAG_BODY {
            return Err(MuxError::TooLarge {
                what: "AAC frame",
                len: unit.data.len(),
            });
        }
        let mut body = Vec::with_capacity(unit.data.len() + 2);
        body.extend_from_slice(&[AAC_FLAGS, 1]);
        body.extend_from_slice(&unit.data);
        out.push(FlvTag {
            kind: TagKind::Audio,
            timestamp_ms: ms,
            is_header: false,
            keyframe: false,
            data: Bytes::from(body),
        });
        Ok(())
    }
}

/// Milliseconds rounded to nearest, saturating at the 32-bit FLV limit.
///
/// Rounding (not truncating) keeps 60 frames of 33.333 ms at 2000 ms, so a
/// 2 s GOP does not read as 1999 ms to servers that cut segments at 2 s.
fn millis(d: Duration) -> u32 {
    u32::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u32::MAX)
}

/// The AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1) for one SPS and one PPS.
pub fn avc_decoder_configuration_record(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, MuxError> {
    if sps.len() < 4 {
        return Err(MuxError::ShortSps { len: sps.len() });
    }
    let (Ok(sps_len), Ok(pps_len)) = (u16::try_from(sps.len()), u16::try_from(pps.len())) else {
        return Err(MuxError::TooLarge {
            what: "parameter set",
            len: sps.len().max(pps.len()),
        });
    };
    let mut r = Vec::with_capacity(11 + sps.len() + pps.len() + 4);
    // version, profile, compatibility, level, 4-byte NAL lengths, one SPS.
    r.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1]);
    r.extend_from_slice(&sps_len.to_be_bytes());
    r.extend_from_slice(sps);
    r.push(1);
    r.extend_from_slice(&pps_len.to_be_bytes());
    r.extend_from_slice(pps);
    // High profiles carry chroma format and bit depths too.
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        let chroma = nal::parse_sps(sps)
            .map(|i| i.chroma_format_idc)
            .unwrap_or(1);
        r.extend_from_slice(&[0xfc | (chroma as u8 & 3), 0xf8, 0xf8, 0]);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn info() -> StreamInfo {
        StreamInfo {
            video: Some(VideoInfo {
                width: 320,
                height: 240,
                fps: 30.0,
                bitrate_kbps: 500.0,
            }),
            audio: Some(AudioInfo {
                sample_rate: 48_000,
                channels: 2,
                bitrate_kbps: 128.0,
                config: Bytes::from_static(&[0x11, 0x90]),
            }),
            encoder: "pstream test".into(),
        }
    }

    fn annexb(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn video(at: Instant, ms: u64, key: bool) -> EncodedUnit {
        let data = if key {
            annexb(&[SPS, PPS, &[0x65, 0x88, 0x84]])
        } else {
            annexb(&[&[0x41, 0x9a, 0x02]])
        };
        EncodedUnit {
            codec: Codec::H264,
            keyframe: key,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: at + Duration::from_millis(ms),
            data,
        }
    }

    fn audio(at: Instant, ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec: Codec::Aac,
            keyframe: true,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: at + Duration::from_millis(ms),
            data: Bytes::from_static(&[0x21, 0x10, 0x05]),
        }
    }

    #[test]
    fn record_is_built_from_the_real_parameter_sets() {
        let r = avc_decoder_configuration_record(SPS, PPS).expect("record");
        assert_eq!(&r[..6], &[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
        assert_eq!(&r[6..8], &[0, SPS.len() as u8]);
        assert_eq!(&r[8..8 + SPS.len()], SPS);
        assert_eq!(r[8 + SPS.len()], 1);
        assert_eq!(&r[11 + SPS.len()..], PPS);
        assert!(avc_decoder_configuration_record(&[0x67], PPS).is_err());
    }

    #[test]
    fn starts_at_a_keyframe_with_headers_first() {
        let t0 = Instant::now();
        let mut m = FlvMuxer::new(info());
        let mut tags = Vec::new();
        assert!(!m.push(&audio(t0, 0), &mut tags).expect("push"));
        assert!(!m.push(&video(t0, 10, false), &mut tags).expect("push"));
        assert!(tags.is_empty());
        assert!(m.push(&video(t0, 40, true), &mut tags).expect("push"));
        let kinds: Vec<_> = tags.iter().map(|t| (t.kind, t.is_header)).collect();
        assert_eq!(
            kinds,
            [
                (TagKind::Script, true),
                (TagKind::Audio, true),
                (TagKind::Video, true),
                (TagKind::Video, false)
            ]
        );
        assert!(tags[0].data.starts_with(&[0x02, 0x00, 10]));
        assert_eq!(&tags[1].data[..], &[0xaf, 0x00, 0x11, 0x90]);
        assert_eq!(&tags[2].data[..5], &[0x17, 0, 0, 0, 0]);
        // The picture: length-prefixed IDR only, parameter sets stripped.
        assert_eq!(
            &tags[3].data[..],
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84]
        );
        assert!(tags.iter().all(|t| t.timestamp_ms == 0));

        // Audio captured before the keyframe is dropped; later audio is stamped from it.
        tags.clear();
        assert!(!m.push(&audio(t0, 20), &mut tags).expect("push"));
        assert!(m.push(&audio(t0, 61), &mut tags).expect("push"));
        assert!(m.push(&video(t0, 73, false), &mut tags).expect("push"));
        let ts: Vec<_> = tags.iter().map(|t| t.timestamp_ms).collect();
        assert_eq!(ts, [21, 33]);
        assert_eq!(&tags[0].data[..], &[0xaf, 1, 0x21, 0x10, 0x05]);
        assert_eq!(tags[1].data[0], 0x27);
    }

    #[test]
    fn timestamps_never_go_backwards_and_restart_resends_headers() {
        let t0 = Instant::now();
        let mut m = FlvMuxer::new(info());
        let mut tags = Vec::new();
        m.push(&video(t0, 100, true), &mut tags).expect("push");
        tags.clear();
        m.push(&video(t0, 200, false), &mut tags).expect("push");
        // An audio frame stamped earlier than the last tag is clamped, not rewound.
        m.push(&audio(t0, 150), &mut tags).expect("push");
        let ts: Vec<_> = tags.iter().map(|t| t.timestamp_ms).collect();
        assert_eq!(ts, [100, 100]);

        m.restart();
        tags.clear();
        assert!(!m.push(&video(t0, 300, false), &mut tags).expect("push"));
        assert!(m.push(&video(t0, 333, true), &mut tags).expect("push"));
        assert_eq!(tags.len(), 4, "metadata, two sequence headers, picture");
        assert_eq!(tags[3].timestamp_ms, 0);
    }

    #[test]
    fn file_tags_have_header_and_previous_size() {
        assert_eq!(
            file_header(true, true),
            [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]
        );
        let tag = FlvTag {
            kind: TagKind::Audio,
            timestamp_ms: 0x0123_4567,
            is_header: false,
            keyframe: false,
            data: Bytes::from_static(&[0xaf, 1, 9]),
        };
        let mut out = Vec::new();
        tag.write_to(&mut out);
        assert_eq!(
            out,
            [8, 0, 0, 3, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, 0xaf, 1, 9, 0, 0, 0, 14]
        );
    }

    #[test]
    fn wrong_codec_is_an_error() {
        let mut m = FlvMuxer::new(StreamInfo {
            audio: None,
            ..info()
        });
        let mut tags = Vec::new();
        assert!(m.push(&audio(Instant::now(), 0), &mut tags).is_err());
    }
}
