//! A fault hook for tests of the stage runner: with the `fault-injection`
//! cargo feature (on only in this workspace's test builds, never in a
//! release), `PSTREAM_FAULT_PANIC=NAME[,NAME...]` makes the stages of those
//! names panic as they start, so tests can check that a panicking stage
//! ends its run (or, in serve, its stream) and is named. Without the
//! feature this is an empty inline function.

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
