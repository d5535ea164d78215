//! V4L2 memory-to-memory stateful codecs: the encoder behind
//! `--encoder v4l2m2m[:/dev/videoN]` (a Raspberry Pi's bcm2835-codec at
//! /dev/video11, or any driver of the kernel's stateful encoder interface)
//! and the matching stateful decoder.
//!
//! Raw pictures go into the OUTPUT queue, coded frames come out of the
//! CAPTURE queue (Documentation/userspace-api/media/v4l/dev-encoder.rst).
//! Both queues use MMAP buffers, single- or multi-planar as the driver
//! offers (the Pi's codec is multi-planar only). The coded format is a
//! parameter: H.264 for the product path, FWHT for the kernel's virtual
//! codec vicodec, which the guest tests drive.
//!
//! The v4l crate (0.14) has no memory-to-memory device type, no
//! multi-planar buffers, no events and no encoder commands, and its
//! wrappers unwrap driver values, so this talks to the device through the
//! checked ioctls of `sys.rs`, like the rest of the V4L2 backend.
//!
//! Encoding is synchronous: [`M2mEncoder::encode`] queues one picture and
//! waits (at most [`FRAME_TIMEOUT`]) for its coded frame. Stateful
//! encoders without B-frames (bcm2835-codec, vicodec) return one coded
//! frame per picture, so nothing is held back.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::v4l_sys as vs;

use super::device::video_nodes;
use super::sys::{self, ControlInfo, MappedBuffers, PixFormat};

/// The longest an encoder or decoder may take for one frame before it is
/// called stuck.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

/// Four-character code of H.264 (Annex-B byte stream).
pub const H264: [u8; 4] = *b"H264";
/// Four-character code of vicodec's FWHT.
pub const FWHT: [u8; 4] = *b"FWHT";
/// Four-character code of planar 4:2:0 (I420), what pstream hands over.
pub const I420: [u8; 4] = *b"YU12";

/// Raw pictures queued per encoder.
const OUTPUT_BUFFERS: u32 = 4;
/// Coded-frame buffers per encoder.
const CAPTURE_BUFFERS: u32 = 4;

/// Errors of the memory-to-memory codecs, each naming the device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum M2mError {
    /// A system call on the device failed (the OS error is in the message:
    /// callers print one line).
    #[error("{device}: {action}: {source}")]
    Io {
        /// The device node.
        device: String,
        /// What was being done.
        action: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The device is not the codec asked for.
    #[error("{device}: {reason}")]
    Unsupported {
        /// The device node.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The device took too long or broke the protocol.
    #[error("{device}: {reason}")]
    Stuck {
        /// The device node.
        device: String,
        /// What it failed to do.
        reason: String,
    },
    /// No device offers the codec.
    #[error("no V4L2 memory-to-memory encoder offers {codec} on its CAPTURE queue ({searched})")]
    NotFound {
        /// The coded format looked for.
        codec: String,
        /// The nodes looked at.
        searched: String,
    },
}

fn fourcc_text(f: [u8; 4]) -> String {
    String::from_utf8_lossy(&f).trim_end().to_string()
}

/// The control IDs the encoder looks for (videodev2.h / v4l2-controls.h).
pub mod cid {
    use super::vs;
    /// V4L2_CID_MPEG_VIDEO_BITRATE_MODE (menu: 0 VBR, 1 CBR).
    pub const BITRATE_MODE: u32 = vs::V4L2_CID_MPEG_VIDEO_BITRATE_MODE;
    /// V4L2_CID_MPEG_VIDEO_BITRATE (bit/s).
    pub const BITRATE: u32 = vs::V4L2_CID_MPEG_VIDEO_BITRATE;
    /// V4L2_CID_MPEG_VIDEO_GOP_SIZE (pictures).
    pub const GOP_SIZE: u32 = vs::V4L2_CID_MPEG_VIDEO_GOP_SIZE;
    /// V4L2_CID_MPEG_VIDEO_H264_I_PERIOD (pictures between IDRs).
    pub const H264_I_PERIOD: u32 = vs::V4L2_CID_MPEG_VIDEO_H264_I_PERIOD;
    /// V4L2_CID_MPEG_VIDEO_H264_PROFILE (menu).
    pub const H264_PROFILE: u32 = vs::V4L2_CID_MPEG_VIDEO_H264_PROFILE;
    /// V4L2_CID_MPEG_VIDEO_H264_LEVEL (menu).
    pub const H264_LEVEL: u32 = vs::V4L2_CID_MPEG_VIDEO_H264_LEVEL;
    /// V4L2_CID_MPEG_VIDEO_HEADER_MODE (menu: 0 separate, 1 joined with the 1st frame).
    pub const HEADER_MODE: u32 = vs::V4L2_CID_MPEG_VIDEO_HEADER_MODE;
    /// V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER (bool: SPS/PPS before every IDR).
    pub const REPEAT_SEQ_HEADER: u32 = vs::V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER;
    /// V4L2_CID_MPEG_VIDEO_B_FRAMES.
    pub const B_FRAMES: u32 = vs::V4L2_CID_MPEG_VIDEO_B_FRAMES;
    /// V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME (button).
    pub const FORCE_KEY_FRAME: u32 = vs::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
}

/// V4L2_MPEG_VIDEO_BITRATE_MODE_CBR.
const BITRATE_MODE_CBR: i64 = 1;
/// V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME.
const HEADER_JOINED: i64 = 1;
/// V4L2_MPEG_VIDEO_H264_PROFILE_*, in the order pstream prefers them:
/// constrained baseline (what RTP peers and browsers all decode), baseline,
/// main, high.
const PROFILE_PREFERENCE: [(i64, &str); 4] = [
    (1, "constrained baseline"),
    (0, "baseline"),
    (2, "main"),
    (4, "high"),
];

/// One H.264 level of Table A-1: V4L2 menu index, name, max macroblocks
/// per second, max frame size in macroblocks, max bitrate (baseline, kbit/s).
struct Level {
    menu: i64,
    name: &'static str,
    mbps: u64,
    frame_mbs: u64,
    kbps: u64,
}

/// ITU-T H.264 Table A-1 with the V4L2_MPEG_VIDEO_H264_LEVEL_* menu
/// indices (1b, index 1, is skipped: it is never the smallest that fits).
const LEVELS: [Level; 16] = [
    Level {
        menu: 0,
        name: "1",
        mbps: 1_485,
        frame_mbs: 99,
        kbps: 64,
    },
    Level {
        menu: 2,
        name: "1.1",
        mbps: 3_000,
        frame_mbs: 396,
        kbps: 192,
    },
    Level {
        menu: 3,
        name: "1.2",
        mbps: 6_000,
        frame_mbs: 396,
        kbps: 384,
    },
    Level {
        menu: 4,
        name: "1.3",
        mbps: 11_880,
        frame_mbs: 396,
        kbps: 768,
    },
    Level {
        menu: 5,
        name: "2",
        mbps: 11_880,
        frame_mbs: 396,
        kbps: 2_000,
    },
    Level {
        menu: 6,
        name: "2.1",
        mbps: 19_800,
        frame_mbs: 792,
        kbps: 4_000,
    },
    Level {
        menu: 7,
        name: "2.2",
        mbps: 20_250,
        frame_mbs: 1_620,
        kbps: 4_000,
    },
    Level {
        menu: 8,
        name: "3",
        mbps: 40_500,
        frame_mbs: 1_620,
        kbps: 10_000,
    },
    Level {
        menu: 9,
        name: "3.1",
        mbps: 108_000,
        frame_mbs: 3_600,
        kbps: 14_000,
    },
    Level {
        menu: 10,
        name: "3.2",
        mbps: 216_000,
        frame_mbs: 5_120,
        kbps: 20_000,
    },
    Level {
        menu: 11,
        name: "4",
        mbps: 245_760,
        frame_mbs: 8_192,
        kbps: 20_000,
    },
    Level {
        menu: 12,
        name: "4.1",
        mbps: 245_760,
        frame_mbs: 8_192,
        kbps: 50_000,
    },
    Level {
        menu: 13,
        name: "4.2",
        mbps: 522_240,
        frame_mbs: 8_704,
        kbps: 50_000,
    },
    Level {
        menu: 14,
        name: "5",
        mbps: 589_824,
        frame_mbs: 22_080,
        kbps: 135_000,
    },
    Level {
        menu: 15,
        name: "5.1",
        mbps: 983_040,
        frame_mbs: 36_864,
        kbps: 240_000,
    },
    Level {
        menu: 16,
        name: "5.2",
        mbps: 2_073_600,
        frame_mbs: 36_864,
        kbps: 240_000,
    },
];

/// Settings of a [`M2mEncoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct M2mEncoderConfig {
    /// The coded format on the CAPTURE queue ([`H264`], [`FWHT`]).
    pub coded: [u8; 4],
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Nominal frame rate (VIDIOC_S_PARM on the OUTPUT queue, and the level).
    pub fps: f32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Pictures between key frames; 0 leaves the device's own period.
    pub keyint_frames: u32,
}

