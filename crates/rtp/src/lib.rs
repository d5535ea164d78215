//! Sans-IO RTP and RTCP: payloaders, depayloaders, sessions, jitter buffer.
//!
//! Nothing here touches a socket, a thread or the clock: every call that
//! depends on time takes `now: Instant`, and packets to send are handed back
//! by `poll_transmit`. See [`sender::RtpSender`] and [`receiver::RtpReceiver`].

pub mod depay;
pub mod frame_rate;
pub mod h264;
#[cfg(test)]
mod interop_tests;
pub mod jitterbuf;
pub mod jpeg;
pub mod lipsync;
pub mod opus;
pub mod packet;
pub mod receiver;
pub mod rtcp;
pub mod sdp;
pub mod sender;
pub mod seq;

pub use depay::{DepacketizedUnit, Depacketizer, DepayError, DepayErrorKind};
pub use h264::{H264Depacketizer, H264Payloader, PayloaderError};
pub use jpeg::{JpegDepacketizer, JpegError, JpegPayloader};
pub use opus::{OpusDepacketizer, OpusPayloader};
pub use packet::{RtpError, RtpHeader, RtpPacket};
pub use receiver::{ReceivedUnit, ReceiverConfig, RtpReceiver};
pub use rtcp::{RtcpError, RtcpPacket};
pub use sender::{RtpSender, SenderConfig, SenderEvent, Transmit, TransmitKind};
