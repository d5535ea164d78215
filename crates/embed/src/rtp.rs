//! Capture -> encode -> RTP/RTCP to a peer (what `pstream send` and
//! `pstream sdp` run): the whole path of a frame, in one place.
//!
//! ```text
//! video source ─link─▶ H.264 / JPEG encoder ─link─▶ RtpSender (video) ─▶ UDP peer:+0 / +1
//! audio source ─link─▶ Opus encoder  ─link─▶ RtpSender (audio) ─▶ UDP peer:+2 / +3
//!                                  ▲                    │
//!                                  └── PLI/FIR ◀── RTCP from peer on listen:+5 / +7
//! ```
//! Each arrow is a bounded drop-oldest [`pstream_core::link()`]; each box a thread.
//!
//! MJPEG from a V4L2 camera: with [`VideoCodec::Mjpeg`] a camera that
//! delivers MJPG skips the encoder box; its source stage hands each JPEG as
//! an `EncodedUnit` (`Codec::Mjpeg`, keyframe) to the RTP stage directly.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pstream_codec::h264::{H264Config, H264Preset};
use pstream_codec::mjpeg::MjpegEncoder;
use pstream_codec::opus::{OpusApplication, OpusConfig, OpusEncoder};
use pstream_codec::VideoEncoder;
use pstream_core::link::Recv;
use pstream_core::{link, AudioBlock, Codec, EncodedUnit, LinkReceiver, PipelineClock, VideoFrame};
use pstream_core::{AudioFormat, AudioSource, CameraCounters, DeviceCounters, EncodedVideoSource};
use pstream_rtp::rate::{DeliveryEstimator, RateConfig, RateController, Reason};
use pstream_rtp::rtx::{RtxConfig, PT_RTX};
use pstream_rtp::sdp::{SdpOpus, SdpVideo, SessionDescription};
use pstream_rtp::sender::{RtpSender, SenderConfig, SenderEvent, TransmitKind};
use pstream_rtp::srtp::{MasterKey, SrtpContext};
use pstream_rtp::{PeerFilter, PT_H264, PT_JPEG, PT_OPUS};
use pstream_transport::{resolve_peer, unspecified_for, PortLayout, UdpEndpoint};

use crate::encode::{audio_encode_stage, video_encode_stage, EncodeCounters, Gop};
use crate::jpeg_source::RtpJpegSource;
use crate::m2m::{h264_encoder, EncoderChoice, H264Backend};
use crate::probe::{hit, Probe, ProbePoint};
use crate::run::{Stages, Stop};
use crate::sources::OpenedVideo;
use crate::stages::{
    audio_source_stage, capture_part, encoded_source_stage, open_audio, open_video_for,
    video_source_stage,
};
use crate::stages::{camera_h264_stage, prime_h264};
use crate::stats::{kbps, per_second, StatsLine};
use crate::{Error, Result};

/// Raw frames waiting for the encoder: two is enough to absorb jitter
/// without adding latency; more would only age the picture.
const FRAME_QUEUE: usize = 2;
/// Encoded units waiting for the network thread.
const UNIT_QUEUE: usize = 16;
/// Audio blocks (10 ms each) waiting for the encoder.
const AUDIO_QUEUE: usize = 16;

/// Pause between the last RTP packet and the BYE.
const BYE_DELAY: Duration = Duration::from_millis(50);

/// JPEG quality when none is given (and for re-encoding a camera's JPEGs).
const DEFAULT_JPEG_QUALITY: u8 = 85;

/// The video codec sent over RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    /// H.264 constrained baseline (RFC 6184, packetization-mode 1), payload type 96.
    #[default]
    H264,
    /// Motion JPEG, baseline 4:2:0 (RFC 2435, static payload type 26).
    Mjpeg,
}

/// What to send where: every option of `pstream send`.
#[derive(Debug, Clone)]
pub struct RtpConfig {
    /// The receiving peer: an IPv4 or IPv6 address or a host name.
    pub peer: String,
    /// Local address for the peer's RTCP (default: unspecified, peer's family).
    pub listen: Option<IpAddr>,
    /// First port: video RTP/RTCP +0/+1, audio +2/+3, RTCP back on +5/+7.
    pub port_base: u16,
    /// Video source spec: `test`, `y4m:PATH`, `y4m:-` or `none`.
    pub video: String,
    /// Audio source spec: `test`, `wav:PATH` or `none`.
    pub audio: String,
    /// Video codec.
    pub video_codec: VideoCodec,
    /// JPEG quality 1..100 for MJPEG.
    pub quality: u8,
    /// Test pattern size (files bring their own).
    pub size: (u32, u32),
    /// Test pattern frame rate (files bring their own).
    pub fps: u32,
    /// Video bitrate in kbit/s (with `auto_bitrate`, where it starts).
    pub bitrate_kbps: u32,
    /// `--bitrate auto`: the H.264 target follows the peer's receiver
    /// reports and REMB within these bounds (see [`pstream_rtp::rate`]).
    pub auto_bitrate: Option<AutoBitrate>,
    /// Seconds between keyframes; PLIs and FIRs from the peer get at most
    /// one more per quarter of this (and 200 ms at least between two).
    pub keyint_seconds: f64,
    /// Opus bitrate in kbit/s.
    pub audio_bitrate_kbps: u32,
    /// Audio channels sent: 1 or 2.
    pub channels: u16,
    /// H.264 encoder preset.
    pub preset: H264Preset,
    /// openh264 worker threads (0: one per core).
    pub threads: u16,
    /// Which H.264 encoder: openh264, a V4L2 memory-to-memory device, or auto.
    pub encoder: EncoderChoice,
    /// Largest RTP packet in bytes, header included.
    pub mtu: u16,
    /// SRTP (RFC 3711): RTP and RTCP both ways protected with this master
    /// key (its profile included); `None` sends in clear.
    pub srtp: Option<MasterKey>,
    /// Answer the peer's NACKs (RFC 4585) with retransmissions of the video
    /// in an RTX stream (RFC 4588: same port, its own SSRC) from a history
    /// bounded in bytes (1 MiB) and age (1 s).
    pub rtx: bool,
    /// Payload type of the RTX stream (associated with the video's).
    pub rtx_payload_type: u8,
    /// Hears of each video picture as it leaves the source, the encoder
    /// and the network stage (`pstream bench loopback`); `None`: no cost.
    pub probe: Option<Probe>,
}

