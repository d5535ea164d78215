//! The server's stats line and summary: streams, publishers, RTMP
//! connections and refusals, viewers, and per live stream each variant's
//! frame rate and drops.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pstream_transport::http::HttpStats;
use pstream_transport::rtmp::RtmpServerStats;

use super::live::LiveStreams;
use super::relay::Relays;
use crate::stats::{kbps, per_second, StatsLine};

/// The state a stats line needs between calls: when the last one was, the
/// request counts of the last minute and each variant's frame count.
#[derive(Debug, Default)]
pub(crate) struct ServeStats {
    last: Option<Instant>,
    /// (when, requests so far), for requests per minute.
    requests: VecDeque<(Instant, u64)>,
    /// Frames per variant at the last line, by "key/variant".
    frames: HashMap<String, u64>,
    /// Bytes each relay had sent at the last line.
    relay_bytes: Vec<u64>,
}

impl ServeStats {
    /// The line for the time since the last call.
    pub(crate) fn render(
        &mut self,
        live: &LiveStreams,
        rtmp: &RtmpServerStats,
        http: &HttpStats,
        unknown_codecs: &AtomicU64,
        refused_streams: &AtomicU64,
        relays: &Relays,
    ) -> String {
        let now = Instant::now();
        let dt = self
            .last
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64().max(0.001));
        self.last = Some(now);
        let h = http.snapshot();
        self.requests.push_back((now, h.requests));
        while self
            .requests
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.requests.pop_front();
        }
        let per_min = match self.requests.front() {
            Some((t, first)) if now.duration_since(*t) >= Duration::from_secs(1) => {
                (h.requests - first) as f64 * 60.0 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let r = rtmp.snapshot();
        let mut streams = live.all();
        streams.sort_by(|a, b| a.key().cmp(b.key()));
        let mut line = StatsLine::new();
        line.section("streams").word(streams.len());
        line.section("publishers").word(r.publishing);
        line.section("rtmp conns").word(r.open).word(format_args!(
            "(refused: keys {}, streams {}, limit {}, per-ip {}, timeouts {}, bad {}, codec {})",
            r.refused_publish,
            refused_streams.load(Ordering::Relaxed),
            r.refused_limit,
            r.refused_per_ip,
            r.timeouts,
            r.protocol_errors,
            unknown_codecs.load(Ordering::Relaxed),
        ));
        line.section("viewers")
            .rate(per_min, 0, "req/min,")
            .word(format_args!("{} open", h.open_connections));
        for stream in streams.iter().filter(|s| s.is_live()) {
            line.section(format_args!("{}:", stream.key()));
            for v in stream.variants() {
                let id = format!("{}/{}", stream.key(), v.name());
                let frames = v.frames.load(Ordering::Relaxed);
                let before = self.frames.insert(id, frames).unwrap_or(frames);
                line.word(v.name())
                    .rate(per_second(frames.saturating_sub(before), dt), 1, "fps")
                    .word(format_args!(
                        "{} dropped",
                        v.dropped.load(Ordering::Relaxed)
                    ));
            }
        }
        // Each relay: state, rate, drops (queue full, disconnected), reconnects, errors.
        let now_ms = relays.now_ms();
        self.relay_bytes.resize(relays.list().len(), 0);
        for ((r, s), prev) in relays
            .list()
            .iter()
            .zip(relays.snapshot())
            .zip(self.relay_bytes.iter_mut())
        {
            line.section(format_args!("relay {}", s.label));
            r.state_words(&mut line, now_ms);
            line.rate(kbps(s.bytes.saturating_sub(*prev), dt), 0, "kbit/s")
                .word(format_args!("{} dropped", s.dropped))
                .count("reconnects", s.reconnects)
                .count("errors", s.errors);
            *prev = s.bytes;
        }
        // Streams evicted since the last line need no entry.
        self.frames.retain(|id, _| {
            id.split_once('/')
                .is_some_and(|(key, _)| streams.iter().any(|s| s.key() == key))
        });
        line.to_string()
    }
}

/// Totals over `elapsed`: streams listed now, publishes and refusals,
/// and what players fetched.
pub(crate) fn summary(
    elapsed: Duration,
    live: &LiveStreams,
    rtmp: &RtmpServerStats,
    http: &HttpStats,
    unknown_codecs: &AtomicU64,
    refused_streams: &AtomicU64,
) -> String {
    let r = rtmp.snapshot();
    let h = http.snapshot();
    let mut line = StatsLine::new();
    line.rate(elapsed.as_secs_f64(), 0, "s");
    line.section("streams").word(live.all().len());
    line.section("rtmp conns")
        .word(r.accepted)
        .word(format_args!(
            "(refused: keys {}, streams {}, limit {}, per-ip {}, timeouts {}, bad {}, codec {})",
            r.refused_publish,
            refused_streams.load(Ordering::Relaxed),
            r.refused_limit,
            r.refused_per_ip,
            r.timeouts,
            r.protocol_errors,
            unknown_codecs.load(Ordering::Relaxed),
        ));
    line.section("http requests")
        .word(h.requests)
        .word(format_args!(
            "(playlists {}, segments {}, not found {})",
            h.master_playlists + h.media_playlists,
            h.segments,
            h.not_found
        ))
        .rate(h.bytes_sent as f64 / 1e6, 1, "MB sent");
    line.to_string()
}
