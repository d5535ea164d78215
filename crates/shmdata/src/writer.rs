//! The writer: serves pstream's pictures and audio to shmdata followers.
//!
//! A thread of its own accepts followers on the socket, greets them with
//! the caps, and takes their acknowledgements and departures; the caller's
//! [`ShmdataWriter::write_video`] / [`write_audio`](ShmdataWriter::write_audio)
//! put one frame in the shared memory and notify every follower.
//!
//! A follower that has not released the previous frame one frame interval
//! after it was announced (at least [`WriterOptions::min_release`]) is
//! dropped: libshmdata's writer would wait for it, stalling pstream and
//! every other follower. The laggard is found by its unread notification
//! (`SIOCOUTQ` on its socket: bytes the follower has not read yet); it is
//! disconnected, and the release it owes is given back on its behalf. If the
//! count still does not come down (a follower that read its notification and
//! then stopped mid-copy), the count is reset so the writer goes on; that
//! follower reads a torn frame at worst, and is dropped by its unread
//! notification next time. A release that comes later than that (a dropped
//! follower resumed) finds the count at zero and either fails (pstream's
//! follower never waits on it) or waits for the next frame's count, which
//! the writer hands it before counting the next readers.
//!
//! The segment exists from [`ShmdataWriter::bind`] on (a placeholder until
//! the first frame sizes it): libshmdata's follower attaches to it as soon
//! as it connects, and retries in a loop while there is none, so a writer
//! bound before its first frame must have one. Followers that connected
//! before the first frame are greeted with its caps and given a moment to
//! answer before it is announced, so they get the first frame too; the
//! first frame waits until [`JOIN_WINDOW`] after the bind, so that followers
//! polling for the socket find it first. The
//! first frame should come within a second of the bind: libshmdata's
//! follower gives up on a writer that has not greeted it in a second, and
//! then waits until the writer closes the connection (at its first frame
//! or its drop).
//!
//! Caps are set by the first frame; a frame of another size or format (or
//! audio of another rate or channel count) disconnects every follower with a
//! quit message, so that each reconnects and is greeted with the new caps,
//! as GStreamer's `shmdatasink` does by recreating its writer. The socket
//! file, segment and semaphores are removed on drop.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pstream_core::{AudioBlock, VideoFrame};

use super::caps::{AudioCaps, Caps, PixelFormat, SampleFormat, VideoCaps};
use super::pixels::{self, Layout};
use super::proto::WireLayout;
use super::sysv::{self, Segment, SemOp, SemSet};
use super::{check_path, ShmdataError};

/// How the writer serves its followers.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Permission bits of the socket, segment and semaphores (shmdatasink's
    /// default: the owner only).
    pub mode: u32,
    /// The video frame rate the caps announce, as numerator and
    /// denominator; `None` announces a variable rate (0/1). It also sets
    /// the release interval; without it the interval follows the frames'
    /// timestamps.
    pub framerate: Option<(u32, u32)>,
    /// The shortest time a follower is given to release a frame, whatever
    /// the frame interval (an audio buffer can be 10 ms).
    pub min_release: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            mode: 0o600,
            framerate: None,
            min_release: Duration::from_millis(10),
        }
    }
}

/// Live counters of a writer, for a stats line.
#[derive(Debug, Default)]
pub struct WriterCounters {
    frames: AtomicU64,
    followers: AtomicU64,
    joined: AtomicU64,
    dropped: AtomicU64,
    forced: AtomicU64,
}

impl WriterCounters {
    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Followers connected now.
    pub fn followers(&self) -> u64 {
        self.followers.load(Ordering::Relaxed)
    }

