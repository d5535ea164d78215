//! System V shared memory and semaphores, the few calls shmdata needs.
//!
//! Written over `libc` directly: the System V IPC crates on crates.io are
//! unmaintained or wrap only part of it (none offers `semtimedop`, which
//! the follower and writer need so that a dead peer can never hang them).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use libc::{c_int, c_short, c_ushort};

extern "C" {
    // glibc and musl export it on every Linux target; the libc crate does
    // not declare it.
    fn semtimedop(
        semid: c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> c_int;
}

/// The System V key libshmdata derives from the socket path: `ftok(path, proj)`
/// ('n' for the shared memory, 'm' for the semaphores).
pub fn key(path: &Path, proj: u8) -> io::Result<libc::key_t> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let k = unsafe { libc::ftok(c.as_ptr(), c_int::from(proj)) };
    if k == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(k)
}

/// One semaphore operation: which semaphore, by how much (0 waits for zero),
/// and whether it may block.
#[derive(Debug, Clone, Copy)]
pub struct SemOp {
    /// Semaphore index in the set.
    pub num: u16,
    /// Amount added; 0 waits until the value is zero.
    pub op: i16,
    /// Fail with `WouldBlock` instead of waiting.
    pub nowait: bool,
}

impl SemOp {
    /// An operation that may wait.
    pub const fn wait(num: u16, op: i16) -> Self {
        SemOp {
            num,
            op,
            nowait: false,
        }
    }

    /// An operation that fails rather than wait.
    pub const fn nowait(num: u16, op: i16) -> Self {
        SemOp {
            num,
            op,
            nowait: true,
        }
    }
}

/// A set of two semaphores (libshmdata's: 0 counts readers, 1 is the writer's).
#[derive(Debug)]
pub struct SemSet {
    id: c_int,
    owner: bool,
}

impl SemSet {
    /// Opens the set a writer created under `key`.
    pub fn open(key: libc::key_t) -> io::Result<Self> {
        // SAFETY: plain syscall wrapper; no pointers.
        let id = unsafe { libc::semget(key, 2, 0) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SemSet { id, owner: false })
    }

