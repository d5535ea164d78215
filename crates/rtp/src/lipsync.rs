//! Lip sync: how long to hold back the earlier of audio and video so that
//! both are presented on the sender's timeline.
//!
//! RTCP sender reports map each stream's RTP timestamps to the sender's wall
//! clock (NTP), so every decoded picture and audio block knows when it was
//! captured. The receiver observes, per stream, the *presentation delay*:
//! its own wall clock at the moment the media will be seen or heard, minus
//! that capture time. The two delays differ because the paths differ (audio
//! waits in a device ring and the device's buffer, video waits for its last
//! slice and the decoder). Holding the stream with the shorter delay by the
//! difference puts both on one timeline, as RFC 3550 section 6.4.1 intends.
//!
//! Both clocks' offset cancels out: the receiver and sender clocks need not
//! agree, only the difference between the two streams' delays matters.
//!
//! Sans-IO like the rest of this crate: delays are passed in, holds come out.

use std::collections::VecDeque;
use std::time::Duration;

/// Which stream an observation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The video stream.
    Video,
    /// The audio stream.
    Audio,
}

/// Settings for [`LipSync`].
#[derive(Debug, Clone, Copy)]
pub struct LipSyncConfig {
    /// The longest hold either stream gets: a larger difference is a broken
    /// sender clock or a stalled path, and holding a second of video costs
    /// a second of pictures in memory.
    pub max_hold: Duration,
    /// A new video hold is taken only when it differs from the current one
    /// by more than this (video holds move smoothly, frame by frame).
    pub video_step: Duration,
    /// The same for audio, larger: every change of an audio hold inserts
    /// silence or skips samples, which is heard.
    pub audio_step: Duration,
    /// Observations per stream whose median is the stream's delay: enough
    /// to ride out network jitter and an IDR's longer decode.
    pub window: usize,
}

impl Default for LipSyncConfig {
    fn default() -> Self {
        Self {
            max_hold: Duration::from_secs(1),
            video_step: Duration::from_millis(5),
            audio_step: Duration::from_millis(20),
            window: 31,
        }
    }
}

/// The lip-sync state machine; see the module documentation.
#[derive(Debug)]
pub struct LipSync {
    config: LipSyncConfig,
    video: Window,
    audio: Window,
    video_hold: Duration,
    audio_hold: Duration,
    changes: u64,
}

impl LipSync {
    /// A lip sync with no observations and no holds.
    pub fn new(config: LipSyncConfig) -> Self {
        Self {
            config,
            video: Window::new(config.window),
            audio: Window::new(config.window),
            video_hold: Duration::ZERO,
            audio_hold: Duration::ZERO,
            changes: 0,
        }
    }

    /// Records one presentation delay in microseconds (receiver wall clock
    /// when presented, minus the sender's capture time from the SR mapping),
    /// *without* any hold this lip sync asked for; then updates the holds
    /// and returns the one for `stream`.
    pub fn observe(&mut self, stream: Stream, delay_us: i64) -> Duration {
        match stream {
            Stream::Video => self.video.push(delay_us),
            Stream::Audio => self.audio.push(delay_us),
        }
        self.update();
        match stream {
            Stream::Video => self.video_hold,
            Stream::Audio => self.audio_hold,
        }
    }

    /// How long to hold each decoded picture before showing it.
    pub fn video_hold(&self) -> Duration {
        self.video_hold
    }

    /// How much extra audio to keep queued ahead of the device.
    pub fn audio_hold(&self) -> Duration {
        self.audio_hold
    }

    /// Times a hold changed.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Video's presentation delay minus audio's, in microseconds, holds
    /// included (positive: video is shown later than its sound is heard);
    /// `None` until both streams have been observed.
    pub fn offset_us(&self) -> Option<i64> {
        let video = self.video.median()? + micros(self.video_hold);
        let audio = self.audio.median()? + micros(self.audio_hold);
        Some(video - audio)
    }

    /// Video's presentation delay minus audio's without any hold, in
    /// microseconds: the offset a receiver that does not sync shows.
    pub fn path_difference_us(&self) -> Option<i64> {
        Some(self.video.median()? - self.audio.median()?)
    }

