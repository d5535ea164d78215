//! Each publish's stages (the source stage and one per rendition) run as
//! one group on the stage runner: a [`Stages`] of their own, so a stage
//! that fails or panics stops that group only. The keeper, one stage of
//! the server, tends the groups: it logs a group's failure on one error
//! line naming the stream and the stage and lets go of the stream key at
//! once; when every stage of a group has returned it joins them, ends every
//! playlist of the stream (`EXT-X-ENDLIST`, also for a stage that panicked
//! mid-segment) and marks the stream's stages finished, which frees the key.
//! Every other stream, the RTMP and HTTP servers and the server itself go
//! on.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::hls_dir::HlsDir;
use super::live::{LiveStreams, PublishClaim};
use super::stage::end_playlist;
use super::ENDED_RETENTION;
use crate::error::one_line;
use crate::run::{panic_message, Stages, Stop};
use crate::{Error, Result};

/// A stage of a group: runs until its input closes or the group's stop is set.
pub(crate) type StageFn = Box<dyn FnOnce(&Stop) -> Result<()> + Send>;

/// One publish session's stages.
struct Group {
    claim: Arc<PublishClaim>,
    stages: Stages,
    /// Stages that have not yet returned (or whose closures were never run).
    running: Arc<AtomicUsize>,
    /// The failure has been logged and the key let go.
    announced: bool,
    hls_dir: Option<HlsDir>,
}

/// Every running group, and the keeper's wake-up line.
#[derive(Debug)]
pub(crate) struct Groups {
    list: Mutex<HashMap<u64, Group>>,
    next: AtomicU64,
    /// Each stage's return wakes the keeper; one message per stage thread,
    /// drained as they come, so the channel holds no more than the stages
    /// that exist.
    wake: Sender<()>,
    woken: Receiver<()>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("key", &self.claim.stream().key())
            .field("session", &self.claim.session())
            .finish_non_exhaustive()
    }
}

/// Held by a stage's closure: its drop (return, panic, or a thread that
/// never started) counts the stage out and wakes the keeper.
struct Running {
    count: Arc<AtomicUsize>,
    wake: Sender<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        let _ = self.wake.send(());
    }
}

impl Groups {
    pub(crate) fn new() -> Self {
        let (wake, woken) = crossbeam_channel::unbounded();
        Self {
            list: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            wake,
            woken,
        }
    }

    fn list(&self) -> MutexGuard<'_, HashMap<u64, Group>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when no group is running.
    pub(crate) fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// Starts `stages` (name, closure) as one group for the session of
    /// `claim`; returns the group's stop flag, set once a stage has failed.
    /// A stage that cannot be started fails the group like any other.
    pub(crate) fn start(
        &self,
        claim: Arc<PublishClaim>,
        hls_dir: Option<HlsDir>,
        stages: Vec<(String, StageFn)>,
    ) -> Stop {
        // The list stays locked until the group is in it, so the keeper
        // cannot miss a stage that returns at once.
        let mut list = self.list();
        let mut group = Group {
            claim,
            stages: Stages::new(Stop::new()),
            running: Arc::new(AtomicUsize::new(0)),
            announced: false,
            hls_dir,
        };
        group.claim.stream().stages_started();
        for (name, run) in stages {
            group.running.fetch_add(1, Ordering::AcqRel);
            let running = Running {
                count: group.running.clone(),
                wake: self.wake.clone(),
            };
            let spawned = group.stages.spawn(&name, move |stop| {
                let _running = running;
                run(stop)
            });
            if let Err(e) = spawned {
                group.stages.failure().fail(group.stages.stop_flag(), e);
                break;
            }
        }
        let stop = group.stages.stop_flag().clone();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        list.insert(id, group);
        stop
    }

    /// Waits up to `limit` for a stage to return.
    fn sleep(&self, limit: Duration) {
        let _ = self.woken.recv_timeout(limit);
        while self.woken.try_recv().is_ok() {}
    }

    /// Logs new failures (and lets go of their keys), then finishes every
    /// group whose stages have all returned.
    fn tend(&self) {
        let done: Vec<Group> = {
            let mut list = self.list();
            for group in list.values_mut() {
                if !group.announced && group.stages.failed() {
                    if let Some(err) = group.stages.failure().take() {
                        group.announced = true;
                        announce(&group.claim, &err);
                    }
                }
            }
            let ids: Vec<u64> = list
                .iter()
                .filter(|(_, g)| g.running.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| list.remove(id)).collect()
        };
        for group in done {
            finish(group);
        }
    }

