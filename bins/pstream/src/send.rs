//! `pstream send` and `pstream sdp`: the whole path of a frame, in one place.
//!
//! ```text
//! video source ─link─▶ H.264 / JPEG encoder ─link─▶ RtpSender (video) ─▶ UDP peer:+0 / +1
//! audio source ─link─▶ Opus encoder  ─link─▶ RtpSender (audio) ─▶ UDP peer:+2 / +3
//!                                  ▲                    │
//!                                  └── PLI/FIR ◀── RTCP from peer on listen:+5 / +7
//! ```
//! Each arrow is a bounded drop-oldest [`pstream_core::link`]; each box a thread.
//!
//! MJPEG from a V4L2 camera: with `--video-codec mjpeg` a camera that
//! delivers MJPG skips the encoder box; its source stage hands each JPEG as
//! an `EncodedUnit` (`Codec::Mjpeg`, keyframe) to the RTP stage directly.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use pstream_capture::{AudioSource, OpenedVideo};
use pstream_codec::h264::{H264Config, H264Encoder};
use pstream_codec::mjpeg::MjpegEncoder;
use pstream_codec::opus::{OpusApplication, OpusConfig, OpusEncoder};
use pstream_codec::VideoEncoder;
use pstream_core::link::Recv;
use pstream_core::{
    link, AudioBlock, Codec, EncodedUnit, LinkReceiver, LinkSender, PipelineClock, VideoFrame,
};
use pstream_rtp::sdp::{SdpOpus, SdpVideo, SessionDescription};
use pstream_rtp::sender::{RtpSender, SenderConfig, SenderEvent, TransmitKind};
use pstream_transport::{resolve_peer, unspecified_for, PortLayout, UdpEndpoint};

use crate::cli::{SendArgs, VideoCodecArg};
use crate::shutdown::{fail, FatalSlot, Shutdown};
use crate::stages::{
    audio_source_stage, capture_fragment, encoded_source_stage, open_audio, open_video,
    open_video_for, spawn, video_source_stage,
};
use crate::stats::{kbps, StatsMode, StatsPrinter};

/// Raw frames waiting for the encoder: two is enough to absorb jitter
/// without adding latency; more would only age the picture.
const FRAME_QUEUE: usize = 2;
/// Encoded units waiting for the network thread.
const UNIT_QUEUE: usize = 16;
/// Audio blocks (10 ms each) waiting for the encoder.
const AUDIO_QUEUE: usize = 16;

/// Payload type for H.264, as the costream receiver and the SDP expect.
const PT_H264: u8 = 96;
/// Payload type for Opus.
const PT_OPUS: u8 = 97;
/// Static payload type of JPEG (RFC 3551).
const PT_JPEG: u8 = pstream_rtp::jpeg::PT_JPEG;

/// The video encoder to build, decided before any thread starts.
#[derive(Debug, Clone)]
enum VideoPlan {
    /// H.264 with this configuration.
    H264(H264Config),
    /// Baseline 4:2:0 JPEG at this quality.
    Mjpeg { quality: u8 },
}

impl VideoPlan {
    fn codec(&self) -> Codec {
        match self {
            VideoPlan::H264(_) => Codec::H264,
            VideoPlan::Mjpeg { .. } => Codec::Mjpeg,
        }
    }

    fn payload_type(&self) -> u8 {
        match self {
            VideoPlan::H264(_) => PT_H264,
            VideoPlan::Mjpeg { .. } => PT_JPEG,
        }
    }

    fn encoder(&self) -> anyhow::Result<Box<dyn VideoEncoder>> {
        Ok(match self {
            VideoPlan::H264(cfg) => {
                Box::new(H264Encoder::new(*cfg).context("cannot start the H.264 encoder")?)
            }
            VideoPlan::Mjpeg { quality } => {
                Box::new(MjpegEncoder::new(*quality).context("cannot start the JPEG encoder")?)
            }
        })
    }
}

