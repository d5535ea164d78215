//! The RTP fixed header (RFC 3550 §5.1): parsing and writing.
//!
//! Parsing is zero-copy: the payload, extension and padding are slices of the
//! input [`Bytes`]. Writing appends to a caller-owned [`BytesMut`] so the send
//! path reuses one buffer and only pays for the `freeze`.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The only RTP version there is.
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;
/// The most CSRCs a header can carry (the CC field is 4 bits).
pub const MAX_CSRCS: usize = 15;

/// Why an RTP packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Fewer bytes than the fixed header, its CSRCs or its extension need.
    #[error("RTP packet truncated: {needed} bytes needed for the {part}, {len} present")]
    Truncated {
        /// Which part of the packet did not fit.
        part: &'static str,
        /// Bytes that part needed, counted from the packet start.
        needed: usize,
        /// Length of the packet.
        len: usize,
    },
    /// The version field is not 2 (often RTCP or STUN on the wrong port).
    #[error("RTP version {version}, expected 2 (first byte {first:#04x})")]
    Version {
        /// The version bits found.
        version: u8,
        /// The whole first byte, to tell STUN/DTLS/RTCP apart.
        first: u8,
    },
    /// The padding count is zero or larger than the room after the header.
    #[error("RTP padding of {padding} bytes is invalid (ssrc {ssrc:#010x} seq {seq}): {room} bytes after the header")]
    Padding {
        /// The padding count from the last byte.
        padding: u8,
        /// Bytes available for payload plus padding.
        room: usize,
        /// SSRC of the offending packet.
        ssrc: u32,
        /// Sequence number of the offending packet.
        seq: u16,
    },
}

/// Why an RTP packet could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpWriteError {
    /// More than 15 CSRCs.
    #[error("{0} CSRCs given, at most 15 fit")]
    TooManyCsrcs(usize),
    /// Extension data is not a whole number of 32-bit words or too long.
    #[error("header extension of {0} bytes is not a multiple of 4 or exceeds 262140 bytes")]
    Extension(usize),
    /// A payload type above 127.
    #[error("payload type {0} does not fit in 7 bits")]
    PayloadType(u8),
}

/// The fields of the fixed header a session sets on every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RtpHeader {
    /// The marker bit (end of access unit for video).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp in clock-rate units.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte fixed header (no CSRCs, no extension, no padding).
    ///
    /// The payload type is masked to 7 bits; sessions validate it up front.
    pub fn write_to(&self, buf: &mut BytesMut) {
        buf.put_u8(RTP_VERSION << 6);
        buf.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        buf.put_u16(self.sequence);
        buf.put_u32(self.timestamp);
        buf.put_u32(self.ssrc);
    }
}

/// An RTP header extension (RFC 3550 §5.3.1), kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// The 16-bit profile-defined value (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension body, a multiple of 4 bytes.
    pub data: Bytes,
}

/// A parsed RTP packet whose payload shares the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The fixed header fields.
    pub header: RtpHeader,
    /// Contributing sources (empty for pstream's own streams).
    pub csrcs: Vec<u32>,
    /// The header extension, if the X bit was set.
    pub extension: Option<RtpExtension>,
    /// The payload, padding removed.
    pub payload: Bytes,
    /// How many padding bytes followed the payload (0 if the P bit was clear).
    pub padding: u8,
}

