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

pub mod error;
pub mod jpeg_source;
pub mod rtp;
pub mod run;
pub mod stages;
pub mod stats;

pub use error::{Error, Result};
pub use pstream_codec::H264Preset;
pub use rtp::{RtpConfig, RtpSend, VideoCodec};
pub use run::Stop;

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

    /// H.264 encoder preset; `Fast` (the default) suits a Pi.
    pub fn preset(mut self, preset: H264Preset) -> Self {
        self.config.preset = preset;
        self
    }

    /// First port of the layout (default 5000).
    pub fn port_base(mut self, base: u16) -> Self {
        self.config.port_base = base;
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