/// Everything decided before any thread starts, so bad options fail early.
struct Plan {
    peer: IpAddr,
    listen: IpAddr,
    layout: PortLayout,
    video: Option<(OpenedVideo, VideoPlan)>,
    audio: Option<(Box<dyn AudioSource>, OpusConfig)>,
}

fn plan(args: &SendArgs, clock: PipelineClock) -> anyhow::Result<Plan> {
    let peer = resolve_peer(&args.peer)?;
    let listen = args.listen.unwrap_or_else(|| unspecified_for(peer));
    if listen.is_ipv4() != peer.is_ipv4() {
        anyhow::bail!("--listen {listen} and --peer {peer} are of different address families");
    }
    let layout = PortLayout::new(args.port_base)?;
    let codec = match args.video_codec {
        VideoCodecArg::H264 => Codec::H264,
        VideoCodecArg::Mjpeg => Codec::Mjpeg,
    };
    let video = if let Some(src) = open_video_for(&args.video, args.size, args.fps, codec, clock)? {
        let f = match &src {
            OpenedVideo::Raw(s) => s.format(),
            OpenedVideo::Encoded(s) => s.format(),
        };
        let fps = f.fps();
        let video_plan = match args.video_codec {
            VideoCodecArg::H264 => VideoPlan::H264(H264Config {
                width: f.width,
                height: f.height,
                fps,
                bitrate_bps: args.bitrate * 1000,
                keyint_frames: ((args.keyint * fps as f64).round() as u32).max(1),
                threads: 1,
            }),
            VideoCodecArg::Mjpeg => {
                let max = pstream_rtp::jpeg::MAX_DIMENSION;
                if f.width > max || f.height > max {
                    anyhow::bail!(
                        "cannot send {}x{} as MJPEG over RTP: RFC 2435 carries at most \
                         {max}x{max} pixels; use --size or --video-codec h264",
                        f.width,
                        f.height
                    );
                }
                VideoPlan::Mjpeg {
                    quality: args.quality,
                }
            }
        };
        Some((src, video_plan))
    } else {
        None
    };
    let audio = open_audio(&args.audio, 48_000, args.channels, clock)?.map(|src| {
        let cfg = OpusConfig {
            channels: args.channels,
            bitrate_bps: args.audio_bitrate * 1000,
            application: OpusApplication::LowDelay,
        };
        (src, cfg)
    });
    if video.is_none() && audio.is_none() {
        anyhow::bail!("nothing to send: both --video and --audio are none");
    }
    Ok(Plan {
        peer,
        listen,
        layout,
        video,
        audio,
    })
}

/// Builds the SDP from the encoder's real parameter sets.
///
/// openh264's SPS/PPS depend only on the configuration, so a throwaway
/// encoder given one black frame yields exactly what the stream will carry.
fn describe(plan: &Plan, clock: &PipelineClock) -> anyhow::Result<String> {
    let video = match &plan.video {
        Some((_, VideoPlan::Mjpeg { .. })) => Some(SdpVideo::Jpeg {
            port: plan.layout.video_rtp(),
        }),
        Some((_, VideoPlan::H264(cfg))) => {
            let mut enc = H264Encoder::new(*cfg).context("cannot start the H.264 encoder")?;
            let black = black_frame(cfg.width, cfg.height, clock.origin())?;
            let unit = enc
                .encode(&black)
                .context("cannot encode the probe frame")?
                .ok_or_else(|| anyhow!("the H.264 encoder produced no probe frame"))?;
            let (sps, pps) = pstream_codec::h264::nal::parameter_sets(&unit.data)
                .ok_or_else(|| anyhow!("the H.264 encoder produced no SPS/PPS"))?;
            Some(SdpVideo::H264 {
                port: plan.layout.video_rtp(),
                payload_type: PT_H264,
                sps: sps.to_vec(),
                pps: pps.to_vec(),
            })
        }
        None => None,
    };
    let audio = plan.audio.as_ref().map(|(_, cfg)| SdpOpus {
        port: plan.layout.audio_rtp(),
        payload_type: PT_OPUS,
        channels: cfg.channels,
    });
    Ok(SessionDescription {
        session_id: clock.unix_micros(clock.origin()) / 1_000_000,
        peer: plan.peer,
        video,
        audio,
    }
    .render())
}