impl RtpConfig {
    /// `pstream send`'s defaults towards `peer`: 1280x720@30 test pattern at
    /// 2.5 Mbit/s, a stereo 96 kbit/s tone, ports 5000-5007.
    pub fn new(peer: impl Into<String>) -> Self {
        Self {
            peer: peer.into(),
            listen: None,
            port_base: 5000,
            video: "test".into(),
            audio: "test".into(),
            video_codec: VideoCodec::H264,
            quality: DEFAULT_JPEG_QUALITY,
            size: (1280, 720),
            fps: 30,
            bitrate_kbps: 2500,
            auto_bitrate: None,
            keyint_seconds: 2.0,
            audio_bitrate_kbps: 96,
            channels: 2,
            preset: H264Preset::Fast,
            threads: 1,
            encoder: EncoderChoice::Openh264,
            mtu: 1200,
            srtp: None,
            rtx: false,
            rtx_payload_type: PT_RTX,
            probe: None,
        }
    }
}

/// Bounds of `--bitrate auto`, in kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoBitrate {
    /// The lowest target (`--min-bitrate`).
    pub min_kbps: u32,
    /// The highest target (`--max-bitrate`).
    pub max_kbps: u32,
}

impl Default for AutoBitrate {
    /// 300 kbit/s to 6 Mbit/s: from what still shows a picture at 720p to
    /// more than 720p30 needs.
    fn default() -> Self {
        Self {
            min_kbps: 300,
            max_kbps: 6000,
        }
    }
}

/// The video encoder to build, decided before any thread starts.
#[derive(Debug, Clone)]
enum VideoPlan {
    /// H.264 with this configuration, from this encoder.
    H264(H264Config, H264Backend),
    /// A camera's own H.264, sent as it is, with the parameter sets its
    /// stream began with (for the SDP).
    H264Camera {
        /// The SPS NAL unit (no start code).
        sps: Vec<u8>,
        /// The PPS NAL unit (no start code).
        pps: Vec<u8>,
    },
    /// Baseline 4:2:0 JPEG at this quality.
    Mjpeg { quality: u8 },
}

impl VideoPlan {
    fn codec(&self) -> Codec {
        match self {
            VideoPlan::H264(..) | VideoPlan::H264Camera { .. } => Codec::H264,
            VideoPlan::Mjpeg { .. } => Codec::Mjpeg,
        }
    }

    fn payload_type(&self) -> u8 {
        match self {
            VideoPlan::H264(..) | VideoPlan::H264Camera { .. } => PT_H264,
            VideoPlan::Mjpeg { .. } => PT_JPEG,
        }
    }

    fn encoder(&self) -> Result<Box<dyn VideoEncoder>> {
        Ok(match self {
            VideoPlan::H264(cfg, backend) => h264_encoder(backend, *cfg)?,
            VideoPlan::H264Camera { .. } => {
                return Err(Error::Config(
                    "a camera's own H.264 has no encoder to start".into(),
                ))
            }
            VideoPlan::Mjpeg { quality } => Box::new(
                MjpegEncoder::new(*quality)
                    .map_err(|e| Error::failed("cannot start the JPEG encoder", e))?,
            ),
        })
    }
}

/// Everything decided before any thread starts, so bad options fail early:
/// sources opened, encoders configured. [`RtpSend::prepare`] makes one.
pub struct Plan {
    clock: PipelineClock,
    mtu: u16,
    keyint: Duration,
    peer: IpAddr,
    listen: IpAddr,
    layout: PortLayout,
    video: Option<(OpenedVideo, VideoPlan)>,
    audio: Option<(Box<dyn AudioSource>, OpusConfig)>,
    srtp: Option<MasterKey>,
    /// `--bitrate auto` (H.264 only): the controller's bounds and start.
    rate: Option<RateConfig>,
    /// The video's RTX payload type, when retransmission is on.
    rtx: Option<u8>,
    probe: Option<Probe>,
}

