//! Capturing from a V4L2 camera: mmap streaming on its own thread.
//!
//! The capture thread waits for a filled buffer, converts it to I420 straight
//! out of the mapping (or copies the JPEG), gives the buffer back to the
//! driver at once and hands the frame over a drop-oldest link, so a slow
//! encoder never starves the driver of buffers. An MJPEG camera comes out as
//! an [`EncodedVideoSource`] of its JPEGs; whoever needs raw frames decodes
//! them (pstream-embed does, counting undecodable ones as corrupt).
//!
//! A device unplugged mid-stream answers ENODEV: the thread sends one
//! [`CaptureError::DeviceGone`] and ends, and the stream stops. A device
//! that merely stops delivering (a v4l2loopback whose writer paused) is
//! waited for: meanwhile its last picture is repeated once every
//! [`STALL_REPEAT`], so the stream, its receiver and Ctrl-C keep working.
//! A device that delivers nothing at all within [`FIRST_FRAME_WAIT`] (a
//! loopback no program writes to) is an error.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::link::Recv;
use pstream_core::{
    link, CameraCounters, Codec, EncodedUnit, EncodedVideoSource, LinkReceiver, LinkSender,
    MediaError, PipelineClock, VideoFormat, VideoFrame, VideoSource,
};

use super::device::{device_error, open_device, Direction};
use super::formats::{choose, describe_offers, NoMatch, Rate, Want};
use super::spec::{PixelFormat, V4l2Spec};
use super::sys::{self, MappedBuffers};
use super::timestamp::stamp_to_instant;
use crate::convert::{i420_len, nv12_to_i420, yu12_to_i420, yuyv_to_i420};
use crate::CaptureError;

/// Driver buffers: enough to cover a conversion and a scheduling hiccup.
const BUFFERS: u32 = 4;
/// Frames waiting for the consumer; older ones are dropped and counted.
const QUEUE: usize = 2;
/// How often the capture thread looks at its stop flag while waiting.
const POLL_TICK: Duration = Duration::from_millis(200);
/// Longest wait for a device's first picture.
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(10);
/// How often a stalled device's last picture is repeated.
pub const STALL_REPEAT: Duration = Duration::from_secs(1);
/// Consecutive unusable frames (corrupt, too short) before giving up.
pub const MAX_BAD_IN_A_ROW: u32 = 60;

enum Captured {
    Frame(VideoFrame),
    Jpeg(EncodedUnit),
    Failed(CaptureError),
}

/// A running capture: the thread and the link it fills.
struct Capture {
    spec: String,
    clock: PipelineClock,
    format: VideoFormat,
    pixel: PixelFormat,
    rx: LinkReceiver<Captured>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<CameraCounters>,
    /// A second descriptor of the device for controls (an H.264 camera's
    /// key frame requests) while the capture thread owns the first.
    control: Option<File>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn want_from(spec: &V4l2Spec, want: VideoFormat, prefer_mjpeg: bool) -> Want {
    Want {
        size: spec.size.unwrap_or((want.width, want.height)),
        fps: spec
            .fps
            .unwrap_or_else(|| want.fps().round().max(1.0) as u32),
        prefer_mjpeg,
        prefer_h264: false,
        exact_size: spec.size.is_some(),
        exact_fps: spec.fps.is_some(),
        format: spec.format,
    }
}

fn no_match(spec: &V4l2Spec, w: &Want, why: NoMatch, offers: &str) -> CaptureError {
    let what = match why {
        NoMatch::Format => match w.format {
            Some(f) => format!("{f} format"),
            None => "format pstream can read (YUYV, NV12, YU12, MJPG)".to_owned(),
        },
        NoMatch::Size => format!("{}x{}", w.size.0, w.size.1),
        NoMatch::Rate => format!("{}x{} at {} fps", w.size.0, w.size.1, w.fps),
    };
    CaptureError::UnsupportedDeviceFormat {
        spec: spec.spec.clone(),
        device: spec.device(),
        what,
        offers: offers.to_owned(),
    }
}

impl Capture {
    /// The next item; `Ok(None)` after [`STALL_REPEAT`] without one once
    /// pictures have come (`started`), an error when the first does not come
    /// within [`FIRST_FRAME_WAIT`]; `Err(None)` when the thread has ended.
    fn next(&self, started: bool) -> Result<Option<Captured>, Option<CaptureError>> {
        let wait = if started {
            STALL_REPEAT
        } else {
            FIRST_FRAME_WAIT
        };
        match self.rx.recv_timeout(wait) {
            Recv::Item(item) => Ok(Some(item)),
            Recv::Timeout if started => Ok(None),
            Recv::Timeout => Err(Some(CaptureError::malformed(
                &self.spec,
                format!(
                    "no picture from the device in {} s (is a program writing to it?)",
                    FIRST_FRAME_WAIT.as_secs()
                ),
            ))),
            Recv::Closed => Err(None),
        }
    }

