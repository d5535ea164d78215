//! V4L2 devices: cameras as video sources, loopback and output nodes as
//! video sinks, and the device list for `pstream devices`.
//!
//! Specs: `v4l2:/dev/videoN[?size=WxH&fps=N&format=YUYV|NV12|YU12|MJPG|H264]`
//! for capture (without options, the offer closest to `--size`/`--fps`;
//! an MJPG camera hands out its JPEGs, see [`V4l2Capture`]),
//! `v4l2:/dev/videoN[?format=YU12|YUYV]` for output. A device unplugged
//! mid-stream stops the stream with one error line (it is not waited for).

pub mod capture;
pub mod device;
pub mod formats;
pub mod m2m;
pub mod output;
pub mod spec;
mod sys;
pub mod timestamp;

pub use capture::{
    open_for_h264, open_for_mjpeg, open_source, V4l2Capture, V4l2H264Source, V4l2JpegSource,
    V4l2Source,
};
pub use device::{list_devices, V4l2DeviceInfo};
pub use formats::{FormatInfo, Rate, Rates, Sizes};
pub use m2m::{M2mDecoder, M2mEncoder, M2mEncoderConfig, M2mError, M2mPacket};
pub use output::{OutputCounters, V4l2Sink};
pub use spec::{PixelFormat, V4l2Spec};
