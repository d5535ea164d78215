//! GStreamer's raw video layouts, and their conversion to and from I420.
//!
//! A shmdata frame has no stride or offset fields: writer and follower
//! agree on GStreamer's default layout for the caps (what
//! `gst_video_info_set_format` computes), which pads rows to 4 bytes and
//! places the chroma planes after a luma plane of even height. Writers
//! that are not GStreamer (score) write the same layout, since GStreamer
//! is what reads them.
//!
//! RGB is converted with the BT.601 matrix in limited ("video") range, the
//! matrix of pstream's own pictures (the test pattern) and the one its
//! writer announces (`colorimetry=bt601`). Chroma is the mean of each 2x2
//! block, as GStreamer's default (centred) chroma siting gives.

use super::caps::{PixelFormat, VideoCaps};

/// Where one plane lies in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    /// Byte offset of its first row.
    pub offset: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
}

/// GStreamer's default layout of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The planes; only the first `planes` entries are used.
    pub plane: [Plane; 3],
    /// How many planes the format has.
    pub planes: usize,
    /// Bytes of a whole frame.
    pub size: usize,
}

fn up2(v: usize) -> usize {
    (v + 1) & !1
}

fn up4(v: usize) -> usize {
    (v + 3) & !3
}

impl Layout {
    /// The layout GStreamer gives a frame with these caps.
    pub fn of(caps: &VideoCaps) -> Layout {
        let (w, h) = (caps.width as usize, caps.height as usize);
        let none = Plane {
            offset: 0,
            stride: 0,
        };
        let packed = |stride: usize| Layout {
            plane: [Plane { offset: 0, stride }, none, none],
            planes: 1,
            size: stride * h,
        };
        match caps.format {
            PixelFormat::I420 => {
                let ys = up4(w);
                let cs = up4(up2(w) / 2);
                let ch = up2(h) / 2;
                let u = ys * up2(h);
                let v = u + cs * ch;
                Layout {
                    plane: [
                        Plane {
                            offset: 0,
                            stride: ys,
                        },
                        Plane {
                            offset: u,
                            stride: cs,
                        },
                        Plane {
                            offset: v,
                            stride: cs,
                        },
                    ],
                    planes: 3,
                    size: v + cs * ch,
                }
            }
            PixelFormat::Nv12 => {
                let s = up4(w);
                let uv = s * up2(h);
                Layout {
                    plane: [
                        Plane {
                            offset: 0,
                            stride: s,
                        },
                        Plane {
                            offset: uv,
                            stride: s,
                        },
                        none,
                    ],
                    planes: 2,
                    size: uv + s * (up2(h) / 2),
                }
            }
            PixelFormat::Yuy2 | PixelFormat::Uyvy => packed(up4(up2(w) * 2)),
            PixelFormat::Rgb | PixelFormat::Bgr => packed(up4(w * 3)),
            PixelFormat::Rgba | PixelFormat::Bgra | PixelFormat::Rgbx | PixelFormat::Bgrx => {
                packed(w * 4)
            }
        }
    }
}

/// Bytes of a tightly packed I420 picture (pstream's `VideoFrame`).
pub fn i420_len(width: usize, height: usize) -> usize {
    width * height + 2 * width.div_ceil(2) * height.div_ceil(2)
}

/// Whether GStreamer's I420 layout for this size is pstream's packed one,
/// so that a frame is one straight copy.
pub fn i420_is_packed(width: usize, height: usize) -> bool {
    width % 8 == 0 && height % 2 == 0
}