    /// Capture time and pts for a picture repeated now.
    fn now_stamps(&self) -> (Instant, Duration) {
        let now = self.clock.now();
        (now, self.clock.elapsed_at(now))
    }

    fn open(
        spec: &V4l2Spec,
        want: VideoFormat,
        prefer_mjpeg: bool,
        prefer_h264: bool,
        clock: PipelineClock,
    ) -> Result<Self, CaptureError> {
        let name = spec.spec.as_str();
        let dev = open_device(name, &spec.path, Direction::Capture)?;
        let fd = dev.file.as_raw_fd();
        let offers = dev.formats(Direction::Capture);
        let mut w = want_from(spec, want, prefer_mjpeg);
        w.prefer_h264 = prefer_h264;
        let choice =
            choose(&offers, w).map_err(|why| no_match(spec, &w, why, &describe_offers(&offers)))?;
        let fmt = sys::set_format(
            fd,
            sys::CAPTURE,
            choice.width,
            choice.height,
            choice.format.fourcc(),
        )
        .map_err(|e| device_error(name, &spec.path, "cannot set the capture format", e))?;
        let size_refused = spec.size.is_some_and(|s| s != (fmt.width, fmt.height));
        if fmt.fourcc != choice.format.fourcc() || size_refused {
            return Err(CaptureError::UnsupportedDeviceFormat {
                spec: name.to_owned(),
                device: spec.device(),
                what: format!(
                    "{} {}x{} (it chose {}x{} {})",
                    choice.format,
                    choice.width,
                    choice.height,
                    fmt.width,
                    fmt.height,
                    super::spec::fourcc_str(fmt.fourcc)
                ),
                offers: describe_offers(&offers),
            });
        }
        if choice.format == PixelFormat::Yuyv && fmt.width % 2 != 0 {
            return Err(CaptureError::unsupported(
                name,
                format!("the device chose an odd YUYV width {}", fmt.width),
            ));
        }
        let asked = choice.rate.unwrap_or(Rate { num: w.fps, den: 1 });
        let rate = sys::set_rate(fd, sys::CAPTURE, asked)
            .map_err(|e| device_error(name, &spec.path, "cannot set the frame rate", e))?
            .unwrap_or(asked);
        let format = VideoFormat {
            width: fmt.width,
            height: fmt.height,
            fps_num: rate.num,
            fps_den: rate.den.max(1),
        };
        format.validate(name)?;
        let mut bufs = MappedBuffers::new(fd, sys::CAPTURE, BUFFERS)
            .map_err(|e| device_error(name, &spec.path, "cannot map capture buffers", e))?;
        for i in 0..bufs.len() {
            bufs.queue(i, 0, Duration::ZERO)
                .map_err(|e| device_error(name, &spec.path, "cannot queue a capture buffer", e))?;
        }
        bufs.stream_on()
            .map_err(|e| device_error(name, &spec.path, "cannot start streaming", e))?;
        let control = if choice.format == PixelFormat::H264 {
            Some(dev.file.try_clone().map_err(|e| {
                device_error(
                    name,
                    &spec.path,
                    "cannot duplicate the device descriptor",
                    e,
                )
            })?)
        } else {
            None
        };
        let (tx, rx) = link::<Captured>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(CameraCounters::default());
        let stride = match fmt.bytesperline {
            0 if choice.format == PixelFormat::Yuyv => fmt.width * 2,
            0 => fmt.width,
            s => s,
        };
        let worker = Worker {
            bufs,
            file: dev.file,
            spec: name.to_owned(),
            path: spec.path.clone(),
            pixel: choice.format,
            width: fmt.width as usize,
            height: fmt.height as usize,
            stride: stride as usize,
            clock,
            tx,
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("v4l2-capture".into())
            .spawn(move || worker.run())
            .map_err(|e| CaptureError::io(name, "cannot start the capture thread", e))?;
        Ok(Capture {
            spec: name.to_owned(),
            clock,
            format,
            pixel: choice.format,
            rx,
            stop,
            thread: Some(thread),
            counters,
            control,
        })
    }
}

/// The capture thread's state. `bufs` is declared before `file` so the
/// buffers are released while the descriptor is still open.
struct Worker {
    bufs: MappedBuffers,
    file: File,
    spec: String,
    path: std::path::PathBuf,
    pixel: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
    clock: PipelineClock,
    tx: LinkSender<Captured>,
    stop: Arc<AtomicBool>,
    counters: Arc<CameraCounters>,
}

impl Worker {
    fn fail(&self, action: &'static str, e: io::Error) {
        let _ = self.tx.send(Captured::Failed(device_error(
            &self.spec, &self.path, action, e,
        )));
    }

