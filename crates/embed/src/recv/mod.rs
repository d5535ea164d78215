//! RTP/RTCP from a peer -> decode -> Y4M/WAV files or devices (what
//! `pstream recv` runs): the receiving half of co-streaming, in one place.
//!
//! ```text
//! UDP listen:+0 ─┐                                     ┌─▶ H.264/JPEG decoder ─▶ video output
//! UDP listen:+1 ─┴▶ RtpReceiver (video) ──link──────────┘      │ PLI on loss
//!                    └─ RR/PLI ─▶ peer:+5   ◀───────────────────┘
//! UDP listen:+2/+3 ▶ RtpReceiver (audio) ──link──▶ Opus decoder (PLC) ─▶ audio output
//!                    └─ RR ─▶ peer:+7
//! ```
//! Stages: `video-rtp` and `video-rtcp` read the sockets, `video-net` runs
//! the session (jitter buffer, depayloading, RTCP), `video-decode` decodes
//! and writes; the same four for audio.

mod audio;
mod net;
mod sync;
mod video;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pstream_core::{AudioFormat, DeviceCounters, VideoFormat};

use crate::sources::open_audio_sink;
use pstream_codec::h264::H264Decoder;
use pstream_codec::mjpeg::MjpegDecoder;
use pstream_codec::opus::OpusDecoder;
use pstream_codec::VideoDecoder;
use pstream_core::{link, link_bytes, Codec, PipelineClock};
use pstream_rtp::receiver::{ReceivedUnit, ReceiverConfig, RtpReceiver};
use pstream_rtp::rtx::{RtxReceiveConfig, PT_RTX};
use pstream_rtp::srtp::MasterKey;
use pstream_rtp::PeerFilter;
use pstream_transport::{resolve_peer, unspecified_for, PortLayout};

use self::audio::AudioDecodeStage;
use self::net::{NetStage, RtcpTo};
use self::sync::{AvSync, Latencies};
use self::video::VideoDecodeStage;
use crate::probe::Probe;
use crate::rtp::VideoCodec;
use crate::run::{Stages, Stop};
use crate::stats::{kbps, per_second, Percentiles, StatsLine};
use crate::{Error, Result};

/// Complete access units waiting for the video decoder.
const UNIT_QUEUE: usize = 8;
/// Bytes of them: a peer's units come from outside, and eight of the
/// depacketizer's largest (8 MiB) would be 64 MiB; two of those fit, and a
/// decoder this far behind is better served by the newest.
const UNIT_QUEUE_BYTES: usize = 16 << 20;
/// Opus packets waiting for the decoder (20 ms each).
const AUDIO_UNIT_QUEUE: usize = 25;
/// Keyframe requests waiting for the video session.
const FEEDBACK_QUEUE: usize = 16;
/// Opus always decodes at 48 kHz.
const AUDIO_RATE: u32 = 48_000;
/// Output channels (mono streams are duplicated by the decoder).
const AUDIO_CHANNELS: u16 = 2;
/// Longest `latency_ms` accepted: packets waiting longer are no longer live.
const MAX_LATENCY_MS: u64 = 5000;

/// When the receiver holds audio or video back for lip sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// When both outputs are live devices (a V4L2 output and a sound device).
    #[default]
    Auto,
    /// Always (files and pipes too: pictures are written when due).
    On,
    /// Never; the offset is still measured and shown.
    Off,
}

