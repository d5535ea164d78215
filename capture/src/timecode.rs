//! The latency timecode painted into the top of a picture.
//!
//! The top [`TIMECODE_ROWS`] rows carry the capture time in microseconds since
//! the Unix epoch as 64 equal-width blocks across the full width, most
//! significant bit first: block `i` spans x from `i * (width / 64)` to
//! `(i + 1) * (width / 64)`, the last block taking the remainder up to
//! `width`. A 1 bit is luma 235 and a 0 bit luma 16 (the limits of video
//! range), with neutral chroma (128) under those rows, so the code survives
//! chroma subsampling and lossy H.264 at normal bitrates: the reader averages
//! the centre of each block over the middle rows and thresholds at 126.
//!
//! Pictures narrower than [`MIN_WIDTH`] or shorter than [`TIMECODE_ROWS`]
//! carry no timecode: writing does nothing and reading returns `None`.

use pstream_core::VideoFrame;

/// Rows at the top of the picture that hold the timecode.
pub const TIMECODE_ROWS: u32 = 16;
/// Number of bits (and blocks) in the timecode.
pub const TIMECODE_BITS: u32 = 64;
/// Narrowest picture that can carry a timecode (one pixel per block).
pub const MIN_WIDTH: u32 = TIMECODE_BITS;
/// Luma of a 1 bit.
pub const LUMA_ONE: u8 = 235;
/// Luma of a 0 bit.
pub const LUMA_ZERO: u8 = 16;
/// Block averages at or above this read as 1.
pub const THRESHOLD: u8 = 126;

/// A block average must be this far from the threshold to count as a clear bit.
const MARGIN: u32 = 45;
/// Rows averaged by the reader: the middle of the band, away from the
/// picture edge and from the content below.
const READ_ROWS: std::ops::Range<usize> = 4..12;
/// 2000-01-01T00:00:00Z in microseconds since the Unix epoch.
const YEAR_2000_MICROS: u64 = 946_684_800_000_000;
/// 2100-01-01T00:00:00Z in microseconds since the Unix epoch.
const YEAR_2100_MICROS: u64 = 4_102_444_800_000_000;

/// The x range `[start, end)` of block `i` (0..64) in a picture `width` wide.
pub fn block_span(width: u32, i: u32) -> (usize, usize) {
    let bw = (width / TIMECODE_BITS) as usize;
    let start = i as usize * bw;
    let end = if i + 1 >= TIMECODE_BITS {
        width as usize
    } else {
        start + bw
    };
    (start, end)
}

/// Whether a picture of this size can carry a timecode.
pub fn fits(width: u32, height: u32) -> bool {
    width >= MIN_WIDTH && height >= TIMECODE_ROWS
}

/// Paints `micros` into the top rows of tightly packed I420 planes; returns
/// false (and paints nothing) if the picture is too small or a plane too short.
pub fn write_timecode(
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
    width: u32,
    height: u32,
    micros: u64,
) -> bool {
    if !fits(width, height) {
        return false;
    }
    let w = width as usize;
    let rows = TIMECODE_ROWS as usize;
    let cw = width.div_ceil(2) as usize;
    let chroma_rows = rows / 2;
    if y.len() < w * rows || u.len() < cw * chroma_rows || v.len() < cw * chroma_rows {
        return false;
    }
    for i in 0..TIMECODE_BITS {
        let (start, end) = block_span(width, i);
        let bit = (micros >> (TIMECODE_BITS - 1 - i)) & 1;
        y[start..end].fill(if bit == 1 { LUMA_ONE } else { LUMA_ZERO });
    }
    for r in 1..rows {
        y.copy_within(0..w, r * w);
    }
    u[..cw * chroma_rows].fill(128);
    v[..cw * chroma_rows].fill(128);
    true
}

/// Reads the timecode off a frame, or `None` if it carries no plausible one.
pub fn read_timecode(frame: &VideoFrame) -> Option<u64> {
    read_timecode_luma(
        frame.y(),
        frame.width() as usize,
        frame.width(),
        frame.height(),
    )
}