    fn run(mut self) {
        let fd = self.file.as_raw_fd();
        let mut last_seq: Option<u32> = None;
        let mut idle_errors = 0u32;
        let mut bad_in_a_row = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let events = match sys::poll(fd, libc::POLLIN, POLL_TICK) {
                Ok(ev) => ev,
                Err(e) => return self.fail("cannot wait for a frame", e),
            };
            if events == 0 {
                continue;
            }
            let d = match self.bufs.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => {
                    if events & (libc::POLLERR | libc::POLLHUP) != 0 {
                        // An error state without a buffer: back off rather than spin.
                        idle_errors += 1;
                        if idle_errors > 50 {
                            return self.fail(
                                "the device stays in an error state",
                                io::Error::from_raw_os_error(libc::EIO),
                            );
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    continue;
                }
                Err(e) => return self.fail("cannot dequeue a frame", e),
            };
            idle_errors = 0;
            let mono_now = sys::monotonic_now();
            let now = Instant::now();
            if let Some(prev) = last_seq {
                let gap = d.sequence.wrapping_sub(prev);
                if gap > 1 && gap < 1 << 20 {
                    self.counters
                        .driver_drops
                        .fetch_add(u64::from(gap - 1), Ordering::Relaxed);
                }
            }
            last_seq = Some(d.sequence);
            let capture = if d.monotonic() {
                stamp_to_instant(d.timestamp, mono_now, now)
            } else {
                None
            };
            let capture = capture.unwrap_or_else(|| {
                self.counters.restamped.fetch_add(1, Ordering::Relaxed);
                now
            });
            // pts on the pipeline clock, so audio and video share one zero.
            let pts = self.clock.elapsed_at(capture);
            let item = if d.flags & sys::BUF_FLAG_ERROR != 0 || d.bytesused == 0 {
                None
            } else {
                self.take(d.index, d.bytesused, capture, pts)
            };
            if let Err(e) = self.bufs.queue(d.index, 0, Duration::ZERO) {
                return self.fail("cannot requeue a capture buffer", e);
            }
            let Some(item) = item else {
                self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                bad_in_a_row += 1;
                if bad_in_a_row >= MAX_BAD_IN_A_ROW {
                    let _ = self.tx.send(Captured::Failed(CaptureError::malformed(
                        &self.spec,
                        format!("{MAX_BAD_IN_A_ROW} frames in a row were corrupt or too short"),
                    )));
                    return;
                }
                continue;
            };
            bad_in_a_row = 0;
            self.counters.frames.fetch_add(1, Ordering::Relaxed);
            if self.tx.send(item).is_err() {
                return;
            }
        }
    }

