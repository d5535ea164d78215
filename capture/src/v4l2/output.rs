//! Writing decoded frames to a V4L2 output device (v4l2loopback's virtual
//! camera, vivid's output node).
//!
//! vivid and other real output drivers get mmap output streaming (REQBUFS,
//! QBUF, STREAMON, DQBUF to reclaim). v4l2loopback gets write(): its mmap
//! output DQBUF (0.12.x, Debian 12's) hands back the buffer queued last, so
//! a streaming writer would overwrite the very picture readers are about to
//! take, while write() fills its buffer ring in turn.
//!
//! The format is negotiated from the first frame: YU12 (I420, a plain copy)
//! when the device takes it, else YUYV (converted); a frame of a new size
//! stops streaming, renegotiates and starts again. When the device has no
//! free buffer within [`BUFFER_WAIT`] the frame is dropped and counted, so a
//! stalled device never stalls the decoder.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pstream_core::{MediaError, VideoFormat, VideoFrame, VideoSink};

use super::device::{device_error, open_device, Direction};
use super::formats::{describe_offers, Rate};
use super::spec::{PixelFormat, V4l2Spec};
use super::sys::{self, MappedBuffers, PixFormat};
use crate::convert::{i420_to_yu12, i420_to_yuyv};
use crate::CaptureError;

/// Output buffers in flight.
const BUFFERS: u32 = 4;
/// Longest wait for the device to give a buffer back.
pub const BUFFER_WAIT: Duration = Duration::from_millis(500);

/// Live counters of one output stream.
#[derive(Debug, Default)]
pub struct OutputCounters {
    /// Frames queued to the device.
    pub frames: AtomicU64,
    /// Frames dropped because the device had no free buffer in time.
    pub dropped: AtomicU64,
    /// Format negotiations (1 + size changes).
    pub negotiations: AtomicU64,
}

/// How pictures reach the device.
enum Io {
    /// mmap output streaming: buffers, and those never queued yet.
    Mmap {
        bufs: MappedBuffers,
        free: Vec<usize>,
    },
    /// write() of whole pictures from a scratch buffer.
    Write { scratch: Vec<u8> },
}

/// The negotiated stream: layout and I/O.
struct Stream {
    io: Io,
    fmt: PixFormat,
    pixel: PixelFormat,
}

/// A V4L2 output device as a [`VideoSink`].
pub struct V4l2Sink {
    spec: String,
    path: PathBuf,
    // Declared before `file`: buffers are released while the fd is open.
    stream: Option<Stream>,
    // `None` only while the device is being reopened.
    file: Option<File>,
    only: Option<PixelFormat>,
    use_write: bool,
    rate: Rate,
    counters: Arc<OutputCounters>,
    finished: bool,
}

impl std::fmt::Debug for V4l2Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Sink")
            .field("spec", &self.spec)
            .field("pixel", &self.stream.as_ref().map(|s| s.pixel))
            .finish_non_exhaustive()
    }
}

impl V4l2Sink {
    /// Opens an output device; `format`'s rate is announced to readers, its
    /// size is only a first guess (the first frame sets it).
    pub fn open(spec: &V4l2Spec, format: VideoFormat) -> Result<Self, CaptureError> {
        let name = spec.spec.as_str();
        if spec.size.is_some() || spec.fps.is_some() {
            return Err(CaptureError::invalid_format(
                name,
                "size= and fps= apply to capture; an output device takes the size and rate of the received stream",
            ));
        }
        if spec
            .format
            .is_some_and(|f| !matches!(f, PixelFormat::Yu12 | PixelFormat::Yuyv))
        {
            return Err(CaptureError::invalid_format(
                name,
                "an output device is written as YU12 or YUYV",
            ));
        }
        let dev = open_device(name, &spec.path, Direction::Output)?;
        let use_write =
            dev.caps.driver.contains("loopback") && dev.caps.caps & sys::CAP_READWRITE != 0;
        Ok(V4l2Sink {
            use_write,
            spec: name.to_owned(),
            path: spec.path.clone(),
            stream: None,
            file: Some(dev.file),
            only: spec.format,
            rate: Rate {
                num: format.fps_num.max(1),
                den: format.fps_den.max(1),
            },
            counters: Arc::new(OutputCounters::default()),
            finished: false,
        })
    }

    fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Live counters (frames written, dropped, negotiations).
    pub fn counters(&self) -> Arc<OutputCounters> {
        self.counters.clone()
    }

