//! RTCP packets built from fields (past the writer's limits too) and raw
//! bytes through the writer and parser: round trips and fixed points (see
//! `pstream_rtp::fuzzing::rtcp_parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::rtcp_parse(data));
