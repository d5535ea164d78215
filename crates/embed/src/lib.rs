//! pstream as a library, for programs that stream from small Linux boxes
//! and Raspberry Pis without GStreamer.
//!
//! The same stages `pstream send` runs (source -> encoder -> RTP/RTCP, each
//! a thread joined to the next by a bounded drop-oldest link) behind a
//! builder:
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! let mut stream = pstream_embed::Rtp::to("192.0.2.7")
//!     .video("test")
//!     .size(640, 360)
//!     .bitrate_kbps(800)
//!     .start()?;
//! std::thread::sleep(std::time::Duration::from_secs(10));
//! println!("{}", stream.stats_line());
//! stream.stop();
//! stream.wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! The peer gets H.264 + Opus on GStreamer's `rtpbin` port layout (video
//! RTP/RTCP on 5000/5001, audio on 5002/5003); [`rtp::Plan::sdp`] gives the
//! SDP file for players.
//!
//! Losses are repaired before they show with [`Rtp::rtx`] and
//! [`Receive::rtx`] (NACK and retransmission, RFC 4585/4588): the receiver
//! holds pictures for a repair budget ([`Receive::latency_ms`], or about
//! three round trips when not given) and asks for what is missing; only
//! what cannot come back in time costs a keyframe request.
//!
//! Across the internet, [`Rtp::srtp`] and [`Receive::srtp`] with the same
//! [`MasterKey`] (parsed from `pstream keygen`'s base64 or GStreamer's hex
//! by [`MasterKey::parse`], or made by [`MasterKey::generate`]) encrypt and
//! authenticate RTP and RTCP both ways (SRTP, RFC 3711); what fails
//! authentication is dropped and counted ([`StreamStats::srtp_auth_failed`]).
//!
//! Pushing to an RTMP ingest (H.264 + AAC in FLV, reconnecting through
//! drops) and recording FLV work the same way, like `pstream push`:
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! let mut live = pstream_embed::Push::to("rtmp://a.rtmp.youtube.com/live2/KEY")
//!     .also_to("file:backup.flv")
//!     .video("v4l2:/dev/video0")
//!     .audio("default")
//!     .start()?;
//! let mut recording = pstream_embed::Record::to("clip.flv")
//!     .size(640, 360)
//!     .duration(30.0)
//!     .start()?;
//! recording.wait()?;
//! println!("{}", live.stats_line());
//! live.stop();
//! live.wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! Receiving a peer's stream (what `pstream recv` runs: jitter buffer, PLI
//! on loss, Opus concealment, lip sync) into files or devices:
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! let mut recv = pstream_embed::Receive::from("192.0.2.9")
//!     .video_out("y4m:out.y4m")
//!     .audio_out("wav:out.wav")
//!     .timecode(true)
//!     .start()?;
//! std::thread::sleep(std::time::Duration::from_secs(10));
//! println!("{}", recv.stats_line());
//! recv.stop();
//! recv.wait()?;
//! println!("latency {:?}", recv.latency());
//! # Ok(())
//! # }
//! ```
//!
//! Serving RTMP publishes as HLS with lighter renditions, like `pstream
//! serve` (the streaming back-end recipe's broadcaster):
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! use pstream_embed::serve::Rendition;
//! let mut server = pstream_embed::Serve::new()
//!     .rtmp("0.0.0.0:1935")
//!     .http("0.0.0.0:8935")
//!     .renditions([Rendition::P144p30fps16x9])
//!     .start()?;
//! // players: http://HOST:8935/stream/<key>.m3u8
//! server.wait()?;
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod bridge;
pub mod encode;
pub mod error;
pub mod fault;
pub mod jpeg_decode;
pub mod jpeg_source;
pub mod m2m;
pub mod probe;
pub mod push;
pub mod recv;
mod rtmp_out;
pub mod rtp;
pub mod run;
pub mod serve;
pub mod sources;
pub mod stages;
pub mod stats;

