//! The V4L2 ioctls pstream uses, over the v4l crate's kernel-header bindings.
//!
//! The v4l crate's own wrappers convert driver values with `unwrap`/`expect`
//! (an unknown colorspace or a non-UTF-8 card name would panic), its output
//! stream dequeues without waiting and its drop panics when STREAMOFF fails,
//! so pstream talks to the device through these few checked calls instead.
//! All `unsafe` of the V4L2 backend lives in this file.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use v4l::v4l2::vidioc;
use v4l::v4l_sys as sys;

use super::formats::{FormatInfo, Rate, Rates, Sizes};

/// Buffer type of a capture stream (single-planar).
pub const CAPTURE: u32 = sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;
/// Buffer type of an output stream (single-planar).
pub const OUTPUT: u32 = sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT;

/// Capability bit: single-planar video capture.
pub const CAP_CAPTURE: u32 = sys::V4L2_CAP_VIDEO_CAPTURE;
/// Capability bit: single-planar video output.
pub const CAP_OUTPUT: u32 = sys::V4L2_CAP_VIDEO_OUTPUT;
/// Capability bit: multi-planar capture.
pub const CAP_CAPTURE_MPLANE: u32 = sys::V4L2_CAP_VIDEO_CAPTURE_MPLANE;
/// Capability bit: multi-planar output.
pub const CAP_OUTPUT_MPLANE: u32 = sys::V4L2_CAP_VIDEO_OUTPUT_MPLANE;
/// Capability bit: memory-to-memory devices (codecs, scalers), not cameras.
pub const CAP_M2M: u32 = sys::V4L2_CAP_VIDEO_M2M | sys::V4L2_CAP_VIDEO_M2M_MPLANE;
/// Capability bit: read()/write() I/O.
pub const CAP_READWRITE: u32 = sys::V4L2_CAP_READWRITE;
/// Capability bit: streaming I/O (mmap).
pub const CAP_STREAMING: u32 = sys::V4L2_CAP_STREAMING;

/// Buffer flag: the driver marked the data as corrupt.
pub const BUF_FLAG_ERROR: u32 = sys::V4L2_BUF_FLAG_ERROR;
/// Buffer flags: which clock the timestamp is on.
const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;

fn xioctl<T>(fd: RawFd, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: `arg` is the structure this request reads and writes
        // (callers pair each request with its kernel type), valid for the call.
        let r =
            unsafe { v4l::v4l2::ioctl(fd, request, arg as *mut T as *mut std::os::raw::c_void) };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn zeroed<T>() -> T {
    // SAFETY: only used for the plain-old-data kernel structs of videodev2.h,
    // for which all-zero bytes are a valid (and the documented initial) value.
    unsafe { std::mem::zeroed() }
}

/// Text from a fixed-size, NUL-padded kernel string.
fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What VIDIOC_QUERYCAP says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Driver name ("uvcvideo", "vivid", "v4l2 loopback").
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Bus.
    pub bus: String,
    /// This node's capability bits (device_caps when the driver gives them).
    pub caps: u32,
}

/// VIDIOC_QUERYCAP.
pub fn query_caps(fd: RawFd) -> io::Result<Caps> {
    let mut c: sys::v4l2_capability = zeroed();
    xioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut c)?;
    let caps = if c.capabilities & sys::V4L2_CAP_DEVICE_CAPS != 0 {
        c.device_caps
    } else {
        c.capabilities
    };
    Ok(Caps {
        driver: c_text(&c.driver),
        card: c_text(&c.card),
        bus: c_text(&c.bus_info),
        caps,
    })
}

