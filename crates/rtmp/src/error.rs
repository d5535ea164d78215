//! Errors of the client side: a publish URL that cannot be used, and a
//! publishing session that cannot go on.

use rml_rtmp::chunk_io::ChunkSerializationError;
use rml_rtmp::handshake::HandshakeError;
use rml_rtmp::messages::MessageSerializationError;
use thiserror::Error;

use crate::amf::AmfError;
use crate::chunk::ChunkError;

/// A publish URL that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("bad RTMP URL {url}: {why}")]
#[non_exhaustive]
pub struct UrlError {
    /// The URL, key hidden.
    pub url: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Why a [`PublishSession`](crate::PublishSession) cannot go on: the
/// connection is unusable (the server broke the protocol, or a message could
/// not be written).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Bytes were fed before [`PublishSession::start`](crate::PublishSession::start).
    #[error("input before start")]
    NotStarted,
    /// The handshake failed (bad bytes from the server, or ours could not be made).
    #[error("handshake")]
    Handshake(#[source] HandshakeError),
    /// A message could not be encoded.
    #[error("message")]
    Message(#[source] MessageSerializationError),
    /// A message could not be cut into chunks.
    #[error("chunking")]
    Chunking(#[source] ChunkSerializationError),
    /// The server's chunk stream broke the protocol or a limit.
    #[error("bad chunk from server")]
    BadChunk(#[source] ChunkError),
    /// The server asked for a chunk size that cannot be used.
    #[error("server chunk size")]
    ServerChunkSize(#[source] ChunkError),
    /// A protocol control message too short to read.
    #[error("server sent a {what} message of {len} bytes")]
    ShortControl {
        /// Which message ("set chunk size").
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A command from the server broke an AMF0 limit (nesting, value count).
    #[error("command from server")]
    CommandOverLimit(#[source] AmfError),
    /// A reply the session depends on is malformed (e.g. a `_result` or
    /// `onStatus` of fewer than three values).
    #[error("server sent a malformed {command}: {why}")]
    BadReply {
        /// The command name.
        command: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `createStream` was answered without a usable stream id.
    #[error("createStream answered without a stream id")]
    NoStreamId,
}
