//! The command line: every subcommand and its options.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Live media without GStreamer.
#[derive(Debug, Parser)]
#[command(name = "pstream", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send H.264 + Opus over RTP/RTCP to a peer (costream / rtpbin port layout).
    Send(SendArgs),
    /// Print the SDP file describing what `pstream send` with the same options sends.
    Sdp(SendArgs),
    /// Receive a peer's H.264 + Opus RTP stream, decode it and write it out.
    Recv(RecvArgs),
    /// Stream H.264 + AAC as FLV to RTMP ingests (and files), reconnecting as needed.
    Push(crate::push::PushArgs),
    /// Take RTMP publishes and serve them as HLS, with lighter renditions.
    Serve(crate::serve::ServeArgs),
    /// Carry pictures and sound from a source to a sink without encoding
    /// (a shmdata writer to a virtual camera, a camera to shmdata or a file).
    Bridge(crate::bridge::BridgeArgs),
    /// Benchmarks on this machine: `pstream bench encode` times every
    /// encoder frame by frame (latency, headroom, CPU, bitrate, PSNR).
    Bench(crate::bench::BenchArgs),
    /// List audio sources and sinks (PipeWire nodes, ALSA devices).
    Devices,
    /// Print a fresh SRTP master key and salt (from the OS's random number
    /// generator) in base64, for `--srtp-key` on both ends; its hex form, as
    /// GStreamer's srtpenc/srtpdec caps take it, goes to stderr.
    Keygen(KeygenArgs),
    /// Show (or with --apply run) costream's setup: two v4l2loopback cameras
    /// and two PipeWire null sinks; what exists already is left alone.
    Setup(SetupArgs),
}

/// Options of `pstream keygen`.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// The SRTP profile the key is for (its length depends on it).
    #[arg(long, value_enum, default_value_t = SrtpProfileArg::AesCm128HmacSha1_80)]
    pub srtp_profile: SrtpProfileArg,
}

/// `--srtp-profile`: the SRTP protection profile (the SDES names of SDP
/// `a=crypto` lines are taken too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SrtpProfileArg {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag (RFC 3711); what
    /// ffmpeg, ffplay and GStreamer all take.
    #[value(name = "aes128-cm-sha1-80", alias = "AES_CM_128_HMAC_SHA1_80")]
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag on RTP (RTCP keeps 80 bits): 6 bytes
    /// less per packet; ffmpeg and GStreamer take it.
    #[value(name = "aes128-cm-sha1-32", alias = "AES_CM_128_HMAC_SHA1_32")]
    AesCm128HmacSha1_32,
    /// AES-128-GCM with a 128-bit tag (RFC 7714); a 28-byte key. GStreamer
    /// and libsrtp take it, ffmpeg 5.1 does not.
    #[value(name = "aes128-gcm", alias = "AEAD_AES_128_GCM")]
    AeadAes128Gcm,
}

impl From<SrtpProfileArg> for pstream_embed::SrtpProfile {
    fn from(p: SrtpProfileArg) -> Self {
        match p {
            SrtpProfileArg::AesCm128HmacSha1_80 => Self::AesCm128HmacSha1_80,
            SrtpProfileArg::AesCm128HmacSha1_32 => Self::AesCm128HmacSha1_32,
            SrtpProfileArg::AeadAes128Gcm => Self::AeadAes128Gcm,
        }
    }
}

/// SRTP options shared by `send`, `sdp` and `recv`.
#[derive(Debug, Clone, Args)]
pub struct SrtpArgs {
    /// Encrypt and authenticate RTP and RTCP both ways with SRTP (RFC 3711)
    /// under this master key and salt: base64 as in an SDP `a=crypto`
    /// inline key (what `pstream keygen` prints) or hex as GStreamer's
    /// `srtp-key` caps take it. Both ends need the same key and profile; a
    /// packet that fails authentication is dropped and counted (`auth-fail`).
    #[arg(long, value_name = "KEY")]
    pub srtp_key: Option<String>,
    /// The SRTP profile.
    #[arg(long, value_enum, default_value_t = SrtpProfileArg::AesCm128HmacSha1_80, requires = "srtp_key")]
    pub srtp_profile: SrtpProfileArg,
}

