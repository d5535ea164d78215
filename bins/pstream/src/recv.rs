//! `pstream recv`: the receiving half of co-streaming, in one place.
//!
//! ```text
//! UDP listen:+0 ─┐                                     ┌─▶ H.264/JPEG decoder ─▶ video sink
//! UDP listen:+1 ─┴▶ RtpReceiver (video) ──link──────────┘      │ PLI on loss
//!                    └─ RR/PLI ─▶ peer:+5   ◀───────────────────┘
//! UDP listen:+2/+3 ▶ RtpReceiver (audio) ──link──▶ Opus decoder (PLC) ─▶ audio sink
//!                    └─ RR ─▶ peer:+7
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use pstream_capture::timecode::read_timecode;
use pstream_core::{AudioFormat, AudioSink, DeviceCounters, VideoFormat, VideoSink};
use pstream_codec::h264::H264Decoder;
use pstream_codec::mjpeg::MjpegDecoder;
use pstream_codec::opus::OpusDecoder;
use pstream_codec::VideoDecoder;
use pstream_core::{link, AudioBlock, Codec, LinkReceiver, LinkSender, PipelineClock, Recv};
use pstream_rtp::frame_rate::{self, RATE_UNITS};
use pstream_rtp::lipsync::{LipSync, LipSyncConfig, Stream};
use pstream_rtp::receiver::{ReceivedUnit, ReceiverConfig, RtpReceiver};
use pstream_transport::{resolve_peer, unspecified_for, PortLayout, UdpEndpoint};

use crate::cli::{RecvArgs, SyncArg, VideoCodecArg};
use crate::shutdown::{fail, FatalSlot, Shutdown};
use crate::stats::{kbps, StatsMode, StatsPrinter};
use pstream_embed::run::spawn;
use pstream_embed::sources::{open_audio_sink, open_video_sink, VIDEO_SINKS};

/// Complete access units waiting for the decoder.
const UNIT_QUEUE: usize = 8;
/// Opus packets waiting for the decoder (20 ms each).
const AUDIO_UNIT_QUEUE: usize = 25;
/// Datagrams waiting for the session thread; a 1080p IDR is a few hundred.
const DATAGRAM_QUEUE: usize = 2048;
/// Opus always decodes at 48 kHz; we always output stereo.
const AUDIO_RATE: u32 = 48_000;
/// Output channels (mono streams are duplicated by the decoder).
const AUDIO_CHANNELS: u16 = 2;
/// RTP ticks in one 20 ms Opus frame.
const OPUS_FRAME_TICKS: u32 = 960;
/// Most consecutive lost Opus frames concealed; a longer gap is a resync.
const MAX_CONCEALED: u32 = 10;
/// Most decoded pictures held back for lip sync: a second at 60 fps (the
/// longest hold), about 80 MB at 720p.
const MAX_HELD: usize = 64;

/// Lip sync shared by the two decode threads: both observe, each reads the
/// hold it applies, the stats line reads the offset.
struct AvSync {
    /// Whether holds are applied (`--sync`); the offset is measured anyway.
    enabled: bool,
    state: Mutex<LipSync>,
}

impl AvSync {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: Mutex::new(LipSync::new(LipSyncConfig::default())),
        }
    }

    /// Records a presentation delay; returns the hold `stream` applies now
    /// (zero when sync is off).
    fn observe(&self, stream: Stream, delay_us: i64) -> Duration {
        match self.state.lock() {
            Ok(mut s) => {
                let hold = s.observe(stream, delay_us);
                if self.enabled {
                    hold
                } else {
                    Duration::ZERO
                }
            }
            Err(_) => Duration::ZERO,
        }
    }

    /// `A/V +x ms` (video presented later than its audio is heard, holds
    /// included) and the hold that got it there; `None` until both streams
    /// have SR mappings.
    fn summary(&self) -> Option<String> {
        let s = self.state.lock().ok()?;
        if !self.enabled {
            let offset = s.path_difference_us()?;
            return Some(format!("A/V {:+.1} ms sync off", offset as f64 / 1000.0));
        }
        let offset = s.offset_us()?;
        let hold = match (s.video_hold(), s.audio_hold()) {
            (v, _) if !v.is_zero() => format!(" video held {} ms", v.as_millis()),
            (_, a) if !a.is_zero() => format!(" audio held {} ms", a.as_millis()),
            _ => String::new(),
        };
        Some(format!("A/V {:+.1} ms{hold}", offset as f64 / 1000.0))
    }
}

