//! `--encoder`: which H.264 encoder a stream uses. openh264 in software, or
//! a V4L2 memory-to-memory hardware encoder (a Raspberry Pi's bcm2835-codec
//! at /dev/video11) through [`pstream_capture::v4l2::M2mEncoder`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use pstream_capture::v4l2::m2m::{find_encoder, H264 as FOURCC_H264};
use pstream_capture::v4l2::{M2mEncoder, M2mEncoderConfig};
use pstream_codec::h264::nal::{self, NAL_SPS};
use pstream_codec::{CodecError, H264Config, H264Encoder, VideoEncoder};
use pstream_core::{Codec, EncodedUnit, VideoFrame};

use crate::{Error, Result};

/// The H.264 encoder asked for (`--encoder`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EncoderChoice {
    /// openh264, in software (the default).
    #[default]
    Openh264,
    /// A V4L2 memory-to-memory encoder: this node, or the first that
    /// offers H.264 on its CAPTURE queue.
    V4l2M2m(Option<PathBuf>),
    /// The V4L2 encoder when a node offers H.264, else openh264.
    Auto,
}

impl FromStr for EncoderChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "openh264" => Ok(EncoderChoice::Openh264),
            "auto" => Ok(EncoderChoice::Auto),
            "v4l2m2m" => Ok(EncoderChoice::V4l2M2m(None)),
            _ => match s.strip_prefix("v4l2m2m:") {
                Some(dev) if !dev.is_empty() => {
                    Ok(EncoderChoice::V4l2M2m(Some(PathBuf::from(dev))))
                }
                _ => Err(format!(
                    "encoder {s:?}: not one of openh264, auto, v4l2m2m, v4l2m2m:/dev/videoN"
                )),
            },
        }
    }
}

/// The encoder a choice came to, decided once before the stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H264Backend {
    /// openh264.
    Openh264,
    /// The V4L2 encoder at this node.
    V4l2M2m(PathBuf),
}

impl fmt::Display for H264Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H264Backend::Openh264 => f.write_str("openh264"),
            H264Backend::V4l2M2m(p) => write!(f, "v4l2m2m {}", p.display()),
        }
    }
}

impl EncoderChoice {
    /// Finds the device for `v4l2m2m` and `auto` (said in one log line);
    /// `v4l2m2m` without a device that offers H.264 is an error.
    pub fn resolve(&self) -> Result<H264Backend> {
        let backend = match self {
            EncoderChoice::Openh264 => H264Backend::Openh264,
            EncoderChoice::V4l2M2m(Some(dev)) => H264Backend::V4l2M2m(dev.clone()),
            EncoderChoice::V4l2M2m(None) => H264Backend::V4l2M2m(
                find_encoder(FOURCC_H264).map_err(|e| Error::Config(e.to_string()))?,
            ),
            EncoderChoice::Auto => match find_encoder(FOURCC_H264) {
                Ok(dev) => H264Backend::V4l2M2m(dev),
                Err(e) => {
                    tracing::info!("encoder: openh264 ({e})");
                    return Ok(H264Backend::Openh264);
                }
            },
        };
        tracing::info!("encoder: {backend}");
        Ok(backend)
    }
}

/// Builds the H.264 encoder `backend` names for `cfg`.
pub fn h264_encoder(backend: &H264Backend, cfg: H264Config) -> Result<Box<dyn VideoEncoder>> {
    Ok(match backend {
        H264Backend::Openh264 => Box::new(
            H264Encoder::new(cfg)
                .map_err(|e| Error::failed("cannot start the H.264 encoder", e))?,
        ),
        H264Backend::V4l2M2m(dev) => Box::new(V4l2H264Encoder::open(dev, &cfg)?),
    })
}

/// A V4L2 memory-to-memory H.264 encoder behind the [`VideoEncoder`] trait:
/// key frame requests go to V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, and every
/// IDR carries SPS and PPS (the device repeats them, or this adds the last
/// ones seen when it does not).
pub struct V4l2H264Encoder {
    inner: M2mEncoder,
    sps_pps: Option<Vec<u8>>,
}