impl RtpPacket {
    /// Parses a packet; the payload is a slice of `data`, not a copy.
    pub fn parse(data: Bytes) -> Result<Self, RtpError> {
        let len = data.len();
        if len < RTP_HEADER_LEN {
            return Err(RtpError::Truncated {
                part: "fixed header",
                needed: RTP_HEADER_LEN,
                len,
            });
        }
        let b0 = data[0];
        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::Version { version, first: b0 });
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0f);
        let header = RtpHeader {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        };
        let mut pos = RTP_HEADER_LEN;
        let csrc_end = pos + 4 * cc;
        if len < csrc_end {
            return Err(RtpError::Truncated {
                part: "CSRC list",
                needed: csrc_end,
                len,
            });
        }
        let csrcs = data[pos..csrc_end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        pos = csrc_end;
        let extension = if has_extension {
            if len < pos + 4 {
                return Err(RtpError::Truncated {
                    part: "extension header",
                    needed: pos + 4,
                    len,
                });
            }
            let profile = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let words = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
            let end = pos + 4 + 4 * words;
            if len < end {
                return Err(RtpError::Truncated {
                    part: "extension body",
                    needed: end,
                    len,
                });
            }
            let ext = RtpExtension {
                profile,
                data: data.slice(pos + 4..end),
            };
            pos = end;
            Some(ext)
        } else {
            None
        };
        let mut end = len;
        let mut padding = 0;
        if has_padding {
            padding = data[len - 1];
            let room = len - pos;
            if padding == 0 || usize::from(padding) > room {
                return Err(RtpError::Padding {
                    padding,
                    room,
                    ssrc: header.ssrc,
                    seq: header.sequence,
                });
            }
            end -= usize::from(padding);
        }
        Ok(Self {
            header,
            csrcs,
            extension,
            payload: data.slice(pos..end),
            padding,
        })
    }

    /// Parses a packet from a borrowed buffer, copying it once.
    pub fn parse_slice(data: &[u8]) -> Result<Self, RtpError> {
        Self::parse(Bytes::copy_from_slice(data))
    }

    /// Appends the whole packet (header, CSRCs, extension, payload, padding).
    pub fn write_to(&self, buf: &mut BytesMut) -> Result<(), RtpWriteError> {
        if self.csrcs.len() > MAX_CSRCS {
            return Err(RtpWriteError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.header.payload_type > 0x7f {
            return Err(RtpWriteError::PayloadType(self.header.payload_type));
        }
        if let Some(ext) = &self.extension {
            if ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX) {
                return Err(RtpWriteError::Extension(ext.data.len()));
            }
        }
        let start = buf.len();
        self.header.write_to(buf);
        let mut b0 = RTP_VERSION << 6 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        buf[start] = b0;
        for c in &self.csrcs {
            buf.put_u32(*c);
        }
        if let Some(ext) = &self.extension {
            buf.put_u16(ext.profile);
            buf.put_u16((ext.data.len() / 4) as u16);
            buf.put_slice(&ext.data);
        }
        buf.put_slice(&self.payload);
        if self.padding > 0 {
            buf.put_bytes(0, usize::from(self.padding) - 1);
            buf.put_u8(self.padding);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtpPacket {
        RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 96,
                sequence: 0xfffe,
                timestamp: 0xdead_beef,
                ssrc: 0x1234_5678,
            },
            csrcs: vec![1, 2, 3],
            extension: Some(RtpExtension {
                profile: 0xbede,
                data: Bytes::from_static(&[0x10, 0xaa, 0, 0]),
            }),
            payload: Bytes::from_static(b"hello"),
            padding: 3,
        }
    }

    #[test]
    fn fixed_header_round_trips() {
        let h = RtpHeader {
            marker: true,
            payload_type: 97,
            sequence: 513,
            timestamp: 7,
            ssrc: 9,
        };
        let mut buf = BytesMut::new();
        h.write_to(&mut buf);
        buf.put_slice(b"xy");
        let p = RtpPacket::parse(buf.freeze()).expect("parses");
        assert_eq!(p.header, h);
        assert_eq!(&p.payload[..], b"xy");
        assert!(p.csrcs.is_empty() && p.extension.is_none() && p.padding == 0);
    }

    #[test]
    fn full_packet_round_trips() {
        let p = sample();
        let mut buf = BytesMut::new();
        p.write_to(&mut buf).expect("writes");
        assert_eq!(buf.len(), 12 + 12 + 8 + 5 + 3);
        let back = RtpPacket::parse(buf.freeze()).expect("parses");
        assert_eq!(back, p);
    }

    #[test]
    fn truncations_are_errors() {
        let mut buf = BytesMut::new();
        sample().write_to(&mut buf).expect("writes");
        let full = buf.freeze();
        // Every prefix either parses or errors; none panics. Those cut inside
        // the header, CSRCs or extension must error.
        for n in 0..full.len() {
            let r = RtpPacket::parse(full.slice(..n));
            if n < 12 + 12 + 8 {
                assert!(matches!(r, Err(RtpError::Truncated { .. })), "{n}: {r:?}");
            }
        }
    }

    #[test]
    fn bad_version_and_padding() {
        let mut raw = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        raw[0] = 0x40;
        assert!(matches!(
            RtpPacket::parse_slice(&raw),
            Err(RtpError::Version { version: 1, .. })
        ));
        raw[0] = 0xa0; // padding bit with last byte 1 (the ssrc's low byte)
        let p = RtpPacket::parse_slice(&raw);
        assert!(matches!(p, Err(RtpError::Padding { .. })), "{p:?}");
        raw.extend_from_slice(&[9, 9, 0]);
        assert!(matches!(
            RtpPacket::parse_slice(&raw),
            Err(RtpError::Padding { padding: 0, .. })
        ));
        raw.pop();
        raw.push(3);
        let p = RtpPacket::parse_slice(&raw).expect("valid padding");
        assert!(p.payload.is_empty());
    }

    #[test]
    fn writer_refuses_bad_fields() {
        let mut p = sample();
        p.csrcs = vec![0; 16];
        assert_eq!(
            p.write_to(&mut BytesMut::new()),
            Err(RtpWriteError::TooManyCsrcs(16))
        );
        let mut p = sample();
        p.extension = Some(RtpExtension {
            profile: 1,
            data: Bytes::from_static(&[1, 2, 3]),
        });
        assert_eq!(
            p.write_to(&mut BytesMut::new()),
            Err(RtpWriteError::Extension(3))
        );
    }
}