/// What to receive from whom and where it goes: every option of `pstream recv`.
#[derive(Debug, Clone)]
pub struct RecvConfig {
    /// The sending peer: an address or a host name (resolved once, at
    /// start). RTP and RTCP are taken from its IP address only, from any
    /// port; receiver reports and PLIs go to it. `any` takes any sender
    /// (the first heard is followed while it lives, as before) and sends
    /// RTCP back to the host of the sender followed.
    pub peer: String,
    /// Local address to receive on (default: unspecified, peer's family).
    pub listen: Option<IpAddr>,
    /// First port: video RTP/RTCP arrive on +0/+1, audio on +2/+3; RTCP
    /// goes back to the peer's +5 (video) and +7 (audio).
    pub port_base: u16,
    /// Most time in milliseconds a packet waits for a missing one (0..=5000);
    /// 0 hands each access unit on as soon as it is complete. With `rtx`
    /// this is the repair budget. `None`: 0, or with `rtx` an automatic
    /// budget of about three measured round trips (20..=200 ms).
    pub latency_ms: Option<u64>,
    /// Video codec expected on the video port.
    pub video_codec: VideoCodec,
    /// Video output: `y4m:PATH`, `y4m:-` (stdout), `null`,
    /// `v4l2:/dev/videoN[?format=YU12|YUYV]` or `shmdata:PATH`.
    pub video_out: String,
    /// The video frame rate as numerator and denominator, when known
    /// beforehand (the sender's SDP or settings): the Y4M header, device
    /// interval and shmdata caps carry it. `None` reads it off the first
    /// interval (the first picture waits for the second unit's timestamp).
    pub framerate: Option<(u32, u32)>,
    /// Audio output (48 kHz stereo): `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire[:NODE]`, `shmdata:PATH` or `null`.
    pub audio_out: String,
    /// Lip sync from the sender's RTCP reports.
    pub sync: SyncMode,
    /// Read the test pattern's timecode off each decoded picture for the
    /// capture-to-decoded latency figures.
    pub timecode: bool,
    /// SRTP (RFC 3711): every RTP and RTCP datagram must authenticate under
    /// this master key (its profile included) or it is dropped and counted;
    /// our RTCP goes out protected. `None` takes the stream in clear.
    pub srtp: Option<MasterKey>,
    /// Repair video losses with NACK (RFC 4585) and the sender's
    /// retransmissions in an RTX stream (RFC 4588) on the video port; only
    /// what cannot be repaired within the budget asks for a keyframe.
    pub rtx: bool,
    /// Payload type that marks the RTX packets.
    pub rtx_payload_type: u8,
    /// Tell the sender what the path carries: a delay-based estimate as
    /// REMB on the video RTCP port, every 100 ms while a queue builds or
    /// drains and every second otherwise, for `pstream send --bitrate auto`
    /// (other senders ignore it).
    pub remb: bool,
    /// Hears of each video unit as the session hands it to the decoder and
    /// of each picture decoded (`pstream bench loopback`); `None`: no cost.
    pub probe: Option<Probe>,
}

impl RecvConfig {
    /// `pstream recv`'s defaults from `peer`: ports 5000-5007, H.264,
    /// latency 0, both outputs `null`, lip sync `auto`, no timecode.
    pub fn new(peer: impl Into<String>) -> Self {
        Self {
            peer: peer.into(),
            listen: None,
            port_base: 5000,
            latency_ms: None,
            video_codec: VideoCodec::H264,
            video_out: "null".into(),
            framerate: None,
            audio_out: "null".into(),
            sync: SyncMode::Auto,
            timecode: false,
            srtp: None,
            rtx: false,
            rtx_payload_type: PT_RTX,
            remb: true,
            probe: None,
        }
    }

    /// Settings the command line's parser would refuse, refused here too
    /// for programs that fill the fields themselves.
    fn check(&self) -> Result<()> {
        if let Some(ms) = self.latency_ms.filter(|&ms| ms > MAX_LATENCY_MS) {
            return Err(Error::Config(format!(
                "latency {ms} ms must be at most {MAX_LATENCY_MS} ms"
            )));
        }
        if self.rtx && !(96..=127).contains(&self.rtx_payload_type) {
            return Err(Error::Config(format!(
                "RTX payload type {} must be a dynamic one (96..=127)",
                self.rtx_payload_type
            )));
        }
        Ok(())
    }
}

/// Builds a receiver of a peer's RTP stream: [`Receive::from`], where the
/// media goes, [`Receive::start`].
///
/// ```no_run
/// # fn main() -> Result<(), pstream_embed::Error> {
/// let mut recv = pstream_embed::Receive::from("192.0.2.9")
///     .video_out("y4m:out.y4m")
///     .audio_out("wav:out.wav")
///     .timecode(true)
///     .duration(10.0)
///     .start()?;
/// recv.wait()?;
/// println!("{}", recv.summary());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Receive {
    config: RecvConfig,
    duration: Option<f64>,
}

impl Receive {
    /// A receiver of what `peer` (address or host name; `any` for any
    /// sender) sends, with `pstream recv`'s defaults: ports 5000-5007,
    /// H.264 + Opus, both outputs `null`. Packets from other addresses are
    /// dropped and counted ([`StreamStats::not_peer`]).
    pub fn from(peer: impl Into<String>) -> Self {
        Self {
            config: RecvConfig::new(peer),
            duration: None,
        }
    }

    /// Video output: `y4m:PATH`, `y4m:-`, `null`, `v4l2:/dev/videoN` or `shmdata:PATH`.
    pub fn video_out(mut self, spec: impl Into<String>) -> Self {
        self.config.video_out = spec.into();
        self
    }

