//! The writer's caps string: GStreamer's serialized caps, parsed into the
//! raw video and audio formats pstream converts.
//!
//! A shmdata writer describes its frames with one free-form string; GStreamer's
//! `shmdatasink` (and score, which writes through libshmdata) puts the
//! negotiated caps there, serialized the way `gst_caps_to_string` does:
//!
//! ```text
//! video/x-raw, format=(string)I420, width=(int)320, height=(int)240, framerate=(fraction)30/1
//! audio/x-raw, format=(string)F32LE, layout=(string)interleaved, rate=(int)48000, channels=(int)2
//! ```
//!
//! The parser takes that form and the hand-written one without type
//! annotations (`video/x-raw,format=RGBA,width=1280,...`), quoted strings, and
//! skips fields it does not need (lists, ranges and arrays included). It holds
//! nothing beyond the input string, so it is safe on any bytes a peer sends.

use std::fmt;

use thiserror::Error;

/// Largest width or height accepted, as for every other pstream source.
pub const MAX_DIMENSION: u32 = 16_384;
/// Lowest audio rate accepted (a 10 ms block holds at least one sample).
pub const MIN_RATE: u32 = 100;
/// Highest audio rate accepted.
pub const MAX_RATE: u32 = 768_000;
/// Highest channel count accepted.
pub const MAX_CHANNELS: u16 = 8;

/// Why a caps string is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapsError {
    /// The string is not GStreamer caps syntax.
    #[error("malformed caps at byte {offset}: {reason}")]
    Syntax {
        /// Byte offset of the problem in the caps string.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// A media type other than raw video or raw audio (an encoded stream,
    /// application data...).
    #[error("media type {media} is not one pstream converts (video/x-raw, audio/x-raw)")]
    MediaType {
        /// The media type named.
        media: String,
    },
    /// Caps features other than plain system memory (GL textures, DMA buffers).
    #[error("caps features ({features}) are not plain system memory")]
    Features {
        /// The features named.
        features: String,
    },
    /// More than one structure: the writer's caps are not fixed.
    #[error("caps list several alternatives; a writer's caps must be fixed")]
    NotFixed,
    /// A field pstream needs is absent.
    #[error("field {field} is missing")]
    MissingField {
        /// The field name.
        field: &'static str,
    },
    /// A field holds a value of the wrong kind (a list where a number is
    /// needed, text where a fraction is...).
    #[error("field {field}={value} is not {expected}")]
    BadField {
        /// The field name.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A pixel format pstream does not convert.
    #[error("pixel format {format} is not one of I420, NV12, YUY2, UYVY, RGB, BGR, RGBA, BGRA, RGBx, BGRx")]
    PixelFormat {
        /// The format named.
        format: String,
    },
    /// A sample format pstream does not convert.
    #[error("sample format {format} is not one of F32LE, S16LE")]
    SampleFormat {
        /// The format named.
        format: String,
    },
    /// Audio laid out other than interleaved.
    #[error("audio layout {layout} is not interleaved")]
    Layout {
        /// The layout named.
        layout: String,
    },
    /// Interlaced video.
    #[error("interlace-mode {mode} is not progressive")]
    Interlaced {
        /// The mode named.
        mode: String,
    },
    /// A number outside what pstream accepts.
    #[error("{field}={value} is outside {min}..={max}")]
    OutOfRange {
        /// The field name.
        field: &'static str,
        /// The value given.
        value: u64,
        /// Lowest accepted.
        min: u64,
        /// Highest accepted.
        max: u64,
    },
}

/// A raw video pixel format pstream reads from (and writes to) shmdata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// Planar 4:2:0: Y, then U, then V.
    I420,
    /// Semi-planar 4:2:0: Y, then interleaved U V.
    Nv12,
    /// Packed 4:2:2: Y0 U Y1 V.
    Yuy2,
    /// Packed 4:2:2: U Y0 V Y1.
    Uyvy,
    /// Packed R G B, 3 bytes a pixel.
    Rgb,
    /// Packed B G R, 3 bytes a pixel.
    Bgr,
    /// Packed R G B A.
    Rgba,
    /// Packed B G R A.
    Bgra,
    /// Packed R G B and an unused byte.
    Rgbx,
    /// Packed B G R and an unused byte.
    Bgrx,
}

