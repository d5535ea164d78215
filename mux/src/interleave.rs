//! Merges the audio and video unit streams into capture-time order.
//!
//! The encoders run on their own threads, so their units arrive out of step;
//! FLV (and every RTMP ingest) wants tags in timestamp order. The
//! [`Interleaver`] holds each stream's units until the other stream has
//! caught up, or until a unit has waited `max_wait` of media time, so a
//! stalled stream never holds up the other for long.

use std::collections::VecDeque;
use std::time::Duration;

use pstream_core::EncodedUnit;

/// Most units either queue holds; past this the oldest leave regardless.
const MAX_QUEUED: usize = 512;

/// Capture-time ordering of two unit streams (see the module docs).
#[derive(Debug)]
pub struct Interleaver {
    video: VecDeque<EncodedUnit>,
    audio: VecDeque<EncodedUnit>,
    has_video: bool,
    has_audio: bool,
    max_wait: Duration,
}

impl Interleaver {
    /// An interleaver for the streams present; `max_wait` bounds how long one waits for the other.
    pub fn new(has_video: bool, has_audio: bool, max_wait: Duration) -> Self {
        Self {
            video: VecDeque::new(),
            audio: VecDeque::new(),
            has_video,
            has_audio,
            max_wait,
        }
    }

    /// Queues a unit.
    pub fn push(&mut self, unit: EncodedUnit) {
        if unit.codec.is_video() {
            self.video.push_back(unit);
        } else {
            self.audio.push_back(unit);
        }
    }

    /// The next unit in capture order, if it can be released yet.
    pub fn pop(&mut self) -> Option<EncodedUnit> {
        match (self.video.front(), self.audio.front()) {
            (Some(v), Some(a)) => {
                if a.capture < v.capture {
                    self.audio.pop_front()
                } else {
                    self.video.pop_front()
                }
            }
            (Some(_), None) => {
                if self.release(&self.video) {
                    self.video.pop_front()
                } else {
                    None
                }
            }
            (None, Some(_)) => {
                let other_present = self.has_video;
                if !other_present || self.waited_too_long(&self.audio) {
                    self.audio.pop_front()
                } else {
                    None
                }
            }
            (None, None) => None,
        }
    }

    /// Empties both queues in capture order (at the end of the stream).
    pub fn drain(&mut self) -> Vec<EncodedUnit> {
        let mut out = Vec::with_capacity(self.video.len() + self.audio.len());
        loop {
            let take_audio = match (self.video.front(), self.audio.front()) {
                (Some(v), Some(a)) => a.capture < v.capture,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => return out,
            };
            let next = if take_audio {
                self.audio.pop_front()
            } else {
                self.video.pop_front()
            };
            out.extend(next);
        }
    }

    fn release(&self, queue: &VecDeque<EncodedUnit>) -> bool {
        !self.has_audio || self.waited_too_long(queue)
    }

    /// True when the queue spans more than `max_wait` of capture time or is too long.
    fn waited_too_long(&self, queue: &VecDeque<EncodedUnit>) -> bool {
        match (queue.front(), queue.back()) {
            (Some(f), Some(b)) => {
                queue.len() > MAX_QUEUED
                    || b.capture.saturating_duration_since(f.capture) >= self.max_wait
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;
    use pstream_core::Codec;

    use super::*;

    fn unit(codec: Codec, at: Instant, ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec,
            keyframe: true,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: at + Duration::from_millis(ms),
            data: Bytes::new(),
        }
    }

    #[test]
    fn releases_in_capture_order_once_both_streams_have_data() {
        let t0 = Instant::now();
        let mut il = Interleaver::new(true, true, Duration::from_millis(500));
        il.push(unit(Codec::H264, t0, 0));
        il.push(unit(Codec::H264, t0, 33));
        assert!(il.pop().is_none(), "waits for audio");
        il.push(unit(Codec::Aac, t0, 10));
        il.push(unit(Codec::Aac, t0, 31));
        il.push(unit(Codec::Aac, t0, 52));
        let mut order = Vec::new();
        while let Some(u) = il.pop() {
            order.push((u.codec, u.pts.as_millis()));
        }
        assert_eq!(
            order,
            [
                (Codec::H264, 0),
                (Codec::Aac, 10),
                (Codec::Aac, 31),
                (Codec::H264, 33),
            ]
        );
        let rest: Vec<_> = il.drain().iter().map(|u| u.pts.as_millis()).collect();
        assert_eq!(rest, [52]);
    }

    #[test]
    fn a_stalled_stream_holds_the_other_only_for_max_wait() {
        let t0 = Instant::now();
        let mut il = Interleaver::new(true, true, Duration::from_millis(100));
        for ms in [0, 33, 66] {
            il.push(unit(Codec::H264, t0, ms));
        }
        assert!(il.pop().is_none());
        il.push(unit(Codec::H264, t0, 100));
        assert_eq!(il.pop().map(|u| u.pts.as_millis()), Some(0));
    }

    #[test]
    fn a_single_stream_flows_straight_through() {
        let t0 = Instant::now();
        let mut il = Interleaver::new(false, true, Duration::from_millis(100));
        il.push(unit(Codec::Aac, t0, 0));
        assert!(il.pop().is_some());
    }
}
