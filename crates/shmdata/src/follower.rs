//! The follower: reads a shmdata writer's frames into pstream.
//!
//! A thread of its own serves the socket: it answers the writer's greeting,
//! and for each update takes the read lock, copies the frame out of the
//! shared memory into a buffer of its own, and releases the lock at once.
//! The caller's [`ShmdataFollower::next_event`] then converts the copy to
//! I420 or f32 on its own thread. So the writer (score, GStreamer) waits for
//! pstream no longer than one `memcpy`, however slow the pipeline behind is:
//! frames the caller does not take in time are dropped, oldest first, from a
//! bounded queue and counted.
//!
//! Hot connect and disconnect: the thread waits for a writer that is not
//! there yet (retrying every `retry_interval`), follows one that stops and
//! comes back (score stopped and played again, a GStreamer pipeline
//! restarted), and reports the caps each writer brings, so a size or format
//! change reaches the caller as a [`FollowerEvent::Connected`] with
//! `changed` set. Waiting is the choice over failing after a timeout: the
//! follower is what a user starts before (or while restarting) the writer,
//! and the wait is reported once ([`FollowerEvent::Waiting`] and one log
//! line) rather than on every retry; a caller that wants a deadline has one
//! in the `next_event` timeout.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::{AudioBlock, VideoFrame};

use super::caps::{AudioCaps, Caps, PixelFormat, SampleFormat};
use super::pixels::{self, Layout};
use super::proto::{FollowerDecoder, Message, WireLayout};
use super::sysv::{self, Segment, SemSet};
use super::{check_path, ShmdataError, READ_END, READ_START};

/// Largest audio buffer taken from a writer (about 2.7 s of 8-channel
/// F32 at 48 kHz); larger ones are dropped and counted.
pub const MAX_AUDIO_BYTES: usize = 4 << 20;

/// How the follower waits and queues.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    /// How long a writer has to greet a new connection with its caps
    /// (libshmdata's own reader gives 1 s).
    pub greeting_timeout: Duration,
    /// How long the read lock may wait for the writer to finish a frame
    /// before the frame is dropped (a writer that died mid-frame never does).
    pub lock_timeout: Duration,
    /// Pause between connection attempts while no writer is there.
    pub retry_interval: Duration,
    /// Frames (or audio buffers) held for the caller; beyond it the oldest
    /// is dropped and counted.
    pub queue_frames: usize,
    /// Bytes held for the caller, whatever the count (at least one frame is
    /// always held).
    pub queue_bytes: usize,
    /// Cut audio into blocks of this many milliseconds (pstream's sources
    /// hand out 10 ms blocks), whatever the writer's buffers are; `None`
    /// passes the writer's buffers on as they come.
    pub audio_block_ms: Option<u32>,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        FollowerOptions {
            greeting_timeout: Duration::from_secs(1),
            lock_timeout: Duration::from_millis(500),
            retry_interval: Duration::from_millis(50),
            queue_frames: 4,
            queue_bytes: 128 << 20,
            audio_block_ms: None,
        }
    }
}

/// Why the follower is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Nothing at the path yet.
    NoSocket,
    /// A socket file nobody listens on: a writer that crashed, or one
    /// stopped without cleaning up.
    StaleSocket,
    /// Something listens at the path but sent no shmdata greeting in time.
    NoGreeting,
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitReason::NoSocket => "no writer yet",
            WaitReason::StaleSocket => {
                "a socket file with no writer behind it (a writer that crashed?)"
            }
            WaitReason::NoGreeting => "a process listens there but sent no shmdata caps",
        })
    }
}

/// What [`ShmdataFollower::next_event`] returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FollowerEvent {
    /// No writer is there; the follower keeps trying. Reported once per
    /// wait (at the start, and after a writer leaves and none is back).
    Waiting(WaitReason),
    /// A writer is there with these caps: the first one, or one back after
    /// [`WriterGone`](FollowerEvent::WriterGone). `changed` is true when
    /// the caps differ from the previous writer's (always for the first).
    Connected {
        /// The writer's caps.
        caps: Caps,
        /// Whether they differ from the last writer's.
        changed: bool,
    },
    /// One picture, converted to I420.
    Video(VideoFrame),
    /// One buffer of audio, as f32.
    Audio(AudioBlock),
    /// The writer left (quit, closed its socket, or died); frames resume
    /// after the next `Connected`.
    WriterGone,
}