impl SrtpArgs {
    /// The master key, when one is given; a key of the wrong length or
    /// form is one clear error.
    pub fn key(&self) -> anyhow::Result<Option<pstream_embed::MasterKey>> {
        let Some(text) = &self.srtp_key else {
            return Ok(None);
        };
        let profile = self.srtp_profile.into();
        pstream_embed::MasterKey::parse(profile, text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--srtp-key: {e}"))
    }
}

/// Loss repair options shared by `send`, `sdp` and `recv`.
#[derive(Debug, Clone, Args)]
pub struct RtxArgs {
    /// Repair video losses before they show: the receiver asks for missing
    /// packets (generic NACK, RFC 4585) and the sender resends them in an
    /// RTX stream (RFC 4588: the video port, its own SSRC). Needed on both
    /// ends (GStreamer: rtprtxsend / rtprtxreceive with do-retransmission).
    #[arg(long)]
    pub rtx: bool,
    /// Payload type of the RTX stream (its apt is the video's, 96).
    #[arg(long, value_name = "PT", default_value_t = 98, requires = "rtx",
          value_parser = clap::value_parser!(u8).range(96..=127))]
    pub rtx_pt: u8,
}

/// Options of `pstream setup`.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// Run the commands instead of only showing them (modprobe through sudo
    /// when not root).
    #[arg(long)]
    pub apply: bool,
    /// Only the loopback cameras (`video`) or only the PipeWire sinks
    /// (`audio`).
    #[arg(long, value_enum)]
    pub only: Option<SetupPart>,
}

/// `pstream setup --only`: one half of the setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SetupPart {
    /// The v4l2loopback cameras.
    Video,
    /// The PipeWire null sinks.
    Audio,
}

