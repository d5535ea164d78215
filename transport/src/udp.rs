//! A UDP endpoint for RTP and RTCP: bound once, large buffers, timed reads.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;

/// Largest datagram we accept; anything RTP-sized fits with room to spare.
const MAX_DATAGRAM: usize = 65_536;

/// Socket buffer size asked for: a 1080p IDR is a burst of a few hundred
/// packets, which the default 208 KiB receive buffer can overflow.
const SOCKET_BUFFER: usize = 4 << 20;

/// A transport error, naming the address involved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UdpError {
    /// Binding a local port failed (in use, no permission, bad address).
    #[error("cannot bind UDP {addr}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending a datagram failed.
    #[error("cannot send UDP to {addr}")]
    Send {
        /// The destination.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Receiving failed for a reason other than a timeout.
    #[error("cannot receive on UDP {addr}")]
    Recv {
        /// The local address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The resolver failed on a host name.
    #[error("cannot resolve host {host:?}")]
    Resolve {
        /// The name as given.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// A host name that names no usable address.
    #[error("cannot resolve host {host:?}: {why}")]
    NoAddress {
        /// The name as given.
        host: String,
        /// What is wrong ("empty host name", "no addresses").
        why: &'static str,
    },
    /// The port base leaves no room for the +0..+7 layout.
    #[error("port base {0} is out of range (1..=65528)")]
    PortBase(u16),
}

/// A bound UDP socket.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: UdpSocket,
    local: SocketAddr,
    buf: BytesMut,
}

impl UdpEndpoint {
    /// Binds `addr` with large socket buffers; IPv6 sockets are v6-only so
    /// that an IPv4 peer on the same port number stays independent.
    pub fn bind(addr: SocketAddr) -> Result<Self, UdpError> {
        let bind_err = |source| UdpError::Bind { addr, source };
        let domain = if addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(bind_err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(bind_err)?;
        }
        // Buffer sizes are a hint: the kernel caps them at rmem_max, which is fine.
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.bind(&addr.into()).map_err(bind_err)?;
        let socket: UdpSocket = socket.into();
        let local = socket.local_addr().map_err(bind_err)?;
        Ok(Self {
            socket,
            local,
            buf: BytesMut::with_capacity(MAX_DATAGRAM),
        })
    }

    /// Binds the unspecified address of `family`'s family on `port`.
    pub fn bind_port(family: IpAddr, port: u16) -> Result<Self, UdpError> {
        Self::bind(SocketAddr::new(crate::unspecified_for(family), port))
    }

    /// The address this endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one datagram.
    ///
    /// "Connection refused" from a previous send (ICMP port unreachable,
    /// i.e. the peer is not listening yet) is not an error for a live
    /// stream: the peer may start later, so it is swallowed here.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), UdpError> {
        match self.socket.send_to(data, to) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(source) => Err(UdpError::Send { addr: to, source }),
        }
    }

    /// Waits up to `timeout` for a datagram; `Ok(None)` on timeout.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Bytes, SocketAddr)>, UdpError> {
        let local = self.local;
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|source| UdpError::Recv {
                addr: local,
                source,
            })?;
        if self.buf.len() != MAX_DATAGRAM {
            self.buf.clear();
            self.buf.resize(MAX_DATAGRAM, 0);
        }
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, from)) => {
                // A copy of exactly the datagram: handing out a slice of the
                // 64 KiB read buffer would pin all of it for as long as the
                // packet is held (queues and jitter buffers hold thousands),
                // and a new buffer would be allocated for every datagram.
                Ok(Some((Bytes::copy_from_slice(&self.buf[..n]), from)))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(UdpError::Recv {
                addr: local,
                source,
            }),
        }
    }

    /// A second handle on the same socket, for a reader thread.
    pub fn try_clone(&self) -> Result<Self, UdpError> {
        let socket = self.socket.try_clone().map_err(|source| UdpError::Bind {
            addr: self.local,
            source,
        })?;
        Ok(Self {
            socket,
            local: self.local,
            buf: BytesMut::with_capacity(MAX_DATAGRAM),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn loopback_round_trip() {
        let mut a = UdpEndpoint::bind_port(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bind a");
        let b = UdpEndpoint::bind_port(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bind b");
        let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.local_addr().port());
        b.send_to(b"hello", to).expect("send");
        let (data, _) = a
            .recv_timeout(Duration::from_secs(2))
            .expect("recv")
            .expect("a datagram");
        assert_eq!(&data[..], b"hello");
        assert!(a
            .recv_timeout(Duration::from_millis(20))
            .expect("recv")
            .is_none());
    }

    #[test]
    fn port_in_use_names_the_address() {
        let a = UdpEndpoint::bind_port(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bind a");
        let err = UdpEndpoint::bind(a.local_addr()).expect_err("in use");
        assert!(
            err.to_string().contains(&a.local_addr().to_string()),
            "{err}"
        );
    }
}