/// Live counters of a follower, for a stats line.
#[derive(Debug, Default)]
pub struct FollowerCounters {
    frames: AtomicU64,
    queue_dropped: AtomicU64,
    short_frames: AtomicU64,
    small_segment: AtomicU64,
    lock_timeouts: AtomicU64,
    connections: AtomicU64,
}

impl FollowerCounters {
    /// Frames copied out of the shared memory.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Frames dropped because the caller did not take them in time.
    pub fn queue_dropped(&self) -> u64 {
        self.queue_dropped.load(Ordering::Relaxed)
    }

    /// Frames dropped because the writer announced fewer bytes than the
    /// caps need (or audio bytes that are not whole sample frames).
    pub fn short_frames(&self) -> u64 {
        self.short_frames.load(Ordering::Relaxed)
    }

    /// Frames dropped because the shared memory segment is smaller than
    /// the caps or the announced size claim.
    pub fn small_segment(&self) -> u64 {
        self.small_segment.load(Ordering::Relaxed)
    }

    /// Frames dropped because the writer held its lock too long.
    pub fn lock_timeouts(&self) -> u64 {
        self.lock_timeouts.load(Ordering::Relaxed)
    }

    /// Writers connected to so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// One frame copied out of the shared memory, not yet converted.
#[derive(Debug)]
struct RawFrame {
    generation: u64,
    caps: Caps,
    data: Vec<u8>,
    capture: Instant,
    /// Frames before this one were dropped from the queue.
    gap: bool,
}

/// State the reading thread hands to the caller.
#[derive(Debug, Default)]
struct Inner {
    frames: VecDeque<RawFrame>,
    queued_bytes: usize,
    /// The connection the thread is on, with its caps.
    current: Option<(u64, Caps)>,
    /// The newest connection that has ended.
    gone: u64,
    /// Bumped when a wait begins, with why.
    waiting: (u64, Option<WaitReason>),
    error: Option<ShmdataError>,
    finished: bool,
    /// Copy buffers the caller has converted, for the next frames.
    spare: Vec<Vec<u8>>,
}

/// Copy buffers kept for reuse (a 4K BGRA frame is 33 MB: allocating and
/// zeroing one per frame costs page faults the copy under the lock would
/// otherwise pay).
const SPARE_BUFFERS: usize = 2;

/// How far audio pts counted by samples may stray from the capture clock
/// before they restart from it.
const AUDIO_RESYNC: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
    stop: AtomicBool,
    counters: Arc<FollowerCounters>,
    queue_frames: usize,
    queue_bytes: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.lock());
        self.cv.notify_all();
    }

    /// A buffer of `len` bytes, reusing one the caller is done with.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut buf = self.lock().spare.pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    fn push(&self, mut frame: RawFrame) {
        let mut inner = self.lock();
        let len = frame.data.len();
        let mut evicted = false;
        while !inner.frames.is_empty()
            && (inner.frames.len() >= self.queue_frames
                || inner.queued_bytes + len > self.queue_bytes)
        {
            if let Some(old) = inner.frames.pop_front() {
                inner.queued_bytes -= old.data.len();
                self.counters.queue_dropped.fetch_add(1, Ordering::Relaxed);
                evicted = true;
            }
        }
        if evicted {
            // Mark the first frame after the hole (audio pts restart there).
            match inner.frames.front_mut() {
                Some(next) => next.gap = true,
                None => frame.gap = true,
            }
        }
        inner.queued_bytes += len;
        inner.frames.push_back(frame);
        drop(inner);
        self.cv.notify_all();
    }
}