/// Enumerates the formats of `buf_type`, with their sizes and rates.
/// Index loops are bounded so a misbehaving driver cannot spin us forever.
pub fn enum_formats(fd: RawFd, buf_type: u32) -> Vec<FormatInfo> {
    let mut out = Vec::new();
    for index in 0..64 {
        let mut d: sys::v4l2_fmtdesc = zeroed();
        d.index = index;
        d.type_ = buf_type;
        if xioctl(fd, vidioc::VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        let fourcc = d.pixelformat.to_le_bytes();
        out.push(FormatInfo {
            fourcc,
            description: c_text(&d.description),
            sizes: enum_sizes(fd, d.pixelformat),
        });
    }
    out
}

fn enum_sizes(fd: RawFd, pixelformat: u32) -> Option<Sizes> {
    let mut list = Vec::new();
    for index in 0..256 {
        let mut s: sys::v4l2_frmsizeenum = zeroed();
        s.index = index;
        s.pixel_format = pixelformat;
        if xioctl(fd, vidioc::VIDIOC_ENUM_FRAMESIZES, &mut s).is_err() {
            break;
        }
        match s.type_ {
            sys::v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE => {
                // SAFETY: the driver filled the `discrete` member for this type.
                let d = unsafe { s.__bindgen_anon_1.discrete };
                let rates = enum_rates(fd, pixelformat, d.width, d.height);
                list.push((d.width, d.height, rates));
            }
            _ => {
                // SAFETY: the `stepwise` member for STEPWISE and CONTINUOUS.
                let st = unsafe { s.__bindgen_anon_1.stepwise };
                let rates = enum_rates(fd, pixelformat, st.max_width, st.max_height);
                return Some(Sizes::Stepwise {
                    min: (st.min_width, st.min_height),
                    max: (st.max_width, st.max_height),
                    step: (st.step_width.max(1), st.step_height.max(1)),
                    rates,
                });
            }
        }
    }
    (!list.is_empty()).then_some(Sizes::Discrete(list))
}

/// Enumerates the frame rates of one format at one size.
pub fn enum_rates(fd: RawFd, pixelformat: u32, width: u32, height: u32) -> Rates {
    let mut list = Vec::new();
    for index in 0..256 {
        let mut i: sys::v4l2_frmivalenum = zeroed();
        i.index = index;
        i.pixel_format = pixelformat;
        i.width = width;
        i.height = height;
        if xioctl(fd, vidioc::VIDIOC_ENUM_FRAMEINTERVALS, &mut i).is_err() {
            break;
        }
        if i.type_ == sys::v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE {
            // SAFETY: the `discrete` member for this type.
            let d = unsafe { i.__bindgen_anon_1.discrete };
            list.push(Rate::from_interval(d.numerator, d.denominator));
        } else {
            // SAFETY: the `stepwise` member for STEPWISE and CONTINUOUS.
            let st = unsafe { i.__bindgen_anon_1.stepwise };
            // The longest interval is the slowest rate.
            return Rates::Range {
                min: Rate::from_interval(st.max.numerator, st.max.denominator),
                max: Rate::from_interval(st.min.numerator, st.min.denominator),
            };
        }
    }
    if list.is_empty() {
        Rates::Unknown
    } else {
        Rates::Discrete(list)
    }
}

/// The single-planar format a device settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Four-character code.
    pub fourcc: [u8; 4],
    /// Bytes per row of the first plane (0 for compressed formats).
    pub bytesperline: u32,
    /// Bytes a whole picture takes (the most for compressed ones).
    pub sizeimage: u32,
}

/// VIDIOC_S_FMT (progressive), returning what the driver chose.
pub fn set_format(
    fd: RawFd,
    buf_type: u32,
    width: u32,
    height: u32,
    fourcc: [u8; 4],
) -> io::Result<PixFormat> {
    let mut f: sys::v4l2_format = zeroed();
    f.type_ = buf_type;
    // Writing a union member is safe; the single-planar types use `pix`.
    f.fmt.pix.width = width;
    f.fmt.pix.height = height;
    f.fmt.pix.pixelformat = u32::from_le_bytes(fourcc);
    f.fmt.pix.field = sys::v4l2_field_V4L2_FIELD_NONE;
    xioctl(fd, vidioc::VIDIOC_S_FMT, &mut f)?;
    // SAFETY: single-planar types answer in the `pix` member.
    let p = unsafe { f.fmt.pix };
    Ok(PixFormat {
        width: p.width,
        height: p.height,
        fourcc: p.pixelformat.to_le_bytes(),
        bytesperline: p.bytesperline,
        sizeimage: p.sizeimage,
    })
}