fn plan(args: &RtpConfig, clock: PipelineClock) -> Result<Plan> {
    let peer = resolve_peer(&args.peer)?;
    let listen = args.listen.unwrap_or_else(|| unspecified_for(peer));
    if listen.is_ipv4() != peer.is_ipv4() {
        return Err(Error::Config(format!(
            "--listen {listen} and --peer {peer} are of different address families"
        )));
    }
    let layout = PortLayout::new(args.port_base)?;
    let rate = match (args.auto_bitrate, args.video_codec) {
        (None, _) => None,
        (Some(_), VideoCodec::Mjpeg) => {
            // JPEG's quality has no bitrate to steer to; saying so beats a
            // stats line claiming a target nothing follows.
            return Err(Error::Config(
                "--bitrate auto steers the H.264 encoder; MJPEG has only --quality".into(),
            ));
        }
        (Some(a), VideoCodec::H264) => {
            if a.min_kbps > a.max_kbps {
                return Err(Error::Config(format!(
                    "--min-bitrate {} is above --max-bitrate {}",
                    a.min_kbps, a.max_kbps
                )));
            }
            Some(RateConfig::new(
                u64::from(a.min_kbps) * 1000,
                u64::from(a.max_kbps) * 1000,
                u64::from(args.bitrate_kbps) * 1000,
            ))
        }
    };
    let codec = match args.video_codec {
        VideoCodec::H264 => Codec::H264,
        VideoCodec::Mjpeg => Codec::Mjpeg,
    };
    let video = if let Some(mut src) =
        open_video_for(&args.video, args.size, args.fps, codec, clock)?
    {
        let f = match &src {
            OpenedVideo::Raw(s) => s.format(),
            OpenedVideo::Encoded(s) => s.format(),
        };
        let fps = f.fps();
        let video_plan = match (args.video_codec, src) {
            // A camera that encodes H.264 itself: its stream is sent as it
            // is; the SDP takes the parameter sets the stream starts with.
            (VideoCodec::H264, OpenedVideo::Encoded(cam)) => {
                let (cam, sps, pps) = prime_h264(cam)?;
                tracing::info!("sending the camera's H.264 as it is (no decoding or re-encoding)");
                src = OpenedVideo::Encoded(cam);
                VideoPlan::H264Camera { sps, pps }
            }
            (VideoCodec::H264, raw) => {
                src = raw;
                VideoPlan::H264(
                    H264Config {
                        width: f.width,
                        height: f.height,
                        fps,
                        bitrate_bps: rate.map_or(args.bitrate_kbps * 1000, |r| r.start_bps as u32),
                        keyint_frames: ((args.keyint_seconds * fps as f64).round() as u32).max(1),
                        threads: args.threads,
                        preset: args.preset,
                    },
                    args.encoder.resolve()?,
                )
            }
            (VideoCodec::Mjpeg, opened) => {
                src = opened;
                let max = pstream_rtp::jpeg::MAX_DIMENSION;
                if f.width > max || f.height > max {
                    return Err(Error::Config(format!(
                        "cannot send {}x{} as MJPEG over RTP: RFC 2435 carries at most \
                         {max}x{max} pixels; use --size or --video-codec h264",
                        f.width, f.height
                    )));
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
            bitrate_bps: args.audio_bitrate_kbps * 1000,
            application: OpusApplication::LowDelay,
        };
        (src, cfg)
    });
    if video.is_none() && audio.is_none() {
        return Err(Error::Config(
            "nothing to send: both --video and --audio are none".into(),
        ));
    }
    let video_pt = video.as_ref().map(|(_, p)| p.payload_type());
    Ok(Plan {
        clock,
        mtu: args.mtu,
        keyint: Duration::try_from_secs_f64(args.keyint_seconds)
            .map_err(|_| Error::Config(format!("keyint {} s", args.keyint_seconds)))?,
        peer,
        listen,
        layout,
        video,
        audio,
        srtp: args.srtp.clone(),
        rate,
        rtx: rtx_payload_type(args, video_pt)?,
        probe: args.probe.clone(),
    })
}

/// The RTX payload type when `--rtx` is on, refused when it cannot be told
/// apart from the video's or is not a 7-bit dynamic one.
fn rtx_payload_type(args: &RtpConfig, video_pt: Option<u8>) -> Result<Option<u8>> {
    if !args.rtx {
        return Ok(None);
    }
    let pt = args.rtx_payload_type;
    if !(96..=127).contains(&pt) || Some(pt) == video_pt {
        return Err(Error::Config(format!(
            "RTX payload type {pt} must be a dynamic one (96..=127) other than the video's{}",
            video_pt.map_or_else(String::new, |v| format!(" ({v})"))
        )));
    }
    Ok(Some(pt))
}

/// Builds the SDP from the encoder's real parameter sets.
///
/// openh264's SPS/PPS depend only on the configuration, so a throwaway
/// encoder given one black frame yields exactly what the stream will carry.
fn describe(plan: &Plan, clock: &PipelineClock) -> Result<String> {
    let video = match &plan.video {
        Some((_, VideoPlan::Mjpeg { .. })) => Some(SdpVideo::Jpeg {
            port: plan.layout.video_rtp(),
        }),
        Some((_, VideoPlan::H264Camera { sps, pps })) => Some(SdpVideo::H264 {
            port: plan.layout.video_rtp(),
            payload_type: PT_H264,
            sps: sps.clone(),
            pps: pps.clone(),
        }),
        Some((_, VideoPlan::H264(cfg, backend))) => {
            let mut enc = h264_encoder(backend, *cfg)?;
            let black = black_frame(cfg.width, cfg.height, clock.origin())?;
            let unit = enc
                .encode(&black)
                .map_err(|e| Error::failed("cannot encode the probe frame", e))?
                .ok_or_else(|| Error::Config("the H.264 encoder produced no probe frame".into()))?;
            let (sps, pps) = pstream_codec::h264::nal::parameter_sets(&unit.data)
                .ok_or_else(|| Error::Config("the H.264 encoder produced no SPS/PPS".into()))?;
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
        srtp: plan.srtp.clone(),
        video_rtx: plan.rtx.filter(|_| plan.video.is_some()),
    }
    .render())
}

fn black_frame(width: u32, height: u32, at: Instant) -> Result<VideoFrame> {
    let luma = width as usize * height as usize;
    let mut data = vec![16u8; VideoFrame::byte_len(width, height)];
    data[luma..].fill(128);
    VideoFrame::new(width, height, data.into(), at, Duration::ZERO)
        .map_err(|e| Error::failed("cannot make the probe frame", e))
}

/// Counters one media stream shares with the stats line.
#[derive(Debug, Default)]
struct StreamCounters {
    units: AtomicU64,
    payload_bytes: AtomicU64,
    packets: AtomicU64,
    /// The encode stage's counters (skips, the oldest picture encoded).
    encode: EncodeCounters,
    /// PLIs and FIRs from the peer (the session's count).
    keyframe_requests: AtomicU64,
    /// Keyframes asked of the encoder for them: at most one per keyint / 4.
    keyframes_asked: AtomicU64,
    /// RTCP datagrams from addresses other than the peer's, dropped.
    not_peer: AtomicU64,
    rtcp_dropped: AtomicU64,
    /// SRTCP from the peer that failed authentication (or was not SRTCP).
    srtp_auth_failed: AtomicU64,
    /// SRTCP from the peer refused as a replay.
    srtp_replayed: AtomicU64,
    /// `--bitrate auto`: the target and why it last moved.
    rate: Mutex<Option<(u64, Reason)>>,
    /// Reports and REMBs the controller dropped or clamped as lies.
    rate_rejected: AtomicU64,
    /// Whether this stream answers NACKs (its RTX counters are then shown).
    rtx: AtomicBool,
    /// Sequence numbers the peer NACKed.
    nacked: AtomicU64,
    /// RTX packets sent for them.
    rtx_sent: AtomicU64,
    /// NACKed packets no longer (or never) in the history: not resent.
    rtx_missing: AtomicU64,
    /// NACKed packets resent too recently to resend (repeated requests).
    rtx_suppressed: AtomicU64,
    /// NACK entries past the 64 one NACK may list, ignored.
    nack_dropped: AtomicU64,
    /// Requests dropped once retransmissions had used up their share of
    /// the stream (a NACK flood).
    rtx_limited: AtomicU64,
    have_report: AtomicBool,
    fraction_lost_pct_x100: AtomicU64,
    cumulative_lost: AtomicU64,
    jitter_us: AtomicU64,
    rtt_us: AtomicU64,
}

/// A stream's name, its counters, and the drop counters of its links (the
/// first is the source link: frames the encoder had no time for).
type StreamEntry = (&'static str, Arc<StreamCounters>, Vec<Arc<AtomicU64>>);

impl Plan {
    /// The SDP file describing this stream, built from the encoder's real
    /// parameter sets (what `pstream sdp` prints).
    pub fn sdp(&self) -> Result<String> {
        describe(self, &self.clock)
    }

    /// Starts every stage; the stream runs until `stop` is set, a source
    /// ends, or a stage fails.
    pub fn start(self, stop: Stop) -> Result<RtpSend> {
        RtpSend::start(self, stop)
    }
}

/// A running RTP stream: its stage threads and their counters.
pub struct RtpSend {
    stages: Stages,
    streams: Vec<StreamEntry>,
    prev: Vec<(u64, u64)>,
    last: Instant,
    started: Instant,
    capture_device: Option<Arc<DeviceCounters>>,
    camera: Option<Arc<CameraCounters>>,
    audio_format: Option<AudioFormat>,
}

impl std::fmt::Debug for RtpSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpSend")
            .field("threads", &self.stages.count())
            .finish_non_exhaustive()
    }
}

