//! H.264 encoding with openh264: constrained baseline, bitrate control, in-band SPS/PPS.

use bytes::Bytes;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use pstream_core::{Codec, EncodedUnit, VideoFrame};

use super::nal::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::{CodecError, VideoEncoder};

/// openh264's largest supported picture (level 5.2), either orientation.
const MAX_LONG_SIDE: u32 = 3840;
/// The shorter side's limit that goes with [`MAX_LONG_SIDE`].
const MAX_SHORT_SIDE: u32 = 2160;

/// Settings for [`H264Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Config {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Nominal input frame rate, used by rate control.
    pub fps: f32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Frames between periodic IDRs; 0 means only the first frame and requested ones.
    pub keyint_frames: u32,
    /// openh264 worker threads (0 = one per core; openh264 uses at most 4).
    /// openh264 only works in parallel across slices, so with more than one
    /// thread each picture is cut into that many slices (rows of macroblocks),
    /// at a small cost in compression.
    pub threads: u16,
    /// How much work the encoder spends per picture.
    pub preset: H264Preset,
}

/// Encoder speed against quality: what `--preset` picks.
///
/// On a small CPU (a Pi 3, a Zero 2) `Fast` is the one that keeps up with
/// 720p30; the others buy a better picture at the same bitrate with time
/// the encoder may not have, in which case frames are dropped before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum H264Preset {
    /// openh264's low complexity: the fewest cycles per picture.
    #[default]
    Fast,
    /// openh264's medium complexity.
    Balanced,
    /// openh264's high complexity, which differs from medium only for
    /// screen content: camera content is encoded as with `Balanced`.
    Quality,
}

impl H264Preset {
    /// openh264's complexity mode for this preset.
    fn complexity(self) -> Complexity {
        match self {
            H264Preset::Fast => Complexity::Low,
            H264Preset::Balanced => Complexity::Medium,
            H264Preset::Quality => Complexity::High,
        }
    }
}

impl H264Config {
    fn validate(&self) -> Result<(), CodecError> {
        const C: &str = "H.264";
        check_size(self.width, self.height).map_err(|why| CodecError::config(C, why))?;
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 240.0) {
            return Err(CodecError::config(
                C,
                format!("fps {} not in (0, 240]", self.fps),
            ));
        }
        if self.bitrate_bps < 10_000 || self.bitrate_bps > i32::MAX as u32 {
            return Err(CodecError::config(
                C,
                format!("bitrate {} bit/s out of range", self.bitrate_bps),
            ));
        }
        Ok(())
    }
}

/// The most threads openh264 runs (its MAX_THREADS_NUM).
const MAX_OPENH264_THREADS: u16 = 4;

/// Slices per picture for `config.threads`: one per thread, 0 meaning one
/// per core, at most what openh264 runs and one per row of macroblocks.
fn slice_count(config: &H264Config) -> u16 {
    let threads = match config.threads {
        0 => std::thread::available_parallelism()
            .map(|n| u16::try_from(n.get()).unwrap_or(u16::MAX))
            .unwrap_or(1),
        n => n,
    };
    let rows = u16::try_from(config.height.div_ceil(16)).unwrap_or(u16::MAX);
    threads.min(MAX_OPENH264_THREADS).min(rows).max(1)
}

/// Why a picture size cannot be encoded, if it cannot.
fn check_size(width: u32, height: u32) -> Result<(), &'static str> {
    if width == 0 || height == 0 {
        return Err("size is empty");
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err("4:2:0 H.264 needs even dimensions");
    }
    if width.max(height) > MAX_LONG_SIDE || width.min(height) > MAX_SHORT_SIDE {
        return Err("openh264 supports at most 3840x2160");
    }
    Ok(())
}

