//! Shared helpers for the peer tests: start real peers, hand out free
//! loopback ports, and kill every spawned process by PID on drop.

#![allow(dead_code)]

pub mod gst;
pub mod hls;
pub mod nginx;
pub mod page;
pub mod pipewire;
pub mod relay;
pub mod video;

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The SDP file a media application's livestreaming guide hands to ffplay,
/// byte for byte (port 5000 is fixed by it).
pub const GUIDE_SDP: &str = "v=0
m=video 5000 RTP/AVP 26
a=rtpmap:26 JPEG/90000;
a=decode_buf=300;
c=IN IP4 127.0.0.1
";

/// Panics with a clear message unless the guide's fixed ports are free.
pub fn require_port_5000_free() {
    for port in 5000..=5007u16 {
        for host in ["127.0.0.1", "0.0.0.0"] {
            if let Err(e) = UdpSocket::bind((host, port)) {
                panic!(
                    "UDP {host}:{port} is busy ({e}); this test must use port 5000 because the \
                     guide's SDP file fixes it. Stop whatever holds it (`ss -ulpn | grep :500`) \
                     and rerun."
                );
            }
        }
    }
}

/// Numbers handed out in this process: temp dirs and port bases of tests
/// running at the same time must never coincide (two tests that shared a
/// temp dir once truncated each other's captured stdout).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A number no other call in this process has had.
fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Port bases already handed out here: a test may not have bound its ports
/// yet when the next one asks.
static GIVEN_BASES: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// Peer tests decode 720p30 in real time; two at once on a 2-core machine
/// would starve each other, so tests in one binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the per-binary lock for a heavy test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `pstream recv` (as process `name`) and waits until it listens
/// (its `receiving from` line), so a sender started next loses no IDR.
pub fn start_recv(name: &str, args: &[String], dir: &Path) -> Proc {
    let recv = Proc::start(name, &pstream_bin(), args, dir);
    assert!(
        recv.wait_for_output("receiving from", Duration::from_secs(20)),
        "pstream recv did not start:\n{}",
        recv.stderr()
    );
    recv
}

/// Path of the pstream binary cargo built for these tests.
pub fn pstream_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pstream"))
}

/// Fails loudly when a peer is missing: the README's test command installs
/// every peer, so a missing one is a broken install, not a skip.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; run the README's test command (scripts/install-deps.sh) first"
    );
}

/// A port base whose +0..+7 UDP ports are free on 127.0.0.1 right now.
pub fn free_port_base() -> u16 {
    // Other test binaries (other PIDs) and earlier calls here start elsewhere;
    // the process-wide counter keeps two calls here off the same base even
    // when neither has bound its ports yet.
    let clock = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let seed = (std::process::id() as u64) << 20 ^ clock;
    let first = unique() * 101;
    for attempt in 0..200u64 {
        let slot = (seed.wrapping_mul(2654435761) + (first + attempt) * 7919) % 3000;
        let base = 20_000 + slot as u16 * 10;
        let all_free = (0..8).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        let mut given = GIVEN_BASES.lock().unwrap_or_else(|e| e.into_inner());
        if all_free && !given.contains(&base) {
            given.push(base);
            return base;
        }
    }
    panic!("no free UDP port range on 127.0.0.1");
}

/// A spawned process, killed by PID when dropped.
pub struct Proc {
    name: String,
    child: Option<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Proc {
    /// Starts `program` with `args`, capturing stdout and stderr to files in `dir`.
    pub fn start(name: &str, program: &Path, args: &[String], dir: &Path) -> Proc {
        Proc::start_env(name, program, args, dir, &[])
    }

    /// Like [`Proc::start`], with extra environment variables.
    pub fn start_env(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        env: &[(String, String)],
    ) -> Proc {
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        let out = std::fs::File::create(&stdout_path).expect("create stdout file");
        let err = std::fs::File::create(&stderr_path).expect("create stderr file");
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Proc {
            name: name.to_string(),
            child: Some(child),
            stdout_path,
            stderr_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal by PID (INT lets gst-launch -e finish its files).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status();
    }

    /// Waits up to `limit` for exit; kills it after that. Returns the exit code.
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
                    std::thread::sleep(Duration::from_millis(50))
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

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Waits up to `limit` until stdout or stderr contains `needle`.
    ///
    /// A peer that is slow to start (GStreamer building its plugin registry
    /// on a fresh machine) would otherwise miss the first keyframe.
    pub fn wait_for_output(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Name given at start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads a file as text, replacing invalid UTF-8.
pub fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A fresh temporary directory under the target dir, kept for post-mortems.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{test}-{}-{}",
        std::process::id(),
        unique()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs pstream with `args` to completion within `limit`, returning (code, stdout, stderr).
pub fn run_pstream(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let dir = temp_dir("run");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut p = Proc::start("pstream", &pstream_bin(), &args, &dir);
    let code = p.wait(limit);
    (code, p.stdout(), p.stderr())
}

/// Reads a 16-bit PCM WAV written by GStreamer's wavenc or ffmpeg: (rate, channels, samples).
pub fn read_wav_i16(path: &Path) -> (u32, u16, Vec<i16>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        data.len() >= 12 && &data[0..4] == b"RIFF" && &data[8..12] == b"WAVE",
        "not a WAV"
    );
    let mut pos = 12;
    let (mut rate, mut channels, mut bits) = (0u32, 0u16, 0u16);
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let len = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]])
            as usize;
        let body = pos + 8;
        if id == b"fmt " {
            channels = u16::from_le_bytes([data[body + 2], data[body + 3]]);
            rate = u32::from_le_bytes([
                data[body + 4],
                data[body + 5],
                data[body + 6],
                data[body + 7],
            ]);
            bits = u16::from_le_bytes([data[body + 14], data[body + 15]]);
        } else if id == b"data" {
            assert_eq!(bits, 16, "expected 16-bit PCM");
            let end = (body + len).min(data.len());
            let samples = data[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, channels, samples);
        }
        pos = body + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// Dominant frequency of a mono signal by zero-crossing count (good enough for a pure tone).
pub fn tone_frequency(samples: &[f32], rate: u32) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / rate as f64)
}
