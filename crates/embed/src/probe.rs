//! A per-picture timing hook for the video path of `send` and `recv`, what
//! `pstream bench loopback` splits the capture-to-decoded latency with.
//!
//! Off by default: a pipeline without a probe tests one `Option` per
//! picture and reads no clock. With one, each stage calls it once per
//! picture as the picture leaves that stage, with the instant it did and
//! how to recognise the picture: sending stages by its capture instant
//! (which travels with the frame and with its encoded unit), receiving
//! stages by its RTP timestamp (all a receiver knows before decoding);
//! the decode stage hands over the decoded picture as well, so whoever
//! listens can read its timecode and join the two halves.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use pstream_core::VideoFrame;

/// Where a picture was when the probe was called, in path order.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ProbePoint<'a> {
    /// The source stage has the picture (captured or rendered, converted)
    /// and hands it to the encoder's link.
    Captured(&'a VideoFrame),
    /// The encoder has made the unit of the picture captured at `capture`.
    Encoded {
        /// The picture's capture instant.
        capture: Instant,
    },
    /// Every RTP packet of that unit has been handed to the socket.
    Sent {
        /// The picture's capture instant.
        capture: Instant,
    },
    /// The receiver's session has the complete unit and hands it to the
    /// decoder's link; `arrival` is when the datagram that completed it was
    /// read off the socket.
    Depacketized {
        /// The unit's RTP timestamp.
        rtp_timestamp: u32,
        /// When its last datagram was read off the socket.
        arrival: Instant,
    },
    /// The decoder has made the picture.
    Decoded {
        /// The unit's RTP timestamp.
        rtp_timestamp: u32,
        /// The decoded picture.
        frame: &'a VideoFrame,
    },
}

/// The hook: called from the stage threads, so it must be quick and
/// thread-safe (a lock around a vector is fine at frame rates).
#[derive(Clone)]
pub struct Probe(Arc<dyn Fn(Instant, ProbePoint<'_>) + Send + Sync>);

impl Probe {
    /// A probe calling `f` with the instant and the point of each picture.
    pub fn new(f: impl Fn(Instant, ProbePoint<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Reports `point` as reached now.
    pub fn hit(&self, point: ProbePoint<'_>) {
        (self.0)(Instant::now(), point);
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

/// Calls `probe` with the point made by `point` if there is a probe; the
/// closure keeps what only a probe needs out of the probe-less path.
#[inline]
pub(crate) fn hit<'a>(probe: Option<&Probe>, point: impl FnOnce() -> ProbePoint<'a>) {
    if let Some(p) = probe {
        p.hit(point());
    }
}
