//! Session ids for WHEP and WHIP resource URLs.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Seed for [`SessionIds`]: 256 bits, from the OS in serve.
pub type IdSeed = [u8; 32];

/// Unguessable session ids: 128 bits each from a ChaCha-based generator.
///
/// An id is a capability (whoever knows a session's URL may DELETE it), and
/// every viewer or publisher is handed its own: a generator whose state can
/// be read back from one output (xorshift, say) would let one peer work out
/// the ids of the others. The caller gives the seed, so the core stays
/// free of I/O.
#[derive(Debug)]
pub(crate) struct SessionIds(StdRng);

impl SessionIds {
    /// Ids drawn from `seed`.
    pub(crate) fn new(seed: IdSeed) -> Self {
        Self(StdRng::from_seed(seed))
    }

    /// The next id: 32 lowercase hex digits.
    pub(crate) fn next(&mut self) -> String {
        format!("{:016x}{:016x}", self.0.next_u64(), self.0.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let mut ids = SessionIds::new([3; 32]);
        let (a, b) = (ids.next(), ids.next());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_ne!(SessionIds::new([4; 32]).next(), a);
    }
}
