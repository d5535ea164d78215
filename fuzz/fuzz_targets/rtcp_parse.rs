//! Parses arbitrary bytes as an RTCP compound; whatever parses must survive
//! being written and parsed again.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pstream_rtp::rtcp::{parse_compound, write_compound};

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = parse_compound(data) {
        let bytes = write_compound(&packets, &mut BytesMut::new());
        assert!(parse_compound(&bytes).is_ok(), "our own RTCP must parse");
    }
});
