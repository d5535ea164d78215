//! RFC 2435 depacketizer with structured fragments (offsets, types, Q,
//! in-band tables that lie, holes and overlaps) and the payloader's MTU,
//! checked after every step (see `pstream_rtp::fuzzing::jpeg_depay`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::jpeg_depay(data));