    /// Converts or copies a filled buffer; `None` when it is unusable.
    fn take(&self, index: usize, used: usize, capture: Instant, pts: Duration) -> Option<Captured> {
        let src = &self.bufs.buffer(index)[..used];
        let (w, h, stride) = (self.width, self.height, self.stride);
        if self.pixel == PixelFormat::H264 {
            // One access unit per buffer, Annex-B, as UVC and the Pi's
            // camera driver deliver it.
            return Some(Captured::Jpeg(EncodedUnit {
                codec: Codec::H264,
                keyframe: h264_has_idr(src),
                pts,
                dts: None,
                capture,
                data: Bytes::copy_from_slice(src),
            }));
        }
        if self.pixel == PixelFormat::Mjpg {
            return Some(Captured::Jpeg(EncodedUnit {
                codec: Codec::Mjpeg,
                keyframe: true,
                pts,
                dts: None,
                capture,
                data: Bytes::copy_from_slice(src),
            }));
        }
        let mut out = vec![0u8; i420_len(w, h)];
        let converted = match self.pixel {
            PixelFormat::Yuyv => yuyv_to_i420(src, stride, w, h, &mut out),
            PixelFormat::Nv12 => nv12_to_i420(src, stride, w, h, &mut out),
            PixelFormat::Yu12 => yu12_to_i420(src, stride, w, h, &mut out),
            PixelFormat::Mjpg | PixelFormat::H264 => return None,
        };
        converted.ok()?;
        VideoFrame::new(w as u32, h as u32, Bytes::from(out), capture, pts)
            .ok()
            .map(Captured::Frame)
    }
}

/// A V4L2 camera as a raw I420 [`VideoSource`] (YUYV, NV12 or YU12
/// converted on the capture thread).
pub struct V4l2Source {
    capture: Capture,
    last: Option<VideoFrame>,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("spec", &self.capture.spec)
            .field("format", &self.capture.format)
            .field("pixel", &self.capture.pixel)
            .finish_non_exhaustive()
    }
}

impl V4l2Source {
    /// The last picture again, stamped now (nothing before the first).
    fn repeat(&self) -> Result<Option<VideoFrame>, CaptureError> {
        let Some(last) = &self.last else {
            return Ok(None);
        };
        let (capture, pts) = self.capture.now_stamps();
        self.capture
            .counters
            .repeated
            .fetch_add(1, Ordering::Relaxed);
        VideoFrame::new(
            last.width(),
            last.height(),
            last.data().clone(),
            capture,
            pts,
        )
        .map(Some)
        .map_err(|source| CaptureError::Frame {
            name: self.capture.spec.clone(),
            source,
        })
    }

    /// The camera's pixel format as negotiated.
    pub fn pixel_format(&self) -> PixelFormat {
        self.capture.pixel
    }

    /// Live counters (frames, driver drops, corrupt frames).
    pub fn counters(&self) -> Arc<CameraCounters> {
        self.capture.counters.clone()
    }
}

impl VideoSource for V4l2Source {
    fn format(&self) -> VideoFormat {
        self.capture.format
    }

    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        Some(self.capture.counters.clone())
    }

    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        loop {
            let frame = match self.capture.next(self.last.is_some()) {
                Ok(Some(Captured::Frame(f))) => f,
                // JPEGs never come from a raw stream.
                Ok(Some(Captured::Jpeg(_))) => continue,
                Ok(Some(Captured::Failed(e))) | Err(Some(e)) => return Err(e.into()),
                Ok(None) => return Ok(self.repeat()?),
                Err(None) => return Ok(None),
            };
            self.last = Some(frame.clone());
            return Ok(Some(frame));
        }
    }
}

/// An MJPEG camera as an [`EncodedVideoSource`]: its JPEGs as they came.
pub struct V4l2JpegSource {
    capture: Capture,
    last: Option<EncodedUnit>,
}

impl std::fmt::Debug for V4l2JpegSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2JpegSource")
            .field("spec", &self.capture.spec)
            .field("format", &self.capture.format)
            .finish_non_exhaustive()
    }
}

impl V4l2JpegSource {
    /// Live counters (frames, driver drops, corrupt frames).
    pub fn counters(&self) -> Arc<CameraCounters> {
        self.capture.counters.clone()
    }
}

