//! Network transports for pstream.
//!
//! Protocol logic lives in the sans-IO crates; this crate only moves bytes,
//! except [`rtmp`], whose sans-IO publishing session sits beside its driver.

pub mod addr;
pub mod http;
pub mod rtmp;
pub mod udp;

pub use addr::{resolve_peer, unspecified_for, PortLayout};
pub use udp::{UdpEndpoint, UdpError};
