//! Drives an RtpReceiver (H.264, 20 ms latency) with arbitrary RTP, RTCP,
//! timeouts and keyframe requests.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pstream_core::Codec;
use pstream_rtp::receiver::{ReceiverConfig, RtpReceiver};

fuzz_target!(|data: &[u8]| {
    let mut cfg = ReceiverConfig::new(Codec::H264, "fuzz");
    cfg.latency = Duration::from_millis(20);
    let Ok(mut r) = RtpReceiver::with_seed(cfg, 7) else {
        return;
    };
    let mut now = Instant::now();
    let mut rest = data;
    // Each op: [op][len][bytes...].
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        match op % 4 {
            0 | 1 => {
                let _ = r.handle_rtp(now, chunk);
            }
            2 => {
                let _ = r.handle_rtcp(now, chunk);
            }
            _ => {
                now += Duration::from_millis(u64::from(*len));
                if r.next_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                }
                r.request_keyframe(now);
            }
        }
        while r.poll_unit().is_some() {}
        while r.poll_transmit().is_some() {}
    }
});
