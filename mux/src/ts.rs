//! MPEG-2 transport stream (ISO 13818-1) for HLS: H.264 and AAC in 188-byte packets.
//!
//! [`TsMuxer`] is sans-IO: it appends packets to a caller-owned [`BytesMut`]
//! and keeps only what a stream needs between calls (continuity counters, the
//! last SPS/PPS, a reused PES scratch buffer), so a steady stream allocates
//! nothing per unit once the buffers have grown.
//!
//! What it writes:
//! - PAT and PMT ([`TsMuxer::write_tables`]): program 1 on PID 0x1000, H.264
//!   (stream type 0x1B) on PID 0x100 carrying the PCR, AAC in ADTS (stream
//!   type 0x0F) on PID 0x101. The HLS segmenter writes them at the start of
//!   every segment.
//! - H.264 PES ([`TsMuxer::write_unit`]): an access unit delimiter first, then
//!   the last seen SPS/PPS before an IDR that lacks them, then the unit's own
//!   NAL units with 4-byte start codes; PTS (and DTS where it differs); a PCR
//!   and, on keyframes, the random-access flag in the first packet.
//! - AAC PES: one ADTS frame (7-byte header built from the
//!   AudioSpecificConfig, see [`AudioSpecificConfig`]) per PES.
//!
//! Timestamps are the unit's pts in 90 kHz ticks plus [`TS_OFFSET_90K`] (so
//! that they are positive even for the PCR, which runs [`PCR_DELAY_90K`]
//! behind the video DTS), wrapped to 33 bits. The last packet of each PES is
//! padded with adaptation-field stuffing.

use bytes::{BufMut, BytesMut};
use pstream_codec::h264::nal::{self, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
use pstream_core::{Codec, EncodedUnit};
use std::time::Duration;
use thiserror::Error;

/// Size of one transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream (also the PCR PID when video is present).
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC elementary stream.
pub const AUDIO_PID: u16 = 0x101;
/// Added to every PTS/DTS (1.4 s, as ffmpeg does) so timestamps start positive.
pub const TS_OFFSET_90K: u64 = 126_000;
/// How far the PCR runs behind the DTS of the video unit it is sent with (0.7 s).
pub const PCR_DELAY_90K: u64 = 63_000;

/// H.264 video stream type in the PMT.
const STREAM_TYPE_H264: u8 = 0x1b;
/// AAC with ADTS transport stream type in the PMT.
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// Payload bytes of a packet without adaptation field.
const PAYLOAD: usize = TS_PACKET_SIZE - 4;
/// Timestamps are 33 bits.
const TS_MASK: u64 = (1 << 33) - 1;
/// The largest ADTS frame (13-bit length, header included).
const MAX_ADTS_FRAME: usize = (1 << 13) - 1;
/// An access unit delimiter NAL (primary_pic_type 7: any slice type) with its start code.
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xf0];

/// What went wrong while writing a transport stream.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TsError {
    /// A unit whose codec this muxer does not carry (only H.264 and AAC).
    #[error("MPEG-TS muxer cannot carry {0}")]
    UnsupportedCodec(Codec),
    /// A unit of a stream that is not in the PMT (e.g. AAC without a config).
    #[error("{0} unit for a stream not declared in the PMT")]
    UndeclaredStream(Codec),
    /// An AudioSpecificConfig that ADTS cannot express or that is malformed.
    #[error("AudioSpecificConfig unusable for ADTS: {0}")]
    AudioConfig(&'static str),
    /// An AAC frame too large for one ADTS frame.
    #[error("AAC frame of {len} bytes does not fit an ADTS frame")]
    AacFrameTooLarge {
        /// Length of the raw AAC frame.
        len: usize,
    },
    /// An empty unit payload.
    #[error("empty {0} unit at {1:?}")]
    Empty(Codec, Duration),
}

/// The fields of an MPEG-4 AudioSpecificConfig that an ADTS header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC-LC); ADTS can carry 1..=4.
    pub object_type: u8,
    /// Sampling frequency index (3 = 48 kHz, 4 = 44.1 kHz).
    pub frequency_index: u8,
    /// Channel configuration (1 = mono, 2 = stereo).
    pub channel_config: u8,
}

/// Sampling frequencies by index (ISO 14496-3 table 1.18).
const FREQUENCIES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