    fn update(&mut self) {
        let (Some(video), Some(audio)) = (self.video.median(), self.audio.median()) else {
            return;
        };
        let max = micros(self.config.max_hold);
        let difference = audio - video;
        // Beyond the largest hold nothing sensible can be done; holding the
        // maximum would only add latency without reaching sync.
        if difference.abs() > max {
            return;
        }
        let video_target = Duration::from_micros(difference.max(0) as u64);
        let audio_target = Duration::from_micros((-difference).max(0) as u64);
        if video_target.abs_diff(self.video_hold) > self.config.video_step {
            self.video_hold = video_target;
            self.changes += 1;
        }
        if audio_target.abs_diff(self.audio_hold) > self.config.audio_step
            || (audio_target.is_zero() && !self.audio_hold.is_zero() && !video_target.is_zero())
        {
            self.audio_hold = audio_target;
            self.changes += 1;
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The last few observations of one stream, kept in arrival order and in
/// sorted order so the median is read without sorting or allocating on
/// every packet.
#[derive(Debug)]
struct Window {
    arrivals: VecDeque<i64>,
    sorted: Vec<i64>,
    capacity: usize,
}

impl Window {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            arrivals: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            capacity,
        }
    }

    fn push(&mut self, v: i64) {
        if self.arrivals.len() == self.capacity {
            if let Some(old) = self.arrivals.pop_front() {
                if let Ok(i) = self.sorted.binary_search(&old) {
                    self.sorted.remove(i);
                }
            }
        }
        self.arrivals.push_back(v);
        let at = self.sorted.partition_point(|&x| x < v);
        self.sorted.insert(at, v);
    }

    fn median(&self) -> Option<i64> {
        self.sorted.get(self.sorted.len() / 2).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    fn feed(sync: &mut LipSync, video_ms: i64, audio_ms: i64, n: usize) {
        for _ in 0..n {
            sync.observe(Stream::Video, video_ms * MS);
            sync.observe(Stream::Audio, audio_ms * MS);
        }
    }

    #[test]
    fn nothing_is_held_until_both_streams_are_seen() {
        let mut sync = LipSync::new(LipSyncConfig::default());
        for _ in 0..50 {
            sync.observe(Stream::Video, 10 * MS);
        }
        assert_eq!(sync.video_hold(), Duration::ZERO);
        assert_eq!(sync.audio_hold(), Duration::ZERO);
        assert_eq!(sync.offset_us(), None);
    }

    #[test]
    fn the_earlier_stream_is_held_by_the_difference() {
        // Audio waits 70 ms in the device ring, video 8 ms in the decoder.
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, 8, 70, 40);
        assert_eq!(sync.video_hold(), Duration::from_millis(62));
        assert_eq!(sync.audio_hold(), Duration::ZERO);
        assert_eq!(sync.offset_us(), Some(0));
        assert_eq!(sync.path_difference_us(), Some(-62 * MS));
        // Now video is the late one (a slow decoder): audio is held.
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, 150, 60, 40);
        assert_eq!(sync.video_hold(), Duration::ZERO);
        assert_eq!(sync.audio_hold(), Duration::from_millis(90));
        assert_eq!(sync.offset_us(), Some(0));
    }

    #[test]
    fn the_clocks_offset_cancels_out() {
        // The receiver's clock is 3 s behind the sender's: every delay is
        // negative, the hold is the same.
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, -3000 + 8, -3000 + 70, 40);
        assert_eq!(sync.video_hold(), Duration::from_millis(62));
    }

    #[test]
    fn jitter_and_outliers_do_not_move_the_holds() {
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, 10, 70, 40);
        let changes = sync.changes();
        // An IDR that took 40 ms more to decode, and a few milliseconds of
        // jitter on every observation.
        for i in 0..200 {
            let jitter = [-2, 0, 3, 1, -1][i % 5];
            let video = if i % 30 == 0 { 50 } else { 10 + jitter };
            sync.observe(Stream::Video, video * MS);
            sync.observe(Stream::Audio, (70 - jitter) * MS);
        }
        assert_eq!(sync.changes(), changes);
        assert_eq!(sync.video_hold(), Duration::from_millis(60));
    }

    #[test]
    fn small_audio_changes_wait_for_the_audio_step() {
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, 100, 40, 40);
        assert_eq!(sync.audio_hold(), Duration::from_millis(60));
        // 10 ms less decode delay: not worth a click.
        feed(&mut sync, 90, 40, 40);
        assert_eq!(sync.audio_hold(), Duration::from_millis(60));
        // 40 ms less is.
        feed(&mut sync, 60, 40, 40);
        assert_eq!(sync.audio_hold(), Duration::from_millis(20));
        // And when audio becomes the late one, its hold goes at once.
        feed(&mut sync, 30, 40, 40);
        assert_eq!(sync.audio_hold(), Duration::ZERO);
        assert_eq!(sync.video_hold(), Duration::from_millis(10));
    }

    #[test]
    fn the_window_median_follows_the_last_observations() {
        let mut w = Window::new(3);
        assert_eq!(w.median(), None);
        for v in [5, 1, 9] {
            w.push(v);
        }
        assert_eq!(w.median(), Some(5));
        // 5 leaves, 7 comes: {1, 9, 7}.
        w.push(7);
        assert_eq!(w.median(), Some(7));
        w.push(1);
        w.push(1);
        assert_eq!(w.median(), Some(1));
        assert_eq!(w.sorted.len(), 3);
    }

    #[test]
    fn a_difference_beyond_the_maximum_is_left_alone() {
        let mut sync = LipSync::new(LipSyncConfig::default());
        feed(&mut sync, 10, 5000, 40);
        assert_eq!(sync.video_hold(), Duration::ZERO);
        assert_eq!(sync.offset_us(), Some(-4990 * MS));
    }
}