    /// Audio output: `wav:PATH`, `default`, `alsa:NAME`, `pipewire[:NODE]` or `null`.
    pub fn audio_out(mut self, spec: impl Into<String>) -> Self {
        self.config.audio_out = spec.into();
        self
    }

    /// First port of the layout (default 5000).
    pub fn port_base(mut self, base: u16) -> Self {
        self.config.port_base = base;
        self
    }

    /// Local address to receive on.
    pub fn listen(mut self, addr: IpAddr) -> Self {
        self.config.listen = Some(addr);
        self
    }

    /// Video codec expected (H.264 by default).
    pub fn video_codec(mut self, codec: VideoCodec) -> Self {
        self.config.video_codec = codec;
        self
    }

    /// Reads the test pattern's timecode for capture-to-decoded latencies.
    pub fn timecode(mut self, on: bool) -> Self {
        self.config.timecode = on;
        self
    }

    /// Takes only SRTP under `key`: what fails authentication is dropped
    /// and counted ([`StreamStats::srtp_auth_failed`]), never decoded.
    pub fn srtp(mut self, key: MasterKey) -> Self {
        self.config.srtp = Some(key);
        self
    }

    /// Most time a packet waits for a missing one: with [`Receive::rtx`]
    /// the repair budget (automatic when not set).
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.config.latency_ms = Some(ms);
        self
    }

    /// Repairs video losses with NACK and retransmission (RTX payload type
    /// 98 unless [`Receive::rtx_payload_type`]).
    pub fn rtx(mut self, on: bool) -> Self {
        self.config.rtx = on;
        self
    }

    /// The payload type marking RTX packets (default 98).
    pub fn rtx_payload_type(mut self, payload_type: u8) -> Self {
        self.config.rtx_payload_type = payload_type;
        self
    }

    /// Stops by itself after `seconds`.
    pub fn duration(mut self, seconds: f64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// Every setting, for what the shortcuts do not cover.
    pub fn config_mut(&mut self) -> &mut RecvConfig {
        &mut self.config
    }

    /// Binds the ports, opens the outputs, starts every stage and returns
    /// the running receiver.
    pub fn start(self) -> Result<RtpRecv> {
        let stop = match self.duration {
            Some(secs) => Stop::after(secs)?,
            None => Stop::new(),
        };
        RtpRecv::start(&self.config, stop)
    }
}

/// Counters one stream shares with the stats line.
#[derive(Debug, Default)]
struct StreamCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    duplicates: AtomicU64,
    jitter_us: AtomicU64,
    pli_sent: AtomicU64,
    foreign: AtomicU64,
    /// Datagrams from addresses other than the peer's, dropped.
    not_peer: AtomicU64,
    /// Datagrams dropped before the session: too large, or its queue full.
    overflow: AtomicU64,
    /// SR, SDES or BYE naming the sender from another host, ignored.
    foreign_rtcp: AtomicU64,
    restarts: AtomicU64,
    malformed: AtomicU64,
    rtcp_dropped: AtomicU64,
    /// Pictures decoded and written, or Opus frames decoded.
    decoded: AtomicU64,
    /// Units not shown: incomplete, undecodable, or waiting for an IDR.
    discarded: AtomicU64,
    /// Opus frames concealed for lost packets.
    concealed: AtomicU64,
    /// SRTP/SRTCP datagrams that failed authentication (or were not SRTP).
    srtp_auth_failed: AtomicU64,
    /// SRTP/SRTCP datagrams refused as replays or older than the window.
    srtp_replayed: AtomicU64,
    /// NACK messages sent, and sequence numbers asked for in them.
    nack_sent: AtomicU64,
    nack_requests: AtomicU64,
    /// RTX packets received; of them, those that repaired a loss in time,
    /// came too late, were for packets already there, or were dropped.
    rtx_received: AtomicU64,
    rtx_repaired: AtomicU64,
    rtx_late: AtomicU64,
    rtx_duplicates: AtomicU64,
    rtx_dropped: AtomicU64,
    /// Packets NACKed but given up as lost.
    unrepaired: AtomicU64,
    /// The NACK-to-RTX round trip, smoothed, in microseconds.
    rtt_us: AtomicU64,
    /// The repair budget (jitter buffer latency) in microseconds.
    budget_us: AtomicU64,
}

