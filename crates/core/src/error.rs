//! Errors shared by the core types, and the one-line report of an error chain.

use thiserror::Error;

/// An error building or interpreting a core media type.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
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

/// An error and its chain of causes in one line, `what: why: root cause`,
/// for logs that must name the real reason: error types keep their cause as
/// a source rather than in their own message.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Some errors repeat their cause in their own message already.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("cannot open x.y4m")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn one_line_joins_the_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(one_line(&Outer(io)), "cannot open x.y4m: gone");
    }
}
