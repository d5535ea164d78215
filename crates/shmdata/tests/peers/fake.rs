//! A writer that misbehaves on purpose: the protocol by hand, so that a
//! test can announce frames its segment cannot hold, die holding the write
//! lock, or send garbage. (The well-behaved cases run against the real
//! libshmdata writer.)

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use pstream_shmdata::proto::WireLayout;

use crate::peer::SockPath;

pub struct FakeWriter {
    listener: UnixListener,
    conn: Option<UnixStream>,
    shm: i32,
    sem: i32,
}

fn key(path: &SockPath, proj: u8) -> libc::key_t {
    let c = std::ffi::CString::new(path.as_str()).expect("path");
    // SAFETY: valid C string.
    let k = unsafe { libc::ftok(c.as_ptr(), i32::from(proj)) };
    assert_ne!(k, -1, "ftok");
    k
}

impl FakeWriter {
    /// Binds `path` and creates a segment of `shm_size` bytes and the semaphores.
    pub fn bind(path: &SockPath, shm_size: usize) -> FakeWriter {
        let listener = UnixListener::bind(&path.path).expect("bind fake writer");
        listener.set_nonblocking(true).expect("nonblocking");
        path.remove_ipc();
        // SAFETY: plain System V calls; results checked.
        let (shm, sem) = unsafe {
            (
                libc::shmget(key(path, b'n'), shm_size, libc::IPC_CREAT | 0o600),
                libc::semget(key(path, b'm'), 2, libc::IPC_CREAT | 0o600),
            )
        };
        assert!(shm >= 0 && sem >= 0, "fake writer IPC");
        FakeWriter {
            listener,
            conn: None,
            shm,
            sem,
        }
    }

    /// Accepts one follower (waiting up to 5 s).
    pub fn accept(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    self.conn = Some(s);
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("no follower connected: {e}"),
            }
        }
    }

    fn conn(&mut self) -> &mut UnixStream {
        self.conn.as_mut().expect("a follower is connected")
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.conn().write_all(bytes).expect("send");
    }

    /// Greets with `caps` and waits for the acknowledgement.
    pub fn greet(&mut self, caps: &str, shm_size: u64) {
        let greeting = WireLayout::NATIVE
            .encode_connect(shm_size, caps)
            .expect("caps fit");
        self.send(&greeting);
        let mut ack = vec![0u8; greeting.len()];
        self.conn().read_exact(&mut ack).expect("follower's ack");
        assert_eq!(ack, greeting, "the ack is the greeting sent back");
    }

    fn semop(&self, num: u16, op: i16) {
        let mut b = libc::sembuf {
            sem_num: num,
            sem_op: op,
            sem_flg: 0,
        };
        // SAFETY: one valid sembuf.
        let rc = unsafe { libc::semop(self.sem, &mut b, 1) };
        assert_eq!(rc, 0, "semop");
    }

    pub fn sem_value(&self, num: i32) -> i32 {
        // SAFETY: GETVAL takes no argument.
        unsafe { libc::semctl(self.sem, num, libc::GETVAL) }
    }

    /// Announces a frame of `size` bytes with one read lock for the
    /// follower; with `die_writing`, keeps the write lock as a writer that
    /// died mid-frame would.
    pub fn frame(&mut self, size: u64, die_writing: bool) {
        self.semop(1, 1);
        let update = WireLayout::NATIVE.encode_update(size);
        self.send(&update);
        self.semop(0, 1);
        if !die_writing {
            self.semop(1, -1);
        }
    }

    /// Closes the follower's connection without a quit, as a crash does.
    pub fn hang_up(&mut self) {
        self.conn = None;
    }
}

impl Drop for FakeWriter {
    fn drop(&mut self) {
        // SAFETY: removing our own IPC objects.
        unsafe {
            libc::shmctl(self.shm, libc::IPC_RMID, std::ptr::null_mut());
            libc::semctl(self.sem, 0, libc::IPC_RMID);
        }
    }
}