impl PixelFormat {
    /// Every format, in the order error messages list them.
    pub const ALL: [PixelFormat; 10] = [
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Yuy2,
        PixelFormat::Uyvy,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
    ];

    /// GStreamer's name for the format.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuy2 => "YUY2",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
        }
    }

    /// The format GStreamer calls `name` (case-sensitive, as GStreamer is:
    /// `RGBx` and `RGBX` are not the same format there).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raw video caps: format, size and frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoCaps {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate numerator; 0 (with denominator 1) is GStreamer's
    /// "variable frame rate".
    pub fps_num: u32,
    /// Frame rate denominator (at least 1).
    pub fps_den: u32,
}

/// An audio sample format pstream reads from (and writes to) shmdata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleFormat {
    /// 32-bit float, little-endian.
    F32Le,
    /// 16-bit signed integer, little-endian.
    S16Le,
}

impl SampleFormat {
    /// GStreamer's name for the format.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::F32Le => "F32LE",
            SampleFormat::S16Le => "S16LE",
        }
    }

    /// Bytes one sample takes.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::F32Le => 4,
            SampleFormat::S16Le => 2,
        }
    }
}

/// Raw interleaved audio caps: sample format, rate and channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioCaps {
    /// Sample format.
    pub format: SampleFormat,
    /// Samples per second per channel.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl AudioCaps {
    /// Bytes one sample frame (one sample of every channel) takes.
    pub fn frame_bytes(&self) -> usize {
        self.format.bytes() * usize::from(self.channels)
    }
}

/// What a shmdata writer carries, as far as pstream is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caps {
    /// Raw video.
    Video(VideoCaps),
    /// Raw interleaved audio.
    Audio(AudioCaps),
}

impl Caps {
    /// Parses a writer's caps string.
    pub fn parse(text: &str) -> Result<Caps, CapsError> {
        let s = Structure::parse(text)?;
        match s.media {
            "video/x-raw" => parse_video(&s).map(Caps::Video),
            "audio/x-raw" => parse_audio(&s).map(Caps::Audio),
            other => Err(CapsError::MediaType {
                media: other.to_owned(),
            }),
        }
    }

    /// The caps string a writer publishes, in `gst_caps_to_string`'s form so
    /// that GStreamer followers (`shmdatasrc`) take it as it is.
    pub fn to_caps_string(&self) -> String {
        match self {
            Caps::Video(v) => format!(
                // pstream's I420 is BT.601 (the test pattern and every
                // RGB conversion here use its matrix); saying so keeps
                // GStreamer from assuming BT.709 for pictures over 576 rows.
                "video/x-raw, format=(string){}, width=(int){}, height=(int){}, \
                 framerate=(fraction){}/{}, pixel-aspect-ratio=(fraction)1/1, \
                 interlace-mode=(string)progressive, colorimetry=(string)bt601",
                v.format.name(),
                v.width,
                v.height,
                v.fps_num,
                v.fps_den.max(1)
            ),
            Caps::Audio(a) => {
                let mut s = format!(
                    "audio/x-raw, format=(string){}, layout=(string)interleaved, \
                     rate=(int){}, channels=(int){}",
                    a.format.name(),
                    a.rate,
                    a.channels
                );
                // Stereo gets its front-left/front-right mask, as
                // GStreamer's own elements write it; other counts take
                // GStreamer's default positions.
                if a.channels == 2 {
                    s.push_str(", channel-mask=(bitmask)0x0000000000000003");
                }
                s
            }
        }
    }
}

fn parse_video(s: &Structure<'_>) -> Result<VideoCaps, CapsError> {
    let format = s.string("format")?;
    let format = PixelFormat::from_name(format).ok_or_else(|| CapsError::PixelFormat {
        format: format.to_owned(),
    })?;
    let width = s.uint("width", 1, MAX_DIMENSION.into())? as u32;
    let height = s.uint("height", 1, MAX_DIMENSION.into())? as u32;
    let (fps_num, fps_den) = match s.field("framerate") {
        None => (0, 1),
        Some(f) => f.fraction("framerate")?,
    };
    if let Some(mode) = s.field("interlace-mode") {
        let mode = mode.string("interlace-mode")?;
        if mode != "progressive" {
            return Err(CapsError::Interlaced {
                mode: mode.to_owned(),
            });
        }
    }
    Ok(VideoCaps {
        format,
        width,
        height,
        fps_num,
        fps_den,
    })
}

