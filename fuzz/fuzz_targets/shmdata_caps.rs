//! Parses arbitrary text as a shmdata writer's caps; caps that parse must
//! survive being written and parsed again, and a picture of their layout
//! (when small) must convert to I420 without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pstream_shmdata::pixels::{i420_len, to_i420, Layout};
use pstream_shmdata::Caps;

/// Starts the fuzzer deep in the grammar: the first byte picks one.
const PREFIXES: [&str; 6] = [
    "",
    "video/x-raw, ",
    "audio/x-raw, ",
    "video/x-raw, format=(string)",
    "video/x-raw, format=(string)I420, width=(int)",
    "audio/x-raw, format=(string)F32LE, layout=(string)interleaved, rate=(int)",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let text = format!("{}{rest}", PREFIXES[usize::from(pick) % PREFIXES.len()]);
    let Ok(caps) = Caps::parse(&text) else {
        return;
    };
    assert_eq!(Caps::parse(&caps.to_caps_string()), Ok(caps), "our own caps must parse");
    if let Caps::Video(v) = caps {
        let size = Layout::of(&v).size;
        let out = i420_len(v.width as usize, v.height as usize);
        if size <= 1 << 16 && out <= 1 << 16 {
            let src: Vec<u8> = data.iter().copied().cycle().take(size).collect();
            let mut dst = vec![0u8; out];
            assert!(to_i420(&v, &src, &mut dst), "a whole frame converts");
            assert!(!to_i420(&v, &src[..size - 1], &mut dst), "a short one is refused");
        }
    }
});