impl RtpSend {
    /// Opens the sources and configures the encoders of `config`, so that
    /// bad settings fail before anything starts.
    pub fn prepare(config: &RtpConfig) -> Result<Plan> {
        plan(config, PipelineClock::start())
    }

    fn start(plan: Plan, shutdown: Stop) -> Result<Self> {
        let Plan {
            clock,
            mtu,
            keyint,
            peer,
            listen,
            layout,
            video,
            audio,
            srtp,
            rate,
            rtx,
            probe,
        } = plan;

        let capture_device = audio.as_ref().and_then(|(src, _)| src.device_counters());
        let camera = video.as_ref().and_then(|(src, _)| match src {
            OpenedVideo::Raw(s) => s.camera_counters(),
            OpenedVideo::Encoded(s) => s.camera_counters(),
        });
        let audio_format = audio.as_ref().map(|(src, _)| src.format());

        // Threads are owned by `me` from the first one on, so that a stage
        // failing to start (a port in use) stops and joins those already
        // running when `me` drops.
        let mut me = Self {
            stages: Stages::new(shutdown.clone()),
            streams: Vec::new(),
            prev: Vec::new(),
            last: Instant::now(),
            started: Instant::now(),
            capture_device,
            camera,
            audio_format,
        };
        let cname = format!("pstream@{}", listen);
        if let Some((src, video_plan)) = video {
            let socket = UdpEndpoint::bind(SocketAddr::new(listen, layout.video_rtcp_back()))?;
            let video_codec = video_plan.codec();
            let counters = Arc::new(StreamCounters::default());
            let keyframe = Arc::new(AtomicBool::new(false));
            // `--bitrate auto`: the network stage's target for the encoder.
            let target = Arc::new(AtomicU32::new(0));
            let (unit_tx, unit_rx) = link::<EncodedUnit>(UNIT_QUEUE);
            match src {
                OpenedVideo::Raw(src) => {
                    let mut encoder = video_plan.encoder()?;
                    if rate.is_some() {
                        encoder = Box::new(Steered {
                            inner: encoder,
                            target: target.clone(),
                            applied: 0,
                        });
                    }
                    let (frame_tx, frame_rx) = link::<VideoFrame>(FRAME_QUEUE);
                    me.streams.push((
                        "video",
                        counters.clone(),
                        vec![frame_tx.drop_counter(), unit_tx.drop_counter()],
                    ));
                    let source_probe = probe.clone();
                    me.stages.spawn("video-source", move |stop| {
                        video_source_stage(src, frame_tx, stop, source_probe)
                    })?;
                    me.stages.spawn("video-encode", {
                        let (keyframe, counters) = (keyframe.clone(), counters.clone());
                        let probe = probe.clone();
                        move |_| {
                            video_encode_stage(
                                encoder,
                                video_codec,
                                Gop::Encoder,
                                frame_rx,
                                unit_tx,
                                &keyframe,
                                &counters.encode,
                                probe.as_ref(),
                            )
                        }
                    })?;
                }
                OpenedVideo::Encoded(src) => {
                    if rate.is_some() {
                        tracing::warn!(
                            "--bitrate auto: a camera's own encoded video has no bitrate to steer"
                        );
                    }
                    me.streams
                        .push(("video", counters.clone(), vec![unit_tx.drop_counter()]));
                    if let VideoPlan::H264Camera { .. } = &video_plan {
                        // A camera's own H.264: its units as they come, the
                        // peer's key frame requests passed on to it.
                        let keyframe = keyframe.clone();
                        me.stages.spawn("video-source", move |stop| {
                            camera_h264_stage(src, unit_tx, stop, &keyframe, None)
                        })?;
                    } else {
                        // The camera's own JPEGs: every one is a keyframe, nothing to
                        // encode (unless RFC 2435 cannot carry them as they are).
                        tracing::info!("sending the camera's JPEGs as they are (no re-encoding)");
                        let quality = match &video_plan {
                            VideoPlan::Mjpeg { quality } => *quality,
                            _ => DEFAULT_JPEG_QUALITY,
                        };
                        let src: Box<dyn EncodedVideoSource> =
                            Box::new(RtpJpegSource::new(src, quality));
                        me.stages.spawn("video-source", move |stop| {
                            encoded_source_stage(src, unit_tx, stop)
                        })?;
                    }
                }
            }
            let session = sender_session(
                video_codec,
                video_plan.payload_type(),
                clock,
                &cname,
                (mtu, keyint),
                rtx.map(RtxConfig::with_payload_type),
            )?;
            counters.rtx.store(rtx.is_some(), Ordering::Relaxed);
            let net = NetStage {
                session,
                socket,
                peer: PeerFilter::only(peer),
                rtp_to: SocketAddr::new(peer, layout.video_rtp()),
                rtcp_to: SocketAddr::new(peer, layout.video_rtcp()),
                keyframe: Some(keyframe),
                counters,
                srtp: srtp.as_ref().map(Srtp::new),
                rate: rate.map(|config| Rate {
                    ctl: RateController::new(config),
                    delivery: DeliveryEstimator::default(),
                    target,
                }),
                probe,
            };
            net.spawn("video-net", unit_rx, &mut me.stages)?;
        }

        if let Some((src, cfg)) = audio {
            let socket = UdpEndpoint::bind(SocketAddr::new(listen, layout.audio_rtcp_back()))?;
            let encoder = OpusEncoder::new(cfg)
                .map_err(|e| Error::failed("cannot start the Opus encoder", e))?;
            let counters = Arc::new(StreamCounters::default());
            let (block_tx, block_rx) = link::<AudioBlock>(AUDIO_QUEUE);
            let (unit_tx, unit_rx) = link::<EncodedUnit>(UNIT_QUEUE);
            me.streams.push((
                "audio",
                counters.clone(),
                vec![block_tx.drop_counter(), unit_tx.drop_counter()],
            ));
            me.stages.spawn("audio-source", move |stop| {
                audio_source_stage(src, block_tx, stop)
            })?;
            me.stages.spawn("audio-encode", {
                let counters = counters.clone();
                move |_| audio_encode_stage(Box::new(encoder), block_rx, unit_tx, &counters.encode)
            })?;
            let session = sender_session(Codec::Opus, PT_OPUS, clock, &cname, (mtu, keyint), None)?;
            let net = NetStage {
                session,
                socket,
                peer: PeerFilter::only(peer),
                rtp_to: SocketAddr::new(peer, layout.audio_rtp()),
                rtcp_to: SocketAddr::new(peer, layout.audio_rtcp()),
                keyframe: None,
                counters,
                srtp: srtp.as_ref().map(Srtp::new),
                rate: None,
                probe: None,
            };
            net.spawn("audio-net", unit_rx, &mut me.stages)?;
        }

        let srtp = srtp
            .as_ref()
            .map_or_else(String::new, |k| format!("; SRTP {}", k.profile()));
        let rtx = rtx.map_or_else(String::new, |pt| format!("; RTX payload type {pt}"));
        tracing::info!(
            "sending to {peer}: video RTP/RTCP {}/{}, audio {}/{}; RTCP back on {listen}:{}/{}{srtp}{rtx}",
            layout.video_rtp(),
            layout.video_rtcp(),
            layout.audio_rtp(),
            layout.audio_rtcp(),
            layout.video_rtcp_back(),
            layout.audio_rtcp_back()
        );
        me.prev = vec![(0, 0); me.streams.len()];
        me.last = Instant::now();
        me.started = Instant::now();
        Ok(me)
    }

