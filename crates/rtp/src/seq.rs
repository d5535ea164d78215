//! Extending 16-bit RTP sequence numbers to 64 bits (RFC 3550 A.1, without
//! probation: the first packet of a source is trusted).

/// A jump ahead at least this large is suspicious (RFC 3550's MAX_DROPOUT).
pub const MAX_DROPOUT: u16 = 3000;
/// A packet at most this far behind the highest is reordered, not a jump.
pub const MAX_MISORDER: u16 = 100;

// Extended numbers start one cycle up so reordered packets from before the
// first one still get a value; the wire form subtracts it again.
const BASE: u64 = 1 << 16;

/// Where a sequence number falls relative to the highest one seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// At or ahead of the highest (now the highest); its extended number.
    Ahead(u64),
    /// Up to [`MAX_MISORDER`] behind the highest: reordered or duplicate.
    Behind(u64),
    /// A large jump; drop it unless the next packet follows on from it.
    Jump,
    /// The packet follows a jump, so the source restarted its numbering:
    /// the extender is re-based here and this is the new extended number.
    Restart(u64),
}

/// Tracks the highest sequence number and the wrap-around cycles.
#[derive(Debug, Clone)]
pub struct SeqExtender {
    max_ext: u64,
    bad_seq: Option<u16>,
}

impl SeqExtender {
    /// Starts at the first packet's sequence number.
    pub fn new(first: u16) -> Self {
        Self {
            max_ext: BASE + u64::from(first),
            bad_seq: None,
        }
    }

    /// The extended number of the first packet after a (re)start at `first`.
    pub fn initial(first: u16) -> u64 {
        BASE + u64::from(first)
    }

    /// Classifies `seq` and, if it is ahead, makes it the highest.
    pub fn extend(&mut self, seq: u16) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_ext as u16);
        if udelta < MAX_DROPOUT {
            self.max_ext += u64::from(udelta);
            self.bad_seq = None;
            SeqVerdict::Ahead(self.max_ext)
        } else if udelta <= u16::MAX - MAX_MISORDER {
            if self.bad_seq == Some(seq) {
                *self = Self::new(seq);
                SeqVerdict::Restart(self.max_ext)
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                SeqVerdict::Jump
            }
        } else {
            let behind = u64::from(udelta.wrapping_neg());
            SeqVerdict::Behind(self.max_ext - behind)
        }
    }

    /// The highest extended number seen.
    pub fn highest(&self) -> u64 {
        self.max_ext
    }

    /// The extended number closest to the highest for `seq`, without
    /// classifying it or moving anything (for retransmitted packets, which
    /// may lie further behind than [`MAX_MISORDER`]).
    pub fn nearest(&self, seq: u16) -> u64 {
        let d = i64::from(seq.wrapping_sub(self.max_ext as u16) as i16);
        (self.max_ext as i64 + d).max(0) as u64
    }

    /// An extended number as RTCP carries it: cycles << 16 | seq.
    pub fn wire(ext: u64) -> u32 {
        ext.saturating_sub(BASE) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_forward_and_back() {
        let mut s = SeqExtender::new(65534);
        assert_eq!(s.extend(65535), SeqVerdict::Ahead(BASE + 65535));
        assert_eq!(s.extend(1), SeqVerdict::Ahead(BASE + 65537));
        assert_eq!(s.extend(65535), SeqVerdict::Behind(BASE + 65535));
        assert_eq!(
            s.extend(1),
            SeqVerdict::Ahead(BASE + 65537),
            "duplicate of highest"
        );
        assert_eq!(SeqExtender::wire(s.highest()), 0x0001_0001);
        // Reordered before the very first packet still gets a value.
        let mut s = SeqExtender::new(0);
        assert_eq!(s.extend(65530), SeqVerdict::Behind(BASE - 6));
        assert_eq!(SeqExtender::wire(BASE - 6), 0);
    }

    #[test]
    fn nearest_does_not_move_anything() {
        let s = SeqExtender::new(5);
        assert_eq!(s.nearest(65000), BASE + 5 - 541);
        assert_eq!(s.nearest(7), BASE + 7);
        assert_eq!(s.highest(), BASE + 5);
    }

    #[test]
    fn jump_needs_two_sequential_packets() {
        let mut s = SeqExtender::new(100);
        assert_eq!(s.extend(20_000), SeqVerdict::Jump);
        assert_eq!(
            s.extend(101),
            SeqVerdict::Ahead(BASE + 101),
            "stray packet ignored"
        );
        assert_eq!(s.extend(30_000), SeqVerdict::Jump);
        assert_eq!(s.extend(30_001), SeqVerdict::Restart(BASE + 30_001));
        assert_eq!(s.extend(30_002), SeqVerdict::Ahead(BASE + 30_002));
        // Just inside the limits.
        assert_eq!(s.extend(30_002 + 2999), SeqVerdict::Ahead(BASE + 33_001));
        assert_eq!(s.extend(33_001 - 100), SeqVerdict::Behind(BASE + 32_901));
        assert_eq!(s.extend(33_001 - 101), SeqVerdict::Jump);
    }
}
