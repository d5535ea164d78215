//! HLS over HTTP/1.1: the server `pstream serve` answers players with.
//!
//! URL layout: `/stream/<key>.m3u8` (master playlist),
//! `/stream/<key>/<variant>.m3u8` (media playlist) and
//! `/stream/<key>/<variant>/<sequence>.ts` (segment). What is served comes
//! from an [`HlsCatalog`]; this module only routes, labels and guards.

mod metrics;
mod respond;
mod route;
mod server;
mod stats;

pub use metrics::{serve_metrics, RenderMetrics, METRICS_TYPE};
pub use respond::{PLAYLIST_CACHE, PLAYLIST_TYPE, SEGMENT_CACHE, SEGMENT_TYPE};
pub use route::{is_safe_name, MAX_NAME_LEN, MAX_PATH_LEN};
pub use server::{serve_http, serve_http_with, HttpLimits};
pub use stats::{HttpStats, HttpStatsSnapshot};

/// What the HTTP server serves from; implemented by `pstream serve` over its HLS segmenters.
pub trait HlsCatalog: Send + Sync + 'static {
    /// The master playlist of stream `key`, or None if no such stream.
    fn master_playlist(&self, key: &str) -> Option<bytes::Bytes>;
    /// The media playlist of `variant` ("source" or a rendition name) of stream `key`.
    fn media_playlist(&self, key: &str, variant: &str) -> Option<bytes::Bytes>;
    /// Segment `name` ("<sequence>.ts") of `variant` of stream `key`.
    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<bytes::Bytes>;
}

#[cfg(test)]
mod tests;