/// VIDIOC_S_PARM with a frame interval of 1/`rate`; returns the rate the
/// driver took, or `None` when the driver has no frame-rate control.
pub fn set_rate(fd: RawFd, buf_type: u32, rate: Rate) -> io::Result<Option<Rate>> {
    let mut p: sys::v4l2_streamparm = zeroed();
    p.type_ = buf_type;
    // The capture and output members share their layout up to timeperframe.
    p.parm.capture.timeperframe.numerator = rate.den;
    p.parm.capture.timeperframe.denominator = rate.num;
    match xioctl(fd, vidioc::VIDIOC_S_PARM, &mut p) {
        Ok(()) => {}
        // Drivers without frame-rate control refuse S_PARM.
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOTTY) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    }
    // SAFETY: as above, reading back what the driver wrote.
    let (cap, t) = unsafe { (p.parm.capture.capability, p.parm.capture.timeperframe) };
    if cap & sys::V4L2_CAP_TIMEPERFRAME == 0 || t.numerator == 0 || t.denominator == 0 {
        return Ok(None);
    }
    Ok(Some(Rate::from_interval(t.numerator, t.denominator)))
}

/// A buffer the driver handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Which buffer.
    pub index: usize,
    /// Bytes of data in it.
    pub bytesused: usize,
    /// V4L2_BUF_FLAG_*.
    pub flags: u32,
    /// The driver's timestamp.
    pub timestamp: Duration,
    /// The driver's frame counter.
    pub sequence: u32,
}

impl Dequeued {
    /// Whether the timestamp is on CLOCK_MONOTONIC.
    pub fn monotonic(&self) -> bool {
        self.flags & BUF_FLAG_TIMESTAMP_MASK == sys::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
    }
}

/// Driver buffers mapped into this process, for one buffer type.
///
/// Streaming is switched off and the buffers unmapped and freed on drop;
/// errors there are ignored (an unplugged device answers ENODEV to all of it).
#[derive(Debug)]
pub struct MappedBuffers {
    fd: RawFd,
    buf_type: u32,
    maps: Vec<(*mut u8, usize)>,
    streaming: bool,
}

// SAFETY: the mappings are owned by this value alone; the raw pointers are
// only dereferenced through `&self`/`&mut self`.
unsafe impl Send for MappedBuffers {}

