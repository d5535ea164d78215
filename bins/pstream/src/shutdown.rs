//! Clean stopping: Ctrl-C, SIGTERM and `--duration` all end in the same
//! flag, the library's [`pstream_embed::Stop`].

use std::sync::{Arc, Mutex};

/// The stop flag every stage polls.
pub type Shutdown = pstream_embed::Stop;

/// The first fatal error any stage hit; the run ends with it.
pub type FatalSlot = Arc<Mutex<Option<anyhow::Error>>>;

/// A stop flag set by SIGINT, SIGTERM, or after `duration` seconds.
pub fn install(duration: Option<f64>) -> anyhow::Result<Shutdown> {
    let stop = match duration {
        Some(d) => Shutdown::after(d)
            .map_err(|_| anyhow::anyhow!("--duration {d} must be a positive number of seconds"))?,
        None => Shutdown::new(),
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.flag())
            .map_err(|e| anyhow::anyhow!("cannot install the signal handler: {e}"))?;
    }
    Ok(stop)
}

/// Records a stage's fatal error (the first one wins) and stops the run.
pub fn fail(slot: &FatalSlot, shutdown: &Shutdown, err: anyhow::Error) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(err);
    }
    shutdown.trigger();
}
