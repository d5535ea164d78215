//! A fault hook for tests of the stage runner: with the `fault-injection`
//! cargo feature (on only in this workspace's test builds, never in a
//! release), `PSTREAM_FAULT_PANIC=NAME[,NAME...]` makes the stages of those
//! names panic as they start, and `NAME@N` makes a stage that counts its
//! work ([`maybe_panic_after`]) panic once it has handled N items, with
//! data flowing; so tests can check that a panicking stage ends its run
//! (or, in serve, its stream) and is named. Without the feature these are
//! empty inline functions.

/// The environment variable naming the stages to panic.
pub const ENV: &str = "PSTREAM_FAULT_PANIC";

/// Panics when `stage` is named in [`ENV`] and the feature is on.
#[inline]
pub fn maybe_panic(stage: &str) {
    #[cfg(feature = "fault-injection")]
    if let Ok(names) = std::env::var(ENV) {
        if names.split(',').any(|n| n.trim() == stage) {
            panic!("injected fault ({ENV})");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = stage;
}

/// Panics when [`ENV`] names `stage@N`, `handled` (what the stage has done
/// so far: pictures decoded, ...) has reached N, and the feature is on.
#[inline]
pub fn maybe_panic_after(stage: &str, handled: u64) {
    #[cfg(feature = "fault-injection")]
    if let Some(after) = after(stage) {
        if handled >= after {
            panic!("injected fault after {after} ({ENV})");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (stage, handled);
}

/// The N of `stage@N` in [`ENV`], read once per process (the hook is on a
/// stage's per-item path).
#[cfg(feature = "fault-injection")]
fn after(stage: &str) -> Option<u64> {
    static AFTER: std::sync::OnceLock<Vec<(String, u64)>> = std::sync::OnceLock::new();
    AFTER
        .get_or_init(|| {
            std::env::var(ENV)
                .unwrap_or_default()
                .split(',')
                .filter_map(|n| {
                    let (name, count) = n.trim().split_once('@')?;
                    Some((name.to_string(), count.parse().ok()?))
                })
                .collect()
        })
        .iter()
        .find(|(name, _)| name == stage)
        .map(|(_, n)| *n)
}