    /// True once the stream is ending (stop requested, source ended, or a
    /// stage failed).
    pub fn stopping(&self) -> bool {
        self.stages.ending()
    }

    /// Asks every stage to stop; [`RtpSend::wait`] then returns promptly.
    pub fn stop(&self) {
        self.stages.stop();
    }

    /// The stats since the last call: per stream the rate, packets, drops
    /// (`src-drop`: frames the encoder had no time for; `age-max`: the
    /// oldest a picture was when encoded) and the peer's receiver reports.
    pub fn stats_line(&mut self) -> String {
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let mut line = stats_line(&self.streams, &mut self.prev, secs);
        self.push_devices(&mut line);
        line.to_string()
    }

    /// The same figures averaged over the whole run.
    pub fn summary(&self) -> String {
        let mut line = stats_line(
            &self.streams,
            &mut vec![(0, 0); self.streams.len()],
            self.started.elapsed().as_secs_f64(),
        );
        self.push_devices(&mut line);
        line.to_string()
    }

    /// The capture devices' parts of the stats line: camera, microphone.
    fn push_devices(&self, line: &mut StatsLine) {
        if let Some(cam) = &self.camera {
            line.part(cam.summary());
        }
        capture_part(line, self.capture_device.as_deref(), self.audio_format);
    }

