//! Clean stopping: Ctrl-C, SIGTERM and `--duration` all end in the same flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A stop flag set by signals, a deadline, or a failing stage.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Shutdown {
    /// Registers SIGINT and SIGTERM and an optional run time.
    pub fn install(duration: Option<f64>) -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, flag.clone())
                .context("cannot install the signal handler")?;
        }
        let deadline = match duration {
            Some(d) if d.is_finite() && d > 0.0 => {
                Some(Instant::now() + Duration::from_secs_f64(d.min(1e9)))
            }
            Some(d) => anyhow::bail!("--duration {d} must be a positive number of seconds"),
            None => None,
        };
        Ok(Self { flag, deadline })
    }

    /// True once the run should end.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Asks every stage to stop (used when a stage fails or a source ends).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// The first fatal error any stage hit; the run ends with it.
pub type FatalSlot = Arc<std::sync::Mutex<Option<anyhow::Error>>>;

/// Records a stage's fatal error (the first one wins) and stops the run.
pub fn fail(slot: &FatalSlot, shutdown: &Shutdown, err: anyhow::Error) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(err);
    }
    shutdown.trigger();
}