/// Counters one stream shares with the stats line.
#[derive(Debug, Default)]
struct RecvCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    duplicates: AtomicU64,
    jitter_us: AtomicU64,
    pli_sent: AtomicU64,
    foreign: AtomicU64,
    restarts: AtomicU64,
    malformed: AtomicU64,
    rtcp_dropped: AtomicU64,
    /// Pictures decoded and written, or Opus frames decoded.
    decoded: AtomicU64,
    /// Units not shown: incomplete, undecodable, or waiting for an IDR.
    discarded: AtomicU64,
    /// Opus frames concealed for lost packets.
    concealed: AtomicU64,
}

/// Capture-to-decoded latencies read off the timecode, in microseconds.
#[derive(Debug, Default)]
struct Latencies {
    window: Vec<u64>,
    all: Vec<u64>,
}

impl Latencies {
    fn push(&mut self, us: u64) {
        self.window.push(us);
        // Bounded: an hour at 60 fps is 216k samples, about 1.7 MB.
        if self.all.len() < 1 << 18 {
            self.all.push(us);
        }
    }
}

/// Percentiles of a latency sample set: (median, p95, p99, max) in ms.
fn percentiles(samples: &mut [u64]) -> Option<(f64, f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i] as f64 / 1000.0
    };
    Some((at(0.5), at(0.95), at(0.99), at(1.0)))
}

/// What a decoder stage tells its session thread.
#[derive(Debug)]
enum Feedback {
    /// The picture is broken until the next IDR: send a PLI.
    KeyframeNeeded,
}

