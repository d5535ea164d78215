//! Running the reference shmdata peers (GStreamer's shmdatasink/shmdatasrc
//! and sdflow, built by scripts/peers.sh) and cleaning up after them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Peer tests run 720p in real time; two at once on a 2-core machine would
/// starve each other, so the tests of this binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the per-binary lock for a test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The built reference library: fails (never skips) when it is missing.
pub fn peer_dir() -> PathBuf {
    let dir = std::env::var_os("PSTREAM_SHMDATA_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/shmdata")
        });
    assert!(
        dir.join("bin/sdflow").is_file() && dir.join("gst/libgstshmdata.so").is_file(),
        "the shmdata reference peer is not built in {}; run scripts/peers.sh (the test command does)",
        dir.display()
    );
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("gst-launch-1.0").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "gst-launch-1.0 is not installed; run scripts/install-deps.sh"
    );
    dir
}

/// A socket path of this test run, short enough for a unix socket; on drop,
/// the socket file and any System V IPC left under its keys (a peer killed
/// without cleaning up) are removed.
pub struct SockPath {
    pub path: PathBuf,
}

impl SockPath {
    pub fn new(tag: &str) -> SockPath {
        let path = PathBuf::from(format!(
            "/tmp/pst-shm-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        SockPath { path }
    }

    pub fn as_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// Removes the segment and semaphores a writer at this path left.
    pub fn remove_ipc(&self) {
        let Ok(c) = std::ffi::CString::new(self.as_str()) else {
            return;
        };
        // SAFETY: plain calls on a valid C string and on ids the kernel gave.
        unsafe {
            let shm = libc::ftok(c.as_ptr(), b'n' as i32);
            let sem = libc::ftok(c.as_ptr(), b'm' as i32);
            if shm != -1 {
                let id = libc::shmget(shm, 0, 0);
                if id >= 0 {
                    libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                }
            }
            if sem != -1 {
                let id = libc::semget(sem, 2, 0);
                if id >= 0 {
                    libc::semctl(id, 0, libc::IPC_RMID);
                }
            }
        }
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        self.remove_ipc();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A scratch directory for peers' output files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "shmdata-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A peer process, killed by PID on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    fn start(name: &str, program: &Path, args: &[&str], dir: &Path) -> Proc {
        let peers = peer_dir();
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        let child = Command::new(program)
            .args(args)
            .env("LD_LIBRARY_PATH", peers.join("lib"))
            .env("GST_PLUGIN_PATH", peers.join("gst"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            out,
            err,
        }
    }

    /// `gst-launch-1.0` with a pipeline given as separate words.
    pub fn gst(name: &str, pipeline: &str, dir: &Path) -> Proc {
        let words: Vec<&str> = pipeline.split_whitespace().collect();
        Proc::start(name, Path::new("gst-launch-1.0"), &words, dir)
    }

    /// The reference `sdflow` monitor on `path`.
    pub fn sdflow(name: &str, path: &str, dir: &Path) -> Proc {
        let bin = peer_dir().join("bin/sdflow");
        Proc::start(name, &bin, &[path], dir)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        if self.child.is_some() {
            // SAFETY: a signal to our own child, by its PID.
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    /// Waits up to `limit` for exit (killing it after that).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status.code();
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.child = None;
                    return None;
                }
            }
        }
    }

    /// Kills it now (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stdout(&self) -> String {
        read_lossy(&self.out)
    }

    pub fn stderr(&self) -> String {
        read_lossy(&self.err)
    }

    /// What it printed, for assertion messages.
    pub fn report(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        format!(
            "--- {} stdout (tail):\n{}\n--- stderr (tail):\n{}",
            self.name,
            tail(self.stdout()),
            tail(self.stderr())
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Runs a gst-launch pipeline to completion and returns the file it wrote.
pub fn gst_file(pipeline: &str, out: &Path, dir: &Path) -> Vec<u8> {
    let mut p = Proc::gst(
        "reference",
        &format!("-q {pipeline} ! filesink location={}", out.display()),
        dir,
    );
    let code = p.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "reference pipeline failed:\n{}", p.report());
    std::fs::read(out).expect("reference output")
}

/// The frame numbers sdflow printed: the first four data bytes of each
/// frame, which the writer tests set to the frame index.
pub fn sdflow_indices(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| {
            let data = l.split("data:").nth(1)?;
            let b: Vec<u8> = data
                .split_whitespace()
                .take(4)
                .filter_map(|h| u8::from_str_radix(h.trim_end_matches("..."), 16).ok())
                .collect();
            (b.len() == 4).then(|| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
        .collect()
}

/// Peak signal-to-noise ratio of `a` against `b` in dB (infinite when equal).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum();
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 * a.len() as f64 / se).log10()
}
