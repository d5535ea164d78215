//! Errors shared by the core types.

use thiserror::Error;

/// An error building or interpreting a core media type.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CoreError {
    /// A frame's data does not match the size its dimensions demand.
    #[error("I420 frame {width}x{height} needs {expected} bytes, got {actual}")]
    FrameSize {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Bytes an I420 frame of that size takes.
        expected: usize,
        /// Bytes that were supplied.
        actual: usize,
    },
    /// A frame has a zero dimension.
    #[error("frame size {width}x{height} is empty")]
    EmptyFrame {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
    },
}