pub use bridge::{BridgeConfig, BridgeRun};
pub use error::{Error, Result};
pub use m2m::EncoderChoice;
pub use pstream_codec::H264Preset;
pub use pstream_rtp::srtp::{MasterKey, SrtpProfile};
pub use push::{DestinationState, PushConfig, PushStream, Target};
pub use recv::{Receive, RecvConfig, RtpRecv, StreamStats, SyncMode};
pub use rtp::{AutoBitrate, RtpConfig, RtpSend, VideoCodec};
pub use run::Stop;
pub use serve::{HlsServer, Serve, ServeConfig};

/// Builds an RTP stream to a peer: [`Rtp::to`], a few settings, [`Rtp::start`].
#[derive(Debug, Clone)]
pub struct Rtp {
    config: RtpConfig,
    duration: Option<f64>,
}

impl Rtp {
    /// A stream to `peer` (address or host name) with `pstream send`'s
    /// defaults: 1280x720@30 test pattern, H.264 at 2.5 Mbit/s, Opus tone.
    pub fn to(peer: impl Into<String>) -> Self {
        Self {
            config: RtpConfig::new(peer),
            duration: None,
        }
    }

    /// Video source: `test`, `y4m:PATH`, `y4m:-` (stdin) or `none`.
    pub fn video(mut self, spec: impl Into<String>) -> Self {
        self.config.video = spec.into();
        self
    }

    /// Audio source: `test`, `wav:PATH` or `none`.
    pub fn audio(mut self, spec: impl Into<String>) -> Self {
        self.config.audio = spec.into();
        self
    }

    /// Test pattern size in pixels (files bring their own).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.config.size = (width, height);
        self
    }

    /// Test pattern frame rate (files bring their own).
    pub fn fps(mut self, fps: u32) -> Self {
        self.config.fps = fps;
        self
    }

    /// Video bitrate in kbit/s.
    pub fn bitrate_kbps(mut self, kbps: u32) -> Self {
        self.config.bitrate_kbps = kbps;
        self
    }

    /// `--bitrate auto`: the H.264 target follows the peer's receiver
    /// reports and REMB between `min_kbps` and `max_kbps`, starting at the
    /// bitrate set (2500 kbit/s unless told).
    pub fn auto_bitrate_kbps(mut self, min_kbps: u32, max_kbps: u32) -> Self {
        self.config.auto_bitrate = Some(AutoBitrate { min_kbps, max_kbps });
        self
    }

    /// H.264 encoder preset; `Fast` (the default) suits a Pi.
    pub fn preset(mut self, preset: H264Preset) -> Self {
        self.config.preset = preset;
        self
    }

    /// Which H.264 encoder (default openh264; `EncoderChoice::Auto` takes a
    /// V4L2 memory-to-memory encoder when one offers H.264).
    pub fn encoder(mut self, encoder: EncoderChoice) -> Self {
        self.config.encoder = encoder;
        self
    }

    /// First port of the layout (default 5000).
    pub fn port_base(mut self, base: u16) -> Self {
        self.config.port_base = base;
        self
    }

    /// Protects RTP and RTCP both ways with SRTP under `key` (see
    /// [`MasterKey::parse`] for the base64 and hex forms); the peer needs
    /// the same key and profile.
    pub fn srtp(mut self, key: MasterKey) -> Self {
        self.config.srtp = Some(key);
        self
    }

    /// Answers the peer's NACKs with retransmissions of the video in an RTX
    /// stream (RFC 4588; payload type 98 unless [`Rtp::rtx_payload_type`]).
    pub fn rtx(mut self, on: bool) -> Self {
        self.config.rtx = on;
        self
    }

    /// The RTX stream's payload type (96..=127, not the video's; default 98).
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
    pub fn config_mut(&mut self) -> &mut RtpConfig {
        &mut self.config
    }

    /// Opens the sources, starts every stage and returns the running stream.
    pub fn start(self) -> Result<RtpSend> {
        let stop = match self.duration {
            Some(secs) => Stop::after(secs)?,
            None => Stop::new(),
        };
        RtpSend::prepare(&self.config)?.start(stop)
    }
}

