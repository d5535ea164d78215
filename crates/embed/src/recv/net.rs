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
use pstream_transport::UdpEndpoint;

use super::{Feedback, StreamCounters};
use crate::run::{Stages, Stop};
use crate::Result;

/// Datagrams waiting for the session stage; a 1080p IDR is a few hundred.
const DATAGRAM_QUEUE: usize = 2048;
/// RTCP datagrams waiting for the session stage.
const RTCP_QUEUE: usize = 64;

/// A datagram and when it arrived.
type Datagram = (Bytes, Instant);

/// The network end of one stream: two sockets feeding one [`RtpReceiver`].
pub(crate) struct NetStage {
    rtp: UdpEndpoint,
    rtcp: UdpEndpoint,
    rtcp_to: SocketAddr,
    session: RtpReceiver,
    counters: Arc<StreamCounters>,
}

impl NetStage {
    /// Binds the stream's RTP and RTCP ports on `listen`; RTCP goes back to `rtcp_to`.
    pub(crate) fn bind(
        listen: IpAddr,
        (rtp_port, rtcp_port): (u16, u16),
        rtcp_to: SocketAddr,
        session: RtpReceiver,
        counters: Arc<StreamCounters>,
    ) -> Result<Self> {
        Ok(Self {
            rtp: UdpEndpoint::bind(SocketAddr::new(listen, rtp_port))?,
            rtcp: UdpEndpoint::bind(SocketAddr::new(listen, rtcp_port))?,
            rtcp_to,
            session,
            counters,
        })
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
        stages.spawn(&format!("{name}-rtp"), move |stop| {
            read(rtp, &rtp_tx, stop);
            Ok(())
        })?;
        let rtcp = self.rtcp.try_clone()?;
        stages.spawn(&format!("{name}-rtcp"), move |stop| {
            read(rtcp, &rtcp_tx, stop);
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
            for (data, at) in rtp.try_iter().take(DATAGRAM_QUEUE) {
                // Malformed packets are counted by the session itself.
                let _ = self.session.handle_rtp(at, &data);
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
                recv(rtp) -> msg => if let Ok((data, at)) = msg {
                    // Malformed packets are counted by the session itself.
                    let _ = self.session.handle_rtp(at, &data);
                },
                recv(rtcp) -> msg => if let Ok((data, at)) = msg {
                    if self.session.handle_rtcp(at, &data).is_err() {
                        self.counters.rtcp_dropped.fetch_add(1, Ordering::Relaxed);
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
            // A gone decoder means we are shutting down.
            let _ = units.send(unit);
        }
        while let Some(t) = self.session.poll_transmit() {
            self.rtcp.send_to(&t.data, self.rtcp_to)?;
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
        c.restarts.store(s.sender_restarts, Ordering::Relaxed);
        c.malformed
            .store(s.malformed + s.depay_errors, Ordering::Relaxed);
        Ok(())
    }
}

/// Turns a blocking socket into a channel of timestamped datagrams until
/// the run stops or the session stage has gone.
fn read(mut socket: UdpEndpoint, out: &Sender<Datagram>, stop: &Stop) {
    while !stop.requested() {
        match socket.recv_timeout(Duration::from_millis(100)) {
            Ok(Some((data, _from))) => {
                // Stamp arrival here, not when the session gets to it, so
                // jitter measures the network and not our queue.
                if let Err(crossbeam_channel::TrySendError::Disconnected(_)) =
                    out.try_send((data, Instant::now()))
                {
                    break;
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
