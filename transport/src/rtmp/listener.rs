//! The tokio driver of the RTMP server: accepts publishers, one task each.
//!
//! Each connection runs a [`ServerSession`]; a publish request goes to the
//! [`IngestHandler`], which accepts it with an [`IngestSink`] for the media
//! or refuses it with a status code. Every connection is bounded: it must be
//! publishing within [`RtmpServerConfig::setup_timeout`], may be silent at
//! most [`RtmpServerConfig::idle_timeout`] while publishing, a write that
//! does not finish within [`RtmpServerConfig::write_timeout`] (a client that
//! stops reading) closes it, and past [`RtmpServerConfig::max_connections`]
//! in all or [`RtmpServerConfig::max_connections_per_ip`] from one address
//! new connections are closed at once, so one address holding half
//! handshakes cannot keep publishers elsewhere out. A connection's failure
//! never touches another's.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{timeout, Instant};

use pstream_core::error::one_line;
use pstream_core::BoxError;
use pstream_rtmp::{MediaMessage, ServerEvent, ServerSession};

/// Limits of the RTMP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtmpServerConfig {
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more from it are closed on accept.
    pub max_connections_per_ip: usize,
    /// From accept to an accepted publish.
    pub setup_timeout: Duration,
    /// Longest silence from a publishing client.
    pub idle_timeout: Duration,
    /// Longest a write to the client may take.
    pub write_timeout: Duration,
}

impl Default for RtmpServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_connections_per_ip: 4,
            setup_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a publish is refused: the RTMP status sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRefusal {
    /// Status code, e.g. `NetStream.Publish.BadName`.
    pub code: String,
    /// Human-readable reason.
    pub description: String,
}

/// Receives the media of one accepted publish; dropping it ends the publish.
pub trait IngestSink: Send {
    /// One media message; an error closes the connection (e.g. an unknown
    /// codec) and is logged with its causes. Called on the server's
    /// runtime: must not block.
    fn media(&mut self, msg: MediaMessage) -> Result<(), BoxError>;
}

/// Decides on publish requests (key lists, busy keys) and hands out sinks.
pub trait IngestHandler: Send + Sync + 'static {
    /// The client at `peer` asks to publish `key` in `app`.
    fn publish(
        &self,
        app: &str,
        key: &str,
        peer: SocketAddr,
    ) -> Result<Box<dyn IngestSink>, PublishRefusal>;
}

/// Counters of the RTMP server, for the stats line.
#[derive(Debug, Default)]
pub struct RtmpServerStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_limit: AtomicU64,
    refused_per_ip: AtomicU64,
    publishing: AtomicU64,
    refused_publish: AtomicU64,
    timeouts: AtomicU64,
    protocol_errors: AtomicU64,
    closed_by_sink: AtomicU64,
    bytes_in: AtomicU64,
}

/// A copy of [`RtmpServerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtmpServerSnapshot {
    /// Connections open now.
    pub open: u64,
    /// Connections accepted in total.
    pub accepted: u64,
    /// Connections closed on accept because of the connection limit.
    pub refused_limit: u64,
    /// Connections closed on accept because their address had as many open as allowed.
    pub refused_per_ip: u64,
    /// Publishes live now.
    pub publishing: u64,
    /// Publish requests refused (key not listed, key busy, bad key).
    pub refused_publish: u64,
    /// Connections closed for being too slow (setup, idle, write).
    pub timeouts: u64,
    /// Connections closed for breaking the protocol (garbage, lying lengths).
    pub protocol_errors: u64,
    /// Connections closed because the sink refused their media (unknown codec).
    pub closed_by_sink: u64,
    /// Bytes read from every RTMP client, handshakes and commands included.
    pub bytes_in: u64,
}