/// A shmdata follower: frames and caps changes from the writer at a path.
///
/// ```no_run
/// use std::time::Duration;
/// use pstream_shmdata::{FollowerEvent, FollowerOptions, ShmdataFollower};
///
/// let mut f = ShmdataFollower::open("/tmp/score_shm_video", FollowerOptions::default())?;
/// while let Some(ev) = f.next_event(Duration::from_secs(5))? {
///     match ev {
///         FollowerEvent::Video(frame) => println!("{}x{}", frame.width(), frame.height()),
///         other => println!("{other:?}"),
///     }
/// }
/// # Ok::<(), pstream_shmdata::ShmdataError>(())
/// ```
#[derive(Debug)]
pub struct ShmdataFollower {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The connection whose caps the caller last saw.
    generation: u64,
    caps: Option<Caps>,
    gone_reported: bool,
    waiting_seen: u64,
    /// When the first frame came: pts count from it.
    origin: Option<Instant>,
    /// The connection and pts of the next audio sample, so that audio pts
    /// advance by sample count within a connection.
    audio_clock: Option<(u64, Duration)>,
    /// Audio cut to a fixed block length, when asked for.
    reblock: Option<Reblock>,
    audio_block_ms: Option<u32>,
    /// Events ready before anything else (the blocks one buffer gave).
    ready: VecDeque<FollowerEvent>,
}

/// One connection's audio, cut into blocks of a fixed duration.
#[derive(Debug)]
struct Reblock {
    ms: u32,
    generation: u64,
    caps: AudioCaps,
    /// Samples not yet in a block (less than one block between buffers).
    pending: Vec<f32>,
    /// Capture time of the first pending sample.
    capture: Instant,
    /// The connection's first pts, and the sample frames and blocks since.
    base_pts: Duration,
    emitted: u64,
    blocks: u64,
}

impl Reblock {
    /// Sample frames in block `n`: block lengths alternate when a block is
    /// not a whole number of samples, so that none drifts.
    fn frames(&self, n: u64) -> usize {
        let per = u64::from(self.caps.rate) * u64::from(self.ms);
        ((n + 1) * per / 1000 - n * per / 1000) as usize
    }

    fn next_block(&mut self) -> Option<AudioBlock> {
        let ch = usize::from(self.caps.channels);
        let frames = self.frames(self.blocks);
        if frames == 0 || self.pending.len() < frames * ch {
            return None;
        }
        let rest = self.pending.split_off(frames * ch);
        let samples = std::mem::replace(&mut self.pending, rest);
        let rate = u64::from(self.caps.rate);
        let at = |f: u64| Duration::from_nanos(f * 1_000_000_000 / rate);
        let block = AudioBlock {
            sample_rate: self.caps.rate,
            channels: self.caps.channels,
            samples,
            capture: self.capture,
            pts: self.base_pts + at(self.emitted),
        };
        self.capture += at(frames as u64);
        self.emitted += frames as u64;
        self.blocks += 1;
        Some(block)
    }
}

