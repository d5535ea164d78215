//! Feeds arbitrary bytes to the shmdata follower's message decoder, as a
//! writer's socket would deliver them, for both `size_t` widths; the caps
//! of a greeting go on to the caps parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pstream_shmdata::proto::{FollowerDecoder, Message, WireLayout};
use pstream_shmdata::Caps;

fuzz_target!(|data: &[u8]| {
    for bytes in [4, 8] {
        let layout = WireLayout::with_size_t(bytes);
        // As the follower reads: never more than the decoder asks for.
        let mut d = FollowerDecoder::new(layout);
        let mut rest = data;
        while !rest.is_empty() {
            let n = d.wanted().min(rest.len());
            match d.push(&rest[..n]) {
                Err(_) => break,
                Ok(Some(Message::Connect { caps, .. })) => {
                    let _ = Caps::parse(&caps);
                }
                Ok(_) => {}
            }
            rest = &rest[n..];
        }
        // All at once: more than one message is refused, never queued.
        let _ = FollowerDecoder::new(layout).push(data);
    }
});
