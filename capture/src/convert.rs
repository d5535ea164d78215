//! Pixel-format conversions between camera layouts and I420.
//!
//! Cameras hand out YUYV (packed 4:2:2), NV12 (Y plane + interleaved CbCr)
//! or YU12 (I420 with the driver's row stride); pstream's encoders take
//! tightly packed I420. Every converter works on whole rows through
//! `chunks_exact` so the compiler can vectorise the inner loops without
//! bounds checks (measured in `benches/benches/convert.rs`).
//!
//! Chroma from 4:2:2 is averaged over each pair of rows (rounding half up)
//! rather than taken from one row, which would alias vertical colour edges.

use thiserror::Error;

/// A source buffer too small for the picture it is said to hold.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{format} {width}x{height} (stride {stride}) needs {need} bytes, the buffer has {got}")]
pub struct ShortBuffer {
    /// The layout being read ("YUYV", "NV12", ...).
    pub format: &'static str,
    /// Picture width in pixels.
    pub width: usize,
    /// Picture height in pixels.
    pub height: usize,
    /// Bytes per row of the first plane.
    pub stride: usize,
    /// Bytes the picture needs.
    pub need: usize,
    /// Bytes the buffer holds.
    pub got: usize,
}

/// Bytes of a tightly packed I420 picture.
pub fn i420_len(width: usize, height: usize) -> usize {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    width * height + 2 * cw * ch
}

/// Splits a packed I420 buffer into its Y, U and V planes.
fn i420_planes_mut(
    dst: &mut [u8],
    width: usize,
    height: usize,
) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (y, rest) = dst.split_at_mut(width * height);
    let (u, v) = rest.split_at_mut(cw * ch);
    (y, u, &mut v[..cw * ch])
}

fn check(
    format: &'static str,
    src: &[u8],
    need: usize,
    width: usize,
    height: usize,
    stride: usize,
) -> Result<(), ShortBuffer> {
    if src.len() < need {
        return Err(ShortBuffer {
            format,
            width,
            height,
            stride,
            need,
            got: src.len(),
        });
    }
    Ok(())
}

#[inline(always)]
fn avg(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + 1) >> 1) as u8
}

/// YUYV (Y0 Cb Y1 Cr per pixel pair, `stride` bytes per row) to packed I420.
///
/// `width` must be even (V4L2 packs YUYV in pixel pairs); `dst` must hold
/// [`i420_len`] bytes. An odd last row gives its own chroma.
pub fn yuyv_to_i420(
    src: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    dst: &mut [u8],
) -> Result<(), ShortBuffer> {
    let stride = stride.max(width * 2);
    let need = if height == 0 {
        0
    } else {
        stride * (height - 1) + width * 2
    };
    check("YUYV", src, need, width, height, stride)?;
    assert_eq!(dst.len(), i420_len(width, height), "I420 destination size");
    let cw = width / 2;
    let (dy, du, dv) = i420_planes_mut(dst, width, height);
    for r in 0..height.div_ceil(2) {
        let top = &src[2 * r * stride..][..width * 2];
        let bottom = if 2 * r + 1 < height {
            &src[(2 * r + 1) * stride..][..width * 2]
        } else {
            top
        };
        for (row, ys) in [top, bottom]
            .into_iter()
            .zip(dy[2 * r * width..].chunks_mut(width))
        {
            for (px, y) in row.chunks_exact(4).zip(ys.chunks_exact_mut(2)) {
                y[0] = px[0];
                y[1] = px[2];
            }
        }
        let u = &mut du[r * cw..][..cw];
        let v = &mut dv[r * cw..][..cw];
        for (((a, b), u), v) in top
            .chunks_exact(4)
            .zip(bottom.chunks_exact(4))
            .zip(u.iter_mut())
            .zip(v.iter_mut())
        {
            *u = avg(a[1], b[1]);
            *v = avg(a[3], b[3]);
        }
    }
    Ok(())
}

