//! The stage runner every pipeline (send, recv, push, serve) is built on:
//! named stage threads, the stop flag they poll, the first failure with its
//! cause chain, panics caught and named, everything joined on drop.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
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

/// Where the first failure of a run is kept; cloned into whatever must be
/// able to fail the run from outside a stage's return value.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    slot: Arc<Mutex<Option<Error>>>,
}

impl Failure {
    /// Records `err` (the first one wins) and stops the run.
    pub fn fail(&self, stop: &Stop, err: Error) {
        if let Ok(mut s) = self.slot.lock() {
            s.get_or_insert(err);
        }
        stop.trigger();
    }

    /// Takes the recorded failure out, if any.
    pub fn take(&self) -> Option<Error> {
        self.slot.lock().ok().and_then(|mut f| f.take())
    }

    /// True once a failure has been recorded.
    pub fn is_set(&self) -> bool {
        self.slot.lock().map(|s| s.is_some()).unwrap_or(true)
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

/// Starts a named thread (names show up in `top -H` and in panics). For a
/// stage of a pipeline use [`Stages::spawn`], which also catches its panics.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|source| Error::Spawn {
            stage: name.to_string(),
            source,
        })
}

/// The stage threads of a running pipeline, its stop flag and its first
/// failure: what every running stream holds, and how it ends. A stage is a
/// closure returning `Result`: an error or a panic ends the run with that
/// failure, naming the stage. Dropping it stops and joins every stage.
#[derive(Debug)]
pub struct Stages {
    stop: Stop,
    failure: Failure,
    threads: Vec<JoinHandle<()>>,
}

impl Stages {
    /// No stage yet; `stop` ends the run.
    pub fn new(stop: Stop) -> Self {
        Self {
            stop,
            failure: Failure::default(),
            threads: Vec::new(),
        }
    }

    /// Starts stage `name` on its own thread. `run` gets the stop flag; it
    /// returns when its input closes or the flag is set. An `Err` or a
    /// panic records the run's failure (the first one wins) and stops every
    /// other stage.
    pub fn spawn<F>(&mut self, name: &str, run: F) -> Result<()>
    where
        F: FnOnce(&Stop) -> Result<()> + Send + 'static,
    {
        let (stop, failure, stage) = (self.stop.clone(), self.failure.clone(), name.to_string());
        let thread = spawn(name, move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                crate::fault::maybe_panic(&stage);
                run(&stop)
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failure.fail(&stop, err),
                Err(payload) => failure.fail(
                    &stop,
                    Error::StagePanicked {
                        stage,
                        message: panic_message(payload.as_ref()),
                    },
                ),
            }
        })?;
        self.threads.push(thread);
        Ok(())
    }

    /// The stop flag the stages poll.
    pub fn stop_flag(&self) -> &Stop {
        &self.stop
    }

    /// Where a failure from outside a stage's return value is recorded.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// Stage threads running (or finished, not yet joined).
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// True once the run is ending.
    pub fn ending(&self) -> bool {
        self.stop.requested()
    }

    /// True once a stage has failed or panicked (the run is then ending).
    pub fn failed(&self) -> bool {
        self.failure.is_set()
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
        match self.failure.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) {
        self.stop.trigger();
        for t in self.threads.drain(..) {
            // A stage's panic is caught inside its thread, so a join error
            // can only come from the panic machinery itself failing.
            if t.join().is_err() {
                self.failure.fail(
                    &self.stop,
                    Error::StagePanicked {
                        stage: "unknown".into(),
                        message: "a stage thread could not be joined".into(),
                    },
                );
            }
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
    fn stop_is_set_by_trigger_and_deadline_and_first_failure_wins() {
        let stop = Stop::new();
        assert!(!stop.requested());
        let failure = Failure::default();
        failure.fail(&stop, Error::Config("first".into()));
        failure.fail(&stop, Error::Config("second".into()));
        assert!(stop.requested());
        assert_eq!(failure.take().map(|e| e.to_string()), Some("first".into()));
        assert!(Stop::after(0.0).is_err());
        let soon = Stop::after(0.01).expect("valid");
        thread::sleep(Duration::from_millis(30));
        assert!(soon.requested());
    }

    #[test]
    fn stages_wait_for_the_end_and_return_the_first_failure() {
        let mut stages = Stages::new(Stop::after(0.05).expect("valid"));
        stages
            .spawn("stage", |stop| {
                while !stop.requested() {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(Error::Config("late".into()))
            })
            .expect("spawn");
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

    #[test]
    fn a_panicking_stage_ends_the_run_and_is_named() {
        let mut stages = Stages::new(Stop::new());
        stages
            .spawn("patient", |stop| {
                while !stop.requested() {
                    thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
            .expect("spawn");
        stages
            .spawn("video-decode", |_| panic!("index out of bounds"))
            .expect("spawn");
        let err = stages.wait().expect_err("the stage panicked");
        assert!(err.is_panic());
        assert_eq!(
            err.to_string(),
            "stage video-decode panicked: index out of bounds"
        );
        assert_eq!(stages.count(), 0, "every stage joined");
    }
}
