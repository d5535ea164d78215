//! HLS over HTTP/1.1: the server `pstream serve` answers players with;
//! also WHEP offers and the viewer page (`whep.rs`), and WHIP publishers (`whip.rs`).
//!
//! URL layout: `/stream/<key>.m3u8` (master playlist),
//! `/stream/<key>/<variant>.m3u8` (media playlist) and
//! `/stream/<key>/<variant>/<session>-<sequence>.ts` (segment). What is
//! served comes from an [`HlsCatalog`]; this module only routes, labels,
//! guards and answers for caches.
//!
//! # Caching (for browsers, CDNs and caching proxies)
//! - Segments: `public, max-age=86400, immutable` (a segment URL never names
//!   other bytes), `Accept-Ranges: bytes` and single byte ranges (206 with
//!   `Content-Range`, 416 with `Content-Range: bytes */LEN` when nothing of
//!   it is in the segment; several ranges, or a malformed one, get the whole
//!   segment), `If-Range`.
//! - Playlists: `public, max-age=N` with N half the target segment duration
//!   in whole seconds (rounded down), so a cache is never a whole segment
//!   behind.
//! - Both: a strong `ETag` (playlists: a hash of the bytes; segments: of the
//!   URL and length, as the bytes never change) and `Last-Modified`;
//!   `If-None-Match`, or else `If-Modified-Since`, answers 304; HEAD answers
//!   as GET would, without the body.

mod metrics;
mod respond;
mod route;
mod server;
mod stats;
mod whep;
mod whip;

pub use metrics::{serve_metrics, RenderMetrics, METRICS_TYPE};
pub use respond::{PLAYLIST_TYPE, SEGMENT_CACHE, SEGMENT_TYPE};
pub use route::{is_safe_name, MAX_NAME_LEN, MAX_PATH_LEN};
pub use server::{serve_http, serve_http_with, HttpLimits};
pub use stats::{HttpStats, HttpStatsSnapshot};
pub use whep::{WhepAnswer, MAX_OFFER_BODY};
pub use whip::WhipAnswer;

use std::time::{Duration, Instant};

/// A playlist or segment as the catalog has it, with what HTTP caching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The bytes to send.
    pub body: bytes::Bytes,
    /// When it last changed (a segment: when it was closed), by the
    /// monotonic clock; None if not known (no `Last-Modified` then).
    pub modified: Option<Instant>,
    /// How often a playlist changes (its target segment duration): caches
    /// are told to keep it for half of that. Not used for segments, which
    /// never change.
    pub refresh: Duration,
}

/// What the HTTP server serves from; implemented by `pstream serve` over its HLS segmenters.
pub trait HlsCatalog: Send + Sync + 'static {
    /// The master playlist of stream `key`, or None if no such stream.
    fn master_playlist(&self, key: &str) -> Option<Resource>;
    /// The media playlist of `variant` ("source" or a rendition name) of stream `key`.
    fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource>;
    /// Segment `name` ("<session>-<sequence>.ts") of `variant` of stream `key`.
    ///
    /// A segment name must never name other bytes later (segments are
    /// served as immutable, with an ETag made from the URL and length).
    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource>;

    /// A WHEP offer (`POST /stream/<key>/whep`) for stream `key`; catalogs
    /// without WebRTC answer [`WhepAnswer::NotFound`].
    fn whep_offer(&self, _key: &str, _sdp: &str) -> WhepAnswer {
        WhepAnswer::NotFound
    }

    /// A WHEP offer for rendition `rendition` of stream `key`
    /// (`POST /stream/<key>/<rendition>/whep`).
    fn whep_offer_rendition(&self, _key: &str, _rendition: &str, _sdp: &str) -> WhepAnswer {
        WhepAnswer::NotFound
    }

    /// Ends WHEP session `id` of stream `key` (`DELETE` of its URL); false
    /// if there is no such session.
    fn whep_delete(&self, _key: &str, _id: &str) -> bool {
        false
    }

    /// A WHIP publisher's offer (`POST /whip`) with its bearer `token` (a
    /// publish key) from `peer`; catalogs without WHIP answer
    /// [`WhipAnswer::NotFound`].
    fn whip_offer(&self, _token: &str, _sdp: &str, _peer: std::net::SocketAddr) -> WhipAnswer {
        WhipAnswer::NotFound
    }

    /// Ends WHIP session `id` (`DELETE /whip/<id>`); false if there is none.
    fn whip_delete(&self, _id: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
