//! Core media types, clocks, stage wiring and the source/sink interfaces
//! shared by every pstream crate.
//!
//! Every other crate speaks in these types: a [`VideoFrame`] leaves a
//! [`VideoSource`], an [`EncodedUnit`] leaves an encoder, an [`AudioBlock`]
//! goes into an [`AudioSink`], and stages are joined by a [`Link`] that drops
//! the oldest item rather than grow without bound.
//!
//! - [`frame`], [`audio`], [`unit`]: raw pictures, raw audio, encoded units.
//! - [`clock`]: [`PipelineClock`], the one time base, and [`NtpTime`].
//! - [`link`]: bounded drop-oldest links between stage threads.
//! - [`source`], [`sink`]: the traits devices (pstream-capture) and files
//!   (pstream-mux) implement, with [`VideoFormat`] and [`AudioFormat`];
//!   [`counters`]: the device counters they return; [`pace`]: real-time
//!   pacing of generated and file sources.
//! - [`error`]: [`MediaError`] (the traits' error), [`CoreError`], and
//!   [`error::one_line`] to report an error with its causes.
//!
//! [`Link`]: link::link

pub mod audio;
pub mod clock;
pub mod counters;
pub mod error;
pub mod frame;
pub mod link;
pub mod pace;
pub mod sink;
pub mod source;
pub mod unit;

pub use audio::AudioBlock;
pub use clock::{NtpTime, PipelineClock};
pub use counters::{CameraCounters, DeviceCounters};
pub use error::{BoxError, CoreError, MediaError};
pub use frame::VideoFrame;
pub use link::{link, link_bytes, Disconnected, LinkReceiver, LinkSender, Recv, Weigh};
pub use pace::{Behind, Pacer};
pub use sink::{AudioSink, VideoSink};
pub use source::{AudioFormat, AudioSource, EncodedVideoSource, VideoFormat, VideoSource};
pub use unit::{Codec, EncodedUnit};
