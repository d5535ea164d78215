//! I420 downscaling for lighter renditions, and the rendition sizes named like Livepeer's profiles.
//!
//! [`Scaler`] resamples each plane with a separable triangle (tent) filter
//! whose support widens with the reduction ratio: bilinear when enlarging,
//! and an area-weighted prefilter when shrinking, so 720p → 144p averages
//! about ten source lines per output line instead of aliasing. Coefficients
//! are precomputed per output row and column in 14-bit fixed point and
//! normalised to sum exactly to one, so a flat picture stays exactly flat.
//! The vertical pass runs first over whole rows (a multiply-accumulate
//! over contiguous `u8` → `u32` lanes that the compiler vectorises) into a
//! 16-bit intermediate with 8 fractional bits; the horizontal pass then
//! works on the already-reduced number of rows. Chroma planes are treated
//! like luma at their own size (chroma siting is not shifted).
//!
//! [`Rendition`] maps `P144p30fps16x9` and its siblings to an output size:
//! the source picture fitted inside the 16:9 box of that height with its
//! aspect ratio kept, even dimensions, never larger than the source.

use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use pstream_core::VideoFrame;
use thiserror::Error;

/// Fixed-point precision of the filter coefficients.
const COEF_BITS: u32 = 14;
/// One, in coefficient units.
const COEF_ONE: i32 = 1 << COEF_BITS;
/// Fractional bits kept in the intermediate (vertically filtered) rows.
const MID_BITS: u32 = 8;

