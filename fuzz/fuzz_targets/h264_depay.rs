//! H.264 depacketizer with structured packets (single NALs, STAP-A
//! lengths that lie, FU-A start/end misuse, sequence jumps, units grown to
//! `MAX_H264_UNIT`) and the payloader's MTU, checked after every step (see
//! `pstream_rtp::fuzzing::h264_depay`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::h264_depay(data));