impl EncodedVideoSource for V4l2JpegSource {
    fn format(&self) -> VideoFormat {
        self.capture.format
    }

    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        Some(self.capture.counters.clone())
    }

    fn next_unit(&mut self) -> Result<Option<EncodedUnit>, MediaError> {
        loop {
            match self.capture.next(self.last.is_some()) {
                Ok(Some(Captured::Jpeg(unit))) => {
                    self.last = Some(unit.clone());
                    return Ok(Some(unit));
                }
                // Raw frames never come from an MJPG stream.
                Ok(Some(Captured::Frame(_))) => {}
                Ok(Some(Captured::Failed(e))) | Err(Some(e)) => return Err(e.into()),
                Ok(None) => {
                    let Some(last) = &self.last else { continue };
                    let (capture, pts) = self.capture.now_stamps();
                    self.capture
                        .counters
                        .repeated
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(EncodedUnit {
                        capture,
                        pts,
                        ..last.clone()
                    }));
                }
                Err(None) => return Ok(None),
            }
        }
    }
}

/// Whether an Annex-B access unit holds an IDR slice (NAL type 5).
fn h264_has_idr(data: &[u8]) -> bool {
    data.windows(4)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] == 1 && w[3] & 0x1f == 5)
}

/// An H.264 camera as an [`EncodedVideoSource`]: its access units as they
/// came, never decoded. Key frame requests go to the camera
/// (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME); a camera without that control
/// says no and the caller counts them. A stalled camera is waited for
/// (repeating an H.264 picture would break the reference chain).
pub struct V4l2H264Source {
    capture: Capture,
}

impl std::fmt::Debug for V4l2H264Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2H264Source")
            .field("spec", &self.capture.spec)
            .field("format", &self.capture.format)
            .finish_non_exhaustive()
    }
}

impl EncodedVideoSource for V4l2H264Source {
    fn format(&self) -> VideoFormat {
        self.capture.format
    }

    fn camera_counters(&self) -> Option<Arc<CameraCounters>> {
        Some(self.capture.counters.clone())
    }

    fn request_keyframe(&mut self) -> bool {
        self.capture.control.as_ref().is_some_and(|f| {
            sys::set_control(f.as_raw_fd(), super::m2m::cid::FORCE_KEY_FRAME, 1).is_ok()
        })
    }

    fn next_unit(&mut self) -> Result<Option<EncodedUnit>, MediaError> {
        let mut started = false;
        loop {
            match self.capture.next(started) {
                Ok(Some(Captured::Jpeg(unit))) => return Ok(Some(unit)),
                Ok(Some(Captured::Frame(_))) => {}
                Ok(Some(Captured::Failed(e))) | Err(Some(e)) => return Err(e.into()),
                // Stalled: keep waiting, without the first-picture limit.
                Ok(None) => {}
                Err(None) => return Ok(None),
            }
            started = true;
        }
    }
}

/// A camera as it was opened: raw frames, or its own JPEGs or H.264.
pub enum V4l2Capture {
    /// Raw I420 frames (converted from YUYV, NV12 or YU12).
    Raw(V4l2Source),
    /// The camera's own JPEGs (MJPG), for the caller to send or decode.
    Jpeg(V4l2JpegSource),
    /// The camera's own H.264 (only when asked for: [`open_for_h264`]).
    H264(V4l2H264Source),
}

impl V4l2Capture {
    fn from(capture: Capture) -> Self {
        if capture.pixel == PixelFormat::H264 {
            V4l2Capture::H264(V4l2H264Source { capture })
        } else if capture.pixel == PixelFormat::Mjpg {
            V4l2Capture::Jpeg(V4l2JpegSource {
                capture,
                last: None,
            })
        } else {
            V4l2Capture::Raw(V4l2Source {
                capture,
                last: None,
            })
        }
    }
}

/// Opens a camera preferring raw formats, choosing the mode closest to
/// `want` (or the spec's `size=`, `fps=`, `format=`); a camera that only
/// offers MJPG (or was asked for it) comes back as [`V4l2Capture::Jpeg`].
pub fn open_source(
    spec: &V4l2Spec,
    want: VideoFormat,
    clock: PipelineClock,
) -> Result<V4l2Capture, CaptureError> {
    Capture::open(spec, want, false, false, clock).map(V4l2Capture::from)
}