    /// The pixel format negotiated, once a frame has been written.
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        self.stream.as_ref().map(|s| s.pixel)
    }

    fn negotiate(&mut self, width: u32, height: u32) -> Result<(), CaptureError> {
        // Stop and free the old buffers before the format can change.
        let renegotiating = self.stream.take().is_some();
        if renegotiating && self.use_write {
            // v4l2loopback fixes its format for as long as its writer keeps
            // the device open: open it afresh to set another size.
            // Close first: the driver resets only once no one holds it.
            self.file = None;
            self.file = Some(open_device(&self.spec, &self.path, Direction::Output)?.file);
        }
        let fd = self.fd();
        let name = self.spec.as_str();
        let candidates: Vec<PixelFormat> = match self.only {
            Some(f) => vec![f],
            None => vec![PixelFormat::Yu12, PixelFormat::Yuyv],
        };
        let mut chosen = None;
        for pixel in candidates {
            match sys::set_format(fd, sys::OUTPUT, width, height, pixel.fourcc()) {
                Ok(fmt)
                    if fmt.fourcc == pixel.fourcc()
                        && (fmt.width, fmt.height) == (width, height) =>
                {
                    chosen = Some((pixel, fmt));
                    break;
                }
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => {
                    return Err(device_error(
                        name,
                        &self.path,
                        "cannot set the output format",
                        e,
                    ))
                }
            }
        }
        let Some((pixel, fmt)) = chosen else {
            let only = self
                .only
                .map_or("YU12 or YUYV".to_owned(), |f| f.to_string());
            let why = if renegotiating && self.use_write {
                " (v4l2loopback keeps its size while a program reads from it)"
            } else {
                ""
            };
            return Err(CaptureError::UnsupportedDeviceFormat {
                spec: name.to_owned(),
                device: self.path.display().to_string(),
                what: format!("{only} output at {width}x{height}{why}"),
                offers: describe_offers(&sys::enum_formats(fd, sys::OUTPUT)),
            });
        };
        let min_stride = match pixel {
            PixelFormat::Yuyv => width.div_ceil(2) * 4,
            _ => width,
        };
        let stride = fmt.bytesperline.max(min_stride);
        let fmt = PixFormat {
            bytesperline: stride,
            // The picture's own bytes: drivers may round sizeimage up to
            // whole pages, and readers take bytesused as the picture length.
            sizeimage: needed(pixel, stride, height) as u32,
            ..fmt
        };
        // Readers (browsers, OBS) see this rate; not every driver takes one.
        let _ = sys::set_rate(fd, sys::OUTPUT, self.rate);
        let io = if self.use_write {
            // v4l2loopback 0.12 counts an opener as its writer (and offers
            // output again once it closes) only after STREAMON; write()
            // alone would leave the node offering nothing to the next writer.
            let _ = sys::stream_on(fd, sys::OUTPUT);
            Io::Write {
                scratch: vec![0; fmt.sizeimage as usize],
            }
        } else {
            let bufs = MappedBuffers::new(fd, sys::OUTPUT, BUFFERS)
                .map_err(|e| device_error(name, &self.path, "cannot map output buffers", e))?;
            if (0..bufs.len()).any(|i| bufs.buffer(i).len() < needed(pixel, stride, height)) {
                return Err(CaptureError::unsupported(
                    name,
                    format!(
                        "the device's buffers are smaller than a {width}x{height} {pixel} picture"
                    ),
                ));
            }
            let free = (0..bufs.len()).rev().collect();
            Io::Mmap { bufs, free }
        };
        self.stream = Some(Stream { io, fmt, pixel });
        self.counters.negotiations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A buffer to fill: a never-used one, else one the device has finished with.
    fn free_buffer(&mut self) -> Result<Option<usize>, CaptureError> {
        let fd = self.fd();
        let (name, path) = (&self.spec, &self.path);
        let Some(Stream {
            io: Io::Mmap { bufs, free },
            ..
        }) = &mut self.stream
        else {
            return Ok(None);
        };
        if let Some(i) = free.pop() {
            return Ok(Some(i));
        }
        for attempt in 0..2 {
            match bufs.dequeue() {
                Ok(Some(d)) => return Ok(Some(d.index)),
                Ok(None) if attempt == 0 => {
                    sys::poll(fd, libc::POLLOUT, BUFFER_WAIT).map_err(|e| {
                        device_error(name, path, "cannot wait for an output buffer", e)
                    })?;
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(device_error(
                        name,
                        path,
                        "cannot dequeue an output buffer",
                        e,
                    ))
                }
            }
        }
        Ok(None)
    }
}

/// Lays `frame` out in `dst` as `pixel` with `stride` bytes per row.
fn fill(pixel: PixelFormat, frame: &VideoFrame, stride: usize, dst: &mut [u8]) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    match pixel {
        PixelFormat::Yuyv => i420_to_yuyv(frame.data(), w, h, stride, dst),
        _ => i420_to_yu12(frame.data(), w, h, stride, dst),
    }
}