impl StreamCounters {
    fn snapshot(&self) -> StreamStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamStats {
            packets: get(&self.packets),
            bytes: get(&self.bytes),
            lost: get(&self.lost),
            late: get(&self.late),
            duplicates: get(&self.duplicates),
            jitter_ms: get(&self.jitter_us) as f64 / 1000.0,
            pli_sent: get(&self.pli_sent),
            foreign: get(&self.foreign),
            not_peer: get(&self.not_peer),
            overflow: get(&self.overflow),
            foreign_rtcp: get(&self.foreign_rtcp),
            restarts: get(&self.restarts),
            malformed: get(&self.malformed),
            bad_rtcp: get(&self.rtcp_dropped),
            decoded: get(&self.decoded),
            discarded: get(&self.discarded),
            concealed: get(&self.concealed),
            srtp_auth_failed: get(&self.srtp_auth_failed),
            srtp_replayed: get(&self.srtp_replayed),
            nack_sent: get(&self.nack_sent),
            nack_requests: get(&self.nack_requests),
            rtx_received: get(&self.rtx_received),
            rtx_repaired: get(&self.rtx_repaired),
            rtx_late: get(&self.rtx_late),
            rtx_duplicates: get(&self.rtx_duplicates),
            rtx_dropped: get(&self.rtx_dropped),
            unrepaired: get(&self.unrepaired),
            rtt_ms: get(&self.rtt_us) as f64 / 1000.0,
            budget_ms: get(&self.budget_us) as f64 / 1000.0,
        }
    }
}

/// One received stream's figures so far (what its part of the stats line shows).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// RTP packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets lost (never arrived).
    pub lost: u64,
    /// Packets that arrived after their unit had gone on.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Interarrival jitter (RFC 3550) in milliseconds.
    pub jitter_ms: f64,
    /// PLIs sent (video).
    pub pli_sent: u64,
    /// Packets from an SSRC other than the stream's.
    pub foreign: u64,
    /// Datagrams (RTP and RTCP) from addresses other than the peer's, dropped.
    pub not_peer: u64,
    /// Datagrams dropped before the session: over 9 KiB, or its queue full.
    pub overflow: u64,
    /// RTCP (SR, SDES, BYE) naming the sender from another host, ignored.
    pub foreign_rtcp: u64,
    /// Times the sender restarted (new SSRC, sequence and timestamps).
    pub restarts: u64,
    /// Packets that could not be parsed or depayloaded.
    pub malformed: u64,
    /// RTCP packets that could not be parsed.
    pub bad_rtcp: u64,
    /// Pictures decoded, or Opus frames decoded.
    pub decoded: u64,
    /// Units not shown: incomplete, undecodable, or waiting for an IDR.
    pub discarded: u64,
    /// Opus frames concealed for lost packets.
    pub concealed: u64,
    /// SRTP/SRTCP datagrams dropped because they failed authentication
    /// (forged, corrupted, another key, or not SRTP at all).
    pub srtp_auth_failed: u64,
    /// SRTP/SRTCP datagrams dropped as replays (or older than the window).
    pub srtp_replayed: u64,
    /// NACK messages sent (with RTX).
    pub nack_sent: u64,
    /// Sequence numbers asked for in them (a retry counts again).
    pub nack_requests: u64,
    /// RTX packets received.
    pub rtx_received: u64,
    /// Lost packets an RTX brought back in time.
    pub rtx_repaired: u64,
    /// RTX packets that came after their packet was given up.
    pub rtx_late: u64,
    /// RTX packets for packets already there (the original was only late).
    pub rtx_duplicates: u64,
    /// RTX packets dropped: no OSN, from another stream or host, or before
    /// any media.
    pub rtx_dropped: u64,
    /// Packets NACKed but given up as lost (a keyframe request follows).
    pub unrepaired: u64,
    /// The NACK-to-RTX round trip, smoothed, in milliseconds (0 before any).
    pub rtt_ms: f64,
    /// The repair budget in milliseconds (the jitter buffer's latency).
    pub budget_ms: f64,
}

/// What a decode stage tells its session stage.
#[derive(Debug)]
enum Feedback {
    /// The picture is broken until the next IDR: send a PLI.
    KeyframeNeeded,
}

/// A running receiver: its stage threads and their counters.
pub struct RtpRecv {
    stages: Stages,
    video: Arc<StreamCounters>,
    audio: Arc<StreamCounters>,
    latencies: Arc<Mutex<Latencies>>,
    sync: Arc<AvSync>,
    playback: Option<Arc<DeviceCounters>>,
    /// Whether SRTP is on (its counters are then always shown).
    srtp: bool,
    /// Whether RTX is on (the video's repair counters are then shown).
    rtx: bool,
    /// (decoded, bytes) of video and audio at the last stats line.
    prev: [(u64, u64); 2],
    last: Instant,
    started: Instant,
}

