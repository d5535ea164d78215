//! `pstream bench loopback`: pstream's send -> recv through real UDP
//! sockets on loopback, the test pattern's timecode read off every decoded
//! picture, and where the milliseconds go stage by stage; beside it, where
//! they are installed, GStreamer's and ffmpeg's equivalent pipelines on the
//! same content, timed the same way.
//!
//! How each side is timed:
//! - pstream: both pipelines run in this process ([`RtpSend`] to
//!   [`RtpRecv`] on 127.0.0.1). The receiver writes Y4M into a pipe and a
//!   reader thread here reads each picture out of it, reads its timecode
//!   and stamps it: capture -> decoded is that instant minus the timecode.
//!   A [`Probe`] on both pipelines stamps each picture as it leaves each
//!   stage, so the same interval splits into seven consecutive parts.
//! - a peer (gst-launch, ffmpeg): this process renders the same test
//!   pattern, paced at the frame rate, each picture stamped with the
//!   instant it was due, and writes it as Y4M into the sending process's
//!   stdin; the receiving process writes what it decodes as Y4M to its
//!   stdout, read and stamped by the same reader.
//!
//! Runs are interleaved (pstream, peer 1, peer 2, pstream, ...) so a change
//! of load on the machine falls on every pipeline alike; each figure of a
//! pipeline is the median of its runs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pstream_capture::timecode::{read_timecode, read_timecode_luma};
use pstream_capture::TestPattern;
use pstream_core::PipelineClock;
use pstream_mux::y4m::Y4mReader;

use super::encode::Machine;
use super::stats::LatencySummary;
use crate::probe::{Probe, ProbePoint};
use crate::recv::{RecvConfig, RtpRecv};
use crate::rtp::{RtpConfig, RtpSend};
use crate::run::Stop;
use crate::{Error, H264Preset, Result};

/// The stages a picture goes through, in order; each is the time from the
/// end of the one before to its own end.
pub const STAGES: [&str; 7] = [
    "capture+convert",
    "encode",
    "packetize+send",
    "network+receive",
    "depacketize",
    "decode",
    "output",
];

/// What each stage covers, for the table's legend.
const STAGE_LEGEND: [&str; 7] = [
    "the picture's due time to the source handing it on (late wake-up, render, conversion)",
    "waiting in the frame link and encoding",
    "waiting in the unit link, RTP packetization, every packet on the socket",
    "last packet sent to the datagram that completed the unit read off the socket",
    "reader queue, session, jitter buffer, to the unit handed to the decoder",
    "waiting in the unit link and decoding",
    "decoded to read out of the Y4M pipe (holds, Y4M write, pipe)",
];

/// Seconds a peer's processes get to start before the first picture.
const PEER_WARMUP: Duration = Duration::from_millis(1000);
/// How long the last pictures get to come out after the last one went in.
const DRAIN: Duration = Duration::from_millis(600);

/// A program to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// gst-launch-1.0: x264 tuned as costream tunes it, and openh264 low.
    Gstreamer,
    /// ffmpeg: libx264 ultrafast zerolatency over RTP, an SDP file in.
    Ffmpeg,
}

impl Compare {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Compare::Gstreamer => "gstreamer",
            Compare::Ffmpeg => "ffmpeg",
        }
    }

    /// One by name: `gstreamer` or `ffmpeg`.
    pub fn parse(s: &str) -> Option<Self> {
        [Compare::Gstreamer, Compare::Ffmpeg]
            .into_iter()
            .find(|c| c.name() == s)
    }

    fn peers(self) -> &'static [Peer] {
        match self {
            Compare::Gstreamer => &[Peer::GstX264, Peer::GstOpenh264],
            Compare::Ffmpeg => &[Peer::Ffmpeg],
        }
    }
}

/// One pipeline of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// pstream send -> recv.
    Pstream,
    /// Another program's pipeline.
    Peer(Peer),
}

/// Another program's pipeline pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// gst-launch: x264enc tune=zerolatency speed-preset=ultrafast,
    /// rtph264pay, udpsink sync=false; udpsrc, rtpjitterbuffer latency=0,
    /// rtph264depay, avdec_h264 (direct-rendering=false: GStreamer 1.22's
    /// y4menc writes a decoder's padded planes as they are, so its pictures
    /// must be copied out tight first, as pstream's Y4M output copies them).
    GstX264,
    /// The same with openh264enc complexity=low (rate-control=bitrate).
    GstOpenh264,
    /// ffmpeg libx264 -preset ultrafast -tune zerolatency -f rtp; ffmpeg
    /// -i SDP with its buffering off.
    Ffmpeg,
}

