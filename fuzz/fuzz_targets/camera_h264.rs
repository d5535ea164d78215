//! A camera's own H.264 (camera passthrough in `send` and `push`): access
//! units with start codes of both sizes, parameter sets that lie or come
//! late, junk, a lying key frame flag; through the Annex-B scan, the SPS
//! parser, the FLV muxer and back through the demuxer, checked after every
//! unit (see `pstream_mux::fuzzing::camera_h264`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_mux::fuzzing::camera_h264(data));
