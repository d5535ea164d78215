//! Structured fuzzing harnesses, built only under `--cfg fuzzing` (as
//! cargo-fuzz builds): each fuzz target hands its input to one function here,
//! which derives a sequence of operations from it with `arbitrary` and checks
//! invariants after every step.
//!
//! - [`shmdata_caps`]: caps strings built from fields (known and unknown
//!   names, annotated or not, values in and out of range, lists, quotes),
//!   caps built from values, and raw text, into the caps parser and the
//!   pixel conversion.
//! - [`shmdata_messages`]: a writer's socket stream built from messages
//!   (greetings with any caps, updates, quits, unknown types, raw bytes)
//!   cut into reads of any size, into the follower's decoder.

use arbitrary::{Arbitrary, Result, Unstructured};

use crate::caps::{MAX_CHANNELS, MAX_DIMENSION, MAX_RATE, MIN_RATE};
use crate::pixels::{i420_len, to_i420, Layout};
use crate::proto::{FollowerDecoder, Message, WireLayout, CAPS_FIELD};
use crate::{AudioCaps, Caps, PixelFormat, SampleFormat, VideoCaps};

/// Field names a caps string may carry (the last ones are skipped).
const NAMES: [&str; 11] = [
    "format",
    "width",
    "height",
    "framerate",
    "rate",
    "channels",
    "layout",
    "pixel-aspect-ratio",
    "channel-mask",
    "colorimetry",
    "interlace-mode",
];

/// Values a field may take, typed or not, well-formed or not.
fn caps_value(u: &mut Unstructured<'_>) -> Result<String> {
    let num = |u: &mut Unstructured<'_>| -> Result<String> {
        Ok(match u.int_in_range(0..=5)? {
            0 => u.int_in_range(1..=64u32)?.to_string(),
            1 => u.arbitrary::<u32>()?.to_string(),
            2 => u.arbitrary::<i64>()?.to_string(),
            3 => (MAX_DIMENSION + u.int_in_range(0..=1)?).to_string(),
            4 => "99999999999999999999".into(),
            _ => String::new(),
        })
    };
    Ok(match u.int_in_range(0..=11)? {
        0 => format!(
            "(string){}",
            PixelFormat::ALL[u.choose_index(PixelFormat::ALL.len())?].name()
        ),
        1 => ["F32LE", "S16LE", "S24LE", "interleaved", "non-interleaved"][u.choose_index(5)?]
            .to_owned(),
        2 | 3 => format!("(int){}", num(u)?),
        4 => num(u)?,
        5 => format!("(fraction){}/{}", num(u)?, num(u)?),
        6 => format!("{}/{}", num(u)?, num(u)?),
        7 => format!("\"{}\"", u.arbitrary::<&str>()?),
        8 => format!("{{ (string)I420, (string){} }}", u.arbitrary::<&str>()?),
        9 => format!("[ {}, {} ]", num(u)?, num(u)?),
        10 => "(bitmask)0x0000000000000003".into(),
        _ => u.arbitrary::<String>()?,
    })
}

/// One caps input.
#[derive(Debug)]
pub enum CapsInput {
    /// A media type and fields, joined as GStreamer writes them (or not).
    Fields {
        /// The media type.
        media: String,
        /// `name=value` pairs.
        fields: Vec<(String, String)>,
        /// The separator (", " or "," or something else).
        sep: String,
    },
    /// Caps from values, written by pstream's writer.
    Built(Caps),
    /// Any text.
    Raw(String),
}

impl<'a> Arbitrary<'a> for CapsInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=9)? {
            0..=5 => CapsInput::Fields {
                media: ["video/x-raw", "audio/x-raw", "video/x-h264", ""][u.choose_index(4)?]
                    .to_owned(),
                fields: {
                    let n = u.int_in_range(0..=8)?;
                    (0..n)
                        .map(|_| {
                            let name = if u.ratio(1, 10)? {
                                u.arbitrary()?
                            } else {
                                NAMES[u.choose_index(NAMES.len())?].to_owned()
                            };
                            Ok((name, caps_value(u)?))
                        })
                        .collect::<Result<_>>()?
                },
                sep: [", ", ",", " , ", ";", ""][u.choose_index(5)?].to_owned(),
            },
            6 | 7 => CapsInput::Built(if u.arbitrary()? {
                Caps::Video(VideoCaps {
                    format: PixelFormat::ALL[u.choose_index(PixelFormat::ALL.len())?],
                    width: u.int_in_range(0..=MAX_DIMENSION + 1)?,
                    height: u.int_in_range(0..=MAX_DIMENSION + 1)?,
                    fps_num: u.arbitrary()?,
                    fps_den: u.arbitrary()?,
                })
            } else {
                Caps::Audio(AudioCaps {
                    format: [SampleFormat::F32Le, SampleFormat::S16Le][u.choose_index(2)?],
                    rate: u.int_in_range(MIN_RATE - 1..=MAX_RATE + 1)?,
                    channels: u.int_in_range(0..=MAX_CHANNELS + 1)?,
                })
            }),
            _ => CapsInput::Raw(u.arbitrary()?),
        })
    }
}

