//! The server's counters in Prometheus's text exposition format, for
//! `--metrics ADDR` (served by `pstream_transport::http::serve_metrics`).
//!
//! Written by hand rather than through a metrics crate: the format is a few
//! lines of text and every value already lives in the servers' own atomic
//! counters, so a registry would only copy them. Streams are labelled by the
//! name viewers use, never by a publish key.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pstream_transport::http::HttpStats;
use pstream_transport::rtmp::RtmpServerStats;

use super::live::LiveStreams;
use super::relay::Relays;
use crate::rtmp_out::DestinationState;

/// One metric family: `# HELP`, `# TYPE`, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    /// A sample; `labels` as `name="value"` pairs (values already safe).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The server's own refusal counters (the RTMP server counts the rest).
#[derive(Debug, Default)]
pub(crate) struct Refused {
    /// Publishes closed because of a codec the server does not take.
    pub(crate) codecs: Arc<AtomicU64>,
    /// Publishes of a new stream refused at `--max-streams`.
    pub(crate) streams: Arc<AtomicU64>,
}

/// Every metric, now.
pub(crate) fn render(
    live: &LiveStreams,
    rtmp: &RtmpServerStats,
    http: &HttpStats,
    refused: &Refused,
    relays: &Relays,
) -> String {
    let r = rtmp.snapshot();
    let h = http.snapshot();
    let mut streams = live.all();
    streams.sort_by(|a, b| a.key().cmp(b.key()));
    let live_now = streams.iter().filter(|s| s.is_live()).count() as u64;
    let mut out = String::with_capacity(4096);

    Family::new(
        &mut out,
        "pstream_streams",
        "gauge",
        "Streams listed, by state (ended streams stay listed with EXT-X-ENDLIST for a while).",
    )
    .sample("pstream_streams", &[("state", "live")], live_now)
    .sample(
        "pstream_streams",
        &[("state", "ended")],
        streams.len() as u64 - live_now,
    );
    Family::new(
        &mut out,
        "pstream_publishers",
        "gauge",
        "RTMP publishes live now.",
    )
    .sample("pstream_publishers", &[], r.publishing);
    Family::new(
        &mut out,
        "pstream_viewers",
        "gauge",
        "Player connections open now, by protocol.",
    )
    .sample(
        "pstream_viewers",
        &[("protocol", "hls")],
        h.open_connections,
    );
    Family::new(
        &mut out,
        "pstream_received_bytes_total",
        "counter",
        "Bytes read from publishers, by protocol.",
    )
    .sample(
        "pstream_received_bytes_total",
        &[("protocol", "rtmp")],
        r.bytes_in,
    );
    Family::new(
        &mut out,
        "pstream_sent_bytes_total",
        "counter",
        "Bytes written to players, headers included, by protocol.",
    )
    .sample(
        "pstream_sent_bytes_total",
        &[("protocol", "hls")],
        h.bytes_sent,
    );
    Family::new(
        &mut out,
        "pstream_http_requests_total",
        "counter",
        "HTTP requests answered, by what was asked for.",
    )
    .sample(
        "pstream_http_requests_total",
        &[("kind", "master_playlist")],
        h.master_playlists,
    )
    .sample(
        "pstream_http_requests_total",
        &[("kind", "media_playlist")],
        h.media_playlists,
    )
    .sample(
        "pstream_http_requests_total",
        &[("kind", "segment")],
        h.segments,
    )
    .sample(
        "pstream_http_requests_total",
        &[("kind", "not_found")],
        h.not_found,
    )
    .sample(
        "pstream_http_requests_total",
        &[("kind", "bad_request")],
        h.bad_requests,
    );
    Family::new(
        &mut out,
        "pstream_rtmp_connections_total",
        "counter",
        "RTMP connections accepted.",
    )
    .sample("pstream_rtmp_connections_total", &[], r.accepted);
    Family::new(
        &mut out,
        "pstream_rtmp_connections_open",
        "gauge",
        "RTMP connections open now.",
    )
    .sample("pstream_rtmp_connections_open", &[], r.open);
    Family::new(
        &mut out,
        "pstream_connections_refused_total",
        "counter",
        "Connections refused or closed early, by protocol and reason.",
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "limit")],
        r.refused_limit,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "per_ip")],
        r.refused_per_ip,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "streams")],
        refused.streams.load(Ordering::Relaxed),
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "key")],
        r.refused_publish,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "timeout")],
        r.timeouts,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "protocol")],
        r.protocol_errors,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "rtmp"), ("reason", "codec")],
        refused.codecs.load(Ordering::Relaxed),
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "http"), ("reason", "limit")],
        h.refused_connections,
    )
    .sample(
        "pstream_connections_refused_total",
        &[("protocol", "http"), ("reason", "timeout")],
        h.timed_out_connections,
    );

    let mut segments = Family::new(
        &mut out,
        "pstream_segments_total",
        "counter",
        "HLS segments cut, by stream and variant.",
    );
    for s in &streams {
        for v in s.variants() {
            let labels = [("stream", s.key()), ("variant", v.name())];
            segments.sample(
                "pstream_segments_total",
                &labels,
                v.segments.load(Ordering::Relaxed),
            );
        }
    }
    let mut frames = Family::new(
        &mut out,
        "pstream_frames_total",
        "counter",
        "Video frames written to each variant's segmenter.",
    );
    for s in &streams {
        for v in s.variants() {
            let labels = [("stream", s.key()), ("variant", v.name())];
            frames.sample(
                "pstream_frames_total",
                &labels,
                v.frames.load(Ordering::Relaxed),
            );
        }
    }
    let mut dropped = Family::new(
        &mut out,
        "pstream_rendition_dropped_total",
        "counter",
        "Units dropped on the way to a variant because it fell behind.",
    );
    for s in &streams {
        for v in s.variants() {
            let labels = [("stream", s.key()), ("variant", v.name())];
            dropped.sample(
                "pstream_rendition_dropped_total",
                &labels,
                v.dropped.load(Ordering::Relaxed),
            );
        }
    }
    relay_families(&mut out, relays);
    out
}

