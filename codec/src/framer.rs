//! Cutting audio blocks into an encoder's fixed-size frames, on one timeline.
//!
//! Opus wants 20 ms frames at 48 kHz, AAC 1024-sample frames at 44.1 or
//! 48 kHz; both get blocks of any size, rate and channel count. The framer
//! mixes channels, resamples, buffers, and keeps a sample-clock timeline so
//! every frame's capture time and pts follow from its position in the stream.

use std::time::{Duration, Instant};

use pstream_core::AudioBlock;

use crate::resample::Resampler;
use crate::CodecError;

/// How far a block's capture time may stray from the sample clock before
/// the timeline is re-anchored to it.
const REANCHOR_AFTER: Duration = Duration::from_millis(30);

/// A block's first sample, its times, and where it sits in the output stream.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: f64,
    capture: Instant,
    pts: Duration,
}

/// Maps positions in the output stream (in output-rate frames) to times.
#[derive(Debug)]
pub(crate) struct Timeline {
    rate: u32,
    anchor: Option<Anchor>,
}

impl Timeline {
    /// Capture time and pts of the output frame at (fractional) position `pos`.
    pub(crate) fn time_of(&self, pos: f64) -> (Instant, Duration) {
        let Some(a) = self.anchor else {
            return (Instant::now(), Duration::ZERO);
        };
        let delta = pos - a.at;
        let d = Duration::from_secs_f64(delta.abs() / f64::from(self.rate));
        if delta >= 0.0 {
            (a.capture + d, a.pts + d)
        } else {
            (
                a.capture.checked_sub(d).unwrap_or(a.capture),
                a.pts.saturating_sub(d),
            )
        }
    }

    /// Takes a block's times at position `at`, keeping the current anchor
    /// while they agree with the sample count: a block's capture time
    /// carries the jitter of the thread that stamped it, and timestamps
    /// derived from it would wobble where a receiver expects them to advance
    /// by exactly one frame. A real discontinuity (a skipped block, a
    /// restarted device) moves the anchor.
    fn observe(&mut self, at: f64, capture: Instant, pts: Duration) {
        if self.anchor.is_some() {
            let predicted = self.time_of(at).0;
            let diff = if predicted > capture {
                predicted - capture
            } else {
                capture - predicted
            };
            if diff < REANCHOR_AFTER {
                return;
            }
        }
        self.anchor = Some(Anchor { at, capture, pts });
    }
}

/// Buffers blocks into frames of `frame` samples per channel at `rate`.
#[derive(Debug)]
pub(crate) struct AudioFramer {
    channels: u16,
    frame: usize,
    resampler: Option<Resampler>,
    /// Input frames fed to the current resampler, and the output position it started at.
    segment_in: u64,
    segment_start: f64,
    /// Output frames appended to `pending` since the stream began.
    produced: u64,
    /// Output frames already handed out (position of `pending[0]`).
    consumed: u64,
    pending: Vec<f32>,
    mixed: Vec<f32>,
    resampled: Vec<f32>,
    timeline: Timeline,
}

impl AudioFramer {
    /// A framer producing `channels`-channel frames of `frame` samples at `rate`.
    pub(crate) fn new(rate: u32, channels: u16, frame: usize) -> Self {
        Self {
            channels,
            frame,
            resampler: None,
            segment_in: 0,
            segment_start: 0.0,
            produced: 0,
            consumed: 0,
            pending: Vec::with_capacity(4 * frame * usize::from(channels)),
            mixed: Vec::new(),
            resampled: Vec::new(),
            timeline: Timeline { rate, anchor: None },
        }
    }

    /// Output frames handed out so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Mixes, resamples and buffers one block.
    pub(crate) fn push(&mut self, block: &AudioBlock) -> Result<(), CodecError> {
        if block.channels == 0 || block.sample_rate == 0 {
            return Err(CodecError::AudioBlock(format!(
                "{} channels at {} Hz",
                block.channels, block.sample_rate
            )));
        }
        if block.samples.len() % usize::from(block.channels) != 0 {
            return Err(CodecError::AudioBlock(format!(
                "{} samples is not a whole number of {}-channel frames",
                block.samples.len(),
                block.channels
            )));
        }
        let rate = self.timeline.rate;
        let out_ch = usize::from(self.channels);
        mix_channels(
            &block.samples,
            usize::from(block.channels),
            out_ch,
            &mut self.mixed,
        );
        // Where this block's first sample lands in the output stream.
        let at = if block.sample_rate == rate {
            if self.resampler.take().is_some() {
                // Leaving a resampled segment: continue from what it produced.
                self.segment_in = 0;
            }
            let at = self.produced as f64;
            self.pending.extend_from_slice(&self.mixed);
            self.produced += (self.mixed.len() / out_ch) as u64;
            at
        } else {
            if self.resampler.as_ref().map(Resampler::in_rate) != Some(block.sample_rate) {
                self.resampler = Some(Resampler::new(block.sample_rate, rate, self.channels)?);
                self.segment_in = 0;
                self.segment_start = self.produced as f64;
            }
            let at = self.segment_start
                + self.segment_in as f64 * f64::from(rate) / f64::from(block.sample_rate);
            if let Some(r) = self.resampler.as_mut() {
                self.resampled.clear();
                r.process(&self.mixed, &mut self.resampled);
            }
            self.segment_in += (self.mixed.len() / out_ch) as u64;
            self.pending.extend_from_slice(&self.resampled);
            self.produced += (self.resampled.len() / out_ch) as u64;
            at
        };
        self.timeline.observe(at, block.capture, block.pts);
        Ok(())
    }

    /// Hands every complete frame to `f` with its stream position and the
    /// timeline, then drops them from the buffer.
    pub(crate) fn drain_frames(
        &mut self,
        mut f: impl FnMut(&[f32], u64, &Timeline) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        let frame_len = self.frame * usize::from(self.channels);
        let mut offset = 0;
        let result = loop {
            if self.pending.len() - offset < frame_len {
                break Ok(());
            }
            let r = f(
                &self.pending[offset..offset + frame_len],
                self.consumed,
                &self.timeline,
            );
            offset += frame_len;
            self.consumed += self.frame as u64;
            if let Err(e) = r {
                break Err(e);
            }
        };
        self.pending.drain(..offset);
        result
    }
}

/// Mixes interleaved `input` with `from` channels to `to` channels into `out`.
///
/// Equal counts copy; to mono averages all channels; mono to many duplicates;
/// otherwise each output channel takes the input channel of the same index,
/// or the average of all when there is none.
pub(crate) fn mix_channels(input: &[f32], from: usize, to: usize, out: &mut Vec<f32>) {
    out.clear();
    if from == to {
        out.extend_from_slice(input);
        return;
    }
    out.reserve(input.len() / from * to);
    for frame in input.chunks_exact(from) {
        let avg = frame.iter().sum::<f32>() / from as f32;
        for c in 0..to {
            let v = if to == 1 {
                avg
            } else if from == 1 {
                frame[0]
            } else {
                frame.get(c).copied().unwrap_or(avg)
            };
            out.push(v);
        }
    }
}
