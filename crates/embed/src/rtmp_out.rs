//! One outgoing RTMP(S) publish that keeps going: connect, stream, and on a
//! retryable failure wait with growing, jittered backoff and connect again.
//! Shared by `pstream push`'s destinations and `pstream serve`'s relays;
//! what is streamed (push's encoded units, serve's received tags) is the
//! caller's [`Feed`].

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use pstream_transport::rtmp::{RtmpConnection, RtmpError, RtmpUrl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::one_line;
use crate::run::Stop;
use crate::stats::StatsLine;
use crate::Result;

/// Longest a connect + handshake + publish may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; later ones grow by [`BACKOFF_FACTOR`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Growth of the retry delay after each failed attempt.
pub(crate) const BACKOFF_FACTOR: f64 = 1.5;

/// Where a destination is, as shown on the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationState {
    /// Connecting, handshaking or publishing.
    Connecting,
    /// Sending media.
    Live,
    /// Disconnected, waiting to try again.
    Retrying,
    /// Gave up (a refusal that retrying cannot fix, or a file error).
    Failed,
    /// Finished cleanly.
    Done,
    /// A relay of `pstream serve` waiting for its stream to be published.
    Idle,
}

impl DestinationState {
    fn to_u8(self) -> u8 {
        self as u8
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Live,
            2 => Self::Retrying,
            3 => Self::Failed,
            4 => Self::Done,
            _ => Self::Idle,
        }
    }

    /// The word on stats lines and in `/metrics` labels.
    pub fn word(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Idle => "idle",
        }
    }
}

/// What one destination shares with the stats line.
#[derive(Debug, Default)]
pub(crate) struct DestCounters {
    state: AtomicU8,
    /// When the next attempt is due, in ms since the destination started.
    pub(crate) retry_at_ms: AtomicU64,
    /// Bytes of media sent.
    pub(crate) bytes: AtomicU64,
    /// Units dropped by this destination itself (disconnected, waiting for a keyframe).
    pub(crate) dropped: AtomicU64,
    /// Attempts after the first.
    pub(crate) reconnects: AtomicU64,
    /// Attempts or connections that ended in an error (refused, reset,
    /// timed out, garbage from the server).
    pub(crate) errors: AtomicU64,
}

impl DestCounters {
    /// Where the destination is now.
    pub(crate) fn state(&self) -> DestinationState {
        DestinationState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Moves the destination to `state`.
    pub(crate) fn set(&self, state: DestinationState) {
        self.state.store(state.to_u8(), Ordering::Relaxed);
    }

    /// Appends the state word (with the seconds to the next attempt) to `line`.
    pub(crate) fn state_words(&self, line: &mut StatsLine, now_ms: u64) {
        match self.state() {
            DestinationState::Retrying => {
                let at = self.retry_at_ms.load(Ordering::Relaxed);
                line.word(format_args!(
                    "retrying in {} s",
                    at.saturating_sub(now_ms).div_ceil(1000)
                ))
            }
            s => line.word(s.word()),
        };
    }
}

/// What an RTMP destination streams: the caller's side of [`run_rtmp`].
pub(crate) trait Feed {
    /// Streams on `conn` until the input closes (then ends the publish
    /// cleanly and returns Ok) or `stop` is set, or the connection fails.
    fn stream(&mut self, conn: RtmpConnection, stop: &Stop) -> Result<(), RtmpError>;

    /// Waits until `until` while disconnected, taking (and dropping or
    /// keeping) what arrives; false once the input has closed.
    fn idle(&mut self, until: Instant, stop: &Stop) -> bool;
}

/// Connects to `url` and streams `feed`, reconnecting with backoff (from
/// [`FIRST_RETRY`], growing by [`BACKOFF_FACTOR`] up to `reconnect_max`,
/// with up to +20% jitter) after every retryable failure, until the feed's
/// input closes or `stop` is set. An error only for failures retrying
/// cannot fix (a refused key, a bad URL, TLS set-up).
pub(crate) fn run_rtmp(
    name: &str,
    url: &RtmpUrl,
    counters: &DestCounters,
    reconnect_max: Duration,
    started: Instant,
    feed: &mut dyn Feed,
    stop: &Stop,
) -> Result<()> {
    let mut backoff = FIRST_RETRY;
    let mut attempts = 0u64;
    while !stop.requested() {
        counters.set(DestinationState::Connecting);
        attempts += 1;
        if attempts > 1 {
            counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        match RtmpConnection::connect(url, CONNECT_TIMEOUT) {
            Ok(conn) => {
                tracing::info!("{name}: live");
                backoff = FIRST_RETRY;
                counters.set(DestinationState::Live);
                match feed.stream(conn, stop) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_retryable() => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("{name}: {}", one_line(&e))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) if e.is_retryable() => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{name}: {}", one_line(&e))
            }
            Err(e) => return Err(e.into()),
        }
        if stop.requested() {
            break;
        }
        // Wait with jitter (up to +20%, so the first retry comes after
        // 1 s at the earliest), dropping and counting what is made meanwhile.
        let jitter = StdRng::from_os_rng().random_range(1.0..1.2);
        let wait = backoff.mul_f64(jitter).min(reconnect_max);
        backoff = backoff.mul_f64(BACKOFF_FACTOR).min(reconnect_max);
        tracing::info!("{name}: retrying in {:.1} s", wait.as_secs_f64());
        let until = Instant::now() + wait;
        counters
            .retry_at_ms
            .store((until - started).as_millis() as u64, Ordering::Relaxed);
        counters.set(DestinationState::Retrying);
        if !feed.idle(until, stop) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_byte() {
        for s in [
            DestinationState::Connecting,
            DestinationState::Live,
            DestinationState::Retrying,
            DestinationState::Failed,
            DestinationState::Done,
            DestinationState::Idle,
        ] {
            let c = DestCounters::default();
            c.set(s);
            assert_eq!(c.state(), s);
        }
    }
}
