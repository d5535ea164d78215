//! Counters the HTTP server keeps for the stats line.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the stats line reads (requests total, by kind, 404s, bytes sent,
/// open connections). Shared between the server and its reader.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    master_playlists: AtomicU64,
    media_playlists: AtomicU64,
    segments: AtomicU64,
    not_modified: AtomicU64,
    not_found: AtomicU64,
    bad_requests: AtomicU64,
    bytes_sent: AtomicU64,
    open_connections: AtomicU64,
    refused_connections: AtomicU64,
    timed_out_connections: AtomicU64,
}

/// A copy of [`HttpStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStatsSnapshot {
    /// Requests answered, whatever the answer.
    pub requests: u64,
    /// Master playlists served.
    pub master_playlists: u64,
    /// Media playlists served.
    pub media_playlists: u64,
    /// Segments served (whole or a byte range).
    pub segments: u64,
    /// 304 answers to conditional requests (playlists and segments).
    pub not_modified: u64,
    /// 404 answers (unknown stream, variant, segment or path).
    pub not_found: u64,
    /// Requests refused as malformed (400, 405, 414, 416).
    pub bad_requests: u64,
    /// Bytes written to clients, headers included.
    pub bytes_sent: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Connections closed at once because a connection limit was reached.
    pub refused_connections: u64,
    /// Connections closed for being idle or too slow.
    pub timed_out_connections: u64,
}

/// What kind of answer a request got, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Master,
    Media,
    Segment,
    NotModified,
    NotFound,
    Refused,
    /// OPTIONS preflight and other answers counted only in the total.
    Other,
}

impl HttpStats {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> HttpStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStatsSnapshot {
            requests: get(&self.requests),
            master_playlists: get(&self.master_playlists),
            media_playlists: get(&self.media_playlists),
            segments: get(&self.segments),
            not_modified: get(&self.not_modified),
            not_found: get(&self.not_found),
            bad_requests: get(&self.bad_requests),
            bytes_sent: get(&self.bytes_sent),
            open_connections: get(&self.open_connections),
            refused_connections: get(&self.refused_connections),
            timed_out_connections: get(&self.timed_out_connections),
        }
    }

    pub(crate) fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    pub(crate) fn count_answer(&self, answer: Answer) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match answer {
            Answer::Master => &self.master_playlists,
            Answer::Media => &self.media_playlists,
            Answer::Segment => &self.segments,
            Answer::NotModified => &self.not_modified,
            Answer::NotFound => &self.not_found,
            Answer::Refused => &self.bad_requests,
            Answer::Other => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_timed_out(&self) {
        self.timed_out_connections.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_count_in_total_and_by_kind() {
        let stats = HttpStats::new();
        stats.count_answer(Answer::Segment);
        stats.count_answer(Answer::Segment);
        stats.count_answer(Answer::NotFound);
        stats.count_answer(Answer::Other);
        stats.connection_opened();
        stats.connection_opened();
        stats.connection_closed();
        stats.add_bytes_sent(100);
        let s = stats.snapshot();
        assert_eq!(s.requests, 4);
        assert_eq!(s.segments, 2);
        assert_eq!(s.not_found, 1);
        assert_eq!(s.master_playlists, 0);
        assert_eq!(s.open_connections, 1);
        assert_eq!(s.bytes_sent, 100);
    }
}
