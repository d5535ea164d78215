//! `pstream serve` as a library: RTMP publishes in, HLS out, with lighter
//! renditions, stream keys and an optional mirror on disk.

pub mod hls_dir;
pub mod live;

pub use hls_dir::HlsDir;
pub use live::{LiveStream, LiveStreams, LiveVariant, SOURCE};
