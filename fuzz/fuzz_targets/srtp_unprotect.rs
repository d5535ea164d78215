//! SRTP and SRTCP between two contexts: round trips, tampering, replays,
//! ROC jumps and raw bytes, checked after every step (see
//! `pstream_rtp::fuzzing::srtp_unprotect`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::srtp_unprotect(data));