/// One control value the encoder sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedControl {
    /// Control ID.
    pub id: u32,
    /// What it is, for messages.
    pub name: &'static str,
    /// The value (a menu index for menus).
    pub value: i64,
    /// What the value means, for the log ("level 3.1", "constrained baseline").
    pub meaning: String,
}

/// What the encoder sets on a device, and what the device lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlan {
    /// Controls to set, in order.
    pub set: Vec<PlannedControl>,
    /// Settings the device has no control for (skipped, said once).
    pub missing: Vec<&'static str>,
    /// Whether key frames can be asked for (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME).
    pub force_key_frame: bool,
}

/// `value` clamped into the control's range, on its step grid.
fn fit(info: &ControlInfo, value: i64) -> i64 {
    let v = value.clamp(info.min, info.max);
    if info.step > 1 {
        let steps = (v - info.min + info.step / 2) / info.step;
        (info.min + steps * info.step).min(info.max)
    } else {
        v
    }
}

/// The smallest H.264 level whose limits (Table A-1) take `width`x`height`
/// at `fps` and `bitrate_bps`, among the menu entries the device accepts;
/// the device's highest when none fits.
pub fn h264_level(
    width: u32,
    height: u32,
    fps: f32,
    bitrate_bps: u32,
    menu: &[i64],
) -> Option<(i64, &'static str)> {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let mbps = (mbs as f64 * f64::from(fps.max(1.0))).ceil() as u64;
    let kbps = u64::from(bitrate_bps).div_ceil(1000);
    let offered = |l: &&Level| menu.contains(&l.menu);
    LEVELS
        .iter()
        .filter(offered)
        .find(|l| l.mbps >= mbps && l.frame_mbs >= mbs && l.kbps >= kbps)
        .or_else(|| LEVELS.iter().rev().find(|l| offered(l)))
        .map(|l| (l.menu, l.name))
}

