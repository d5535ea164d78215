//! Opening a device node, checking what it is, and listing all of them.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::formats::{describe_offers, offer_groups, FormatInfo};
use super::sys::{self, Caps};
use crate::CaptureError;

/// Which side of a device a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Frames come from the device (a camera).
    Capture,
    /// Frames go to the device (a loopback or output node).
    Output,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Capture => "capture",
            Direction::Output => "output",
        }
    }

    fn cap_bit(self) -> u32 {
        match self {
            Direction::Capture => sys::CAP_CAPTURE,
            Direction::Output => sys::CAP_OUTPUT,
        }
    }

    /// The V4L2 buffer type of this direction.
    pub fn buf_type(self) -> u32 {
        match self {
            Direction::Capture => sys::CAPTURE,
            Direction::Output => sys::OUTPUT,
        }
    }
}

/// The `/dev/video*` nodes present, in numeric order.
pub fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

fn present_devices() -> String {
    let nodes = video_nodes();
    if nodes.is_empty() {
        "there are no /dev/video* devices on this machine".to_owned()
    } else {
        let names: Vec<String> = nodes.iter().map(|p| p.display().to_string()).collect();
        format!("devices present: {}", names.join(", "))
    }
}

/// Turns an OS error from `action` on the device into the matching error.
pub fn device_error(spec: &str, device: &Path, action: &'static str, e: io::Error) -> CaptureError {
    let device_s = device.display().to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENXIO) => CaptureError::DeviceMissing {
            spec: spec.to_owned(),
            device: device_s,
            present: present_devices(),
        },
        Some(libc::EBUSY) => CaptureError::DeviceBusy {
            spec: spec.to_owned(),
            device: device_s,
        },
        Some(libc::ENODEV) => CaptureError::DeviceGone {
            spec: spec.to_owned(),
            device: device_s,
        },
        _ => CaptureError::io(spec, action, e),
    }
}

/// An open device node, known to support `direction` with streaming I/O.
#[derive(Debug)]
pub struct OpenDevice {
    /// The node, opened read-write and non-blocking.
    pub file: File,
    /// What QUERYCAP said.
    pub caps: Caps,
    /// The device path.
    pub path: PathBuf,
}

fn kinds(caps: u32) -> String {
    let mut has = Vec::new();
    for (bit, name) in [
        (sys::CAP_CAPTURE, "video capture"),
        (sys::CAP_OUTPUT, "video output"),
        (
            sys::CAP_CAPTURE_MPLANE,
            "multi-planar capture (not supported)",
        ),
        (
            sys::CAP_OUTPUT_MPLANE,
            "multi-planar output (not supported)",
        ),
        (sys::CAP_M2M, "memory-to-memory codec"),
    ] {
        if caps & bit != 0 {
            has.push(name);
        }
    }
    if has.is_empty() {
        "neither capture nor output (metadata, radio or VBI node)".to_owned()
    } else {
        has.join(", ")
    }
}

