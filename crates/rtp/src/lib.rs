//! Sans-IO RTP and RTCP: payload formats, sessions, jitter buffer, lip sync, SDP.
//!
//! - [`payload`]: the payloader and depayloader traits, the unit they hand
//!   out and their errors, with one leaf per codec ([`h264`], [`opus`],
//!   [`jpeg`]) and a switch by codec ([`Packetizer`], [`Depacketizer`]).
//! - [`packet`], [`rtcp`]: the wire formats; [`seq`], [`jitterbuf`]: ordering.
//! - [`peer`]: which addresses a session takes packets from.
//! - [`rate`]: the video bitrate that follows the path (`--bitrate auto`).
//! - [`rtx`]: loss repair by NACK and retransmission (RFC 4585, RFC 4588).
//! - [`sender`], [`receiver`]: the sessions, built on all of the above.
//! - [`srtp`]: SRTP and SRTCP protection (RFC 3711, RFC 7714).
//! - [`lipsync`], [`frame_rate`], [`sdp`]: what a player around them needs.
//!
//! Nothing here touches a socket, a thread or the clock: every call that
//! depends on time takes `now: Instant`, and packets to send are handed back
//! by `poll_transmit`. See [`sender::RtpSender`] and [`receiver::RtpReceiver`].

pub mod frame_rate;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(test)]
mod interop_tests;
pub mod jitterbuf;
pub mod lipsync;
pub mod packet;
pub mod payload;
pub mod peer;
pub mod rate;
pub mod receiver;
pub mod rtcp;
pub mod rtx;
pub mod sdp;
pub mod sender;
pub mod seq;
pub mod srtp;

// The codec leaves keep the paths they had before `payload` gathered them.
pub use payload::{h264, jpeg, opus};

pub use h264::{H264Depacketizer, H264Payloader};
pub use jpeg::{JpegDepacketizer, JpegPayloader};
pub use opus::{OpusDepacketizer, OpusPayloader};
pub use packet::{RtpError, RtpHeader, RtpPacket};
pub use payload::{
    DepacketizedUnit, Depacketizer, DepayError, DepayErrorKind, Depayloader, JpegError,
    JpegUnsupported, Packetizer, Payloader, PayloaderError, PT_H264, PT_JPEG, PT_OPUS,
};
pub use peer::PeerFilter;
pub use receiver::{ReceivedUnit, ReceiverConfig, RtpReceiver};
pub use rtcp::{RtcpError, RtcpPacket};
pub use sender::{RtpSender, SenderConfig, SenderEvent, Transmit, TransmitKind};