/// `pstream recv`: runs until `--duration`, Ctrl-C or SIGTERM.
pub fn run(args: RecvArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::install(args.duration)?;
    let clock = PipelineClock::start();
    let peer = resolve_peer(&args.peer)?;
    let listen = args.listen.unwrap_or_else(|| unspecified_for(peer));
    if listen.is_ipv4() != peer.is_ipv4() {
        anyhow::bail!("--listen {listen} and --peer {peer} are of different address families");
    }
    let layout = PortLayout::new(args.port_base)?;
    check_video_sink(&args.video_out)?;
    let audio_sink = open_audio_sink(
        &args.audio_out,
        AudioFormat {
            sample_rate: AUDIO_RATE,
            channels: AUDIO_CHANNELS,
        },
    )?;
    let playback = audio_sink.playback_counters();
    let latency = Duration::from_millis(args.latency);
    let cname = format!("pstream-recv@{listen}");
    let fatal: FatalSlot = Arc::new(Mutex::new(None));
    let mut threads = Vec::new();
    let video = Arc::new(RecvCounters::default());
    let audio = Arc::new(RecvCounters::default());
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let live_video = pstream_capture::v4l2::V4l2Spec::parse(&args.video_out).is_some();
    let live_audio = audio_sink.latency().is_some();
    let sync = Arc::new(AvSync::new(match args.sync {
        SyncArg::On => true,
        SyncArg::Off => false,
        SyncArg::Auto => live_video && live_audio,
    }));

    // Video: session thread, then decoder + sink thread.
    {
        let (unit_tx, unit_rx) = link::<ReceivedUnit>(UNIT_QUEUE);
        let (fb_tx, fb_rx) = crossbeam_channel::bounded::<Feedback>(16);
        // JPEG: every unit is a complete picture and a keyframe, so the
        // wait-for-IDR logic below never holds one back.
        let (video_codec, decoder): (Codec, Box<dyn VideoDecoder>) = match args.video_codec {
            VideoCodecArg::H264 => (
                Codec::H264,
                Box::new(H264Decoder::new().context("cannot start the H.264 decoder")?),
            ),
            VideoCodecArg::Mjpeg => (
                Codec::Mjpeg,
                Box::new(MjpegDecoder::new().context("cannot start the JPEG decoder")?),
            ),
        };
        let session = receiver_session(video_codec, &cname, latency)?;
        let net = NetStage::bind(
            listen,
            layout.video_rtp(),
            layout.video_rtcp(),
            SocketAddr::new(peer, layout.video_rtcp_back()),
            session,
            video.clone(),
        )?;
        threads.extend(net.spawn("video", unit_tx, fb_rx, &shutdown, &fatal)?);
        let stage = VideoDecodeStage {
            decoder,
            spec: args.video_out.clone(),
            sink: None,
            clock,
            timecode: args.timecode,
            counters: video.clone(),
            latencies: latencies.clone(),
            feedback: fb_tx,
            sync: sync.clone(),
        };
        let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
        threads.push(spawn("video-decode", move || {
            stage.run(unit_rx, &shutdown, &fatal)
        })?);
    }

    // Audio.
    {
        let (unit_tx, unit_rx) = link::<ReceivedUnit>(AUDIO_UNIT_QUEUE);
        let (_fb_tx, fb_rx) = crossbeam_channel::bounded::<Feedback>(1);
        let session = receiver_session(Codec::Opus, &cname, latency)?;
        let net = NetStage::bind(
            listen,
            layout.audio_rtp(),
            layout.audio_rtcp(),
            SocketAddr::new(peer, layout.audio_rtcp_back()),
            session,
            audio.clone(),
        )?;
        threads.extend(net.spawn("audio", unit_tx, fb_rx, &shutdown, &fatal)?);
        let stage = AudioDecodeStage {
            decoder: OpusDecoder::new(AUDIO_CHANNELS).context("cannot start the Opus decoder")?,
            sink: audio_sink,
            clock,
            counters: audio.clone(),
            next_ts: None,
            pts: Duration::ZERO,
            sync: sync.clone(),
            hold: Duration::ZERO,
        };
        let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
        threads.push(spawn("audio-decode", move || {
            stage.run(unit_rx, &shutdown, &fatal)
        })?);
    }

    tracing::info!(
        "receiving from {peer} on {listen}: video {}/{}, audio {}/{}; RTCP to {}/{}",
        layout.video_rtp(),
        layout.video_rtcp(),
        layout.audio_rtp(),
        layout.audio_rtcp(),
        layout.video_rtcp_back(),
        layout.audio_rtcp_back()
    );

    let started = Instant::now();
    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "recv");
    let mut last = Instant::now();
    let mut prev = [(0u64, 0u64); 2];
    while !shutdown.requested() {
        thread::sleep(Duration::from_millis(50));
        let elapsed = last.elapsed();
        if elapsed >= Duration::from_secs(1) {
            last = Instant::now();
            let mut window = latencies
                .lock()
                .map(|mut l| std::mem::take(&mut l.window))
                .unwrap_or_default();
            let line = stats_line(
                &video,
                &audio,
                &mut prev,
                elapsed.as_secs_f64(),
                &mut window,
                playback.as_deref(),
                &sync,
            );
            printer.show(&line);
        }
    }
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    printer.finish();
    let mut all = latencies
        .lock()
        .map(|mut l| std::mem::take(&mut l.all))
        .unwrap_or_default();
    let summary = stats_line(
        &video,
        &audio,
        &mut [(0, 0); 2],
        started.elapsed().as_secs_f64(),
        &mut all,
        playback.as_deref(),
        &sync,
    );
    if !args.quiet {
        tracing::info!("recv finished: {summary}");
    }
    let taken = fatal.lock().ok().and_then(|mut f| f.take());
    match taken {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

fn check_video_sink(spec: &str) -> anyhow::Result<()> {
    if let Some(v4l2) = pstream_capture::v4l2::V4l2Spec::parse(spec) {
        // Open the device once now, so a missing or wrong one fails before
        // any packet arrives (the format is set by the first frame later).
        let format = VideoFormat {
            width: 640,
            height: 480,
            fps_num: 30,
            fps_den: 1,
        };
        pstream_capture::v4l2::V4l2Sink::open(&v4l2?, format)?;
        return Ok(());
    }
    if spec == "null" || spec.starts_with("y4m:") && spec.len() > 4 {
        Ok(())
    } else {
        anyhow::bail!(
            "unknown video output {spec:?}; use one of: {}",
            VIDEO_SINKS
        )
    }
}

fn receiver_session(codec: Codec, cname: &str, latency: Duration) -> anyhow::Result<RtpReceiver> {
    let mut config = ReceiverConfig::new(codec, cname);
    config.latency = latency;
    RtpReceiver::with_os_rng(config)
        .with_context(|| format!("cannot set up the {codec} RTP receiver"))
}

fn stats_line(
    video: &RecvCounters,
    audio: &RecvCounters,
    prev: &mut [(u64, u64); 2],
    secs: f64,
    latencies: &mut [u64],
    playback: Option<&DeviceCounters>,
    sync: &AvSync,
) -> String {
    let mut parts = Vec::new();
    for (i, (name, c)) in [("video", video), ("audio", audio)].into_iter().enumerate() {
        let decoded = c.decoded.load(Ordering::Relaxed);
        let bytes = c.bytes.load(Ordering::Relaxed);
        let rate = if secs > 0.0 {
            (decoded - prev[i].0) as f64 / secs
        } else {
            0.0
        };
        let mut s = if name == "video" {
            format!(
                "video {rate:.1} fps {:.0} kbit/s frames {decoded}",
                kbps(bytes - prev[i].1, secs)
            )
        } else {
            format!(
                "audio {:.0} kbit/s frames {decoded}",
                kbps(bytes - prev[i].1, secs)
            )
        };
        prev[i] = (decoded, bytes);
        s.push_str(&format!(
            " pkts {} lost {} late {} dup {} jitter {:.1} ms",
            c.packets.load(Ordering::Relaxed),
            c.lost.load(Ordering::Relaxed),
            c.late.load(Ordering::Relaxed),
            c.duplicates.load(Ordering::Relaxed),
            c.jitter_us.load(Ordering::Relaxed) as f64 / 1000.0,
        ));
        if name == "video" {
            s.push_str(&format!(
                " pli {} discarded {}",
                c.pli_sent.load(Ordering::Relaxed),
                c.discarded.load(Ordering::Relaxed)
            ));
        } else {
            s.push_str(&format!(
                " concealed {}",
                c.concealed.load(Ordering::Relaxed)
            ));
            if let Some(p) = playback {
                s.push(' ');
                s.push_str(&p.summary("played", AUDIO_RATE, AUDIO_CHANNELS));
            }
        }
        for (label, counter) in [
            ("restarts", &c.restarts),
            ("foreign", &c.foreign),
            ("malformed", &c.malformed),
            ("bad-rtcp", &c.rtcp_dropped),
        ] {
            let v = counter.load(Ordering::Relaxed);
            if v > 0 {
                s.push_str(&format!(" {label} {v}"));
            }
        }
        parts.push(s);
    }
    if let Some(av) = sync.summary() {
        parts.push(av);
    }
    if let Some((p50, p95, p99, max)) = percentiles(latencies) {
        parts.push(format!(
            "latency median {p50:.1} p95 {p95:.1} p99 {p99:.1} max {max:.1} ms"
        ));
    }
    parts.join(" | ")
}

/// A datagram and when it arrived.
type Datagram = (Bytes, Instant);

/// The network end of one stream: two sockets feeding one [`RtpReceiver`].
struct NetStage {
    rtp: UdpEndpoint,
    rtcp: UdpEndpoint,
    rtcp_to: SocketAddr,
    session: RtpReceiver,
    counters: Arc<RecvCounters>,
}

impl NetStage {
    fn bind(
        listen: IpAddr,
        rtp_port: u16,
        rtcp_port: u16,
        rtcp_to: SocketAddr,
        session: RtpReceiver,
        counters: Arc<RecvCounters>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            rtp: UdpEndpoint::bind(SocketAddr::new(listen, rtp_port))?,
            rtcp: UdpEndpoint::bind(SocketAddr::new(listen, rtcp_port))?,
            rtcp_to,
            session,
            counters,
        })
    }

    fn spawn(
        self,
        name: &str,
        units: LinkSender<ReceivedUnit>,
        feedback: Receiver<Feedback>,
        shutdown: &Shutdown,
        fatal: &FatalSlot,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let (rtp_tx, rtp_rx) = crossbeam_channel::bounded::<Datagram>(DATAGRAM_QUEUE);
        let (rtcp_tx, rtcp_rx) = crossbeam_channel::bounded::<Datagram>(64);
        let r1 = reader(
            format!("{name}-rtp"),
            self.rtp.try_clone()?,
            rtp_tx,
            shutdown,
        )?;
        let r2 = reader(
            format!("{name}-rtcp"),
            self.rtcp.try_clone()?,
            rtcp_tx,
            shutdown,
        )?;
        let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
        let main = spawn(&format!("{name}-net"), move || {
            self.run(units, rtp_rx, rtcp_rx, feedback, &shutdown, &fatal)
        })?;
        Ok(vec![r1, r2, main])
    }

    fn run(
        mut self,
        units: LinkSender<ReceivedUnit>,
        rtp: Receiver<Datagram>,
        rtcp: Receiver<Datagram>,
        feedback: Receiver<Feedback>,
        shutdown: &Shutdown,
        fatal: &FatalSlot,
    ) {
        while !shutdown.requested() {
            // Datagrams already queued arrived before now: feed them first,
            // or a late handle_timeout would give up on a gap that one of
            // them fills (the reader stamped them on time).
            for (data, at) in rtp.try_iter().take(DATAGRAM_QUEUE) {
                // Malformed packets are counted by the session itself.
                let _ = self.session.handle_rtp(at, &data);
            }
            let now = Instant::now();
            self.session.handle_timeout(now);
            if let Err(e) = self.flush(&units) {
                fail(fatal, shutdown, e);
                return;
            }
            let wait = self
                .session
                .next_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            crossbeam_channel::select! {
                recv(rtp) -> msg => if let Ok((data, at)) = msg {
                    // Malformed packets are counted by the session itself.
                    let _ = self.session.handle_rtp(at, &data);
                },
                recv(rtcp) -> msg => if let Ok((data, at)) = msg {
                    if self.session.handle_rtcp(at, &data).is_err() {
                        self.counters.rtcp_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                recv(feedback) -> msg => if let Ok(Feedback::KeyframeNeeded) = msg {
                    self.session.request_keyframe(Instant::now());
                },
                default(wait) => {}
            }
            if let Err(e) = self.flush(&units) {
                fail(fatal, shutdown, e);
                return;
            }
        }
    }

    fn flush(&mut self, units: &LinkSender<ReceivedUnit>) -> anyhow::Result<()> {
        while let Some(unit) = self.session.poll_unit() {
            // A gone decoder means we are shutting down.
            let _ = units.send(unit);
        }
        while let Some(t) = self.session.poll_transmit() {
            self.rtcp.send_to(&t.data, self.rtcp_to)?;
        }
        let s = self.session.stats();
        let c = &self.counters;
        if s.malformed + s.depay_errors > c.malformed.load(Ordering::Relaxed) {
            if let Some(e) = self.session.last_depay_error() {
                tracing::debug!("dropped: {e}");
            }
        }
        c.packets.store(s.packets, Ordering::Relaxed);
        c.bytes.store(s.bytes, Ordering::Relaxed);
        c.lost.store(s.lost, Ordering::Relaxed);
        c.late.store(s.late, Ordering::Relaxed);
        c.duplicates.store(s.duplicates, Ordering::Relaxed);
        c.jitter_us
            .store((s.jitter_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        c.pli_sent.store(s.pli_sent, Ordering::Relaxed);
        c.foreign.store(s.foreign_ssrc_packets, Ordering::Relaxed);
        c.restarts.store(s.sender_restarts, Ordering::Relaxed);
        c.malformed
            .store(s.malformed + s.depay_errors, Ordering::Relaxed);
        Ok(())
    }
}

/// Turns a blocking socket into a channel of timestamped datagrams.
fn reader(
    name: String,
    mut socket: UdpEndpoint,
    out: Sender<Datagram>,
    shutdown: &Shutdown,
) -> anyhow::Result<JoinHandle<()>> {
    let shutdown = shutdown.clone();
    spawn(&name, move || {
        while !shutdown.requested() {
            match socket.recv_timeout(Duration::from_millis(100)) {
                Ok(Some((data, _from))) => {
                    // Stamp arrival here, not when the session gets to it,
                    // so jitter measures the network and not our queue.
                    if let Err(crossbeam_channel::TrySendError::Disconnected(_)) =
                        out.try_send((data, Instant::now()))
                    {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{}", pstream_core::error::one_line(&e));
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })
    .map_err(Into::into)
}

/// Decodes H.264 and writes pictures, discarding anything broken until the
/// next IDR so a damaged picture is never shown.
struct VideoDecodeStage {
    decoder: Box<dyn VideoDecoder>,
    spec: String,
    sink: Option<(Box<dyn VideoSink>, u32, u32)>,
    clock: PipelineClock,
    timecode: bool,
    counters: Arc<RecvCounters>,
    latencies: Arc<Mutex<Latencies>>,
    feedback: Sender<Feedback>,
    sync: Arc<AvSync>,
}

/// A decoded picture waiting for its time to be shown.
struct HeldFrame {
    due: Instant,
    frame: pstream_core::VideoFrame,
}

impl VideoDecodeStage {
    fn run(mut self, units: LinkReceiver<ReceivedUnit>, shutdown: &Shutdown, fatal: &FatalSlot) {
        if let Err(e) = self.decode_all(&units) {
            fail(fatal, shutdown, e);
            return;
        }
        if let Some((sink, _, _)) = &mut self.sink {
            if let Err(e) = sink.finish() {
                fail(
                    fatal,
                    shutdown,
                    anyhow!(e).context("cannot finish the video output"),
                );
            }
        }
    }

    /// Decodes until the link closes, showing each picture when it is due:
    /// at once, or after the lip-sync hold when audio is heard later.
    fn decode_all(&mut self, units: &LinkReceiver<ReceivedUnit>) -> anyhow::Result<()> {
        let mut need_idr = true;
        let mut stamps: Vec<u32> = Vec::with_capacity(RATE_UNITS);
        // The output opens once RATE_UNITS units' timestamps give its frame
        // rate (Y4M header, device frame interval); pictures decoded before
        // that wait in `held` too.
        let mut fps: Option<(u32, u32)> = None;
        let mut held: VecDeque<HeldFrame> = VecDeque::new();
        // The lip-sync hold as of the last picture with an SR mapping.
        let mut hold = Duration::ZERO;
        let mut ssrc: Option<u32> = None;
        let mut evicted = 0;
        loop {
            let unit = match held.front() {
                Some(first) if fps.is_some() => match units.recv_deadline(first.due) {
                    Recv::Item(u) => Some(u),
                    Recv::Timeout => None,
                    Recv::Closed => break,
                },
                _ => match units.recv() {
                    Some(u) => Some(u),
                    None => break,
                },
            };
            if let Some(rate) = fps {
                self.show_due(&mut held, rate, Instant::now())?;
            }
            let Some(unit) = unit else { continue };
            // A unit the link dropped because we fell behind may have been a
            // reference; a new sender's pictures refer to nothing we have.
            // Either way the picture is broken until the next IDR.
            let dropped = units.dropped();
            if dropped != evicted || ssrc.is_some_and(|s| s != unit.ssrc) {
                self.counters
                    .discarded
                    .fetch_add(dropped - evicted, Ordering::Relaxed);
                evicted = dropped;
                need_idr = true;
            }
            ssrc = Some(unit.ssrc);
            if !unit.complete {
                self.counters.discarded.fetch_add(1, Ordering::Relaxed);
                need_idr = true;
                let _ = self.feedback.try_send(Feedback::KeyframeNeeded);
                continue;
            }
            if need_idr && !unit.keyframe {
                // Ask again (the session rate-limits PLIs): the IDR that
                // answered an earlier PLI may itself have been lost, and a
                // new sender has not been asked at all.
                self.counters.discarded.fetch_add(1, Ordering::Relaxed);
                let _ = self.feedback.try_send(Feedback::KeyframeNeeded);
                continue;
            }
            if fps.is_none() {
                stamps.push(unit.rtp_timestamp);
                if stamps.len() == RATE_UNITS {
                    fps = Some(frame_rate::estimate(&stamps, VIDEO_CLOCK_RATE));
                }
            }
            match self.decoder.decode(&unit.data) {
                Ok(Some(picture)) => {
                    need_idr = false;
                    let frame = picture.frame;
                    let now = Instant::now();
                    if self.timecode {
                        if let Some(tc) = read_timecode(&frame) {
                            let latency = self.clock.unix_micros(now).saturating_sub(tc);
                            if let Ok(mut l) = self.latencies.lock() {
                                l.push(latency);
                            }
                        }
                    }
                    if let Some(ntp) = unit.sender_ntp {
                        let delay =
                            self.clock.unix_micros(now) as i64 - ntp.to_unix_micros() as i64;
                        hold = self.sync.observe(Stream::Video, delay);
                    }
                    self.counters.decoded.fetch_add(1, Ordering::Relaxed);
                    held.push_back(HeldFrame {
                        due: now + hold,
                        frame,
                    });
                    // Memory stays bounded whatever the hold: past MAX_HELD
                    // the oldest pictures are shown early, not queued.
                    while held.len() > MAX_HELD {
                        if let (Some(rate), Some(f)) = (fps, held.pop_front()) {
                            self.write(&f.frame, rate)?;
                        } else {
                            break;
                        }
                    }
                    if let Some(rate) = fps {
                        self.show_due(&mut held, rate, Instant::now())?;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("video decode error: {e}");
                    self.counters.discarded.fetch_add(1, Ordering::Relaxed);
                    need_idr = true;
                    let _ = self.feedback.try_send(Feedback::KeyframeNeeded);
                }
            }
        }
        // The stream ended: what is held is shown now (a stream shorter
        // than RATE_UNITS units gets the rate its timestamps give).
        let rate = fps.unwrap_or_else(|| frame_rate::estimate(&stamps, VIDEO_CLOCK_RATE));
        for f in held.drain(..) {
            self.write(&f.frame, rate)?;
        }
        Ok(())
    }

    /// Writes the held pictures whose time has come.
    fn show_due(
        &mut self,
        held: &mut VecDeque<HeldFrame>,
        rate: (u32, u32),
        now: Instant,
    ) -> anyhow::Result<()> {
        while held.front().is_some_and(|f| f.due <= now) {
            if let Some(f) = held.pop_front() {
                self.write(&f.frame, rate)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, frame: &pstream_core::VideoFrame, fps: (u32, u32)) -> anyhow::Result<()> {
        let (w, h) = (frame.width(), frame.height());
        if self.sink.is_none() {
            let format = VideoFormat {
                width: w,
                height: h,
                fps_num: fps.0,
                fps_den: fps.1,
            };
            let sink = open_video_sink(&self.spec, format)?;
            tracing::info!("video {w}x{h} at {}/{} fps to {}", fps.0, fps.1, self.spec);
            self.sink = Some((sink, w, h));
        }
        let Some((sink, sw, sh)) = &mut self.sink else {
            return Ok(());
        };
        if (*sw, *sh) != (w, h) {
            if sink.accepts_size_changes() {
                // A device renegotiates its format for the new size.
                (*sw, *sh) = (w, h);
            } else {
                // A Y4M stream has one size; a sender that changed size is counted, not written.
                self.counters.discarded.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        sink.write_frame(frame)?;
        Ok(())
    }
}

/// The RTP clock of H.264 (RFC 6184) and JPEG (RFC 2435) video.
const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Decodes Opus, concealing lost packets so the output keeps its length.
struct AudioDecodeStage {
    decoder: OpusDecoder,
    sink: Box<dyn AudioSink>,
    clock: PipelineClock,
    counters: Arc<RecvCounters>,
    next_ts: Option<u32>,
    pts: Duration,
    sync: Arc<AvSync>,
    /// The hold last given to the sink.
    hold: Duration,
}

impl AudioDecodeStage {
    fn run(mut self, units: LinkReceiver<ReceivedUnit>, shutdown: &Shutdown, fatal: &FatalSlot) {
        while let Some(unit) = units.recv() {
            if let Err(e) = self.handle(&unit) {
                fail(fatal, shutdown, e);
                return;
            }
        }
        if let Err(e) = self.sink.finish() {
            fail(
                fatal,
                shutdown,
                anyhow!(e).context("cannot finish the audio output"),
            );
        }
    }

    fn handle(&mut self, unit: &ReceivedUnit) -> anyhow::Result<()> {
        // Conceal the packets lost right before this one. The count comes
        // from the sequence numbers, not the timestamps: senders that stamp
        // audio with its capture time (as pstream does) have timestamp
        // jitter that is not loss. The timestamp gap only caps the count
        // (a sender restart or a long outage just resyncs).
        if let (Some(expected), lost) = (self.next_ts, unit.lost_before) {
            let gap = (unit.rtp_timestamp.wrapping_sub(expected) as i32).unsigned_abs();
            let frames = if gap < OPUS_FRAME_TICKS * MAX_CONCEALED {
                lost.min(u64::from(MAX_CONCEALED))
            } else {
                0
            };
            for _ in 0..frames {
                match self.decoder.decode(None) {
                    Ok(samples) => {
                        self.counters.concealed.fetch_add(1, Ordering::Relaxed);
                        self.write(samples)?;
                    }
                    Err(e) => tracing::debug!("Opus concealment failed: {e}"),
                }
            }
        }
        match self.decoder.decode(Some(&unit.data)) {
            Ok(samples) => {
                let frames = (samples.len() / AUDIO_CHANNELS as usize) as u32;
                self.next_ts = Some(unit.rtp_timestamp.wrapping_add(frames));
                if let Some(ntp) = unit.sender_ntp {
                    // Heard after what the device has queued (no hold: the
                    // lip sync adds its own).
                    let queued = self.sink.latency().unwrap_or_default().as_micros() as i64;
                    let delay = self.clock.unix_micros(Instant::now()) as i64
                        - ntp.to_unix_micros() as i64
                        + queued;
                    let hold = self.sync.observe(Stream::Audio, delay);
                    if hold != self.hold {
                        self.sink.set_hold(hold);
                        self.hold = hold;
                    }
                }
                self.counters.decoded.fetch_add(1, Ordering::Relaxed);
                self.write(samples)?;
            }
            Err(e) => {
                tracing::debug!("Opus decode error: {e}");
                self.counters.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn write(&mut self, samples: Vec<f32>) -> anyhow::Result<()> {
        let block = AudioBlock {
            sample_rate: AUDIO_RATE,
            channels: AUDIO_CHANNELS,
            samples,
            capture: Instant::now(),
            pts: self.pts,
        };
        self.pts += block.duration();
        self.sink.write_block(&block)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_samples() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let (p50, p95, p99, max) = percentiles(&mut v).expect("samples");
        assert_eq!((p50.round(), p95, p99, max), (51.0, 95.0, 99.0, 100.0));
        assert!(percentiles(&mut []).is_none());
    }
}