/// Converts one frame in GStreamer's layout for `caps` to packed I420.
///
/// `src` must hold [`Layout::of`]`(caps).size` bytes and `dst`
/// [`i420_len`] bytes; the caller checks both (a short source is a frame
/// to drop, not a bug), and this returns `false` without writing if not.
pub fn to_i420(caps: &VideoCaps, src: &[u8], dst: &mut [u8]) -> bool {
    let (w, h) = (caps.width as usize, caps.height as usize);
    let layout = Layout::of(caps);
    if src.len() < layout.size || dst.len() != i420_len(w, h) || w == 0 || h == 0 {
        return false;
    }
    let [p0, p1, p2] = layout.plane;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (dy, rest) = dst.split_at_mut(w * h);
    let (du, dv) = rest.split_at_mut(cw * ch);
    match caps.format {
        PixelFormat::I420 => {
            copy_plane(&src[p0.offset..], p0.stride, w, h, dy);
            copy_plane(&src[p1.offset..], p1.stride, cw, ch, du);
            copy_plane(&src[p2.offset..], p2.stride, cw, ch, dv);
        }
        PixelFormat::Nv12 => {
            copy_plane(&src[p0.offset..], p0.stride, w, h, dy);
            let uv = &src[p1.offset..];
            for r in 0..ch {
                let row = &uv[r * p1.stride..][..cw * 2];
                let (u, v) = (&mut du[r * cw..][..cw], &mut dv[r * cw..][..cw]);
                for ((pair, u), v) in row.chunks_exact(2).zip(u).zip(v) {
                    *u = pair[0];
                    *v = pair[1];
                }
            }
        }
        PixelFormat::Yuy2 => packed422::<0, 1, 2, 3>(src, p0.stride, w, h, dy, du, dv),
        PixelFormat::Uyvy => packed422::<1, 0, 3, 2>(src, p0.stride, w, h, dy, du, dv),
        PixelFormat::Rgb => rgb::<3, 6, 0, 1, 2>(src, p0.stride, w, h, dy, du, dv),
        PixelFormat::Bgr => rgb::<3, 6, 2, 1, 0>(src, p0.stride, w, h, dy, du, dv),
        PixelFormat::Rgba | PixelFormat::Rgbx => {
            rgb::<4, 8, 0, 1, 2>(src, p0.stride, w, h, dy, du, dv)
        }
        PixelFormat::Bgra | PixelFormat::Bgrx => {
            rgb::<4, 8, 2, 1, 0>(src, p0.stride, w, h, dy, du, dv)
        }
    }
    true
}

/// Lays packed I420 out the way GStreamer expects I420 of this size
/// (`dst` holds the I420 [`Layout`]'s size; row padding is zeroed).
pub fn i420_to_gst(width: usize, height: usize, src: &[u8], dst: &mut [u8]) -> bool {
    let caps = VideoCaps {
        format: PixelFormat::I420,
        width: width as u32,
        height: height as u32,
        fps_num: 0,
        fps_den: 1,
    };
    let layout = Layout::of(&caps);
    if src.len() != i420_len(width, height) || dst.len() < layout.size {
        return false;
    }
    if i420_is_packed(width, height) {
        dst[..src.len()].copy_from_slice(src);
        return true;
    }
    dst.fill(0);
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (sy, rest) = src.split_at(width * height);
    let (su, sv) = rest.split_at(cw * ch);
    for (plane, p, w, h) in [
        (sy, layout.plane[0], width, height),
        (su, layout.plane[1], cw, ch),
        (sv, layout.plane[2], cw, ch),
    ] {
        for (r, row) in plane.chunks_exact(w).take(h).enumerate() {
            dst[p.offset + r * p.stride..][..w].copy_from_slice(row);
        }
    }
    true
}

/// Copies `h` rows of `w` bytes from a plane with `stride` into a packed one.
fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize, dst: &mut [u8]) {
    for (r, out) in dst.chunks_exact_mut(w).take(h).enumerate() {
        out.copy_from_slice(&src[r * stride..][..w]);
    }
}

#[inline(always)]
fn avg(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + 1) >> 1) as u8
}

/// Packed 4:2:2 (YUY2 or UYVY: the byte index of Y0, U, Y1, V in each
/// 4-byte pixel pair) to I420, chroma averaged over each pair of rows. An
/// odd width's last pair carries one real pixel; an odd height's last row
/// gives its own chroma.
#[allow(clippy::too_many_arguments)]
fn packed422<const Y0: usize, const U: usize, const Y1: usize, const V: usize>(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    dy: &mut [u8],
    du: &mut [u8],
    dv: &mut [u8],
) {
    let cw = w.div_ceil(2);
    let pairs = w / 2;
    for r in 0..h.div_ceil(2) {
        let top = &src[2 * r * stride..][..cw * 4];
        let bottom = if 2 * r + 1 < h {
            &src[(2 * r + 1) * stride..][..cw * 4]
        } else {
            top
        };
        for (i, row) in [top, bottom].into_iter().enumerate() {
            let line = 2 * r + i;
            if line >= h {
                break;
            }
            let ys = &mut dy[line * w..][..w];
            for (px, y) in row.chunks_exact(4).zip(ys.chunks_exact_mut(2)) {
                y[0] = px[Y0];
                y[1] = px[Y1];
            }
            if pairs < cw {
                ys[w - 1] = row[pairs * 4 + Y0];
            }
        }
        let (u, v) = (&mut du[r * cw..][..cw], &mut dv[r * cw..][..cw]);
        for (((a, b), u), v) in top
            .chunks_exact(4)
            .zip(bottom.chunks_exact(4))
            .zip(u.iter_mut())
            .zip(v.iter_mut())
        {
            *u = avg(a[U], b[U]);
            *v = avg(a[V], b[V]);
        }
    }
}