    /// Waits until the run ends (its duration, a source's end, a failure or
    /// [`RtpSend::stop`]) and every stage has finished; the first stage
    /// failure, if any.
    pub fn wait(&mut self) -> Result<()> {
        self.stages.wait()
    }
}

fn stats_line(streams: &[StreamEntry], prev: &mut [(u64, u64)], secs: f64) -> StatsLine {
    let mut line = StatsLine::new();
    for ((name, c, drops), prev) in streams.iter().zip(prev.iter_mut()) {
        let units = c.units.load(Ordering::Relaxed);
        let bytes = c.payload_bytes.load(Ordering::Relaxed);
        let dropped: u64 =
            drops.iter().map(|d| d.load(Ordering::Relaxed)).sum::<u64>() + c.encode.skips();
        let rate = kbps(bytes.saturating_sub(prev.1), secs);
        line.section(name);
        if *name == "video" {
            line.rate(per_second(units.saturating_sub(prev.0), secs), 1, "fps")
                .rate(rate, 0, "kbit/s")
                .count("frames", units);
        } else {
            line.rate(rate, 0, "kbit/s");
        }
        *prev = (units, bytes);
        line.count("pkts", c.packets.load(Ordering::Relaxed))
            .count("drop", dropped);
        if *name == "video" {
            let src_drop = drops.first().map_or(0, |d| d.load(Ordering::Relaxed));
            line.count("src-drop", src_drop).figure(
                "age-max",
                c.encode.max_age_us() as f64 / 1000.0,
                0,
                "ms",
            );
        }
        if c.have_report.load(Ordering::Relaxed) {
            line.percent(
                "loss",
                c.fraction_lost_pct_x100.load(Ordering::Relaxed) as f64 / 100.0,
                1,
            )
            .count("lost", c.cumulative_lost.load(Ordering::Relaxed))
            .figure(
                "jitter",
                c.jitter_us.load(Ordering::Relaxed) as f64 / 1000.0,
                1,
                "ms",
            )
            .figure(
                "rtt",
                c.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
                1,
                "ms",
            );
        }
        if let Some((bps, why)) = *c.rate.lock().unwrap_or_else(|e| e.into_inner()) {
            line.word(format_args!(
                "rate {:.1}M ({why})",
                bps as f64 / 1_000_000.0
            ));
        }
        line.count_nonzero("kf-req", c.keyframe_requests.load(Ordering::Relaxed))
            .count_nonzero("rate-bad", c.rate_rejected.load(Ordering::Relaxed))
            .count_nonzero("kf-asked", c.keyframes_asked.load(Ordering::Relaxed))
            .count_nonzero("not-peer", c.not_peer.load(Ordering::Relaxed))
            .count_nonzero("bad-rtcp", c.rtcp_dropped.load(Ordering::Relaxed))
            .count_nonzero("auth-fail", c.srtp_auth_failed.load(Ordering::Relaxed))
            .count_nonzero("replayed", c.srtp_replayed.load(Ordering::Relaxed));
        if c.rtx.load(Ordering::Relaxed) {
            line.count("nack-rcvd", c.nacked.load(Ordering::Relaxed))
                .count("rtx-sent", c.rtx_sent.load(Ordering::Relaxed))
                .count_nonzero("rtx-missing", c.rtx_missing.load(Ordering::Relaxed))
                .count_nonzero("rtx-suppressed", c.rtx_suppressed.load(Ordering::Relaxed))
                .count_nonzero("nack-dropped", c.nack_dropped.load(Ordering::Relaxed))
                .count_nonzero("rtx-limited", c.rtx_limited.load(Ordering::Relaxed));
        }
    }
    line
}