/// NV12 (a Y plane, then interleaved Cb Cr at half height, both with
/// `stride` bytes per row, the chroma plane starting at `stride * height`)
/// to packed I420.
pub fn nv12_to_i420(
    src: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    dst: &mut [u8],
) -> Result<(), ShortBuffer> {
    let stride = stride.max(width);
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let need = if height == 0 {
        0
    } else {
        stride * height + stride * (ch - 1) + cw * 2
    };
    check("NV12", src, need, width, height, stride)?;
    assert_eq!(dst.len(), i420_len(width, height), "I420 destination size");
    let (dy, du, dv) = i420_planes_mut(dst, width, height);
    copy_plane(src, stride, width, height, dy);
    let uv = &src[stride * height..];
    for r in 0..ch {
        let row = &uv[r * stride..][..cw * 2];
        let u = &mut du[r * cw..][..cw];
        let v = &mut dv[r * cw..][..cw];
        for ((pair, u), v) in row.chunks_exact(2).zip(u.iter_mut()).zip(v.iter_mut()) {
            *u = pair[0];
            *v = pair[1];
        }
    }
    Ok(())
}

/// YU12 (planar I420 whose Y rows are `stride` bytes and chroma rows
/// `stride / 2`, as V4L2 lays it out) to packed I420: a copy that drops the
/// row padding.
pub fn yu12_to_i420(
    src: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    dst: &mut [u8],
) -> Result<(), ShortBuffer> {
    let stride = stride.max(width);
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let cstride = (stride / 2).max(cw);
    let need = if height == 0 {
        0
    } else {
        stride * height + cstride * ch + cstride * (ch - 1) + cw
    };
    check("YU12", src, need, width, height, stride)?;
    assert_eq!(dst.len(), i420_len(width, height), "I420 destination size");
    if stride == width && cstride == cw {
        dst.copy_from_slice(&src[..dst.len()]);
        return Ok(());
    }
    let (dy, du, dv) = i420_planes_mut(dst, width, height);
    copy_plane(src, stride, width, height, dy);
    let u_src = &src[stride * height..];
    copy_plane(u_src, cstride, cw, ch, du);
    copy_plane(&u_src[cstride * ch..], cstride, cw, ch, dv);
    Ok(())
}

/// Copies `height` rows of `width` bytes from a plane with `stride`.
fn copy_plane(src: &[u8], stride: usize, width: usize, height: usize, dst: &mut [u8]) {
    for (r, out) in dst.chunks_exact_mut(width).take(height).enumerate() {
        out.copy_from_slice(&src[r * stride..][..width]);
    }
}

/// Packed I420 to YUYV with `stride` bytes per output row (at least
/// `2 * width` rounded up to a pixel pair); each chroma row serves two
/// picture rows. An odd width repeats its last luma sample into the pair.
pub fn i420_to_yuyv(src: &[u8], width: usize, height: usize, stride: usize, dst: &mut [u8]) {
    let (cw, _) = (width.div_ceil(2), height.div_ceil(2));
    let row_bytes = cw * 4;
    assert!(stride >= row_bytes, "YUYV stride {stride} < {row_bytes}");
    assert_eq!(src.len(), i420_len(width, height), "I420 source size");
    assert!(dst.len() >= stride * height, "YUYV destination size");
    let (sy, rest) = src.split_at(width * height);
    let (su, sv) = rest.split_at(rest.len() / 2);
    let even = width & !1;
    for r in 0..height {
        let y = &sy[r * width..][..width];
        let u = &su[(r / 2) * cw..][..cw];
        let v = &sv[(r / 2) * cw..][..cw];
        let out = &mut dst[r * stride..][..row_bytes];
        for (((px, ys), u), v) in out
            .chunks_exact_mut(4)
            .zip(y[..even].chunks_exact(2))
            .zip(u.iter())
            .zip(v.iter())
        {
            px[0] = ys[0];
            px[1] = *u;
            px[2] = ys[1];
            px[3] = *v;
        }
        if even < width {
            let last = y[width - 1];
            let px = &mut out[row_bytes - 4..];
            px.copy_from_slice(&[last, u[cw - 1], last, v[cw - 1]]);
        }
    }
}