impl ShmdataFollower {
    /// Starts following the writer at `path` (which may not exist yet).
    ///
    /// Fails at once for a path that is not a socket or is too long for
    /// one; everything else (no writer yet, a stale socket) is waited out.
    pub fn open(path: impl AsRef<Path>, options: FollowerOptions) -> Result<Self, ShmdataError> {
        let path = path.as_ref().to_owned();
        check_path(&path)?;
        match std::fs::metadata(&path) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(ShmdataError::NotASocket { path });
            }
            _ => {}
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            counters: Arc::new(FollowerCounters::default()),
            queue_frames: options.queue_frames.max(1),
            queue_bytes: options.queue_bytes,
        });
        let audio_block_ms = options.audio_block_ms.filter(|&ms| ms > 0);
        let reader = Reader {
            path: path.clone(),
            shared: shared.clone(),
            options,
            generation: 0,
            waiting: false,
        };
        let thread = std::thread::Builder::new()
            .name("shmdata-follower".into())
            .spawn(move || reader.run())
            .map_err(|e| ShmdataError::io(&path, "start the reading thread", e))?;
        Ok(ShmdataFollower {
            path,
            shared,
            thread: Some(thread),
            generation: 0,
            caps: None,
            gone_reported: false,
            waiting_seen: 0,
            origin: None,
            audio_clock: None,
            reblock: None,
            audio_block_ms,
            ready: VecDeque::new(),
        })
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current writer's caps, once one has connected.
    pub fn caps(&self) -> Option<Caps> {
        self.caps
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<FollowerCounters> {
        self.shared.counters.clone()
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` when nothing
    /// happened in that time. An error (caps pstream cannot convert, a peer
    /// that does not speak shmdata) ends the follower: later calls return
    /// `ReaderStopped`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<FollowerEvent>, ShmdataError> {
        if let Some(ev) = self.ready.pop_front() {
            return Ok(Some(ev));
        }
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.lock();
        loop {
            if let Some(e) = inner.error.take() {
                return Err(e);
            }
            // A frame of a newer connection: report that connection first
            // (and the end of the previous one before it).
            let newer = inner
                .frames
                .front()
                .map(|f| (f.generation, f.caps))
                .or(inner.current)
                .filter(|(g, _)| *g > self.generation);
            if let Some((generation, caps)) = newer {
                if self.generation > 0 && !self.gone_reported {
                    self.gone_reported = true;
                    return Ok(Some(FollowerEvent::WriterGone));
                }
                let changed = self.caps != Some(caps);
                self.generation = generation;
                self.caps = Some(caps);
                self.gone_reported = false;
                return Ok(Some(FollowerEvent::Connected { caps, changed }));
            }
            if let Some(frame) = inner.frames.pop_front() {
                inner.queued_bytes -= frame.data.len();
                drop(inner);
                match self.convert(frame) {
                    Some(ev) => return Ok(Some(ev)),
                    None => {
                        inner = self.shared.lock();
                        continue;
                    }
                }
            }
            if self.generation > 0 && inner.gone >= self.generation && !self.gone_reported {
                self.gone_reported = true;
                return Ok(Some(FollowerEvent::WriterGone));
            }
            if let (seq, Some(reason)) = inner.waiting {
                if seq != self.waiting_seen {
                    self.waiting_seen = seq;
                    return Ok(Some(FollowerEvent::Waiting(reason)));
                }
            }
            if inner.finished {
                return Err(ShmdataError::ReaderStopped {
                    path: self.path.clone(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            inner = self
                .shared
                .cv
                .wait_timeout(inner, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits up to `timeout` for a writer and returns its caps, leaving its
    /// frames queued (for sources that must know their format before the
    /// first frame). `Ok(None)` when no writer came in time.
    pub fn wait_for_caps(&mut self, timeout: Duration) -> Result<Option<Caps>, ShmdataError> {
        let deadline = Instant::now() + timeout;
        if let Some(c) = self.caps {
            if !self.gone_reported {
                return Ok(Some(c));
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Only connection events come before a connection's frames, so
            // nothing but waits and departures is skipped here.
            match self.next_event(left)? {
                Some(FollowerEvent::Connected { caps, .. }) => return Ok(Some(caps)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    fn convert(&mut self, frame: RawFrame) -> Option<FollowerEvent> {
        let origin = *self.origin.get_or_insert(frame.capture);
        let since = frame.capture.saturating_duration_since(origin);
        match frame.caps {
            Caps::Video(v) => {
                let (w, h) = (v.width as usize, v.height as usize);
                let data = if v.format == PixelFormat::I420 && pixels::i420_is_packed(w, h) {
                    // The reading thread copied exactly the packed picture.
                    Bytes::from(frame.data)
                } else {
                    let mut out = vec![0u8; pixels::i420_len(w, h)];
                    let ok = pixels::to_i420(&v, &frame.data, &mut out);
                    self.recycle(frame.data);
                    if !ok {
                        return None;
                    }
                    Bytes::from(out)
                };
                VideoFrame::new(v.width, v.height, data, frame.capture, since)
                    .ok()
                    .map(FollowerEvent::Video)
            }
            Caps::Audio(a) => {
                let samples = audio_to_f32(&a, &frame.data);
                self.recycle(frame.data);
                let frames = samples.len() / usize::from(a.channels);
                // Pts advance by sample count within a connection, unless
                // frames were dropped or the count strays from the clock (a
                // writer that paused): then they restart from the clock.
                let pts = match self.audio_clock {
                    Some((g, next))
                        if g == frame.generation
                            && !frame.gap
                            && next.abs_diff(since) < AUDIO_RESYNC =>
                    {
                        next
                    }
                    _ => since,
                };
                let resync = self
                    .audio_clock
                    .is_some_and(|(g, next)| g == frame.generation && next != pts);
                let dur = Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(a.rate));
                self.audio_clock = Some((frame.generation, pts + dur));
                if let Some(ms) = self.audio_block_ms {
                    let fresh = resync
                        || self
                            .reblock
                            .as_ref()
                            .is_none_or(|r| r.generation != frame.generation || r.caps != a);
                    if fresh {
                        self.reblock = Some(Reblock {
                            ms,
                            generation: frame.generation,
                            caps: a,
                            pending: Vec::new(),
                            capture: frame.capture,
                            base_pts: pts,
                            emitted: 0,
                            blocks: 0,
                        });
                    }
                    let r = self.reblock.as_mut()?;
                    if r.pending.is_empty() {
                        r.capture = frame.capture;
                    }
                    r.pending.extend_from_slice(&samples);
                    while let Some(block) = r.next_block() {
                        self.ready.push_back(FollowerEvent::Audio(block));
                    }
                    return self.ready.pop_front();
                }
                Some(FollowerEvent::Audio(AudioBlock {
                    sample_rate: a.rate,
                    channels: a.channels,
                    samples,
                    capture: frame.capture,
                    pts,
                }))
            }
        }
    }
}

impl ShmdataFollower {
    fn recycle(&self, buf: Vec<u8>) {
        let mut inner = self.shared.lock();
        if inner.spare.len() < SPARE_BUFFERS {
            inner.spare.push(buf);
        }
    }
}

impl Drop for ShmdataFollower {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Interleaved little-endian samples to f32 in -1.0..=1.0.
fn audio_to_f32(caps: &AudioCaps, raw: &[u8]) -> Vec<f32> {
    match caps.format {
        SampleFormat::F32Le => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        SampleFormat::S16Le => raw
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
            .collect(),
    }
}

/// How a connection ended.
enum End {
    /// The writer left; wait for the next.
    Gone,
    /// The follower is being dropped.
    Stop,
}

/// The reading thread.
struct Reader {
    path: PathBuf,
    shared: Arc<Shared>,
    options: FollowerOptions,
    generation: u64,
    /// Inside a wait already reported.
    waiting: bool,
}

/// One live connection to a writer.
struct Connection {
    sock: UnixStream,
    decoder: FollowerDecoder,
    caps: Caps,
    shm_key: libc::key_t,
    sem: SemSet,
    segment: Option<Segment>,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(mut self) {
        let result = self.follow();
        self.shared.update(|inner| {
            if let Err(e) = result {
                inner.error = Some(e);
            }
            inner.finished = true;
        });
    }

    fn follow(&mut self) -> Result<(), ShmdataError> {
        while !self.stopped() {
            let Some(mut conn) = self.connect()? else {
                self.sleep(self.options.retry_interval);
                continue;
            };
            self.generation += 1;
            self.waiting = false;
            self.shared
                .counters
                .connections
                .fetch_add(1, Ordering::Relaxed);
            let generation = self.generation;
            let caps = conn.caps;
            tracing::debug!("shmdata:{}: writer connected", self.path.display());
            self.shared
                .update(|inner| inner.current = Some((generation, caps)));
            let end = self.serve(&mut conn);
            self.shared.update(|inner| inner.gone = generation);
            match end? {
                End::Stop => return Ok(()),
                End::Gone => {
                    tracing::info!("shmdata:{}: the writer left", self.path.display());
                }
            }
        }
        Ok(())
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn wait(&mut self, reason: WaitReason) -> Result<Option<Connection>, ShmdataError> {
        if !self.waiting {
            self.waiting = true;
            tracing::info!(
                "shmdata:{}: {reason}; waiting for a writer",
                self.path.display()
            );
            self.shared.update(|inner| {
                inner.waiting = (inner.waiting.0 + 1, Some(reason));
            });
        }
        Ok(None)
    }

    /// One connection attempt: a greeted, acknowledged connection, or
    /// `None` to wait and retry.
    fn connect(&mut self) -> Result<Option<Connection>, ShmdataError> {
        let path = self.path.clone();
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.wait(WaitReason::NoSocket)
            }
            Err(e) => return Err(ShmdataError::io(&path, "look at the path", e)),
            Ok(m) if !m.file_type().is_socket() => return Err(ShmdataError::NotASocket { path }),
            Ok(_) => {}
        }
        let mut sock = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return self.wait(WaitReason::StaleSocket)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.wait(WaitReason::NoSocket)
            }
            Err(e) => return Err(ShmdataError::io(&path, "connect", e)),
        };
        let layout = WireLayout::NATIVE;
        let mut decoder = FollowerDecoder::new(layout);
        let greeting = match read_message(
            &mut sock,
            &mut decoder,
            Instant::now() + self.options.greeting_timeout,
            &self.shared.stop,
        ) {
            Ok(Some(Message::Connect { shm_size, caps })) => Some((shm_size, caps)),
            Ok(_) => None,
            Err(ReadError::Proto(source)) => return Err(ShmdataError::Protocol { path, source }),
            Err(ReadError::Closed) => None,
        };
        let Some((shm_size, caps_text)) = greeting else {
            return self.wait(WaitReason::NoGreeting);
        };
        let caps = match Caps::parse(&caps_text) {
            Ok(c) => c,
            Err(source) => {
                // Close without a word: libshmdata's writer takes any bytes
                // from a follower it greeted as the acknowledgement, and
                // would then wait for this one to read its frames.
                drop(sock);
                return Err(ShmdataError::UnsupportedCaps {
                    path,
                    caps: caps_text,
                    source,
                });
            }
        };
        // The keys come from the socket's inode: the same file the writer
        // derived them from (if it was replaced meanwhile, the next attempt
        // gets the new one).
        let keys = sysv::key(&path, b'n').and_then(|n| Ok((n, sysv::key(&path, b'm')?)));
        let Ok((shm_key, sem_key)) = keys else {
            return self.wait(WaitReason::NoSocket);
        };
        let Ok(sem) = SemSet::open(sem_key) else {
            // A writer still setting up, or one that is going.
            return self.wait(WaitReason::StaleSocket);
        };
        // The acknowledgement is the greeting sent back whole, in one write
        // as libshmdata's reader does (its writer takes any bytes as the ack).
        let Ok(ack) = layout.encode_connect(shm_size, &caps_text) else {
            return self.wait(WaitReason::NoGreeting);
        };
        if sock.write_all(&ack).is_err() {
            return self.wait(WaitReason::StaleSocket);
        }
        Ok(Some(Connection {
            sock,
            decoder,
            caps,
            shm_key,
            sem,
            segment: None,
        }))
    }

    /// Serves a connection until the writer leaves or the follower stops.
    fn serve(&mut self, conn: &mut Connection) -> Result<End, ShmdataError> {
        loop {
            let msg = match read_message(
                &mut conn.sock,
                &mut conn.decoder,
                Instant::now() + Duration::from_secs(3600),
                &self.shared.stop,
            ) {
                Ok(Some(m)) => m,
                Ok(None) if self.stopped() => {
                    leave(conn);
                    return Ok(End::Stop);
                }
                Ok(None) => continue,
                Err(ReadError::Closed) => return Ok(End::Gone),
                Err(ReadError::Proto(source)) => {
                    leave(conn);
                    return Err(ShmdataError::Protocol {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            match msg {
                Message::Update { size } => {
                    if !self.take_frame(conn, size) {
                        return Ok(End::Gone);
                    }
                }
                Message::Quit => return Ok(End::Gone),
                // The decoder refuses a second greeting.
                Message::Connect { .. } => {}
            }
        }
    }

    /// Copies the announced frame out under the read lock and releases it.
    /// Returns false when the writer's semaphores are gone (it left).
    fn take_frame(&mut self, conn: &mut Connection, size: u64) -> bool {
        let capture = Instant::now();
        let counters = &self.shared.counters;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let need = match conn.caps {
            Caps::Video(v) => Layout::of(&v).size,
            Caps::Audio(a) => {
                if size % a.frame_bytes() != 0 || size > MAX_AUDIO_BYTES {
                    return release_counting(
                        conn,
                        &counters.short_frames,
                        self.options.lock_timeout,
                    );
                }
                size
            }
        };
        if size < need {
            return release_counting(conn, &counters.short_frames, self.options.lock_timeout);
        }
        if need == 0 {
            return release(conn);
        }
        // The writer may have replaced its segment (a resize): follow the
        // key to the current one.
        match sysv::segment_id(conn.shm_key) {
            Ok(id) if conn.segment.as_ref().map(Segment::id) != Some(id) => {
                conn.segment = Segment::attach(id).ok();
            }
            Ok(_) => {}
            Err(_) => conn.segment = None,
        }
        let Some(segment) = conn.segment.as_ref() else {
            return release_counting(conn, &counters.small_segment, self.options.lock_timeout);
        };
        if segment.size() < need {
            return release_counting(conn, &counters.small_segment, self.options.lock_timeout);
        }
        // Allocate before taking the lock: the lock is held for the copy only.
        let mut data = self.shared.buffer(need);
        match conn.sem.op(&[READ_START], Some(self.options.lock_timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return release_counting(conn, &counters.lock_timeouts, Duration::ZERO);
            }
            Err(_) => return false,
        }
        segment.copy_out(&mut data);
        if !release(conn) {
            return false;
        }
        counters.frames.fetch_add(1, Ordering::Relaxed);
        self.shared.push(RawFrame {
            generation: self.generation,
            caps: conn.caps,
            data,
            capture,
            gap: false,
        });
        true
    }
}

/// Gives back the read lock of a frame dropped, then counts the drop (in
/// that order: the writer waits for the release, not for the count).
/// libshmdata's writer announces a frame before it adds the read locks it
/// takes for its followers, and adds them under its write lock: waiting for
/// that lock first (bounded, as for a frame copied) makes sure there is a
/// lock to give back, or a fast follower would give back nothing and leave
/// the writer waiting for it.
fn release_counting(conn: &Connection, counter: &AtomicU64, wait: Duration) -> bool {
    let _ = conn.sem.op(&[READ_START], Some(wait));
    let alive = release(conn);
    counter.fetch_add(1, Ordering::Relaxed);
    alive
}

/// Gives back the read lock the writer took on this follower's behalf.
/// Never waits: a writer that reset its count owes nothing. False when the
/// semaphores are gone.
fn release(conn: &Connection) -> bool {
    match conn.sem.op(&[READ_END], None) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Leaves a writer cleanly: says quit, and releases every frame announced
/// before the writer's acknowledgement so that it does not wait for us.
fn leave(conn: &mut Connection) {
    let _ = conn.sock.write_all(&WireLayout::NATIVE.encode_quit());
    let deadline = Instant::now() + Duration::from_millis(200);
    let never = AtomicBool::new(false);
    while let Ok(Some(msg)) = read_message(&mut conn.sock, &mut conn.decoder, deadline, &never) {
        match msg {
            Message::Update { .. } => {
                release(conn);
            }
            _ => break,
        }
    }
}

enum ReadError {
    /// The stream ended or failed: the writer is gone.
    Closed,
    Proto(super::proto::ProtoError),
}

/// Reads one message, waiting until `deadline` (checking `stop` every
/// 100 ms): `Ok(None)` on timeout or stop, `Err(Closed)` at the end of the stream.
fn read_message(
    sock: &mut UnixStream,
    decoder: &mut FollowerDecoder,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Option<Message>, ReadError> {
    let mut buf = [0u8; 4200];
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .map_err(|_| ReadError::Closed)?;
        let want = decoder.wanted().min(buf.len());
        match sock.read(&mut buf[..want]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => {
                if let Some(m) = decoder.push(&buf[..n]).map_err(ReadError::Proto)? {
                    return Ok(Some(m));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
}