fn sender_session(
    codec: Codec,
    payload_type: u8,
    clock: PipelineClock,
    cname: &str,
    (mtu, keyint): (u16, Duration),
    rtx: Option<RtxConfig>,
) -> Result<RtpSender> {
    let mut config = SenderConfig::new(codec, clock, cname).with_keyint(keyint);
    config.payload_type = payload_type;
    config.mtu = usize::from(mtu);
    config.rtx = rtx;
    RtpSender::with_os_rng(config)
        .map_err(|e| Error::failed(format!("cannot set up the {codec} RTP session"), e))
}

/// The network end of one stream: drives an [`RtpSender`] from encoded
/// units, incoming RTCP and its own timers.
struct NetStage {
    session: RtpSender,
    socket: UdpEndpoint,
    /// Whose RTCP is read: the peer's address only, so no other host can
    /// ask for keyframes or forge receiver reports.
    peer: PeerFilter,
    rtp_to: SocketAddr,
    rtcp_to: SocketAddr,
    keyframe: Option<Arc<AtomicBool>>,
    counters: Arc<StreamCounters>,
    /// With SRTP: every datagram out protected, every one in authenticated
    /// before the session sees it.
    srtp: Option<Srtp>,
    /// `--bitrate auto` (video only).
    rate: Option<Rate>,
    /// Hears when each unit's packets have all gone to the socket.
    probe: Option<Probe>,
}

/// `--bitrate auto` in the network stage: the controller fed from the
/// session's events, and where its target goes to the encoder.
struct Rate {
    ctl: RateController,
    delivery: DeliveryEstimator,
    /// Read by [`Steered`] before every picture (bits per second).
    target: Arc<AtomicU32>,
}

/// The video encoder with its bitrate steered from the network stage: the
/// target is read before each picture, so the encode stage stays as every
/// pipeline runs it.
struct Steered {
    inner: Box<dyn VideoEncoder>,
    target: Arc<AtomicU32>,
    applied: u32,
}

impl VideoEncoder for Steered {
    fn encode(
        &mut self,
        frame: &VideoFrame,
    ) -> std::result::Result<Option<EncodedUnit>, pstream_codec::CodecError> {
        let t = self.target.load(Ordering::Relaxed);
        if t != 0 && t != self.applied {
            self.applied = t;
            self.inner.set_bitrate(t);
        }
        self.inner.encode(frame)
    }

    fn request_keyframe(&mut self) {
        self.inner.request_keyframe();
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        self.inner.set_bitrate(bps)
    }
}

/// The two SRTP contexts of one stream under one master key: what is
/// protected going out and what is authenticated coming in (each keeps its
/// own per-SSRC indices and replay windows).
pub(crate) struct Srtp {
    /// Protects what this end sends.
    pub(crate) out: SrtpContext,
    /// Authenticates and decrypts what the peer sends.
    pub(crate) input: SrtpContext,
    /// Scratch buffer the contexts write into.
    pub(crate) buf: bytes::BytesMut,
}

impl Srtp {
    /// Both contexts for `key`.
    pub(crate) fn new(key: &MasterKey) -> Self {
        Self {
            out: SrtpContext::new(key),
            input: SrtpContext::new(key),
            buf: bytes::BytesMut::new(),
        }
    }
}

impl NetStage {
    fn spawn(
        self,
        name: &str,
        units: LinkReceiver<EncodedUnit>,
        stages: &mut Stages,
    ) -> Result<()> {
        // A reader thread turns the blocking socket into a channel so the
        // session thread can wait on units, RTCP and timers at once.
        let (rtcp_tx, rtcp_rx) = crossbeam_channel::bounded::<bytes::Bytes>(64);
        let mut reader = self.socket.try_clone()?;
        let (peer, counters) = (self.peer.clone(), self.counters.clone());
        stages.spawn(&format!("{name}-rtcp"), move |stop| {
            while !stop.requested() {
                match reader.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some((_, from))) if !peer.admits(from.ip()) => {
                        counters.not_peer.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some((data, _from))) => {
                        if rtcp_tx.try_send(data).is_err() && rtcp_tx.is_empty() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("{}", crate::error::one_line(&e));
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            Ok(())
        })?;
        stages.spawn(name, move |_| self.run(units, rtcp_rx))
    }

    fn run(
        mut self,
        units: LinkReceiver<EncodedUnit>,
        rtcp: crossbeam_channel::Receiver<bytes::Bytes>,
    ) -> Result<()> {
        loop {
            let now = Instant::now();
            // A keyframe request held back by the session's rate limit is
            // handed out from here once its interval is over.
            self.session.handle_timeout(now);
            self.drain_events();
            self.flush()?;
            let wait = self
                .session
                .next_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            crossbeam_channel::select! {
                recv(units.as_receiver()) -> msg => match units.taken(msg) {
                    Some(unit) => {
                        self.counters.units.fetch_add(1, Ordering::Relaxed);
                        self.counters.payload_bytes.fetch_add(unit.data.len() as u64, Ordering::Relaxed);
                        if let Err(e) = self.session.push(Instant::now(), &unit) {
                            return Err(Error::failed("RTP packetization failed", e));
                        }
                        if self.probe.is_some() {
                            // Sent means on the socket: flush before telling.
                            self.flush()?;
                            hit(self.probe.as_ref(), || ProbePoint::Sent { capture: unit.capture });
                        }
                    }
                    None => break,
                },
                recv(rtcp) -> msg => if let Some(data) = msg.ok().and_then(|d| self.unprotect_rtcp(d)) {
                    if let Err(e) = self.session.handle_rtcp(Instant::now(), &data) {
                        self.counters.rtcp_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("dropped RTCP: {e}");
                    }
                    self.drain_events();
                },
                default(wait) => {}
            }
            self.flush()?;
        }
        // Upstream has finished: say goodbye so the peer need not time us
        // out. Not at once: the BYE travels on the RTCP port and ffmpeg ends
        // the stream when it reads it, even with the last picture's packets
        // still unread on the RTP port.
        thread::sleep(BYE_DELAY);
        self.session.close(Instant::now());
        let _ = self.flush();
        let _ = matches!(units.try_recv(), Recv::Closed);
        Ok(())
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SenderEvent::KeyframeRequested { .. } => {
                    self.counters
                        .keyframes_asked
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(k) = &self.keyframe {
                        k.store(true, Ordering::Relaxed);
                    }
                }
                SenderEvent::ReceiverReport(rr) => {
                    self.rate_report(&rr);
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
                SenderEvent::Remb { bitrate } => {
                    if let Some(r) = &mut self.rate {
                        r.ctl.handle_remb(Instant::now(), bitrate);
                    }
                }
                _ => {}
            }
        }
        self.rate_poll();
    }

