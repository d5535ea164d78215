//! The encode stages every sending pipeline runs (RTP and push): one for
//! video, one for audio. What differs between the pipelines is a parameter:
//! who times the keyframes ([`Gop`]) and who asks for extra ones (a PLI or
//! FIR from an RTP peer, an RTMP destination that (re)connects).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pstream_codec::{AudioEncoder, VideoEncoder};
use pstream_core::{AudioBlock, Codec, EncodedUnit, LinkReceiver, LinkSender, VideoFrame};

use crate::probe::{hit, Probe, ProbePoint};
use crate::{Error, Result};

/// Who decides when a keyframe is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gop {
    /// The encoder's own picture counter (its configured keyint; openh264
    /// counts again from a requested keyframe). What RTP uses: every
    /// picture the encoder is given counts, and a PLI is answered at once.
    Encoder,
    /// An IDR once this much media time (pts) has passed since the last
    /// one; a requested keyframe restarts the count. What push uses, so an
    /// IDR forced by a (re)connect is not followed by a short GOP.
    Every(Duration),
}

impl Gop {
    /// A time-based GOP of `frames` pictures at `fps`, with half a picture
    /// of slack so that timestamp jitter never makes a GOP one picture longer.
    pub fn every_frames(frames: u32, fps: f64) -> Self {
        let fps = fps.max(1.0);
        Gop::Every(Duration::from_secs_f64(
            (f64::from(frames) / fps - 0.5 / fps).max(0.0),
        ))
    }
}

/// What an encode stage counts, shared with the stats line.
#[derive(Debug, Default)]
pub struct EncodeCounters {
    /// Units encoded and handed on.
    pub units: AtomicU64,
    /// Pictures the encoder dropped (rate control).
    pub skips: AtomicU64,
    /// Oldest a picture was (capture to encoded), in microseconds: bounded
    /// by the frame queue however slow the encoder is.
    pub max_age_us: AtomicU64,
}

impl EncodeCounters {
    /// Units encoded so far.
    pub fn units(&self) -> u64 {
        self.units.load(Ordering::Relaxed)
    }

    /// Pictures the encoder dropped so far.
    pub fn skips(&self) -> u64 {
        self.skips.load(Ordering::Relaxed)
    }

    /// The oldest a picture was when encoded, in microseconds.
    pub fn max_age_us(&self) -> u64 {
        self.max_age_us.load(Ordering::Relaxed)
    }
}

/// Encodes pictures until the source link closes or the next stage goes
/// away. `keyframe` is set by whoever needs an IDR now; `codec` names the
/// encoder in errors; `probe` hears of each unit made.
#[allow(clippy::too_many_arguments)]
pub fn video_encode_stage(
    mut enc: Box<dyn VideoEncoder>,
    codec: Codec,
    gop: Gop,
    frames: LinkReceiver<VideoFrame>,
    out: LinkSender<EncodedUnit>,
    keyframe: &AtomicBool,
    counters: &EncodeCounters,
    probe: Option<&Probe>,
) -> Result<()> {
    let mut last_idr: Option<Duration> = None;
    while let Some(frame) = frames.recv() {
        let due = match gop {
            Gop::Encoder => false,
            Gop::Every(keyint) => last_idr.is_none_or(|t| frame.pts.saturating_sub(t) >= keyint),
        };
        if keyframe.swap(false, Ordering::Relaxed) || due {
            enc.request_keyframe();
        }
        match enc.encode(&frame) {
            Ok(Some(unit)) => {
                hit(probe, || ProbePoint::Encoded {
                    capture: frame.capture,
                });
                if unit.keyframe {
                    last_idr = Some(frame.pts);
                }
                let age = frame.capture.elapsed().as_micros() as u64;
                counters.max_age_us.fetch_max(age, Ordering::Relaxed);
                counters.units.fetch_add(1, Ordering::Relaxed);
                if out.send(unit).is_err() {
                    break;
                }
            }
            Ok(None) => {
                counters.skips.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(Error::codec(format!("{codec} encoding failed"), e)),
        }
    }
    Ok(())
}

/// Encodes audio blocks until the source link closes or the next stage
/// goes away.
pub fn audio_encode_stage(
    mut enc: Box<dyn AudioEncoder>,
    blocks: LinkReceiver<AudioBlock>,
    out: LinkSender<EncodedUnit>,
    counters: &EncodeCounters,
) -> Result<()> {
    let codec = enc.codec();
    while let Some(block) = blocks.recv() {
        let units = enc
            .encode(&block)
            .map_err(|e| Error::codec(format!("{codec} encoding failed"), e))?;
        for unit in units {
            counters.units.fetch_add(1, Ordering::Relaxed);
            if out.send(unit).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use pstream_codec::h264::{H264Config, H264Encoder, H264Preset};
    use pstream_core::link;

    use super::*;

    fn frame(n: u32, fps: u32) -> VideoFrame {
        let (w, h) = (64, 48);
        let mut data = vec![16u8; VideoFrame::byte_len(w, h)];
        // Something that moves, so the encoder has work.
        for (i, b) in data.iter_mut().take((w * h) as usize).enumerate() {
            *b = ((i as u32 + n * 7) % 200) as u8 + 16;
        }
        VideoFrame::new(
            w,
            h,
            data.into(),
            Instant::now(),
            Duration::from_secs_f64(f64::from(n) / f64::from(fps)),
        )
        .expect("frame")
    }

    /// Keyframe positions out of `count` pictures at 10 fps, with an extra
    /// keyframe asked for before picture `forced`.
    fn keyframes(gop: Gop, keyint_frames: u32, count: u32, forced: u32) -> Vec<u32> {
        let enc = H264Encoder::new(H264Config {
            width: 64,
            height: 48,
            fps: 10.0,
            bitrate_bps: 200_000,
            keyint_frames,
            threads: 1,
            preset: H264Preset::Fast,
        })
        .expect("encoder");
        let (frame_tx, frame_rx) = link::<VideoFrame>(64);
        let (unit_tx, unit_rx) = link::<EncodedUnit>(64);
        let keyframe = AtomicBool::new(false);
        let counters = EncodeCounters::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                video_encode_stage(
                    Box::new(enc),
                    Codec::H264,
                    gop,
                    frame_rx,
                    unit_tx,
                    &keyframe,
                    &counters,
                    None,
                )
                .expect("encode")
            });
            let mut out = Vec::new();
            for n in 0..count {
                if n == forced {
                    keyframe.store(true, Ordering::Relaxed);
                }
                frame_tx.send(frame(n, 10)).expect("send");
                let unit = unit_rx.recv().expect("a unit per picture");
                if unit.keyframe {
                    out.push(n);
                }
            }
            drop(frame_tx);
            out
        })
    }

    #[test]
    fn encoder_gop_counts_pictures_and_adds_requested_idrs() {
        // keyint 10 pictures: IDRs at 0 and 10; the one asked for at 13
        // starts openh264's count again.
        assert_eq!(keyframes(Gop::Encoder, 10, 25, 13), vec![0, 10, 13, 23]);
    }

    #[test]
    fn timed_gop_restarts_on_a_requested_idr() {
        // 1 s at 10 fps: IDRs at 0 and 10; the one asked for at 13 moves
        // the next to 23.
        let gop = Gop::every_frames(10, 10.0);
        assert_eq!(keyframes(gop, 0, 25, 13), vec![0, 10, 13, 23]);
    }
}
