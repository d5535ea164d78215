//! A synthetic moving test pattern with the latency timecode painted in.
//!
//! Colour bars fill the top two thirds, a static luma ramp the next sixth and
//! scrolling stripes the bottom sixth; a box whose colour changes every frame
//! bounces across the bars, so every frame differs and the encoder has real
//! motion to work on. The top 16 rows carry the capture time (see
//! [`crate::timecode`]).
//!
//! `test:noise` ([`TestPattern::with_noise`]) adds fresh grain to every
//! row below the timecode in every frame, as a grainy camera does: the
//! encoder cannot predict it, so a few Mbit/s at 720p are needed to keep
//! up, heavy enough for a bandwidth cap to bite while the timecode still
//! tells each picture's age.
//!
//! The static parts are rendered once; each frame is one copy of them into a
//! fresh buffer (the previous frame may still be owned by the encoder), then a
//! few row fills and copies for the moving parts.

use bytes::{Bytes, BytesMut};
use pstream_core::{
    Behind, MediaError, Pacer, PipelineClock, VideoFormat, VideoFrame, VideoSource,
};

use crate::timecode::write_timecode;
use crate::CaptureError;

/// 75% colour bars in BT.601 video range: white, yellow, cyan, green, magenta, red, blue.
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];

/// Horizontal speed of the box in pixels per frame.
const BOX_SPEED_X: u64 = 6;
/// Vertical speed of the box in pixels per frame.
const BOX_SPEED_Y: u64 = 4;
/// Horizontal speed of the stripes in pixels per frame.
const STRIPE_SPEED: u64 = 4;
/// Period of the stripes in pixels.
const STRIPE_PERIOD: usize = 64;
/// Grain of `test:noise`: luma moves by up to this either way.
const NOISE_AMPLITUDE: i16 = 12;
/// Length of the table of grain the rows are cut from.
const NOISE_TABLE: usize = 1 << 16;

/// The renderer behind [`TestPatternSource`], usable without pacing.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    /// The static picture: bars, ramp, neutral stripes area; all three planes.
    background: Vec<u8>,
    /// One luma row of stripes, `width + STRIPE_PERIOD` long, sliced to scroll.
    stripes: Vec<u8>,
    /// Rows `[bars_top, bars_end)` hold the bars the box moves over.
    bars_top: usize,
    bars_end: usize,
    /// Rows `[strip_top, height)` hold the scrolling stripes.
    strip_top: usize,
    /// Side of the (square) box in luma pixels.
    box_side: usize,
    /// Grain added below the timecode, if any: a table the rows are cut
    /// from at offsets that change every frame and row.
    noise: Option<Vec<i8>>,
}

impl TestPattern {
    /// Renders the static parts for a picture of this size (both at least 1).
    pub fn new(width: u32, height: u32) -> Self {
        let (w, h) = (width.max(1) as usize, height.max(1) as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let even = |r: usize| r & !1;
        let bars_top = if h > 32 { 16 } else { 0 };
        let bars_end = even(h * 2 / 3).max(bars_top);
        let strip_top = even(h * 5 / 6).max(bars_end);
        let box_side = (h / 6).max(2) & !1;

        let mut background = vec![128u8; w * h + 2 * cw * ch];
        let (y, rest) = background.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);

        let bar = |x: usize| BARS[(x * BARS.len() / w).min(BARS.len() - 1)];
        let bar_y: Vec<u8> = (0..w).map(|x| bar(x).0).collect();
        let bar_u: Vec<u8> = (0..cw).map(|c| bar(2 * c).1).collect();
        let bar_v: Vec<u8> = (0..cw).map(|c| bar(2 * c).2).collect();
        let ramp: Vec<u8> = (0..w)
            .map(|x| (16 + x * 219 / w.saturating_sub(1).max(1)) as u8)
            .collect();
        for r in 0..h {
            let row = &mut y[r * w..(r + 1) * w];
            if r < bars_end {
                row.copy_from_slice(&bar_y);
            } else if r < strip_top {
                row.copy_from_slice(&ramp);
            } else {
                row.fill(16);
            }
        }
        for r in 0..ch {
            if 2 * r < bars_end {
                u[r * cw..(r + 1) * cw].copy_from_slice(&bar_u);
                v[r * cw..(r + 1) * cw].copy_from_slice(&bar_v);
            }
        }
        let stripes = (0..w + STRIPE_PERIOD)
            .map(|x| {
                // A triangle wave between 16 and 235.
                let t = x % STRIPE_PERIOD;
                let half = STRIPE_PERIOD / 2;
                let level = if t < half { t } else { STRIPE_PERIOD - t };
                (16 + level * 219 / half) as u8
            })
            .collect();
        Self {
            width: w,
            height: h,
            background,
            stripes,
            bars_top,
            bars_end,
            strip_top,
            box_side,
            noise: None,
        }
    }

    /// The same pattern with fresh grain in every frame (`test:noise`).
    pub fn with_noise(mut self) -> Self {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let span = (2 * NOISE_AMPLITUDE + 1) as u64;
        let table = (0..NOISE_TABLE)
            .map(|_| {
                x = xorshift(x);
                ((x >> 32) % span) as i8 - NOISE_AMPLITUDE as i8
            })
            .collect();
        self.noise = Some(table);
        self
    }

