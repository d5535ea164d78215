//! FLV tag bodies (as RTMP carries them) back into encoded units.
//!
//! [`FlvDemuxer::push`] takes one audio or video tag body with its
//! millisecond timestamp. The AVC sequence header (an
//! AVCDecoderConfigurationRecord) gives the SPS/PPS and the NAL length
//! size; later video tags are length-prefixed NAL units, rewritten to
//! Annex B with 4-byte start codes and, on keyframes that lack them, the
//! sequence header's SPS and PPS in front, so that every keyframe can start
//! a decoder or an HLS segment. The AAC sequence header is the
//! AudioSpecificConfig; later audio tags are raw AAC frames.
//!
//! A codec other than AVC or AAC is an error ([`DemuxError::Unsupported`]):
//! the stream cannot be served. A malformed tag (a NAL length running past
//! the tag, media before its sequence header) is dropped and counted
//! ([`FlvDemuxer::dropped`]).

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use pstream_core::{Codec, EncodedUnit};
use thiserror::Error;

use crate::ts::{AudioSpecificConfig, TsStreams};

/// FLV video codec id of AVC.
const AVC: u8 = 7;
/// FLV sound format of AAC.
const AAC: u8 = 10;

/// What cannot be demuxed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DemuxError {
    /// A codec pstream cannot carry to HLS: the stream must be refused.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// A tag that makes no sense (dropped and counted).
    #[error("malformed {what} tag: {why}")]
    Malformed {
        /// "video" or "audio".
        what: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

/// The most bytes of SPS and PPS one AVC sequence header may carry, all
/// together. Real encoders write tens of bytes (a few hundred with scaling
/// lists); these are repeated before every keyframe that lacks them.
pub const MAX_PARAMETER_SET_BYTES: usize = 8 << 10;

/// The name of an FLV video codec id, for messages.
fn video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "VP6",
        5 => "VP6 with alpha",
        6 => "Screen video 2",
        12 => "HEVC",
        13 => "AV1",
        _ => "unknown",
    }
}

/// The name of an FLV sound format, for messages.
fn audio_codec_name(id: u8) -> &'static str {
    match id {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        2 | 14 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        13 => "Opus",
        _ => "unknown",
    }
}

/// Turns FLV audio/video tag bodies into [`EncodedUnit`]s (see the module docs).
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    nal_len_size: usize,
    asc: Option<AudioSpecificConfig>,
    /// The last timestamp seen, and its value on the extended (64-bit) timeline.
    last_ts: Option<(u32, i64)>,
    dropped: u64,
}

impl FlvDemuxer {
    /// A demuxer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tags dropped as malformed so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the AVC sequence header has arrived.
    pub fn has_video_config(&self) -> bool {
        !self.sps.is_empty()
    }

    /// The AAC configuration, once its sequence header has arrived.
    pub fn audio_config(&self) -> Option<AudioSpecificConfig> {
        self.asc
    }

    /// The elementary streams known so far, for the transport stream muxer.
    pub fn streams(&self) -> TsStreams {
        TsStreams {
            video: self.has_video_config(),
            audio: self.asc,
        }
    }