fn parse_audio(s: &Structure<'_>) -> Result<AudioCaps, CapsError> {
    let format = match s.string("format")? {
        "F32LE" => SampleFormat::F32Le,
        "S16LE" => SampleFormat::S16Le,
        other => {
            return Err(CapsError::SampleFormat {
                format: other.to_owned(),
            })
        }
    };
    // GStreamer always writes the layout; a hand-written string without it
    // means the usual interleaved one.
    if let Some(layout) = s.field("layout") {
        let layout = layout.string("layout")?;
        if layout != "interleaved" {
            return Err(CapsError::Layout {
                layout: layout.to_owned(),
            });
        }
    }
    let rate = s.uint("rate", MIN_RATE.into(), MAX_RATE.into())? as u32;
    let channels = s.uint("channels", 1, MAX_CHANNELS.into())? as u16;
    Ok(AudioCaps {
        format,
        rate,
        channels,
    })
}

/// One `name=value` of a structure, the value with its type annotation
/// split off and quotes removed.
#[derive(Debug)]
struct Field<'a> {
    name: &'a str,
    /// The text between the parentheses of `(type)`, if any.
    kind: Option<&'a str>,
    /// The value: unquoted text, or the inside of a quoted string with its
    /// escapes still in (pstream's fields never need them undone).
    value: &'a str,
    /// A list, range or array (`{...}`, `[...]`, `<...>`): not fixed.
    compound: bool,
}

impl<'a> Field<'a> {
    fn string(&self, name: &'static str) -> Result<&'a str, CapsError> {
        if self.compound || self.value.is_empty() {
            return Err(self.bad(name, "one string"));
        }
        Ok(self.value)
    }

    fn number(&self, name: &'static str) -> Result<u64, CapsError> {
        if self.compound {
            return Err(self.bad(name, "one whole number"));
        }
        let digits = self.value.strip_prefix('+').unwrap_or(self.value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(name, "a whole number"));
        }
        digits
            .parse::<u64>()
            .map_err(|_| self.bad(name, "a whole number that fits 64 bits"))
    }

    fn fraction(&self, name: &'static str) -> Result<(u32, u32), CapsError> {
        if self.compound {
            return Err(self.bad(name, "one fraction"));
        }
        let (num, den) = match self.value.split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (self.value, "1"),
        };
        let parse = |t: &str| -> Option<u32> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        match (parse(num), parse(den)) {
            (Some(n), Some(d)) if d > 0 => Ok((n, d)),
            _ => Err(self.bad(name, "a fraction N/D with D > 0")),
        }
    }

    fn bad(&self, name: &'static str, expected: &'static str) -> CapsError {
        let value = match self.kind {
            Some(k) => format!("({k}){}", self.value),
            None => self.value.to_owned(),
        };
        CapsError::BadField {
            field: name,
            value,
            expected,
        }
    }
}

/// A parsed caps structure: media type and fields, borrowing the input.
#[derive(Debug)]
struct Structure<'a> {
    media: &'a str,
    fields: Vec<Field<'a>>,
}

impl<'a> Structure<'a> {
    fn parse(text: &'a str) -> Result<Self, CapsError> {
        let parts = split_top(text, b';')?;
        let mut structures = parts.iter().filter(|(_, p)| !p.trim().is_empty());
        let (start, body) = structures.next().ok_or(CapsError::Syntax {
            offset: 0,
            reason: "empty caps",
        })?;
        if structures.next().is_some() {
            return Err(CapsError::NotFixed);
        }
        let items = split_top(body, b',')?;
        let Some(((name_at, head), rest)) = items.split_first() else {
            return Err(CapsError::Syntax {
                offset: *start,
                reason: "empty caps",
            });
        };
        let (media, features) = match head.find('(') {
            None => (head.trim(), None),
            Some(open) => {
                let inner = head[open + 1..].trim_end();
                let inner = inner.strip_suffix(')').ok_or(CapsError::Syntax {
                    offset: start + name_at + open,
                    reason: "unclosed caps features",
                })?;
                (head[..open].trim(), Some(inner.trim()))
            }
        };
        if media.is_empty()
            || !media
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.+".contains(&b))
        {
            return Err(CapsError::Syntax {
                offset: start + name_at,
                reason: "bad media type",
            });
        }
        if let Some(features) = features {
            if features != "memory:SystemMemory" {
                return Err(CapsError::Features {
                    features: features.to_owned(),
                });
            }
        }
        let mut fields = Vec::with_capacity(rest.len());
        for (at, item) in rest {
            if item.trim().is_empty() {
                continue;
            }
            fields.push(parse_field(item, start + at)?);
        }
        Ok(Structure { media, fields })
    }