    /// Renders frame number `n` with `micros` (Unix epoch) in its timecode.
    pub fn render(&self, n: u64, micros: u64) -> Bytes {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut buf = BytesMut::with_capacity(self.background.len());
        buf.extend_from_slice(&self.background);
        let (y, rest) = buf.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);

        let off = (n.wrapping_mul(STRIPE_SPEED) % STRIPE_PERIOD as u64) as usize;
        let stripe_row = &self.stripes[off..off + w];
        for r in self.strip_top..h {
            y[r * w..(r + 1) * w].copy_from_slice(stripe_row);
        }

        // The box: position bounces, colour cycles with the frame number.
        let side_x = self.box_side.min(w);
        let side_y = self.box_side.min(self.bars_end - self.bars_top);
        if side_x > 0 && side_y > 0 {
            let x0 = bounce(n, BOX_SPEED_X, w - side_x) & !1;
            let y0 = self.bars_top
                + (bounce(n, BOX_SPEED_Y, self.bars_end - self.bars_top - side_y) & !1);
            let luma = (16 + (n.wrapping_mul(7) % 220)) as u8;
            let cb = (16 + (n.wrapping_mul(5) % 225)) as u8;
            let cr = (240 - (n.wrapping_mul(3) % 225)) as u8;
            for r in y0..y0 + side_y {
                y[r * w + x0..r * w + x0 + side_x].fill(luma);
            }
            let (cx0, cx1) = (x0 / 2, (x0 + side_x).div_ceil(2).min(cw));
            for r in y0 / 2..(y0 + side_y).div_ceil(2).min(ch) {
                u[r * cw + cx0..r * cw + cx1].fill(cb);
                v[r * cw + cx0..r * cw + cx1].fill(cr);
            }
        }

        if let Some(noise) = &self.noise {
            // Each row takes the table from its own offset, new every frame:
            // no motion vector finds the last frame's grain.
            let mut seed = xorshift(n.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
            let room = noise.len().saturating_sub(w).max(1);
            for r in self.bars_top..h {
                seed = xorshift(seed);
                let off = (seed % room as u64) as usize;
                let grain = &noise[off..(off + w).min(noise.len())];
                for (p, g) in y[r * w..(r + 1) * w].iter_mut().zip(grain) {
                    *p = (i16::from(*p) + i16::from(*g)).clamp(16, 235) as u8;
                }
            }
        }
        write_timecode(y, u, v, w as u32, h as u32, micros);
        buf.freeze()
    }
}

/// One step of Marsaglia's xorshift64: cheap, and random enough for grain.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A triangle wave: position after `n` steps of `speed` within `0..=range`.
fn bounce(n: u64, speed: u64, range: usize) -> usize {
    if range == 0 {
        return 0;
    }
    let range = range as u64;
    let t = n.wrapping_mul(speed) % (2 * range);
    (if t <= range { t } else { 2 * range - t }) as usize
}

/// A live source of moving test pictures, paced on the pipeline clock.
///
/// Frame `n` is due `n / fps` after the first call to `next_frame`; a caller
/// that falls behind gets the frame due now and the ones in between are
/// skipped (counted by [`TestPatternSource::skipped`]), never a burst.
#[derive(Debug)]
pub struct TestPatternSource {
    format: VideoFormat,
    clock: PipelineClock,
    pacer: Pacer,
    pattern: TestPattern,
}

impl TestPatternSource {
    /// A test pattern of the given size and rate, timed on `clock`.
    pub fn new(format: VideoFormat, clock: PipelineClock) -> Result<Self, CaptureError> {
        format.validate("test")?;
        Ok(Self {
            format,
            clock,
            pacer: Pacer::new(format.fps_num, format.fps_den, Behind::Skip),
            pattern: TestPattern::new(format.width, format.height),
        })
    }

    /// The pattern with fresh grain in every frame (`test:noise`).
    pub fn with_noise(mut self) -> Self {
        self.pattern = self.pattern.with_noise();
        self
    }

    /// How many frames were skipped because the caller fell behind.
    pub fn skipped(&self) -> u64 {
        self.pacer.skipped()
    }
}