impl AudioSpecificConfig {
    /// Parses the first bytes of an AudioSpecificConfig (as in an FLV AAC sequence header).
    pub fn parse(asc: &[u8]) -> Result<Self, TsError> {
        let [a, b, ..] = *asc else {
            return Err(TsError::AudioConfig("shorter than 2 bytes"));
        };
        let object_type = a >> 3;
        let frequency_index = ((a & 0x07) << 1) | (b >> 7);
        let channel_config = (b >> 3) & 0x0f;
        let c = Self {
            object_type,
            frequency_index,
            channel_config,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks that ADTS can express this configuration.
    fn validate(&self) -> Result<(), TsError> {
        if !(1..=4).contains(&self.object_type) {
            return Err(TsError::AudioConfig(
                "object type outside 1..=4 (AAC Main/LC/SSR/LTP)",
            ));
        }
        if usize::from(self.frequency_index) >= FREQUENCIES.len() {
            return Err(TsError::AudioConfig(
                "explicit or reserved sampling frequency",
            ));
        }
        if !(1..=7).contains(&self.channel_config) {
            return Err(TsError::AudioConfig("channel configuration outside 1..=7"));
        }
        Ok(())
    }

    /// The sampling rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        FREQUENCIES
            .get(usize::from(self.frequency_index))
            .copied()
            .unwrap_or(48_000)
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2` for AAC-LC.
    pub fn codecs(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The 7-byte ADTS header (no CRC) for a raw frame of `raw_len` bytes.
    pub fn adts_header(&self, raw_len: usize) -> Result<[u8; 7], TsError> {
        let len = raw_len + 7;
        if len > MAX_ADTS_FRAME {
            return Err(TsError::AacFrameTooLarge { len: raw_len });
        }
        let profile = (self.object_type - 1) & 0x03;
        let fi = self.frequency_index & 0x0f;
        let ch = self.channel_config & 0x07;
        Ok([
            0xff,
            0xf1, // sync, MPEG-4, layer 0, no CRC
            (profile << 6) | (fi << 2) | (ch >> 2),
            ((ch & 0x03) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            (((len & 0x07) as u8) << 5) | 0x1f, // buffer fullness 0x7FF (VBR)...
            0xfc,                               // ...and one raw data block
        ])
    }
}

/// Which elementary streams a transport stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsStreams {
    /// Whether there is an H.264 stream.
    pub video: bool,
    /// The AAC stream's configuration, if there is one.
    pub audio: Option<AudioSpecificConfig>,
}

/// Writes PAT, PMT and PES packets for one H.264 + AAC program.
#[derive(Debug)]
pub struct TsMuxer {
    streams: TsStreams,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// PES header + payload of the unit being written, reused across units.
    pes: Vec<u8>,
}

/// Converts a unit time to 90 kHz ticks (rounded) with the fixed offset, wrapped to 33 bits.
///
/// Rounding, not truncation: frame times like `n × 33 333 333 ns` must give
/// exact 3000-tick steps.
pub fn to_90k(t: Duration) -> u64 {
    let ticks = t.as_secs() * 90_000 + (u64::from(t.subsec_nanos()) * 9 + 50_000) / 100_000;
    (ticks + TS_OFFSET_90K) & TS_MASK
}

impl TsMuxer {
    /// A muxer for these streams; continuity counters start at 0.
    pub fn new(streams: TsStreams) -> Self {
        Self {
            streams,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            sps: None,
            pps: None,
            pes: Vec::new(),
        }
    }

    /// The streams declared in the PMT.
    pub fn streams(&self) -> TsStreams {
        self.streams
    }

    /// Changes the declared streams (takes effect with the next [`Self::write_tables`]).
    pub fn set_streams(&mut self, streams: TsStreams) {
        self.streams = streams;
    }

    /// The last SPS seen in the video stream (NAL header included).
    pub fn sps(&self) -> Option<&[u8]> {
        self.sps.as_deref()
    }

    /// The PID carrying the PCR: video if present, else audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.streams.video || self.streams.audio.is_none() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    /// Appends one PAT and one PMT packet.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        // PAT: program 1 → PMT PID.
        let mut pat = [0u8; 16];
        let pat_len = {
            let s = &mut pat;
            s[0] = 0x00; // table_id
            let section_length: u16 = 5 + 4 + 4; // header rest + one program + CRC
            s[1] = 0xb0 | (section_length >> 8) as u8;
            s[2] = section_length as u8;
            s[3..5].copy_from_slice(&1u16.to_be_bytes()); // transport_stream_id
            s[5] = 0xc1; // version 0, current_next
            s[6] = 0; // section_number
            s[7] = 0; // last_section_number
            s[8..10].copy_from_slice(&1u16.to_be_bytes()); // program_number
            s[10..12].copy_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
            let crc = crc32_mpeg(&s[..12]);
            s[12..16].copy_from_slice(&crc.to_be_bytes());
            16
        };
        self.cc_pat = write_psi(out, 0, self.cc_pat, &pat[..pat_len]);

        // PMT.
        let mut pmt = [0u8; 64];
        let mut n = 12;
        let add_stream = |pmt: &mut [u8; 64], n: &mut usize, ty: u8, pid: u16| {
            pmt[*n] = ty;
            pmt[*n + 1..*n + 3].copy_from_slice(&(0xe000 | pid).to_be_bytes());
            pmt[*n + 3..*n + 5].copy_from_slice(&0xf000u16.to_be_bytes()); // no ES info
            *n += 5;
        };
        if self.streams.video || self.streams.audio.is_none() {
            add_stream(&mut pmt, &mut n, STREAM_TYPE_H264, VIDEO_PID);
        }
        if self.streams.audio.is_some() {
            add_stream(&mut pmt, &mut n, STREAM_TYPE_AAC_ADTS, AUDIO_PID);
        }
        let section_length = (n - 3 + 4) as u16;
        pmt[0] = 0x02;
        pmt[1] = 0xb0 | (section_length >> 8) as u8;
        pmt[2] = section_length as u8;
        pmt[3..5].copy_from_slice(&1u16.to_be_bytes()); // program_number
        pmt[5] = 0xc1;
        pmt[6] = 0;
        pmt[7] = 0;
        pmt[8..10].copy_from_slice(&(0xe000 | self.pcr_pid()).to_be_bytes());
        pmt[10..12].copy_from_slice(&0xf000u16.to_be_bytes()); // no program info
        let crc = crc32_mpeg(&pmt[..n]);
        pmt[n..n + 4].copy_from_slice(&crc.to_be_bytes());
        n += 4;
        self.cc_pmt = write_psi(out, PMT_PID, self.cc_pmt, &pmt[..n]);
    }

    /// Appends the PES packets of one unit (H.264 access unit or raw AAC frame).
    ///
    /// H.264 units are remembered for their SPS/PPS even when the unit is
    /// otherwise written unchanged. Errors leave `out` untouched.
    pub fn write_unit(&mut self, unit: &EncodedUnit, out: &mut BytesMut) -> Result<(), TsError> {
        if unit.data.is_empty() {
            return Err(TsError::Empty(unit.codec, unit.pts));
        }
        match unit.codec {
            Codec::H264 => {
                if !self.streams.video && self.streams.audio.is_some() {
                    return Err(TsError::UndeclaredStream(unit.codec));
                }
                self.write_h264(unit, out);
                Ok(())
            }
            Codec::Aac => {
                let Some(asc) = self.streams.audio else {
                    return Err(TsError::UndeclaredStream(unit.codec));
                };
                let header = asc.adts_header(unit.data.len())?;
                let pts = to_90k(unit.pts);
                let mut pes = std::mem::take(&mut self.pes);
                pes.clear();
                let payload_len = header.len() + unit.data.len();
                write_pes_header(&mut pes, 0xc0, payload_len, pts, None);
                pes.extend_from_slice(&header);
                pes.extend_from_slice(&unit.data);
                let pcr = (self.pcr_pid() == AUDIO_PID)
                    .then_some(pts.wrapping_sub(PCR_DELAY_90K) & TS_MASK);
                self.cc_audio = write_pes(out, AUDIO_PID, self.cc_audio, &pes, pcr, false);
                self.pes = pes;
                Ok(())
            }
            other => Err(TsError::UnsupportedCodec(other)),
        }
    }

    fn write_h264(&mut self, unit: &EncodedUnit, out: &mut BytesMut) {
        let (mut has_sps, mut has_pps, mut has_idr) = (false, false, false);
        for n in nal::nal_units(&unit.data) {
            match nal::nal_type(n) {
                Some(NAL_SPS) => {
                    has_sps = true;
                    replace(&mut self.sps, n);
                }
                Some(NAL_PPS) => {
                    has_pps = true;
                    replace(&mut self.pps, n);
                }
                Some(NAL_IDR) => has_idr = true,
                _ => {}
            }
        }
        let pts = to_90k(unit.pts);
        let dts = unit.dts.map(to_90k).filter(|&d| d != pts);
        let mut pes = std::mem::take(&mut self.pes);
        pes.clear();
        // Header first with a placeholder length; patched below.
        write_pes_header(&mut pes, 0xe0, 0, pts, dts);
        pes.extend_from_slice(&AUD);
        if has_idr || unit.keyframe {
            if !has_sps {
                if let Some(sps) = &self.sps {
                    pes.extend_from_slice(&[0, 0, 0, 1]);
                    pes.extend_from_slice(sps);
                }
            }
            if !has_pps {
                if let Some(pps) = &self.pps {
                    pes.extend_from_slice(&[0, 0, 0, 1]);
                    pes.extend_from_slice(pps);
                }
            }
        }
        for n in nal::nal_units(&unit.data) {
            if nal::nal_type(n) == Some(NAL_AUD) {
                continue;
            }
            pes.extend_from_slice(&[0, 0, 0, 1]);
            pes.extend_from_slice(n);
        }
        // PES_packet_length counts the bytes after it; 0 (unbounded) if too long.
        let after_len = pes.len() - 6;
        let len = u16::try_from(after_len).unwrap_or(0);
        pes[4..6].copy_from_slice(&len.to_be_bytes());
        let pcr = dts.unwrap_or(pts).wrapping_sub(PCR_DELAY_90K) & TS_MASK;
        let pcr = (self.pcr_pid() == VIDEO_PID).then_some(pcr);
        self.cc_video = write_pes(
            out,
            VIDEO_PID,
            self.cc_video,
            &pes,
            pcr,
            has_idr || unit.keyframe,
        );
        self.pes = pes;
    }
}

/// The longest SPS or PPS kept for repeating before IDRs that lack one. Real
/// encoders write tens of bytes (hundreds with scaling lists); a longer one
/// is written where it came but not kept, or one in-band parameter set of
/// megabytes would be copied in front of every IDR of a few bytes after it.
pub const MAX_KEPT_PARAMETER_SET: usize = 4 << 10;

/// Replaces a cached parameter set in place, reusing its allocation.
fn replace(slot: &mut Option<Vec<u8>>, nal: &[u8]) {
    if nal.len() > MAX_KEPT_PARAMETER_SET {
        return;
    }
    match slot {
        Some(v) => {
            v.clear();
            v.extend_from_slice(nal);
        }
        None => *slot = Some(nal.to_vec()),
    }
}

/// Appends a PES header; `payload_len` is the elementary stream bytes that follow it.
fn write_pes_header(
    pes: &mut Vec<u8>,
    stream_id: u8,
    payload_len: usize,
    pts: u64,
    dts: Option<u64>,
) {
    let header_data = if dts.is_some() { 10 } else { 5 };
    let after_len = 3 + header_data + payload_len;
    let len = u16::try_from(after_len).unwrap_or(0);
    pes.extend_from_slice(&[0, 0, 1, stream_id]);
    pes.extend_from_slice(&len.to_be_bytes());
    pes.push(0x84); // '10', not scrambled, data_alignment_indicator
    match dts {
        Some(dts) => {
            pes.push(0xc0);
            pes.push(10);
            push_timestamp(pes, 0x3, pts);
            push_timestamp(pes, 0x1, dts);
        }
        None => {
            pes.push(0x80);
            pes.push(5);
            push_timestamp(pes, 0x2, pts);
        }
    }
}

/// The 5-byte PTS/DTS field: 4-bit prefix, 33 bits with marker bits.
fn push_timestamp(pes: &mut Vec<u8>, prefix: u8, t: u64) {
    let t = t & TS_MASK;
    pes.extend_from_slice(&[
        (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]);
}

/// Writes a PSI section in one packet (pointer field 0, 0xFF fill); returns the next CC.
fn write_psi(out: &mut BytesMut, pid: u16, cc: u8, section: &[u8]) -> u8 {
    out.reserve(TS_PACKET_SIZE);
    let start = out.len();
    out.put_u8(0x47);
    out.put_u16(0x4000 | pid); // payload_unit_start
    out.put_u8(0x10 | (cc & 0x0f)); // payload only
    out.put_u8(0); // pointer_field
    out.put_slice(section);
    let used = out.len() - start;
    out.put_bytes(0xff, TS_PACKET_SIZE - used);
    (cc + 1) & 0x0f
}

/// Splits a PES into packets with PCR/random-access on the first and stuffing on the last.
fn write_pes(
    out: &mut BytesMut,
    pid: u16,
    mut cc: u8,
    pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) -> u8 {
    out.reserve(pes.len().div_ceil(PAYLOAD - 8) * TS_PACKET_SIZE + TS_PACKET_SIZE);
    let mut rest = pes;
    let mut first = true;
    while !rest.is_empty() {
        // Adaptation field content (after its length byte) wanted on this packet.
        let mut af = [0u8; 7];
        let mut af_len = 0usize; // bytes of af content (flags + PCR)
        if first && (pcr.is_some() || random_access) {
            let mut flags = 0u8;
            if random_access {
                flags |= 0x40;
            }
            af_len = 1;
            if let Some(pcr) = pcr {
                flags |= 0x10;
                let base = pcr & TS_MASK;
                af[1..7].copy_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    (((base & 1) as u8) << 7) | 0x7e, // reserved bits, extension high bit 0
                    0,
                ]);
                af_len = 7;
            }
            af[0] = flags;
        }
        // Room for payload if an adaptation field (length byte + content) is present.
        let af_total = if af_len > 0 { 1 + af_len } else { 0 };
        let room = PAYLOAD - af_total;
        let take = rest.len().min(room);
        // Stuffing needed to fill the packet.
        let stuffing = room - take;
        out.put_u8(0x47);
        let pusi = if first { 0x4000 } else { 0 };
        out.put_u16(pusi | pid);
        if af_total > 0 || stuffing > 0 {
            out.put_u8(0x30 | (cc & 0x0f)); // adaptation field + payload
            if af_total == 0 && stuffing == 1 {
                out.put_u8(0); // an empty adaptation field is the one-byte stuffing
            } else {
                // adaptation_field_length: the bytes after it (content + stuffing).
                let content = af_len.max(1);
                let total_len = if af_total > 0 {
                    af_len + stuffing
                } else {
                    stuffing - 1
                };
                out.put_u8(total_len as u8);
                if af_len > 0 {
                    out.put_slice(&af[..af_len]);
                } else {
                    out.put_u8(0); // no flags
                }
                let fill = total_len - content;
                out.put_bytes(0xff, fill);
            }
        } else {
            out.put_u8(0x10 | (cc & 0x0f));
        }
        out.put_slice(&rest[..take]);
        rest = &rest[take..];
        cc = (cc + 1) & 0x0f;
        first = false;
    }
    cc
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, initial all ones) for PSI sections.
pub fn crc32_mpeg(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = (i as u32) << 24;
            let mut k = 0;
            while k < 8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04c1_1db7
                } else {
                    c << 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc = (crc << 8) ^ TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;
    use std::time::Instant;

    /// A fake Annex-B access unit: SPS + PPS + IDR, or one non-IDR slice.
    fn h264(keyframe: bool, with_ps: bool, len: usize, ms: u64) -> EncodedUnit {
        let mut d = Vec::new();
        if with_ps {
            d.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xab]);
            d.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        }
        d.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
        d.extend((0..len).map(|i| (i % 251) as u8 | 1));
        EncodedUnit {
            codec: Codec::H264,
            keyframe,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: Instant::now(),
            data: Bytes::from(d),
        }
    }

    /// One in-band SPS of 1 MB, then IDRs of one byte that are not flagged
    /// as keyframes (as an FLV inter-frame tag of 10 bytes gives them): the
    /// muxer repeats no parameter set that long, so the IDRs stay small.
    #[test]
    fn a_huge_in_band_parameter_set_is_not_repeated() {
        let mut m = TsMuxer::new(TsStreams {
            video: true,
            audio: None,
        });
        let mut out = BytesMut::new();
        m.write_unit(&h264(true, true, 10, 0), &mut out)
            .expect("first");
        let mut sps = vec![0, 0, 0, 1, 0x67];
        sps.extend(std::iter::repeat_n(0x11, 1 << 20));
        let mut unit = h264(false, false, 0, 33);
        unit.data = Bytes::from(sps);
        m.write_unit(&unit, &mut out).expect("sps");
        let before = out.len();
        for i in 0..20 {
            let mut idr = h264(false, false, 0, 66 + 33 * i);
            idr.data = Bytes::from_static(&[0, 0, 0, 1, 0x65]);
            m.write_unit(&idr, &mut out).expect("idr");
        }
        // Each IDR: its PES in one or two TS packets, with the kept 5-byte SPS and PPS.
        let per_idr = (out.len() - before) / 20;
        assert!(per_idr <= 2 * 188, "{per_idr} bytes per 1-byte IDR");
        assert_eq!(m.sps(), Some(&[0x67, 0x42, 0xc0, 0x1e, 0xab][..]));
    }

    fn aac(len: usize, ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec: Codec::Aac,
            keyframe: true,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: Instant::now(),
            data: Bytes::from(vec![0x21; len]),
        }
    }

    const LC_48K_STEREO: [u8; 2] = [0x11, 0x90];

    /// A minimal demuxer: checks packet structure and returns PES payloads per PID.
    #[derive(Default)]
    struct Demux {
        cc: HashMap<u16, u8>,
        pes: HashMap<u16, Vec<Vec<u8>>>,
        pcrs: Vec<u64>,
        random_access: usize,
        psi: Vec<u16>,
    }

    impl Demux {
        fn feed(&mut self, ts: &[u8]) {
            assert_eq!(ts.len() % TS_PACKET_SIZE, 0, "whole packets");
            for p in ts.chunks_exact(TS_PACKET_SIZE) {
                assert_eq!(p[0], 0x47, "sync byte");
                let pusi = p[1] & 0x40 != 0;
                let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
                let afc = (p[3] >> 4) & 3;
                let cc = p[3] & 0x0f;
                assert!(afc == 1 || afc == 3, "every packet carries payload");
                if let Some(prev) = self.cc.insert(pid, cc) {
                    assert_eq!(cc, (prev + 1) & 0x0f, "continuity on PID {pid:#x}");
                }
                let mut off = 4;
                if afc == 3 {
                    let len = p[4] as usize;
                    if len > 0 {
                        let flags = p[5];
                        if flags & 0x40 != 0 {
                            self.random_access += 1;
                        }
                        if flags & 0x10 != 0 {
                            let b = &p[6..12];
                            let base = (u64::from(b[0]) << 25)
                                | (u64::from(b[1]) << 17)
                                | (u64::from(b[2]) << 9)
                                | (u64::from(b[3]) << 1)
                                | (u64::from(b[4]) >> 7);
                            self.pcrs.push(base);
                        }
                        let content = if flags & 0x10 != 0 { 7 } else { 1 };
                        assert!(
                            p[5 + content..5 + len].iter().all(|&b| b == 0xff),
                            "stuffing"
                        );
                    }
                    off += 1 + len;
                }
                assert!(off <= TS_PACKET_SIZE);
                let payload = &p[off..];
                if pid == 0 || pid == PMT_PID {
                    assert!(pusi);
                    self.psi.push(pid);
                    let section = &payload[1..];
                    let len = 3 + ((usize::from(section[1] & 0x0f) << 8) | usize::from(section[2]));
                    assert_eq!(crc32_mpeg(&section[..len]), 0, "PSI CRC");
                    continue;
                }
                let list = self.pes.entry(pid).or_default();
                if pusi {
                    list.push(Vec::new());
                }
                list.last_mut()
                    .expect("PES starts with PUSI")
                    .extend_from_slice(payload);
            }
        }
    }

    fn read_ts(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1)
    }

    /// (pts, dts, payload) of one PES packet.
    fn parse_pes(pes: &[u8]) -> (u64, Option<u64>, &[u8]) {
        assert_eq!(&pes[..3], &[0, 0, 1]);
        let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
        let hdr = 9 + pes[8] as usize;
        if len != 0 {
            assert_eq!(len, pes.len() - 6, "PES_packet_length");
        }
        let pts = read_ts(&pes[9..14]);
        let dts = (pes[7] & 0x40 != 0).then(|| read_ts(&pes[14..19]));
        (pts, dts, &pes[hdr..])
    }

    #[test]
    fn pat_crc_matches_ffmpeg() {
        // ffmpeg's PAT section for transport_stream_id 1, program 1 on PID 0x1000.
        let section = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        assert_eq!(crc32_mpeg(&section), 0x2ab1_04b2);
        let mut m = TsMuxer::new(TsStreams {
            video: true,
            audio: None,
        });
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_SIZE);
        assert_eq!(
            &out[5..5 + 16],
            &[&section[..], &[0x2a, 0xb1, 0x04, 0xb2]].concat()[..]
        );
    }

    #[test]
    fn pmt_lists_streams_and_pcr_pid() {
        let asc = AudioSpecificConfig::parse(&LC_48K_STEREO).expect("asc");
        let mut m = TsMuxer::new(TsStreams {
            video: true,
            audio: Some(asc),
        });
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let pmt = &out[TS_PACKET_SIZE + 5..];
        assert_eq!(pmt[0], 0x02);
        assert_eq!(u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1fff, VIDEO_PID);
        assert_eq!(pmt[12], 0x1b);
        assert_eq!(u16::from_be_bytes([pmt[13], pmt[14]]) & 0x1fff, VIDEO_PID);
        assert_eq!(pmt[17], 0x0f);
        assert_eq!(u16::from_be_bytes([pmt[18], pmt[19]]) & 0x1fff, AUDIO_PID);
        let mut d = Demux::default();
        d.feed(&out);
        assert_eq!(d.psi, vec![0, PMT_PID]);
    }

    #[test]
    fn audio_specific_config_and_adts_header() {
        let asc = AudioSpecificConfig::parse(&LC_48K_STEREO).expect("asc");
        assert_eq!(
            asc,
            AudioSpecificConfig {
                object_type: 2,
                frequency_index: 3,
                channel_config: 2
            }
        );
        assert_eq!(asc.sample_rate(), 48_000);
        assert_eq!(asc.codecs(), "mp4a.40.2");
        // 100 raw bytes → frame_length 107.
        assert_eq!(
            asc.adts_header(100).expect("fits"),
            [0xff, 0xf1, 0x4c, 0x80, 0x0d, 0x7f, 0xfc]
        );
        // 44.1 kHz mono: index 4, channel 1.
        let mono = AudioSpecificConfig::parse(&[0x12, 0x08]).expect("asc");
        assert_eq!(mono.frequency_index, 4);
        assert_eq!(mono.channel_config, 1);
        assert_eq!(mono.adts_header(0).expect("fits")[2], 0x50);
        assert!(matches!(
            asc.adts_header(8185),
            Err(TsError::AacFrameTooLarge { len: 8185 })
        ));
        assert!(asc.adts_header(8184).is_ok());
        assert!(AudioSpecificConfig::parse(&[0x11]).is_err());
        // HE-AAC (object type 5) and explicit frequencies are refused.
        assert!(AudioSpecificConfig::parse(&[0x2b, 0x92]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80]).is_err());
    }

    #[test]
    fn h264_pes_gets_aud_parameter_sets_pcr_and_stuffing() {
        let mut m = TsMuxer::new(TsStreams {
            video: true,
            audio: None,
        });
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        // First IDR carries SPS/PPS; the second IDR lacks them and must get them.
        let units = [
            h264(true, true, 1000, 0),
            h264(false, false, 10, 33),
            h264(false, false, 183, 67),
            h264(true, false, 5000, 100),
        ];
        for u in &units {
            m.write_unit(u, &mut out).expect("write");
        }
        let mut d = Demux::default();
        d.feed(&out);
        let pes = &d.pes[&VIDEO_PID];
        assert_eq!(pes.len(), 4);
        assert_eq!(d.pcrs.len(), 4, "a PCR with every video PES");
        assert_eq!(d.random_access, 2, "random access flag on the IDRs");
        let mut last = 0;
        for (i, (p, u)) in pes.iter().zip(&units).enumerate() {
            let (pts, dts, es) = parse_pes(p);
            assert_eq!(dts, None);
            assert_eq!(pts, TS_OFFSET_90K + u.pts.as_millis() as u64 * 90);
            assert!(d.pcrs[i] <= pts && d.pcrs[i] + PCR_DELAY_90K == pts);
            assert!(pts > last);
            last = pts;
            let nals: Vec<u8> = nal::nal_units(es).map(|n| n[0] & 0x1f).collect();
            let expected: &[u8] = match i {
                0 => &[9, 7, 8, 5],
                3 => &[9, 7, 8, 5],
                _ => &[9, 1],
            };
            assert_eq!(nals, expected, "NAL types of unit {i}");
            // The slice itself comes through unchanged.
            let slice = nal::nal_units(es).last().expect("slice");
            let orig = nal::nal_units(&u.data).last().expect("slice");
            assert_eq!(slice, orig);
        }
    }

    #[test]
    fn dts_is_written_when_it_differs() {
        let mut m = TsMuxer::new(TsStreams::default());
        let mut u = h264(true, true, 50, 100);
        u.dts = Some(Duration::from_millis(67));
        let mut out = BytesMut::new();
        m.write_unit(&u, &mut out).expect("write");
        let mut d = Demux::default();
        d.feed(&out);
        let (pts, dts, _) = parse_pes(&d.pes[&VIDEO_PID][0]);
        assert_eq!(pts, TS_OFFSET_90K + 9000);
        assert_eq!(dts, Some(TS_OFFSET_90K + 67 * 90));
        assert_eq!(d.pcrs[0] + PCR_DELAY_90K, TS_OFFSET_90K + 67 * 90);
    }

    #[test]
    fn every_payload_length_packs_exactly() {
        // Lengths around the packet boundaries exercise 0, 1 and 2+ bytes of stuffing.
        let asc = AudioSpecificConfig::parse(&LC_48K_STEREO).expect("asc");
        for len in (1..400).chain([2000, 65_600, 70_000]) {
            let mut m = TsMuxer::new(TsStreams {
                video: true,
                audio: Some(asc),
            });
            let mut out = BytesMut::new();
            let v = h264(false, false, len, 10);
            m.write_unit(&v, &mut out).expect("video");
            let alen = len.min(8000);
            m.write_unit(&aac(alen, 10), &mut out).expect("audio");
            let mut d = Demux::default();
            d.feed(&out);
            let (_, _, es) = parse_pes(&d.pes[&VIDEO_PID][0]);
            assert_eq!(es.len(), AUD.len() + v.data.len(), "video length {len}");
            let (_, _, es) = parse_pes(&d.pes[&AUDIO_PID][0]);
            assert_eq!(es.len(), 7 + alen, "audio length {alen}");
            assert_eq!(&es[..7], &asc.adts_header(alen).expect("fits"));
        }
    }

    #[test]
    fn refuses_what_it_cannot_carry_without_writing() {
        let mut m = TsMuxer::new(TsStreams {
            video: true,
            audio: None,
        });
        let mut out = BytesMut::new();
        assert_eq!(
            m.write_unit(&aac(10, 0), &mut out),
            Err(TsError::UndeclaredStream(Codec::Aac))
        );
        let mut opus = aac(10, 0);
        opus.codec = Codec::Opus;
        assert_eq!(
            m.write_unit(&opus, &mut out),
            Err(TsError::UnsupportedCodec(Codec::Opus))
        );
        let mut empty = h264(false, false, 0, 0);
        empty.data = Bytes::new();
        assert!(m.write_unit(&empty, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let t = Duration::from_secs((1u64 << 33) / 90_000 + 10);
        assert!(to_90k(t) < 1 << 33);
        assert_eq!(to_90k(Duration::ZERO), TS_OFFSET_90K);
        assert_eq!(to_90k(Duration::from_millis(1500)), TS_OFFSET_90K + 135_000);
        assert_eq!(
            to_90k(Duration::from_nanos(33_333_333)),
            TS_OFFSET_90K + 3000
        );
        assert_eq!(
            to_90k(Duration::from_nanos(2_999_999_999)),
            TS_OFFSET_90K + 270_000
        );
    }
}
