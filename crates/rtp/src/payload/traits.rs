//! The two directions of a payload format as traits, so a session can hold
//! any codec's payloader or depayloader behind one interface.

use crate::packet::RtpPacket;
use crate::payload::error::{DepayError, PayloaderError};
use crate::payload::types::DepacketizedUnit;

/// Splits a codec's encoded units into RTP payloads.
pub trait Payloader {
    /// Packetizes one unit, calling `emit(parts, marker)` per packet.
    ///
    /// A packet's payload is the concatenation of `parts`; the marker is set
    /// on the packet that ends the unit. Returns how many packets were
    /// emitted; nothing is emitted when the unit is refused.
    fn packetize<F: FnMut(&[&[u8]], bool)>(
        &mut self,
        unit: &[u8],
        emit: F,
    ) -> Result<usize, PayloaderError>;
}

/// Rebuilds a codec's units from RTP packets.
///
/// Packets must come in sequence order (the jitter buffer's job). An `Err`
/// from [`Depayloader::push`] means that packet was dropped (and counted);
/// the depayloader stays usable.
pub trait Depayloader {
    /// Feeds one packet; completed units queue for [`Depayloader::pop`].
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), DepayError>;

    /// Takes the next completed unit.
    #[must_use]
    fn pop(&mut self) -> Option<DepacketizedUnit>;

    /// Ends the unit in progress (its sender went away). Formats whose
    /// units are single packets have nothing to end.
    fn flush(&mut self) {}
}