impl CapsInput {
    /// The caps string.
    pub fn text(&self) -> String {
        match self {
            CapsInput::Fields { media, fields, sep } => {
                let mut s = media.clone();
                for (name, value) in fields {
                    s.push_str(sep);
                    s.push_str(name);
                    s.push('=');
                    s.push_str(value);
                }
                s
            }
            CapsInput::Built(caps) => caps.to_caps_string(),
            CapsInput::Raw(s) => s.clone(),
        }
    }
}

/// Pictures converted when their layout is at most this big.
const CONVERT_MAX: usize = 1 << 16;

/// Feeds [`CapsInput`]s to the caps parser. For each: caps that parse
/// survive being written and parsed again, within the limits (dimensions,
/// rate, channels); caps pstream's writer wrote from values parse back
/// equal when they parse; a picture of a parsed video layout (when small)
/// converts to I420 whole and is refused one byte short, and its layout
/// holds at least the I420 picture's luma.
pub fn shmdata_caps(data: &[u8]) {
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        let Ok(input) = CapsInput::arbitrary(&mut u) else {
            return;
        };
        let text = input.text();
        let Ok(caps) = Caps::parse(&text) else {
            continue;
        };
        if let CapsInput::Built(built) = &input {
            let mut want = *built;
            if let Caps::Video(v) = &mut want {
                v.fps_den = v.fps_den.max(1);
            }
            assert_eq!(caps, want, "our own caps parsed as something else");
        }
        assert_eq!(
            Caps::parse(&caps.to_caps_string()),
            Ok(caps),
            "our own caps must parse"
        );
        match caps {
            Caps::Video(v) => {
                assert!(v.width >= 1 && v.width <= MAX_DIMENSION);
                assert!(v.height >= 1 && v.height <= MAX_DIMENSION);
                assert!(v.fps_den >= 1);
                let size = Layout::of(&v).size;
                let out = i420_len(v.width as usize, v.height as usize);
                assert!(
                    size >= (v.width * v.height) as usize,
                    "layout smaller than luma"
                );
                if size <= CONVERT_MAX && out <= CONVERT_MAX {
                    let src: Vec<u8> = data.iter().copied().cycle().take(size).collect();
                    let mut dst = vec![0u8; out];
                    if src.len() == size {
                        assert!(to_i420(&v, &src, &mut dst), "a whole frame converts");
                        assert!(
                            !to_i420(&v, &src[..size - 1], &mut dst),
                            "a short one is refused"
                        );
                    }
                }
            }
            Caps::Audio(a) => {
                assert!((MIN_RATE..=MAX_RATE).contains(&a.rate));
                assert!(a.channels >= 1 && a.channels <= MAX_CHANNELS);
                assert!(a.frame_bytes() >= 2);
            }
        }
    }
}

/// One message of a writer's stream.
#[derive(Debug)]
pub enum WireMessage {
    /// A greeting with the shared memory size and caps text.
    Connect {
        /// Shared memory size.
        shm_size: u64,
        /// Caps text (NULs cut it short, as C reads it).
        caps: CapsInput,
    },
    /// A greeting whose caps field has no NUL.
    Unterminated,
    /// A frame announcement.
    Update(u64),
    /// The writer leaves.
    Quit,
    /// A message type libshmdata does not send.
    Unknown(u16),
    /// Any bytes.
    Raw(Vec<u8>),
}

impl<'a> Arbitrary<'a> for WireMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=15)? {
            0..=3 => WireMessage::Connect {
                shm_size: u.arbitrary()?,
                caps: if u.ratio(1, 16)? {
                    CapsInput::Raw("v".repeat(u.int_in_range(CAPS_FIELD - 2..=CAPS_FIELD)?))
                } else {
                    u.arbitrary()?
                },
            },
            4 => WireMessage::Unterminated,
            5..=10 => WireMessage::Update(u.arbitrary()?),
            11 | 12 => WireMessage::Quit,
            13 => WireMessage::Unknown(u.int_in_range(3..=u16::MAX)?),
            _ => WireMessage::Raw(u.arbitrary()?),
        })
    }
}