impl Pipeline {
    /// Its label in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Pipeline::Pstream => "pstream",
            Pipeline::Peer(Peer::GstX264) => "gstreamer-x264",
            Pipeline::Peer(Peer::GstOpenh264) => "gstreamer-openh264",
            Pipeline::Peer(Peer::Ffmpeg) => "ffmpeg-x264",
        }
    }
}

/// One run of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Pictures that went in (captured or written into the peer).
    pub pictures_in: u64,
    /// Pictures that came out decoded.
    pub pictures_out: u64,
    /// Of those, the ones whose timecode was read (the latency samples).
    pub timecoded: u64,
    /// Capture -> decoded over every timecoded picture, from the first.
    pub latency: LatencySummary,
    /// The samples in milliseconds, in order of output (for the plot).
    pub samples_ms: Vec<f64>,
}

/// Every run of one pipeline, or why it could not run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineResult {
    /// Which.
    pub pipeline: Pipeline,
    /// Its runs, in the order they ran.
    pub runs: Vec<RunResult>,
    /// Why it did not run (not installed, failed), if it did not.
    pub skipped: Option<String>,
}

impl PipelineResult {
    /// The median over the runs of each latency figure; `None` without runs.
    pub fn median(&self) -> Option<LatencySummary> {
        if self.runs.is_empty() {
            return None;
        }
        let med = |f: fn(&LatencySummary) -> f64| {
            let mut v: Vec<f64> = self.runs.iter().map(|r| f(&r.latency)).collect();
            v.sort_by(f64::total_cmp);
            super::stats::percentile(&v, 50.0).unwrap_or(0.0)
        };
        Some(LatencySummary {
            median_ms: med(|l| l.median_ms),
            p95_ms: med(|l| l.p95_ms),
            p99_ms: med(|l| l.p99_ms),
            max_ms: med(|l| l.max_ms),
            mean_ms: med(|l| l.mean_ms),
        })
    }
}

/// One stage's share, over every picture of every pstream run that every
/// stage saw.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// Its name, one of [`STAGES`].
    pub name: &'static str,
    /// Its latency figures.
    pub latency: LatencySummary,
}

/// One size and rate: every pipeline's runs and pstream's stages.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackRow {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate.
    pub fps: u32,
    /// pstream first, then the peers.
    pub pipelines: Vec<PipelineResult>,
    /// pstream's stages, in path order.
    pub stages: Vec<StageResult>,
    /// Pictures every stage saw (the stage samples).
    pub staged: u64,
    /// Over those pictures, the mean of capture -> read out as the stage
    /// instants give it (the stages' means add up to it).
    pub staged_total_mean_ms: f64,
}

impl LoopbackRow {
    /// pstream's median over the peer's, for each peer that ran.
    pub fn ratios(&self) -> Vec<(Pipeline, f64)> {
        let Some(ours) = self.pipelines.first().and_then(PipelineResult::median) else {
            return Vec::new();
        };
        self.pipelines
            .iter()
            .skip(1)
            .filter_map(|p| {
                let theirs = p.median()?;
                (theirs.median_ms > 0.0).then(|| (p.pipeline, ours.median_ms / theirs.median_ms))
            })
            .collect()
    }
}

/// Every row and the settings they ran with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoopbackReport {
    /// The rows, sizes outer, rates inner.
    pub rows: Vec<LoopbackRow>,
    /// The machine.
    pub machine: Machine,
    /// Target bitrate of every encoder, kbit/s.
    pub bitrate_kbps: u32,
    /// pstream's H.264 preset.
    pub preset: H264Preset,
    /// pstream's encoder threads.
    pub threads: u16,
    /// Pictures per run.
    pub frames: u64,
    /// Runs per pipeline.
    pub runs: u32,
}

/// The benchmark's settings: [`LoopbackBench::new`], a few settings, [`LoopbackBench::run`].
#[derive(Debug, Clone)]
pub struct LoopbackBench {
    sizes: Vec<(u32, u32)>,
    rates: Vec<u32>,
    bitrate_kbps: u32,
    preset: H264Preset,
    threads: u16,
    frames: u64,
    runs: u32,
    compare: Vec<Compare>,
}