/// What went wrong while scaling.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScaleError {
    /// A zero or odd-sized output, or an empty input.
    #[error("cannot scale {src_w}x{src_h} to {dst_w}x{dst_h}: {why}")]
    Size {
        /// Source width.
        src_w: u32,
        /// Source height.
        src_h: u32,
        /// Output width.
        dst_w: u32,
        /// Output height.
        dst_h: u32,
        /// What is wrong with the sizes.
        why: &'static str,
    },
    /// A frame of another size than the scaler was built for.
    #[error("scaler built for {expected_w}x{expected_h} got a {width}x{height} frame")]
    FrameSize {
        /// Configured source width.
        expected_w: u32,
        /// Configured source height.
        expected_h: u32,
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
    },
    /// An output buffer of the wrong length.
    #[error("output buffer holds {actual} bytes, {expected} needed")]
    OutputLen {
        /// Bytes an I420 picture of the output size takes.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

/// Precomputed taps of a 1-D resampling: for output `i`, `taps` coefficients from source `start[i]`.
#[derive(Debug, Clone)]
struct Filter {
    taps: usize,
    start: Vec<u32>,
    /// `start.len() * taps` coefficients, zero-padded; each group sums to [`COEF_ONE`].
    coefs: Vec<i16>,
}

impl Filter {
    /// A tent filter from `src` samples to `dst` samples, support scaled by the reduction ratio.
    fn new(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let radius = scale.max(1.0);
        let taps = (2.0 * radius).ceil() as usize + 1;
        let mut start = Vec::with_capacity(dst);
        let mut coefs = vec![0i16; dst * taps];
        let mut weights = vec![0f64; taps];
        for i in 0..dst {
            let center = (i as f64 + 0.5) * scale - 0.5;
            let first = (center - radius).floor() as isize + 1;
            // Clamp the window into the source; edge samples take the weight of samples outside.
            let lo = first.clamp(0, src.saturating_sub(taps) as isize) as usize;
            weights.iter_mut().for_each(|w| *w = 0.0);
            for k in 0..taps {
                let j = first + k as isize;
                let w = (1.0 - ((j as f64 - center).abs() / radius)).max(0.0);
                let idx = (j.clamp(0, src as isize - 1) as usize).saturating_sub(lo);
                if let Some(slot) = weights.get_mut(idx) {
                    *slot += w;
                }
            }
            let sum: f64 = weights.iter().sum();
            let group = &mut coefs[i * taps..(i + 1) * taps];
            let mut total = 0i32;
            for (c, w) in group.iter_mut().zip(&weights) {
                *c = (w / sum * f64::from(COEF_ONE)).round() as i16;
                total += i32::from(*c);
            }
            // Put the rounding error on the largest tap so the group sums to exactly one.
            if let Some(max) = group.iter_mut().max_by_key(|c| **c) {
                *max += (COEF_ONE - total) as i16;
            }
            start.push(lo as u32);
        }
        Self { taps, start, coefs }
    }
}

/// Scaling of one plane size to another.
#[derive(Debug, Clone)]
struct PlaneScaler {
    src_w: usize,
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
    horizontal: Filter,
    vertical: Filter,
}

impl PlaneScaler {
    fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Self {
        Self {
            src_w,
            src_h,
            dst_w,
            dst_h,
            horizontal: Filter::new(src_w, dst_w),
            vertical: Filter::new(src_h, dst_h),
        }
    }

    /// Scales `src` (stride = width) into `dst` (stride = width) using the
    /// scratch rows: with AVX2 where the CPU has it (the binary is built for
    /// baseline x86-64, whose SSE2 lanes are half as wide), else as built.
    fn run(&self, src: &[u8], dst: &mut [u8], rows: &mut Vec<(usize, u32)>, mid: &mut Vec<u16>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.run_avx2(src, dst, rows, mid) };
            return;
        }
        self.run_any(src, dst, rows, mid);
    }

    /// [`Self::run_any`] compiled with AVX2: the same code, which the
    /// compiler vectorises over 256-bit lanes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(
        &self,
        src: &[u8],
        dst: &mut [u8],
        rows: &mut Vec<(usize, u32)>,
        mid: &mut Vec<u16>,
    ) {
        self.run_any(src, dst, rows, mid);
    }

    #[inline(always)]
    fn run_any(
        &self,
        src: &[u8],
        dst: &mut [u8],
        rows: &mut Vec<(usize, u32)>,
        mid: &mut Vec<u16>,
    ) {
        let (sw, dw) = (self.src_w, self.dst_w);
        let ht = self.horizontal.taps;
        // The intermediate row is padded so the horizontal taps never need bounds tricks.
        mid.clear();
        mid.resize(sw + ht, 0);
        let vt = self.vertical.taps;
        for (oy, out_row) in dst.chunks_exact_mut(dw).take(self.dst_h).enumerate() {
            let y0 = self.vertical.start[oy] as usize;
            // The source rows this output row needs, with their weights.
            rows.clear();
            for (k, &c) in self.vertical.coefs[oy * vt..(oy + 1) * vt]
                .iter()
                .enumerate()
            {
                if c != 0 {
                    rows.push(((y0 + k).min(self.src_h - 1) * sw, c as u32));
                }
            }
            // Columns in blocks whose accumulators stay in vector registers.
            const BLOCK: usize = 32;
            for (block, x) in mid[..sw].chunks_mut(BLOCK).zip((0..).step_by(BLOCK)) {
                let n = block.len();
                let mut acc = [0u32; BLOCK];
                for &(off, c) in rows.iter() {
                    let Some(row) = src.get(off + x..off + x + n) else {
                        continue;
                    };
                    for (a, &p) in acc.iter_mut().zip(row) {
                        *a += u32::from(p) * c;
                    }
                }
                for (m, &a) in block.iter_mut().zip(&acc) {
                    *m = ((a + (1 << (COEF_BITS - MID_BITS - 1))) >> (COEF_BITS - MID_BITS)) as u16;
                }
            }
            horizontal(out_row, mid, &self.horizontal);
        }
    }
}

/// Filters one intermediate row horizontally into `out`, with the tap count
/// known at compile time for the common ratios so the dot products unroll.
#[inline(always)]
fn horizontal(out: &mut [u8], mid: &[u16], f: &Filter) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match f.taps {
                $($n => horizontal_n::<$n>(out, mid, f),)*
                _ => horizontal_dyn(out, mid, f),
            }
        };
    }
    fixed!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17);
}

/// Rounds a horizontally filtered sum back to an 8-bit sample.
#[inline(always)]
fn to_sample(sum: u32) -> u8 {
    ((sum + (1 << (COEF_BITS + MID_BITS - 1))) >> (COEF_BITS + MID_BITS)).min(255) as u8
}