impl VideoSource for TestPatternSource {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        let n = self.pacer.wait(&self.clock);
        // Stamped with the instant the picture was due, as a camera stamps
        // its exposure: a thread that wakes late under load does not make
        // the stamps (RTP timestamps, the receiver's frame-rate estimate)
        // jitter, and the timecode's latency counts the late wake-up.
        let capture = self.pacer.due(n).unwrap_or_else(|| self.clock.now());
        let data = self.pattern.render(n, self.clock.unix_micros(capture));
        VideoFrame::new(
            self.format.width,
            self.format.height,
            data,
            capture,
            self.pacer.pts(n),
        )
        .map(Some)
        .map_err(|source| {
            CaptureError::Frame {
                name: "test".into(),
                source,
            }
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::timecode::read_timecode;

    fn format(width: u32, height: u32, fps: u32) -> VideoFormat {
        VideoFormat {
            width,
            height,
            fps_num: fps,
            fps_den: 1,
        }
    }

    #[test]
    fn frames_differ_and_carry_their_capture_time() {
        let clock = PipelineClock::start();
        let mut src = TestPatternSource::new(format(320, 240, 100), clock).expect("valid");
        let mut last: Option<VideoFrame> = None;
        for i in 0..5 {
            let f = src.next_frame().expect("no error").expect("endless");
            assert_eq!((f.width(), f.height()), (320, 240));
            let tc = read_timecode(&f).expect("timecode");
            assert_eq!(tc, clock.unix_micros(f.capture));
            if let Some(prev) = &last {
                assert_ne!(prev.y()[16 * 320..], f.y()[16 * 320..], "frame {i} moved");
                assert!(f.pts > prev.pts);
                assert!(f.capture >= prev.capture);
            }
            last = Some(f);
        }
    }

    #[test]
    fn a_slow_caller_skips_frames_instead_of_bursting() {
        let clock = PipelineClock::start();
        let mut src = TestPatternSource::new(format(64, 16, 50), clock).expect("valid");
        let first = src.next_frame().expect("ok").expect("frame");
        std::thread::sleep(Duration::from_millis(150));
        let t = Instant::now();
        let second = src.next_frame().expect("ok").expect("frame");
        assert!(t.elapsed() < Duration::from_millis(15), "due at once");
        assert!(src.skipped() >= 5, "skipped {}", src.skipped());
        assert!(second.pts - first.pts >= Duration::from_millis(120));
        // Then paced again: the next picture is a later tick than the late
        // one, and it is not handed out before its instant. Judged by the
        // stamps, not by a wall-clock margin, which a slow or loaded machine
        // (qemu-user under load) can eat: the 150 ms sleep overshooting by
        // 5 ms leaves the next tick less than 5 ms away.
        let third = src.next_frame().expect("ok").expect("frame");
        assert!(third.capture > second.capture, "a later tick");
        assert!(
            third.pts - second.pts >= Duration::from_millis(20),
            "not a burst"
        );
        assert!(Instant::now() >= third.capture, "then paced again");
    }

    #[test]
    fn odd_and_tiny_sizes_render() {
        for (w, h) in [
            (1, 1),
            (2, 2),
            (3, 5),
            (63, 15),
            (64, 16),
            (65, 17),
            (1281, 721),
        ] {
            let p = TestPattern::new(w, h);
            for n in [0, 1, 77, 1_000_003] {
                let data = p.render(n, 1_714_566_896_789_012);
                assert_eq!(data.len(), VideoFrame::byte_len(w, h), "{w}x{h}");
            }
        }
    }

    #[test]
    fn box_moves_over_the_bars() {
        let p = TestPattern::new(1280, 720);
        let a = p.render(0, 0);
        let b = p.render(1, 0);
        let rows = 16 * 1280..480 * 1280;
        assert_ne!(a[rows.clone()], b[rows]);
    }

    #[test]
    fn renders_720p_quickly() {
        let p = TestPattern::new(1280, 720);
        let t = Instant::now();
        for n in 0..30 {
            std::hint::black_box(p.render(n, 1_714_566_896_789_012));
        }
        let per_frame = t.elapsed() / 30;
        println!("720p test pattern: {per_frame:?} per frame");
        // Generous: debug builds and a busy CI core; release is far below 1 ms.
        assert!(per_frame < Duration::from_millis(15), "{per_frame:?}");
    }

    #[test]
    fn noise_changes_every_frame_and_keeps_the_timecode() {
        let clock = PipelineClock::start();
        let mut src = TestPatternSource::new(format(1280, 720, 100), clock)
            .expect("valid")
            .with_noise();
        let a = src.next_frame().expect("ok").expect("frame");
        let b = src.next_frame().expect("ok").expect("frame");
        assert_eq!(read_timecode(&b), Some(clock.unix_micros(b.capture)));
        // Plain pattern rows (the ramp) differ from frame to frame in most
        // pixels, and from the noiseless pattern by at most the amplitude.
        let plain = TestPattern::new(1280, 720).render(1, 0);
        let row = 520 * 1280..521 * 1280;
        let moved = a.y()[row.clone()]
            .iter()
            .zip(&b.y()[row.clone()])
            .filter(|(p, q)| p != q)
            .count();
        assert!(moved > 1000, "{moved} of 1280 pixels changed");
        assert!(b.y()[row.clone()]
            .iter()
            .zip(&plain[row])
            .all(|(p, q)| (i16::from(*p) - i16::from(*q)).abs() <= NOISE_AMPLITUDE));
        let p = TestPattern::new(1280, 720).with_noise();
        let t = Instant::now();
        for n in 0..30 {
            std::hint::black_box(p.render(n, 0));
        }
        println!("720p noisy pattern: {:?} per frame", t.elapsed() / 30);
    }

    #[test]
    fn zero_rate_is_refused() {
        let e = TestPatternSource::new(format(320, 240, 0), PipelineClock::start())
            .expect_err("zero fps");
        assert!(e.to_string().starts_with("test: invalid format"), "{e}");
    }
}