/// Feeds a stream of [`WireMessage`]s, for a `size_t` of 4 or 8 bytes, to
/// a [`FollowerDecoder`] in reads of any size up to what it asks for
/// ([`FollowerDecoder::wanted`]), as the follower reads its socket. While
/// the stream is well-formed so far (a greeting first, no second one, only
/// known types) every message decodes exactly as it was encoded, in order,
/// with no error; a greeting's caps go on to the caps parser. Throughout:
/// `wanted` is between 1 and one greeting's length (the buffer holds at
/// most one message), and no more messages come out than 2 bytes each.
/// Then the whole stream at once: more than one message is refused,
/// never queued.
pub fn shmdata_messages(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(wide) = u.arbitrary::<bool>() else {
        return;
    };
    let layout = WireLayout::with_size_t(if wide { 8 } else { 4 });
    let mut stream = Vec::new();
    // The messages expected while the stream is well-formed.
    let mut expected: Vec<Message> = Vec::new();
    let mut well_formed = true;
    let mut greeted = false;
    let n = u.int_in_range(0..=12).unwrap_or(0);
    for _ in 0..n {
        let Ok(m) = WireMessage::arbitrary(&mut u) else {
            break;
        };
        let (bytes, msg) = match m {
            WireMessage::Connect { shm_size, caps } => {
                let text = caps.text();
                let cut = text.split('\0').next().unwrap_or_default().to_owned();
                // A size_t of 4 bytes carries the low 32 bits.
                let shm_size = if wide {
                    shm_size
                } else {
                    shm_size & 0xffff_ffff
                };
                match layout.encode_connect(shm_size, &cut) {
                    Ok(b) => {
                        let ok = !greeted;
                        greeted = true;
                        (
                            b,
                            ok.then_some(Message::Connect {
                                shm_size,
                                caps: cut,
                            }),
                        )
                    }
                    Err(_) => continue,
                }
            }
            WireMessage::Unterminated => {
                let Ok(mut b) = layout.encode_connect(0, "") else {
                    continue;
                };
                let len = b.len();
                b[len - CAPS_FIELD..].fill(b'x');
                (b, None)
            }
            WireMessage::Update(size) => {
                let size = if wide { size } else { size & 0xffff_ffff };
                let b = layout.encode_update(size);
                (b, greeted.then_some(Message::Update { size }))
            }
            WireMessage::Quit => (layout.encode_quit().to_vec(), Some(Message::Quit)),
            WireMessage::Unknown(kind) => (kind.to_ne_bytes().to_vec(), None),
            WireMessage::Raw(b) => (b, None),
        };
        stream.extend_from_slice(&bytes);
        match msg {
            Some(m) if well_formed => expected.push(m),
            _ => well_formed = false,
        }
    }
    let expect_error = !well_formed;

    // As the follower reads: never more than the decoder asks for.
    let mut d = FollowerDecoder::new(layout);
    let mut rest = &stream[..];
    let mut got: Vec<Message> = Vec::new();
    let mut failed = false;
    while !rest.is_empty() {
        let wanted = d.wanted();
        assert!(
            wanted >= 1 && wanted <= layout.connect_len(),
            "wanted {wanted}"
        );
        let n = match u.int_in_range(0..=3) {
            Ok(0) => u.int_in_range(1..=wanted).unwrap_or(wanted),
            _ => wanted,
        }
        .min(rest.len());
        match d.push(&rest[..n]) {
            Err(e) => {
                assert!(
                    expect_error && got.len() >= expected.len(),
                    "a well-formed stream refused after {} messages: {e}",
                    got.len()
                );
                failed = true;
                break;
            }
            Ok(Some(m)) => {
                if let Message::Connect { caps, .. } = &m {
                    let _ = Caps::parse(caps);
                }
                if let Some(want) = expected.get(got.len()) {
                    assert_eq!(&m, want, "message {} decoded differently", got.len());
                } else {
                    assert!(expect_error, "a message that was not sent");
                }
                got.push(m);
            }
            Ok(None) => {}
        }
        rest = &rest[n..];
        assert!(got.len() * 2 <= stream.len() - rest.len());
    }
    if !failed && well_formed {
        assert_eq!(got, expected, "messages lost");
    }

    // All at once: more than one message is refused, never queued.
    let all = FollowerDecoder::new(layout).push(&stream);
    if well_formed && expected.len() >= 2 {
        assert!(
            all.is_err(),
            "{} messages taken in one push",
            expected.len()
        );
    }
}