impl MappedBuffers {
    /// VIDIOC_REQBUFS for `count` mmap buffers, then maps each.
    /// `fd` must stay open for the life of the value.
    pub fn new(fd: RawFd, buf_type: u32, count: u32) -> io::Result<Self> {
        let mut req: sys::v4l2_requestbuffers = zeroed();
        req.count = count;
        req.type_ = buf_type;
        req.memory = sys::v4l2_memory_V4L2_MEMORY_MMAP;
        xioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req)?;
        let mut out = MappedBuffers {
            fd,
            buf_type,
            maps: Vec::new(),
            streaming: false,
        };
        if req.count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the driver granted no buffers",
            ));
        }
        let mplane = is_mplane(buf_type);
        for index in 0..req.count.min(32) {
            let mut plane: sys::v4l2_plane = zeroed();
            let mut b = out.desc();
            b.index = index;
            if mplane {
                // One plane: the kernel writes its length and offset here.
                b.m.planes = &mut plane;
                b.length = 1;
            }
            xioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut b)?;
            let (len, offset) = if mplane {
                // SAFETY: `mem_offset` is the member MMAP planes use.
                (plane.length as usize, unsafe { plane.m.mem_offset })
            } else {
                // SAFETY: `offset` is the member MMAP buffers use.
                (b.length as usize, unsafe { b.m.offset })
            };
            // SAFETY: mapping the driver buffer at the offset QUERYBUF gave;
            // the result is checked before use.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            out.maps.push((ptr.cast::<u8>(), len));
        }
        Ok(out)
    }

    fn desc(&self) -> sys::v4l2_buffer {
        let mut b: sys::v4l2_buffer = zeroed();
        b.type_ = self.buf_type;
        b.memory = sys::v4l2_memory_V4L2_MEMORY_MMAP;
        b
    }

    /// Number of buffers.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// The bytes of buffer `index`.
    pub fn buffer(&self, index: usize) -> &[u8] {
        let (ptr, len) = self.maps[index];
        // SAFETY: a live mapping of `len` bytes owned by self; the driver
        // does not write a buffer while user space holds it (dequeued).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// The bytes of buffer `index`, to fill before queueing it for output.
    pub fn buffer_mut(&mut self, index: usize) -> &mut [u8] {
        let (ptr, len) = self.maps[index];
        // SAFETY: as in `buffer`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// VIDIOC_QBUF; `bytesused` and `timestamp` matter for output buffers.
    pub fn queue(&mut self, index: usize, bytesused: usize, timestamp: Duration) -> io::Result<()> {
        let mut plane: sys::v4l2_plane = zeroed();
        let mut b = self.desc();
        b.index = index as u32;
        b.bytesused = bytesused as u32;
        b.field = sys::v4l2_field_V4L2_FIELD_NONE;
        if is_mplane(self.buf_type) {
            plane.bytesused = bytesused as u32;
            plane.length = self.maps.get(index).map_or(0, |m| m.1 as u32);
            b.m.planes = &mut plane;
            b.length = 1;
        }
        // The field types are the C headers' time_t/suseconds_t, not the libc
        // crate's: 64-bit with musl 1.2 on 32-bit ARM (the ARMv6 build) where
        // the libc crate still says 32.
        b.timestamp.tv_sec = timestamp.as_secs() as _;
        b.timestamp.tv_usec = timestamp.subsec_micros() as _;
        xioctl(self.fd, vidioc::VIDIOC_QBUF, &mut b)
    }

    /// VIDIOC_DQBUF without blocking: `Ok(None)` when no buffer is ready.
    pub fn dequeue(&mut self) -> io::Result<Option<Dequeued>> {
        let mut plane: sys::v4l2_plane = zeroed();
        let mut b = self.desc();
        let mplane = is_mplane(self.buf_type);
        if mplane {
            b.m.planes = &mut plane;
            b.length = 1;
        }
        match xioctl(self.fd, vidioc::VIDIOC_DQBUF, &mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
        let index = b.index as usize;
        if index >= self.maps.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the driver returned buffer {index} of {}", self.maps.len()),
            ));
        }
        let secs = u64::try_from(b.timestamp.tv_sec).unwrap_or(0);
        let micros = u64::try_from(b.timestamp.tv_usec).unwrap_or(0).min(999_999);
        let used = if mplane { plane.bytesused } else { b.bytesused };
        Ok(Some(Dequeued {
            index,
            bytesused: (used as usize).min(self.maps[index].1),
            flags: b.flags,
            timestamp: Duration::from_secs(secs) + Duration::from_micros(micros),
            sequence: b.sequence,
        }))
    }

    /// VIDIOC_STREAMON.
    pub fn stream_on(&mut self) -> io::Result<()> {
        let mut t = self.buf_type as std::os::raw::c_int;
        xioctl(self.fd, vidioc::VIDIOC_STREAMON, &mut t)?;
        self.streaming = true;
        Ok(())
    }

    /// Whether STREAMON has been issued.
    pub fn streaming(&self) -> bool {
        self.streaming
    }
}