#[inline(always)]
fn horizontal_n<const N: usize>(out: &mut [u8], mid: &[u16], f: &Filter) {
    for ((o, &x0), coefs) in out.iter_mut().zip(&f.start).zip(f.coefs.chunks_exact(N)) {
        let x0 = x0 as usize;
        let (Some(taps), Ok(coefs)) = (mid.get(x0..x0 + N), <&[i16; N]>::try_from(coefs)) else {
            continue;
        };
        let mut sum = 0u32;
        for k in 0..N {
            sum += u32::from(taps[k]) * coefs[k] as u32;
        }
        *o = to_sample(sum);
    }
}

#[inline(always)]
fn horizontal_dyn(out: &mut [u8], mid: &[u16], f: &Filter) {
    let n = f.taps;
    for ((o, &x0), coefs) in out.iter_mut().zip(&f.start).zip(f.coefs.chunks_exact(n)) {
        let x0 = x0 as usize;
        let taps = &mid[x0..x0 + n];
        let sum: u32 = taps
            .iter()
            .zip(coefs)
            .map(|(&m, &c)| u32::from(m) * c as u32)
            .sum();
        *o = to_sample(sum);
    }
}

/// A reusable I420 scaler from one picture size to another.
#[derive(Debug, Clone)]
pub struct Scaler {
    src: (u32, u32),
    dst: (u32, u32),
    luma: PlaneScaler,
    chroma: PlaneScaler,
    rows: Vec<(usize, u32)>,
    mid: Vec<u16>,
}

impl Scaler {
    /// A scaler from `src_w`x`src_h` to `dst_w`x`dst_h` (output even-sized, at most 8192 per side).
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Result<Self, ScaleError> {
        let err = |why| ScaleError::Size {
            src_w,
            src_h,
            dst_w,
            dst_h,
            why,
        };
        if src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 {
            return Err(err("empty picture"));
        }
        if dst_w % 2 != 0 || dst_h % 2 != 0 {
            return Err(err("output must have even dimensions"));
        }
        if src_w.max(src_h).max(dst_w).max(dst_h) > 8192 {
            return Err(err("larger than 8192 pixels"));
        }
        let (scw, sch) = VideoFrame::chroma_size(src_w, src_h);
        let (dcw, dch) = VideoFrame::chroma_size(dst_w, dst_h);
        let u = |v: u32| v as usize;
        Ok(Self {
            src: (src_w, src_h),
            dst: (dst_w, dst_h),
            luma: PlaneScaler::new(u(src_w), u(src_h), u(dst_w), u(dst_h)),
            chroma: PlaneScaler::new(u(scw), u(sch), u(dcw), u(dch)),
            rows: Vec::new(),
            mid: Vec::new(),
        })
    }

    /// The source size this scaler takes.
    pub fn source_size(&self) -> (u32, u32) {
        self.src
    }

    /// The output size this scaler produces.
    pub fn output_size(&self) -> (u32, u32) {
        self.dst
    }

    /// Scales a frame into a new frame with the same capture and media times.
    pub fn scale(&mut self, frame: &VideoFrame) -> Result<VideoFrame, ScaleError> {
        let (w, h) = self.dst;
        let mut out = BytesMut::zeroed(VideoFrame::byte_len(w, h));
        self.scale_into(frame, &mut out)?;
        VideoFrame::new(w, h, out.freeze(), frame.capture, frame.pts).map_err(|_| {
            ScaleError::OutputLen {
                expected: VideoFrame::byte_len(w, h),
                actual: 0,
            }
        })
    }