impl Default for LoopbackBench {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopbackBench {
    /// 1280x720 at 30 fps, 2500 kbit/s, preset fast, one thread, 150
    /// pictures a run, one run, nothing to compare with.
    pub fn new() -> Self {
        Self {
            sizes: vec![(1280, 720)],
            rates: vec![30],
            bitrate_kbps: 2500,
            preset: H264Preset::Fast,
            threads: 1,
            frames: 150,
            runs: 1,
            compare: Vec::new(),
        }
    }

    /// Picture sizes, a row each.
    pub fn sizes(mut self, sizes: impl IntoIterator<Item = (u32, u32)>) -> Self {
        self.sizes = sizes.into_iter().collect();
        self
    }

    /// Frame rates, a row each per size.
    pub fn rates(mut self, rates: impl IntoIterator<Item = u32>) -> Self {
        self.rates = rates.into_iter().collect();
        self
    }

    /// Target bitrate of every encoder in kbit/s.
    pub fn bitrate_kbps(mut self, kbps: u32) -> Self {
        self.bitrate_kbps = kbps;
        self
    }

    /// pstream's H.264 preset.
    pub fn preset(mut self, preset: H264Preset) -> Self {
        self.preset = preset;
        self
    }

    /// pstream's encoder threads (0: one per core).
    pub fn threads(mut self, threads: u16) -> Self {
        self.threads = threads;
        self
    }

    /// Pictures per run.
    pub fn frames(mut self, frames: u64) -> Self {
        self.frames = frames;
        self
    }

    /// Runs per pipeline, interleaved.
    pub fn runs(mut self, runs: u32) -> Self {
        self.runs = runs;
        self
    }

    /// Programs to run beside pstream.
    pub fn compare(mut self, with: impl IntoIterator<Item = Compare>) -> Self {
        self.compare = with.into_iter().collect();
        self
    }

    /// Refuses settings that cannot run, before anything does.
    pub fn check(&self) -> Result<()> {
        if self.sizes.is_empty() || self.rates.is_empty() {
            return Err(Error::Config("no size or no rate to run".into()));
        }
        for &(w, h) in &self.sizes {
            if !pstream_capture::timecode::fits(w, h) || w % 2 != 0 || h % 2 != 0 {
                return Err(Error::Config(format!(
                    "size {w}x{h}: the timecode needs an even size of at least 64x16"
                )));
            }
            if w > 3840 || h > 2160 {
                return Err(Error::Config(format!(
                    "size {w}x{h}: the H.264 encoder takes at most 3840x2160"
                )));
            }
        }
        if let Some(r) = self.rates.iter().find(|r| !(1..=240).contains(*r)) {
            return Err(Error::Config(format!("rate {r} must be 1..=240 fps")));
        }
        if !(10..=100_000).contains(&self.frames) {
            return Err(Error::Config(format!(
                "{} pictures a run: must be 10..=100000",
                self.frames
            )));
        }
        if !(1..=100).contains(&self.runs) {
            return Err(Error::Config(format!(
                "{} runs: must be 1..=100",
                self.runs
            )));
        }
        Ok(())
    }

    /// Runs every row; `progress` hears of each run as it ends.
    pub fn run_with(
        &self,
        mut progress: impl FnMut(&str, usize, &RunResult),
    ) -> Result<LoopbackReport> {
        self.check()?;
        let clock = PipelineClock::start();
        let mut rows = Vec::new();
        for &(w, h) in &self.sizes {
            for &fps in &self.rates {
                let mut pipelines = vec![PipelineResult {
                    pipeline: Pipeline::Pstream,
                    runs: Vec::new(),
                    skipped: None,
                }];
                for c in &self.compare {
                    for &peer in c.peers() {
                        pipelines.push(PipelineResult {
                            pipeline: Pipeline::Peer(peer),
                            runs: Vec::new(),
                            skipped: missing_program(peer),
                        });
                    }
                }
                let mut stages = StageSamples::default();
                for run in 0..self.runs as usize {
                    for p in &mut pipelines {
                        if p.skipped.is_some() {
                            continue;
                        }
                        let label = format!("{} {w}x{h}@{fps} run {}", p.pipeline.label(), run + 1);
                        let result = match p.pipeline {
                            Pipeline::Pstream => self.run_pstream((w, h), fps, &clock, &mut stages),
                            Pipeline::Peer(peer) => self.run_peer(peer, (w, h), fps, &clock),
                        };
                        match result {
                            Ok(r) => {
                                progress(&label, run, &r);
                                p.runs.push(r);
                            }
                            // pstream failing is the benchmark failing; a peer
                            // failing is reported in its row.
                            Err(e) if p.pipeline == Pipeline::Pstream => return Err(e),
                            Err(e) => p.skipped = Some(crate::error::one_line(&e)),
                        }
                    }
                }
                let (stage_results, staged, total) = stages.summarise();
                rows.push(LoopbackRow {
                    width: w,
                    height: h,
                    fps,
                    pipelines,
                    stages: stage_results,
                    staged,
                    staged_total_mean_ms: total,
                });
            }
        }
        Ok(LoopbackReport {
            rows,
            machine: Machine::this(),
            bitrate_kbps: self.bitrate_kbps,
            preset: self.preset,
            threads: self.threads,
            frames: self.frames,
            runs: self.runs,
        })
    }