impl Drop for MappedBuffers {
    fn drop(&mut self) {
        if self.streaming {
            let mut t = self.buf_type as std::os::raw::c_int;
            let _ = xioctl(self.fd, vidioc::VIDIOC_STREAMOFF, &mut t);
        }
        for &(ptr, len) in &self.maps {
            // SAFETY: unmapping exactly what `new` mapped, once.
            unsafe {
                libc::munmap(ptr.cast(), len);
            }
        }
        let mut req: sys::v4l2_requestbuffers = zeroed();
        req.type_ = self.buf_type;
        req.memory = sys::v4l2_memory_V4L2_MEMORY_MMAP;
        let _ = xioctl(self.fd, vidioc::VIDIOC_REQBUFS, &mut req);
    }
}

/// VIDIOC_STREAMON on a descriptor without mapped buffers (v4l2loopback's
/// write() I/O uses it to register its writer).
pub fn stream_on(fd: RawFd, buf_type: u32) -> io::Result<()> {
    let mut t = buf_type as std::os::raw::c_int;
    xioctl(fd, vidioc::VIDIOC_STREAMON, &mut t)
}

/// Waits up to `timeout` for `events` (POLLIN, POLLOUT) on `fd`;
/// returns the events that happened (empty on timeout).
pub fn poll(fd: RawFd, events: i16, timeout: Duration) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    match r {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            }
        }
        0 => Ok(0),
        _ => Ok(p.revents),
    }
}

/// CLOCK_MONOTONIC now, the clock V4L2 timestamps are on.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-parameter; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

// ---- Memory-to-memory codecs (v4l2m2m encoder and decoder) ----
//
// The v4l crate has no bindings for the event and decoder-command ioctls;
// their numbers are computed here as <asm-generic/ioctl.h> does.

/// Buffer type of a multi-planar capture stream (a codec's coded or decoded side).
pub const CAPTURE_MPLANE: u32 = sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
/// Buffer type of a multi-planar output stream (a codec's input side).
pub const OUTPUT_MPLANE: u32 = sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
/// Capability bit: single-planar memory-to-memory.
pub const CAP_M2M_SPLANE: u32 = sys::V4L2_CAP_VIDEO_M2M;
/// Capability bit: multi-planar memory-to-memory.
pub const CAP_M2M_MPLANE: u32 = sys::V4L2_CAP_VIDEO_M2M_MPLANE;
/// Buffer flag: a key frame.
pub const BUF_FLAG_KEYFRAME: u32 = sys::V4L2_BUF_FLAG_KEYFRAME;
/// Buffer flag: the last buffer of a drained stream.
pub const BUF_FLAG_LAST: u32 = sys::V4L2_BUF_FLAG_LAST;
/// Event type: the decoder found the stream's format (or its change).
pub const EVENT_SOURCE_CHANGE: u32 = sys::V4L2_EVENT_SOURCE_CHANGE;

