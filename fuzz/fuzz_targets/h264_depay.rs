//! Feeds arbitrary payloads, sequence numbers and markers to the H.264
//! depacketizer, and arbitrary access units through payloader and back.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pstream_rtp::h264::{H264Depacketizer, H264Payloader};
use pstream_rtp::packet::{RtpHeader, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let mut d = H264Depacketizer::new();
    let mut rest = data;
    let mut seq = 0u16;
    let mut ts = 0u32;
    // Each packet: [flags][len][payload...]: flags bit0 marker, bit1 new
    // timestamp, bits 2..5 sequence skip.
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        seq = seq.wrapping_add(1 + u16::from(flags >> 2 & 0x7));
        if flags & 2 != 0 {
            ts = ts.wrapping_add(3000);
        }
        let pkt = RtpPacket {
            header: RtpHeader {
                marker: flags & 1 != 0,
                payload_type: 96,
                sequence: seq,
                timestamp: ts,
                ssrc: 1,
            },
            csrcs: Vec::new(),
            extension: None,
            payload: Bytes::copy_from_slice(payload),
            padding: 0,
        };
        let _ = d.push(&pkt);
        while d.pop().is_some() {}
    }
    d.flush();
    while d.pop().is_some() {}

    // Whatever the bytes, packets stay within the MTU.
    let mtu = 15 + usize::from(data.first().copied().unwrap_or(0));
    if let Ok(mut p) = H264Payloader::new(mtu) {
        p.packetize(data, |parts, _| {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            assert!(len + 12 <= mtu);
        });
    }
});