    /// Hands a receiver report on our stream to `--bitrate auto`.
    fn rate_report(&mut self, rr: &pstream_rtp::sender::ReceiverReportStats) {
        let Some(r) = &mut self.rate else {
            return;
        };
        let now = Instant::now();
        let st = self.session.stats();
        // What one of our packets weighs on the wire: payload, RTP header.
        let mean = if st.packets > 0 {
            st.octets as f64 / st.packets as f64 + 12.0
        } else {
            0.0
        };
        let delivered = r
            .delivery
            .update(now, rr.highest_seq, rr.cumulative_lost, mean);
        r.ctl
            .handle_report(now, rr.fraction_lost, rr.rtt, delivered);
    }

    /// Passes a moved target to the encoder and the stats line.
    fn rate_poll(&mut self) {
        let Some(r) = &mut self.rate else {
            return;
        };
        let st = r.ctl.stats();
        self.counters.rate_rejected.store(
            st.bad_loss + st.bad_rtt + st.remb_zero + st.remb_clamped,
            Ordering::Relaxed,
        );
        if let Some((bps, why)) = r.ctl.poll_target() {
            r.target
                .store(u32::try_from(bps).unwrap_or(u32::MAX), Ordering::Relaxed);
            *self.counters.rate.lock().unwrap_or_else(|e| e.into_inner()) = Some((bps, why));
            tracing::info!("video bitrate target {} kbit/s ({why})", bps / 1000);
        }
    }

    /// The peer's RTCP as the session takes it: with SRTP, authenticated
    /// and decrypted, or `None` (dropped and counted) when it fails.
    fn unprotect_rtcp(&mut self, data: bytes::Bytes) -> Option<bytes::Bytes> {
        let Some(srtp) = &mut self.srtp else {
            return Some(data);
        };
        let plain = srtp.input.unprotect_rtcp(&data, &mut srtp.buf);
        let st = srtp.input.stats();
        let c = &self.counters;
        c.srtp_auth_failed
            .store(st.auth_failures + st.malformed, Ordering::Relaxed);
        c.srtp_replayed.store(st.replays, Ordering::Relaxed);
        match plain {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!("dropped SRTCP: {e}");
                None
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        let st = self.session.stats();
        let c = &self.counters;
        c.keyframe_requests
            .store(st.keyframe_requests, Ordering::Relaxed);
        c.nacked.store(st.nacked, Ordering::Relaxed);
        c.rtx_sent.store(st.rtx_sent, Ordering::Relaxed);
        c.rtx_missing.store(st.rtx_missing, Ordering::Relaxed);
        c.rtx_suppressed.store(st.rtx_suppressed, Ordering::Relaxed);
        c.nack_dropped
            .store(st.nack_entries_dropped, Ordering::Relaxed);
        c.rtx_limited.store(st.rtx_rate_limited, Ordering::Relaxed);
        // `pkts` counts the media's packets; retransmissions are `rtx-sent`.
        c.packets.store(st.packets, Ordering::Relaxed);
        while let Some(t) = self.session.poll_transmit() {
            let to = match t.kind {
                TransmitKind::Rtp => self.rtp_to,
                TransmitKind::Rtcp => self.rtcp_to,
            };
            let data = match &mut self.srtp {
                None => t.data,
                Some(srtp) => match t.kind {
                    TransmitKind::Rtp => srtp.out.protect_rtp(&t.data, &mut srtp.buf),
                    TransmitKind::Rtcp => srtp.out.protect_rtcp(&t.data, &mut srtp.buf),
                }
                .map_err(|e| Error::failed("cannot protect a packet with SRTP", e))?,
            };
            self.socket.send_to(&data, to)?;
        }
        Ok(())
    }
}