/// Builds a push to RTMP ingests and FLV files: [`Push::to`], a few
/// settings, [`Push::start`]. The stream is encoded once whatever the number
/// of destinations; each reconnects on its own.
#[derive(Debug, Clone)]
pub struct Push {
    config: PushConfig,
    urls: Vec<String>,
    duration: Option<f64>,
}

impl Push {
    /// A push to `url` (`rtmp://host[:port]/app/KEY`, `rtmps://...` or
    /// `file:PATH.flv`) with `pstream push`'s defaults: 1280x720@30 test
    /// pattern, H.264 at 2.5 Mbit/s with a 2 s GOP, AAC tone at 128 kbit/s.
    pub fn to(url: impl Into<String>) -> Self {
        Self {
            config: PushConfig::new(),
            urls: vec![url.into()],
            duration: None,
        }
    }

    /// One more destination, fed the same encoded stream.
    pub fn also_to(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Video source: `test`, `y4m:PATH`, `y4m:-` (stdin), `v4l2:DEVICE` or `none`.
    pub fn video(mut self, spec: impl Into<String>) -> Self {
        self.config.video = spec.into();
        self
    }

    /// Audio source: `test`, `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire[:NODE]` or `none`.
    pub fn audio(mut self, spec: impl Into<String>) -> Self {
        self.config.audio = spec.into();
        self
    }

    /// With no audio source, send a silent AAC track (some ingests refuse video-only streams).
    pub fn silent_audio(mut self) -> Self {
        self.config.silent_audio = true;
        self
    }

    /// Test pattern size in pixels (files bring their own).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.config.size = (width, height);
        self
    }

    /// Test pattern frame rate (files bring their own).
    pub fn fps(mut self, fps: u32) -> Self {
        self.config.fps = fps;
        self
    }

    /// Video bitrate in kbit/s.
    pub fn bitrate_kbps(mut self, kbps: u32) -> Self {
        self.config.bitrate_kbps = kbps;
        self
    }

    /// Seconds between keyframes (ingests ask for 2).
    pub fn keyint_seconds(mut self, seconds: f64) -> Self {
        self.config.keyint_seconds = seconds;
        self
    }

    /// H.264 encoder preset; `Fast` (the default) suits a Pi.
    pub fn preset(mut self, preset: H264Preset) -> Self {
        self.config.preset = preset;
        self
    }

    /// Which H.264 encoder (default openh264; `EncoderChoice::Auto` takes a
    /// V4L2 memory-to-memory encoder when one offers H.264).
    pub fn encoder(mut self, encoder: EncoderChoice) -> Self {
        self.config.encoder = encoder;
        self
    }

    /// Stops by itself after `seconds`.
    pub fn duration(mut self, seconds: f64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// Every setting, for what the shortcuts do not cover.
    pub fn config_mut(&mut self) -> &mut PushConfig {
        &mut self.config
    }

    /// Checks the destinations, opens the sources, starts every stage and
    /// returns the running stream.
    pub fn start(mut self) -> Result<PushStream> {
        for url in &self.urls {
            let target = Target::parse(url).map_err(|e| Error::Destination {
                name: pstream_transport::rtmp::redact(url),
                source: Box::new(e),
            })?;
            self.config.destinations.push(target);
        }
        let stop = match self.duration {
            Some(secs) => Stop::after(secs)?,
            None => Stop::new(),
        };
        PushStream::start(&self.config, stop)
    }
}

/// Builds an FLV recording (H.264 + AAC, what `pstream push file:PATH`
/// writes): [`Record::to`], a few settings, [`Record::start`].
#[derive(Debug, Clone)]
pub struct Record {
    push: Push,
    path: std::path::PathBuf,
}

impl Record {
    /// A recording into `path` with the same defaults as [`Push::to`].
    pub fn to(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            push: Push {
                config: PushConfig::new(),
                urls: Vec::new(),
                duration: None,
            },
            path: path.into(),
        }
    }

