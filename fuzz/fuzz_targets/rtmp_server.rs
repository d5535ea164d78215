//! Drives the RTMP server session (what `pstream serve` runs per connection)
//! with arbitrary bytes: after a valid handshake or not, split into reads of
//! arbitrary sizes, publishes accepted or refused. Must never panic, and its
//! queued output must stay bounded by what it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pstream_rtmp::{ServerEvent, ServerSession};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut s = ServerSession::new();
    if mode & 1 == 1 {
        // C0, C1 and C2 of the original (digest-less) handshake, so the
        // chunk and command layers get the rest of the input.
        let mut hello = vec![3u8];
        hello.extend(std::iter::repeat_n(0u8, 1536 * 2));
        if s.handle_input(&hello).is_err() {
            return;
        }
    }
    let accept = mode & 2 == 2;
    while let [len, tail @ ..] = rest {
        let n = (usize::from(*len) * 16 + 1).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        if s.handle_input(chunk).is_err() {
            break;
        }
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::PublishRequested { key, .. } = ev {
                let _ = if accept {
                    s.accept_publish(&key)
                } else {
                    s.reject_publish("NetStream.Publish.BadName", "fuzz")
                };
            }
        }
        let out = s.poll_transmit().map_or(0, |o| o.len());
        // Answers are a few hundred bytes per command; the handshake 3073.
        assert!(out <= 4096 + chunk.len() * 64, "{out} bytes out for {} in", chunk.len());
        if s.is_closed() {
            break;
        }
    }
});