/// The WebRTC (WHEP) families, when WebRTC is on; `unsent`: datagrams
/// the socket would not take.
pub(crate) fn webrtc_families(out: &mut String, w: &pstream_webrtc::WhepStats, unsent: u64) {
    Family::new(
        out,
        "pstream_webrtc_sessions",
        "gauge",
        "WebRTC viewer sessions open.",
    )
    .sample("pstream_webrtc_sessions", &[], w.sessions as u64);
    type Figure = fn(&pstream_webrtc::WhepStats) -> u64;
    let totals: [(&str, &str, Figure); 5] = [
        (
            "pstream_webrtc_connected_total",
            "WebRTC sessions that connected (ICE and DTLS done).",
            |w| w.connected,
        ),
        (
            "pstream_webrtc_sent_bytes_total",
            "Bytes of the datagrams sent to WebRTC viewers (media, RTCP, STUN, DTLS).",
            |w| w.bytes_sent,
        ),
        (
            "pstream_webrtc_nacks_received_total",
            "NACKs WebRTC viewers sent (each names packets to resend).",
            |w| w.nacks,
        ),
        (
            "pstream_webrtc_keyframe_requests_received_total",
            "Key frame requests (PLI, FIR) WebRTC viewers sent.",
            |w| w.keyframe_requests,
        ),
        (
            "pstream_webrtc_fallbacks_total",
            "Source viewers served a rendition because they did not offer the source's H.264 profile.",
            |w| w.fallbacks,
        ),
    ];
    for (name, help, figure) in totals {
        Family::new(out, name, "counter", help).sample(name, &[], figure(w));
    }
    let name = "pstream_webrtc_offers_total";
    Family::new(out, name, "counter", "WHEP offers, by result.")
        .sample(name, &[("result", "accepted")], w.offers)
        .sample(name, &[("result", "refused")], w.refused);
    let name = "pstream_webrtc_sent_total";
    Family::new(
        out,
        name,
        "counter",
        "Video frames and Opus packets sent to WebRTC viewers.",
    )
    .sample(name, &[("kind", "video")], w.frames_sent)
    .sample(name, &[("kind", "audio")], w.audio_sent);
    let name = "pstream_webrtc_skipped_total";
    Family::new(
        out,
        name,
        "counter",
        "Video frames and Opus packets a WebRTC viewer skipped (waiting for a key frame, behind, not connected).",
    )
    .sample(name, &[("kind", "video")], w.frames_skipped)
    .sample(name, &[("kind", "audio")], w.audio_skipped);
    let name = "pstream_webrtc_dropped_datagrams_total";
    Family::new(
        out,
        name,
        "counter",
        "Datagrams dropped on the WebRTC port: received for no session (or malformed), or not taken by the socket.",
    )
    .sample(name, &[("reason", "unmatched")], w.dropped_datagrams)
    .sample(name, &[("reason", "send_buffer")], unsent);
    let name = "pstream_webrtc_timed_out_total";
    Family::new(
        out,
        name,
        "counter",
        "WebRTC sessions closed after receiving nothing for the idle timeout.",
    )
    .sample(name, &[], w.timed_out);
}