    /// Video source: `test`, `y4m:PATH`, `y4m:-` (stdin), `v4l2:DEVICE` or `none`.
    pub fn video(mut self, spec: impl Into<String>) -> Self {
        self.push = self.push.video(spec);
        self
    }

    /// Audio source: `test`, `wav:PATH`, `default`, `alsa:NAME`,
    /// `pipewire[:NODE]` or `none`.
    pub fn audio(mut self, spec: impl Into<String>) -> Self {
        self.push = self.push.audio(spec);
        self
    }

    /// Test pattern size in pixels (files bring their own).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.push = self.push.size(width, height);
        self
    }

    /// Test pattern frame rate (files bring their own).
    pub fn fps(mut self, fps: u32) -> Self {
        self.push = self.push.fps(fps);
        self
    }

    /// Video bitrate in kbit/s.
    pub fn bitrate_kbps(mut self, kbps: u32) -> Self {
        self.push = self.push.bitrate_kbps(kbps);
        self
    }

    /// Stops by itself after `seconds`.
    pub fn duration(mut self, seconds: f64) -> Self {
        self.push = self.push.duration(seconds);
        self
    }

    /// Every setting, for what the shortcuts do not cover.
    pub fn config_mut(&mut self) -> &mut PushConfig {
        self.push.config_mut()
    }

    /// Creates the file, opens the sources and starts every stage; the file
    /// is complete once [`PushStream::wait`] returns.
    pub fn start(mut self) -> Result<PushStream> {
        self.push.config.destinations.push(Target::File(self.path));
        self.push.start()
    }
}

/// Builds a bridge from sources to sinks without encoding (what `pstream
/// bridge` runs): [`Bridge::from`] a video source, its sink, a few
/// settings, [`Bridge::start`].
///
/// ```no_run
/// # fn main() -> Result<(), pstream_embed::Error> {
/// // score's Shmdata output to a v4l2loopback virtual camera.
/// let mut run = pstream_embed::Bridge::from("shmdata:/tmp/score_shm_video")
///     .video_out("v4l2:/dev/video0")
///     .start()?;
/// std::thread::sleep(std::time::Duration::from_secs(10));
/// println!("{}", run.stats_line());
/// run.stop();
/// run.wait()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bridge {
    config: BridgeConfig,
    duration: Option<f64>,
}

impl From<&str> for Bridge {
    /// A bridge from this video source spec (`none` for audio only).
    fn from(video: &str) -> Self {
        Self {
            config: BridgeConfig::new(video),
            duration: None,
        }
    }
}

impl From<String> for Bridge {
    /// A bridge from this video source spec (`none` for audio only).
    fn from(video: String) -> Self {
        Self {
            config: BridgeConfig::new(video),
            duration: None,
        }
    }
}

impl Bridge {
    /// The audio source spec (default `none`).
    pub fn audio(mut self, spec: impl Into<String>) -> Self {
        self.config.audio = spec.into();
        self
    }

    /// The video sink spec (default `null`).
    pub fn video_out(mut self, spec: impl Into<String>) -> Self {
        self.config.video_out = spec.into();
        self
    }

    /// The audio sink spec (default `null`).
    pub fn audio_out(mut self, spec: impl Into<String>) -> Self {
        self.config.audio_out = spec.into();
        self
    }

    /// Test pattern size (and the size used until a shmdata writer comes).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.config.size = (width, height);
        self
    }

    /// Test pattern frame rate.
    pub fn fps(mut self, fps: u32) -> Self {
        self.config.fps = fps;
        self
    }

    /// Stops after this many seconds.
    pub fn duration(mut self, seconds: f64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// Every setting, for those without a builder method.
    pub fn config_mut(&mut self) -> &mut BridgeConfig {
        &mut self.config
    }

    /// Opens the sources and sinks and starts bridging.
    pub fn start(self) -> Result<BridgeRun> {
        let stop = match self.duration {
            Some(secs) => Stop::after(secs)?,
            None => Stop::new(),
        };
        BridgeRun::start(&self.config, stop)
    }
}
