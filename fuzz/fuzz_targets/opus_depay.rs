//! Opus depacketizer with packets of any size up to and past
//! `MAX_OPUS_PACKET`, and raw RTP, checked after every step (see
//! `pstream_rtp::fuzzing::opus_depay`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::opus_depay(data));
