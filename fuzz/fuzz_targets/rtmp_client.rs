//! The publishing client session (what `pstream push` runs per destination)
//! against a fuzzed server: handshake, commands of any shape, control
//! messages, lying chunk headers, deep AMF, media and close, with the
//! session's invariants checked after every step (see
//! `pstream_rtmp::fuzzing::publish_session`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtmp::fuzzing::publish_session(data));
