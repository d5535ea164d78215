//! Clean stopping: Ctrl-C, SIGTERM and `--duration` all end in the same
//! flag, the library's [`pstream_embed::Stop`].

/// The stop flag every stage polls.
pub type Shutdown = pstream_embed::Stop;

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