/// BT.601 limited range, 16-bit fixed point: Y = 16 + 219/255 (Kr R + Kg G
/// + Kb B), Cb and Cr = 128 + 224/255 of the scaled colour differences.
const YR: i32 = 16_829;
const YG: i32 = 33_039;
const YB: i32 = 6_416;
const UR: i32 = -9_714;
const UG: i32 = -19_070;
const UB: i32 = 28_784;
const VR: i32 = 28_784;
const VG: i32 = -24_103;
const VB: i32 = -4_681;

#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    ((YR * r + YG * g + YB * b + (16 << 16) + (1 << 15)) >> 16) as u8
}

/// Chroma from the sums of four pixels' components.
#[inline(always)]
fn chroma(r4: i32, g4: i32, b4: i32, cr: i32, cg: i32, cb: i32) -> u8 {
    ((cr * r4 + cg * g4 + cb * b4 + (128 << 18) + (1 << 17)) >> 18).clamp(0, 255) as u8
}

/// One pixel's R, G and B at byte `at` of `row`.
#[inline(always)]
fn px<const R: usize, const G: usize, const B: usize, const N: usize>(
    row: &[u8; N],
    at: usize,
) -> [i32; 3] {
    [
        i32::from(row[at + R]),
        i32::from(row[at + G]),
        i32::from(row[at + B]),
    ]
}

