//! Parses arbitrary bytes as RTP and feeds them to the Opus depacketizer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pstream_rtp::opus::OpusDepacketizer;
use pstream_rtp::packet::RtpPacket;

fuzz_target!(|data: &[u8]| {
    let mut d = OpusDepacketizer::new();
    for chunk in data.split(|b| *b == 0xff) {
        if let Ok(pkt) = RtpPacket::parse_slice(chunk) {
            let _ = d.push(&pkt);
            if let Some(u) = d.pop() {
                assert_eq!(u.data, pkt.payload);
            }
        }
    }
});