/// Options of `pstream recv`.
#[derive(Debug, Clone, Args)]
pub struct RecvArgs {
    /// The sending peer: an address or a host name, resolved once at start.
    /// RTP and RTCP are taken from its IP address only (from any port: NATs
    /// change ports); packets from other addresses are dropped and counted
    /// (`not-peer` on the stats line). Our receiver reports and PLIs go to
    /// it. `any` takes any sender, the first heard followed while it lives,
    /// and sends RTCP back to that sender's address.
    #[arg(long)]
    pub peer: String,
    /// Local address to receive on (default: the unspecified address of the
    /// peer's family).
    #[arg(long)]
    pub listen: Option<IpAddr>,
    /// First port: video RTP/RTCP arrive on +0/+1 and audio on +2/+3; our
    /// RTCP goes to the peer's +5 (video) and +7 (audio).
    #[arg(long, default_value_t = 5000)]
    pub port_base: u16,
    /// Most time in milliseconds a packet waits for a missing one; 0 hands
    /// each access unit on as soon as it is complete. With `--rtx` it is the
    /// repair budget; without it there, about three measured round trips
    /// (20-200 ms). Default without `--rtx`: 0.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=5000))]
    pub latency: Option<u64>,
    /// Video codec to expect on the video port.
    #[arg(long, value_enum, default_value_t = VideoCodecArg::H264)]
    pub video_codec: VideoCodecArg,
    /// Video output: `y4m:PATH`, `y4m:-` (stdout), `null`, or
    /// `v4l2:/dev/videoN[?format=YU12|YUYV]` (an output device such as
    /// v4l2loopback's virtual camera; YU12 if it takes it, else YUYV; the
    /// frames set its size) or `shmdata:PATH` (a shmdata writer, I420, for
    /// score's Shmdata input, `shmdatasrc` or `sdflow`; a follower that does
    /// not release a frame in time is dropped; the socket is removed on exit).
    /// A device that disappears stops recv with an error.
    #[arg(long, default_value = "null")]
    pub video_out: String,
    /// The sender's frame rate, `N` or `N/D` (e.g. 30000/1001), when known:
    /// the Y4M header, device interval and shmdata caps say it. Without it
    /// the rate is read off the first two pictures' timestamps (the first
    /// picture waits one interval; none after it is held).
    #[arg(long, value_parser = parse_framerate)]
    pub framerate: Option<(u32, u32)>,
    /// Audio output: `wav:PATH` (48 kHz), `default` (the default sound
    /// device), `alsa:NAME` (an ALSA device), `pipewire` or `pipewire:NODE`
    /// (a PipeWire node by name; see `pstream devices`), `shmdata:PATH` (a
    /// shmdata writer, F32LE) or `null`. Device clock drift is compensated;
    /// the stats line shows it in ppm.
    #[arg(long, default_value = "null")]
    pub audio_out: String,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Lip sync from the sender's RTCP reports: hold the earlier of audio
    /// and video so both play on the sender's timeline. `auto` syncs when
    /// both outputs are live devices (a V4L2 output and a sound device);
    /// the A/V offset is measured and shown either way.
    #[arg(long, value_enum, default_value_t = SyncArg::Auto)]
    pub sync: SyncArg,
    /// Read the test pattern's timecode off each decoded picture and report
    /// capture-to-decoded latency.
    #[arg(long)]
    pub timecode: bool,
    /// Do not send REMB: by default the video's one-way delay is watched
    /// and a bandwidth estimate goes to the sender (every 100 ms while a
    /// queue builds or drains) for `pstream send --bitrate auto`.
    #[arg(long)]
    pub no_remb: bool,
    /// SRTP key and profile.
    #[command(flatten)]
    pub srtp: SrtpArgs,
    /// NACK + RTX loss repair.
    #[command(flatten)]
    pub rtx: RtxArgs,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--sync`: when recv holds audio or video back for lip sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncArg {
    /// When both outputs are live devices.
    Auto,
    /// Always (files and pipes too: pictures are written when due).
    On,
    /// Never; the offset is still shown.
    Off,
}

/// Video codecs pstream can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VideoCodecArg {
    /// H.264 constrained baseline (RFC 6184, packetization-mode 1).
    H264,
    /// Motion JPEG, baseline 4:2:0 (RFC 2435, static payload type 26).
    Mjpeg,
}

/// `--preset`: encoder speed against picture quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Fewest cycles per picture (openh264 low complexity); for Pis.
    Fast,
    /// Medium complexity (openh264 medium).
    Balanced,
    /// High complexity (openh264 high): differs from balanced only for
    /// screen content.
    Quality,
}

impl From<PresetArg> for pstream_codec::H264Preset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Fast => Self::Fast,
            PresetArg::Balanced => Self::Balanced,
            PresetArg::Quality => Self::Quality,
        }
    }
}

/// How hard the H.264 encoder works: shared by `send`, `sdp` and `push`.
#[derive(Debug, Clone, Args)]
pub struct EncoderArgs {
    /// H.264 encoder preset. When the encoder still cannot keep up, frames
    /// are dropped before it (counted as `drop` on the stats line).
    #[arg(long, value_enum, default_value_t = PresetArg::Fast)]
    pub preset: PresetArg,
    /// H.264 encoder threads (0: one per core; openh264 uses at most 4).
    /// Each picture is cut into that many slices encoded side by side, so a
    /// Pi's cores share 720p/1080p; 1 (the default) keeps one slice and one core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=16))]
    pub threads: u16,
    /// H.264 encoder: `openh264` (software), `v4l2m2m` (the first V4L2
    /// memory-to-memory encoder offering H.264, such as a Raspberry Pi's
    /// bcm2835-codec at /dev/video11), `v4l2m2m:/dev/videoN`, or `auto`
    /// (the V4L2 encoder when there is one, else openh264). The V4L2
    /// encoder gets the bitrate, key frame period, profile and level where
    /// it has the controls (those it lacks are named once).
    #[arg(long, default_value = "openh264", value_parser = parse_encoder)]
    pub encoder: pstream_embed::EncoderChoice,
}

fn parse_encoder(s: &str) -> Result<pstream_embed::EncoderChoice, String> {
    s.parse()
}

/// Where to send and what: shared by `send` and `sdp`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The receiving peer: an IPv4 or IPv6 address or a host name (resolved
    /// once at start). Its RTCP is read from that address only; RTCP from
    /// other addresses is dropped and counted (`not-peer`).
    #[arg(long)]
    pub peer: String,
    /// Local address to receive the peer's RTCP on (default: the unspecified
    /// address of the peer's family).
    #[arg(long)]
    pub listen: Option<IpAddr>,
    /// First port of the layout: video RTP +0, RTCP +1, audio RTP +2, RTCP +3;
    /// the peer's RTCP comes back to +5 (video) and +7 (audio).
    #[arg(long, default_value_t = 5000)]
    pub port_base: u16,
    /// Video source: `test` (moving pattern with a timecode), `test:noise`
    /// (the same with fresh grain in every frame: a few Mbit/s at 720p), `y4m:PATH`,
    /// `y4m:-` (stdin), `v4l2:/dev/videoN[?size=WxH&fps=N&format=YUYV|NV12|YU12|MJPG]`
    /// (a camera; without options the mode closest to --size/--fps, and with
    /// --video-codec mjpeg an MJPG camera's JPEGs are sent as they are),
    /// `shmdata:PATH` (a shmdata writer such as score's Shmdata output or
    /// `shmdatasink`: waited for, said once in the log, its last picture held
    /// while it is away, followed when it comes back at another size) or
    /// `none`. A camera unplugged mid-stream stops the stream with an error
    /// (it is not waited for); one that pauses (a loopback whose writer
    /// stopped) is waited for, its last picture repeated once a second; one
    /// that sends no picture within 10 s of opening is an error.
    #[arg(long, default_value = "test")]
    pub video: String,
    /// Audio source: `test` (sine tone), `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire`, `pipewire:NODE` (a sink node captures its monitor),
    /// `shmdata:PATH` (a shmdata writer's F32LE or S16LE audio; silence while
    /// none is there) or `none`. A device that delivers nothing for 3 s stops the run with an
    /// error naming it.
    #[arg(long, default_value = "test")]
    pub audio: String,
    /// Video codec.
    #[arg(long, value_enum, default_value_t = VideoCodecArg::H264)]
    pub video_codec: VideoCodecArg,
    /// JPEG quality 1..100 for `--video-codec mjpeg` (1..99 sends RFC 2435's
    /// Q with no tables; 100 sends the tables in-band).
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Picture size for the test pattern, or the camera mode to look for,
    /// WIDTHxHEIGHT (files bring their own).
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Frame rate for the test pattern, or the camera rate to look for
    /// (files bring their own).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Video bitrate in kbit/s, or `auto`: H.264's target then follows the
    /// peer's receiver reports (loss, round trip) and REMB between
    /// `--min-bitrate` and `--max-bitrate`, starting at 2500 (or the max).
    #[arg(long, default_value = "2500", value_parser = parse_bitrate)]
    pub bitrate: BitrateArg,
    /// Lowest target of `--bitrate auto`, kbit/s.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub min_bitrate: u32,
    /// Highest target of `--bitrate auto`, kbit/s.
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u32).range(50..=100_000))]
    pub max_bitrate: u32,
    /// Seconds between keyframes. A PLI or FIR from the peer gets an IDR
    /// too, but at most one per quarter of this (and 200 ms at least
    /// between two), however many arrive.
    #[arg(long, default_value_t = 2.0, value_parser = parse_keyint)]
    pub keyint: f64,
    /// Opus bitrate in kbit/s.
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u32).range(6..=510))]
    pub audio_bitrate: u32,
    /// Audio channels sent: 1 or 2.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=2))]
    pub channels: u16,
    /// Encoder preset and threads.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Largest RTP packet in bytes (header included).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u16).range(200..=9000))]
    pub mtu: u16,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Also write the SDP file to this path.
    #[arg(long)]
    pub sdp: Option<PathBuf>,
    /// SRTP key and profile (the SDP then says RTP/SAVP with an `a=crypto` line).
    #[command(flatten)]
    pub srtp: SrtpArgs,
    /// NACK + RTX loss repair (the SDP then says RTP/AVPF with the RTX
    /// payload type and `nack` feedback).
    #[command(flatten)]
    pub rtx: RtxArgs,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

pub(crate) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size {s:?} is not WIDTHxHEIGHT"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(format!(
            "size {w}x{h} must be even and between 16x16 and 4096x4096"
        ));
    }
    Ok((w, h))
}

/// `--bitrate`: a fixed rate or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitrateArg {
    /// Follow the path (`auto`).
    Auto,
    /// This many kbit/s.
    Kbps(u32),
}

pub(crate) fn parse_bitrate(s: &str) -> Result<BitrateArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(BitrateArg::Auto);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("bitrate {s:?} is neither kbit/s nor auto"))?;
    if !(50..=100_000).contains(&v) {
        return Err(format!("bitrate {v} must be between 50 and 100000 kbit/s"));
    }
    Ok(BitrateArg::Kbps(v))
}

/// `N` or `N/D` frames per second, each part 1..=1_000_000, the rate at
/// most 1000 fps.
pub(crate) fn parse_framerate(s: &str) -> Result<(u32, u32), String> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let bad = || format!("frame rate {s:?} is not N or N/D (e.g. 30 or 30000/1001)");
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let d: u32 = d.trim().parse().map_err(|_| bad())?;
    if !(1..=1_000_000).contains(&n) || !(1..=1_000_000).contains(&d) || n / d > 1000 {
        return Err(format!(
            "frame rate {s:?} must be above 0 and at most 1000 fps"
        ));
    }
    Ok((n, d))
}

pub(crate) fn parse_keyint(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.1..=600.0).contains(&v) {
        return Err(format!("keyint {v} must be between 0.1 and 600 seconds"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_framerate_is_n_or_n_over_d() {
        assert_eq!(parse_framerate("30"), Ok((30, 1)));
        assert_eq!(parse_framerate("30000/1001"), Ok((30000, 1001)));
        for bad in ["", "0", "30/0", "x", "2000", "-5", "30/1/1"] {
            assert!(parse_framerate(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from([
            "pstream",
            "recv",
            "--peer",
            "127.0.0.1",
            "--framerate",
            "25",
        ])
        .expect("parses");
        let Command::Recv(a) = cli.command else {
            panic!("not recv")
        };
        assert_eq!(a.framerate, Some((25, 1)));
    }

    #[test]
    fn defaults_match_the_costream_layout() {
        let cli = Cli::try_parse_from(["pstream", "send", "--peer", "127.0.0.1"]).expect("parses");
        let Command::Send(a) = cli.command else {
            panic!("not send")
        };
        assert_eq!(a.size, (1280, 720));
        assert_eq!(a.fps, 30);
        assert_eq!(a.bitrate, BitrateArg::Kbps(2500));
        assert_eq!(parse_bitrate("auto"), Ok(BitrateArg::Auto));
        assert!(parse_bitrate("49").is_err() && parse_bitrate("fast").is_err());
        assert_eq!(a.keyint, 2.0);
        assert_eq!(a.audio_bitrate, 96);
        assert_eq!(a.channels, 2);
        assert_eq!(a.mtu, 1200);
        assert_eq!(a.port_base, 5000);
        assert_eq!(a.video_codec, VideoCodecArg::H264);
        assert_eq!(a.quality, 85);
        assert_eq!((a.encoder.preset, a.encoder.threads), (PresetArg::Fast, 1));
    }

    #[test]
    fn preset_and_threads_parse_on_send_and_push() {
        let cli = Cli::try_parse_from([
            "pstream",
            "send",
            "--peer",
            "::1",
            "--preset",
            "quality",
            "--threads",
            "2",
        ])
        .expect("parses");
        let Command::Send(a) = cli.command else {
            panic!("not send")
        };
        assert_eq!(
            (a.encoder.preset, a.encoder.threads),
            (PresetArg::Quality, 2)
        );
        let cli = Cli::try_parse_from(["pstream", "push", "file:x.flv", "--preset", "balanced"])
            .expect("parses");
        let Command::Push(a) = cli.command else {
            panic!("not push")
        };
        assert_eq!(a.encoder.preset, PresetArg::Balanced);
        for bad in [["--preset", "slow"], ["--threads", "17"]] {
            let mut argv = vec!["pstream", "send", "--peer", "::1"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err());
        }
    }

    #[test]
    fn mjpeg_and_quality_parse_on_send_sdp_and_recv() {
        for sub in ["send", "sdp"] {
            let cli = Cli::try_parse_from([
                "pstream",
                sub,
                "--peer",
                "::1",
                "--video-codec",
                "mjpeg",
                "--quality",
                "100",
            ])
            .expect("parses");
            let (Command::Send(a) | Command::Sdp(a)) = cli.command else {
                panic!("not send/sdp")
            };
            assert_eq!((a.video_codec, a.quality), (VideoCodecArg::Mjpeg, 100));
        }
        for bad in ["0", "101"] {
            assert!(
                Cli::try_parse_from(["pstream", "send", "--peer", "::1", "--quality", bad])
                    .is_err()
            );
        }
        let cli =
            Cli::try_parse_from(["pstream", "recv", "--peer", "::1", "--video-codec", "mjpeg"])
                .expect("parses");
        let Command::Recv(a) = cli.command else {
            panic!("not recv")
        };
        assert_eq!(a.video_codec, VideoCodecArg::Mjpeg);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(parse_size("1280").is_err());
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("641x480").is_err());
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
    }

    #[test]
    fn srtp_profiles_parse_by_short_and_sdes_name_and_need_a_key() {
        for (name, want) in [
            ("aes128-cm-sha1-80", SrtpProfileArg::AesCm128HmacSha1_80),
            (
                "AES_CM_128_HMAC_SHA1_32",
                SrtpProfileArg::AesCm128HmacSha1_32,
            ),
            ("aes128-gcm", SrtpProfileArg::AeadAes128Gcm),
        ] {
            let cli = Cli::try_parse_from([
                "pstream",
                "recv",
                "--peer",
                "127.0.0.1",
                "--srtp-key",
                "k",
                "--srtp-profile",
                name,
            ])
            .expect("parses");
            let Command::Recv(a) = cli.command else {
                panic!("not recv")
            };
            assert_eq!(a.srtp.srtp_profile, want);
        }
        let no_key = Cli::try_parse_from([
            "pstream",
            "send",
            "--peer",
            "127.0.0.1",
            "--srtp-profile",
            "aes128-gcm",
        ]);
        assert!(no_key.is_err(), "a profile without a key is refused");
    }
}
