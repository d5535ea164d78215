//! Running and stopping a pipeline: the stop flag every stage polls, the
//! first fatal error, and named stage threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A stop flag set by the embedding program, a deadline, or a failing stage.
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Stop {
    /// A flag that is set only by [`Stop::trigger`] (or a stage ending the run).
    pub fn new() -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            deadline: None,
        }
    }

    /// A flag that also becomes set `seconds` from now.
    pub fn after(seconds: f64) -> Result<Self> {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(Error::Config(format!(
                "duration {seconds} must be a positive number of seconds"
            )));
        }
        Ok(Self {
            flag: Arc::new(AtomicBool::new(false)),
            deadline: Some(Instant::now() + Duration::from_secs_f64(seconds.min(1e9))),
        })
    }

    /// The flag itself, for signal handlers (`signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// True once the run should end.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Asks every stage to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

/// The first fatal error any stage hit; the run ends with it.
pub type Fatal = Arc<Mutex<Option<Error>>>;

/// Records a stage's fatal error (the first one wins) and stops the run.
pub fn fail(slot: &Fatal, stop: &Stop, err: Error) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(err);
    }
    stop.trigger();
}

/// Takes the fatal error out of the slot, if a stage recorded one.
pub fn take_fatal(slot: &Fatal) -> Option<Error> {
    slot.lock().ok().and_then(|mut f| f.take())
}

/// Starts a named thread (names show up in `top -H` and in panics).
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::failed(format!("cannot start thread {name}"), e))
}

/// The stage threads of a running stream, its stop flag and its first
/// failure: what every running stream holds, and how it ends. Dropping it
/// stops and joins every stage.
#[derive(Debug)]
pub struct Stages {
    stop: Stop,
    fatal: Fatal,
    threads: Vec<JoinHandle<()>>,
}

impl Stages {
    /// No stage yet; `stop` ends the run.
    pub fn new(stop: Stop) -> Self {
        Self {
            stop,
            fatal: Arc::new(Mutex::new(None)),
            threads: Vec::new(),
        }
    }

    /// The stop flag the stages poll.
    pub fn stop_flag(&self) -> &Stop {
        &self.stop
    }

    /// Where a stage records why the run failed.
    pub fn fatal(&self) -> &Fatal {
        &self.fatal
    }

    /// Takes a started stage thread.
    pub fn add(&mut self, thread: JoinHandle<()>) {
        self.threads.push(thread);
    }

    /// Stage threads running (or finished, not yet joined).
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// True once the run is ending.
    pub fn ending(&self) -> bool {
        self.stop.requested()
    }

    /// Asks every stage to stop.
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// Blocks like a thread join until the run ends by itself (duration,
    /// source end, failure) or through [`Stages::stop`] (never ending it
    /// early), joins every stage, and returns the first failure.
    pub fn wait(&mut self) -> Result<()> {
        while !self.stop.requested() {
            thread::sleep(Duration::from_millis(20));
        }
        self.stop_and_join();
        match take_fatal(&self.fatal) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) {
        self.stop.trigger();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_is_set_by_trigger_deadline_and_first_failure_wins() {
        let stop = Stop::new();
        assert!(!stop.requested());
        let fatal: Fatal = Arc::default();
        fail(&fatal, &stop, Error::Config("first".into()));
        fail(&fatal, &stop, Error::Config("second".into()));
        assert!(stop.requested());
        assert_eq!(
            take_fatal(&fatal).map(|e| e.to_string()),
            Some("first".into())
        );
        assert!(Stop::after(0.0).is_err());
        let soon = Stop::after(0.01).expect("valid");
        thread::sleep(Duration::from_millis(30));
        assert!(soon.requested());
    }

    #[test]
    fn stages_wait_for_the_end_and_return_the_first_failure() {
        let mut stages = Stages::new(Stop::after(0.05).expect("valid"));
        let (stop, fatal) = (stages.stop_flag().clone(), stages.fatal().clone());
        stages.add(
            spawn("stage", move || {
                while !stop.requested() {
                    thread::sleep(Duration::from_millis(1));
                }
                fail(&fatal, &stop, Error::Config("late".into()));
            })
            .expect("spawn"),
        );
        let started = Instant::now();
        let err = stages.wait().expect_err("the stage failed");
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "ended early"
        );
        assert_eq!(err.to_string(), "late");
        assert_eq!(stages.count(), 0);
        assert!(stages.ending());
    }
}
