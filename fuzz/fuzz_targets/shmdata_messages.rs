//! A shmdata writer's socket stream built from messages, cut into reads of
//! any size, into the follower's decoder (see
//! `pstream_shmdata::fuzzing::shmdata_messages`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pstream_shmdata::fuzzing::shmdata_messages(data));
