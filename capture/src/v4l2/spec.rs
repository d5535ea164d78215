//! The `v4l2:` spec: a device path with optional `?size=WxH&fps=N&format=F`.

use std::fmt;
use std::path::PathBuf;

use crate::CaptureError;

/// The pixel layouts pstream reads from cameras and writes to output devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 Cb Y1 Cr.
    Yuyv,
    /// 4:2:0, a Y plane then interleaved Cb Cr.
    Nv12,
    /// Planar 4:2:0, Y then Cb then Cr (I420).
    Yu12,
    /// Motion JPEG, one JPEG per buffer.
    Mjpg,
    /// H.264 Annex-B byte stream, one access unit per buffer (a camera
    /// that encodes: a C920 in its H.264 mode, the Pi camera through
    /// bcm2835-v4l2). Only taken for an H.264 stream, sent as it is.
    H264,
}

impl PixelFormat {
    /// Every format, in the order they are tried for raw capture.
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Yu12,
        PixelFormat::Nv12,
        PixelFormat::Yuyv,
        PixelFormat::Mjpg,
        PixelFormat::H264,
    ];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Yu12 => *b"YU12",
            PixelFormat::Mjpg => *b"MJPG",
            PixelFormat::H264 => *b"H264",
        }
    }

    /// The format with this four-character code, if pstream handles it.
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// Whether the buffers hold uncompressed pixels.
    pub fn is_raw(self) -> bool {
        !matches!(self, PixelFormat::Mjpg | PixelFormat::H264)
    }

    /// Parses a `format=` value: YUYV, NV12, YU12 (or I420), MJPG (or MJPEG).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "YUYV" | "YUY2" => Some(PixelFormat::Yuyv),
            "NV12" => Some(PixelFormat::Nv12),
            "YU12" | "I420" => Some(PixelFormat::Yu12),
            "MJPG" | "MJPEG" => Some(PixelFormat::Mjpg),
            "H264" => Some(PixelFormat::H264),
            _ => None,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fourcc_str(self.fourcc()))
    }
}

/// A four-character code as text (non-printable bytes as `?`).
pub fn fourcc_str(code: [u8; 4]) -> String {
    code.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// A parsed `v4l2:/dev/videoN[?size=WxH&fps=N&format=F]` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Spec {
    /// The whole spec as given, for error messages.
    pub spec: String,
    /// The device node.
    pub path: PathBuf,
    /// A required picture size.
    pub size: Option<(u32, u32)>,
    /// A required frame rate (frames per second).
    pub fps: Option<u32>,
    /// A required pixel format.
    pub format: Option<PixelFormat>,
}

/// The options a `v4l2:` spec accepts, for error messages.
const OPTIONS: &str = "size=WxH, fps=N, format=YUYV|NV12|YU12|MJPG|H264";

impl V4l2Spec {
    /// Parses `v4l2:PATH[?OPTIONS]`; `None` when the spec is not a `v4l2:` one.
    pub fn parse(spec: &str) -> Option<Result<Self, CaptureError>> {
        let rest = spec.strip_prefix("v4l2:")?;
        Some(Self::parse_rest(spec, rest))
    }

    fn parse_rest(spec: &str, rest: &str) -> Result<Self, CaptureError> {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(CaptureError::invalid_format(
                spec,
                "no device given after v4l2: (e.g. v4l2:/dev/video0)",
            ));
        }
        let mut out = V4l2Spec {
            spec: spec.to_owned(),
            path: PathBuf::from(path),
            size: None,
            fps: None,
            format: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let bad = |why: String| CaptureError::invalid_format(spec, why);
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                bad(format!(
                    "option \"{pair}\" has no value; accepted: {OPTIONS}"
                ))
            })?;
            match key {
                "size" => {
                    let size = value
                        .split_once(['x', 'X'])
                        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                        .filter(|&(w, h)| w > 0 && h > 0)
                        .ok_or_else(|| bad(format!("size \"{value}\" is not WxH")))?;
                    out.size = Some(size);
                }
                "fps" => {
                    let fps = value
                        .parse::<u32>()
                        .ok()
                        .filter(|f| (1..=1000).contains(f))
                        .ok_or_else(|| {
                            bad(format!("fps \"{value}\" is not a number in 1..=1000"))
                        })?;
                    out.fps = Some(fps);
                }
                "format" => {
                    out.format = Some(PixelFormat::parse(value).ok_or_else(|| {
                        bad(format!(
                            "format \"{value}\" is not one of YUYV, NV12, YU12, MJPG, H264"
                        ))
                    })?);
                }
                _ => {
                    return Err(bad(format!(
                        "unknown option \"{key}\"; accepted: {OPTIONS}"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The device path as text.
    pub fn device(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<V4l2Spec, String> {
        V4l2Spec::parse(s)
            .expect("a v4l2 spec")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_bare_device_has_no_constraints() {
        let s = parse("v4l2:/dev/video3").expect("valid");
        assert_eq!(s.path, PathBuf::from("/dev/video3"));
        assert_eq!((s.size, s.fps, s.format), (None, None, None));
        assert!(V4l2Spec::parse("y4m:/dev/video3").is_none());
    }

    #[test]
    fn options_are_parsed() {
        let s = parse("v4l2:/dev/video0?size=1280x720&fps=30&format=mjpg").expect("valid");
        assert_eq!(s.size, Some((1280, 720)));
        assert_eq!(s.fps, Some(30));
        assert_eq!(s.format, Some(PixelFormat::Mjpg));
        let s = parse("v4l2:/dev/video0?format=I420").expect("valid");
        assert_eq!(s.format, Some(PixelFormat::Yu12));
        let s = parse("v4l2:/dev/video0?format=NV12&size=640X480").expect("valid");
        assert_eq!(
            (s.format, s.size),
            (Some(PixelFormat::Nv12), Some((640, 480)))
        );
    }

    #[test]
    fn bad_options_are_named() {
        let e = parse("v4l2:/dev/video0?size=big").expect_err("bad size");
        assert_eq!(
            e,
            "v4l2:/dev/video0?size=big: invalid format: size \"big\" is not WxH"
        );
        assert!(parse("v4l2:/dev/video0?size=0x10")
            .expect_err("zero")
            .contains("not WxH"));
        assert!(parse("v4l2:/dev/video0?fps=0")
            .expect_err("zero fps")
            .contains("fps \"0\""));
        assert!(parse("v4l2:/dev/video0?format=RGB3")
            .expect_err("format")
            .contains("not one of YUYV, NV12, YU12, MJPG, H264"));
        assert!(parse("v4l2:/dev/video0?zoom=2")
            .expect_err("unknown")
            .contains("unknown option \"zoom\""));
        assert!(parse("v4l2:/dev/video0?fps")
            .expect_err("no value")
            .contains("has no value"));
        assert!(parse("v4l2:")
            .expect_err("empty")
            .contains("no device given"));
    }

    #[test]
    fn fourccs_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"RGB3"), None);
        assert_eq!(fourcc_str(*b"Y16 "), "Y16");
        assert_eq!(fourcc_str([b'A', 0, b'B', 1]), "A?B?");
        assert_eq!(PixelFormat::Yu12.to_string(), "YU12");
    }
}
