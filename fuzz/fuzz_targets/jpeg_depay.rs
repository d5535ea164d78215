//! Feeds arbitrary RFC 2435 payloads, sequence numbers, timestamps and
//! markers to the JPEG depacketizer, and arbitrary bytes as a "JPEG" through
//! the payloader; rebuilt frames must start with SOI and end with EOI, and
//! packets must fit the MTU.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pstream_rtp::jpeg::{parse_jpeg, JpegDepacketizer, JpegPayloader};
use pstream_rtp::packet::{RtpHeader, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let mut d = JpegDepacketizer::new();
    let mut rest = data;
    let mut seq = 0u16;
    let mut ts = 0u32;
    // Each packet: [flags][len_hi][len_lo][payload...]: flags bit0 marker,
    // bit1 new timestamp, bits 2..5 sequence skip.
    while let [flags, hi, lo, tail @ ..] = rest {
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        seq = seq.wrapping_add(1 + u16::from(flags >> 2 & 0x7));
        if flags & 2 != 0 {
            ts = ts.wrapping_add(3000);
        }
        let pkt = RtpPacket {
            header: RtpHeader {
                marker: flags & 1 != 0,
                payload_type: 26,
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
        while let Some(u) = d.pop() {
            // A rebuilt frame always has its headers and an end.
            assert!(u.data.starts_with(&[0xff, 0xd8]) && u.data.ends_with(&[0xff, 0xd9]));
            let _ = parse_jpeg(&u.data);
        }
    }
    d.flush();
    assert!(d.pop().is_none());

    let mtu = 157 + usize::from(data.first().copied().unwrap_or(0));
    if let Ok(mut p) = JpegPayloader::new(mtu) {
        let _ = p.packetize(data, |parts, _| {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            assert!(len + 12 <= mtu);
        });
    }
});