    /// Scales a frame into `out`, which must hold exactly one I420 picture of the output size.
    pub fn scale_into(&mut self, frame: &VideoFrame, out: &mut [u8]) -> Result<(), ScaleError> {
        if (frame.width(), frame.height()) != self.src {
            return Err(ScaleError::FrameSize {
                expected_w: self.src.0,
                expected_h: self.src.1,
                width: frame.width(),
                height: frame.height(),
            });
        }
        let expected = VideoFrame::byte_len(self.dst.0, self.dst.1);
        if out.len() != expected {
            return Err(ScaleError::OutputLen {
                expected,
                actual: out.len(),
            });
        }
        let luma_len = self.luma.dst_w * self.luma.dst_h;
        let chroma_len = self.chroma.dst_w * self.chroma.dst_h;
        let (y, rest) = out.split_at_mut(luma_len);
        let (u, v) = rest.split_at_mut(chroma_len);
        self.luma.run(frame.y(), y, &mut self.rows, &mut self.mid);
        self.chroma.run(frame.u(), u, &mut self.rows, &mut self.mid);
        self.chroma.run(frame.v(), v, &mut self.rows, &mut self.mid);
        Ok(())
    }
}

/// A lighter rendition, named like Livepeer's transcoding profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rendition {
    /// 144 lines, 30 fps, inside 256x144.
    P144p30fps16x9,
    /// 240 lines, 30 fps, inside 426x240.
    P240p30fps16x9,
    /// 360 lines, 30 fps, inside 640x360.
    P360p30fps16x9,
    /// 720 lines, 30 fps, inside 1280x720.
    P720p30fps16x9,
}

/// A rendition name that is not one of [`Rendition::ALL`].
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown rendition {0:?} (known: P144p30fps16x9, P240p30fps16x9, P360p30fps16x9, P720p30fps16x9)")]
pub struct UnknownRendition(pub String);

impl Rendition {
    /// Every rendition, smallest first.
    pub const ALL: [Rendition; 4] = [
        Rendition::P144p30fps16x9,
        Rendition::P240p30fps16x9,
        Rendition::P360p30fps16x9,
        Rendition::P720p30fps16x9,
    ];

    /// The profile name, e.g. `P144p30fps16x9` (also used in URLs).
    pub fn name(self) -> &'static str {
        match self {
            Rendition::P144p30fps16x9 => "P144p30fps16x9",
            Rendition::P240p30fps16x9 => "P240p30fps16x9",
            Rendition::P360p30fps16x9 => "P360p30fps16x9",
            Rendition::P720p30fps16x9 => "P720p30fps16x9",
        }
    }

    /// The 16:9 box the picture is fitted into: (width, height).
    pub fn box_size(self) -> (u32, u32) {
        match self {
            Rendition::P144p30fps16x9 => (256, 144),
            Rendition::P240p30fps16x9 => (426, 240),
            Rendition::P360p30fps16x9 => (640, 360),
            Rendition::P720p30fps16x9 => (1280, 720),
        }
    }

    /// Output frame rate.
    pub fn fps(self) -> u32 {
        30
    }

    /// Video bitrate for the encoder, as Livepeer's profiles use.
    pub fn bitrate_bps(self) -> u32 {
        match self {
            Rendition::P144p30fps16x9 => 400_000,
            Rendition::P240p30fps16x9 => 600_000,
            Rendition::P360p30fps16x9 => 1_200_000,
            Rendition::P720p30fps16x9 => 4_000_000,
        }
    }

    /// The output size for a source: fitted in [`Self::box_size`], aspect kept, even, never enlarged.
    ///
    /// A 640x480 source gives 192x144 for `P144p30fps16x9`; 1280x720 gives 256x144.
    pub fn output_size(self, src_w: u32, src_h: u32) -> (u32, u32) {
        fit_even(src_w, src_h, self.box_size())
    }
}

/// Fits `src` inside `bounds` keeping its aspect ratio, rounded to even sizes, never larger than `src`.
pub fn fit_even(src_w: u32, src_h: u32, bounds: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (u64::from(src_w.max(1)), u64::from(src_h.max(1)));
    // The box, shrunk to the source and to even sizes (at least 2).
    let floor_even = |v: u64| (v & !1).max(2);
    let bw = floor_even(u64::from(bounds.0).min(sw));
    let bh = floor_even(u64::from(bounds.1).min(sh));
    // `num / den` rounded to the nearest even integer, within 2..=limit.
    let even = |num: u64, den: u64, limit: u64| -> u32 {
        let v = ((num + den) / (2 * den) * 2).clamp(2, limit);
        u32::try_from(v).unwrap_or(!1)
    };
    if sw * bh >= sh * bw {
        // Wider than the box: the width fills it.
        (even(bw, 1, bw), even(sh * bw, sw, bh))
    } else {
        (even(sw * bh, sh, bw), even(bh, 1, bh))
    }
}