/// Maps the configuration onto the controls `query` says a device has
/// (`query` is VIDIOC_QUERYCTRL/QUERYMENU on a real device, a table in the
/// tests). Settings without a control are listed in `missing`.
pub fn plan_controls(
    cfg: &M2mEncoderConfig,
    query: impl Fn(u32) -> Option<ControlInfo>,
) -> ControlPlan {
    let mut plan = ControlPlan::default();
    let h264 = cfg.coded == H264;
    let push = |plan: &mut ControlPlan, id, name, value, meaning: String| {
        plan.set.push(PlannedControl {
            id,
            name,
            value,
            meaning,
        })
    };
    match query(cid::BITRATE_MODE) {
        Some(info) if info.menu.contains(&BITRATE_MODE_CBR) => push(
            &mut plan,
            cid::BITRATE_MODE,
            "bitrate mode",
            BITRATE_MODE_CBR,
            "constant".into(),
        ),
        Some(_) => plan.missing.push("constant bitrate mode"),
        None => plan.missing.push("bitrate mode"),
    }
    match query(cid::BITRATE) {
        Some(info) => {
            let v = fit(&info, i64::from(cfg.bitrate_bps));
            push(&mut plan, cid::BITRATE, "bitrate", v, format!("{v} bit/s"));
        }
        None => plan.missing.push("bitrate"),
    }
    if cfg.keyint_frames > 0 {
        let mut any = false;
        // The Pi's codec takes the H.264 IDR period from H264_I_PERIOD
        // (older kernels have no GOP_SIZE there); others read GOP_SIZE.
        let ids: &[u32] = if h264 {
            &[cid::H264_I_PERIOD, cid::GOP_SIZE]
        } else {
            &[cid::GOP_SIZE]
        };
        for &id in ids {
            if let Some(info) = query(id) {
                let v = fit(&info, i64::from(cfg.keyint_frames));
                let name = if id == cid::GOP_SIZE {
                    "GOP size"
                } else {
                    "H.264 I-frame period"
                };
                push(&mut plan, id, name, v, format!("{v} pictures"));
                any = true;
            }
        }
        if !any {
            plan.missing.push("GOP size");
        }
    }
    if h264 {
        match query(cid::H264_PROFILE) {
            Some(info) => match PROFILE_PREFERENCE
                .iter()
                .find(|(p, _)| info.menu.contains(p))
            {
                Some(&(p, name)) => push(&mut plan, cid::H264_PROFILE, "profile", p, name.into()),
                None => plan.missing.push("a baseline, main or high profile"),
            },
            None => plan.missing.push("profile"),
        }
        match query(cid::H264_LEVEL) {
            Some(info) => {
                match h264_level(cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps, &info.menu) {
                    Some((v, name)) => push(
                        &mut plan,
                        cid::H264_LEVEL,
                        "level",
                        v,
                        format!("level {name}"),
                    ),
                    None => plan.missing.push("level"),
                }
            }
            None => plan.missing.push("level"),
        }
        // SPS and PPS in the same buffer as the IDR after them, and before
        // every IDR, so that a receiver can join at any key frame.
        if let Some(info) = query(cid::HEADER_MODE) {
            if info.menu.contains(&HEADER_JOINED) {
                push(
                    &mut plan,
                    cid::HEADER_MODE,
                    "header mode",
                    HEADER_JOINED,
                    "joined with the 1st frame".into(),
                );
            }
        }
        match query(cid::REPEAT_SEQ_HEADER) {
            Some(_) => push(
                &mut plan,
                cid::REPEAT_SEQ_HEADER,
                "repeat sequence header",
                1,
                "on".into(),
            ),
            None => plan.missing.push("repeat sequence header"),
        }
        // B-frames would reorder pictures: RTP and FLV here carry no DTS.
        if let Some(info) = query(cid::B_FRAMES) {
            if info.min == 0 && info.max > 0 {
                push(&mut plan, cid::B_FRAMES, "B-frames", 0, "none".into());
            }
        }
    }
    plan.force_key_frame = query(cid::FORCE_KEY_FRAME).is_some_and(|i| i.kind == sys::CTRL_BUTTON);
    if !plan.force_key_frame {
        plan.missing.push("force key frame");
    }
    plan
}

/// Whether `data` (Annex-B) holds a coded picture (NAL type 1 or 5), and
/// whether one of them is an IDR.
fn h264_picture(data: &[u8]) -> (bool, bool) {
    let (mut picture, mut idr) = (false, false);
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let t = data[i + 3] & 0x1f;
            picture |= t == 1 || t == 5;
            idr |= t == 5;
            i += 3;
        } else {
            i += 1;
        }
    }
    (picture, idr)
}

/// V4L2_FWHT_FL_I_FRAME in the flags of a FWHT frame header
/// (<linux/v4l2-controls.h>): vicodec marks its key frames there only.
const FWHT_FL_I_FRAME: u32 = 1 << 10;

/// Whether a FWHT frame (vicodec's `struct fwht_cframe_hdr`: two magic
/// words, version, width, height, then the big-endian flags) is a key frame.
fn fwht_key(data: &[u8]) -> bool {
    data.get(20..24)
        .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]) & FWHT_FL_I_FRAME != 0)
        .unwrap_or(false)
}

/// One coded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2mPacket {
    /// The coded bytes (Annex-B for H.264).
    pub data: Vec<u8>,
    /// A key frame (V4L2_BUF_FLAG_KEYFRAME, or an IDR in it).
    pub keyframe: bool,
}

/// The queue types and buffer flavour of an opened codec node.
struct Node {
    file: File,
    device: PathBuf,
    output: u32,
    capture: u32,
}

impl Node {
    fn open(device: &Path) -> Result<Node, M2mError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(device)
            .map_err(|e| io_error(device, "cannot open the device", e))?;
        let caps = sys::query_caps(file.as_raw_fd())
            .map_err(|e| io_error(device, "VIDIOC_QUERYCAP", e))?;
        let (output, capture) = if caps.caps & sys::CAP_M2M_MPLANE != 0 {
            (sys::OUTPUT_MPLANE, sys::CAPTURE_MPLANE)
        } else if caps.caps & sys::CAP_M2M_SPLANE != 0 {
            (sys::OUTPUT, sys::CAPTURE)
        } else {
            return Err(M2mError::Unsupported {
                device: device.display().to_string(),
                reason: format!(
                    "{} ({}) is not a memory-to-memory codec",
                    caps.card, caps.driver
                ),
            });
        };
        if caps.caps & sys::CAP_STREAMING == 0 {
            return Err(unsupported(device, "the codec has no streaming I/O".into()));
        }
        Ok(Node {
            file,
            device: device.to_path_buf(),
            output,
            capture,
        })
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn need(&self, buf_type: u32, fourcc: [u8; 4], side: &str) -> Result<(), M2mError> {
        let offered = sys::format_codes(self.fd(), buf_type);
        if offered.contains(&fourcc) {
            return Ok(());
        }
        let list: Vec<String> = offered.into_iter().map(fourcc_text).collect();
        Err(unsupported(
            &self.device,
            format!(
                "offers no {} on its {side} queue; it offers: {}",
                fourcc_text(fourcc),
                if list.is_empty() {
                    "nothing".to_string()
                } else {
                    list.join(", ")
                }
            ),
        ))
    }

    fn err(&self, action: impl Into<String>, e: io::Error) -> M2mError {
        io_error(&self.device, action, e)
    }

    fn stuck(&self, reason: impl Into<String>) -> M2mError {
        M2mError::Stuck {
            device: self.device.display().to_string(),
            reason: reason.into(),
        }
    }
}

fn io_error(device: &Path, action: impl Into<String>, source: io::Error) -> M2mError {
    M2mError::Io {
        device: device.display().to_string(),
        action: action.into(),
        source,
    }
}

fn unsupported(device: &Path, reason: String) -> M2mError {
    M2mError::Unsupported {
        device: device.display().to_string(),
        reason,
    }
}

