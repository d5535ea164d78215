//! Drives the RTMP server session (what `pstream serve` runs per connection)
//! with a structured publisher: after a valid handshake or not, reads of
//! arbitrary bytes and publishes accepted or refused, with the session's
//! invariants checked after every step (see
//! `pstream_rtmp::fuzzing::server_session`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_rtmp::fuzzing::server_session(data));
