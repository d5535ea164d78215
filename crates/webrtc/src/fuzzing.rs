//! The fuzzing harness, built only under `--cfg fuzzing` (as cargo-fuzz
//! builds): [`whep`] drives a [`Whep`] server with what a hostile network
//! and hostile HTTP clients give it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{AudioFrame, Transmit, VideoFrame, Whep, WhepConfig};

/// An offer shaped like a browser's, with `lines` (fuzzed) as its media
/// attributes, so that offers get past the first parse and open sessions.
fn offer(lines: &str) -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
         a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\n{lines}",
        fp.join(":")
    )
}

/// Splits `data` into steps, each a kind byte, a length byte and that many
/// bytes: offers (raw, or browser-shaped with fuzzed attributes), closes of
/// a made-up or a real session, datagrams from one of three peers, video
/// frames of a source or a rendition feed, Opus packets, and steps of time. After every step: sessions within the cap,
/// counters never falling, offers and refusals adding up to the offers
/// made (each within the cap), no empty datagram out, and `poll` never asking to be woken in the
/// past.
pub fn whep(data: &[u8]) {
    let mut config = WhepConfig::new(SocketAddr::from(([127, 0, 0, 1], 8189)));
    config.max_sessions = 4;
    config.max_sessions_per_stream = 2;
    config.idle_timeout = Duration::from_secs(2);
    let cap = config.max_sessions;
    let mut whep = Whep::new(config, [7; 32]);
    let peers: [SocketAddr; 3] = [
        SocketAddr::from(([127, 0, 0, 1], 50000)),
        SocketAddr::from(([127, 0, 0, 2], 50001)),
        SocketAddr::from(([10, 0, 0, 1], 9)),
    ];
    let streams = ["a", "b"];
    // Video feeds: the two sources and a rendition of "a".
    let feeds = ["a", "b", "a/r"];
    let start = Instant::now();
    let mut now = start;
    let mut ids: Vec<(usize, String)> = Vec::new();
    let mut offers = 0u64;
    let mut out: Vec<Transmit> = Vec::new();
    let mut last = whep.stats();
    let mut rest = data;
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        let pick = usize::from(*len);
        match kind % 8 {
            0 | 1 => {
                let text = String::from_utf8_lossy(body);
                let sdp = if kind % 8 == 0 {
                    offer(&text)
                } else {
                    text.into_owned()
                };
                // The sources, and rendition "r" of "a".
                let s = pick % 3;
                let rendition = (s == 2).then_some("r");
                let s = s % streams.len();
                offers += 1;
                if let Ok((id, _answer)) = whep.offer_variant(now, streams[s], rendition, &sdp) {
                    ids.push((s, id));
                }
            }
            2 => {
                // A real session's id, or one made up.
                match ids.get(pick % (ids.len() + 1)) {
                    Some((s, id)) => {
                        let (s, id) = (*s, id.clone());
                        whep.close(streams[s], &id);
                    }
                    None => {
                        whep.close(streams[0], &String::from_utf8_lossy(body));
                    }
                }
            }
            3 | 4 => {
                whep.receive(now, peers[pick % peers.len()], body);
            }
            5 if pick % 4 == 3 => {
                let frame = AudioFrame {
                    data: Arc::from(body),
                    pts: now - start,
                };
                whep.audio(streams[pick % streams.len()], &frame);
            }
            5 => {
                let frame = VideoFrame {
                    data: Arc::from(body),
                    keyframe: pick % 2 == 0,
                    pts: now - start,
                };
                whep.video(feeds[pick % feeds.len()], &frame);
            }
            _ => {
                now += Duration::from_millis(u64::from(*len) * 20);
                out.clear();
                let wake = whep.poll(now, &mut out);
                assert!(wake >= now, "asked to wake in the past");
                assert!(out.iter().all(|t| !t.data.is_empty()), "an empty datagram");
            }
        }
        let s = whep.stats();
        assert!(s.sessions <= cap, "{} sessions over {cap}", s.sessions);
        assert!(s.offers + s.refused == offers, "offers counted");
        assert!(s.connected >= last.connected);
        assert!(s.dropped_datagrams >= last.dropped_datagrams);
        assert!(s.timed_out >= last.timed_out);
        assert!(s.frames_sent >= last.frames_sent);
        assert!(s.frames_skipped >= last.frames_skipped);
        assert!(s.audio_sent >= last.audio_sent);
        assert!(s.audio_skipped >= last.audio_skipped);
        assert!(s.fallbacks >= last.fallbacks);
        assert!(s.bytes_sent >= last.bytes_sent);
        assert!(s.nacks >= last.nacks);
        assert!(s.keyframe_requests >= last.keyframe_requests);
        last = s;
    }
}