fn black_frame(width: u32, height: u32, at: Instant) -> anyhow::Result<VideoFrame> {
    let luma = width as usize * height as usize;
    let mut data = vec![16u8; VideoFrame::byte_len(width, height)];
    data[luma..].fill(128);
    Ok(VideoFrame::new(
        width,
        height,
        data.into(),
        at,
        Duration::ZERO,
    )?)
}

/// `pstream sdp`: prints the description and exits.
pub fn print_sdp(args: SendArgs) -> anyhow::Result<()> {
    let clock = PipelineClock::start();
    let plan = plan(&args, clock)?;
    let sdp = describe(&plan, &clock)?;
    print!("{sdp}");
    if let Some(path) = &args.sdp {
        std::fs::write(path, &sdp).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Counters one media stream shares with the stats line.
#[derive(Debug, Default)]
struct StreamCounters {
    units: AtomicU64,
    payload_bytes: AtomicU64,
    packets: AtomicU64,
    encoder_skips: AtomicU64,
    keyframe_requests: AtomicU64,
    rtcp_dropped: AtomicU64,
    have_report: AtomicBool,
    fraction_lost_pct_x100: AtomicU64,
    cumulative_lost: AtomicU64,
    jitter_us: AtomicU64,
    rtt_us: AtomicU64,
}

/// A stream's name, its counters, and the drop counters of its links.
type StreamEntry = (&'static str, Arc<StreamCounters>, Vec<Arc<AtomicU64>>);

/// `pstream send`: runs until `--duration`, Ctrl-C or SIGTERM.
pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::install(args.duration)?;
    let clock = PipelineClock::start();
    let plan = plan(&args, clock)?;
    if let Some(path) = &args.sdp {
        let sdp = describe(&plan, &clock)?;
        std::fs::write(path, sdp).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let Plan {
        peer,
        listen,
        layout,
        video,
        audio,
    } = plan;

    let capture_device = audio.as_ref().and_then(|(src, _)| src.device_counters());
    let audio_format = audio.as_ref().map(|(src, _)| src.format());
    let fatal: FatalSlot = Arc::new(Mutex::new(None));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut streams: Vec<StreamEntry> = Vec::new();
    let cname = format!("pstream@{}", listen);

    if let Some((src, video_plan)) = video {
        let socket = UdpEndpoint::bind(SocketAddr::new(listen, layout.video_rtcp_back()))?;
        let video_codec = video_plan.codec();
        let counters = Arc::new(StreamCounters::default());
        let keyframe = Arc::new(AtomicBool::new(false));
        let (unit_tx, unit_rx) = link::<EncodedUnit>(UNIT_QUEUE);
        match src {
            OpenedVideo::Raw(src) => {
                let encoder = video_plan.encoder()?;
                let (frame_tx, frame_rx) = link::<VideoFrame>(FRAME_QUEUE);
                streams.push((
                    "video",
                    counters.clone(),
                    vec![frame_tx.drop_counter(), unit_tx.drop_counter()],
                ));
                threads.push(spawn("video-source", {
                    let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
                    move || video_source_stage(src, frame_tx, &shutdown, &fatal)
                })?);
                threads.push(spawn("video-encode", {
                    let (shutdown, fatal, keyframe, counters) = (
                        shutdown.clone(),
                        fatal.clone(),
                        keyframe.clone(),
                        counters.clone(),
                    );
                    move || {
                        video_encode_stage(
                            encoder,
                            video_codec,
                            frame_rx,
                            unit_tx,
                            &keyframe,
                            &counters,
                            &shutdown,
                            &fatal,
                        )
                    }
                })?);
            }
            OpenedVideo::Encoded(src) => {
                // The camera's own JPEGs: every one is a keyframe, nothing to encode.
                tracing::info!("sending the camera's JPEGs as they are (no re-encoding)");
                streams.push(("video", counters.clone(), vec![unit_tx.drop_counter()]));
                threads.push(spawn("video-source", {
                    let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
                    move || encoded_source_stage(src, unit_tx, &shutdown, &fatal)
                })?);
            }
        }
        let session = sender_session(
            video_codec,
            video_plan.payload_type(),
            clock,
            &cname,
            args.mtu,
        )?;
        let net = NetStage {
            session,
            socket,
            rtp_to: SocketAddr::new(peer, layout.video_rtp()),
            rtcp_to: SocketAddr::new(peer, layout.video_rtcp()),
            keyframe: Some(keyframe),
            counters,
        };
        threads.extend(net.spawn("video-net", unit_rx, &shutdown, &fatal)?);
    }

    if let Some((src, cfg)) = audio {
        let socket = UdpEndpoint::bind(SocketAddr::new(listen, layout.audio_rtcp_back()))?;
        let encoder = OpusEncoder::new(cfg).context("cannot start the Opus encoder")?;
        let counters = Arc::new(StreamCounters::default());
        let (block_tx, block_rx) = link::<AudioBlock>(AUDIO_QUEUE);
        let (unit_tx, unit_rx) = link::<EncodedUnit>(UNIT_QUEUE);
        streams.push((
            "audio",
            counters.clone(),
            vec![block_tx.drop_counter(), unit_tx.drop_counter()],
        ));
        threads.push(spawn("audio-source", {
            let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
            move || audio_source_stage(src, block_tx, &shutdown, &fatal)
        })?);
        threads.push(spawn("audio-encode", {
            let (shutdown, fatal, counters) = (shutdown.clone(), fatal.clone(), counters.clone());
            move || audio_encode_stage(encoder, block_rx, unit_tx, &counters, &shutdown, &fatal)
        })?);
        let session = sender_session(Codec::Opus, PT_OPUS, clock, &cname, args.mtu)?;
        let net = NetStage {
            session,
            socket,
            rtp_to: SocketAddr::new(peer, layout.audio_rtp()),
            rtcp_to: SocketAddr::new(peer, layout.audio_rtcp()),
            keyframe: None,
            counters,
        };
        threads.extend(net.spawn("audio-net", unit_rx, &shutdown, &fatal)?);
    }

    tracing::info!(
        "sending to {peer}: video RTP/RTCP {}/{}, audio {}/{}; RTCP back on {listen}:{}/{}",
        layout.video_rtp(),
        layout.video_rtcp(),
        layout.audio_rtp(),
        layout.audio_rtcp(),
        layout.video_rtcp_back(),
        layout.audio_rtcp_back()
    );

    let started = Instant::now();
    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "send");
    let mut last = Instant::now();
    let mut prev: Vec<(u64, u64)> = vec![(0, 0); streams.len()];
    while !shutdown.requested() {
        thread::sleep(Duration::from_millis(50));
        let elapsed = last.elapsed();
        if elapsed >= Duration::from_secs(1) {
            last = Instant::now();
            let mut line = stats_line(&streams, &mut prev, elapsed.as_secs_f64());
            line.push_str(&capture_fragment(capture_device.as_deref(), audio_format));
            printer.show(&line);
        }
    }
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    printer.finish();
    // The summary averages over the whole run.
    let mut summary = stats_line(
        &streams,
        &mut vec![(0, 0); streams.len()],
        started.elapsed().as_secs_f64(),
    );
    summary.push_str(&capture_fragment(capture_device.as_deref(), audio_format));
    if !args.quiet {
        tracing::info!("send finished: {summary}");
    }
    let taken = fatal.lock().ok().and_then(|mut f| f.take());
    match taken {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn stats_line(streams: &[StreamEntry], prev: &mut [(u64, u64)], secs: f64) -> String {
    let mut parts = Vec::new();
    for ((name, c, drops), prev) in streams.iter().zip(prev.iter_mut()) {
        let units = c.units.load(Ordering::Relaxed);
        let bytes = c.payload_bytes.load(Ordering::Relaxed);
        let dropped: u64 = drops.iter().map(|d| d.load(Ordering::Relaxed)).sum::<u64>()
            + c.encoder_skips.load(Ordering::Relaxed);
        let rate = if secs > 0.0 {
            (units - prev.0) as f64 / secs
        } else {
            0.0
        };
        let mut s = if *name == "video" {
            format!(
                "video {rate:.1} fps {:.0} kbit/s frames {units}",
                kbps(bytes - prev.1, secs)
            )
        } else {
            format!("audio {:.0} kbit/s", kbps(bytes - prev.1, secs))
        };
        *prev = (units, bytes);
        s.push_str(&format!(
            " pkts {} drop {}",
            c.packets.load(Ordering::Relaxed),
            dropped
        ));
        if c.have_report.load(Ordering::Relaxed) {
            s.push_str(&format!(
                " loss {:.1}% lost {} jitter {:.1} ms rtt {:.1} ms",
                c.fraction_lost_pct_x100.load(Ordering::Relaxed) as f64 / 100.0,
                c.cumulative_lost.load(Ordering::Relaxed),
                c.jitter_us.load(Ordering::Relaxed) as f64 / 1000.0,
                c.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
            ));
        }
        let kf = c.keyframe_requests.load(Ordering::Relaxed);
        if kf > 0 {
            s.push_str(&format!(" kf-req {kf}"));
        }
        let bad = c.rtcp_dropped.load(Ordering::Relaxed);
        if bad > 0 {
            s.push_str(&format!(" bad-rtcp {bad}"));
        }
        parts.push(s);
    }
    parts.join(" | ")
}

fn sender_session(
    codec: Codec,
    payload_type: u8,
    clock: PipelineClock,
    cname: &str,
    mtu: u16,
) -> anyhow::Result<RtpSender> {
    let mut config = SenderConfig::new(codec, clock, cname);
    config.payload_type = payload_type;
    config.mtu = usize::from(mtu);
    RtpSender::with_os_rng(config).with_context(|| format!("cannot set up the {codec} RTP session"))
}

#[allow(clippy::too_many_arguments)]
fn video_encode_stage(
    mut enc: Box<dyn VideoEncoder>,
    codec: Codec,
    frames: LinkReceiver<VideoFrame>,
    out: LinkSender<EncodedUnit>,
    keyframe: &AtomicBool,
    counters: &StreamCounters,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
) {
    while let Some(frame) = frames.recv() {
        if keyframe.swap(false, Ordering::Relaxed) {
            enc.request_keyframe();
        }
        match enc.encode(&frame) {
            Ok(Some(unit)) => {
                if out.send(unit).is_err() {
                    break;
                }
            }
            Ok(None) => {
                counters.encoder_skips.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                fail(
                    fatal,
                    shutdown,
                    anyhow!(e).context(format!("{codec} encoding failed")),
                );
                break;
            }
        }
    }
}

fn audio_encode_stage(
    mut enc: OpusEncoder,
    blocks: LinkReceiver<AudioBlock>,
    out: LinkSender<EncodedUnit>,
    _counters: &StreamCounters,
    shutdown: &Shutdown,
    fatal: &FatalSlot,
) {
    while let Some(block) = blocks.recv() {
        match enc.encode(&block) {
            Ok(units) => {
                for unit in units {
                    if out.send(unit).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                fail(fatal, shutdown, anyhow!(e).context("Opus encoding failed"));
                return;
            }
        }
    }
}

/// The network end of one stream: drives an [`RtpSender`] from encoded
/// units, incoming RTCP and its own timers.
struct NetStage {
    session: RtpSender,
    socket: UdpEndpoint,
    rtp_to: SocketAddr,
    rtcp_to: SocketAddr,
    keyframe: Option<Arc<AtomicBool>>,
    counters: Arc<StreamCounters>,
}

impl NetStage {
    fn spawn(
        self,
        name: &str,
        units: LinkReceiver<EncodedUnit>,
        shutdown: &Shutdown,
        fatal: &FatalSlot,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        // A reader thread turns the blocking socket into a channel so the
        // session thread can wait on units, RTCP and timers at once.
        let (rtcp_tx, rtcp_rx) = crossbeam_channel::bounded::<bytes::Bytes>(64);
        let mut reader = self.socket.try_clone()?;
        let reader_stop = shutdown.clone();
        let reader = spawn(&format!("{name}-rtcp"), move || {
            while !reader_stop.requested() {
                match reader.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some((data, _from))) => {
                        if rtcp_tx.try_send(data).is_err() && rtcp_tx.is_empty() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("{e}");
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
        let (shutdown, fatal) = (shutdown.clone(), fatal.clone());
        let main = spawn(name, move || self.run(units, rtcp_rx, &shutdown, &fatal))?;
        Ok(vec![reader, main])
    }

    fn run(
        mut self,
        units: LinkReceiver<EncodedUnit>,
        rtcp: crossbeam_channel::Receiver<bytes::Bytes>,
        shutdown: &Shutdown,
        fatal: &FatalSlot,
    ) {
        loop {
            let now = Instant::now();
            self.session.handle_timeout(now);
            if let Err(e) = self.flush() {
                fail(fatal, shutdown, e);
                return;
            }
            let wait = self
                .session
                .next_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            crossbeam_channel::select! {
                recv(units.as_receiver()) -> msg => match msg {
                    Ok(unit) => {
                        self.counters.units.fetch_add(1, Ordering::Relaxed);
                        self.counters.payload_bytes.fetch_add(unit.data.len() as u64, Ordering::Relaxed);
                        if let Err(e) = self.session.push(Instant::now(), &unit) {
                            fail(fatal, shutdown, anyhow!(e).context("RTP packetization failed"));
                            return;
                        }
                    }
                    Err(_) => break,
                },
                recv(rtcp) -> msg => if let Ok(data) = msg {
                    if let Err(e) = self.session.handle_rtcp(Instant::now(), &data) {
                        self.counters.rtcp_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("dropped RTCP: {e}");
                    }
                    self.drain_events();
                },
                default(wait) => {}
            }
            if let Err(e) = self.flush() {
                fail(fatal, shutdown, e);
                return;
            }
        }
        // Upstream has finished: say goodbye so the peer need not time us out.
        self.session.close(Instant::now());
        let _ = self.flush();
        let _ = matches!(units.try_recv(), Recv::Closed);
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SenderEvent::KeyframeRequested { .. } => {
                    self.counters
                        .keyframe_requests
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(k) = &self.keyframe {
                        k.store(true, Ordering::Relaxed);
                    }
                }
                SenderEvent::ReceiverReport(rr) => {
                    let c = &self.counters;
                    c.have_report.store(true, Ordering::Relaxed);
                    c.fraction_lost_pct_x100.store(
                        (f64::from(rr.fraction_lost) * 10_000.0).round() as u64,
                        Ordering::Relaxed,
                    );
                    c.cumulative_lost
                        .store(rr.cumulative_lost.max(0) as u64, Ordering::Relaxed);
                    c.jitter_us
                        .store((rr.jitter_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
                    if let Some(rtt) = rr.rtt {
                        c.rtt_us.store(rtt.as_micros() as u64, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(t) = self.session.poll_transmit() {
            let to = match t.kind {
                TransmitKind::Rtp => {
                    self.counters.packets.fetch_add(1, Ordering::Relaxed);
                    self.rtp_to
                }
                TransmitKind::Rtcp => self.rtcp_to,
            };
            self.socket.send_to(&t.data, to)?;
        }
        Ok(())
    }
}