/// Copies an I420 picture of `w`x`h` into a buffer laid out as `fmt`
/// (rows `bytesperline` apart, chroma planes after `fmt.height` luma rows);
/// returns the bytes used.
fn copy_i420_in(src: &[u8], w: usize, h: usize, fmt: &PixFormat, dst: &mut [u8]) -> usize {
    let bpl = (fmt.bytesperline as usize).max(w);
    let rows = (fmt.height as usize).max(h);
    let (cw, ch, cbpl, crows) = (w / 2, h / 2, bpl / 2, rows / 2);
    let planes = [
        (0, 0, w, h, bpl),
        (w * h, bpl * rows, cw, ch, cbpl),
        (w * h + cw * ch, bpl * rows + cbpl * crows, cw, ch, cbpl),
    ];
    for (src_at, dst_at, pw, ph, stride) in planes {
        for y in 0..ph {
            let s = &src[src_at + y * pw..src_at + (y + 1) * pw];
            let d = dst_at + y * stride;
            if let Some(d) = dst.get_mut(d..d + pw) {
                d.copy_from_slice(s);
            }
        }
    }
    (bpl * rows + 2 * cbpl * crows).min(dst.len())
}

/// Copies a decoded picture laid out as `fmt` out into tight I420.
fn copy_i420_out(src: &[u8], fmt: &PixFormat, w: usize, h: usize) -> Vec<u8> {
    let bpl = (fmt.bytesperline as usize).max(w);
    let rows = (fmt.height as usize).max(h);
    let (cw, ch, cbpl, crows) = (w / 2, h / 2, bpl / 2, rows / 2);
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let planes = [
        (0, 0, w, h, bpl),
        (w * h, bpl * rows, cw, ch, cbpl),
        (w * h + cw * ch, bpl * rows + cbpl * crows, cw, ch, cbpl),
    ];
    for (dst_at, src_at, pw, ph, stride) in planes {
        for y in 0..ph {
            let s = src_at + y * stride;
            if let Some(s) = src.get(s..s + pw) {
                out[dst_at + y * pw..dst_at + (y + 1) * pw].copy_from_slice(s);
            }
        }
    }
    out
}