impl fmt::Debug for V4l2H264Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4l2H264Encoder")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl V4l2H264Encoder {
    /// Opens `device` for `cfg`'s size, rate, bitrate and key frame period;
    /// logs the controls set and names those the device lacks.
    pub fn open(device: &std::path::Path, cfg: &H264Config) -> Result<Self> {
        let inner = M2mEncoder::open(
            device,
            M2mEncoderConfig {
                coded: FOURCC_H264,
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps,
                bitrate_bps: cfg.bitrate_bps,
                keyint_frames: cfg.keyint_frames,
            },
        )
        .map_err(|e| Error::Config(format!("cannot start the V4L2 H.264 encoder: {e}")))?;
        let plan = inner.controls();
        let set: Vec<String> = plan
            .set
            .iter()
            .map(|c| format!("{} {}", c.name, c.meaning))
            .collect();
        tracing::info!("{}: {}", device.display(), set.join(", "));
        if !plan.missing.is_empty() {
            tracing::warn!(
                "{}: the encoder has no control for {}; skipped",
                device.display(),
                plan.missing.join(", ")
            );
        }
        Ok(Self {
            inner,
            sps_pps: None,
        })
    }

    /// Key frame requests the device had no control for.
    pub fn keyframes_unsupported(&self) -> u64 {
        self.inner.keyframes_unsupported()
    }
}

impl VideoEncoder for V4l2H264Encoder {
    fn encode(
        &mut self,
        frame: &VideoFrame,
    ) -> std::result::Result<Option<EncodedUnit>, CodecError> {
        let packets = self
            .inner
            .encode(frame.data(), frame.width(), frame.height(), frame.pts)
            .map_err(|e| CodecError::Device(e.to_string()))?;
        // One coded frame per picture; a size change may hand back frames
        // drained from the old session first, joined into this unit.
        let mut data = Vec::new();
        let mut keyframe = false;
        for p in packets {
            keyframe |= p.keyframe;
            data.extend_from_slice(&p.data);
        }
        if data.is_empty() {
            return Ok(None);
        }
        if let Some((sps, pps)) = nal::parameter_sets(&data) {
            let mut both = vec![0, 0, 0, 1];
            both.extend_from_slice(sps);
            both.extend_from_slice(&[0, 0, 0, 1]);
            both.extend_from_slice(pps);
            self.sps_pps = Some(both);
        } else if keyframe {
            if let Some(ps) = &self.sps_pps {
                let has_sps =
                    nal::nal_units(&data).any(|n| n.first().is_some_and(|b| b & 0x1f == NAL_SPS));
                if !has_sps {
                    let mut with = ps.clone();
                    with.extend_from_slice(&data);
                    data = with;
                }
            }
        }
        Ok(Some(EncodedUnit {
            codec: Codec::H264,
            keyframe,
            pts: frame.pts,
            dts: None,
            capture: frame.capture,
            data: data.into(),
        }))
    }

    fn request_keyframe(&mut self) {
        self.inner.request_keyframe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_choices_parse() {
        assert_eq!("openh264".parse(), Ok(EncoderChoice::Openh264));
        assert_eq!("auto".parse(), Ok(EncoderChoice::Auto));
        assert_eq!("v4l2m2m".parse(), Ok(EncoderChoice::V4l2M2m(None)));
        assert_eq!(
            "v4l2m2m:/dev/video11".parse(),
            Ok(EncoderChoice::V4l2M2m(Some(PathBuf::from("/dev/video11"))))
        );
        assert!("v4l2m2m:".parse::<EncoderChoice>().is_err());
        assert!("x264"
            .parse::<EncoderChoice>()
            .is_err_and(|e| e.contains("not one of")));
    }

    #[test]
    fn a_missing_device_is_named() {
        let err = V4l2H264Encoder::open(
            std::path::Path::new("/dev/video-none"),
            &H264Config {
                width: 640,
                height: 360,
                fps: 30.0,
                bitrate_bps: 1_000_000,
                keyint_frames: 60,
                threads: 1,
                preset: Default::default(),
            },
        )
        .expect_err("no such device");
        assert!(err.to_string().contains("/dev/video-none"), "{err}");
    }
}