/// Opens a camera for an MJPEG stream: MJPG preferred, and when the camera
/// delivers it the JPEGs pass through; otherwise a raw source to encode.
pub fn open_for_mjpeg(
    spec: &V4l2Spec,
    want: VideoFormat,
    clock: PipelineClock,
) -> Result<V4l2Capture, CaptureError> {
    Capture::open(spec, want, true, false, clock).map(V4l2Capture::from)
}

/// Opens a camera for an H.264 stream: a camera that encodes H.264 itself
/// hands out its access units ([`V4l2Capture::H264`], sent without decoding
/// or re-encoding); otherwise raw frames (or JPEGs) to encode.
pub fn open_for_h264(
    spec: &V4l2Spec,
    want: VideoFormat,
    clock: PipelineClock,
) -> Result<V4l2Capture, CaptureError> {
    Capture::open(spec, want, false, true, clock).map(V4l2Capture::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: VideoFormat = VideoFormat {
        width: 1280,
        height: 720,
        fps_num: 30,
        fps_den: 1,
    };

    #[test]
    fn spec_options_override_the_command_line() {
        let spec = V4l2Spec::parse("v4l2:/dev/video0?size=640x480&fps=15&format=YUYV")
            .expect("v4l2")
            .expect("valid");
        let w = want_from(&spec, WANT, true);
        assert_eq!(w.size, (640, 480));
        assert_eq!(w.fps, 15);
        assert!(w.exact_size && w.exact_fps && w.prefer_mjpeg);
        assert_eq!(w.format, Some(PixelFormat::Yuyv));
        let plain = V4l2Spec::parse("v4l2:/dev/video0")
            .expect("v4l2")
            .expect("valid");
        let w = want_from(&plain, WANT, false);
        assert_eq!(
            (w.size, w.fps, w.exact_size, w.exact_fps),
            ((1280, 720), 30, false, false)
        );
    }

    #[test]
    fn unmatched_offers_are_listed_in_the_error() {
        let spec = V4l2Spec::parse("v4l2:/dev/video0?format=NV12")
            .expect("v4l2")
            .expect("valid");
        let w = want_from(&spec, WANT, false);
        let e = no_match(&spec, &w, NoMatch::Format, "YUYV 640x480@30");
        assert_eq!(
            e.to_string(),
            "v4l2:/dev/video0?format=NV12: /dev/video0 offers no NV12 format; \
             it offers: YUYV 640x480@30"
        );
        let e = no_match(&spec, &w, NoMatch::Rate, "YUYV 640x480@30");
        assert!(
            e.to_string().contains("offers no 1280x720 at 30 fps"),
            "{e}"
        );
    }

    /// Needs a real camera: runs against every capture node present, and
    /// says so when there is none (the VM test covers vivid).
    #[test]
    fn captures_from_a_present_camera() {
        let cams: Vec<_> = super::super::device::list_devices()
            .into_iter()
            .filter(|d| d.capture && d.error.is_none())
            .collect();
        if cams.is_empty() {
            eprintln!("skipped: no V4L2 capture device (/dev/video*) on this machine");
            return;
        }
        for cam in cams {
            let spec = V4l2Spec::parse(&cam.spec()).expect("v4l2").expect("valid");
            match open_source(&spec, WANT, PipelineClock::start()) {
                Ok(V4l2Capture::Raw(mut src)) => {
                    let f = src.next_frame().expect("a frame").expect("not ended");
                    assert_eq!(
                        (f.width(), f.height()),
                        (src.format().width, src.format().height)
                    );
                }
                Ok(V4l2Capture::H264(_)) => panic!("open_source chose H.264 for raw frames"),
                Ok(V4l2Capture::Jpeg(mut src)) => {
                    let u = src.next_unit().expect("a JPEG").expect("not ended");
                    assert!(u.codec == Codec::Mjpeg && u.keyframe && !u.data.is_empty());
                }
                Err(CaptureError::DeviceBusy { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}
