//! The server's stats line and summary: streams, publishers, RTMP
//! connections and refusals, viewers, and per live stream each variant's
//! frame rate and drops.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pstream_transport::http::HttpStats;
use pstream_transport::rtmp::RtmpServerStats;

use super::live::LiveStreams;

/// The state a stats line needs between calls: when the last one was, the
/// request counts of the last minute and each variant's frame count.
#[derive(Debug, Default)]
pub(crate) struct StatsLine {
    last: Option<Instant>,
    /// (when, requests so far), for requests per minute.
    requests: VecDeque<(Instant, u64)>,
    /// Frames per variant at the last line, by "key/variant".
    frames: HashMap<String, u64>,
}

impl StatsLine {
    /// The line for the time since the last call.
    pub(crate) fn render(
        &mut self,
        live: &LiveStreams,
        rtmp: &RtmpServerStats,
        http: &HttpStats,
        unknown_codecs: &AtomicU64,
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
        let mut s = format!(
            "streams {} | publishers {} | rtmp conns {} (refused: keys {}, limit {}, timeouts {}, bad {}, codec {}) | viewers {:.0} req/min, {} open",
            streams.len(),
            r.publishing,
            r.open,
            r.refused_publish,
            r.refused_limit,
            r.timeouts,
            r.protocol_errors,
            unknown_codecs.load(Ordering::Relaxed),
            per_min,
            h.open_connections,
        );
        for stream in streams.iter().filter(|s| s.is_live()) {
            s.push_str(&format!(" | {}:", stream.key()));
            for v in stream.variants() {
                let id = format!("{}/{}", stream.key(), v.name());
                let frames = v.frames.load(Ordering::Relaxed);
                let before = self.frames.insert(id, frames).unwrap_or(frames);
                let fps = frames.saturating_sub(before) as f64 / dt;
                s.push_str(&format!(
                    " {} {fps:.1} fps {} dropped",
                    v.name(),
                    v.dropped.load(Ordering::Relaxed)
                ));
            }
        }
        // Streams evicted since the last line need no entry.
        self.frames.retain(|id, _| {
            id.split_once('/')
                .is_some_and(|(key, _)| streams.iter().any(|s| s.key() == key))
        });
        s
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
) -> String {
    let r = rtmp.snapshot();
    let h = http.snapshot();
    format!(
        "{:.0} s | streams {} | rtmp conns {} (refused: keys {}, limit {}, timeouts {}, bad {}, codec {}) | http requests {} (playlists {}, segments {}, not found {}) {:.1} MB sent",
        elapsed.as_secs_f64(),
        live.all().len(),
        r.accepted,
        r.refused_publish,
        r.refused_limit,
        r.timeouts,
        r.protocol_errors,
        unknown_codecs.load(Ordering::Relaxed),
        h.requests,
        h.master_playlists + h.media_playlists,
        h.segments,
        h.not_found,
        h.bytes_sent as f64 / 1e6,
    )
}
