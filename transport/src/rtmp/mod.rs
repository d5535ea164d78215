//! RTMP drivers: the blocking client connection [`RtmpConnection`] (TCP or
//! TLS) under pstream-rtmp's sans-IO [`PublishSession`], and the tokio
//! listener [`serve_rtmp`] under its [`ServerSession`] for `pstream serve`.
//!
//! The protocol itself (sessions, chunks, AMF0, URLs) is re-exported here
//! from pstream-rtmp, so `pstream_transport::rtmp::...` names everything
//! RTMP.

mod client;
mod listener;

pub use client::RtmpConnection;
pub use listener::{
    serve_rtmp, IngestHandler, IngestSink, PublishRefusal, RtmpServerConfig, RtmpServerSnapshot,
    RtmpServerStats,
};
pub use pstream_rtmp::{amf, chunk, server};
pub use pstream_rtmp::{
    mask_key, redact, stream_key, MediaKind, MediaMessage, PublishSession, RtmpUrl, ServerError,
    ServerEvent, ServerSession, SessionError, SessionEvent, UrlError, CHUNK_SIZE, RTMPS_PORT,
    RTMP_PORT, WINDOW_ACK_SIZE,
};

use thiserror::Error;

/// What went wrong publishing over RTMP: the URL, the network, TLS, the
/// server's answer or the protocol.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The URL cannot be used.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The host name does not resolve.
    #[error("{server}: cannot resolve host")]
    Resolve {
        /// host:port.
        server: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// TCP (or TLS) connect or I/O failed.
    #[error("{server}: {what}")]
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
    #[error("RTMP protocol error")]
    Protocol(#[from] SessionError),
    /// TLS could not be set up.
    #[error("{server}: TLS: {what}")]
    Tls {
        /// host:port.
        server: String,
        /// What failed ("cannot read SSL_CERT_FILE /x.pem", "bad server name").
        what: String,
        /// Why.
        #[source]
        source: TlsCause,
    },
}

/// Why TLS could not be set up: a certificate file that cannot be read, or
/// rustls refusing the configuration or the server name.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsCause {
    /// Reading or parsing the PEM file failed.
    #[error(transparent)]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// rustls refused.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The host is not a valid server name.
    #[error(transparent)]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
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
