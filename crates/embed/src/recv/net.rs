//! The network end of one received stream: two sockets (RTP, RTCP) read by
//! their own stages into channels, and a session stage driving one
//! [`RtpReceiver`] from them, the decoder's keyframe requests and its own
//! timers; complete units go to the decode stage, RTCP (RR, PLI) back to
//! the peer.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use pstream_core::LinkSender;
use pstream_rtp::receiver::{ReceivedUnit, RtpReceiver};
use pstream_rtp::srtp::MasterKey;
use pstream_rtp::PeerFilter;
use pstream_transport::UdpEndpoint;

use super::{Feedback, StreamCounters};
use crate::probe::{hit, Probe, ProbePoint};
use crate::rtp::Srtp;
use crate::run::{Stages, Stop};
use crate::Result;

/// Datagrams waiting for the session stage; a 1080p IDR is a few hundred.
/// With [`MAX_DATAGRAM`] this bounds the queue's bytes too (18 MiB).
const DATAGRAM_QUEUE: usize = 2048;
/// Largest RTP or RTCP datagram taken: a jumbo frame's payload. Senders keep
/// RTP under the path MTU (pstream 1200 bytes, GStreamer 1400), so anything
/// larger is not a stream's packet, and taking it would let one peer fill
/// the queue and the jitter buffer with 64 KiB datagrams.
const MAX_DATAGRAM: usize = 9216;
/// RTCP datagrams waiting for the session stage.
const RTCP_QUEUE: usize = 64;

/// A datagram, when it arrived and from where.
type Datagram = (Bytes, Instant, IpAddr);

/// The network end of one stream: two sockets feeding one [`RtpReceiver`].
pub(crate) struct NetStage {
    rtp: UdpEndpoint,
    rtcp: UdpEndpoint,
    /// Where RTCP goes: the peer's address, or with `--peer any` the port
    /// on the host of the sender followed (nowhere before there is one).
    rtcp_to: RtcpTo,
    /// Whose packets are taken; the rest are dropped by the socket readers,
    /// before they reach the session's queue, and counted.
    filter: PeerFilter,
    session: RtpReceiver,
    counters: Arc<StreamCounters>,
    /// With SRTP: every datagram authenticated and decrypted before the
    /// session sees it, our RTCP protected.
    srtp: Option<Srtp>,
    /// Hears of each unit handed to the decoder.
    probe: Option<Probe>,
}

impl NetStage {
    /// Binds the stream's RTP and RTCP ports on `listen`; packets are taken
    /// from `filter`'s addresses only and RTCP goes back to `rtcp_to`.
    pub(crate) fn bind(
        listen: IpAddr,
        (rtp_port, rtcp_port): (u16, u16),
        (filter, rtcp_to): (PeerFilter, RtcpTo),
        session: RtpReceiver,
        counters: Arc<StreamCounters>,
    ) -> Result<Self> {
        Ok(Self {
            rtp: UdpEndpoint::bind(SocketAddr::new(listen, rtp_port))?,
            rtcp: UdpEndpoint::bind(SocketAddr::new(listen, rtcp_port))?,
            rtcp_to,
            filter,
            session,
            counters,
            srtp: None,
            probe: None,
        })
    }

    /// Takes only SRTP/SRTCP under `key` (when given) and protects our RTCP.
    pub(crate) fn srtp(mut self, key: Option<&MasterKey>) -> Self {
        self.srtp = key.map(Srtp::new);
        self
    }

    /// Tells `probe` of each unit handed to the decoder.
    pub(crate) fn probe(mut self, probe: Option<Probe>) -> Self {
        self.probe = probe;
        self
    }

