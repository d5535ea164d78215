//! serve's WHEP core (pstream-webrtc over str0m): SDP offers raw and
//! browser-shaped with fuzzed attributes, closes, datagrams from three
//! peers, video frames (sources and a rendition), Opus packets and steps
//! of time, checked after every step (see
//! `pstream_webrtc::fuzzing::whep`); the same steps against the WHIP
//! publishers' core (`pstream_webrtc::whip::fuzzing::whip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pstream_webrtc::fuzzing::whep(data);
    // The same steps against serve's WHIP (publisher) core.
    pstream_webrtc::whip::fuzzing::whip(data);
});
