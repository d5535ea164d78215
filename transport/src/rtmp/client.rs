//! The thin blocking driver: a TCP socket under a [`PublishSession`].
//!
//! One destination, one thread: [`RtmpConnection::connect`] resolves,
//! connects, handshakes and publishes within a deadline;
//! [`RtmpConnection::send`] writes one tag (blocking at most the write
//! timeout, so a stalled server turns into an error, not a hung thread) and
//! answers whatever the server said meanwhile. `rtmps://` runs the same
//! session over rustls (ring provider, webpki roots plus `SSL_CERT_FILE`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{PublishSession, RtmpError, RtmpUrl, SessionEvent, TlsCause};

/// Longest a single write may block before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a poll for server input waits when nothing is there.
const POLL_READ: Duration = Duration::from_millis(1);

/// The socket under a session: plain TCP, or TLS over TCP for `rtmps://`.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A TLS client for `host`, trusting the webpki roots plus any PEM
/// certificates in the file named by `SSL_CERT_FILE` (for private ingests).
fn tls_client(host: &str, server: &str) -> Result<rustls::ClientConnection, RtmpError> {
    let tls_err = |what: String| {
        move |source: TlsCause| RtmpError::Tls {
            server: server.to_string(),
            what,
            source,
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
            tls_err(format!(
                "cannot read SSL_CERT_FILE {}",
                path.to_string_lossy()
            ))(e.into())
        })?;
        for cert in certs {
            let cert =
                cert.map_err(|e| tls_err("bad certificate in SSL_CERT_FILE".into())(e.into()))?;
            roots
                .add(cert)
                .map_err(|e| tls_err("unusable certificate in SSL_CERT_FILE".into())(e.into()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("cannot configure the client".into())(e.into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| tls_err(format!("bad server name {host:?}"))(e.into()))?;
    rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| tls_err("cannot start the session".into())(e.into()))
}

/// A live RTMP publish over TCP (or TLS).
#[derive(Debug)]
pub struct RtmpConnection {
    stream: Stream,
    session: PublishSession,
    server: String,
    buf: Vec<u8>,
}

impl RtmpConnection {
    /// Connects to `url` and publishes; returns once the server said `NetStream.Publish.Start`.
    pub fn connect(url: &RtmpUrl, timeout: Duration) -> Result<Self, RtmpError> {
        let server = format!("{}:{}", url.host, url.port);
        let deadline = Instant::now() + timeout;
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|source| RtmpError::Resolve {
                server: server.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in &addrs {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            match TcpStream::connect_timeout(addr, left) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| RtmpError::Io {
            server: server.clone(),
            what: "cannot connect",
            source: last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address")),
        })?;
        let io = |what: &'static str| {
            let server = server.clone();
            move |source| RtmpError::Io {
                server,
                what,
                source,
            }
        };
        stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(io("set write timeout"))?;
        let stream = if url.tls {
            let tls = tls_client(&url.host, &server)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(tls, stream)))
        } else {
            Stream::Tcp(stream)
        };
        let mut conn = Self {
            stream,
            session: PublishSession::new(url.clone()),
            server,
            buf: vec![0; 64 * 1024],
        };
        conn.session.start()?;
        conn.flush()?;
        while !conn.session.is_live() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RtmpError::Timeout {
                    server: conn.server.clone(),
                    stage: "connect/publish",
                    secs: timeout.as_secs(),
                });
            }
            conn.read_some(left.min(Duration::from_millis(200)))?;
        }
        Ok(conn)
    }

    /// host:port, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends one FLV tag body as an RTMP message.
    ///
    /// Server input is not read here; call [`Self::poll`] every 100 ms or so.
    pub fn send(&mut self, type_id: u8, timestamp_ms: u32, data: &Bytes) -> Result<(), RtmpError> {
        self.session.send_media(type_id, timestamp_ms, data)?;
        self.flush()
    }

    /// Reads and handles whatever the server sent, without waiting long.
    pub fn poll(&mut self) -> Result<(), RtmpError> {
        self.read_some(POLL_READ)
    }

    /// Ends the publish politely (`FCUnpublish`, `deleteStream`) and closes the socket.
    pub fn close(mut self) {
        if self.session.close().is_ok() {
            let _ = self.flush();
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }

    fn read_some(&mut self, wait: Duration) -> Result<(), RtmpError> {
        self.stream
            .tcp()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|source| self.io_err("set read timeout", source))?;
        match self.stream.read(&mut self.buf) {
            Ok(0) => Err(RtmpError::Closed {
                server: self.server.clone(),
                detail: String::new(),
            }),
            Ok(n) => {
                let data = self.buf[..n].to_vec();
                self.session.handle_input(&data)?;
                self.flush()?;
                self.drain_events()
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(self.io_err("read failed", e)),
        }
    }

    fn drain_events(&mut self) -> Result<(), RtmpError> {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Live => {}
                SessionEvent::Rejected { code, description } => {
                    return Err(RtmpError::Rejected {
                        server: self.server.clone(),
                        code,
                        description: if description.is_empty() {
                            String::new()
                        } else {
                            format!(" ({description})")
                        },
                    })
                }
                SessionEvent::Closed { code } => {
                    return Err(RtmpError::Closed {
                        server: self.server.clone(),
                        detail: format!(" ({code})"),
                    })
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RtmpError> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream
                .write_all(&bytes)
                .map_err(|source| self.io_err("write failed", source))?;
        }
        Ok(())
    }

    fn io_err(&self, what: &'static str, source: std::io::Error) -> RtmpError {
        RtmpError::Io {
            server: self.server.clone(),
            what,
            source,
        }
    }
}
