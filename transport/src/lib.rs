//! Sockets and servers: the I/O under pstream's sans-IO protocol crates.
//!
//! - [`udp`]: [`UdpEndpoint`], the bound socket RTP and RTCP travel on;
//!   [`addr`]: peer resolution and the port layout (+0..+7).
//! - [`http`]: the hyper server answering HLS players from an
//!   [`http::HlsCatalog`].
//! - [`rtmp`]: the tokio RTMP listener of `pstream serve` and the blocking
//!   RTMP(S) client connection of `pstream push` (TLS by rustls), each
//!   driving a session of pstream-rtmp, whose protocol types it re-exports.
//!
//! Protocol logic (RTP sessions, RTMP sessions, HLS playlists) lives in the
//! protocol and container crates; this crate only moves bytes.

pub mod addr;
pub mod http;
pub mod rtmp;
pub mod udp;

pub use addr::{resolve_peer, unspecified_for, PortLayout};
pub use udp::{UdpEndpoint, UdpError};
