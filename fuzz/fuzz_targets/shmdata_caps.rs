//! shmdata caps strings built from fields, from values and raw, into the
//! caps parser and the pixel conversion (see
//! `pstream_shmdata::fuzzing::shmdata_caps`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_shmdata::fuzzing::shmdata_caps(data));
