//! The WebRTC side of the server: the UDP driver around the sans-IO
//! [`pstream_webrtc::Whep`]. One socket carries every viewer session; the
//! HTTP server hands it offers and DELETEs, the publishers their video,
//! and one task feeds it datagrams and the time and sends what it gives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pstream_core::{Codec, EncodedUnit};
use pstream_transport::http::WhepAnswer;
use pstream_webrtc::{Transmit, VideoFrame, Whep, WhepError, WhepStats};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::run::Stop;

/// Datagrams read in one go before the sessions are polled again.
const RECV_BATCH: usize = 64;

/// The sessions, shared by the driver task, the HTTP server and the publishers.
pub(crate) struct Hub {
    whep: Mutex<Whep>,
    /// Wakes the driver: an offer, a DELETE or a frame to send.
    wake: Notify,
    /// Datagrams the socket would not take (its send buffer full).
    pub(crate) send_dropped: AtomicU64,
}

impl Hub {
    pub(crate) fn new(whep: Whep) -> Self {
        Self {
            whep: Mutex::new(whep),
            wake: Notify::new(),
            send_dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Whep> {
        // A panic while holding the lock leaves the sessions consistent
        // enough to go on serving (each call finishes or drops its session).
        self.whep.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address named in candidates (WHIP's sessions name it too).
    pub(crate) fn advertised(&self) -> SocketAddr {
        self.lock().config().advertised
    }

    /// Counts so far, with the socket's refusals.
    pub(crate) fn stats(&self) -> WhepStats {
        self.lock().stats()
    }

    /// A viewer's offer for `stream`.
    pub(crate) fn offer(&self, stream: &str, sdp: &str) -> WhepAnswer {
        let result = self.lock().offer(Instant::now(), stream, sdp);
        self.wake.notify_one();
        match result {
            Ok((id, sdp)) => WhepAnswer::Created { id, sdp },
            Err(e @ WhepError::BadOffer(_)) => WhepAnswer::BadOffer(e.to_string()),
            Err(e @ WhepError::NoCodec) => WhepAnswer::NoCodec(e.to_string()),
            Err(e) => WhepAnswer::Busy(e.to_string()),
        }
    }

    /// A viewer's DELETE.
    pub(crate) fn close(&self, stream: &str, id: &str) -> bool {
        self.lock().close(stream, id)
    }

    /// A published unit of `stream`: H.264 goes to its viewers, if any.
    pub(crate) fn unit(&self, stream: &str, unit: &EncodedUnit) {
        if unit.codec != Codec::H264 {
            return;
        }
        let mut whep = self.lock();
        if !whep.watched(stream) {
            return;
        }
        let frame = VideoFrame {
            data: Arc::from(&unit.data[..]),
            keyframe: unit.keyframe,
            pts: unit.pts,
        };
        whep.video(stream, &frame);
        drop(whep);
        self.wake.notify_one();
    }
}

/// Runs the sessions on `socket` until `stop` is set.
pub(crate) async fn drive(
    hub: Arc<Hub>,
    whip: Option<Arc<super::whip::Ingest>>,
    socket: UdpSocket,
    stop: Stop,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut out: Vec<Transmit> = Vec::new();
    while !stop.requested() {
        let mut next = hub.lock().poll(Instant::now(), &mut out);
        if let Some(whip) = &whip {
            next = next.min(whip.poll(Instant::now(), &mut out));
        }
        for t in out.drain(..) {
            // Never wait on the socket: a full send buffer costs the
            // datagram (counted; NACK/RTX or the next key frame repair it),
            // not every other viewer's turn.
            if socket.try_send_to(&t.data, t.destination).is_err() {
                hub.send_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    let mut whep = hub.lock();
                    let now = Instant::now();
                    // WHIP publishers first: what none of them takes is
                    // the viewers' (or dropped and counted there).
                    let mut take = |from, data: &[u8]| {
                        if !whip.as_ref().is_some_and(|w| w.receive(now, from, data)) {
                            whep.receive(now, from, data);
                        }
                    };
                    take(from, &buf[..n]);
                    // Take what else is waiting while the lock is held.
                    for _ in 1..RECV_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => take(from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = hub.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    Ok(())
}

/// The address to advertise in candidates: `ip` when given, else the bound
/// address, or 127.0.0.1 when bound to every interface (with a warning:
/// remote viewers need `--webrtc-ip`).
pub(crate) fn advertised(bound: SocketAddr, ip: Option<std::net::IpAddr>) -> SocketAddr {
    match ip {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None if bound.ip().is_unspecified() => {
            tracing::warn!(
                "WebRTC bound to {bound} with no --webrtc-ip: candidates name 127.0.0.1, so only viewers on this machine can play WHEP"
            );
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
        }
        None => bound,
    }
}