    /// Followers that have joined so far.
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    /// Followers dropped for not releasing a frame in time.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Times the reader count was reset because a follower that read its
    /// notification did not release the frame in time.
    pub fn forced(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    /// Accepted; greeted once the caps are known; not notified yet.
    Pending { greeted: bool },
    /// Acknowledged the greeting: notified of every frame.
    Live,
}

#[derive(Debug)]
struct Client {
    sock: UnixStream,
    state: ClientState,
    /// Disconnected by the write path; the server thread closes it.
    dead: bool,
}

#[derive(Debug, Default)]
struct Clients {
    list: Vec<Client>,
    /// The connect message for the current caps, once there are caps.
    greeting: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Shared {
    clients: Mutex<Clients>,
    stop: AtomicBool,
    counters: Arc<WriterCounters>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A shmdata writer serving frames at a path.
///
/// ```no_run
/// use pstream_shmdata::{ShmdataWriter, WriterOptions};
/// # fn frames() -> Vec<pstream_core::VideoFrame> { Vec::new() }
///
/// let mut w = ShmdataWriter::bind("/tmp/pstream_video", WriterOptions {
///     framerate: Some((30, 1)),
///     ..WriterOptions::default()
/// })?;
/// for frame in frames() {
///     w.write_video(&frame)?;
/// }
/// # Ok::<(), pstream_shmdata::ShmdataError>(())
/// ```
#[derive(Debug)]
pub struct ShmdataWriter {
    path: PathBuf,
    /// Device and inode of the socket file bound, so that drop removes
    /// only its own.
    socket_id: (u64, u64),
    options: WriterOptions,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
    shm_key: libc::key_t,
    sem: SemSet,
    segment: Option<Segment>,
    caps: Option<Caps>,
    /// Frame bytes laid out for the segment, reused across frames.
    scratch: Vec<u8>,
    /// When the last frame was announced.
    last_notify: Option<Instant>,
    /// The last video pts, for the release interval without a frame rate.
    last_pts: Option<Duration>,
    /// When the socket was bound, for the first frame's [`JOIN_WINDOW`].
    bound_at: Instant,
}

impl ShmdataWriter {
    /// Binds the socket at `path` and creates the semaphores; followers
    /// may connect from now on and are greeted at the first frame.
    ///
    /// A stale socket file (no writer answers on it) is replaced; a path
    /// where a writer answers is refused, as is one that is not a socket.
    pub fn bind(path: impl AsRef<Path>, options: WriterOptions) -> Result<Self, ShmdataError> {
        let path = path.as_ref().to_owned();
        check_path(&path)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(ShmdataError::NotASocket { path });
            }
            Ok(_) => match UnixStream::connect(&path) {
                Ok(_) => return Err(ShmdataError::WriterLive { path }),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    tracing::info!(
                        "shmdata:{}: replacing a stale socket file (a writer that crashed?)",
                        path.display()
                    );
                    std::fs::remove_file(&path)
                        .map_err(|e| ShmdataError::io(&path, "remove the stale socket", e))?;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(ShmdataError::io(&path, "check the socket", e)),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(ShmdataError::io(&path, "look at the path", e)),
        }
        let listener = UnixListener::bind(&path).map_err(|e| match e.kind() {
            // Another writer bound it between the check and here.
            ErrorKind::AddrInUse => ShmdataError::WriterLive { path: path.clone() },
            _ => ShmdataError::io(&path, "bind", e),
        })?;
        // From here on a failure must not leave the socket file behind.
        let cleanup = |e: ShmdataError| {
            let _ = std::fs::remove_file(&path);
            e
        };
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| cleanup(ShmdataError::io(&path, "look at the socket", e)))?;
        let socket_id = (meta.dev(), meta.ino());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.mode))
            .map_err(|e| cleanup(ShmdataError::io(&path, "set the socket's permissions", e)))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| cleanup(ShmdataError::io(&path, "configure the socket", e)))?;
        let shm_key = sysv::key(&path, b'n')
            .map_err(|e| cleanup(ShmdataError::io(&path, "derive the shared memory key", e)))?;
        let sem_key = sysv::key(&path, b'm')
            .map_err(|e| cleanup(ShmdataError::io(&path, "derive the semaphore key", e)))?;
        let sem = SemSet::create(sem_key, options.mode)
            .map_err(|e| cleanup(ShmdataError::io(&path, "create the semaphores", e)))?;
        // A placeholder until the first frame gives the size: followers
        // attach at connect (libshmdata's retries forever on "shmget: No
        // such file"), and re-attach by key at their first frame's size.
        let placeholder = Segment::create(shm_key, 1, options.mode)
            .map_err(|e| cleanup(ShmdataError::io(&path, "create the shared memory", e)))?;
        let shared = Arc::new(Shared {
            clients: Mutex::new(Clients::default()),
            stop: AtomicBool::new(false),
            counters: Arc::new(WriterCounters::default()),
        });
        let server = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("shmdata-writer".into())
                .spawn(move || serve(listener, &shared))
                .map_err(|e| cleanup(ShmdataError::io(&path, "start the serving thread", e)))?
        };
        Ok(ShmdataWriter {
            path,
            socket_id,
            options,
            shared,
            server: Some(server),
            shm_key,
            sem,
            segment: Some(placeholder),
            caps: None,
            scratch: Vec::new(),
            last_notify: None,
            last_pts: None,
            bound_at: Instant::now(),
        })
    }

    /// Sets the video frame rate the caps announce, for a writer bound
    /// before the rate was known; takes effect at the next caps (the first
    /// frame's, or a change of size).
    pub fn set_framerate(&mut self, framerate: Option<(u32, u32)>) {
        self.options.framerate = framerate;
    }

    /// Announces I420 video caps of `width` x `height` before the first
    /// frame (and sizes the segment for them), so that followers are
    /// greeted as they connect: libshmdata's follower gives up on a writer
    /// that has not greeted it within a second. Frames of another size
    /// change the caps as usual.
    pub fn announce_video(&mut self, width: u32, height: u32) -> Result<(), ShmdataError> {
        let (fps_num, fps_den) = self.options.framerate.unwrap_or((0, 1));
        let v = VideoCaps {
            format: PixelFormat::I420,
            width,
            height,
            fps_num,
            fps_den: fps_den.max(1),
        };
        let size = Layout::of(&v).size;
        self.set_caps(Caps::Video(v), size, "video frame")
    }

    /// Announces F32LE audio caps before the first block, as
    /// [`announce_video`](Self::announce_video) does for video; the
    /// segment starts at 100 ms of samples and grows with the blocks.
    pub fn announce_audio(&mut self, rate: u32, channels: u16) -> Result<(), ShmdataError> {
        let a = AudioCaps {
            format: SampleFormat::F32Le,
            rate,
            channels,
        };
        let size = (rate as usize / 10).max(1) * usize::from(channels) * 4;
        self.set_caps(Caps::Audio(a), size, "audio block")
    }

    /// The path served.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The caps of the frames written so far.
    pub fn caps(&self) -> Option<Caps> {
        self.caps
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<WriterCounters> {
        self.shared.counters.clone()
    }

    /// Writes one picture as I420 and announces it to every follower.
    pub fn write_video(&mut self, frame: &VideoFrame) -> Result<(), ShmdataError> {
        let (fps_num, fps_den) = self.options.framerate.unwrap_or((0, 1));
        let v = VideoCaps {
            format: PixelFormat::I420,
            width: frame.width(),
            height: frame.height(),
            fps_num,
            fps_den: fps_den.max(1),
        };
        let interval = match self.options.framerate {
            Some((n, d)) if n > 0 => Duration::from_secs_f64(f64::from(d.max(1)) / f64::from(n)),
            _ => {
                let step = self
                    .last_pts
                    .and_then(|p| frame.pts.checked_sub(p))
                    .filter(|d| !d.is_zero() && *d < Duration::from_secs(1));
                step.unwrap_or(Duration::from_millis(33))
            }
        };
        self.last_pts = Some(frame.pts);
        let size = Layout::of(&v).size;
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let mut scratch = std::mem::take(&mut self.scratch);
        let data: &[u8] = if pixels::i420_is_packed(w, h) {
            frame.data()
        } else {
            scratch.resize(size, 0);
            pixels::i420_to_gst(w, h, frame.data(), &mut scratch);
            &scratch
        };
        let result = self.publish(Caps::Video(v), data, interval, "video frame");
        self.scratch = scratch;
        result
    }

    /// Writes one block of audio as interleaved F32LE and announces it.
    pub fn write_audio(&mut self, block: &AudioBlock) -> Result<(), ShmdataError> {
        let a = AudioCaps {
            format: SampleFormat::F32Le,
            rate: block.sample_rate,
            channels: block.channels,
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let whole = block.frames() * usize::from(block.channels);
        for s in &block.samples[..whole] {
            scratch.extend_from_slice(&s.to_le_bytes());
        }
        let result = self.publish(Caps::Audio(a), &scratch, block.duration(), "audio block");
        self.scratch = scratch;
        result
    }

    /// Puts `data` in the segment under the write lock and announces it.
    fn publish(
        &mut self,
        caps: Caps,
        data: &[u8],
        interval: Duration,
        what: &'static str,
    ) -> Result<(), ShmdataError> {
        if self.caps.is_none() {
            // The very first frame: followers polling for the socket file
            // get the time to find it and be greeted with this frame.
            let join = self.bound_at + JOIN_WINDOW;
            let now = Instant::now();
            if now < join {
                std::thread::sleep(join - now);
            }
        }
        if self.caps != Some(caps) {
            self.set_caps(caps, data.len(), what)?;
        }
        if data.is_empty() {
            return Ok(());
        }
        let deadline = self
            .last_notify
            .map(|t| t + interval.max(self.options.min_release))
            .unwrap_or_else(Instant::now);
        self.acquire(deadline)?;
        let result = self.fill_and_notify(data);
        // Whatever happened, let the followers read again.
        let unlock = self
            .sem
            .op(&[SemOp::nowait(1, -1)], None)
            .map_err(|e| ShmdataError::io(&self.path, "release the write lock", e));
        result?;
        unlock?;
        self.last_notify = Some(Instant::now());
        self.shared.counters.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Under the write lock: grows the segment if needed, copies the frame,
    /// notifies every live follower and counts their read locks.
    fn fill_and_notify(&mut self, data: &[u8]) -> Result<(), ShmdataError> {
        if self.segment.as_ref().map(Segment::size).unwrap_or(0) < data.len() {
            // Audio blocks vary in length: grow with headroom so that the
            // segment is not replaced at every other block.
            self.new_segment(data.len() + data.len() / 2)?;
        }
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        segment.copy_in(data);
        let update = WireLayout::NATIVE.encode_update(data.len() as u64);
        let mut clients = self.shared.lock();
        let mut notified = 0usize;
        for c in clients.list.iter_mut() {
            if c.dead || c.state != ClientState::Live {
                continue;
            }
            // Non-blocking: a follower whose socket is full is not reading.
            match c.sock.write(&update) {
                Ok(n) if n == update.len() => notified += 1,
                _ => {
                    c.dead = true;
                    let _ = c.sock.shutdown(std::net::Shutdown::Both);
                    self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(clients);
        if notified > 0 {
            let n = i16::try_from(notified).unwrap_or(i16::MAX);
            self.sem
                .op(&[SemOp::nowait(0, n)], None)
                .map_err(|e| ShmdataError::io(&self.path, "count the readers", e))?;
        }
        Ok(())
    }

    /// Takes the write lock: every follower has released the last frame,
    /// or the ones that had not by `deadline` are dropped.
    fn acquire(&mut self, deadline: Instant) -> Result<(), ShmdataError> {
        let take = [SemOp::wait(0, 0), SemOp::wait(1, 1)];
        let io = |e| ShmdataError::io(&self.path, "take the write lock", e);
        let left = deadline.saturating_duration_since(Instant::now());
        match self.sem.op(&take, Some(left)) {
            Ok(()) => return self.heal(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(io(e)),
        }
        // Late followers: those whose notification is still unread.
        let mut owed = 0;
        {
            let mut clients = self.shared.lock();
            for c in clients.list.iter_mut() {
                if c.dead || c.state != ClientState::Live || unread_bytes(&c.sock) == 0 {
                    continue;
                }
                c.dead = true;
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                owed += 1;
            }
        }
        if owed > 0 {
            tracing::warn!(
                "shmdata:{}: dropped {owed} follower(s) that did not read a frame in time",
                self.path.display()
            );
        }
        for _ in 0..owed {
            // They never took their lock; give it back for them.
            let _ = self.sem.op(&[SemOp::nowait(0, -1)], None);
        }
        match self.sem.op(&take, Some(Duration::ZERO)) {
            Ok(()) => return self.heal(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(io(e)),
        }
        // Someone read its notification but has not released: go on without it.
        self.shared.counters.forced.fetch_add(1, Ordering::Relaxed);
        self.sem.set_value(0, 0).map_err(io)?;
        self.sem.op(&take, Some(Duration::ZERO)).map_err(io)?;
        self.heal()
    }

    /// Hands a release waiting on a zero count (a follower dropped or
    /// forced earlier, releasing late) the unit it waits for. Whether it
    /// takes it before or after the next frame's readers are counted, the
    /// count comes out right, and its copy is finished already.
    fn heal(&self) -> Result<(), ShmdataError> {
        let waiting = self.sem.waiting_to_decrease(0).unwrap_or(0);
        if waiting > 0 {
            let n = i16::try_from(waiting).unwrap_or(i16::MAX);
            let _ = self.sem.op(&[SemOp::nowait(0, n)], None);
        }
        Ok(())
    }

    /// New caps: check them, disconnect every follower (they reconnect and
    /// are greeted with the new caps), and size the segment for them.
    fn set_caps(
        &mut self,
        caps: Caps,
        size: usize,
        what: &'static str,
    ) -> Result<(), ShmdataError> {
        Caps::parse(&caps.to_caps_string()).map_err(|source| ShmdataError::BadMedia {
            path: self.path.clone(),
            what,
            source,
        })?;
        if self.caps.is_some() {
            tracing::info!(
                "shmdata:{}: caps change to {}; followers reconnect",
                self.path.display(),
                caps.to_caps_string()
            );
        }
        {
            let quit = WireLayout::NATIVE.encode_quit();
            let mut clients = self.shared.lock();
            for c in clients.list.iter_mut() {
                // Followers still waiting for a greeting get the new one.
                if c.state == (ClientState::Pending { greeted: false }) {
                    continue;
                }
                if c.state == ClientState::Live {
                    let _ = c.sock.write(&quit);
                }
                c.dead = true;
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
            clients.greeting = None;
        }
        // Nobody owes a release for the old frames now.
        self.sem
            .set_value(0, 0)
            .map_err(|e| ShmdataError::io(&self.path, "reset the semaphores", e))?;
        self.caps = Some(caps);
        self.last_notify = None;
        self.new_segment(size.max(1))?;
        self.greet_waiting();
        Ok(())
    }

    /// Greets the followers that connected before these caps at once (not
    /// at the serving thread's next turn), then gives them up to
    /// [`GREET_WAIT`] to answer, so that the frame that set the caps is
    /// theirs too. Only a caps change with followers waiting pays it.
    fn greet_waiting(&mut self) {
        let waiting = |clients: &Clients| {
            clients
                .list
                .iter()
                .any(|c| !c.dead && c.state == (ClientState::Pending { greeted: true }))
        };
        {
            let mut clients = self.shared.lock();
            let Some(greeting) = clients.greeting.clone() else {
                return;
            };
            for c in clients.list.iter_mut() {
                if c.dead || c.state != (ClientState::Pending { greeted: false }) {
                    continue;
                }
                match c.sock.write(&greeting) {
                    Ok(n) if n == greeting.len() => {
                        c.state = ClientState::Pending { greeted: true }
                    }
                    _ => c.dead = true,
                }
            }
            if !waiting(&clients) {
                return;
            }
        }
        // The serving thread polls their sockets and marks them live when
        // their answer comes (well under a millisecond on an idle machine).
        let deadline = Instant::now() + GREET_WAIT;
        while Instant::now() < deadline && waiting(&self.shared.lock()) {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Replaces the segment with one of `size` bytes and greets new
    /// followers with it.
    fn new_segment(&mut self, size: usize) -> Result<(), ShmdataError> {
        self.segment = None;
        let segment = Segment::create(self.shm_key, size, self.options.mode)
            .map_err(|e| ShmdataError::io(&self.path, "create the shared memory", e))?;
        let caps = self.caps.map(|c| c.to_caps_string()).unwrap_or_default();
        let greeting = WireLayout::NATIVE
            .encode_connect(segment.size() as u64, &caps)
            .map_err(|source| ShmdataError::Protocol {
                path: self.path.clone(),
                source,
            })?;
        self.segment = Some(segment);
        self.shared.lock().greeting = Some(greeting);
        Ok(())
    }
}

impl Drop for ShmdataWriter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        // Remove the socket file first, as libshmdata does, so that a
        // follower told to quit does not reconnect to a writer going away.
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.socket_id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        let quit = WireLayout::NATIVE.encode_quit();
        for c in self.shared.lock().list.iter_mut() {
            if c.state == ClientState::Live && !c.dead {
                let _ = c.sock.write(&quit);
            }
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
        // The segment and semaphores go with their owners' drop.
    }
}

/// How long after the bind the first frame is announced at the earliest:
/// libshmdata's follower polls for the socket file every 30 ms, so two of
/// its polls and its connection fit. Only the first frame of a writer pays
/// it, and only what is left of it (a writer bound before the first frame
/// was decoded pays less).
const JOIN_WINDOW: Duration = Duration::from_millis(70);

/// Longest a frame that sets new caps waits for the followers greeted with
/// them to answer: a follower's thread woken by the greeting answers at
/// once; 20 ms is about one scheduling slice on a loaded machine.
const GREET_WAIT: Duration = Duration::from_millis(20);

/// Bytes sent on `sock` that the peer has not read yet.
fn unread_bytes(sock: &UnixStream) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; `n` is valid for it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        0
    } else {
        n
    }
}

/// The serving thread: accepts, greets and listens to followers until stopped.
fn serve(listener: UnixListener, shared: &Shared) {
    let mut buf = [0u8; 4200];
    let mut fds: Vec<libc::pollfd> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        fds.clear();
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        {
            let clients = shared.lock();
            fds.extend(clients.list.iter().map(|c| libc::pollfd {
                fd: c.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        // 20 ms: how soon a drop is noticed and a new follower greeted
        // once the caps come.
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries whose
        // descriptors stay open: only this thread closes client sockets.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                tracing::warn!("shmdata writer: poll: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let mut clients = shared.lock();
        // Client sockets are only removed below, by this thread, so the
        // indices still match the poll set (new ones are only pushed at the end).
        let polled = fds.len() - 1;
        for (i, pfd) in fds.iter().skip(1).enumerate().take(polled) {
            if pfd.revents == 0 || i >= clients.list.len() {
                continue;
            }
            let c = &mut clients.list[i];
            if c.dead {
                continue;
            }
            match c.sock.read(&mut buf) {
                Ok(0) => c.dead = true,
                Ok(_) => match c.state {
                    ClientState::Pending { greeted: true } => {
                        c.state = ClientState::Live;
                        shared.counters.joined.fetch_add(1, Ordering::Relaxed);
                    }
                    ClientState::Pending { greeted: false } => c.dead = true,
                    ClientState::Live => {
                        // A follower leaving: acknowledge, as libshmdata does.
                        let _ = c.sock.write(&WireLayout::NATIVE.encode_quit());
                        c.dead = true;
                    }
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => c.dead = true,
            }
        }
        clients.list.retain(|c| !c.dead);
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_ok() {
                        clients.list.push(Client {
                            sock,
                            state: ClientState::Pending { greeted: false },
                            dead: false,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(greeting) = clients.greeting.clone() {
            for c in clients.list.iter_mut() {
                if c.state == (ClientState::Pending { greeted: false }) {
                    // A fresh socket's buffer takes the whole greeting at once.
                    match c.sock.write(&greeting) {
                        Ok(n) if n == greeting.len() => {
                            c.state = ClientState::Pending { greeted: true }
                        }
                        _ => c.dead = true,
                    }
                }
            }
        }
        let live = clients
            .list
            .iter()
            .filter(|c| c.state == ClientState::Live && !c.dead)
            .count();
        shared
            .counters
            .followers
            .store(live as u64, Ordering::Relaxed);
    }
}