/// Whether `events` from poll() say the device failed.
fn poll_failed(events: i16) -> bool {
    events & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

/// A V4L2 stateful encoder session: raw I420 pictures in, coded frames out.
///
/// A picture of another size drains the session (V4L2_ENC_CMD_STOP) and
/// starts a new one at that size, as the encoder interface requires.
pub struct M2mEncoder {
    // Buffers first: they are unmapped and freed before the node closes.
    session: Option<Session>,
    node_path: PathBuf,
    config: M2mEncoderConfig,
    plan: ControlPlan,
    key_pending: bool,
    /// Key frames asked for that the device could not be told about.
    keyframes_unsupported: u64,
    /// Sessions started (1 + restarts on size changes).
    sessions: u64,
}

struct Session {
    output: MappedBuffers,
    capture: MappedBuffers,
    out_fmt: PixFormat,
    free_output: Vec<usize>,
    /// Header bytes (SPS/PPS in a buffer of their own) for the next picture.
    headers: Vec<u8>,
    node: Node,
}

impl std::fmt::Debug for M2mEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2mEncoder")
            .field("device", &self.node_path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl M2mEncoder {
    /// Opens `device` and starts a session with `config`.
    pub fn open(device: &Path, config: M2mEncoderConfig) -> Result<M2mEncoder, M2mError> {
        let (session, plan) = Session::start(device, &config)?;
        Ok(M2mEncoder {
            session: Some(session),
            node_path: device.to_path_buf(),
            config,
            plan,
            key_pending: false,
            keyframes_unsupported: 0,
            sessions: 1,
        })
    }

    /// The device node.
    pub fn device(&self) -> &Path {
        &self.node_path
    }

    /// The controls set and the ones the device lacks.
    pub fn controls(&self) -> &ControlPlan {
        &self.plan
    }

    /// Key frame requests the device had no control for.
    pub fn keyframes_unsupported(&self) -> u64 {
        self.keyframes_unsupported
    }

    /// Sessions started: 1, plus one per size change.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Makes the next picture a key frame (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME);
    /// counted in [`keyframes_unsupported`](Self::keyframes_unsupported)
    /// when the device has no such control.
    pub fn request_keyframe(&mut self) {
        if self.plan.force_key_frame {
            self.key_pending = true;
        } else {
            self.keyframes_unsupported += 1;
        }
    }

    /// Encodes one I420 picture of `width`x`height`. Another size than the
    /// session's drains it and starts a new one (the drained frames, if the
    /// device held any, are returned first).
    pub fn encode(
        &mut self,
        i420: &[u8],
        width: u32,
        height: u32,
        timestamp: Duration,
    ) -> Result<Vec<M2mPacket>, M2mError> {
        let mut out = Vec::new();
        if (width, height) != (self.config.width, self.config.height) {
            if let Some(mut s) = self.session.take() {
                out.extend(s.drain()?);
            }
            self.config.width = width;
            self.config.height = height;
            let (session, plan) = Session::start(&self.node_path, &self.config)?;
            self.session = Some(session);
            self.plan = plan;
            self.sessions += 1;
            // A new session starts with a key frame anyway.
            self.key_pending = false;
        }
        let expected = (width as usize) * (height as usize) * 3 / 2;
        if i420.len() != expected {
            return Err(M2mError::Unsupported {
                device: self.node_path.display().to_string(),
                reason: format!(
                    "a {width}x{height} I420 picture is {expected} bytes, not {}",
                    i420.len()
                ),
            });
        }
        if self.session.is_none() {
            // After a drain: a fresh session.
            let (session, plan) = Session::start(&self.node_path, &self.config)?;
            self.session = Some(session);
            self.plan = plan;
            self.sessions += 1;
        }
        let Some(session) = self.session.as_mut() else {
            return Err(unsupported(&self.node_path, "no encoder session".into()));
        };
        if self.key_pending {
            sys::set_control(session.node.fd(), cid::FORCE_KEY_FRAME, 1)
                .map_err(|e| session.node.err("cannot force a key frame", e))?;
            self.key_pending = false;
        }
        out.push(session.encode(i420, width, height, timestamp, self.config.coded)?);
        Ok(out)
    }

    /// Drains the encoder (V4L2_ENC_CMD_STOP) and ends the session: the
    /// frames it still held.
    pub fn drain(&mut self) -> Result<Vec<M2mPacket>, M2mError> {
        match self.session.take() {
            Some(mut s) => s.drain(),
            None => Ok(Vec::new()),
        }
    }
}

impl Session {
    fn start(device: &Path, cfg: &M2mEncoderConfig) -> Result<(Session, ControlPlan), M2mError> {
        let node = Node::open(device)?;
        node.need(node.capture, cfg.coded, "CAPTURE")?;
        node.need(node.output, I420, "OUTPUT")?;
        let fd = node.fd();
        // The spec's order: the coded format first, then the raw one.
        let coded_size = (cfg.width * cfg.height * 3 / 2).max(256 * 1024);
        sys::set_codec_format(
            fd,
            node.capture,
            cfg.width,
            cfg.height,
            cfg.coded,
            coded_size,
        )
        .map_err(|e| {
            node.err(
                format!("cannot set the coded format {}", fourcc_text(cfg.coded)),
                e,
            )
        })?;
        let out_fmt = sys::set_codec_format(fd, node.output, cfg.width, cfg.height, I420, 0)
            .map_err(|e| node.err("cannot set the raw I420 format", e))?;
        if out_fmt.fourcc != I420 || out_fmt.width < cfg.width || out_fmt.height < cfg.height {
            return Err(unsupported(
                device,
                format!(
                    "cannot encode {}x{} I420: the device offers {}x{} {}",
                    cfg.width,
                    cfg.height,
                    out_fmt.width,
                    out_fmt.height,
                    fourcc_text(out_fmt.fourcc)
                ),
            ));
        }
        // The rate steers rate control; drivers without it refuse S_PARM.
        let fps = cfg.fps.max(1.0);
        let _ = sys::set_rate(
            fd,
            node.output,
            super::formats::Rate {
                num: (fps * 1000.0).round() as u32,
                den: 1000,
            },
        );
        let plan = plan_controls(cfg, |id| sys::query_control(fd, id));
        for c in &plan.set {
            sys::set_control(fd, c.id, c.value).map_err(|e| {
                node.err(
                    format!("cannot set the {} control to {}", c.name, c.meaning),
                    e,
                )
            })?;
        }
        let output = MappedBuffers::new(fd, node.output, OUTPUT_BUFFERS)
            .map_err(|e| node.err("cannot allocate the OUTPUT buffers", e))?;
        let mut capture = MappedBuffers::new(fd, node.capture, CAPTURE_BUFFERS)
            .map_err(|e| node.err("cannot allocate the CAPTURE buffers", e))?;
        for i in 0..capture.len() {
            capture
                .queue(i, 0, Duration::ZERO)
                .map_err(|e| node.err("cannot queue a CAPTURE buffer", e))?;
        }
        let mut output = output;
        output
            .stream_on()
            .map_err(|e| node.err("cannot start the OUTPUT queue", e))?;
        capture
            .stream_on()
            .map_err(|e| node.err("cannot start the CAPTURE queue", e))?;
        let free_output = (0..output.len()).rev().collect();
        Ok((
            Session {
                output,
                capture,
                out_fmt,
                free_output,
                headers: Vec::new(),
                node,
            },
            plan,
        ))
    }

    fn reclaim_output(&mut self) -> Result<(), M2mError> {
        while let Some(d) = self
            .output
            .dequeue()
            .map_err(|e| self.node.err("VIDIOC_DQBUF (OUTPUT)", e))?
        {
            self.free_output.push(d.index);
        }
        Ok(())
    }

    fn wait(&self, deadline: Instant, events: i16) -> Result<(), M2mError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = sys::poll(self.node.fd(), events, left.min(Duration::from_millis(100)))
            .map_err(|e| self.node.err("poll", e))?;
        if poll_failed(got) && got & (libc::POLLIN | libc::POLLOUT) == 0 {
            return Err(self.node.stuck("the device reported an error (POLLERR)"));
        }
        Ok(())
    }

    fn encode(
        &mut self,
        i420: &[u8],
        width: u32,
        height: u32,
        timestamp: Duration,
        coded: [u8; 4],
    ) -> Result<M2mPacket, M2mError> {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let index = loop {
            self.reclaim_output()?;
            if let Some(i) = self.free_output.pop() {
                break i;
            }
            if Instant::now() >= deadline {
                return Err(self.node.stuck(format!(
                    "no OUTPUT buffer came back within {} s",
                    FRAME_TIMEOUT.as_secs()
                )));
            }
            self.wait(deadline, libc::POLLOUT)?;
        };
        let fmt = self.out_fmt;
        let used = copy_i420_in(
            i420,
            width as usize,
            height as usize,
            &fmt,
            self.output.buffer_mut(index),
        );
        self.output
            .queue(index, used, timestamp)
            .map_err(|e| self.node.err("cannot queue a picture (VIDIOC_QBUF)", e))?;
        loop {
            self.reclaim_output()?;
            if let Some(d) = self
                .capture
                .dequeue()
                .map_err(|e| self.node.err("VIDIOC_DQBUF (CAPTURE)", e))?
            {
                let bytes = &self.capture.buffer(d.index)[..d.bytesused];
                self.headers.extend_from_slice(bytes);
                let flagged = d.flags & sys::BUF_FLAG_KEYFRAME != 0;
                self.capture
                    .queue(d.index, 0, Duration::ZERO)
                    .map_err(|e| self.node.err("cannot requeue a CAPTURE buffer", e))?;
                let (picture, key) = match coded {
                    H264 => h264_picture(&self.headers),
                    FWHT => (!self.headers.is_empty(), fwht_key(&self.headers)),
                    _ => (!self.headers.is_empty(), false),
                };
                if picture {
                    return Ok(M2mPacket {
                        data: std::mem::take(&mut self.headers),
                        keyframe: flagged || key,
                    });
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(self.node.stuck(format!(
                    "no coded frame within {} s of queueing a picture",
                    FRAME_TIMEOUT.as_secs()
                )));
            }
            self.wait(deadline, libc::POLLIN)?;
        }
    }

    fn drain(&mut self) -> Result<Vec<M2mPacket>, M2mError> {
        sys::encoder_command(self.node.fd(), sys::ENC_CMD_STOP)
            .map_err(|e| self.node.err("V4L2_ENC_CMD_STOP", e))?;
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let mut out = Vec::new();
        loop {
            match self.capture.dequeue() {
                Ok(Some(d)) => {
                    if d.bytesused > 0 {
                        out.push(M2mPacket {
                            data: self.capture.buffer(d.index)[..d.bytesused].to_vec(),
                            keyframe: d.flags & sys::BUF_FLAG_KEYFRAME != 0,
                        });
                    }
                    if d.flags & sys::BUF_FLAG_LAST != 0 {
                        return Ok(out);
                    }
                    self.capture
                        .queue(d.index, 0, Duration::ZERO)
                        .map_err(|e| self.node.err("cannot requeue a CAPTURE buffer", e))?;
                }
                Ok(None) => {}
                // After the last buffer DQBUF says EPIPE.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Ok(out),
                Err(e) => return Err(self.node.err("VIDIOC_DQBUF (CAPTURE) while draining", e)),
            }
            if Instant::now() >= deadline {
                return Err(self.node.stuck(format!(
                    "the drain did not end within {} s",
                    FRAME_TIMEOUT.as_secs()
                )));
            }
            self.wait(deadline, libc::POLLIN)?;
        }
    }
}

/// Whether `device` is a memory-to-memory encoder with `coded` on its
/// CAPTURE queue and I420 on its OUTPUT queue.
pub fn is_encoder_for(device: &Path, coded: [u8; 4]) -> bool {
    Node::open(device).is_ok_and(|n| {
        sys::format_codes(n.fd(), n.capture).contains(&coded)
            && sys::format_codes(n.fd(), n.output).contains(&I420)
    })
}

/// The first `/dev/video*` node that encodes I420 into `coded`.
pub fn find_encoder(coded: [u8; 4]) -> Result<PathBuf, M2mError> {
    let nodes = video_nodes();
    for node in &nodes {
        if is_encoder_for(node, coded) {
            return Ok(node.clone());
        }
    }
    let searched = if nodes.is_empty() {
        "there are no /dev/video* nodes".to_string()
    } else {
        let names: Vec<String> = nodes.iter().map(|p| p.display().to_string()).collect();
        format!("looked at {}", names.join(", "))
    };
    Err(M2mError::NotFound {
        codec: fourcc_text(coded),
        searched,
    })
}

/// A V4L2 stateful decoder session (Documentation/userspace-api/media/v4l/
/// dev-decoder.rst): coded frames in, I420 pictures out. The CAPTURE queue
/// is set up when the driver has parsed the stream's header and says so
/// with V4L2_EVENT_SOURCE_CHANGE.
pub struct M2mDecoder {
    capture: Option<(MappedBuffers, PixFormat)>,
    /// The picture size asked for: the decoded buffers may be taller
    /// (vicodec aligns the height to 16), the picture is cut to this.
    visible: (u32, u32),
    output: MappedBuffers,
    free_output: Vec<usize>,
    node: Node,
}

impl std::fmt::Debug for M2mDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2mDecoder")
            .field("device", &self.node.device)
            .finish_non_exhaustive()
    }
}

