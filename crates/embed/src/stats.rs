//! Figures for stats lines.

/// Formats a byte count over an interval as kbit/s.
pub fn kbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / 1000.0 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbps_is_kilobits_per_second() {
        assert_eq!(kbps(125_000, 1.0), 1000.0);
        assert_eq!(kbps(1, 0.0), 0.0);
    }
}
