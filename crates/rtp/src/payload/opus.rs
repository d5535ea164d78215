//! Opus over RTP (RFC 7587): one Opus packet per RTP packet, marker unused.

use std::collections::VecDeque;

use crate::packet::{RtpPacket, RTP_HEADER_LEN};
use crate::payload::error::{DepayError, DepayErrorKind, PayloaderError};
use crate::payload::traits::{Depayloader, Payloader};
use crate::payload::types::{DepacketizedUnit, MAX_OPUS_PACKET};

/// Puts each Opus packet in its own RTP payload.
#[derive(Debug, Clone)]
pub struct OpusPayloader {
    max_payload: usize,
}

impl OpusPayloader {
    /// A payloader whose packets, with a 12-byte RTP header, fit in `mtu` bytes.
    pub fn new(mtu: usize) -> Result<Self, PayloaderError> {
        let min = RTP_HEADER_LEN + 1;
        if mtu < min {
            return Err(PayloaderError::MtuTooSmall { mtu, min });
        }
        Ok(Self {
            max_payload: mtu - RTP_HEADER_LEN,
        })
    }

    /// Emits `packet` as one payload with the marker clear; returns the packet
    /// count (0 for an empty packet) or an error if it exceeds the MTU.
    pub fn packetize<F: FnMut(&[&[u8]], bool)>(
        &self,
        packet: &[u8],
        mut emit: F,
    ) -> Result<usize, PayloaderError> {
        if packet.len() > self.max_payload {
            return Err(PayloaderError::TooLarge {
                len: packet.len(),
                max: self.max_payload,
            });
        }
        if packet.is_empty() {
            // Nothing to send: Opus DTX simply sends no packet.
            return Ok(0);
        }
        emit(&[packet], false);
        Ok(1)
    }
}

/// Turns RTP payloads back into Opus packets.
#[derive(Debug, Default)]
pub struct OpusDepacketizer {
    ready: VecDeque<DepacketizedUnit>,
    dropped: u64,
}

impl OpusDepacketizer {
    /// A new depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet; an empty payload is dropped and counted.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        if pkt.payload.is_empty() {
            self.dropped += 1;
            return Err(DepayError::new(pkt, DepayErrorKind::Empty));
        }
        if pkt.payload.len() > MAX_OPUS_PACKET {
            self.dropped += 1;
            return Err(DepayError::new(
                pkt,
                DepayErrorKind::UnitTooLarge {
                    len: pkt.payload.len(),
                    limit: MAX_OPUS_PACKET,
                },
            ));
        }
        self.ready.push_back(DepacketizedUnit {
            data: pkt.payload.clone(),
            timestamp: pkt.header.timestamp,
            keyframe: true,
            complete: true,
        });
        Ok(())
    }

    /// Takes the next Opus packet.
    #[must_use]
    pub fn pop(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    /// Packets dropped as unusable.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Payloader for OpusPayloader {
    fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        unit: &[u8],
        emit: F,
    ) -> Result<usize, PayloaderError> {
        OpusPayloader::packetize(self, unit, emit)
    }
}

impl Depayloader for OpusDepacketizer {
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError> {
        OpusDepacketizer::push(self, pkt)
    }

    fn pop(&mut self) -> Option<DepacketizedUnit> {
        OpusDepacketizer::pop(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpHeader;
    use bytes::Bytes;

    #[test]
    fn round_trip() {
        let p = OpusPayloader::new(200).expect("mtu");
        let mut d = OpusDepacketizer::new();
        for (i, len) in [1usize, 60, 188].into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|b| b as u8).collect();
            let mut pkts = Vec::new();
            let n = p
                .packetize(&data, |parts, marker| {
                    assert!(!marker);
                    pkts.push(parts.concat());
                })
                .expect("fits");
            assert_eq!(n, 1);
            assert!(pkts[0].len() + RTP_HEADER_LEN <= 200);
            let pkt = RtpPacket {
                header: RtpHeader {
                    marker: false,
                    payload_type: 97,
                    sequence: i as u16,
                    timestamp: 960 * i as u32,
                    ssrc: 1,
                },
                csrcs: vec![],
                extension: None,
                payload: Bytes::from(pkts.remove(0)),
                padding: 0,
            };
            d.push(&pkt).expect("ok");
            let u = d.pop().expect("unit");
            assert_eq!(u.data, data);
            assert_eq!(u.timestamp, 960 * i as u32);
            assert!(u.keyframe && u.complete);
        }
        assert!(matches!(
            p.packetize(&[0; 189], |_, _| {}),
            Err(PayloaderError::TooLarge { len: 189, max: 188 })
        ));
        assert_eq!(p.packetize(&[], |_, _| panic!("no packet")), Ok(0));
    }

    #[test]
    fn a_packet_past_the_largest_opus_packet_is_dropped() {
        let mut d = OpusDepacketizer::new();
        let pkt = |len| RtpPacket {
            header: RtpHeader::default(),
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(vec![0xfc; len]),
            padding: 0,
        };
        d.push(&pkt(MAX_OPUS_PACKET))
            .expect("the largest Opus packet");
        assert_eq!(d.pop().map(|u| u.data.len()), Some(MAX_OPUS_PACKET));
        let e = d.push(&pkt(MAX_OPUS_PACKET + 1)).expect_err("too large");
        assert_eq!(
            e.kind,
            DepayErrorKind::UnitTooLarge {
                len: MAX_OPUS_PACKET + 1,
                limit: MAX_OPUS_PACKET
            }
        );
        assert_eq!(d.dropped(), 1);
        assert!(d.pop().is_none());
    }

    #[test]
    fn empty_payload_is_dropped() {
        let mut d = OpusDepacketizer::new();
        let pkt = RtpPacket {
            header: RtpHeader::default(),
            csrcs: vec![],
            extension: None,
            payload: Bytes::new(),
            padding: 0,
        };
        assert!(d.push(&pkt).is_err());
        assert_eq!(d.dropped(), 1);
        assert!(d.pop().is_none());
    }
}