impl M2mDecoder {
    /// Opens `device` to decode `coded` frames of about `width`x`height`.
    pub fn open(
        device: &Path,
        coded: [u8; 4],
        width: u32,
        height: u32,
    ) -> Result<M2mDecoder, M2mError> {
        let node = Node::open(device)?;
        node.need(node.output, coded, "OUTPUT")?;
        let fd = node.fd();
        let size = (width * height * 3 / 2).max(256 * 1024) + 4096;
        sys::set_codec_format(fd, node.output, width, height, coded, size).map_err(|e| {
            node.err(
                format!("cannot set the coded format {}", fourcc_text(coded)),
                e,
            )
        })?;
        sys::subscribe_event(fd, sys::EVENT_SOURCE_CHANGE)
            .map_err(|e| node.err("cannot subscribe to V4L2_EVENT_SOURCE_CHANGE", e))?;
        let mut output = MappedBuffers::new(fd, node.output, OUTPUT_BUFFERS)
            .map_err(|e| node.err("cannot allocate the OUTPUT buffers", e))?;
        output
            .stream_on()
            .map_err(|e| node.err("cannot start the OUTPUT queue", e))?;
        let free_output = (0..output.len()).rev().collect();
        Ok(M2mDecoder {
            capture: None,
            visible: (width, height),
            output,
            free_output,
            node,
        })
    }

    /// The decoded picture size, once known.
    pub fn size(&self) -> Option<(u32, u32)> {
        let (w, h) = self.visible;
        self.capture
            .as_ref()
            .map(|(_, f)| (f.width.min(w), f.height.min(h)))
    }

    fn setup_capture(&mut self) -> Result<(), M2mError> {
        let fd = self.node.fd();
        let found = sys::get_codec_format(fd, self.node.capture)
            .map_err(|e| self.node.err("VIDIOC_G_FMT (CAPTURE)", e))?;
        let fmt = sys::set_codec_format(fd, self.node.capture, found.width, found.height, I420, 0)
            .map_err(|e| self.node.err("cannot set the decoded format to I420", e))?;
        if fmt.fourcc != I420 {
            return Err(unsupported(
                &self.node.device,
                format!("decodes to {}, not I420", fourcc_text(fmt.fourcc)),
            ));
        }
        // Drop the old buffers (a resolution change) before asking for new ones.
        self.capture = None;
        let mut cap = MappedBuffers::new(fd, self.node.capture, CAPTURE_BUFFERS)
            .map_err(|e| self.node.err("cannot allocate the CAPTURE buffers", e))?;
        for i in 0..cap.len() {
            cap.queue(i, 0, Duration::ZERO)
                .map_err(|e| self.node.err("cannot queue a CAPTURE buffer", e))?;
        }
        cap.stream_on()
            .map_err(|e| self.node.err("cannot start the CAPTURE queue", e))?;
        self.capture = Some((cap, fmt));
        Ok(())
    }