impl RtmpServerStats {
    /// The counters now.
    pub fn snapshot(&self) -> RtmpServerSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RtmpServerSnapshot {
            open: g(&self.open),
            accepted: g(&self.accepted),
            refused_limit: g(&self.refused_limit),
            refused_per_ip: g(&self.refused_per_ip),
            publishing: g(&self.publishing),
            refused_publish: g(&self.refused_publish),
            timeouts: g(&self.timeouts),
            protocol_errors: g(&self.protocol_errors),
            closed_by_sink: g(&self.closed_by_sink),
            bytes_in: g(&self.bytes_in),
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn dec(a: &AtomicU64) {
    a.fetch_sub(1, Ordering::Relaxed);
}

/// Connections open per address; a [`PerIpSlot`] holds one.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection's place in its address's count, given back on drop.
struct PerIpSlot {
    counts: PerIp,
    ip: IpAddr,
}

impl PerIpSlot {
    /// Takes a place for `ip`, or `None` when it has `max` already.
    fn take(counts: &PerIp, ip: IpAddr, max: usize) -> Option<Self> {
        // An IPv4 client on a dual-stack socket counts as its IPv4 address.
        let ip = ip.to_canonical();
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // The map holds only addresses with connections open.
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts RTMP publishers on `listener` until `shutdown` resolves. Runs on the caller's runtime.
pub async fn serve_rtmp(
    listener: TcpListener,
    handler: Arc<dyn IngestHandler>,
    config: RtmpServerConfig,
    stats: Arc<RtmpServerStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_ip: PerIp = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait instead of spinning.
                Err(e) => {
                    tracing::warn!("rtmp: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(place) = PerIpSlot::take(&per_ip, peer.ip(), config.max_connections_per_ip.max(1))
        else {
            inc(&stats.refused_per_ip);
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            inc(&stats.refused_limit);
            drop(stream);
            continue;
        };
        inc(&stats.accepted);
        inc(&stats.open);
        let (handler, stats, stop) = (handler.clone(), stats.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(stream, peer, handler.as_ref(), config, &stats, stop).await;
            dec(&stats.open);
            drop(permit);
            drop(place);
        });
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// How a connection ended, for the counters.
enum End {
    Normal,
    Timeout,
    Protocol,
    Sink,
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &dyn IngestHandler,
    config: RtmpServerConfig,
    stats: &RtmpServerStats,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut session = ServerSession::new();
    let mut sink: Option<Box<dyn IngestSink>> = None;
    let setup_deadline = Instant::now() + config.setup_timeout;
    let mut buf = vec![0u8; 64 * 1024];
    let end = 'conn: loop {
        let deadline = if sink.is_some() {
            Instant::now() + config.idle_timeout
        } else {
            setup_deadline
        };
        let read = tokio::select! {
            _ = stop.changed() => break End::Normal,
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => r,
        };
        let n = match read {
            Err(_) => break End::Timeout,
            Ok(Ok(0)) => break End::Normal,
            Ok(Ok(n)) => n,
            Ok(Err(_)) => break End::Normal,
        };
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        if let Err(e) = session.handle_input(&buf[..n]) {
            tracing::debug!("rtmp {peer}: {}", one_line(&e));
            break End::Protocol;
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                ServerEvent::PublishRequested { app, key: k } => {
                    match handler.publish(&app, &k, peer) {
                        Ok(s) => {
                            if session.accept_publish(&k).is_err() {
                                break 'conn End::Protocol;
                            }
                            sink = Some(s);
                            inc(&stats.publishing);
                        }
                        Err(r) => {
                            inc(&stats.refused_publish);
                            if session.reject_publish(&r.code, &r.description).is_err() {
                                break 'conn End::Protocol;
                            }
                        }
                    }
                }
                ServerEvent::Media(m) => {
                    if let Some(s) = sink.as_mut() {
                        if let Err(why) = s.media(m) {
                            // The key is a secret: the sink's error names the stream.
                            tracing::warn!(
                                "rtmp {peer}: {}; closing the connection",
                                one_line(why.as_ref())
                            );
                            break 'conn End::Sink;
                        }
                    }
                }
                ServerEvent::Unpublished => {
                    if sink.take().is_some() {
                        dec(&stats.publishing);
                    }
                }
            }
        }
        while let Some(out) = session.poll_transmit() {
            match timeout(config.write_timeout, stream.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break 'conn End::Normal,
                Err(_) => break 'conn End::Timeout,
            }
        }
        if session.is_closed() {
            // Let the refusal reach the client before the FIN.
            let _ = timeout(config.write_timeout, stream.flush()).await;
            break End::Normal;
        }
    };
    if sink.take().is_some() {
        dec(&stats.publishing);
    }
    match end {
        End::Normal => {}
        End::Timeout => inc(&stats.timeouts),
        End::Protocol => inc(&stats.protocol_errors),
        End::Sink => inc(&stats.closed_by_sink),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses every publish: these tests only count connections.
    struct Refuse;

    impl IngestHandler for Refuse {
        fn publish(
            &self,
            _app: &str,
            _key: &str,
            _peer: SocketAddr,
        ) -> Result<Box<dyn IngestSink>, PublishRefusal> {
            Err(PublishRefusal {
                code: "NetStream.Publish.BadName".into(),
                description: "test".into(),
            })
        }
    }

    #[test]
    fn per_address_places_are_counted_and_given_back() {
        let counts: PerIp = Arc::default();
        let a: IpAddr = [127, 0, 0, 2].into();
        let held: Vec<PerIpSlot> = (0..2)
            .map(|_| PerIpSlot::take(&counts, a, 2).expect("room"))
            .collect();
        assert!(PerIpSlot::take(&counts, a, 2).is_none());
        // The same client through an IPv6 socket is the same address.
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        assert!(PerIpSlot::take(&counts, mapped, 2).is_none());
        let other = PerIpSlot::take(&counts, [127, 0, 0, 1].into(), 2).expect("another address");
        drop(held);
        drop(other);
        assert!(counts.lock().expect("lock").is_empty());
        assert!(PerIpSlot::take(&counts, a, 2).is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_address_at_its_cap_leaves_room_for_another() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(RtmpServerStats::default());
        let config = RtmpServerConfig {
            max_connections: 4,
            max_connections_per_ip: 2,
            ..RtmpServerConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_rtmp(
            listener,
            Arc::new(Refuse),
            config,
            stats.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let connect_from = |ip: [u8; 4]| async move {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind(SocketAddr::from((ip, 0))).expect("bind");
            let mut c = sock.connect(addr).await.expect("connect");
            // Half a handshake, then silence.
            let _ = c.write_all(&[3u8; 700]).await;
            c
        };
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(connect_from([127, 0, 0, 2]).await);
        }
        let until = |want: fn(&RtmpServerSnapshot) -> bool| {
            let stats = stats.clone();
            async move {
                for _ in 0..200 {
                    if want(&stats.snapshot()) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        };
        assert!(
            until(|s| s.accepted == 2 && s.refused_per_ip == 4).await,
            "{:?}",
            stats.snapshot()
        );
        // Without the cap the first address would hold all 4 slots.
        held.push(connect_from([127, 0, 0, 3]).await);
        held.push(connect_from([127, 0, 0, 1]).await);
        assert!(
            until(|s| s.accepted == 4 && s.open == 4).await,
            "{:?}",
            stats.snapshot()
        );
        assert_eq!(stats.snapshot().refused_limit, 0);
        let _ = stop.send(());
        server.await.expect("join").expect("serve");
    }
}