impl std::fmt::Debug for RtpRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpRecv")
            .field("threads", &self.stages.count())
            .finish_non_exhaustive()
    }
}

impl RtpRecv {
    /// Checks `config`, binds the ports and opens the outputs (so bad
    /// settings fail before anything starts), then starts every stage; the
    /// receiver runs until `stop` is set or a stage fails.
    pub fn start(config: &RecvConfig, stop: Stop) -> Result<Self> {
        config.check()?;
        let clock = PipelineClock::start();
        // A host name is resolved once: its address then is the only one
        // taken (a peer whose address changes needs a new receiver).
        let peer = match config.peer.trim() {
            "any" => None,
            host => Some(resolve_peer(host)?),
        };
        let listen = config
            .listen
            .unwrap_or_else(|| unspecified_for(peer.unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        if let Some(peer) = peer.filter(|p| p.is_ipv4() != listen.is_ipv4()) {
            return Err(Error::Config(format!(
                "--listen {listen} and --peer {peer} are of different address families"
            )));
        }
        let layout = PortLayout::new(config.port_base)?;
        let filter = peer.map_or(PeerFilter::Any, PeerFilter::only);
        let rtcp_to = |port| match peer {
            Some(ip) => RtcpTo::Peer(SocketAddr::new(ip, port)),
            None => RtcpTo::Sender(port),
        };
        check_video_output(&config.video_out)?;
        let audio_sink = open_audio_sink(
            &config.audio_out,
            AudioFormat {
                sample_rate: AUDIO_RATE,
                channels: AUDIO_CHANNELS,
            },
        )?;
        let latency = Duration::from_millis(config.latency_ms.unwrap_or(0));
        // The video's repair: the budget fixed by `latency_ms`, or automatic.
        let video_rtx = config.rtx.then(|| {
            let rtx = RtxReceiveConfig::with_payload_type(config.rtx_payload_type);
            if config.latency_ms.is_some() {
                rtx.fixed_latency()
            } else {
                rtx
            }
        });
        let cname = format!("pstream-recv@{listen}");
        let live_video = pstream_capture::v4l2::V4l2Spec::parse(&config.video_out).is_some();
        let live_audio = audio_sink.latency().is_some();
        let sync = Arc::new(AvSync::new(match config.sync {
            SyncMode::On => true,
            SyncMode::Off => false,
            SyncMode::Auto => live_video && live_audio,
        }));

        // Stages belong to `me` from the first one on, so that one failing
        // to start (a port in use) stops and joins those already running.
        let mut me = Self {
            stages: Stages::new(stop),
            video: Arc::default(),
            audio: Arc::default(),
            latencies: Arc::default(),
            sync,
            playback: audio_sink.playback_counters(),
            srtp: config.srtp.is_some(),
            rtx: config.rtx,
            prev: [(0, 0); 2],
            last: Instant::now(),
            started: Instant::now(),
        };

        // Video: the network stages, then the decoder and output.
        {
            let (unit_tx, unit_rx) = link_bytes::<ReceivedUnit>(UNIT_QUEUE, UNIT_QUEUE_BYTES);
            let (fb_tx, fb_rx) = crossbeam_channel::bounded::<Feedback>(FEEDBACK_QUEUE);
            // JPEG: every unit is a complete picture and a keyframe, so the
            // decode stage's wait for an IDR never holds one back.
            let (codec, decoder): (Codec, Box<dyn VideoDecoder>) = match config.video_codec {
                VideoCodec::H264 => (
                    Codec::H264,
                    Box::new(
                        H264Decoder::new()
                            .map_err(|e| Error::codec("cannot start the H.264 decoder", e))?,
                    ),
                ),
                VideoCodec::Mjpeg => (
                    Codec::Mjpeg,
                    Box::new(
                        MjpegDecoder::new()
                            .map_err(|e| Error::codec("cannot start the JPEG decoder", e))?,
                    ),
                ),
            };
            let net = NetStage::bind(
                listen,
                (layout.video_rtp(), layout.video_rtcp()),
                (filter.clone(), rtcp_to(layout.video_rtcp_back())),
                receiver_session(codec, &cname, latency, video_rtx, config.remb)?,
                me.video.clone(),
            )?
            .srtp(config.srtp.as_ref())
            .probe(config.probe.clone());
            net.spawn("video", unit_tx, fb_rx, &mut me.stages)?;
            let stage = VideoDecodeStage {
                decoder,
                spec: config.video_out.clone(),
                framerate: config.framerate.filter(|&(n, d)| n > 0 && d > 0),
                clock,
                timecode: config.timecode,
                counters: me.video.clone(),
                latencies: me.latencies.clone(),
                feedback: fb_tx,
                sync: me.sync.clone(),
                probe: config.probe.clone(),
            };
            me.stages
                .spawn("video-decode", move |_| stage.run(unit_rx))?;
        }

        // Audio: the same, with no keyframes to ask for.
        {
            let (unit_tx, unit_rx) = link::<ReceivedUnit>(AUDIO_UNIT_QUEUE);
            let (_fb_tx, fb_rx) = crossbeam_channel::bounded::<Feedback>(1);
            let net = NetStage::bind(
                listen,
                (layout.audio_rtp(), layout.audio_rtcp()),
                (filter.clone(), rtcp_to(layout.audio_rtcp_back())),
                receiver_session(Codec::Opus, &cname, latency, None, false)?,
                me.audio.clone(),
            )?
            .srtp(config.srtp.as_ref());
            net.spawn("audio", unit_tx, fb_rx, &mut me.stages)?;
            let decoder = OpusDecoder::new(AUDIO_CHANNELS)
                .map_err(|e| Error::codec("cannot start the Opus decoder", e))?;
            let stage = AudioDecodeStage::new(
                decoder,
                audio_sink,
                clock,
                me.audio.clone(),
                me.sync.clone(),
            );
            me.stages
                .spawn("audio-decode", move |_| stage.run(unit_rx))?;
        }

        let from = peer.map_or_else(
            || "any address (--peer any)".to_string(),
            |p| format!("{p} only"),
        );
        let srtp = config
            .srtp
            .as_ref()
            .map_or_else(String::new, |k| format!("; SRTP {}", k.profile()));
        let rtx = if !config.rtx {
            String::new()
        } else {
            let budget = config.latency_ms.map_or_else(
                || "automatic (3 round trips, 20-200 ms)".to_string(),
                |ms| format!("{ms} ms"),
            );
            format!(
                "; NACK + RTX payload type {}, repair budget {budget}",
                config.rtx_payload_type
            )
        };
        tracing::info!(
            "receiving from {from} on {listen}: video {}/{}, audio {}/{}; RTCP to {}/{}{srtp}{rtx}",
            layout.video_rtp(),
            layout.video_rtcp(),
            layout.audio_rtp(),
            layout.audio_rtcp(),
            layout.video_rtcp_back(),
            layout.audio_rtcp_back()
        );
        me.last = Instant::now();
        me.started = Instant::now();
        Ok(me)
    }

    /// True once the receiver is ending (stop requested, its duration
    /// reached, or a stage failed).
    pub fn stopping(&self) -> bool {
        self.stages.ending()
    }

    /// Asks every stage to stop; [`RtpRecv::wait`] then returns promptly.
    pub fn stop(&self) {
        self.stages.stop();
    }

    /// Waits until the run ends (its duration, a failure or
    /// [`RtpRecv::stop`]) and every stage has finished (the outputs
    /// complete); the first stage failure, if any.
    pub fn wait(&mut self) -> Result<()> {
        self.stages.wait()
    }

    /// The stats since the last call: per stream the rate, packets, loss,
    /// jitter, PLIs and discarded pictures (video), concealed frames and
    /// playback (audio); then the A/V offset and, with the timecode, the
    /// latency percentiles of the pictures since the last call.
    pub fn stats_line(&mut self) -> String {
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let latency = self.latencies.lock().ok().and_then(|mut l| l.take_window());
        let mut prev = self.prev;
        let line = self.line(&mut prev, secs, latency);
        self.prev = prev;
        line
    }

    /// The same figures over the whole run (latency percentiles of every
    /// picture).
    pub fn summary(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        self.line(&mut [(0, 0); 2], secs, self.latency())
    }

    /// Capture-to-decoded latency percentiles in milliseconds over the whole
    /// run (up to 2^18 pictures), read off the test pattern's timecode; `None`
    /// without [`RecvConfig::timecode`] or before the first readable picture.
    pub fn latency(&self) -> Option<Percentiles> {
        self.latencies.lock().ok().and_then(|l| l.whole_run())
    }

    /// Pictures whose timecode was read so far (the latency samples).
    pub fn latency_samples(&self) -> usize {
        self.latencies.lock().map(|l| l.count()).unwrap_or(0)
    }

    /// The video stream's figures so far.
    pub fn video(&self) -> StreamStats {
        self.video.snapshot()
    }

    /// The audio stream's figures so far.
    pub fn audio(&self) -> StreamStats {
        self.audio.snapshot()
    }

    /// Video's presentation delay minus audio's in milliseconds (holds
    /// included when lip sync is on); `None` until both streams have had
    /// a sender report.
    pub fn av_offset_ms(&self) -> Option<f64> {
        self.sync.offset_us().map(|us| us as f64 / 1000.0)
    }

    /// Whether lip-sync holds are applied (`SyncMode::Auto` decides on the outputs).
    pub fn sync_enabled(&self) -> bool {
        self.sync.enabled()
    }

    fn line(&self, prev: &mut [(u64, u64); 2], secs: f64, latency: Option<Percentiles>) -> String {
        let mut line = StatsLine::new();
        for (i, (name, c)) in [("video", &self.video), ("audio", &self.audio)]
            .into_iter()
            .enumerate()
        {
            let s = c.snapshot();
            let rate = kbps(s.bytes.saturating_sub(prev[i].1), secs);
            line.section(name);
            if name == "video" {
                line.rate(
                    per_second(s.decoded.saturating_sub(prev[i].0), secs),
                    1,
                    "fps",
                )
                .rate(rate, 0, "kbit/s");
            } else {
                line.rate(rate, 0, "kbit/s");
            }
            prev[i] = (s.decoded, s.bytes);
            line.count("frames", s.decoded)
                .count("pkts", s.packets)
                .count("lost", s.lost)
                .count("late", s.late)
                .count("dup", s.duplicates)
                .figure("jitter", s.jitter_ms, 1, "ms");
            if name == "video" {
                line.count("pli", s.pli_sent)
                    .count("discarded", s.discarded);
                if self.rtx {
                    line.count("nack", s.nack_sent)
                        .count("nacked", s.nack_requests)
                        .count("rtx", s.rtx_received)
                        .count("repaired", s.rtx_repaired)
                        .count("rtx-late", s.rtx_late)
                        .count_nonzero("rtx-dup", s.rtx_duplicates)
                        .count_nonzero("rtx-dropped", s.rtx_dropped)
                        .count("unrepaired", s.unrepaired)
                        .figure("rtt", s.rtt_ms, 1, "ms")
                        .figure("budget", s.budget_ms, 0, "ms");
                }
            } else {
                line.count("concealed", s.concealed);
                if let Some(p) = &self.playback {
                    line.word(p.summary("played", AUDIO_RATE, AUDIO_CHANNELS));
                }
            }
            if self.srtp {
                line.count("auth-fail", s.srtp_auth_failed)
                    .count_nonzero("replayed", s.srtp_replayed);
            }
            line.count_nonzero("restarts", s.restarts)
                .count_nonzero("foreign", s.foreign)
                .count_nonzero("not-peer", s.not_peer)
                .count_nonzero("overflow", s.overflow)
                .count_nonzero("foreign-rtcp", s.foreign_rtcp)
                .count_nonzero("malformed", s.malformed)
                .count_nonzero("bad-rtcp", s.bad_rtcp);
        }
        if let Some(av) = self.sync.summary() {
            line.part(av);
        }
        if let Some(p) = latency {
            line.section("latency").percentiles(&p, 1, "ms");
        }
        line.to_string()
    }
}

/// Fails early on a video output that cannot work: an unknown spec, or a
/// V4L2 device that is missing or refuses output (its format is set by the
/// first picture later; Y4M files are created then too).
fn check_video_output(spec: &str) -> Result<()> {
    if let Some(v4l2) = pstream_capture::v4l2::V4l2Spec::parse(spec) {
        let format = VideoFormat {
            width: 640,
            height: 480,
            fps_num: 30,
            fps_den: 1,
        };
        let v4l2 = v4l2.map_err(pstream_core::MediaError::from)?;
        pstream_capture::v4l2::V4l2Sink::open(&v4l2, format)
            .map_err(pstream_core::MediaError::from)?;
        return Ok(());
    }
    if let Some(path) = spec.strip_prefix("shmdata:").filter(|p| !p.is_empty()) {
        // The writer binds at the first picture; a path it could never
        // bind is refused now rather than after the stream has started.
        use std::os::unix::fs::FileTypeExt;
        return match std::fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_socket() => Err(Error::Config(format!(
                "{spec}: not a unix socket (a shmdata writer's path is the socket it listens on)"
            ))),
            _ => Ok(()),
        };
    }
    if spec == "null" || spec.starts_with("y4m:") && spec.len() > 4 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "unknown video output {spec:?}; use one of: {}",
            crate::sources::VIDEO_SINKS
        )))
    }
}

