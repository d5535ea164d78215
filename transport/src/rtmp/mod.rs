//! RTMP publishing: URL parsing, a sans-IO session over rml_rtmp's chunk and
//! handshake layers, and a thin blocking TCP driver; and the server side for
//! `pstream serve`: a sans-IO [`ServerSession`] over bounded chunk and AMF0
//! readers, driven by [`serve_rtmp`] on tokio.

pub mod amf;
pub mod chunk;
mod client;
mod listener;
pub mod server;
mod session;
mod url;

pub use client::RtmpConnection;
pub use listener::{
    serve_rtmp, IngestHandler, IngestSink, PublishRefusal, RtmpServerConfig, RtmpServerSnapshot,
    RtmpServerStats,
};
pub use server::{stream_key, MediaKind, MediaMessage, ServerError, ServerEvent, ServerSession};
pub use session::{PublishSession, SessionEvent, CHUNK_SIZE, WINDOW_ACK_SIZE};
pub use url::{redact, RtmpUrl, RTMPS_PORT, RTMP_PORT};

use thiserror::Error;

/// What went wrong talking RTMP.
#[derive(Debug, Error)]
pub enum RtmpError {
    /// The URL cannot be used.
    #[error("bad RTMP URL {url}: {why}")]
    Url {
        /// The URL, key hidden.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The host name does not resolve.
    #[error("{server}: cannot resolve host: {source}")]
    Resolve {
        /// host:port.
        server: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// TCP (or TLS) connect or I/O failed.
    #[error("{server}: {what}: {source}")]
    Io {
        /// host:port.
        server: String,
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("{server}: server closed the connection{detail}")]
    Closed {
        /// host:port.
        server: String,
        /// Extra detail (the status code), with a leading separator.
        detail: String,
    },
    /// The server refused the app or key.
    #[error("{server}: publish rejected: {code}{description}")]
    Rejected {
        /// host:port.
        server: String,
        /// The status code.
        code: String,
        /// The description, with a leading separator, if any.
        description: String,
    },
    /// The server did not get us live in time.
    #[error("{server}: no answer to {stage} within {secs} s")]
    Timeout {
        /// host:port.
        server: String,
        /// What we were waiting for.
        stage: &'static str,
        /// How long we waited.
        secs: u64,
    },
    /// The server broke the protocol (bad handshake, bad chunk).
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    /// TLS could not be set up.
    #[error("{server}: TLS: {why}")]
    Tls {
        /// host:port.
        server: String,
        /// What failed.
        why: String,
    },
}

impl RtmpError {
    /// True when trying again later may succeed (not for bad URLs or refused keys).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            RtmpError::Url { .. } | RtmpError::Rejected { .. } | RtmpError::Tls { .. }
        )
    }
}
