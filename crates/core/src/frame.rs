//! Raw video: one I420 picture in a single shared buffer.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::CoreError;

/// One I420 (planar 4:2:0) picture.
///
/// The three planes live back to back in one [`Bytes`] so a frame moves from
/// capture to encoder without a copy. Chroma planes are `ceil(w/2) x ceil(h/2)`
/// so odd sizes work; every plane is tightly packed (stride = width).
#[derive(Debug, Clone)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    data: Bytes,
    /// When the picture was captured, on the pipeline clock.
    pub capture: Instant,
    /// Presentation time since the start of the stream.
    pub pts: Duration,
}

impl VideoFrame {
    /// Wraps I420 data of the given size, checking its length.
    pub fn new(
        width: u32,
        height: u32,
        data: Bytes,
        capture: Instant,
        pts: Duration,
    ) -> Result<Self, CoreError> {
        if width == 0 || height == 0 {
            return Err(CoreError::EmptyFrame { width, height });
        }
        let expected = Self::byte_len(width, height);
        if data.len() != expected {
            return Err(CoreError::FrameSize {
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
            capture,
            pts,
        })
    }

    /// Width and height of the chroma planes for a picture of this size.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Bytes an I420 picture of this size takes.
    pub fn byte_len(width: u32, height: u32) -> usize {
        let (cw, ch) = Self::chroma_size(width, height);
        width as usize * height as usize + 2 * cw as usize * ch as usize
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// All three planes, back to back.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The luma plane (stride = width).
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The Cb plane (stride = chroma width).
    pub fn u(&self) -> &[u8] {
        let l = self.luma_len();
        &self.data[l..l + self.chroma_len()]
    }

    /// The Cr plane (stride = chroma width).
    pub fn v(&self) -> &[u8] {
        let l = self.luma_len() + self.chroma_len();
        &self.data[l..l + self.chroma_len()]
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        cw as usize * ch as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_split_at_the_right_offsets() {
        let (w, h) = (5u32, 3u32);
        let len = VideoFrame::byte_len(w, h);
        assert_eq!(len, 15 + 2 * 3 * 2);
        let data: Vec<u8> = (0..len as u8).collect();
        let f = VideoFrame::new(w, h, Bytes::from(data), Instant::now(), Duration::ZERO)
            .expect("valid frame");
        assert_eq!(f.y().len(), 15);
        assert_eq!(f.u()[0], 15);
        assert_eq!(f.v()[0], 21);
        assert_eq!(f.v().len(), 6);
    }

    #[test]
    fn wrong_length_is_refused() {
        let err = VideoFrame::new(
            4,
            4,
            Bytes::from(vec![0; 10]),
            Instant::now(),
            Duration::ZERO,
        )
        .expect_err("too short");
        assert_eq!(
            err,
            CoreError::FrameSize {
                width: 4,
                height: 4,
                expected: 24,
                actual: 10
            }
        );
    }
}