/// Packed I420 to YU12 with `stride` bytes per luma row and `stride / 2` per
/// chroma row (V4L2's single-plane layout), padding left as it was.
pub fn i420_to_yu12(src: &[u8], width: usize, height: usize, stride: usize, dst: &mut [u8]) {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let cstride = (stride / 2).max(cw);
    assert!(stride >= width, "YU12 stride {stride} < {width}");
    assert_eq!(src.len(), i420_len(width, height), "I420 source size");
    assert!(
        dst.len() >= stride * height + 2 * cstride * ch,
        "YU12 destination size"
    );
    if stride == width && cstride == cw {
        dst[..src.len()].copy_from_slice(src);
        return;
    }
    let (sy, rest) = src.split_at(width * height);
    let (su, sv) = rest.split_at(cw * ch);
    let (dy, rest) = dst.split_at_mut(stride * height);
    let (du, dv) = rest.split_at_mut(cstride * ch);
    for (plane, out, w, h, s) in [
        (sy, dy, width, height, stride),
        (su, du, cw, ch, cstride),
        (sv, dv, cw, ch, cstride),
    ] {
        for (row, o) in plane.chunks_exact(w).zip(out.chunks_mut(s)).take(h) {
            o[..w].copy_from_slice(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 YUYV picture: two rows, two pixel pairs each, distinct values.
    fn yuyv_4x2(stride: usize) -> Vec<u8> {
        let mut src = vec![0xEE; stride * 2];
        src[..8].copy_from_slice(&[10, 100, 11, 200, 12, 101, 13, 201]);
        src[stride..stride + 8].copy_from_slice(&[20, 110, 21, 210, 22, 111, 23, 211]);
        src
    }

    #[test]
    fn yuyv_splits_luma_and_averages_chroma_over_two_rows() {
        for stride in [8, 12] {
            let mut dst = vec![0; i420_len(4, 2)];
            yuyv_to_i420(&yuyv_4x2(stride), stride, 4, 2, &mut dst).expect("fits");
            assert_eq!(
                dst,
                [
                    10, 11, 12, 13, 20, 21, 22, 23, // Y
                    105, 106, // U: (100+110+1)/2, (101+111+1)/2
                    205, 206, // V
                ],
                "stride {stride}"
            );
        }
    }

    #[test]
    fn yuyv_odd_height_takes_the_last_rows_own_chroma() {
        let src = [1, 50, 2, 60, 3, 70, 4, 80, 5, 90, 6, 100];
        let mut dst = vec![0; i420_len(2, 3)];
        yuyv_to_i420(&src, 4, 2, 3, &mut dst).expect("fits");
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 60, 90, 70, 100]);
    }

    #[test]
    fn yuyv_rounds_the_chroma_average_half_up() {
        let src = [0, 255, 0, 0, 0, 254, 0, 1];
        let mut dst = vec![0; i420_len(2, 2)];
        yuyv_to_i420(&src, 4, 2, 2, &mut dst).expect("fits");
        assert_eq!(&dst[4..], [255, 1]);
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        // 4x2, stride 6: Y rows, then one CbCr row.
        let src = [
            1, 2, 3, 4, 0, 0, //
            5, 6, 7, 8, 0, 0, //
            30, 40, 31, 41, 0, 0,
        ];
        let mut dst = vec![0; i420_len(4, 2)];
        nv12_to_i420(&src, 6, 4, 2, &mut dst).expect("fits");
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8, 30, 31, 40, 41]);
    }

    #[test]
    fn nv12_without_the_last_rows_padding_is_enough() {
        let src = [1, 2, 0, 3, 4, 0, 9, 8];
        let mut dst = vec![0; i420_len(2, 2)];
        nv12_to_i420(&src, 3, 2, 2, &mut dst).expect("fits");
        assert_eq!(dst, [1, 2, 3, 4, 9, 8]);
    }

    #[test]
    fn yu12_drops_row_padding() {
        // 4x2 with stride 6 (chroma stride 3).
        let src = [
            1, 2, 3, 4, 0, 0, //
            5, 6, 7, 8, 0, 0, //
            20, 21, 0, // U
            30, 31, 0, // V
        ];
        let mut dst = vec![0; i420_len(4, 2)];
        yu12_to_i420(&src, 6, 4, 2, &mut dst).expect("fits");
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 30, 31]);
        let packed: Vec<u8> = (0..12).collect();
        let mut dst = vec![0; 12];
        yu12_to_i420(&packed, 4, 4, 2, &mut dst).expect("fits");
        assert_eq!(dst, packed);
    }

    #[test]
    fn short_buffers_are_refused_with_sizes() {
        let mut dst = vec![0; i420_len(4, 2)];
        let e = yuyv_to_i420(&[0; 15], 8, 4, 2, &mut dst).expect_err("short");
        assert_eq!(
            e.to_string(),
            "YUYV 4x2 (stride 8) needs 16 bytes, the buffer has 15"
        );
        assert!(nv12_to_i420(&[0; 11], 4, 4, 2, &mut dst).is_err());
        assert!(yu12_to_i420(&[0; 11], 4, 4, 2, &mut dst).is_err());
    }

    #[test]
    fn i420_to_yuyv_repeats_chroma_for_two_rows() {
        let src = [1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 30, 31];
        let mut dst = vec![0xEE; 10 * 2];
        i420_to_yuyv(&src, 4, 2, 10, &mut dst);
        assert_eq!(
            dst,
            [
                1, 20, 2, 30, 3, 21, 4, 31, 0xEE, 0xEE, //
                5, 20, 6, 30, 7, 21, 8, 31, 0xEE, 0xEE,
            ]
        );
    }

    #[test]
    fn i420_to_yuyv_odd_width_repeats_the_last_sample() {
        // 3x1: chroma 2x1.
        let src = [1, 2, 3, 20, 21, 30, 31];
        let mut dst = vec![0; 8];
        i420_to_yuyv(&src, 3, 1, 8, &mut dst);
        assert_eq!(dst, [1, 20, 2, 30, 3, 21, 3, 31]);
    }

    #[test]
    fn yuyv_round_trip_keeps_luma_and_flat_chroma() {
        let (w, h) = (16, 6);
        let mut i420 = vec![0; i420_len(w, h)];
        for (i, b) in i420.iter_mut().enumerate().take(w * h) {
            *b = (i * 7 % 251) as u8;
        }
        i420[w * h..].fill(77);
        let mut yuyv = vec![0; w * 2 * h];
        i420_to_yuyv(&i420, w, h, w * 2, &mut yuyv);
        let mut back = vec![0; i420.len()];
        yuyv_to_i420(&yuyv, w * 2, w, h, &mut back).expect("fits");
        assert_eq!(back, i420);
    }

    #[test]
    fn i420_to_yu12_pads_rows_to_the_stride() {
        let src = [1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 30, 31];
        let mut dst = vec![0xEE; 6 * 2 + 2 * 3];
        i420_to_yu12(&src, 4, 2, 6, &mut dst);
        assert_eq!(
            dst,
            [
                1, 2, 3, 4, 0xEE, 0xEE, 5, 6, 7, 8, 0xEE, 0xEE, //
                20, 21, 0xEE, 30, 31, 0xEE
            ]
        );
        let mut back = vec![0; 12];
        yu12_to_i420(&dst, 6, 4, 2, &mut back).expect("fits");
        assert_eq!(back, src);
        let mut tight = vec![0; 12];
        i420_to_yu12(&src, 4, 2, 4, &mut tight);
        assert_eq!(tight, src);
    }
}