    fn field(&self, name: &str) -> Option<&Field<'a>> {
        // GStreamer keeps the last of repeated fields.
        self.fields.iter().rev().find(|f| f.name == name)
    }

    fn string(&self, name: &'static str) -> Result<&'a str, CapsError> {
        self.field(name)
            .ok_or(CapsError::MissingField { field: name })?
            .string(name)
    }

    fn uint(&self, name: &'static str, min: u64, max: u64) -> Result<u64, CapsError> {
        let v = self
            .field(name)
            .ok_or(CapsError::MissingField { field: name })?
            .number(name)?;
        if v < min || v > max {
            return Err(CapsError::OutOfRange {
                field: name,
                value: v,
                min,
                max,
            });
        }
        Ok(v)
    }
}

fn parse_field(item: &str, offset: usize) -> Result<Field<'_>, CapsError> {
    let eq = item.find('=').ok_or(CapsError::Syntax {
        offset,
        reason: "field without '='",
    })?;
    let name = item[..eq].trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+".contains(&b))
    {
        return Err(CapsError::Syntax {
            offset,
            reason: "bad field name",
        });
    }
    let mut value = item[eq + 1..].trim();
    let mut kind = None;
    if let Some(rest) = value.strip_prefix('(') {
        let close = rest.find(')').ok_or(CapsError::Syntax {
            offset: offset + eq,
            reason: "unclosed (type)",
        })?;
        kind = Some(rest[..close].trim());
        value = rest[close + 1..].trim();
    }
    let compound = value.starts_with(['{', '[', '<']);
    if let Some(inner) = value.strip_prefix('"') {
        // split_top already checked the quotes balance; the closing one is last.
        value = inner.strip_suffix('"').ok_or(CapsError::Syntax {
            offset: offset + eq,
            reason: "text after a quoted string",
        })?;
    }
    Ok(Field {
        name,
        kind,
        value,
        compound,
    })
}