/// Reads the timecode off a luma plane with the given stride (for decoders
/// whose planes are padded), or `None` if it carries no plausible one.
///
/// Plausible means: every block's average is clearly on one side of the
/// threshold (at least 45 levels away), and the time lies between the years
/// 2000 and 2100.
pub fn read_timecode_luma(y: &[u8], stride: usize, width: u32, height: u32) -> Option<u64> {
    if !fits(width, height) || stride < width as usize {
        return None;
    }
    let needed = stride.checked_mul(READ_ROWS.end - 1)? + width as usize;
    if y.len() < needed {
        return None;
    }
    let mut micros = 0u64;
    for i in 0..TIMECODE_BITS {
        let (start, end) = block_span(width, i);
        let quarter = (end - start) / 4;
        let (a, b) = (start + quarter, end - quarter);
        let mut sum = 0u32;
        for r in READ_ROWS {
            let row = &y[r * stride..r * stride + width as usize];
            sum += row[a..b].iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        let count = ((b - a) * READ_ROWS.len()) as u32;
        let threshold = u32::from(THRESHOLD);
        // Compare sum against count * level to avoid rounding the average.
        let bit = if sum >= (threshold + MARGIN) * count {
            1
        } else if sum <= threshold.saturating_sub(MARGIN) * count {
            0
        } else {
            return None;
        };
        micros = (micros << 1) | bit;
    }
    (YEAR_2000_MICROS..YEAR_2100_MICROS)
        .contains(&micros)
        .then_some(micros)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;

    /// 2024-05-01T12:34:56.789012Z.
    const T: u64 = 1_714_566_896_789_012;

    /// A grey picture with the timecode painted in.
    fn painted(width: u32, height: u32, micros: u64) -> Vec<u8> {
        let mut data = vec![100u8; VideoFrame::byte_len(width, height)];
        let luma = (width * height) as usize;
        let chroma = (width.div_ceil(2) * height.div_ceil(2)) as usize;
        let (y, rest) = data.split_at_mut(luma);
        let (u, v) = rest.split_at_mut(chroma);
        assert!(write_timecode(y, u, v, width, height, micros));
        data
    }

    fn frame(width: u32, height: u32, data: Vec<u8>) -> VideoFrame {
        VideoFrame::new(
            width,
            height,
            Bytes::from(data),
            Instant::now(),
            Duration::ZERO,
        )
        .expect("valid frame")
    }

    /// A small deterministic generator (xorshift64*) for the noise.
    fn noise(state: &mut u64) -> i32 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        (r % 61) as i32 - 30
    }

    #[test]
    fn round_trips_at_many_widths() {
        for width in [64, 65, 320, 1280, 1281, 1920] {
            let height = 36;
            let f = frame(width, height, painted(width, height, T));
            assert_eq!(read_timecode(&f), Some(T), "width {width}");
        }
    }

    #[test]
    fn survives_luma_noise_of_30() {
        let mut state = 0x1234_5678_9abc_def1u64;
        for width in [320, 1280, 1281, 1920] {
            let height = 32;
            let mut data = painted(width, height, T);
            let luma = (width * height) as usize;
            for p in &mut data[..luma] {
                *p = (i32::from(*p) + noise(&mut state)).clamp(0, 255) as u8;
            }
            assert_eq!(
                read_timecode(&frame(width, height, data)),
                Some(T),
                "width {width}"
            );
        }
    }

    #[test]
    fn last_block_takes_the_remainder() {
        assert_eq!(block_span(1281, 62), (1240, 1260));
        assert_eq!(block_span(1281, 63), (1260, 1281));
        let data = painted(1281, 16, u64::MAX);
        assert!(data[..1281].iter().all(|&p| p == LUMA_ONE));
    }

    #[test]
    fn chroma_under_the_band_is_neutral() {
        let (w, h) = (130u32, 20u32);
        let data = painted(w, h, T);
        let luma = (w * h) as usize;
        let cw = w.div_ceil(2) as usize;
        assert!(data[luma..luma + 8 * cw].iter().all(|&c| c == 128));
        assert_eq!(data[luma + 8 * cw], 100, "row 8 of chroma is untouched");
    }

    #[test]
    fn no_timecode_in_a_plain_picture() {
        let f = frame(320, 32, vec![100; VideoFrame::byte_len(320, 32)]);
        assert_eq!(read_timecode(&f), None);
        let f = frame(320, 32, vec![16; VideoFrame::byte_len(320, 32)]);
        assert_eq!(read_timecode(&f), None, "all zeros is year 1970");
    }

    #[test]
    fn implausible_times_are_refused() {
        for t in [0, 1_000, YEAR_2100_MICROS, u64::MAX] {
            let f = frame(320, 16, painted(320, 16, t));
            assert_eq!(read_timecode(&f), None, "{t}");
        }
    }

    #[test]
    fn a_smeared_block_is_refused() {
        let (w, h) = (640u32, 16u32);
        let mut data = painted(w, h, T);
        let (a, b) = block_span(w, 20);
        for r in 0..16 {
            data[r * w as usize + a..r * w as usize + b].fill(126);
        }
        assert_eq!(read_timecode(&frame(w, h, data)), None);
    }

    #[test]
    fn small_pictures_carry_no_timecode() {
        let mut y = vec![0; 63 * 16];
        let mut u = vec![0; 32 * 8];
        let mut v = vec![0; 32 * 8];
        assert!(!write_timecode(&mut y, &mut u, &mut v, 63, 16, T));
        assert!(y.iter().all(|&p| p == 0));
        let f = frame(64, 15, vec![235; VideoFrame::byte_len(64, 15)]);
        assert_eq!(read_timecode(&f), None);
    }

    #[test]
    fn padded_strides_are_read() {
        let (w, h, stride) = (320u32, 16u32, 384usize);
        let data = painted(w, h, T);
        let mut padded = vec![0u8; stride * h as usize];
        for r in 0..h as usize {
            padded[r * stride..r * stride + w as usize]
                .copy_from_slice(&data[r * w as usize..(r + 1) * w as usize]);
        }
        assert_eq!(read_timecode_luma(&padded, stride, w, h), Some(T));
    }
}
