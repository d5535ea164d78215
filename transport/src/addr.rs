//! Peer resolution and the classic rtpbin port layout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::UdpError;

/// Resolves `host` (an IPv4/IPv6 literal, optionally in brackets, or a name).
///
/// Names resolving to several addresses take the first IPv4 one when there
/// is one, because the classic GStreamer peers bind IPv4 by default.
pub fn resolve_peer(host: &str) -> Result<IpAddr, UdpError> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip);
    }
    if trimmed.is_empty() {
        return Err(UdpError::NoAddress {
            host: host.to_string(),
            why: "empty host name",
        });
    }
    let addrs: Vec<SocketAddr> = (trimmed, 0u16)
        .to_socket_addrs()
        .map_err(|source| UdpError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| UdpError::NoAddress {
            host: host.to_string(),
            why: "no addresses",
        })
}

/// The unspecified address of the same family as `peer` (0.0.0.0 or ::).
pub fn unspecified_for(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The costream / rtpbin port layout counted from a base port.
///
/// Video RTP and RTCP go to base+0 and base+1, audio to base+2 and base+3;
/// the receiver's RTCP comes back to base+5 (video) and base+7 (audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLayout {
    /// The base port (default 5000).
    pub base: u16,
}

impl PortLayout {
    /// Checks that every port of the layout fits in 16 bits.
    pub fn new(base: u16) -> Result<Self, UdpError> {
        if base == 0 || base > u16::MAX - 7 {
            return Err(UdpError::PortBase(base));
        }
        Ok(Self { base })
    }

    /// Port that carries video RTP.
    pub fn video_rtp(&self) -> u16 {
        self.base
    }
    /// Port that carries the sender's video RTCP.
    pub fn video_rtcp(&self) -> u16 {
        self.base + 1
    }
    /// Port that carries audio RTP.
    pub fn audio_rtp(&self) -> u16 {
        self.base + 2
    }
    /// Port that carries the sender's audio RTCP.
    pub fn audio_rtcp(&self) -> u16 {
        self.base + 3
    }
    /// Port on the sender where the receiver's video RTCP arrives.
    pub fn video_rtcp_back(&self) -> u16 {
        self.base + 5
    }
    /// Port on the sender where the receiver's audio RTCP arrives.
    pub fn audio_rtcp_back(&self) -> u16 {
        self.base + 7
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_without_dns() {
        assert_eq!(
            resolve_peer("127.0.0.1").ok(),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            resolve_peer("[::1]").ok(),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
    }

    #[test]
    fn localhost_name_resolves() {
        assert!(resolve_peer("localhost").is_ok());
    }

    #[test]
    fn bad_names_fail_clearly() {
        let err = resolve_peer("no-such-host.invalid").expect_err("must fail");
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        assert!(resolve_peer("").is_err());
    }

    #[test]
    fn layout_matches_costream() {
        let l = PortLayout::new(5000).expect("valid");
        assert_eq!(
            [
                l.video_rtp(),
                l.video_rtcp(),
                l.audio_rtp(),
                l.audio_rtcp(),
                l.video_rtcp_back(),
                l.audio_rtcp_back()
            ],
            [5000, 5001, 5002, 5003, 5005, 5007]
        );
        assert!(PortLayout::new(65530).is_err());
        assert!(PortLayout::new(0).is_err());
    }

    #[test]
    fn unspecified_keeps_family() {
        assert!(unspecified_for(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_ipv6());
        assert!(unspecified_for(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_ipv4());
    }
}