/// Splits `text` at `sep` outside quotes and brackets, giving each part
/// with its byte offset.
fn split_top(text: &str, sep: u8) -> Result<Vec<(usize, &str)>, CapsError> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut depth: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                // Skip the quoted string, honouring backslash escapes.
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(CapsError::Syntax {
                                offset: i,
                                reason: "unclosed quote",
                            })
                        }
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' | b'[' | b'<' => {
                // Deep nesting has no use in caps; refuse it rather than
                // let a peer make the stack grow.
                if depth.len() >= 16 {
                    return Err(CapsError::Syntax {
                        offset: i,
                        reason: "brackets nested too deep",
                    });
                }
                depth.push(match b {
                    b'{' => b'}',
                    b'[' => b']',
                    _ => b'>',
                });
            }
            b'}' | b']' | b'>' => match depth.pop() {
                Some(close) if close == b => {}
                _ => {
                    return Err(CapsError::Syntax {
                        offset: i,
                        reason: "unbalanced bracket",
                    })
                }
            },
            _ if b == sep && depth.is_empty() => {
                parts.push((start, &text[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !depth.is_empty() {
        return Err(CapsError::Syntax {
            offset: bytes.len(),
            reason: "unclosed bracket",
        });
    }
    parts.push((start, &text[start..]));
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstreamer_video_caps_parse() {
        let c = Caps::parse(
            "video/x-raw, format=(string)I420, width=(int)322, height=(int)240, \
             framerate=(fraction)30/1, multiview-mode=(string)mono, \
             pixel-aspect-ratio=(fraction)1/1, interlace-mode=(string)progressive",
        )
        .expect("parses");
        assert_eq!(
            c,
            Caps::Video(VideoCaps {
                format: PixelFormat::I420,
                width: 322,
                height: 240,
                fps_num: 30,
                fps_den: 1
            })
        );
    }

    #[test]
    fn hand_written_and_quoted_caps_parse() {
        let c = Caps::parse(
            "video/x-raw(memory:SystemMemory),format=\"RGBx\",width=1280,height=720,framerate=30000/1001,colorimetry=(string)\"bt601\",\
             views={ (int)1, (int)2 }",
        )
        .expect("parses");
        let Caps::Video(v) = c else {
            panic!("video caps")
        };
        assert_eq!(v.format, PixelFormat::Rgbx);
        assert_eq!(
            (v.width, v.height, v.fps_num, v.fps_den),
            (1280, 720, 30000, 1001)
        );
        // No frame rate: variable.
        let Caps::Video(v) =
            Caps::parse("video/x-raw,format=BGRA,width=2,height=2").expect("parses")
        else {
            panic!("video caps")
        };
        assert_eq!((v.fps_num, v.fps_den), (0, 1));
    }

    #[test]
    fn gstreamer_audio_caps_parse() {
        let c = Caps::parse(
            "audio/x-raw, format=(string)F32LE, layout=(string)interleaved, rate=(int)48000, \
             channels=(int)2, channel-mask=(bitmask)0x0000000000000003",
        )
        .expect("parses");
        assert_eq!(
            c,
            Caps::Audio(AudioCaps {
                format: SampleFormat::F32Le,
                rate: 48_000,
                channels: 2
            })
        );
        let Caps::Audio(a) =
            Caps::parse("audio/x-raw,format=S16LE,rate=44100,channels=1").expect("parses")
        else {
            panic!("audio caps")
        };
        assert_eq!(a.frame_bytes(), 2);
    }

    #[test]
    fn what_pstream_writes_it_reads_back() {
        for caps in [
            Caps::Video(VideoCaps {
                format: PixelFormat::I420,
                width: 321,
                height: 241,
                fps_num: 25,
                fps_den: 1,
            }),
            Caps::Audio(AudioCaps {
                format: SampleFormat::F32Le,
                rate: 48_000,
                channels: 2,
            }),
            Caps::Audio(AudioCaps {
                format: SampleFormat::S16Le,
                rate: 8_000,
                channels: 6,
            }),
        ] {
            assert_eq!(Caps::parse(&caps.to_caps_string()), Ok(caps));
        }
    }

    #[test]
    fn unconvertible_caps_are_named() {
        let cases: [(&str, &str); 10] = [
            ("video/x-h264, stream-format=byte-stream", "media type video/x-h264"),
            ("video/x-raw, format=(string)GRAY8, width=(int)2, height=(int)2", "pixel format GRAY8"),
            ("audio/x-raw, format=(string)S24LE, rate=(int)48000, channels=(int)2", "sample format S24LE"),
            ("audio/x-raw, format=F32LE, layout=non-interleaved, rate=48000, channels=2", "layout non-interleaved"),
            ("video/x-raw(memory:GLMemory), format=RGBA, width=2, height=2", "memory:GLMemory"),
            ("video/x-raw, format=I420, height=2", "width is missing"),
            ("video/x-raw, format=I420, width=0, height=2", "width=0 is outside 1..=16384"),
            ("video/x-raw, format=I420, width=[ 1, 100 ], height=2", "width=[ 1, 100 ] is not one whole number"),
            ("video/x-raw, format=I420, width=4, height=2, interlace-mode=interleaved", "interlace-mode interleaved"),
            ("video/x-raw, format=I420, width=4, height=2; video/x-raw, format=NV12, width=4, height=2", "must be fixed"),
        ];
        for (text, needle) in cases {
            let e = Caps::parse(text).expect_err(text);
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn malformed_caps_give_offsets_not_panics() {
        for text in [
            "",
            ";",
            "video/x-raw, format=\"I420",
            "video/x-raw, format=I420, width={1, 2",
            "video/x-raw, format]",
            "video/x-raw(memory:SystemMemory, format=I420",
            "video/x-raw, =3",
            "video/x-raw, width=(int",
            "video/x-raw, format=\"I420\"x",
            "vidéo/x-raw",
            "video/x-raw, width=99999999999999999999999, height=2, format=I420",
            "video/x-raw, width=2, height=2, format=I420, framerate=30/0",
        ] {
            assert!(Caps::parse(text).is_err(), "{text:?}");
        }
    }
}