/// A constrained-baseline H.264 encoder producing Annex-B access units.
///
/// Every IDR access unit carries SPS and PPS in-band (4-byte start codes),
/// so a receiver can join at any keyframe.
pub struct H264Encoder {
    inner: Encoder,
    config: H264Config,
    /// Slices per picture (1: the openh264 crate's own single-slice setup).
    slices: u16,
    /// The picture size openh264 was last given `slices` slices for; the
    /// crate sets it up again (single slice) when the size changes.
    sliced_at: Option<(u32, u32)>,
    keyframe_pending: bool,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    frames_in: u64,
    skipped: u64,
    keyframes: u64,
    /// The target rate control works to now (the configured one until
    /// [`H264Encoder::set_bitrate`]).
    bitrate_bps: u32,
    /// A new target not yet given to openh264 (which exists only from the
    /// first picture on), or to give again after the crate set openh264 up
    /// anew for a new picture size with the configured one.
    bitrate_pending: bool,
    /// The size openh264 was last set up for.
    size: Option<(u32, u32)>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("frames_in", &self.frames_in)
            .field("skipped", &self.skipped)
            .field("keyframes", &self.keyframes)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Creates an encoder; openh264 itself initialises on the first frame.
    pub fn new(config: H264Config) -> Result<Self, CodecError> {
        config.validate()?;
        let oc = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps))
            .intra_frame_period(IntraFramePeriod::from_num_frames(config.keyint_frames))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            // Adaptive quantisation and background detection stay at
            // openh264's defaults (on) for every preset: they cost little,
            // and `fast` then encodes what pstream always sent.
            .complexity(config.preset.complexity())
            .skip_frames(true)
            .num_threads(config.threads);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), oc).map_err(|e| {
            CodecError::H264Encode {
                op: "create",
                code: e.native_code(),
            }
        })?;
        let mut me = Self {
            inner,
            config,
            slices: slice_count(&config),
            sliced_at: None,
            keyframe_pending: false,
            sps: None,
            pps: None,
            frames_in: 0,
            skipped: 0,
            keyframes: 0,
            bitrate_bps: config.bitrate_bps,
            bitrate_pending: false,
            size: None,
        };
        if me.slices > 1 {
            me.prime_with_slices()?;
        }
        Ok(me)
    }

    /// Sets openh264 up for [`H264Config::threads`] slices before the first
    /// real picture.
    ///
    /// The crate configures openh264 (single slice) on the first encode, so
    /// one black picture is encoded and thrown away to get there; changing
    /// the slicing then rebuilds openh264's whole context (threads, rate
    /// control, reference pictures), and the first real picture is an IDR
    /// of a fresh stream, as without this.
    fn prime_with_slices(&mut self) -> Result<(), CodecError> {
        let (w, h) = (self.config.width, self.config.height);
        let mut data = vec![16u8; VideoFrame::byte_len(w, h)];
        data[(w as usize * h as usize)..].fill(128);
        let black = VideoFrame::new(
            w,
            h,
            Bytes::from(data),
            std::time::Instant::now(),
            std::time::Duration::ZERO,
        )
        .map_err(|source| CodecError::Frame {
            codec: "H.264 (priming)",
            source,
        })?;
        self.inner
            .encode_at(&Planes(&black), Timestamp::ZERO)
            .map_err(|e| CodecError::H264Encode {
                op: "encode (priming)",
                code: e.native_code(),
            })?;
        self.apply_slices((w, h))
    }

    /// Reads openh264's parameters back and sets them again with
    /// fixed-count slicing and as many threads as slices.
    fn apply_slices(&mut self, size: (u32, u32)) -> Result<(), CodecError> {
        use openh264_sys2::{
            SEncParamExt, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, SM_FIXEDSLCNUM_SLICE,
        };
        let slices = self.slices.min(size.1.div_ceil(16) as u16).max(1);
        let mut params = SEncParamExt::default();
        // SAFETY: the encoder is initialised (a picture was encoded at this
        // size); GetOption copies its current SEncParamExt into `params`,
        // which lives across the call, and SetOption copies it back in. Only
        // the slice layout and thread count change; openh264 validates them
        // and rebuilds its context for the new layout.
        let code = unsafe {
            let api = self.inner.raw_api();
            let got = api.get_option(
                ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                (&raw mut params).cast(),
            );
            if got != 0 {
                got
            } else {
                params.iMultipleThreadIdc = slices;
                let layer = &mut params.sSpatialLayers[0].sSliceArgument;
                layer.uiSliceMode = SM_FIXEDSLCNUM_SLICE;
                layer.uiSliceNum = u32::from(slices);
                api.set_option(
                    ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                    (&raw mut params).cast(),
                )
            }
        };
        if code != 0 {
            return Err(CodecError::H264Encode {
                op: "set up slices for threads",
                code: i64::from(code),
            });
        }
        self.sliced_at = Some(size);
        Ok(())
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &H264Config {
        &self.config
    }

    /// The target bitrate rate control works to now, in bits per second.
    pub fn bitrate(&self) -> u32 {
        self.bitrate_bps
    }

    /// Changes the target bitrate from the next picture on, without a
    /// keyframe (what `--bitrate auto` steers). Clamped to 10 kbit/s at
    /// least, as at creation.
    pub fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.clamp(10_000, i32::MAX as u32);
        if bps != self.bitrate_bps {
            self.bitrate_bps = bps;
            self.bitrate_pending = true;
        }
    }

    /// Gives openh264 the current target: its maximum (which the crate sets
    /// equal to the target, and which openh264 refuses to see below it) and
    /// the target, in the order that keeps the maximum at or above the
    /// target throughout.
    ///
    /// The openh264 crate sets the bitrate only when it (re)initialises the
    /// encoder, so this goes through the raw API: SetOption with
    /// ENCODER_OPTION_MAX_BITRATE (spatial layer 0) and
    /// ENCODER_OPTION_BITRATE (all layers), as WebRTC's H264EncoderImpl
    /// does; openh264's rate control picks the new target up on the next
    /// picture.
    fn apply_bitrate(&mut self) -> Result<(), CodecError> {
        use openh264_sys2::{
            SBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0,
            SPATIAL_LAYER_ALL,
        };
        let bps = i32::try_from(self.bitrate_bps).unwrap_or(i32::MAX);
        let mut max = SBitrateInfo {
            iLayer: SPATIAL_LAYER_0,
            iBitrate: bps,
        };
        let mut target = SBitrateInfo {
            iLayer: SPATIAL_LAYER_ALL,
            iBitrate: bps,
        };
        let mut current = SBitrateInfo {
            iLayer: SPATIAL_LAYER_0,
            iBitrate: 0,
        };
        // SAFETY: the encoder is initialised (a picture was encoded); each
        // call reads or writes one SBitrateInfo that lives across it.
        let code = unsafe {
            let api = self.inner.raw_api();
            let got = api.get_option(ENCODER_OPTION_MAX_BITRATE, (&raw mut current).cast());
            let raising = got != 0 || bps > current.iBitrate;
            let (first, second) = if raising {
                (
                    (ENCODER_OPTION_MAX_BITRATE, &mut max),
                    (ENCODER_OPTION_BITRATE, &mut target),
                )
            } else {
                (
                    (ENCODER_OPTION_BITRATE, &mut target),
                    (ENCODER_OPTION_MAX_BITRATE, &mut max),
                )
            };
            match api.set_option(first.0, (first.1 as *mut SBitrateInfo).cast()) {
                0 => api.set_option(second.0, (second.1 as *mut SBitrateInfo).cast()),
                e => e,
            }
        };
        if code != 0 {
            return Err(CodecError::H264Encode {
                op: "set the bitrate",
                code: i64::from(code),
            });
        }
        self.bitrate_pending = false;
        Ok(())
    }

    /// Frames openh264 dropped for rate control so far.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped
    }

    /// IDR access units produced so far.
    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Encodes one picture; `Ok(None)` when rate control skipped it.
    ///
    /// A frame of a different size than configured re-initialises openh264
    /// at that size and starts with an IDR.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedUnit>, CodecError> {
        let (width, height) = (frame.width(), frame.height());
        check_size(width, height).map_err(|why| CodecError::FrameRejected {
            width,
            height,
            why,
        })?;
        self.frames_in += 1;
        if self.keyframe_pending {
            self.inner.force_intra_frame();
        }
        // openh264 exists from the first picture on, and the crate sets it
        // up again at the configured bitrate when the size changes.
        if self.size.is_some_and(|s| s != (width, height)) {
            self.bitrate_pending = self.bitrate_bps != self.config.bitrate_bps;
        } else if self.bitrate_pending && self.size.is_some() {
            self.apply_bitrate()?;
        }
        let ts =
            Timestamp::from_millis(u64::try_from(frame.pts.as_millis()).unwrap_or(u64::MAX / 2));
        let bs = self
            .inner
            .encode_at(&Planes(frame), ts)
            .map_err(|e| CodecError::H264Encode {
                op: "encode",
                code: e.native_code(),
            })?;
        // A new picture size made the crate set openh264 up again with one
        // slice: slice it again (openh264 restarts with an IDR next picture).
        let resliced = self.slices > 1 && self.sliced_at != Some((width, height));
        self.size = Some((width, height));
        match bs.frame_type() {
            FrameType::Skip => {
                self.skipped += 1;
                return Ok(None);
            }
            FrameType::Invalid => {
                return Err(CodecError::H264Encode {
                    op: "encode (invalid frame type)",
                    code: 0,
                })
            }
            _ => {}
        }

        // One allocation, one copy out of openh264's buffer, handed over as `Bytes` without another.
        let mut len = 0;
        for layer in (0..bs.num_layers()).filter_map(|l| bs.layer(l)) {
            len += (0..layer.nal_count())
                .filter_map(|n| layer.nal_unit(n))
                .map(|u| u.len() + 4)
                .sum::<usize>();
        }
        let mut au = Vec::with_capacity(len);
        let (mut has_idr, mut has_sps, mut has_pps) = (false, false, false);
        for layer in (0..bs.num_layers()).filter_map(|l| bs.layer(l)) {
            for unit in (0..layer.nal_count()).filter_map(|n| layer.nal_unit(n)) {
                let body = strip_start_code(unit);
                match nal::nal_type(body) {
                    Some(NAL_IDR) => has_idr = true,
                    Some(NAL_SPS) => {
                        has_sps = true;
                        self.sps = Some(Bytes::copy_from_slice(body));
                    }
                    Some(NAL_PPS) => {
                        has_pps = true;
                        self.pps = Some(Bytes::copy_from_slice(body));
                    }
                    None => continue,
                    _ => {}
                }
                // openh264 writes 4-byte start codes; normalise anything else.
                au.extend_from_slice(&[0, 0, 0, 1]);
                au.extend_from_slice(body);
            }
        }
        if au.is_empty() {
            self.skipped += 1;
            return Ok(None);
        }
        if has_idr && !(has_sps && has_pps) {
            au = self.with_parameter_sets(au);
        }
        if has_idr {
            self.keyframe_pending = false;
            self.keyframes += 1;
        }
        if resliced {
            self.apply_slices((width, height))?;
        }
        Ok(Some(EncodedUnit {
            codec: Codec::H264,
            keyframe: has_idr,
            pts: frame.pts,
            dts: None,
            capture: frame.capture,
            data: Bytes::from(au),
        }))
    }

    /// Forces the next encoded frame to be an IDR (on PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_pending = true;
    }

    /// The access unit with the last seen SPS and PPS put in front (safety net; openh264 sends them).
    fn with_parameter_sets(&self, au: Vec<u8>) -> Vec<u8> {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return au;
        };
        let mut out = Vec::with_capacity(au.len() + sps.len() + pps.len() + 8);
        for ps in [sps, pps] {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(ps);
        }
        out.extend_from_slice(&au);
        out
    }
}