    /// Runs every row.
    pub fn run(&self) -> Result<LoopbackReport> {
        self.run_with(|_, _, _| {})
    }

    fn run_pstream(
        &self,
        size: (u32, u32),
        fps: u32,
        clock: &PipelineClock,
        stages: &mut StageSamples,
    ) -> Result<RunResult> {
        let base = free_port_base()?;
        let probes = Arc::new(Mutex::new(Stamps::default()));
        let probe = {
            let probes = probes.clone();
            Probe::new(move |at, point| {
                if let Ok(mut s) = probes.lock() {
                    s.record(at, point);
                }
            })
        };
        let (read_end, write_end) = pipe()?;
        let mut rc = RecvConfig::new("127.0.0.1");
        rc.listen = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        rc.port_base = base;
        rc.video_out = format!("y4m:/dev/fd/{}", write_end.as_raw_fd());
        rc.probe = Some(probe.clone());
        let reader = thread::Builder::new()
            .name("bench-reader".into())
            .spawn(move || read_pictures(File::from(read_end), "pstream recv"))
            .map_err(|e| Error::failed("cannot start the reader thread", e))?;
        let mut recv = RtpRecv::start(&rc, Stop::new())?;

        let mut sc = RtpConfig::new("127.0.0.1");
        sc.listen = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        sc.port_base = base;
        sc.audio = "none".into();
        sc.size = size;
        sc.fps = fps;
        sc.bitrate_kbps = self.bitrate_kbps;
        sc.preset = self.preset;
        sc.threads = self.threads;
        sc.probe = Some(probe);
        let plan = RtpSend::prepare(&sc)?;
        let stop = Stop::new();
        let mut send = plan.start(stop.clone())?;
        // The test pattern runs until stopped: stop it once it has made
        // the pictures asked for (bounded by twice their time).
        let deadline = Instant::now()
            + Duration::from_secs_f64(2.0 * self.frames as f64 / f64::from(fps) + 5.0);
        while probes.lock().map(|s| s.captured.len() as u64).unwrap_or(0) < self.frames
            && Instant::now() < deadline
            && !send.stopping()
        {
            thread::sleep(Duration::from_millis(5));
        }
        stop.trigger();
        let sent = send.wait();
        thread::sleep(DRAIN);
        recv.stop();
        let received = recv.wait();
        // The receiver's sink has its own descriptor of the pipe; this one
        // closes so the reader sees the end.
        drop(write_end);
        let pictures = reader
            .join()
            .map_err(|_| Error::Config("the reader thread panicked".into()))??;
        sent?;
        received?;
        let stamps = probes
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .map_err(|_| Error::Config("a probe panicked".into()))?;
        stages.add(&stamps, &pictures);
        Ok(summarise_run(
            stamps.captured.len() as u64,
            &pictures,
            clock,
        ))
    }