const fn ioc(dir: u32, nr: u32, size: usize) -> vidioc::_IOC_TYPE {
    ((dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr) as vidioc::_IOC_TYPE
}
const VIDIOC_DQEVENT: vidioc::_IOC_TYPE = ioc(2, 89, std::mem::size_of::<sys::v4l2_event>());
const VIDIOC_SUBSCRIBE_EVENT: vidioc::_IOC_TYPE =
    ioc(1, 90, std::mem::size_of::<sys::v4l2_event_subscription>());
const VIDIOC_DECODER_CMD: vidioc::_IOC_TYPE =
    ioc(3, 96, std::mem::size_of::<sys::v4l2_decoder_cmd>());

/// Whether `buf_type` is one of the multi-planar types.
pub fn is_mplane(buf_type: u32) -> bool {
    buf_type == CAPTURE_MPLANE || buf_type == OUTPUT_MPLANE
}

/// VIDIOC_S_FMT for a codec queue, single- or multi-planar (one plane):
/// `sizeimage` is the buffer size asked for (coded formats), 0 to let the
/// driver choose.
pub fn set_codec_format(
    fd: RawFd,
    buf_type: u32,
    width: u32,
    height: u32,
    fourcc: [u8; 4],
    sizeimage: u32,
) -> io::Result<PixFormat> {
    if !is_mplane(buf_type) {
        let mut f: sys::v4l2_format = zeroed();
        f.type_ = buf_type;
        f.fmt.pix.width = width;
        f.fmt.pix.height = height;
        f.fmt.pix.pixelformat = u32::from_le_bytes(fourcc);
        f.fmt.pix.field = sys::v4l2_field_V4L2_FIELD_NONE;
        f.fmt.pix.sizeimage = sizeimage;
        xioctl(fd, vidioc::VIDIOC_S_FMT, &mut f)?;
        // SAFETY: single-planar types answer in the `pix` member.
        let p = unsafe { f.fmt.pix };
        return Ok(PixFormat {
            width: p.width,
            height: p.height,
            fourcc: p.pixelformat.to_le_bytes(),
            bytesperline: p.bytesperline,
            sizeimage: p.sizeimage,
        });
    }
    let mut f: sys::v4l2_format = zeroed();
    f.type_ = buf_type;
    // SAFETY: writing plain integers into the `pix_mp` member of a zeroed union.
    unsafe {
        f.fmt.pix_mp.width = width;
        f.fmt.pix_mp.height = height;
        f.fmt.pix_mp.pixelformat = u32::from_le_bytes(fourcc);
        f.fmt.pix_mp.field = sys::v4l2_field_V4L2_FIELD_NONE;
        f.fmt.pix_mp.num_planes = 1;
        f.fmt.pix_mp.plane_fmt[0].sizeimage = sizeimage;
    }
    xioctl(fd, vidioc::VIDIOC_S_FMT, &mut f)?;
    // SAFETY: multi-planar types answer in the `pix_mp` member.
    let p = unsafe { f.fmt.pix_mp };
    let plane = p.plane_fmt[0];
    if p.num_planes != 1 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the driver wants {} planes for this format; pstream fills one",
                p.num_planes
            ),
        ));
    }
    Ok(PixFormat {
        width: p.width,
        height: p.height,
        fourcc: p.pixelformat.to_le_bytes(),
        bytesperline: plane.bytesperline,
        sizeimage: plane.sizeimage,
    })
}

/// VIDIOC_G_FMT for a codec queue (what a decoder found in the stream).
pub fn get_codec_format(fd: RawFd, buf_type: u32) -> io::Result<PixFormat> {
    let mut f: sys::v4l2_format = zeroed();
    f.type_ = buf_type;
    xioctl(fd, vidioc::VIDIOC_G_FMT, &mut f)?;
    if is_mplane(buf_type) {
        // SAFETY: multi-planar types answer in the `pix_mp` member.
        let p = unsafe { f.fmt.pix_mp };
        let plane = p.plane_fmt[0];
        Ok(PixFormat {
            width: p.width,
            height: p.height,
            fourcc: p.pixelformat.to_le_bytes(),
            bytesperline: plane.bytesperline,
            sizeimage: plane.sizeimage,
        })
    } else {
        // SAFETY: single-planar types answer in the `pix` member.
        let p = unsafe { f.fmt.pix };
        Ok(PixFormat {
            width: p.width,
            height: p.height,
            fourcc: p.pixelformat.to_le_bytes(),
            bytesperline: p.bytesperline,
            sizeimage: p.sizeimage,
        })
    }
}

/// The four-character codes a queue of `buf_type` offers (no sizes).
pub fn format_codes(fd: RawFd, buf_type: u32) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    for index in 0..64 {
        let mut d: sys::v4l2_fmtdesc = zeroed();
        d.index = index;
        d.type_ = buf_type;
        if xioctl(fd, vidioc::VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        out.push(d.pixelformat.to_le_bytes());
    }
    out
}

/// What VIDIOC_QUERYCTRL (and VIDIOC_QUERYMENU) say about one control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlInfo {
    /// V4L2_CTRL_TYPE_* (1 integer, 2 boolean, 3 menu, 4 button).
    pub kind: u32,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Step between values (integers).
    pub step: i64,
    /// For menus: the indices the driver accepts (between min and max).
    pub menu: Vec<i64>,
}

