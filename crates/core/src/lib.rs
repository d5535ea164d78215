//! Core media types, clocks and stage wiring for pstream.
//!
//! Every other crate speaks in these types: a [`VideoFrame`] leaves a source,
//! an [`EncodedUnit`] leaves an encoder, and stages are joined by a
//! [`Link`] that drops the oldest item rather than grow without bound.

pub mod audio;
pub mod clock;
pub mod error;
pub mod frame;
pub mod link;
pub mod unit;

pub use audio::AudioBlock;
pub use clock::{NtpTime, PipelineClock};
pub use error::CoreError;
pub use frame::VideoFrame;
pub use link::{link, Disconnected, LinkReceiver, LinkSender, Recv};
pub use unit::{Codec, EncodedUnit};