    /// Milliseconds on a timeline that survives the 32-bit wrap and small steps back.
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last_ts {
            None => i64::from(ts),
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
        };
        self.last_ts = Some((ts, ext));
        ext
    }

    fn malformed(&mut self, what: &'static str, why: &'static str) -> DemuxError {
        self.dropped += 1;
        DemuxError::Malformed { what, why }
    }

    /// One video tag body; `Ok(None)` for sequence headers and end-of-sequence.
    pub fn push_video(
        &mut self,
        timestamp_ms: u32,
        body: &[u8],
        capture: Instant,
    ) -> Result<Option<EncodedUnit>, DemuxError> {
        let Some(&first) = body.first() else {
            return Err(self.malformed("video", "empty"));
        };
        if first & 0x80 != 0 {
            // Enhanced RTMP: a FourCC names the codec.
            let fourcc = body.get(1..5).unwrap_or_default();
            return Err(DemuxError::Unsupported(format!(
                "video codec {:?} (enhanced RTMP); publish H.264",
                String::from_utf8_lossy(fourcc)
            )));
        }
        let (frame_type, codec) = (first >> 4, first & 0x0F);
        if codec != AVC {
            return Err(DemuxError::Unsupported(format!(
                "video codec id {codec} ({}); publish H.264",
                video_codec_name(codec)
            )));
        }
        if frame_type == 5 {
            // Video info / command frame: no picture.
            return Ok(None);
        }
        if body.len() < 5 {
            return Err(self.malformed("video", "shorter than the AVC header"));
        }
        let packet_type = body[1];
        let cts =
            (i32::from(body[2]) << 16 | i32::from(body[3]) << 8 | i32::from(body[4])) << 8 >> 8;
        let data = &body[5..];
        match packet_type {
            0 => {
                self.parse_avcc(data)?;
                Ok(None)
            }
            1 => {
                if self.sps.is_empty() {
                    return Err(self.malformed("video", "NAL units before the sequence header"));
                }
                let keyframe = frame_type == 1;
                let annexb = self.annexb_of(data, keyframe)?;
                let dts = self.extend(timestamp_ms);
                let pts = dts + i64::from(cts);
                let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
                Ok(Some(EncodedUnit {
                    codec: Codec::H264,
                    keyframe,
                    pts: ms(pts),
                    dts: (cts != 0).then(|| ms(dts)),
                    capture,
                    data: annexb,
                }))
            }
            _ => Ok(None),
        }
    }

    /// One audio tag body; `Ok(None)` for the sequence header.
    pub fn push_audio(
        &mut self,
        timestamp_ms: u32,
        body: &[u8],
        capture: Instant,
    ) -> Result<Option<EncodedUnit>, DemuxError> {
        let Some(&first) = body.first() else {
            return Err(self.malformed("audio", "empty"));
        };
        let format = first >> 4;
        if format != AAC {
            return Err(DemuxError::Unsupported(format!(
                "audio codec id {format} ({}); publish AAC",
                audio_codec_name(format)
            )));
        }
        match body.get(1) {
            Some(0) => {
                let asc = AudioSpecificConfig::parse(&body[2..])
                    .map_err(|_| self.malformed("audio", "bad AudioSpecificConfig"))?;
                self.asc = Some(asc);
                Ok(None)
            }
            Some(1) => {
                if self.asc.is_none() {
                    return Err(self.malformed("audio", "AAC frame before the sequence header"));
                }
                let raw = &body[2..];
                if raw.is_empty() || raw.len() > 8191 - 7 {
                    return Err(self.malformed("audio", "AAC frame size out of range"));
                }
                let t = self.extend(timestamp_ms);
                Ok(Some(EncodedUnit {
                    codec: Codec::Aac,
                    keyframe: true,
                    pts: Duration::from_millis(u64::try_from(t).unwrap_or(0)),
                    dts: None,
                    capture,
                    data: Bytes::copy_from_slice(raw),
                }))
            }
            _ => Err(self.malformed("audio", "unknown AAC packet type")),
        }
    }

    /// Reads an AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1).
    /// Its parameter sets are copied in front of every keyframe that lacks
    /// them, so their total size is bounded ([`MAX_PARAMETER_SET_BYTES`]):
    /// 32 SPS and 255 PPS of 64 KiB each would turn every 11-byte keyframe
    /// tag into megabytes.
    fn parse_avcc(&mut self, d: &[u8]) -> Result<(), DemuxError> {
        let bad = |s: &mut Self| s.malformed("video", "bad AVC sequence header");
        if d.len() < 7 || d[0] != 1 {
            return Err(bad(self));
        }
        let nal_len_size = usize::from(d[4] & 0x03) + 1;
        if nal_len_size == 3 {
            return Err(bad(self));
        }
        let mut pos = 5;
        let mut total = 0usize;
        let mut sets = [Vec::new(), Vec::new()];
        for (i, list) in sets.iter_mut().enumerate() {
            let Some(&count) = d.get(pos) else {
                return Err(bad(self));
            };
            let count = if i == 0 { count & 0x1F } else { count };
            pos += 1;
            for _ in 0..count {
                let Some(len) = d.get(pos..pos + 2) else {
                    return Err(bad(self));
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                pos += 2;
                let Some(nal) = d.get(pos..pos + len) else {
                    return Err(bad(self));
                };
                if !nal.is_empty() {
                    total += nal.len();
                    if total > MAX_PARAMETER_SET_BYTES {
                        return Err(self.malformed("video", "AVC parameter sets over 8 KiB"));
                    }
                    list.push(Bytes::copy_from_slice(nal));
                }
                pos += len;
            }
        }
        let [sps, pps] = sets;
        if sps.is_empty() || pps.is_empty() {
            return Err(bad(self));
        }
        self.sps = sps;
        self.pps = pps;
        self.nal_len_size = nal_len_size;
        Ok(())
    }

    /// Length-prefixed NAL units to Annex B, SPS/PPS first on a keyframe without them.
    fn annexb_of(&mut self, mut d: &[u8], keyframe: bool) -> Result<Bytes, DemuxError> {
        let n = self.nal_len_size;
        let mut nals = Vec::new();
        while !d.is_empty() {
            if d.len() < n {
                return Err(self.malformed("video", "truncated NAL length"));
            }
            let len = d[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let Some(nal) = d.get(n..n + len) else {
                return Err(self.malformed("video", "NAL length runs past the tag"));
            };
            if !nal.is_empty() {
                nals.push(nal);
            }
            d = &d[n + len..];
        }
        if nals.is_empty() {
            return Err(self.malformed("video", "no NAL units"));
        }
        let has_sps = nals.iter().any(|n| n[0] & 0x1F == 7);
        let mut out = BytesMut::with_capacity(d.len() + 4 * nals.len() + 64);
        if keyframe && !has_sps {
            for ps in self.sps.iter().chain(&self.pps) {
                out.put_slice(&[0, 0, 0, 1]);
                out.put_slice(ps);
            }
        }
        for nal in nals {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::avc_decoder_configuration_record;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xab];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn seq_header() -> Vec<u8> {
        let mut b = vec![0x17, 0, 0, 0, 0];
        b.extend(avc_decoder_configuration_record(SPS, PPS).expect("avcc"));
        b
    }

    #[test]
    fn avcc_to_annexb_with_parameter_sets_on_keyframes() {
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        assert_eq!(d.push_video(0, &seq_header(), now), Ok(None));
        assert!(d.has_video_config());
        let key = [0x17, 1, 0, 0, 0x21, 0, 0, 0, 3, 0x65, 0xAA, 0xBB];
        let u = d.push_video(40, &key, now).expect("ok").expect("unit");
        let mut want = vec![0, 0, 0, 1];
        want.extend(SPS);
        want.extend([0, 0, 0, 1]);
        want.extend(PPS);
        want.extend([0, 0, 0, 1, 0x65, 0xAA, 0xBB]);
        assert_eq!(&u.data[..], &want[..]);
        assert!(u.keyframe);
        assert_eq!(u.pts, Duration::from_millis(40 + 0x21));
        assert_eq!(u.dts, Some(Duration::from_millis(40)));
        let p = [0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A];
        let u = d.push_video(73, &p, now).expect("ok").expect("unit");
        assert_eq!(&u.data[..], &[0, 0, 0, 1, 0x41, 0x9A]);
        assert_eq!(u.dts, None);
    }

    /// A sequence header with 32 SPS and 255 PPS of 60,000 bytes each is
    /// refused (dropped and counted, the old configuration kept), so an
    /// 11-byte keyframe tag after it stays small.
    #[test]
    fn oversized_parameter_sets_are_refused_not_amplified() {
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        d.push_video(0, &seq_header(), now).expect("header");
        let mut h = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe0 | 31];
        let big = |first: u8| {
            let mut n = vec![first];
            n.resize(60_000, 0x5a);
            n
        };
        for _ in 0..31 {
            h.extend((60_000u16).to_be_bytes());
            h.extend(big(0x67));
        }
        h.push(255);
        for _ in 0..255 {
            h.extend((60_000u16).to_be_bytes());
            h.extend(big(0x68));
        }
        assert!(matches!(
            d.push_video(0, &h, now),
            Err(DemuxError::Malformed { .. })
        ));
        assert_eq!(d.dropped(), 1);
        let key = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0xAA];
        let u = d.push_video(40, &key, now).expect("ok").expect("unit");
        assert_eq!(u.data.len(), 4 + SPS.len() + 4 + PPS.len() + 4 + 2);
        // At the bound: accepted, and a keyframe grows by at most the bound.
        let mut h = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
        let sps = big(0x67);
        h.extend(4000u16.to_be_bytes());
        h.extend(&sps[..4000]);
        h.push(1);
        h.extend(4000u16.to_be_bytes());
        h.extend(&big(0x68)[..4000]);
        assert_eq!(d.push_video(0, &h, now), Ok(None));
        let u = d.push_video(80, &key, now).expect("ok").expect("unit");
        assert!(
            u.data.len() <= MAX_PARAMETER_SET_BYTES + 64,
            "{}",
            u.data.len()
        );
    }

    #[test]
    fn aac_config_and_frames() {
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        assert!(d.push_audio(0, &[0xAF, 1, 1, 2], now).is_err());
        assert_eq!(d.push_audio(0, &[0xAF, 0, 0x11, 0x90], now), Ok(None));
        assert_eq!(d.audio_config().map(|a| a.sample_rate()), Some(48_000));
        let u = d
            .push_audio(21, &[0xAF, 1, 9, 8, 7], now)
            .expect("ok")
            .expect("unit");
        assert_eq!((u.codec, &u.data[..]), (Codec::Aac, &[9u8, 8, 7][..]));
        assert_eq!(u.pts, Duration::from_millis(21));
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn lies_are_dropped_and_unknown_codecs_refused() {
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        d.push_video(0, &seq_header(), now).expect("header");
        let lying = [0x17, 1, 0, 0, 0, 0, 0, 0x10, 0, 0x65];
        assert!(matches!(
            d.push_video(0, &lying, now),
            Err(DemuxError::Malformed { .. })
        ));
        assert!(d.push_video(0, &[0x17, 0, 0, 0, 0, 1, 2], now).is_err());
        assert_eq!(d.dropped(), 2);
        assert!(d.has_video_config(), "a bad header keeps the old one");
        assert!(matches!(
            d.push_video(0, &[0x1C, 0, 0, 0, 0], now),
            Err(DemuxError::Unsupported(_))
        ));
        assert!(matches!(
            d.push_audio(0, &[0x2F, 0xFF], now),
            Err(DemuxError::Unsupported(_))
        ));
        assert!(matches!(
            d.push_video(0, b"\x90hvc1", now),
            Err(DemuxError::Unsupported(_))
        ));
    }

    #[test]
    fn random_tags_never_panic() {
        // A cheap stand-in for fuzzing (the fuzz workspace does not build the codecs).
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        d.push_video(0, &seq_header(), now).expect("header");
        d.push_audio(0, &[0xAF, 0, 0x11, 0x90], now).expect("asc");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let mut body: Vec<u8> = (0..len).map(|j| (x >> (j % 8 * 8)) as u8).collect();
            if let Some(b) = body.first_mut() {
                // Mostly AVC/AAC, so the deeper paths run.
                *b = if i % 2 == 0 { 0x17 | (*b & 0x20) } else { 0xAF };
            }
            let _ = if i % 2 == 0 {
                d.push_video(i, &body, now)
            } else {
                d.push_audio(i, &body, now)
            };
        }
    }

    #[test]
    fn timestamps_survive_the_32_bit_wrap() {
        let mut d = FlvDemuxer::new();
        let now = Instant::now();
        d.push_audio(0, &[0xAF, 0, 0x11, 0x90], now).expect("asc");
        let a = d
            .push_audio(u32::MAX - 9, &[0xAF, 1, 1], now)
            .expect("ok")
            .expect("unit");
        let b = d
            .push_audio(10, &[0xAF, 1, 1], now)
            .expect("ok")
            .expect("unit");
        assert_eq!(b.pts - a.pts, Duration::from_millis(20));
    }
}