    /// Pictures ready now; with `last` set, also whether the drain ended.
    fn collect(&mut self, out: &mut Vec<Vec<u8>>) -> Result<bool, M2mError> {
        while let Some(ev) =
            sys::dequeue_event(self.node.fd()).map_err(|e| self.node.err("VIDIOC_DQEVENT", e))?
        {
            if ev == sys::EVENT_SOURCE_CHANGE {
                self.setup_capture()?;
            }
        }
        while let Some(d) = self
            .output
            .dequeue()
            .map_err(|e| self.node.err("VIDIOC_DQBUF (OUTPUT)", e))?
        {
            self.free_output.push(d.index);
        }
        let (vw, vh) = self.visible;
        let Some((cap, fmt)) = self.capture.as_mut() else {
            return Ok(false);
        };
        let (w, h) = (fmt.width.min(vw) as usize, fmt.height.min(vh) as usize);
        loop {
            let d = match cap.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Ok(true),
                Err(e) => return Err(self.node.err("VIDIOC_DQBUF (CAPTURE)", e)),
            };
            if d.bytesused > 0 && d.flags & sys::BUF_FLAG_ERROR == 0 {
                out.push(copy_i420_out(
                    &cap.buffer(d.index)[..d.bytesused],
                    fmt,
                    w,
                    h,
                ));
            }
            if d.flags & sys::BUF_FLAG_LAST != 0 {
                return Ok(true);
            }
            cap.queue(d.index, 0, Duration::ZERO)
                .map_err(|e| self.node.err("cannot requeue a CAPTURE buffer", e))?;
        }
    }

    /// Decodes one coded frame: the pictures that came out within
    /// [`FRAME_TIMEOUT`] (none while the decoder still holds it).
    pub fn decode(&mut self, frame: &[u8]) -> Result<Vec<Vec<u8>>, M2mError> {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let mut out = Vec::new();
        let index = loop {
            self.collect(&mut out)?;
            if let Some(i) = self.free_output.pop() {
                break i;
            }
            if Instant::now() >= deadline {
                return Err(self.node.stuck("no OUTPUT buffer came back"));
            }
            let _ = sys::poll(
                self.node.fd(),
                libc::POLLOUT | libc::POLLIN | libc::POLLPRI,
                Duration::from_millis(50),
            );
        };
        let buf = self.output.buffer_mut(index);
        if frame.len() > buf.len() {
            return Err(unsupported(
                &self.node.device,
                format!(
                    "a {}-byte frame does not fit a {}-byte buffer",
                    frame.len(),
                    buf.len()
                ),
            ));
        }
        buf[..frame.len()].copy_from_slice(frame);
        self.output
            .queue(index, frame.len(), Duration::ZERO)
            .map_err(|e| self.node.err("cannot queue a coded frame (VIDIOC_QBUF)", e))?;
        while out.is_empty() && Instant::now() < deadline {
            let _ = sys::poll(
                self.node.fd(),
                libc::POLLIN | libc::POLLPRI,
                Duration::from_millis(50),
            );
            self.collect(&mut out)?;
        }
        Ok(out)
    }

    /// Drains the decoder (V4L2_DEC_CMD_STOP): the pictures it still held.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>, M2mError> {
        let mut out = Vec::new();
        if self.capture.is_none() {
            return Ok(out);
        }
        sys::decoder_command(self.node.fd(), sys::DEC_CMD_STOP)
            .map_err(|e| self.node.err("V4L2_DEC_CMD_STOP", e))?;
        let deadline = Instant::now() + FRAME_TIMEOUT;
        while Instant::now() < deadline {
            if self.collect(&mut out)? {
                return Ok(out);
            }
            let _ = sys::poll(
                self.node.fd(),
                libc::POLLIN | libc::POLLPRI,
                Duration::from_millis(50),
            );
        }
        Err(self.node.stuck("the drain did not end"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(min: i64, max: i64, step: i64) -> ControlInfo {
        ControlInfo {
            kind: sys::CTRL_INTEGER,
            min,
            max,
            step,
            menu: Vec::new(),
        }
    }
    fn menu(min: i64, max: i64, skip: &[i64]) -> ControlInfo {
        ControlInfo {
            kind: sys::CTRL_MENU,
            min,
            max,
            step: 1,
            menu: (min..=max).filter(|i| !skip.contains(i)).collect(),
        }
    }
    fn boolean() -> ControlInfo {
        ControlInfo {
            kind: sys::CTRL_BOOLEAN,
            min: 0,
            max: 1,
            step: 1,
            menu: Vec::new(),
        }
    }
    fn button() -> ControlInfo {
        ControlInfo {
            kind: sys::CTRL_BUTTON,
            min: 0,
            max: 0,
            step: 0,
            menu: Vec::new(),
        }
    }

    /// The encoder controls of the Raspberry Pi kernel's bcm2835-codec
    /// (drivers/staging/vc04_services/bcm2835-codec/bcm2835-v4l2-codec.c,
    /// bcm2835_codec_open, ENCODE role): bitrate mode VBR..CBR, bitrate
    /// 25 kbit/s..25 Mbit/s in 25 kbit/s steps, header mode, repeat
    /// sequence header, H264_I_PERIOD, level 1.0..5.1, profile
    /// baseline/constrained baseline/main/high (extended masked out), min
    /// and max QP, force key frame, B-frames 0..0, GOP size.
    fn bcm2835_codec(id: u32) -> Option<ControlInfo> {
        Some(match id {
            cid::BITRATE_MODE => menu(0, 1, &[]),
            cid::BITRATE => int(25_000, 25_000_000, 25_000),
            cid::HEADER_MODE => menu(0, 1, &[]),
            cid::REPEAT_SEQ_HEADER => boolean(),
            cid::H264_I_PERIOD => int(0, 0x7fff_ffff, 1),
            cid::H264_LEVEL => menu(0, 15, &[]),
            cid::H264_PROFILE => menu(0, 4, &[3]),
            cid::FORCE_KEY_FRAME => button(),
            cid::B_FRAMES => int(0, 0, 1),
            cid::GOP_SIZE => int(0, 0x7fff_ffff, 1),
            _ => return None,
        })
    }

    /// vicodec's stateful encoder (drivers/media/test-drivers/vicodec):
    /// GOP size and the FWHT quantisers only.
    fn vicodec(id: u32) -> Option<ControlInfo> {
        match id {
            cid::GOP_SIZE => Some(int(1, 16, 1)),
            _ => None,
        }
    }

    fn cfg(coded: [u8; 4], w: u32, h: u32, fps: f32, bps: u32, keyint: u32) -> M2mEncoderConfig {
        M2mEncoderConfig {
            coded,
            width: w,
            height: h,
            fps,
            bitrate_bps: bps,
            keyint_frames: keyint,
        }
    }

    fn value(plan: &ControlPlan, id: u32) -> Option<i64> {
        plan.set.iter().find(|c| c.id == id).map(|c| c.value)
    }

    #[test]
    fn bcm2835_codec_gets_every_setting() {
        let plan = plan_controls(&cfg(H264, 1280, 720, 30.0, 2_500_000, 60), bcm2835_codec);
        assert!(plan.missing.is_empty(), "{:?}", plan.missing);
        assert!(plan.force_key_frame);
        assert_eq!(value(&plan, cid::BITRATE_MODE), Some(1), "CBR");
        assert_eq!(value(&plan, cid::BITRATE), Some(2_500_000));
        assert_eq!(value(&plan, cid::H264_I_PERIOD), Some(60));
        assert_eq!(value(&plan, cid::GOP_SIZE), Some(60));
        // Constrained baseline is menu index 1 and the Pi offers it.
        assert_eq!(value(&plan, cid::H264_PROFILE), Some(1));
        // 720p30: 3600 MBs x 30 = 108000 MB/s, exactly level 3.1 (index 9).
        assert_eq!(value(&plan, cid::H264_LEVEL), Some(9));
        assert_eq!(value(&plan, cid::HEADER_MODE), Some(1));
        assert_eq!(value(&plan, cid::REPEAT_SEQ_HEADER), Some(1));
        // B_FRAMES is 0..0 on the Pi: nothing to set.
        assert_eq!(value(&plan, cid::B_FRAMES), None);
    }

    #[test]
    fn bitrate_is_clamped_and_put_on_the_step_grid() {
        let plan = plan_controls(&cfg(H264, 640, 480, 30.0, 1_010_000, 0), bcm2835_codec);
        assert_eq!(value(&plan, cid::BITRATE), Some(1_000_000));
        let plan = plan_controls(&cfg(H264, 640, 480, 30.0, 10_000, 0), bcm2835_codec);
        assert_eq!(value(&plan, cid::BITRATE), Some(25_000));
        let plan = plan_controls(&cfg(H264, 640, 480, 30.0, 90_000_000, 0), bcm2835_codec);
        assert_eq!(value(&plan, cid::BITRATE), Some(25_000_000));
        // keyint 0: the device keeps its own period.
        assert_eq!(value(&plan, cid::H264_I_PERIOD), None);
    }

    #[test]
    fn levels_follow_table_a1() {
        let all: Vec<i64> = (0..=16).collect();
        let level = |w, h, fps, bps| h264_level(w, h, fps, bps, &all).map(|l| l.1);
        assert_eq!(level(176, 144, 15.0, 64_000), Some("1"));
        // 300 MBs x 30 = 9000 MB/s and 500 kbit/s fit level 1.3.
        assert_eq!(level(320, 240, 30.0, 500_000), Some("1.3"));
        assert_eq!(level(640, 480, 30.0, 2_500_000), Some("3"));
        assert_eq!(level(1280, 720, 30.0, 2_500_000), Some("3.1"));
        assert_eq!(level(1280, 720, 60.0, 2_500_000), Some("3.2"));
        assert_eq!(level(1920, 1080, 30.0, 8_000_000), Some("4"));
        // The bitrate alone can raise the level: 720p30 at 16 Mbit/s.
        assert_eq!(level(1280, 720, 30.0, 16_000_000), Some("3.2"));
        // Older Pi firmware stops at 4.2 (menu 0..13): 4K is clamped there.
        let pi_old: Vec<i64> = (0..=13).collect();
        assert_eq!(
            h264_level(3840, 2160, 30.0, 20_000_000, &pi_old),
            Some((13, "4.2"))
        );
    }

    #[test]
    fn a_device_without_constrained_baseline_gets_baseline() {
        let dev = |id| match id {
            cid::H264_PROFILE => Some(menu(0, 4, &[1, 3])),
            _ => bcm2835_codec(id),
        };
        let plan = plan_controls(&cfg(H264, 1280, 720, 30.0, 2_500_000, 60), dev);
        assert_eq!(value(&plan, cid::H264_PROFILE), Some(0));
        let dev = |id| match id {
            cid::H264_PROFILE => Some(menu(2, 4, &[3])),
            _ => bcm2835_codec(id),
        };
        let plan = plan_controls(&cfg(H264, 1280, 720, 30.0, 2_500_000, 60), dev);
        assert_eq!(value(&plan, cid::H264_PROFILE), Some(2), "main");
    }

    #[test]
    fn vicodec_names_what_it_lacks() {
        let plan = plan_controls(&cfg(FWHT, 640, 360, 30.0, 2_500_000, 10), vicodec);
        assert_eq!(value(&plan, cid::GOP_SIZE), Some(10));
        assert_eq!(plan.set.len(), 1, "{:?}", plan.set);
        assert!(!plan.force_key_frame);
        assert_eq!(
            plan.missing,
            vec!["bitrate mode", "bitrate", "force key frame"]
        );
        // An H.264 stream on a device with none of the controls: all named.
        let plan = plan_controls(&cfg(H264, 640, 360, 30.0, 2_500_000, 10), |_| None);
        assert_eq!(
            plan.missing,
            vec![
                "bitrate mode",
                "bitrate",
                "GOP size",
                "profile",
                "level",
                "repeat sequence header",
                "force key frame"
            ]
        );
    }

    #[test]
    fn pictures_are_found_in_annex_b() {
        let sps_pps = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3];
        assert_eq!(h264_picture(&sps_pps), (false, false));
        let mut idr = sps_pps.to_vec();
        idr.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        assert_eq!(h264_picture(&idr), (true, true));
        assert_eq!(h264_picture(&[0, 0, 0, 1, 0x41, 0x9a]), (true, false));
    }

    #[test]
    fn fwht_key_frames_are_read_from_the_header() {
        let mut hdr = vec![0u8; 44];
        hdr[20..24].copy_from_slice(&(FWHT_FL_I_FRAME | 0x0002_0000).to_be_bytes());
        assert!(fwht_key(&hdr));
        hdr[20..24].copy_from_slice(&0x0002_0000u32.to_be_bytes());
        assert!(!fwht_key(&hdr));
        assert!(!fwht_key(&hdr[..10]));
    }

    #[test]
    fn i420_round_trips_through_a_padded_layout() {
        let (w, h) = (6usize, 4usize);
        let src: Vec<u8> = (0..w * h * 3 / 2).map(|i| i as u8).collect();
        let fmt = PixFormat {
            width: 8,
            height: 6,
            fourcc: I420,
            bytesperline: 8,
            sizeimage: 72,
        };
        let mut buf = vec![0u8; 72];
        assert_eq!(copy_i420_in(&src, w, h, &fmt, &mut buf), 72);
        assert_eq!(copy_i420_out(&buf, &fmt, w, h), src);
    }
}
