//! The pipeline clock: one monotonic time base, mapped once onto wall-clock.
//!
//! Capture time travels with the media as an [`Instant`]. Anything that needs
//! wall-clock (the RTCP SR NTP timestamp, the test pattern's timecode) maps
//! that instant through the same [`PipelineClock`], whose wall-clock origin is
//! read exactly once. Mixing fresh `SystemTime::now()` reads into the media
//! path would make SR pairs and timecodes jump whenever NTP slews the system
//! clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: 32.32 fixed point seconds since 1900.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The NTP time of a moment given in microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: u64) -> Self {
        let secs = micros / 1_000_000 + NTP_UNIX_OFFSET_SECS;
        let frac_us = micros % 1_000_000;
        // frac = us * 2^32 / 1e6, exact in u64 because us < 1e6.
        let frac = (frac_us << 32) / 1_000_000;
        NtpTime((secs << 32) | frac)
    }

    /// Microseconds since the Unix epoch for this NTP time (saturating at 0).
    pub fn to_unix_micros(self) -> u64 {
        let secs = (self.0 >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
        let frac = self.0 & 0xffff_ffff;
        secs * 1_000_000 + ((frac * 1_000_000) >> 32)
    }

    /// The middle 32 bits, as carried in RTCP LSR fields and compared with DLSR.
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// The pipeline's single time base: a monotonic origin paired with the
/// wall-clock time read at that same moment.
#[derive(Debug, Clone, Copy)]
pub struct PipelineClock {
    origin: Instant,
    origin_unix_micros: u64,
}

impl PipelineClock {
    /// Starts a clock now, reading the wall-clock once.
    pub fn start() -> Self {
        let origin = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self::with_origin(origin, unix.as_micros() as u64)
    }

    /// A clock with a given origin, for tests and for replaying captures.
    pub fn with_origin(origin: Instant, origin_unix_micros: u64) -> Self {
        Self {
            origin,
            origin_unix_micros,
        }
    }

    /// The monotonic instant this clock started at.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The current instant. Only I/O-side code calls this; protocol cores take `now`.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Time elapsed since the origin for `t` (zero for instants before it).
    pub fn elapsed_at(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }

    /// Wall-clock microseconds since the Unix epoch for the instant `t`.
    pub fn unix_micros(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.origin) {
            Some(d) => self.origin_unix_micros + d.as_micros() as u64,
            None => self
                .origin_unix_micros
                .saturating_sub(self.origin.duration_since(t).as_micros() as u64),
        }
    }

    /// The instant corresponding to wall-clock microseconds since the Unix epoch.
    ///
    /// Used to turn a timecode read off a received picture back into this
    /// machine's time base; instants before the origin are clamped to it
    /// because `Instant` cannot go below its platform start.
    pub fn instant_at_unix_micros(&self, micros: u64) -> Instant {
        if micros >= self.origin_unix_micros {
            self.origin + Duration::from_micros(micros - self.origin_unix_micros)
        } else {
            self.origin
                .checked_sub(Duration::from_micros(self.origin_unix_micros - micros))
                .unwrap_or(self.origin)
        }
    }

    /// The NTP timestamp for the instant `t`.
    pub fn ntp(&self, t: Instant) -> NtpTime {
        NtpTime::from_unix_micros(self.unix_micros(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_round_trips_unix_micros() {
        for us in [0u64, 1, 999_999, 1_700_000_000_123_456] {
            let back = NtpTime::from_unix_micros(us).to_unix_micros();
            assert!(back.abs_diff(us) <= 1, "{us} -> {back}");
        }
    }

    #[test]
    fn ntp_epoch_offset_is_1900() {
        let t = NtpTime::from_unix_micros(0);
        assert_eq!(t.0 >> 32, NTP_UNIX_OFFSET_SECS);
        assert_eq!(t.0 & 0xffff_ffff, 0);
    }

    #[test]
    fn clock_maps_instants_both_ways() {
        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, 1_000_000_000_000);
        let later = origin + Duration::from_millis(1500);
        assert_eq!(clock.unix_micros(later), 1_000_001_500_000);
        assert_eq!(clock.instant_at_unix_micros(1_000_001_500_000), later);
        assert_eq!(clock.elapsed_at(later), Duration::from_millis(1500));
    }

    #[test]
    fn middle32_takes_the_middle_bits() {
        assert_eq!(NtpTime(0x1122_3344_5566_7788).middle32(), 0x3344_5566);
    }
}