/// Each relay's state (one sample per state, 1 for the one it is in),
/// bytes sent, tags dropped, reconnects and errors; labelled by stream,
/// variant and URL with the stream key masked.
fn relay_families(out: &mut String, relays: &Relays) {
    let list = relays.snapshot();
    const STATES: [DestinationState; 6] = [
        DestinationState::Idle,
        DestinationState::Connecting,
        DestinationState::Live,
        DestinationState::Retrying,
        DestinationState::Failed,
        DestinationState::Done,
    ];
    let mut state = Family::new(
        out,
        "pstream_relay_state",
        "gauge",
        "Each relay's state: 1 for the one it is in.",
    );
    for r in &list {
        for s in STATES {
            let labels = [
                ("stream", r.stream.as_str()),
                ("variant", r.rendition.as_str()),
                ("destination", r.url.as_str()),
                ("state", s.word()),
            ];
            state.sample("pstream_relay_state", &labels, u64::from(r.state == s));
        }
    }
    type Figure = fn(&super::relay::RelaySnapshot) -> u64;
    let counters: [(&str, &str, Figure); 4] = [
        (
            "pstream_relay_sent_bytes_total",
            "Bytes of media each relay sent to its platform.",
            |r| r.bytes,
        ),
        (
            "pstream_relay_dropped_total",
            "Tags each relay dropped: its queue full (a slow platform), disconnected, or waiting for a keyframe.",
            |r| r.dropped,
        ),
        (
            "pstream_relay_reconnects_total",
            "Connection attempts each relay made after its first.",
            |r| r.reconnects,
        ),
        (
            "pstream_relay_errors_total",
            "Connections of each relay that failed (refused, reset, timed out, garbage from the platform).",
            |r| r.errors,
        ),
    ];
    for (name, help, figure) in counters {
        let mut f = Family::new(out, name, "counter", help);
        for r in &list {
            let labels = [
                ("stream", r.stream.as_str()),
                ("variant", r.rendition.as_str()),
                ("destination", r.url.as_str()),
            ];
            f.sample(name, &labels, figure(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_samples_parse() {
        let text = render(
            &LiveStreams::new(),
            &RtmpServerStats::default(),
            &HttpStats::new(),
            &Refused {
                codecs: Arc::new(AtomicU64::new(3)),
                streams: Arc::new(AtomicU64::new(2)),
            },
            &Relays::none(),
        );
        let mut families = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families += 1;
                let kind = rest.split(' ').nth(1).unwrap_or_default();
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
            } else if !line.starts_with("# HELP ") {
                let (name, value) = line.rsplit_once(' ').expect("sample");
                assert!(name.starts_with("pstream_"), "{line}");
                assert!(value.parse::<u64>().is_ok(), "{line}");
            }
        }
        assert_eq!(families, 17, "{text}");
        let mut text = text;
        let w = pstream_webrtc::WhepStats {
            sessions: 2,
            nacks: 5,
            ..Default::default()
        };
        webrtc_families(&mut text, &w, 1);
        assert!(text.contains("pstream_webrtc_sessions 2\n"), "{text}");
        assert!(text.contains("pstream_webrtc_nacks_received_total 5\n"));
        assert!(text.contains("pstream_webrtc_dropped_datagrams_total{reason=\"send_buffer\"} 1\n"));
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, 17 + 11, "{text}");
        assert!(text
            .contains("pstream_connections_refused_total{protocol=\"rtmp\",reason=\"codec\"} 3\n"));
        assert!(text.contains("pstream_streams{state=\"live\"} 0\n"));
        assert!(text.contains(
            "pstream_connections_refused_total{protocol=\"rtmp\",reason=\"streams\"} 2\n"
        ));
        assert!(text.contains(
            "pstream_connections_refused_total{protocol=\"rtmp\",reason=\"per_ip\"} 0\n"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