    fn run_peer(
        &self,
        peer: Peer,
        (w, h): (u32, u32),
        fps: u32,
        clock: &PipelineClock,
    ) -> Result<RunResult> {
        let port = free_port_base()?;
        let dir = std::env::temp_dir().join(format!("pstream-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::failed("cannot make a temp dir", e))?;
        let (send_cmd, recv_cmd) = peer_commands(peer, fps, self.bitrate_kbps, port, &dir)?;
        let mut receiver = Spawned::new(recv_cmd, Stdio::null(), Stdio::piped())?;
        let stdout = receiver
            .child
            .stdout
            .take()
            .ok_or_else(|| Error::Config("no stdout from the receiving peer".into()))?;
        let name = Pipeline::Peer(peer).label();
        let reader = thread::Builder::new()
            .name("bench-reader".into())
            .spawn(move || read_pictures(stdout, name))
            .map_err(|e| Error::failed("cannot start the reader thread", e))?;
        let mut sender = Spawned::new(send_cmd, Stdio::piped(), Stdio::null())?;
        let fed = sender
            .child
            .stdin
            .take()
            .ok_or_else(|| Error::Config("no stdin to the sending peer".into()))
            .and_then(|stdin| feed(stdin, (w, h), fps, self.frames, clock));
        thread::sleep(DRAIN);
        let sender_err = sender.stop();
        let receiver_err = receiver.stop();
        let _ = std::fs::remove_dir_all(&dir);
        let pictures = reader
            .join()
            .map_err(|_| Error::Config("the reader thread panicked".into()))?;
        let fed = fed.map_err(|e| {
            Error::Config(format!(
                "{name}: {}; sender said: {sender_err}",
                crate::error::one_line(&e)
            ))
        })?;
        let pictures = pictures.map_err(|e| {
            Error::Config(format!(
                "{name}: {}; receiver said: {receiver_err}",
                crate::error::one_line(&e)
            ))
        })?;
        if pictures.is_empty() {
            return Err(Error::Config(format!(
                "{name}: no picture came out; sender said: {sender_err}; receiver said: {receiver_err}"
            )));
        }
        Ok(summarise_run(fed, &pictures, clock))
    }
}

/// Why a peer cannot run here (its program missing), or `None`.
fn missing_program(peer: Peer) -> Option<String> {
    let program = match peer {
        Peer::GstX264 | Peer::GstOpenh264 => "gst-launch-1.0",
        Peer::Ffmpeg => "ffmpeg",
    };
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    (!found).then(|| format!("{program} not found on PATH"))
}

/// The sending and receiving commands of `peer`, RTP on `port`.
fn peer_commands(
    peer: Peer,
    fps: u32,
    kbps: u32,
    port: u16,
    dir: &std::path::Path,
) -> Result<(Command, Command)> {
    let keyint = 2 * fps;
    let gst = |args: &str| {
        let mut c = Command::new("gst-launch-1.0");
        c.arg("-q").args(args.split_whitespace());
        c
    };
    let gst_recv = || {
        gst(&format!(
            "udpsrc address=127.0.0.1 port={port} \
             caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
             ! rtpjitterbuffer latency=0 ! rtph264depay ! avdec_h264 direct-rendering=false \
             ! y4menc ! fdsink fd=1 sync=false"
        ))
    };
    Ok(match peer {
        Peer::GstX264 => (
            gst(&format!(
                "fdsrc fd=0 ! y4mdec ! x264enc tune=zerolatency speed-preset=ultrafast \
                 bitrate={kbps} key-int-max={keyint} ! rtph264pay config-interval=-1 pt=96 mtu=1200 \
                 ! udpsink host=127.0.0.1 port={port} sync=false"
            )),
            gst_recv(),
        ),
        Peer::GstOpenh264 => (
            gst(&format!(
                "fdsrc fd=0 ! y4mdec ! openh264enc complexity=low rate-control=bitrate \
                 bitrate={} gop-size={keyint} ! rtph264pay config-interval=-1 pt=96 mtu=1200 \
                 ! udpsink host=127.0.0.1 port={port} sync=false",
                kbps * 1000
            )),
            gst_recv(),
        ),
        Peer::Ffmpeg => {
            let sdp = dir.join("bench.sdp");
            std::fs::write(
                &sdp,
                format!(
                    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=pstream bench\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                     a=fmtp:96 packetization-mode=1\r\n"
                ),
            )
            .map_err(|e| Error::failed("cannot write the SDP file", e))?;
            let mut send = Command::new("ffmpeg");
            send.args(["-hide_banner", "-loglevel", "error", "-f", "yuv4mpegpipe", "-i", "-"])
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
                .args(["-b:v", &format!("{kbps}k"), "-g", &keyint.to_string()])
                // SPS/PPS with every IDR: the SDP written here has none.
                .args(["-bsf:v", "dump_extra=freq=keyframe"])
                .args(["-f", "rtp", "-payload_type", "96"])
                .arg(format!("rtp://127.0.0.1:{port}?pkt_size=1200"));
            let mut recv = Command::new("ffmpeg");
            recv.args(["-hide_banner", "-loglevel", "error"])
                .args(["-protocol_whitelist", "file,udp,rtp"])
                // Not -fflags nobuffer: it drops what the probe read, the
                // first IDR with it, and the picture waits for the next.
                .args(["-flags", "low_delay"])
                // Probe a tenth of a second, not ffmpeg's 5 s (smaller
                // and it writes no picture at all).
                .args(["-analyzeduration", "100000"])
                .args(["-reorder_queue_size", "0"])
                .arg("-i")
                .arg(&sdp)
                .args(["-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"]);
            (send, recv)
        }
    })
}

/// A peer process, killed by its PID when stopped or dropped; what it
/// said on stderr kept for the error message.
struct Spawned {
    child: Child,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Spawned {
    fn new(mut cmd: Command, stdin: Stdio, stdout: Stdio) -> Result<Self> {
        let mut child = cmd
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start {:?}", cmd.get_program()), e))?;
        let stderr = child.stderr.take().map(|mut e| {
            thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        Ok(Self { child, stderr })
    }

    /// Kills the process and returns the last line it wrote on stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let said = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        said.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(nothing)")
            .trim()
            .to_owned()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `frames` test pictures as Y4M into `out`, each at its due time
/// and stamped with it; returns how many went in.
fn feed(
    mut out: impl Write,
    (w, h): (u32, u32),
    fps: u32,
    frames: u64,
    clock: &PipelineClock,
) -> Result<u64> {
    let pattern = TestPattern::new(w, h);
    let fail = |e| Error::failed("cannot write to the sending peer", e);
    out.write_all(format!("YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n").as_bytes())
        .and_then(|()| out.flush())
        .map_err(fail)?;
    thread::sleep(PEER_WARMUP);
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut n = 0;
    while n < frames {
        let due = start + period.mul_f64(n as f64);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // Stamped with the due instant, as pstream's test source stamps
        // its pictures: a late wake-up counts in the latency.
        let data = pattern.render(n, clock.unix_micros(due));
        out.write_all(b"FRAME\n")
            .and_then(|()| out.write_all(&data))
            .and_then(|()| out.flush())
            .map_err(fail)?;
        n += 1;
    }
    Ok(n)
}

/// A picture read out of a Y4M pipe: its timecode and when it was read.
#[derive(Debug, Clone, Copy)]
struct Picture {
    timecode: Option<u64>,
    read: Instant,
}

/// Reads Y4M pictures from `input` until it ends, stamping each.
fn read_pictures(input: impl Read, name: &str) -> Result<Vec<Picture>> {
    let mut reader = match Y4mReader::new(BufReader::with_capacity(1 << 20, input), name) {
        Ok(r) => r,
        // Nothing at all came out (not even a header): no pictures.
        Err(pstream_mux::FileError::Malformed { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(Error::failed(format!("cannot read {name}'s pictures"), e)),
    };
    let f = reader.header().format;
    let (w, h) = (f.width, f.height);
    let mut out = Vec::new();
    loop {
        match reader.read_frame() {
            Ok(Some(data)) => {
                let read = Instant::now();
                let luma = data.get(..(w as usize * h as usize)).unwrap_or(&[]);
                out.push(Picture {
                    timecode: read_timecode_luma(luma, w as usize, w, h),
                    read,
                });
            }
            Ok(None) => break,
            Err(e) => return Err(Error::failed(format!("cannot read {name}'s pictures"), e)),
        }
    }
    Ok(out)
}

fn summarise_run(pictures_in: u64, pictures: &[Picture], clock: &PipelineClock) -> RunResult {
    let samples: Vec<Duration> = pictures
        .iter()
        .filter_map(|p| {
            let tc = p.timecode?;
            Some(Duration::from_micros(
                clock.unix_micros(p.read).saturating_sub(tc),
            ))
        })
        .collect();
    RunResult {
        pictures_in,
        pictures_out: pictures.len() as u64,
        timecoded: samples.len() as u64,
        latency: LatencySummary::of(&samples),
        samples_ms: samples.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
    }
}

/// What the probes of one pstream run heard, keyed so the halves join:
/// sending stages by capture instant, receiving ones by RTP timestamp, the
/// decoded picture's timecode joining the two.
#[derive(Debug, Default)]
struct Stamps {
    /// Capture instant -> (timecode, handed to the encoder).
    captured: HashMap<Instant, (Option<u64>, Instant)>,
    /// Capture instant -> encoded.
    encoded: HashMap<Instant, Instant>,
    /// Capture instant -> every packet on the socket.
    sent: HashMap<Instant, Instant>,
    /// RTP timestamp -> (last datagram read, handed to the decoder).
    depacketized: HashMap<u32, (Instant, Instant)>,
    /// Timecode -> (RTP timestamp, decoded).
    decoded: HashMap<u64, (u32, Instant)>,
}

impl Stamps {
    fn record(&mut self, at: Instant, point: ProbePoint<'_>) {
        match point {
            ProbePoint::Captured(frame) => {
                self.captured
                    .insert(frame.capture, (read_timecode(frame), at));
            }
            ProbePoint::Encoded { capture } => {
                self.encoded.insert(capture, at);
            }
            ProbePoint::Sent { capture } => {
                self.sent.insert(capture, at);
            }
            ProbePoint::Depacketized {
                rtp_timestamp,
                arrival,
            } => {
                self.depacketized.insert(rtp_timestamp, (arrival, at));
            }
            ProbePoint::Decoded {
                rtp_timestamp,
                frame,
            } => {
                if let Some(tc) = read_timecode(frame) {
                    self.decoded.insert(tc, (rtp_timestamp, at));
                }
            }
        }
    }
}

/// Per-stage samples over a row's pstream runs.
#[derive(Debug, Default)]
struct StageSamples {
    stages: [Vec<Duration>; 7],
    totals: Vec<Duration>,
}

impl StageSamples {
    /// Adds the pictures of one run that every stage saw.
    fn add(&mut self, s: &Stamps, pictures: &[Picture]) {
        let by_tc: HashMap<u64, (Instant, Instant)> = s
            .captured
            .iter()
            .filter_map(|(capture, (tc, handed))| Some(((*tc)?, (*capture, *handed))))
            .collect();
        for p in pictures {
            let Some(tc) = p.timecode else { continue };
            let Some(&(capture, t1)) = by_tc.get(&tc) else {
                continue;
            };
            let (Some(&t2), Some(&t3)) = (s.encoded.get(&capture), s.sent.get(&capture)) else {
                continue;
            };
            let Some(&(rtp_ts, t6)) = s.decoded.get(&tc) else {
                continue;
            };
            let Some(&(t4, t5)) = s.depacketized.get(&rtp_ts) else {
                continue;
            };
            let t = [capture, t1, t2, t3, t4, t5, t6, p.read];
            for (i, stage) in self.stages.iter_mut().enumerate() {
                stage.push(t[i + 1].saturating_duration_since(t[i]));
            }
            self.totals.push(p.read.saturating_duration_since(capture));
        }
    }

    fn summarise(&self) -> (Vec<StageResult>, u64, f64) {
        let stages = STAGES
            .iter()
            .zip(&self.stages)
            .map(|(name, samples)| StageResult {
                name,
                latency: LatencySummary::of(samples),
            })
            .collect();
        let total = LatencySummary::of(&self.totals).mean_ms;
        (stages, self.totals.len() as u64, total)
    }
}

/// A pipe whose ends close on exec (the peers never inherit them).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which lives
    // for the whole call.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(Error::failed(
            "cannot make a pipe",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both descriptors were just made by pipe2 and are owned by
    // nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A first port of eight free UDP ports on 127.0.0.1 (pstream's layout
/// uses base..base+7): tried by binding each, from a start that differs
/// between processes so parallel benchmarks rarely collide.
fn free_port_base() -> Result<u16> {
    let seed = (std::process::id() as u64)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(Instant::now().elapsed().as_nanos() as u64)
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        );
    for i in 0..200u64 {
        let base = 20_000 + ((seed + i * 7919) % 4000) as u16 * 10;
        let held: Vec<UdpSocket> = (0..8)
            .map_while(|k| UdpSocket::bind((Ipv4Addr::LOCALHOST, base + k)).ok())
            .collect();
        if held.len() == 8 {
            return Ok(base);
        }
    }
    Err(Error::Config(
        "no eight free UDP ports found on 127.0.0.1".into(),
    ))
}

impl LoopbackReport {
    /// The report as aligned tables with a legend, ending in a newline.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pstream bench loopback: send -> recv on 127.0.0.1, capture -> decoded picture read \
             out of a Y4M pipe; H.264 at {} kbit/s (pstream preset {}, {} thread{}); {} pictures \
             a run, {} run{} each, interleaved; figures are medians over the runs",
            self.bitrate_kbps,
            super::list::preset_name(self.preset),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.frames,
            self.runs,
            if self.runs == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            s,
            "machine: {} ({} cores, {})",
            if self.machine.cpu.is_empty() {
                "unknown CPU"
            } else {
                &self.machine.cpu
            },
            self.machine.cores,
            self.machine.arch
        );
        for row in &self.rows {
            let _ = writeln!(s, "\n{}x{} @ {} fps", row.width, row.height, row.fps);
            let _ = writeln!(
                s,
                "  {:<20} {:>9} {:>8} {:>8} {:>8} {:>8}  pstream/peer",
                "pipeline", "pictures", "median", "p95", "p99", "max"
            );
            let ratios = row.ratios();
            for p in &row.pipelines {
                match (p.median(), &p.skipped) {
                    (Some(m), _) => {
                        let (outs, ins) = p
                            .runs
                            .iter()
                            .fold((0, 0), |(o, i), r| (o + r.timecoded, i + r.pictures_in));
                        let ratio = ratios
                            .iter()
                            .find(|(q, _)| *q == p.pipeline)
                            .map_or(String::new(), |(_, r)| format!("{r:.2}x"));
                        let _ = writeln!(
                            s,
                            "  {:<20} {:>9} {:>5.1} ms {:>5.1} ms {:>5.1} ms {:>5.1} ms  {}",
                            p.pipeline.label(),
                            format!("{outs}/{ins}"),
                            m.median_ms,
                            m.p95_ms,
                            m.p99_ms,
                            m.max_ms,
                            ratio
                        );
                        if let Some(why) = &p.skipped {
                            let _ = writeln!(s, "  {:<20} a later run failed: {why}", "");
                        }
                    }
                    (None, Some(why)) => {
                        let _ = writeln!(s, "  {:<20} not run: {why}", p.pipeline.label());
                    }
                    (None, None) => {}
                }
            }
            if row.staged > 0 {
                let _ = writeln!(
                    s,
                    "  pstream stages over {} pictures (each from the end of the one above):",
                    row.staged
                );
                let _ = writeln!(
                    s,
                    "  {:<20} {:>8} {:>8} {:>8}",
                    "stage", "median", "p99", "mean"
                );
                let mut sum = 0.0;
                for st in &row.stages {
                    sum += st.latency.mean_ms;
                    let _ = writeln!(
                        s,
                        "  {:<20} {:>5.2} ms {:>5.2} ms {:>5.2} ms",
                        st.name, st.latency.median_ms, st.latency.p99_ms, st.latency.mean_ms
                    );
                }
                let _ = writeln!(
                    s,
                    "  {:<20} {:>8} {:>8} {:>5.2} ms (capture -> read out: {:.2} ms)",
                    "sum", "", "", sum, row.staged_total_mean_ms
                );
            }
        }
        let _ = writeln!(s, "\nstages:");
        for (name, what) in STAGES.iter().zip(STAGE_LEGEND) {
            let _ = writeln!(s, "  {name:<16} {what}");
        }
        let _ = writeln!(
            s,
            "pictures: timecoded pictures out / pictures in, over every run; peers are fed the \
             same test pattern as Y4M through a pipe, paced at the frame rate"
        );
        s
    }

    /// The report as JSON: settings, machine, and per row every pipeline's
    /// runs, medians and ratio, and pstream's stages.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let summary = |l: &LatencySummary| {
            json!({
                "median_ms": l.median_ms,
                "p95_ms": l.p95_ms,
                "p99_ms": l.p99_ms,
                "max_ms": l.max_ms,
                "mean_ms": l.mean_ms,
            })
        };
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let ratios = row.ratios();
                let pipelines: Vec<serde_json::Value> = row
                    .pipelines
                    .iter()
                    .map(|p| {
                        json!({
                            "pipeline": p.pipeline.label(),
                            "skipped": p.skipped,
                            "median": p.median().as_ref().map(summary),
                            "ratio": ratios.iter().find(|(q, _)| *q == p.pipeline).map(|(_, r)| *r),
                            "runs": p.runs.iter().map(|r| json!({
                                "pictures_in": r.pictures_in,
                                "pictures_out": r.pictures_out,
                                "timecoded": r.timecoded,
                                "latency": summary(&r.latency),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                let stages: Vec<serde_json::Value> = row
                    .stages
                    .iter()
                    .map(|s| json!({"stage": s.name, "latency": summary(&s.latency)}))
                    .collect();
                json!({
                    "width": row.width,
                    "height": row.height,
                    "fps": row.fps,
                    "pipelines": pipelines,
                    "stages": stages,
                    "staged_pictures": row.staged,
                    "staged_total_mean_ms": row.staged_total_mean_ms,
                })
            })
            .collect();
        json!({
            "benchmark": "loopback",
            "machine": {
                "cpu": self.machine.cpu,
                "cores": self.machine.cores,
                "arch": self.machine.arch,
            },
            "bitrate_kbps": self.bitrate_kbps,
            "preset": super::list::preset_name(self.preset),
            "threads": self.threads,
            "frames": self.frames,
            "runs": self.runs,
            "rows": rows,
        })
    }
}