/// Packed RGB (`BPP` bytes a pixel, R G B at those byte indices; `PAIR`
/// is `2 * BPP`) to I420.
///
/// One pass over each pair of rows, two pixels at a time through
/// fixed-size arrays (no bounds checks): four lumas and one chroma pair per
/// step, so that even the test build (-O1) converts 720p in a few
/// milliseconds.
#[allow(clippy::too_many_arguments)]
fn rgb<const BPP: usize, const PAIR: usize, const R: usize, const G: usize, const B: usize>(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    dy: &mut [u8],
    du: &mut [u8],
    dv: &mut [u8],
) {
    let cw = w.div_ceil(2);
    let pairs = w / 2;
    // An odd height's last row pairs with itself; its copy of the luma
    // row goes here and is dropped.
    let mut spare = if h % 2 == 1 { vec![0u8; w] } else { Vec::new() };
    for (r, ys) in dy.chunks_mut(2 * w).enumerate() {
        let top = &src[2 * r * stride..][..w * BPP];
        let (yt, yb): (&mut [u8], &mut [u8]) = if ys.len() == 2 * w {
            ys.split_at_mut(w)
        } else {
            (ys, &mut spare[..])
        };
        let bottom = if 2 * r + 1 < h {
            &src[(2 * r + 1) * stride..][..w * BPP]
        } else {
            top
        };
        let (u, v) = (&mut du[r * cw..][..cw], &mut dv[r * cw..][..cw]);
        for (((((t, b), yt), yb), u), v) in top
            .chunks_exact(PAIR)
            .zip(bottom.chunks_exact(PAIR))
            .zip(yt.chunks_exact_mut(2))
            .zip(yb.chunks_exact_mut(2))
            .zip(u.iter_mut())
            .zip(v.iter_mut())
        {
            let (Ok(t), Ok(b)) = (<&[u8; PAIR]>::try_from(t), <&[u8; PAIR]>::try_from(b)) else {
                continue;
            };
            let [r0, g0, b0] = px::<R, G, B, PAIR>(t, 0);
            let [r1, g1, b1] = px::<R, G, B, PAIR>(t, BPP);
            let [r2, g2, b2] = px::<R, G, B, PAIR>(b, 0);
            let [r3, g3, b3] = px::<R, G, B, PAIR>(b, BPP);
            yt[0] = luma(r0, g0, b0);
            yt[1] = luma(r1, g1, b1);
            yb[0] = luma(r2, g2, b2);
            yb[1] = luma(r3, g3, b3);
            let (sr, sg, sb) = (r0 + r1 + r2 + r3, g0 + g1 + g2 + g3, b0 + b1 + b2 + b3);
            *u = chroma(sr, sg, sb, UR, UG, UB);
            *v = chroma(sr, sg, sb, VR, VG, VB);
        }
        if pairs < cw {
            // An odd width's last column pairs with itself.
            let last = |row: &[u8]| -> [i32; 3] {
                let p = &row[pairs * PAIR..][..BPP];
                [i32::from(p[R]), i32::from(p[G]), i32::from(p[B])]
            };
            let [r0, g0, b0] = last(top);
            let [r2, g2, b2] = last(bottom);
            yt[w - 1] = luma(r0, g0, b0);
            yb[w - 1] = luma(r2, g2, b2);
            let (sr, sg, sb) = (2 * (r0 + r2), 2 * (g0 + g2), 2 * (b0 + b2));
            u[cw - 1] = chroma(sr, sg, sb, UR, UG, UB);
            v[cw - 1] = chroma(sr, sg, sb, VR, VG, VB);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(format: PixelFormat, width: u32, height: u32) -> VideoCaps {
        VideoCaps {
            format,
            width,
            height,
            fps_num: 30,
            fps_den: 1,
        }
    }

    #[test]
    fn frame_sizes_match_what_gstreamer_writes() {
        // Buffer sizes of `videotestsrc num-buffers=1 ! video/x-raw,...` (1.22).
        let sizes: [(PixelFormat, [usize; 3]); 10] = [
            (PixelFormat::I420, [117_120, 118_096, 4_032]),
            (PixelFormat::Nv12, [116_640, 117_612, 4_032]),
            (PixelFormat::Yuy2, [154_560, 155_204, 4_676]),
            (PixelFormat::Uyvy, [154_560, 155_204, 4_676]),
            (PixelFormat::Rgb, [232_320, 232_324, 7_000]),
            (PixelFormat::Bgr, [232_320, 232_324, 7_000]),
            (PixelFormat::Rgba, [309_120, 309_444, 9_324]),
            (PixelFormat::Bgra, [309_120, 309_444, 9_324]),
            (PixelFormat::Rgbx, [309_120, 309_444, 9_324]),
            (PixelFormat::Bgrx, [309_120, 309_444, 9_324]),
        ];
        for (f, want) in sizes {
            for ((w, h), size) in [(322, 240), (321, 241), (333, 7)].into_iter().zip(want) {
                assert_eq!(Layout::of(&caps(f, w, h)).size, size, "{f} {w}x{h}");
            }
        }
    }

    #[test]
    fn bt601_primaries_land_on_their_video_range_values() {
        // White, black, and the 100% primaries (ITU-R BT.601 tables).
        for (rgb, yuv) in [
            ([255, 255, 255], [235, 128, 128]),
            ([0, 0, 0], [16, 128, 128]),
            ([255, 0, 0], [81, 90, 240]),
            ([0, 255, 0], [145, 54, 34]),
            ([0, 0, 255], [41, 240, 110]),
        ] {
            let c = caps(PixelFormat::Rgb, 2, 2);
            let src: Vec<u8> = rgb.iter().copied().cycle().take(4 * 3).collect();
            let mut src_padded = vec![0u8; Layout::of(&c).size];
            src_padded[..6].copy_from_slice(&src[..6]);
            src_padded[8..14].copy_from_slice(&src[6..]);
            let mut dst = vec![0u8; i420_len(2, 2)];
            assert!(to_i420(&c, &src_padded, &mut dst));
            assert_eq!(
                dst,
                [yuv[0], yuv[0], yuv[0], yuv[0], yuv[1], yuv[2]],
                "{rgb:?}"
            );
        }
    }

    #[test]
    fn every_rgb_order_reads_its_own_channels() {
        // One red pixel in each order gives the same I420.
        let red: [(PixelFormat, [u8; 4]); 6] = [
            (PixelFormat::Rgba, [255, 0, 0, 9]),
            (PixelFormat::Rgbx, [255, 0, 0, 9]),
            (PixelFormat::Bgra, [0, 0, 255, 9]),
            (PixelFormat::Bgrx, [0, 0, 255, 9]),
            (PixelFormat::Rgb, [255, 0, 0, 0]),
            (PixelFormat::Bgr, [0, 0, 255, 0]),
        ];
        for (f, px) in red {
            let c = caps(f, 1, 1);
            let bpp = if matches!(f, PixelFormat::Rgb | PixelFormat::Bgr) {
                3
            } else {
                4
            };
            let mut src = vec![0u8; Layout::of(&c).size];
            src[..bpp].copy_from_slice(&px[..bpp]);
            let mut dst = vec![0u8; 3];
            assert!(to_i420(&c, &src, &mut dst));
            assert_eq!(dst, [81, 90, 240], "{f}");
        }
    }

    #[test]
    fn planar_and_packed_yuv_round_trip_through_gstreamer_layouts() {
        // A 5x3 I420 picture with distinct samples.
        let (w, h) = (5usize, 3usize);
        let i420: Vec<u8> = (0..i420_len(w, h) as u8)
            .map(|v| v.wrapping_mul(7))
            .collect();
        let c = caps(PixelFormat::I420, w as u32, h as u32);
        let mut gst = vec![0xEE; Layout::of(&c).size];
        assert!(i420_to_gst(w, h, &i420, &mut gst));
        let mut back = vec![0; i420.len()];
        assert!(to_i420(&c, &gst, &mut back));
        assert_eq!(back, i420);

        // NV12 of the same picture: Y rows padded to 8, CbCr interleaved
        // after 4 (an even number of) rows.
        let nv = caps(PixelFormat::Nv12, w as u32, h as u32);
        let l = Layout::of(&nv);
        assert_eq!((l.plane[0].stride, l.plane[1].offset), (8, 32));
        let mut src = vec![0u8; l.size];
        let (cw, ch) = (3, 2);
        for r in 0..h {
            src[r * 8..r * 8 + w].copy_from_slice(&i420[r * w..][..w]);
        }
        for r in 0..ch {
            for c in 0..cw {
                src[32 + r * 8 + 2 * c] = i420[w * h + r * cw + c];
                src[32 + r * 8 + 2 * c + 1] = i420[w * h + cw * ch + r * cw + c];
            }
        }
        let mut back = vec![0; i420.len()];
        assert!(to_i420(&nv, &src, &mut back));
        assert_eq!(back, i420);
    }

    #[test]
    fn packed_422_keeps_luma_and_averages_chroma_with_odd_sizes() {
        // 3x3 YUY2 (stride RU4(4*2) = 8): rows of Y0 U Y1 V | Y2 U' pad V'.
        let c = caps(PixelFormat::Yuy2, 3, 3);
        let l = Layout::of(&c);
        assert_eq!(l.plane[0].stride, 8);
        let rows: [[u8; 8]; 3] = [
            [10, 100, 11, 200, 12, 110, 0, 210],
            [20, 102, 21, 202, 22, 112, 0, 212],
            [30, 50, 31, 60, 32, 70, 0, 80],
        ];
        let src: Vec<u8> = rows.concat();
        let mut dst = vec![0; i420_len(3, 3)];
        assert!(to_i420(&c, &src, &mut dst));
        assert_eq!(
            dst,
            [
                10, 11, 12, 20, 21, 22, 30, 31, 32, // Y
                101, 111, 50, 70, // U: rows 0+1 averaged, row 2 alone
                201, 211, 60, 80, // V
            ]
        );
        // The same picture as UYVY.
        let uyvy: Vec<u8> = rows
            .iter()
            .flat_map(|r| [r[1], r[0], r[3], r[2], r[5], r[4], r[7], r[6]])
            .collect();
        let mut dst2 = vec![0; dst.len()];
        assert!(to_i420(&caps(PixelFormat::Uyvy, 3, 3), &uyvy, &mut dst2));
        assert_eq!(dst2, dst);
    }

    #[test]
    fn short_sources_are_refused() {
        let c = caps(PixelFormat::Bgra, 4, 4);
        let mut dst = vec![0; i420_len(4, 4)];
        assert!(!to_i420(&c, &[0; 63], &mut dst));
        assert!(to_i420(&c, &[0; 64], &mut dst));
    }
}