/// Opens `path` and checks it can stream in `direction`.
pub fn open_device(
    spec: &str,
    path: &Path,
    direction: Direction,
) -> Result<OpenDevice, CaptureError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| device_error(spec, path, "cannot open the device", e))?;
    let device = path.display().to_string();
    let caps = match sys::query_caps(file.as_raw_fd()) {
        Ok(c) => c,
        // ENOTTY: the kernel's answer for a file that takes no V4L2 ioctls;
        // ENOSYS: qemu-user's, which passes only the ioctls it knows.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::ENOSYS)) => {
            return Err(CaptureError::unsupported(
                spec,
                format!("{device} is not a V4L2 device (VIDIOC_QUERYCAP refused)"),
            ))
        }
        Err(e) => return Err(device_error(spec, path, "cannot query the device", e)),
    };
    if caps.caps & direction.cap_bit() == 0 || caps.caps & sys::CAP_M2M != 0 {
        let loopback = caps.driver.contains("loopback");
        let hint = match (loopback, direction) {
            (true, Direction::Capture) => {
                " (a v4l2loopback device with exclusive_caps=1 offers capture only while a program writes to it)"
            }
            (true, Direction::Output) => {
                " (a v4l2loopback device with exclusive_caps=1 offers output only until a writer has set it up)"
            }
            _ => "",
        };
        return Err(CaptureError::WrongDeviceKind {
            spec: spec.to_owned(),
            device,
            wanted: direction.word(),
            found: format!(
                "{} (driver {}) is {}{hint}",
                caps.card,
                caps.driver,
                kinds(caps.caps)
            ),
        });
    }
    if caps.caps & sys::CAP_STREAMING == 0 {
        return Err(CaptureError::unsupported(
            spec,
            format!(
                "{device} ({}) has no streaming I/O; pstream needs mmap streaming",
                caps.card
            ),
        ));
    }
    Ok(OpenDevice {
        file,
        caps,
        path: path.to_owned(),
    })
}

impl OpenDevice {
    /// The formats this device offers in `direction`.
    pub fn formats(&self, direction: Direction) -> Vec<FormatInfo> {
        sys::enum_formats(self.file.as_raw_fd(), direction.buf_type())
    }
}

/// One video device as `pstream devices` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2DeviceInfo {
    /// The device node.
    pub path: PathBuf,
    /// Driver name, empty when the node could not be opened.
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Whether the node captures video (single-planar).
    pub capture: bool,
    /// Whether the node outputs video (single-planar).
    pub output: bool,
    /// Capture formats, then output formats, with sizes and rates.
    pub formats: Vec<FormatInfo>,
    /// Why the node could not be opened or queried, if it could not.
    pub error: Option<String>,
}

impl V4l2DeviceInfo {
    /// "capture", "output", "capture+output" or "other".
    pub fn kind(&self) -> &'static str {
        match (self.capture, self.output) {
            (true, true) => "capture+output",
            (true, false) => "capture",
            (false, true) => "output",
            (false, false) => "other",
        }
    }

    /// The spec that opens this device (`v4l2:/dev/video0`).
    pub fn spec(&self) -> String {
        format!("v4l2:{}", self.path.display())
    }

    /// The formats, one line per group with the same sizes (or why the node could not be read).
    pub fn format_lines(&self) -> Vec<String> {
        match &self.error {
            Some(e) => vec![format!("({e})")],
            None => offer_groups(&self.formats),
        }
    }

    /// The formats on one line (or the error).
    pub fn formats_line(&self) -> String {
        match &self.error {
            Some(e) => format!("({e})"),
            None => describe_offers(&self.formats),
        }
    }
}

impl fmt::Display for V4l2DeviceInfo {
    /// One header line (spec, kind, card, driver), then one indented line per
    /// group of formats with the same sizes, and one naming those pstream cannot read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<18} {:<14} {} [{}]",
            self.spec(),
            self.kind(),
            self.card,
            self.driver
        )?;
        for line in self.format_lines() {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// Describes one node; never fails (a node that cannot be opened says why).
pub fn describe_node(path: &Path) -> V4l2DeviceInfo {
    let mut info = V4l2DeviceInfo {
        path: path.to_owned(),
        driver: String::new(),
        card: String::new(),
        capture: false,
        output: false,
        formats: Vec::new(),
        error: None,
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            info.error = Some(format!("cannot open: {e}"));
            return info;
        }
    };
    let fd = file.as_raw_fd();
    match sys::query_caps(fd) {
        Ok(caps) => {
            info.capture = caps.caps & sys::CAP_CAPTURE != 0;
            info.output = caps.caps & sys::CAP_OUTPUT != 0;
            info.driver = caps.driver;
            info.card = caps.card;
            if info.capture {
                info.formats.extend(sys::enum_formats(fd, sys::CAPTURE));
            }
            if info.output {
                info.formats.extend(sys::enum_formats(fd, sys::OUTPUT));
            }
        }
        Err(e) => info.error = Some(format!("cannot query: {e}")),
    }
    info
}

