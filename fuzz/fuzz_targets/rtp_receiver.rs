//! `RtpReceiver` fed RTP and RTCP from a small set of addresses behind a
//! peer filter, with time steps, PLIs and stalls: locked-source rules and
//! bounds checked after every step (see `pstream_rtp::fuzzing::rtp_receiver`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtp::fuzzing::rtp_receiver(data));
