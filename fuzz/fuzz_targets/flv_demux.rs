//! The FLV demuxer (RTMP tag bodies to H.264 and AAC units, as `pstream
//! serve` reads publishers) with structured tags whose fields lie, checked
//! after every tag (see `pstream_mux::fuzzing::flv_demux`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_mux::fuzzing::flv_demux(data));