impl fmt::Display for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rendition {
    type Err = UnknownRendition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rendition::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRendition(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::{Duration, Instant};

    fn frame(w: u32, h: u32, f: impl Fn(usize, usize, usize) -> u8) -> VideoFrame {
        let (cw, ch) = VideoFrame::chroma_size(w, h);
        let mut d = Vec::with_capacity(VideoFrame::byte_len(w, h));
        for (plane, pw, ph) in [(0, w, h), (1, cw, ch), (2, cw, ch)] {
            for y in 0..ph as usize {
                for x in 0..pw as usize {
                    d.push(f(plane, x, y));
                }
            }
        }
        VideoFrame::new(
            w,
            h,
            Bytes::from(d),
            Instant::now(),
            Duration::from_millis(40),
        )
        .expect("frame")
    }

    #[test]
    fn rendition_sizes_keep_the_aspect_inside_the_box() {
        use Rendition::*;
        assert_eq!(P144p30fps16x9.output_size(640, 480), (192, 144));
        assert_eq!(P144p30fps16x9.output_size(1280, 720), (256, 144));
        assert_eq!(P144p30fps16x9.output_size(1920, 1080), (256, 144));
        assert_eq!(P240p30fps16x9.output_size(1280, 720), (426, 240));
        assert_eq!(P360p30fps16x9.output_size(640, 480), (480, 360));
        assert_eq!(P720p30fps16x9.output_size(1920, 1080), (1280, 720));
        // Wider than 16:9: the width fills the box.
        assert_eq!(P144p30fps16x9.output_size(2560, 1080), (256, 108));
        // Portrait.
        assert_eq!(P144p30fps16x9.output_size(720, 1280), (82, 144));
        // Never enlarged: a 640x480 source stays 640x480 for 720p.
        assert_eq!(P720p30fps16x9.output_size(640, 480), (640, 480));
        // Odd sources still give even sizes.
        let (w, h) = P144p30fps16x9.output_size(641, 479);
        assert!(w % 2 == 0 && h % 2 == 0 && w <= 256 && h <= 144, "{w}x{h}");
        assert_eq!(fit_even(1, 1, (256, 144)), (2, 2));
        for r in Rendition::ALL {
            assert_eq!(r.name().parse::<Rendition>(), Ok(r));
            assert_eq!(r.fps(), 30);
            assert_eq!(
                r.box_size().1,
                r.name()[1..4].trim_end_matches('p').parse().expect("h")
            );
        }
        assert!("P1080p".parse::<Rendition>().is_err());
    }

    #[test]
    fn flat_colour_stays_flat() {
        for (sw, sh, dw, dh) in [
            (1280, 720, 256, 144),
            (640, 480, 192, 144),
            (64, 48, 100, 70),
        ] {
            let f = frame(sw, sh, |p, _, _| [77, 200, 16][p]);
            let out = Scaler::new(sw, sh, dw, dh)
                .expect("scaler")
                .scale(&f)
                .expect("scale");
            assert_eq!((out.width(), out.height()), (dw, dh));
            assert!(out.y().iter().all(|&v| v == 77));
            assert!(out.u().iter().all(|&v| v == 200));
            assert!(out.v().iter().all(|&v| v == 16));
            assert_eq!(out.pts, f.pts);
        }
    }

    #[test]
    fn same_size_is_an_exact_copy() {
        let f = frame(33, 17, |p, x, y| (x * 7 + y * 13 + p * 50) as u8);
        let mut s = Scaler::new(33, 17, 32, 16).expect("scaler");
        assert_eq!(s.output_size(), (32, 16));
        let f2 = frame(32, 16, |p, x, y| (x * 7 + y * 13 + p * 50) as u8);
        let out = Scaler::new(32, 16, 32, 16)
            .expect("scaler")
            .scale(&f2)
            .expect("scale");
        assert_eq!(out.data(), f2.data());
        assert!(s.scale(&f2).is_err(), "wrong source size");
        assert!(s.scale(&f).is_ok());
    }

    #[test]
    fn known_values_when_halving() {
        // Columns of 0 and 200 in pairs: halving gives alternating values with
        // the tent's ¾/¼ blend at the pair boundaries.
        let f = frame(16, 4, |_, x, _| if (x / 2) % 2 == 0 { 0 } else { 200 });
        let out = Scaler::new(16, 4, 8, 2)
            .expect("scaler")
            .scale(&f)
            .expect("scale");
        // Output x=1 is centred on input 2.5: taps 1..4 weigh ¼ ¾ ¾ ¼ over 0, 200, 200, 0.
        assert_eq!(out.y()[1], 150);
        assert_eq!(out.y()[2], 50);
        // A vertical edge at row 8 of 16 shrunk 4×: top 0, bottom 200, symmetric across.
        let f = frame(8, 16, |_, _, y| if y < 8 { 0 } else { 200 });
        let out = Scaler::new(8, 16, 8, 4)
            .expect("scaler")
            .scale(&f)
            .expect("scale");
        let col: Vec<u8> = (0..4).map(|y| out.y()[y * 8]).collect();
        assert_eq!(col[0], 0);
        assert_eq!(col[3], 200);
        assert_eq!(u16::from(col[1]) + u16::from(col[2]), 200);
        assert!(col[1] < 100 && col[1] > 0);
    }

    #[test]
    fn fine_detail_averages_out_instead_of_aliasing() {
        // One-pixel stripes (the Nyquist frequency) shrunk 5×: a point sampler
        // gives 0s and 255s; the tent leaves under ±5 % of the contrast.
        let f = frame(1280, 720, |_, x, _| if x % 2 == 0 { 0 } else { 255 });
        let out = Scaler::new(1280, 720, 256, 144)
            .expect("scaler")
            .scale(&f)
            .expect("scale");
        for row in out.y().chunks(256) {
            // The edge columns see replicated edge pixels (0 left, 255 right).
            assert!(
                row[1..255].iter().all(|&v| (115..=140).contains(&v)),
                "{row:?}"
            );
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(Scaler::new(0, 10, 2, 2).is_err());
        assert!(Scaler::new(10, 10, 3, 2).is_err());
        assert!(Scaler::new(10, 10, 2, 0).is_err());
        assert!(Scaler::new(10_000, 10, 2, 2).is_err());
        let mut s = Scaler::new(4, 4, 2, 2).expect("scaler");
        let f = frame(4, 4, |_, _, _| 1);
        assert_eq!(
            s.scale_into(&f, &mut [0; 5]),
            Err(ScaleError::OutputLen {
                expected: 6,
                actual: 5
            })
        );
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use std::time::Instant;

    /// AVX2 against the baseline build of the same code, one process:
    /// `cargo test --release -p pstream-codec --lib scale_paths -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn scale_paths() {
        let (sw, sh) = (1920usize, 1080usize);
        let src: Vec<u8> = (0..sw * sh).map(|i| ((i * 7) % 251) as u8).collect();
        for (dw, dh) in [(1280usize, 720usize), (640, 360), (256, 144)] {
            let p = PlaneScaler::new(sw, sh, dw, dh);
            let mut dst = vec![0u8; dw * dh];
            let mut other = vec![0u8; dw * dh];
            let (mut rows, mut mid) = (Vec::new(), Vec::new());
            let n = 50;
            let t = Instant::now();
            for _ in 0..n {
                p.run_any(&src, &mut dst, &mut rows, &mut mid);
            }
            let any = t.elapsed() / n;
            let t = Instant::now();
            for _ in 0..n {
                p.run(&src, &mut other, &mut rows, &mut mid);
            }
            let best = t.elapsed() / n;
            assert_eq!(dst, other);
            println!("luma {sw}x{sh} -> {dw}x{dh}: baseline {any:?}, run {best:?}");
        }
    }
}