    /// Creates a set under `key` with both values 0, removed on drop. A set
    /// already there (left by a crashed writer) is removed first.
    pub fn create(key: libc::key_t, mode: u32) -> io::Result<Self> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode as c_int;
        // SAFETY: plain syscall wrapper; no pointers.
        let mut id = unsafe { libc::semget(key, 2, flags) };
        if id < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
            // SAFETY: as above.
            let old = unsafe { libc::semget(key, 2, 0) };
            if old >= 0 {
                // SAFETY: IPC_RMID takes no argument.
                unsafe { libc::semctl(old, 0, libc::IPC_RMID) };
            }
            // SAFETY: as above.
            id = unsafe { libc::semget(key, 2, flags) };
        }
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        let set = SemSet { id, owner: true };
        // Linux starts a new set at zero already; POSIX does not promise it.
        set.set_value(0, 0)?;
        set.set_value(1, 0)?;
        Ok(set)
    }

    /// Performs `ops` atomically, waiting at most `timeout` (`None`: as
    /// long as it takes). A timeout or a `nowait` refusal is `WouldBlock`;
    /// a set removed meanwhile is an error too (EIDRM or EINVAL).
    pub fn op(&self, ops: &[SemOp], timeout: Option<Duration>) -> io::Result<()> {
        let mut bufs: Vec<libc::sembuf> = ops
            .iter()
            .map(|o| libc::sembuf {
                sem_num: o.num as c_ushort,
                sem_op: o.op as c_short,
                sem_flg: if o.nowait {
                    libc::IPC_NOWAIT as c_short
                } else {
                    0
                },
            })
            .collect();
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let rc = match deadline {
                None => {
                    // SAFETY: `bufs` is a valid array of `bufs.len()` entries.
                    unsafe { semtimedop(self.id, bufs.as_mut_ptr(), bufs.len(), std::ptr::null()) }
                }
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    let ts = libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: left.subsec_nanos() as _,
                    };
                    // SAFETY: `bufs` and `ts` are valid for the call.
                    unsafe { semtimedop(self.id, bufs.as_mut_ptr(), bufs.len(), &ts) }
                }
            };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
    }

    /// The value of semaphore `num`.
    #[cfg(test)]
    pub fn value(&self, num: u16) -> io::Result<i32> {
        self.ctl(num, libc::GETVAL)
    }

    /// How many processes wait for semaphore `num` to increase.
    pub fn waiting_to_decrease(&self, num: u16) -> io::Result<i32> {
        self.ctl(num, libc::GETNCNT)
    }

    /// Sets semaphore `num` to `value`.
    pub fn set_value(&self, num: u16, value: i32) -> io::Result<()> {
        // SAFETY: SETVAL takes the int member of `union semun`, passed by
        // value as the variadic argument.
        let rc = unsafe { libc::semctl(self.id, c_int::from(num), libc::SETVAL, value as c_int) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn ctl(&self, num: u16, cmd: c_int) -> io::Result<i32> {
        // SAFETY: GETVAL and GETNCNT take no argument.
        let rc = unsafe { libc::semctl(self.id, c_int::from(num), cmd) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc)
    }
}

impl Drop for SemSet {
    fn drop(&mut self) {
        if self.owner {
            // SAFETY: IPC_RMID takes no argument.
            unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
        }
    }
}

/// The identifier of the shared memory segment currently under `key`.
pub fn segment_id(key: libc::key_t) -> io::Result<c_int> {
    // SAFETY: plain syscall wrapper; no pointers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// A shared memory segment mapped into this process.
#[derive(Debug)]
pub struct Segment {
    id: c_int,
    addr: *mut u8,
    size: usize,
    owner: bool,
}

// SAFETY: the mapping belongs to the process, not to a thread; every access
// goes through `&self`/`&mut self` and copies with raw pointers.
unsafe impl Send for Segment {}

impl Segment {
    /// Maps the segment with identifier `id` read-only (a follower never writes).
    pub fn attach(id: c_int) -> io::Result<Self> {
        // SAFETY: a null address lets the kernel choose; the result is checked.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut seg = Segment {
            id,
            addr: addr.cast(),
            size: 0,
            owner: false,
        };
        seg.size = stat_size(id)?;
        Ok(seg)
    }

    /// Creates and maps a segment of `size` bytes under `key`, removed on
    /// drop. A segment already under the key (left by a crashed writer) is
    /// removed first.
    pub fn create(key: libc::key_t, size: usize, mode: u32) -> io::Result<Self> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode as c_int;
        let size = size.max(1);
        // SAFETY: plain syscall wrapper; no pointers.
        let mut id = unsafe { libc::shmget(key, size, flags) };
        if id < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
            if let Ok(old) = segment_id(key) {
                // SAFETY: IPC_RMID takes no buffer.
                unsafe { libc::shmctl(old, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            // SAFETY: as above.
            id = unsafe { libc::shmget(key, size, flags) };
        }
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a null address lets the kernel choose; the result is checked.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            let e = io::Error::last_os_error();
            // SAFETY: IPC_RMID takes no buffer.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(e);
        }
        Ok(Segment {
            id,
            addr: addr.cast(),
            size,
            owner: true,
        })
    }

    /// The segment's identifier.
    pub fn id(&self) -> c_int {
        self.id
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Copies the first `dst.len()` bytes out (at most the segment's size:
    /// the caller checks).
    pub fn copy_out(&self, dst: &mut [u8]) {
        let n = dst.len().min(self.size);
        // SAFETY: the mapping holds `self.size` bytes and `n` is within it;
        // the writer does not write while the read lock is held, and a raw
        // copy forms no reference to the shared bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.addr, dst.as_mut_ptr(), n) };
    }

    /// Copies `src` in at the start (at most the segment's size: the caller checks).
    pub fn copy_in(&mut self, src: &[u8]) {
        let n = src.len().min(self.size);
        // SAFETY: the mapping is writable (created by this process) and
        // holds `self.size` bytes; readers are kept out by the semaphores.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.addr, n) };
    }
}

fn stat_size(id: c_int) -> io::Result<usize> {
    // SAFETY: shmid_ds is plain data; IPC_STAT fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ds.shm_segsz as usize)
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `addr` came from shmat and is detached once.
        unsafe { libc::shmdt(self.addr.cast()) };
        if self.owner {
            // SAFETY: IPC_RMID takes no buffer.
            unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of our own: ftok on a fresh file.
    fn temp_key(tag: &str, proj: u8) -> (std::path::PathBuf, libc::key_t) {
        let p = std::env::temp_dir().join(format!("pstream-sysv-{tag}-{}", std::process::id()));
        std::fs::write(&p, b"").expect("temp file");
        let k = key(&p, proj).expect("ftok");
        (p, k)
    }

    #[test]
    fn semaphores_wait_with_a_timeout_and_count() {
        let (p, k) = temp_key("sem", b'm');
        let set = SemSet::create(k, 0o600).expect("create");
        // Waiting for zero succeeds at once; a decrement below zero times out.
        set.op(&[SemOp::wait(0, 0)], Some(Duration::ZERO))
            .expect("zero");
        let t = Instant::now();
        let e = set
            .op(&[SemOp::wait(0, -1)], Some(Duration::from_millis(30)))
            .expect_err("blocks");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() >= Duration::from_millis(25));
        set.op(&[SemOp::wait(0, 2), SemOp::wait(1, 1)], None)
            .expect("add");
        assert_eq!(set.value(0).expect("value"), 2);
        assert_eq!(set.value(1).expect("value"), 1);
        let e = set.op(&[SemOp::nowait(1, 0)], None).expect_err("not zero");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let other = SemSet::open(k).expect("open");
        other.op(&[SemOp::nowait(0, -1)], None).expect("decrement");
        assert_eq!(set.value(0).expect("value"), 1);
        drop(set);
        assert!(other.value(0).is_err(), "removed with its owner");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn segments_copy_in_and_out_and_go_with_their_owner() {
        let (p, k) = temp_key("shm", b'n');
        let mut w = Segment::create(k, 64, 0o600).expect("create");
        w.copy_in(b"hello");
        let r = Segment::attach(segment_id(k).expect("id")).expect("attach");
        assert_eq!(r.size(), 64);
        let mut out = [0u8; 5];
        r.copy_out(&mut out);
        assert_eq!(&out, b"hello");
        // A second create under the same key replaces a leftover.
        let leftover_id = w.id();
        std::mem::forget(w);
        let w2 = Segment::create(k, 32, 0o600).expect("replace leftover");
        assert_ne!(w2.id(), leftover_id);
        drop(w2);
        assert!(segment_id(k).is_err());
        let _ = std::fs::remove_file(p);
    }
}