    /// Stops every group and finishes each once its stages have returned.
    fn stop_all(&self) {
        let all: Vec<Group> = self.list().drain().map(|(_, g)| g).collect();
        for group in &all {
            group.stages.stop();
        }
        for group in all {
            finish(group);
        }
    }
}

/// The error line of a failed stream, and its key let go of at once.
fn announce(claim: &PublishClaim, err: &Error) {
    tracing::error!(
        "{}: stream ended (session {}): {}",
        claim.stream().key(),
        claim.session(),
        one_line(err)
    );
    claim.release();
}

/// Joins the group's stages (all have returned), ends every playlist of
/// the stream and frees its stages' hold on the key.
fn finish(group: Group) {
    let Group {
        claim,
        stages,
        announced,
        hls_dir,
        ..
    } = group;
    let failure = stages.failure().clone();
    // Every stage has returned (or its thread is returning): this join is short.
    drop(stages);
    if !announced {
        if let Some(err) = failure.take() {
            announce(&claim, &err);
        }
    }
    let stream = claim.stream();
    // A stage that panicked may have left its segmenter mid-update: ending
    // it must not take the keeper (and the server) down with it.
    let ended = panic::catch_unwind(AssertUnwindSafe(|| {
        for variant in stream.variants() {
            end_playlist(&hls_dir, stream, variant);
        }
    }));
    if let Err(payload) = ended {
        tracing::error!(
            "{}: cannot end its playlists: {}",
            stream.key(),
            panic_message(payload.as_ref())
        );
    }
    stream.stages_finished();
}

/// The keeper's loop until `stop`: tends the groups as their stages
/// return, and evicts ended streams once a second. Then stops the groups
/// still running and finishes them.
pub(crate) fn keep(groups: &Groups, live: &LiveStreams, stop: &Stop) -> Result<()> {
    let mut evicted = Instant::now();
    while !stop.requested() {
        groups.sleep(Duration::from_millis(100));
        groups.tend();
        if evicted.elapsed() >= Duration::from_secs(1) {
            evicted = Instant::now();
            for key in live.evict_ended(ENDED_RETENTION) {
                tracing::info!("{key}: ended stream dropped");
            }
        }
    }
    groups.tend();
    groups.stop_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::SOURCE;
    use pstream_mux::HlsConfig;

    fn until_stopped(stop: &Stop) -> Result<()> {
        while !stop.requested() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    #[test]
    fn a_panicking_stage_ends_its_stream_only_and_frees_the_key() {
        let live = Arc::new(LiveStreams::new());
        let groups = Arc::new(Groups::new());
        let mut keeper = Stages::new(Stop::new());
        let (g, l) = (groups.clone(), live.clone());
        keeper
            .spawn("keeper", move |stop| keep(&g, &l, stop))
            .expect("keeper");
        let variants = vec![(SOURCE.to_string(), 0), ("low".to_string(), 0)];
        let hls = HlsConfig::default();
        let claim = |key: &str| {
            Arc::new(
                live.begin(key, &variants, &hls)
                    .expect("config")
                    .expect("free"),
            )
        };
        let good = claim("good");
        let good_stop = groups.start(
            good.clone(),
            None,
            vec![("good/source".into(), Box::new(until_stopped))],
        );
        let bad = claim("bad");
        let bad_stop = groups.start(
            bad.clone(),
            None,
            vec![
                ("bad/source".into(), Box::new(until_stopped)),
                ("bad/low".into(), Box::new(|_: &Stop| panic!("boom"))),
            ],
        );
        // The key frees although the failed session's claim is still held
        // (its publisher's connection has not closed yet).
        let deadline = Instant::now() + Duration::from_secs(5);
        let again = loop {
            if let Ok(Ok(c)) = live.begin("bad", &variants, &hls) {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "the key of the failed stream stayed busy"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(again.session(), 2);
        assert!(bad_stop.requested(), "the failed group stopped");
        for name in [SOURCE, "low"] {
            let playlist = live.media_playlist("bad", name).expect("playlist");
            assert!(
                String::from_utf8_lossy(&playlist.body).contains("#EXT-X-ENDLIST"),
                "{name} not ended"
            );
        }
        assert!(!good_stop.requested(), "the other stream went on");
        assert!(live.get("good").is_some_and(|s| s.is_live()));
        assert!(!keeper.failed(), "the keeper went on");
        // The failed publisher going afterwards does not free the new session's key.
        drop(bad);
        assert!(live.get("bad").is_some_and(|s| s.is_live()));
        keeper.stop();
        keeper.wait().expect("the keeper ends cleanly");
        assert!(good_stop.requested(), "the keeper stops the groups left");
        assert!(groups.is_empty());
    }
}
