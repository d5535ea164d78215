//! The accept loop and one task per connection, with the limits that keep a
//! few bad clients from starving the rest: a cap on connections (total and
//! per client address), a deadline for request headers, and an idle timeout
//! that closes connections which neither send nor take bytes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::respond::{respond, WallClock};
use super::whep;
use super::whip;
use super::{HlsCatalog, HttpStats};

/// Limits on what clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; more are closed on accept and counted.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_client: usize,
    /// Time a client has to send a request's headers once it starts one.
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed
    /// (idle keep-alive, or a client that stopped reading its response).
    pub idle_timeout: Duration,
    /// How long open connections get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            max_connections_per_client: 256,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Largest request head (request line and headers) read from a client.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Serves HLS from `catalog` on `listener` with the default [`HttpLimits`]
/// until `shutdown` resolves. Runs on the caller's tokio runtime.
pub async fn serve_http(
    listener: TcpListener,
    catalog: Arc<dyn HlsCatalog>,
    stats: Arc<HttpStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_http_with(listener, catalog, stats, HttpLimits::default(), shutdown).await
}

/// [`serve_http`] with chosen limits.
pub async fn serve_http_with(
    listener: TcpListener,
    catalog: Arc<dyn HlsCatalog>,
    stats: Arc<HttpStats>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(64);
    let builder = Arc::new(builder);
    let clock = WallClock::now();
    let clients = Arc::new(ClientCount::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        let event = poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            // Reap finished connection tasks so the set does not grow.
            while let Poll::Ready(Some(_)) = tasks.poll_join_next(cx) {}
            listener.poll_accept(cx).map(Some)
        })
        .await;
        let (stream, peer) = match event {
            None => break,
            Some(Ok(accepted)) => accepted,
            Some(Err(_)) => {
                // Out of file descriptors or a connection reset before
                // accept: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let open = stats.open_connections() as usize;
        let Some(slot) = (open < limits.max_connections)
            .then(|| clients.take(peer.ip(), limits.max_connections_per_client))
            .flatten()
        else {
            stats.connection_refused();
            drop(stream);
            continue;
        };
        // Small responses (playlists) should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        stats.connection_opened();
        let conn = Connection {
            stats: stats.clone(),
            peer,
            _slot: slot,
        };
        tasks.spawn(conn.run(
            stream,
            builder.clone(),
            catalog.clone(),
            clock,
            limits.idle_timeout,
            stop_rx.clone(),
        ));
    }

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // Whatever is still open is aborted when the set drops.
    Ok(())
}

/// One accepted connection; closing it (dropping this) updates the counts.
struct Connection {
    stats: Arc<HttpStats>,
    peer: std::net::SocketAddr,
    _slot: ClientSlot,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.stats.connection_closed();
    }
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        builder: Arc<http1::Builder>,
        catalog: Arc<dyn HlsCatalog>,
        clock: WallClock,
        idle_timeout: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
            stats: self.stats.clone(),
        });
        let stats = self.stats.clone();
        let peer = self.peer;
        let service = service_fn(move |req: Request<Incoming>| {
            let catalog = catalog.clone();
            let stats = stats.clone();
            async move {
                let (parts, body) = req.into_parts();
                let path = parts.uri.path();
                let (resp, answer) = match (whep::parse(path), whip::parse(path)) {
                    // WHEP and the viewer page; the body is read (bounded)
                    // only for an offer.
                    (Some(route), _) => {
                        whep::respond(&parts.method, route, &parts.headers, body, &*catalog).await
                    }
                    // WHIP publishers.
                    (None, Some(route)) => {
                        whip::respond(&parts.method, route, &parts.headers, body, &*catalog, peer)
                            .await
                    }
                    (None, None) => respond(&parts.method, path, &parts.headers, &*catalog, &clock),
                };
                stats.count_answer(answer);
                // Per request, at debug level: who asked for what and got which
                // answer (how many requests each cache in front sends, for one).
                tracing::debug!(
                    peer = %peer,
                    method = %parts.method,
                    path = path,
                    status = resp.status().as_u16(),
                    "http request"
                );
                Ok::<_, Infallible>(resp)
            }
        });
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut stopping = pin!(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        let mut stop_seen = false;
        let mut tick = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(10)));
        loop {
            let event = poll_fn(|cx| {
                if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Event::Done(result));
                }
                if !stop_seen && stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Stop);
                }
                tick.poll_tick(cx).map(|_| Event::Tick)
            })
            .await;
            match event {
                Event::Done(Err(e)) if e.is_timeout() => {
                    self.stats.connection_timed_out();
                    return;
                }
                // Client errors (garbage, resets) just end this connection.
                Event::Done(_) => return,
                Event::Stop => {
                    stop_seen = true;
                    conn.as_mut().graceful_shutdown();
                }
                Event::Tick => {
                    if activity.idle_for() >= idle_timeout {
                        self.stats.connection_timed_out();
                        return;
                    }
                }
            }
        }
    }
}

enum Event {
    Done(hyper::Result<()>),
    Stop,
    Tick,
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The socket, noting progress and counting bytes sent.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    stats: Arc<HttpStats>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl Tracked {
    fn note_written(&self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result {
            if *n > 0 {
                self.activity.touch();
                self.stats.add_bytes_sent(*n as u64);
            }
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_written(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_written(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections per client address.
#[derive(Default)]
struct ClientCount {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCount {
    /// A slot for `ip`, or None if it already holds `limit` connections.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            count: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`ClientCount`], given back on drop.
struct ClientSlot {
    count: Arc<ClientCount>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.count.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