impl VideoEncoder for H264Encoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedUnit>, CodecError> {
        H264Encoder::encode(self, frame)
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        H264Encoder::set_bitrate(self, bps);
        true
    }

    fn request_keyframe(&mut self) {
        H264Encoder::request_keyframe(self);
    }
}

/// The NAL unit after its Annex-B start code (3 or 4 bytes), or the input if it has none.
fn strip_start_code(unit: &[u8]) -> &[u8] {
    match unit {
        [0, 0, 0, 1, rest @ ..] | [0, 0, 1, rest @ ..] => rest,
        _ => unit,
    }
}

/// Lends a [`VideoFrame`]'s planes to openh264 without copying them.
struct Planes<'a>(&'a VideoFrame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = VideoFrame::chroma_size(self.0.width(), self.0.height());
        (self.0.width() as usize, cw as usize, cw as usize)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::h264::nal::{nal_units, parse_sps, profile_level_id};

    /// Peak signal-to-noise ratio of two 8-bit planes, in dB (99 when equal).
    pub(crate) fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        if mse == 0.0 {
            return 99.0;
        }
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }

    /// A moving diagonal gradient with a drifting box, so motion search has work.
    pub(crate) fn gradient(width: u32, height: u32, n: u32) -> VideoFrame {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = VideoFrame::chroma_size(width, height);
        let (cw, ch) = (cw as usize, ch as usize);
        let mut data = vec![0u8; VideoFrame::byte_len(width, height)];
        let n = n as usize;
        let (bx, by) = (
            (n * 7) % w.saturating_sub(32).max(1),
            (n * 3) % h.saturating_sub(32).max(1),
        );
        for y in 0..h {
            for x in 0..w {
                let inside = (bx..bx + 32).contains(&x) && (by..by + 32).contains(&y);
                data[y * w + x] = if inside {
                    235
                } else {
                    ((x + y + 4 * n) % 220 + 16) as u8
                };
            }
        }
        let (u, v) = data[w * h..].split_at_mut(cw * ch);
        for y in 0..ch {
            for x in 0..cw {
                u[y * cw + x] = ((x * 2 + n) % 200 + 28) as u8;
                v[y * cw + x] = ((y * 2 + 2 * n) % 200 + 28) as u8;
            }
        }
        VideoFrame::new(
            width,
            height,
            Bytes::from(data),
            Instant::now(),
            Duration::from_millis(n as u64 * 33),
        )
        .expect("valid test frame")
    }

    pub(crate) fn config(keyint: u32) -> H264Config {
        H264Config {
            width: 320,
            height: 240,
            fps: 30.0,
            bitrate_bps: 2_000_000,
            keyint_frames: keyint,
            threads: 1,
            preset: H264Preset::Fast,
        }
    }

    fn types(au: &[u8]) -> Vec<u8> {
        nal_units(au).filter_map(nal::nal_type).collect()
    }

    #[test]
    fn first_unit_is_sps_pps_idr_with_4_byte_start_codes() {
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let f = gradient(320, 240, 0);
        let unit = enc.encode(&f).expect("encode").expect("not skipped");
        assert!(unit.keyframe);
        assert_eq!(unit.codec, Codec::H264);
        assert_eq!(unit.pts, f.pts);
        assert_eq!(unit.capture, f.capture);
        assert_eq!(&unit.data[..4], &[0, 0, 0, 1]);
        assert_eq!(types(&unit.data), vec![NAL_SPS, NAL_PPS, NAL_IDR]);
        let (sps, _) = nal::parameter_sets(&unit.data).expect("SPS and PPS");
        // Constrained baseline: profile 66 with constraint_set0 and set1.
        let pli = profile_level_id(sps).expect("long enough");
        assert_eq!(pli[0], 66);
        assert_eq!(pli[1] & 0xc0, 0xc0);
        let info = parse_sps(sps).expect("parse");
        assert_eq!((info.width, info.height), (320, 240));
        // Every start code is the 4-byte form.
        assert_eq!(
            unit.data.windows(4).filter(|w| *w == [0, 0, 0, 1]).count(),
            3
        );
    }

    #[test]
    fn keyint_is_honoured_and_every_idr_has_parameter_sets() {
        let mut enc = H264Encoder::new(config(10)).expect("encoder");
        let mut idr_at = Vec::new();
        for i in 0..31 {
            let unit = enc
                .encode(&gradient(320, 240, i))
                .expect("encode")
                .expect("not skipped");
            let t = types(&unit.data);
            if unit.keyframe {
                idr_at.push(i);
                assert_eq!(&t[..2], &[NAL_SPS, NAL_PPS], "frame {i}: {t:?}");
                assert!(t.contains(&NAL_IDR));
            } else {
                assert!(
                    !t.contains(&NAL_IDR) && !t.contains(&NAL_SPS),
                    "frame {i}: {t:?}"
                );
            }
        }
        assert_eq!(idr_at, vec![0, 10, 20, 30]);
        assert_eq!(enc.keyframes(), 4);
        assert_eq!(enc.skipped_frames(), 0);
    }

    /// Noise that moves: rate control has to spend whatever it is given.
    fn noise(width: u32, height: u32, n: u32, seed: &mut u64) -> VideoFrame {
        let mut data = vec![128u8; VideoFrame::byte_len(width, height)];
        for b in data.iter_mut().take((width * height) as usize) {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (*seed >> 56) as u8;
        }
        VideoFrame::new(
            width,
            height,
            Bytes::from(data),
            Instant::now(),
            Duration::from_millis(u64::from(n) * 33),
        )
        .expect("valid test frame")
    }

    #[test]
    fn set_bitrate_moves_the_output_both_ways() {
        // 2 s at each target (30 fps, 320x240 noise): the bits of the
        // second second, when rate control has settled.
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let mut seed = 1;
        let mut n = 0;
        let mut second = |enc: &mut H264Encoder| {
            let mut bits = 0;
            for i in 0..60 {
                let f = noise(320, 240, n, &mut seed);
                n += 1;
                if let Some(u) = enc.encode(&f).expect("encode") {
                    if i >= 30 {
                        bits += u.data.len() * 8;
                    }
                }
            }
            bits as f64
        };
        let high = second(&mut enc);
        enc.set_bitrate(400_000);
        assert_eq!(enc.bitrate(), 400_000);
        let low = second(&mut enc);
        enc.set_bitrate(2_000_000);
        let back = second(&mut enc);
        eprintln!("2 Mbit/s: {high} bit/s, 400 kbit/s: {low}, back: {back}");
        assert!(low < high / 2.5, "{low} not well under {high}");
        assert!(low < 600_000.0, "{low} over 400 kbit/s by half");
        assert!(back > low * 2.5, "{back} did not come back from {low}");
    }

    #[test]
    fn request_keyframe_forces_the_next_frame_to_idr() {
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let mut keys = Vec::new();
        for i in 0..12 {
            if i == 5 {
                VideoEncoder::request_keyframe(&mut enc);
            }
            let unit = VideoEncoder::encode(&mut enc, &gradient(320, 240, i))
                .expect("encode")
                .expect("not skipped");
            if unit.keyframe {
                keys.push(i);
                assert_eq!(&types(&unit.data)[..2], &[NAL_SPS, NAL_PPS]);
            }
        }
        assert_eq!(keys, vec![0, 5]);
    }

    #[test]
    fn odd_sizes_and_bad_configs_are_refused() {
        let mut c = config(0);
        c.width = 321;
        assert!(matches!(
            H264Encoder::new(c),
            Err(CodecError::Config { .. })
        ));
        let mut c = config(0);
        c.fps = 0.0;
        assert!(H264Encoder::new(c).is_err());
        let mut enc = H264Encoder::new(config(0)).expect("encoder");
        let odd = VideoFrame::new(
            5,
            3,
            Bytes::from(vec![0; VideoFrame::byte_len(5, 3)]),
            Instant::now(),
            Duration::ZERO,
        )
        .expect("frame");
        assert!(matches!(
            enc.encode(&odd),
            Err(CodecError::FrameRejected { .. })
        ));
    }
}
