//! Publisher tags through the FLV demuxer into the HLS segmenter, with
//! units of any size, ends, restarts and clock steps, out to playlists and
//! segments, checked after every step (see
//! `pstream_mux::fuzzing::hls_segmenter`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_mux::fuzzing::hls_segmenter(data));