    /// A datagram as the session takes it: with SRTP, authenticated and
    /// decrypted, or `None` when it fails (dropped; counted in `flush`).
    fn unprotect(&mut self, data: Bytes, rtcp: bool) -> Option<Bytes> {
        let Some(srtp) = &mut self.srtp else {
            return Some(data);
        };
        let plain = if rtcp {
            srtp.input.unprotect_rtcp(&data, &mut srtp.buf)
        } else {
            srtp.input.unprotect_rtp(&data, &mut srtp.buf)
        };
        match plain {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!("dropped: {e}");
                None
            }
        }
    }

    /// Starts `{name}-rtp`, `{name}-rtcp` (the socket readers) and
    /// `{name}-net` (the session).
    pub(crate) fn spawn(
        self,
        name: &str,
        units: LinkSender<ReceivedUnit>,
        feedback: Receiver<Feedback>,
        stages: &mut Stages,
    ) -> Result<()> {
        let (rtp_tx, rtp_rx) = crossbeam_channel::bounded::<Datagram>(DATAGRAM_QUEUE);
        let (rtcp_tx, rtcp_rx) = crossbeam_channel::bounded::<Datagram>(RTCP_QUEUE);
        let rtp = self.rtp.try_clone()?;
        let (filter, counters) = (self.filter.clone(), self.counters.clone());
        stages.spawn(&format!("{name}-rtp"), move |stop| {
            read(rtp, &rtp_tx, &filter, &counters, stop);
            Ok(())
        })?;
        let rtcp = self.rtcp.try_clone()?;
        let (filter, counters) = (self.filter.clone(), self.counters.clone());
        stages.spawn(&format!("{name}-rtcp"), move |stop| {
            read(rtcp, &rtcp_tx, &filter, &counters, stop);
            Ok(())
        })?;
        stages.spawn(&format!("{name}-net"), move |stop| {
            self.run(units, rtp_rx, rtcp_rx, feedback, stop)
        })
    }

    fn run(
        mut self,
        units: LinkSender<ReceivedUnit>,
        rtp: Receiver<Datagram>,
        rtcp: Receiver<Datagram>,
        feedback: Receiver<Feedback>,
        stop: &Stop,
    ) -> Result<()> {
        while !stop.requested() {
            // Datagrams already queued arrived before now: feed them first,
            // or a late handle_timeout would give up on a gap that one of
            // them fills (the reader stamped them on time).
            for (data, at, from) in rtp.try_iter().take(DATAGRAM_QUEUE) {
                // Malformed packets are counted by the session itself.
                if let Some(data) = self.unprotect(data, false) {
                    let _ = self.session.handle_rtp_from(at, from, &data);
                }
            }
            let now = Instant::now();
            self.session.handle_timeout(now);
            self.flush(&units)?;
            let wait = self
                .session
                .next_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            crossbeam_channel::select! {
                recv(rtp) -> msg => if let Ok((data, at, from)) = msg {
                    // Malformed packets are counted by the session itself.
                    if let Some(data) = self.unprotect(data, false) {
                        let _ = self.session.handle_rtp_from(at, from, &data);
                    }
                },
                recv(rtcp) -> msg => if let Ok((data, at, from)) = msg {
                    if let Some(data) = self.unprotect(data, true) {
                        if self.session.handle_rtcp_from(at, from, &data).is_err() {
                            self.counters.rtcp_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                },
                recv(feedback) -> msg => if let Ok(Feedback::KeyframeNeeded) = msg {
                    self.session.request_keyframe(Instant::now());
                },
                default(wait) => {}
            }
            self.flush(&units)?;
        }
        Ok(())
    }

    fn flush(&mut self, units: &LinkSender<ReceivedUnit>) -> Result<()> {
        while let Some(unit) = self.session.poll_unit() {
            hit(self.probe.as_ref(), || ProbePoint::Depacketized {
                rtp_timestamp: unit.rtp_timestamp,
                arrival: unit.arrival,
            });
            // A gone decoder means we are shutting down.
            let _ = units.send(unit);
        }
        let to = match self.rtcp_to {
            RtcpTo::Peer(addr) => Some(addr),
            RtcpTo::Sender(port) => self
                .session
                .sender_addr()
                .map(|ip| SocketAddr::new(ip, port)),
        };
        while let Some(t) = self.session.poll_transmit() {
            let Some(to) = to else { continue };
            let data = match &mut self.srtp {
                None => t.data,
                Some(srtp) => srtp
                    .out
                    .protect_rtcp(&t.data, &mut srtp.buf)
                    .map_err(|e| crate::Error::failed("cannot protect RTCP with SRTCP", e))?,
            };
            self.rtcp.send_to(&data, to)?;
        }
        if let Some(srtp) = &self.srtp {
            let st = srtp.input.stats();
            let c = &self.counters;
            c.srtp_auth_failed
                .store(st.auth_failures + st.malformed, Ordering::Relaxed);
            c.srtp_replayed.store(st.replays, Ordering::Relaxed);
        }
        let s = self.session.stats();
        let c = &self.counters;
        if s.malformed + s.depay_errors > c.malformed.load(Ordering::Relaxed) {
            if let Some(e) = self.session.last_depay_error() {
                tracing::debug!("dropped: {e}");
            }
        }
        c.packets.store(s.packets, Ordering::Relaxed);
        c.bytes.store(s.bytes, Ordering::Relaxed);
        c.lost.store(s.lost, Ordering::Relaxed);
        c.late.store(s.late, Ordering::Relaxed);
        c.duplicates.store(s.duplicates, Ordering::Relaxed);
        c.jitter_us
            .store((s.jitter_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        c.pli_sent.store(s.pli_sent, Ordering::Relaxed);
        c.foreign.store(s.foreign_ssrc_packets, Ordering::Relaxed);
        c.foreign_rtcp.store(s.foreign_rtcp, Ordering::Relaxed);
        c.restarts.store(s.sender_restarts, Ordering::Relaxed);
        c.malformed
            .store(s.malformed + s.depay_errors, Ordering::Relaxed);
        c.nack_sent.store(s.nack_sent, Ordering::Relaxed);
        c.nack_requests.store(s.nack_requests, Ordering::Relaxed);
        c.rtx_received.store(s.rtx_received, Ordering::Relaxed);
        c.rtx_repaired.store(s.rtx_repaired, Ordering::Relaxed);
        c.rtx_late.store(s.rtx_late, Ordering::Relaxed);
        c.rtx_duplicates.store(s.rtx_duplicates, Ordering::Relaxed);
        c.rtx_dropped.store(s.rtx_dropped, Ordering::Relaxed);
        c.unrepaired.store(s.unrepaired, Ordering::Relaxed);
        c.rtt_us
            .store((s.rtt_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        c.budget_us
            .store((s.latency_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Where a stream's RTCP goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RtcpTo {
    /// The peer's address and port.
    Peer(SocketAddr),
    /// This port on the host of the sender followed (`--peer any`).
    Sender(u16),
}

/// Turns a blocking socket into a channel of timestamped datagrams from
/// `filter`'s addresses (others counted in `not_peer`) until the run stops
/// or the session stage has gone.
fn read(
    mut socket: UdpEndpoint,
    out: &Sender<Datagram>,
    filter: &PeerFilter,
    counters: &StreamCounters,
    stop: &Stop,
) {
    while !stop.requested() {
        match socket.recv_timeout(Duration::from_millis(100)) {
            Ok(Some((data, from))) => {
                if !filter.admits(from.ip()) {
                    counters.not_peer.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if data.len() > MAX_DATAGRAM {
                    counters.overflow.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Stamp arrival here, not when the session gets to it, so
                // jitter measures the network and not our queue.
                match out.try_send((data, Instant::now(), from.ip())) {
                    Ok(()) => {}
                    Err(crossbeam_channel::TrySendError::Full(_)) => {
                        counters.overflow.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => break,
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("{e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_over_9_kib_and_past_a_full_queue_are_dropped_and_counted() {
        let socket = UdpEndpoint::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let to = socket.local_addr();
        let filter = PeerFilter::Any;
        let counters = Arc::new(StreamCounters::default());
        let (tx, rx) = crossbeam_channel::bounded::<Datagram>(4);
        let stop = Stop::new();
        let reader = {
            let (counters, stop) = (counters.clone(), stop.clone());
            thread::spawn(move || read(socket, &tx, &filter, &counters, &stop))
        };
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        for _ in 0..3 {
            peer.send_to(&[0x80; 60_000], to).expect("send big");
        }
        for i in 0..10u8 {
            peer.send_to(&[i; 1200], to).expect("send");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while counters.overflow.load(Ordering::Relaxed) < 9 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        stop.trigger();
        reader.join().expect("reader");
        // The three 60,000-byte datagrams, then six of the ten that found
        // the queue of four full.
        assert_eq!(counters.overflow.load(Ordering::Relaxed), 9);
        let queued: Vec<Datagram> = rx.try_iter().collect();
        assert_eq!(queued.len(), 4);
        assert!(queued.iter().all(|(d, _, _)| d.len() == 1200));
        assert_eq!(queued[0].0[0], 0);
    }
}
