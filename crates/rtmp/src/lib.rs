//! Sans-IO RTMP: the protocol, without sockets, threads or clocks.
//!
//! Bytes go in through `handle_input`, bytes to send come out of
//! `poll_transmit` and what happened comes out of `poll_event`; the caller
//! owns the socket (pstream-transport's blocking client and tokio listener
//! are such callers, and the tests drive sessions against each other and
//! against rml_rtmp's own).
//!
//! - [`session`]: [`PublishSession`], the client side of a publish (what
//!   `pstream push` speaks to YouTube, Twitch or nginx-rtmp).
//! - [`server`]: [`ServerSession`], one publisher's connection as `pstream
//!   serve` answers it, with its [`ServerEvent`]s.
//! - [`chunk`]: a bounded chunk stream reader for untrusted peers; the
//!   handshake and the chunk writer are rml_rtmp's.
//! - [`amf`]: a bounded AMF0 command reader and an encoder.
//! - [`url`]: publish URLs split into app and key, and key redaction for logs.

pub mod amf;
pub mod chunk;
pub mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod server;
pub mod session;
pub mod url;

pub use error::{SessionError, UrlError};
pub use server::{
    is_safe_name, stream_key, MediaKind, MediaMessage, ServerError, ServerEvent, ServerSession,
    MAX_NAME_LEN,
};
pub use session::{PublishSession, SessionEvent, CHUNK_SIZE, WINDOW_ACK_SIZE};
pub use url::{redact, RtmpUrl, RTMPS_PORT, RTMP_PORT};