impl V4l2Sink {
    /// write() of one whole picture; a device that cannot take it now
    /// (EAGAIN) costs the picture, counted as dropped.
    fn write_picture(&mut self, frame: &VideoFrame) -> Result<(), CaptureError> {
        let Some(Stream {
            io: Io::Write { scratch },
            fmt,
            pixel,
        }) = &mut self.stream
        else {
            return Ok(());
        };
        fill(*pixel, frame, fmt.bytesperline as usize, scratch);
        let Some(mut file) = self.file.as_ref() else {
            return Ok(());
        };
        match file.write(scratch) {
            Ok(n) if n == scratch.len() => {
                self.counters.frames.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(n) => Err(CaptureError::unsupported(
                &self.spec,
                format!("the device took {n} of a picture's {} bytes", scratch.len()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(device_error(
                &self.spec,
                &self.path,
                "cannot write a picture",
                e,
            )),
        }
    }
}

/// Bytes a picture of `height` rows at `stride` takes in `pixel`.
fn needed(pixel: PixelFormat, stride: u32, height: u32) -> usize {
    let (s, h) = (stride as usize, height as usize);
    match pixel {
        PixelFormat::Yuyv => s * h,
        _ => s * h + 2 * (s / 2).max(1) * h.div_ceil(2),
    }
}

impl VideoSink for V4l2Sink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        if self.finished {
            return Err(CaptureError::Finished {
                name: self.spec.clone(),
            }
            .into());
        }
        let (w, h) = (frame.width(), frame.height());
        let same = self
            .stream
            .as_ref()
            .is_some_and(|s| (s.fmt.width, s.fmt.height) == (w, h));
        if !same {
            self.negotiate(w, h)?;
        }
        if self
            .stream
            .as_ref()
            .is_some_and(|s| matches!(s.io, Io::Write { .. }))
        {
            return self.write_picture(frame).map_err(MediaError::from);
        }
        let Some(index) = self.free_buffer()? else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let (name, path) = (self.spec.as_str(), &self.path);
        let Some(Stream {
            io: Io::Mmap { bufs, free },
            fmt,
            pixel,
        }) = &mut self.stream
        else {
            return Ok(());
        };
        let (stride, size) = (fmt.bytesperline as usize, fmt.sizeimage as usize);
        let dst = bufs.buffer_mut(index);
        fill(*pixel, frame, stride, dst);
        let used = size.min(dst.len());
        if let Err(e) = bufs.queue(index, used, sys::monotonic_now()) {
            free.push(index);
            return Err(device_error(name, path, "cannot queue an output buffer", e).into());
        }
        if !bufs.streaming() {
            bufs.stream_on()
                .map_err(|e| device_error(name, path, "cannot start output streaming", e))?;
        }
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        self.finished = true;
        self.stream = None;
        Ok(())
    }

    fn is_live(&self) -> bool {
        true
    }

    fn accepts_size_changes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FMT: VideoFormat = VideoFormat {
        width: 320,
        height: 240,
        fps_num: 30,
        fps_den: 1,
    };

    fn open_err(s: &str) -> String {
        let spec = V4l2Spec::parse(s).expect("v4l2").expect("valid");
        match V4l2Sink::open(&spec, FMT) {
            Ok(_) => panic!("{s} should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn capture_options_are_refused_on_an_output() {
        assert!(open_err("v4l2:/dev/video0?size=640x480").contains("apply to capture"));
        assert!(open_err("v4l2:/dev/video0?format=NV12").contains("written as YU12 or YUYV"));
    }

    #[test]
    fn a_missing_output_device_is_named() {
        let e = open_err("v4l2:/dev/video-pstream-none");
        assert!(e.contains("no such device /dev/video-pstream-none"), "{e}");
    }

    #[test]
    fn picture_sizes_follow_the_stride() {
        assert_eq!(needed(PixelFormat::Yuyv, 1280, 480), 1280 * 480);
        assert_eq!(needed(PixelFormat::Yu12, 640, 480), 640 * 480 * 3 / 2);
        assert_eq!(needed(PixelFormat::Yu12, 8, 3), 24 + 2 * 4 * 2);
    }

    /// Needs a real output device (v4l2loopback, vivid): writes two sizes to
    /// each one present; the VM test reads the frames back.
    #[test]
    fn writes_to_a_present_output_device() {
        let outs: Vec<_> = super::super::device::list_devices()
            .into_iter()
            .filter(|d| d.output && d.error.is_none())
            .collect();
        if outs.is_empty() {
            eprintln!("skipped: no V4L2 output device (/dev/video*) on this machine");
            return;
        }
        for out in outs {
            let spec = V4l2Spec::parse(&out.spec()).expect("v4l2").expect("valid");
            let mut sink = match V4l2Sink::open(&spec, FMT) {
                Ok(s) => s,
                Err(CaptureError::DeviceBusy { .. }) => continue,
                Err(e) => panic!("{e}"),
            };
            for (w, h) in [(320u32, 240u32), (640, 360)] {
                let data = vec![128u8; VideoFrame::byte_len(w, h)];
                let frame =
                    VideoFrame::new(w, h, data.into(), std::time::Instant::now(), Duration::ZERO)
                        .expect("frame");
                sink.write_frame(&frame).expect("written");
            }
            assert_eq!(sink.counters().negotiations.load(Ordering::Relaxed), 2);
        }
    }
}
