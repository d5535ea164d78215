//! Annex-B byte-stream helpers: NAL unit iteration, types, parameter sets, SPS parsing.
//!
//! Everything here reads untrusted bytes (received access units), so every
//! accessor returns `Option`/`Result` instead of indexing blindly.

use crate::CodecError;

/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Iterates the NAL units of an Annex-B buffer (3- or 4-byte start codes).
///
/// Each item is one NAL unit starting at its header byte, without the start
/// code and without trailing zero bytes. Bytes before the first start code
/// are ignored.
pub fn nal_units(annexb: &[u8]) -> NalUnits<'_> {
    let pos = find_start_code(annexb, 0).map_or(annexb.len(), |(_, after)| after);
    NalUnits { data: annexb, pos }
}

/// Iterator returned by [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.data, start) {
                Some((sc, after)) => (sc, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut nal = &self.data[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Finds the next `00 00 01` at or after `from`: (index of its first zero, index after the 01).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip quickly: a start code's third byte is 1, its second 0.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// The NAL unit type (low 5 bits of the header), or `None` for an empty unit.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Whether the access unit contains an IDR slice.
pub fn contains_idr(annexb: &[u8]) -> bool {
    nal_units(annexb).any(|n| nal_type(n) == Some(NAL_IDR))
}

/// The first SPS and the first PPS of an access unit, if it carries both.
pub fn parameter_sets(annexb: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut sps = None;
    let mut pps = None;
    for nal in nal_units(annexb) {
        match nal_type(nal) {
            Some(NAL_SPS) if sps.is_none() => sps = Some(nal),
            Some(NAL_PPS) if pps.is_none() => pps = Some(nal),
            _ => {}
        }
        if let (Some(s), Some(p)) = (sps, pps) {
            return Some((s, p));
        }
    }
    None
}

/// `profile_idc`, constraint flags and `level_idc`: SPS bytes 1..4, as in SDP `profile-level-id`.
pub fn profile_level_id(sps: &[u8]) -> Option<[u8; 3]> {
    match sps {
        [_, a, b, c, ..] => Some([*a, *b, *c]),
        _ => None,
    }
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL payload.
pub fn to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The fields of a sequence parameter set that pstream needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The constraint_set flags byte.
    pub constraint_flags: u8,
    /// `level_idc` (level × 10, e.g. 31 for 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub sps_id: u32,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
}

/// Parses an SPS NAL unit (header byte included) far enough to get the picture size.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    const WHAT: &str = "SPS";
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(CodecError::bitstream(WHAT, "not an SPS NAL unit"));
    }
    let rbsp = to_rbsp(nal);
    let mut r = BitReader::new(rbsp.get(1..).unwrap_or_default());
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let sps_id = r.ue()?;
    if sps_id > 31 {
        return Err(CodecError::bitstream(WHAT, "seq_parameter_set_id above 31"));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::bitstream(WHAT, "chroma_format_idc above 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let _bit_depth_luma = r.ue()?;
        let _bit_depth_chroma = r.ue()?;
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_poc_lsb = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(CodecError::bitstream(WHAT, "POC cycle longer than 255"));
            }
            for _ in 0..cycle {
                let _ = r.se()?;
            }
        }
        2 => {}
        _ => return Err(CodecError::bitstream(WHAT, "pic_order_cnt_type above 2")),
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        crop_l = r.ue()?.into();
        crop_r = r.ue()?.into();
        crop_t = r.ue()?.into();
        crop_b = r.ue()?.into();
    }
    let frame_height_mbs = (2 - u64::from(frame_mbs_only)) * height_map_units;
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
        (1, 2 - u64::from(frame_mbs_only))
    } else {
        (sub_w, sub_h * (2 - u64::from(frame_mbs_only)))
    };
    let full_w = width_mbs * 16;
    let full_h = frame_height_mbs * 16;
    let crop_w = crop_unit_x * (crop_l + crop_r);
    let crop_h = crop_unit_y * (crop_t + crop_b);
    if crop_w >= full_w || crop_h >= full_h {
        return Err(CodecError::bitstream(
            WHAT,
            "cropping removes the whole picture",
        ));
    }
    let width = u32::try_from(full_w - crop_w)
        .map_err(|_| CodecError::bitstream(WHAT, "width overflows"))?;
    let height = u32::try_from(full_h - crop_h)
        .map_err(|_| CodecError::bitstream(WHAT, "height overflows"))?;
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        sps_id,
        chroma_format_idc,
        width,
        height,
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// A big-endian bit reader with Exp-Golomb decoding over an RBSP.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    fn flag(&mut self) -> Result<bool, CodecError> {
        let byte = self
            .data
            .get(self.bit / 8)
            .ok_or_else(|| CodecError::bitstream("SPS", "ends early"))?;
        let v = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Ok(v == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.flag()?);
        }
        Ok(v)
    }

    fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::bitstream("SPS", "Exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert_eq!(nal_type(nals[2]), Some(NAL_IDR));
        assert!(contains_idr(&data));
        assert_eq!(
            parameter_sets(&data),
            Some((&[0x67, 1, 2][..], &[0x68, 3][..]))
        );
    }

    #[test]
    fn garbage_yields_nothing_and_no_panic() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3, 0, 0]).count(), 0);
        assert_eq!(parameter_sets(&[0, 0, 1, 0x67]), None);
        assert_eq!(profile_level_id(&[0x67, 0x42]), None);
        assert!(parse_sps(&[0x67]).is_err());
        assert!(parse_sps(&[0x68, 1, 2, 3]).is_err());
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0]), vec![0, 0, 1, 0, 0, 0]);
        assert_eq!(to_rbsp(&[0, 3, 0, 0, 3]), vec![0, 3, 0, 0]);
    }

    #[test]
    fn parses_a_1080p_high_profile_sps_with_cropping() {
        // x264 1920x1080 High@4.0 SPS: 1088 coded lines, 8 cropped.
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
        ];
        let info = parse_sps(&sps).expect("valid SPS");
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.profile_idc, 100);
        assert_eq!(info.level_idc, 40);
        assert_eq!(profile_level_id(&sps), Some([0x64, 0x00, 0x28]));
    }

    #[test]
    fn parses_a_baseline_sps_cropped_on_both_axes() {
        // x264 350x202 constrained baseline: 352x208 coded, cropped right and bottom.
        let sps = [
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x61, 0xbe, 0xa4, 0xc0, 0x44, 0x00, 0x00, 0x03,
            0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x50, 0xa9, 0x20,
        ];
        let info = parse_sps(&sps).expect("valid SPS");
        assert_eq!((info.width, info.height), (350, 202));
        assert_eq!(info.constraint_flags, 0xc0);
    }
}