/// Control type: integer.
#[cfg(test)]
pub const CTRL_INTEGER: u32 = sys::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER;
/// Control type: boolean.
#[cfg(test)]
pub const CTRL_BOOLEAN: u32 = sys::v4l2_ctrl_type_V4L2_CTRL_TYPE_BOOLEAN;
/// Control type: menu.
pub const CTRL_MENU: u32 = sys::v4l2_ctrl_type_V4L2_CTRL_TYPE_MENU;
/// Control type: button.
pub const CTRL_BUTTON: u32 = sys::v4l2_ctrl_type_V4L2_CTRL_TYPE_BUTTON;

/// VIDIOC_QUERYCTRL: `None` when the device has no such control (or it is disabled).
pub fn query_control(fd: RawFd, id: u32) -> Option<ControlInfo> {
    let mut q: sys::v4l2_queryctrl = zeroed();
    q.id = id;
    xioctl(fd, vidioc::VIDIOC_QUERYCTRL, &mut q).ok()?;
    if q.id != id || q.flags & sys::V4L2_CTRL_FLAG_DISABLED != 0 {
        return None;
    }
    let mut menu = Vec::new();
    if q.type_ == CTRL_MENU {
        // Bounded by the driver's own range; a menu has a few dozen entries.
        for index in q.minimum.max(0)..=q.maximum.min(255) {
            let mut m: sys::v4l2_querymenu = zeroed();
            m.id = id;
            m.index = index as u32;
            if xioctl(fd, vidioc::VIDIOC_QUERYMENU, &mut m).is_ok() {
                menu.push(i64::from(index));
            }
        }
    }
    Some(ControlInfo {
        kind: q.type_,
        min: i64::from(q.minimum),
        max: i64::from(q.maximum),
        step: i64::from(q.step),
        menu,
    })
}

/// VIDIOC_S_CTRL.
pub fn set_control(fd: RawFd, id: u32, value: i64) -> io::Result<()> {
    let mut c: sys::v4l2_control = zeroed();
    c.id = id;
    c.value = i32::try_from(value).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("value {value} out of range"),
        )
    })?;
    xioctl(fd, vidioc::VIDIOC_S_CTRL, &mut c)
}

/// VIDIOC_ENCODER_CMD (V4L2_ENC_CMD_STOP drains, START resumes).
pub fn encoder_command(fd: RawFd, cmd: u32) -> io::Result<()> {
    let mut c: sys::v4l2_encoder_cmd = zeroed();
    c.cmd = cmd;
    xioctl(fd, vidioc::VIDIOC_ENCODER_CMD, &mut c)
}

/// VIDIOC_DECODER_CMD (V4L2_DEC_CMD_STOP drains).
pub fn decoder_command(fd: RawFd, cmd: u32) -> io::Result<()> {
    let mut c: sys::v4l2_decoder_cmd = zeroed();
    c.cmd = cmd;
    xioctl(fd, VIDIOC_DECODER_CMD, &mut c)
}

/// Encoder command: drain.
pub const ENC_CMD_STOP: u32 = sys::V4L2_ENC_CMD_STOP;
/// Decoder command: drain.
pub const DEC_CMD_STOP: u32 = sys::V4L2_DEC_CMD_STOP;

/// VIDIOC_SUBSCRIBE_EVENT.
pub fn subscribe_event(fd: RawFd, event: u32) -> io::Result<()> {
    let mut s: sys::v4l2_event_subscription = zeroed();
    s.type_ = event;
    xioctl(fd, VIDIOC_SUBSCRIBE_EVENT, &mut s)
}

/// VIDIOC_DQEVENT: the type of the next pending event, `None` when none is.
pub fn dequeue_event(fd: RawFd) -> io::Result<Option<u32>> {
    let mut e: sys::v4l2_event = zeroed();
    match xioctl(fd, VIDIOC_DQEVENT, &mut e) {
        Ok(()) => Ok(Some(e.type_)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