fn receiver_session(
    codec: Codec,
    cname: &str,
    latency: Duration,
    rtx: Option<RtxReceiveConfig>,
    remb: bool,
) -> Result<RtpReceiver> {
    let mut config = ReceiverConfig::new(codec, cname);
    config.latency = latency;
    config.rtx = rtx;
    config.remb = remb;
    RtpReceiver::with_os_rng(config).map_err(|source| Error::RtpReceiver { codec, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_the_cli_refuses_are_refused_here_too() {
        let mut c = RecvConfig::new("127.0.0.1");
        c.latency_ms = Some(5001);
        let err = RtpRecv::start(&c, Stop::new()).expect_err("latency too long");
        assert!(matches!(err, Error::Config(_)), "{err}");
        let mut c = RecvConfig::new("127.0.0.1");
        c.video_out = "png:x".into();
        let err = RtpRecv::start(&c, Stop::new()).expect_err("unknown output");
        assert!(err.to_string().contains("unknown video output"), "{err}");
        let mut c = RecvConfig::new("127.0.0.1");
        c.listen = Some("::1".parse().expect("v6"));
        let err = RtpRecv::start(&c, Stop::new()).expect_err("families");
        assert!(err.to_string().contains("address families"), "{err}");
    }

    /// An idle receiver (no sender) shows both streams' parts with zero
    /// counts, the way the tests and the cross scripts parse them.
    #[test]
    fn an_idle_receiver_stops_and_shows_both_streams() {
        let base = 30_000 + (std::process::id() % 1000) as u16 * 8;
        let mut recv = Receive::from("127.0.0.1")
            .listen("127.0.0.1".parse().expect("v4"))
            .port_base(base)
            .timecode(true)
            .duration(0.3)
            .start()
            .expect("start");
        recv.wait().expect("clean end");
        assert!(recv.stopping());
        let summary = recv.summary();
        assert!(
            summary.starts_with("video 0.0 fps 0 kbit/s frames 0 pkts 0 lost 0 late 0 dup 0 jitter 0.0 ms pli 0 discarded 0 | audio 0 kbit/s frames 0 pkts 0 lost 0 late 0 dup 0 jitter 0.0 ms concealed 0"),
            "{summary}"
        );
        assert_eq!(recv.latency(), None);
        assert_eq!(recv.video().decoded, 0);
        assert_eq!(recv.av_offset_ms(), None);
    }

    /// The builders' `srtp`: under one key the pictures decode, under
    /// another none do and every packet is counted as failing.
    #[test]
    fn srtp_on_the_builders_decodes_under_the_key_and_counts_another() {
        use pstream_rtp::srtp::SrtpProfile;
        let profile = SrtpProfile::AesCm128HmacSha1_80;
        let key = MasterKey::generate(profile).expect("os rng");
        let other = MasterKey::generate(profile).expect("os rng");
        for (case, send_key) in [("same key", key.clone()), ("another key", other)] {
            let base = 40_000 + (std::process::id() % 1000) as u16 * 8;
            let mut recv = Receive::from("127.0.0.1")
                .listen("127.0.0.1".parse().expect("v4"))
                .port_base(base)
                .srtp(key.clone())
                .duration(2.5)
                .start()
                .expect("recv starts");
            let mut send = crate::Rtp::to("127.0.0.1")
                .size(160, 120)
                .audio("none")
                .port_base(base)
                .srtp(send_key)
                .duration(1.5)
                .start()
                .expect("send starts");
            send.wait().expect("send ends cleanly");
            recv.wait().expect("recv ends cleanly");
            let v = recv.video();
            if case == "same key" {
                assert!(v.decoded >= 30, "{case}: {}", recv.summary());
                assert_eq!(v.srtp_auth_failed, 0, "{case}: {}", recv.summary());
            } else {
                assert_eq!((v.decoded, v.packets), (0, 0), "{case}: {}", recv.summary());
                assert!(v.srtp_auth_failed >= 30, "{case}: {}", recv.summary());
            }
        }
    }
}