/// Every `/dev/video*` node with its driver, card, direction and formats.
pub fn list_devices() -> Vec<V4l2DeviceInfo> {
    video_nodes().iter().map(|p| describe_node(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::formats::{Rate, Rates, Sizes};
    use super::*;

    #[test]
    fn a_missing_device_is_named_with_what_exists() {
        let path = Path::new("/dev/video-pstream-missing");
        let e = open_device("v4l2:/dev/video-pstream-missing", path, Direction::Capture)
            .expect_err("missing");
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "v4l2:/dev/video-pstream-missing: no such device /dev/video-pstream-missing; "
            ),
            "{msg}"
        );
        assert!(
            msg.contains("devices present: /dev/video")
                || msg.contains("no /dev/video* devices on this machine"),
            "{msg}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_device_is_refused() {
        let path = std::env::temp_dir().join(format!("pstream-notdev-{}", std::process::id()));
        std::fs::write(&path, b"x").expect("temp file");
        let spec = format!("v4l2:{}", path.display());
        let e = open_device(&spec, &path, Direction::Capture).expect_err("not a device");
        assert!(e.to_string().contains("is not a V4L2 device"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn errors_map_by_errno() {
        let p = Path::new("/dev/video7");
        let busy = device_error(
            "v4l2:/dev/video7",
            p,
            "x",
            io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert_eq!(
            busy.to_string(),
            "v4l2:/dev/video7: /dev/video7 is busy: another program is using it; \
             close that program or pick another device"
        );
        let gone = device_error(
            "v4l2:/dev/video7",
            p,
            "x",
            io::Error::from_raw_os_error(libc::ENODEV),
        );
        assert_eq!(
            gone.to_string(),
            "v4l2:/dev/video7: /dev/video7 disappeared mid-stream (unplugged?); stopping"
        );
        let other = device_error(
            "v4l2:/dev/video7",
            p,
            "cannot open the device",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        // The OS error is the source, not part of the message: the log line
        // (one_line) names it.
        assert_eq!(
            other.to_string(),
            "v4l2:/dev/video7: cannot open the device"
        );
        assert!(pstream_core::error::one_line(&other)
            .starts_with("v4l2:/dev/video7: cannot open the device: Permission denied"));
    }

    #[test]
    fn kinds_describe_the_node() {
        assert_eq!(kinds(sys::CAP_CAPTURE), "video capture");
        assert_eq!(
            kinds(sys::CAP_CAPTURE_MPLANE),
            "multi-planar capture (not supported)"
        );
        assert!(kinds(0).starts_with("neither"));
    }

    #[test]
    fn device_info_renders_a_header_and_one_line_per_format() {
        let info = V4l2DeviceInfo {
            path: PathBuf::from("/dev/video0"),
            driver: "vivid".into(),
            card: "vivid".into(),
            capture: true,
            output: false,
            formats: vec![FormatInfo {
                fourcc: *b"YUYV",
                description: "YUYV 4:2:2".into(),
                sizes: Some(Sizes::Discrete(vec![(
                    640,
                    480,
                    Rates::Discrete(vec![Rate { num: 30, den: 1 }, Rate { num: 15, den: 1 }]),
                )])),
            }],
            error: None,
        };
        assert_eq!(
            info.to_string(),
            "v4l2:/dev/video0   capture        vivid [vivid]\n    YUYV 640x480@30/15"
        );
        assert_eq!(info.formats_line(), "YUYV 640x480@30/15");
        assert_eq!(info.kind(), "capture");
    }

    #[test]
    fn listing_works_without_devices() {
        // Whatever this machine has, every entry names a /dev/video node.
        for d in list_devices() {
            assert!(d.path.display().to_string().starts_with("/dev/video"));
        }
    }
}
