//! Which addresses a session takes packets from.
//!
//! A receiver on a public port otherwise follows whoever sends first: a host
//! that starts before the real peer, or during its restart gap, locks the
//! receiver onto its own stream. A sender otherwise obeys anyone's PLIs.
//! Only the peer's IP address is compared, never its port: NATs change
//! ports, and RTP and RTCP leave a sender from different ones.

use std::net::IpAddr;

/// The addresses packets are accepted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFilter {
    /// Any address (the first sender heard is followed while it lives).
    Any,
    /// These addresses only (a host name's addresses as resolved at start).
    Only(Vec<IpAddr>),
}

impl PeerFilter {
    /// Packets from `addr` only.
    pub fn only(addr: IpAddr) -> Self {
        Self::Only(vec![addr])
    }

    /// Whether a packet from `from` is accepted. An IPv4 address and its
    /// IPv4-mapped IPv6 form (what a dual-stack socket reports) are the same.
    pub fn admits(&self, from: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Only(addrs) => {
                let from = from.to_canonical();
                addrs.iter().any(|a| a.to_canonical() == from)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn only_the_peers_address_is_admitted_whatever_its_form() {
        let f = PeerFilter::only(ip("192.0.2.7"));
        assert!(f.admits(ip("192.0.2.7")));
        assert!(f.admits(ip("::ffff:192.0.2.7")));
        assert!(!f.admits(ip("192.0.2.8")));
        assert!(!f.admits(ip("::1")));
        let f = PeerFilter::Only(vec![ip("2001:db8::1"), ip("192.0.2.7")]);
        assert!(f.admits(ip("2001:db8::1")) && f.admits(ip("192.0.2.7")));
        assert!(!f.admits(ip("2001:db8::2")));
        assert!(PeerFilter::Any.admits(ip("203.0.113.9")));
        assert!(!PeerFilter::Only(Vec::new()).admits(ip("192.0.2.7")));
    }
}
