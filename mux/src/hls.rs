//! HLS (RFC 8216) for live streams: a sans-IO segmenter with its media playlist, and a master playlist builder.
//!
//! [`HlsSegmenter`] takes the units of one rendition ([`HlsSegmenter::push`]),
//! muxes them into MPEG-TS with [`TsMuxer`] and cuts a segment at the first
//! keyframe at which the open segment has reached the target duration (within
//! a tenth of it, so that a keyframe a few milliseconds early still cuts). A
//! stream without video cuts on any audio frame. Every segment starts with a
//! PAT and PMT and, with video, normally an IDR; video before the first
//! keyframe is dropped and counted ([`HlsSegmenter::dropped`]).
//!
//! The segmenter reads no clock: every call that can cut takes `now` from its
//! driver. Whatever the timestamps say, a segment is also cut when it has been
//! open for [`HlsConfig::max_segment_wall_time`] of that wall-clock time (by
//! default three target durations) without a keyframe that could end it, so
//! a publisher whose keyframes stop, or whose timestamps stand still, still
//! gets segments at a steady pace.
//!
//! # Timestamps that lie
//! A track whose timestamps leap forward by more than ten target durations
//! (or the longest segment allowed, if shorter) or step back by more than
//! [`MAX_STEP_BACK`] has jumped: the open segment ends with the units before
//! the jump, and the next one follows an `EXT-X-DISCONTINUITY` and starts at
//! once with the unit that jumped, shifted so that the output timeline goes on
//! where it was (as after [`HlsSegmenter::restart`]); no unit is dropped and
//! the jump shows in no `EXTINF` or `EXT-X-TARGETDURATION`. A segment whose
//! timestamps moved less than a quarter as fast as the driver's clock (they
//! stood still or stepped back) gets its wall-clock duration instead, so a
//! frozen publisher's segments do not claim `0.000` seconds; no segment ever
//! claims more than twice [`HlsConfig::max_segment_duration`].
//!
//! # Segments cut without a keyframe
//! A cut forced by wall-clock time, by [`HlsConfig::max_segment_duration`] or
//! by [`MAX_SEGMENT_BYTES`] starts the next segment at once with the unit that
//! did not fit, keyframe or not, with no discontinuity and no unit dropped.
//! Such a segment is marked: [`Segment::independent`] is false and its first
//! video packet carries no random-access indicator (and the playlist never
//! claims `EXT-X-INDEPENDENT-SEGMENTS`). This is what players handle best: a
//! player that plays the segments in order (hls.js, Safari, ffmpeg) keeps
//! decoding across the cut, since the pictures it refers to were in the
//! previous segment; waiting for the next keyframe instead would lose the same
//! pictures for every player, and the audio with them, and a discontinuity
//! tag would make hls.js drop every picture up to the next keyframe
//! (`forceKeyFrameOnDiscontinuity`) even though nothing is discontinuous.
//!
//! The media playlist ([`HlsSegmenter::playlist`]) lists the newest `window`
//! segments with `EXT-X-VERSION:3`, `EXT-X-TARGETDURATION` (the ceiling of the
//! longest segment so far, never below the configured target, so it never
//! shrinks), `EXT-X-MEDIA-SEQUENCE`, `#EXTINF` with each segment's measured
//! duration, `EXT-X-DISCONTINUITY` on the first segment after
//! [`HlsSegmenter::restart`] (and `EXT-X-DISCONTINUITY-SEQUENCE` once such a
//! segment has left the window), and `EXT-X-ENDLIST` after
//! [`HlsSegmenter::end`]. After a restart the unit times are shifted so that
//! the transport stream's timeline continues where the last session ended
//! (a publisher that reconnects starts again from zero): players that honour
//! the discontinuity tag lose nothing, and those that ignore it (ffmpeg's HLS
//! demuxer) still see monotonic timestamps.
//!
//! The playlist is rendered once per change and handed out as [`Bytes`], so
//! serving it costs a reference count.
//!
//! # Memory bound
//! The segmenter keeps `window + retain_extra` closed segments (the extra
//! ones serve clients that fetched the playlist just before it slid) plus the
//! one being written; older segments are dropped, so their memory is freed as
//! soon as no reader holds a clone. A segment is force-cut at
//! `max_segment_duration` even without a keyframe, and at
//! [`MAX_SEGMENT_BYTES`] whatever its timestamps say (the next segment then
//! starts with the tables and the unit that did not fit, keyframe or not, as
//! after a duration cut), so at a bitrate `B` the
//! bound is about `(window + retain_extra + 1) × max_segment_duration × B`
//! (with the defaults and keyframes at least every 2 s: 9 × 2 s × B), and
//! never more than [`HlsConfig::max_kept_bytes`] plus the open segment (at
//! most [`MAX_SEGMENT_BYTES`] and one unit): closed segments past that budget
//! are let go oldest first, even from the playlist (which then lists fewer
//! than `window`, never fewer than [`MIN_KEPT_SEGMENTS`]), so one publisher
//! of absurd bitrate or frozen timestamps holds about 100 MiB, not nine
//! 32 MiB segments. The
//! event queue ([`HlsSegmenter::poll_event`]) holds at most
//! [`MAX_PENDING_EVENTS`]; older events are dropped if nobody polls.
//!
//! Segment files are named `<session>-<sequence>.ts` ([`HlsConfig::session`],
//! chosen by the driver, e.g. at random; `<sequence>.ts` without one), so
//! that a segment URL never names two different segments: a publisher that
//! comes back, or a server that restarts, does not serve a new `0.ts` where
//! browsers and caches keep the old one (segments are cached as immutable).
//! [`HlsSegmenter::segment`] finds one by that name for the HTTP layer, and
//! [`HlsEvent`]s tell a writer (`--hls-dir`) which files to create and delete.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pstream_codec::h264::nal;
use pstream_core::{Codec, EncodedUnit};
use thiserror::Error;

use crate::ts::{TsError, TsMuxer, TsStreams};

/// The most events kept for [`HlsSegmenter::poll_event`] before the oldest are dropped.
pub const MAX_PENDING_EVENTS: usize = 64;

/// A segment is cut once it holds this many bytes, whatever the timestamps
/// say: a publisher whose timestamps stand still would otherwise never reach
/// the duration that cuts it, and its segment would grow without bound.
pub const MAX_SEGMENT_BYTES: usize = 32 << 20;

/// Closed segments always kept, whatever [`HlsConfig::max_kept_bytes`] says:
/// a player needs the newest and one before it to start.
pub const MIN_KEPT_SEGMENTS: usize = 2;

/// A track whose timestamps step back by more than this has jumped (a
/// smaller step is B-frame reordering or audio/video skew).
pub const MAX_STEP_BACK: Duration = Duration::from_secs(1);

/// What went wrong in the HLS segmenter.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HlsError {
    /// A configuration value cannot be used.
    #[error("invalid HLS configuration: {0}")]
    Config(&'static str),
    /// The transport stream muxer refused a unit (it was dropped).
    #[error(transparent)]
    Ts(#[from] TsError),
}

/// Settings for [`HlsSegmenter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsConfig {
    /// Segment length to aim for; segments end at the first keyframe after it (default 2 s).
    pub target_duration: Duration,
    /// Segments listed in the playlist (default 6).
    pub window: usize,
    /// Segments kept (and served) after they left the playlist (default 2).
    pub retain_extra: usize,
    /// Bytes of closed segments kept in all (default 64 MiB): past it the
    /// oldest go first, retained then listed ones, down to
    /// [`MIN_KEPT_SEGMENTS`]. A 50 Mbit/s stream's 2 s segments fit five.
    pub max_kept_bytes: usize,
    /// A segment is cut here even without a keyframe (default 10 s).
    pub max_segment_duration: Duration,
    /// A segment open for this long by the driver's clock is cut at the next
    /// unit, keyframe or not, whatever the timestamps say (default 6 s:
    /// three target durations).
    pub max_segment_wall_time: Duration,
    /// Put before each segment name in the playlist, e.g. `"P144p30fps16x9/"` (default empty).
    pub uri_prefix: String,
    /// Names this segmenter's segments `<session>-<sequence>.ts`: up to
    /// [`MAX_SESSION_LEN`] of `[0-9a-z]`, different for every segmenter that
    /// may serve the same URLs (a driver picks it at random). Empty (the
    /// default): `<sequence>.ts`.
    pub session: String,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            target_duration: Duration::from_secs(2),
            window: 6,
            retain_extra: 2,
            max_kept_bytes: 64 << 20,
            max_segment_duration: Duration::from_secs(10),
            max_segment_wall_time: Duration::from_secs(6),
            uri_prefix: String::new(),
            session: String::new(),
        }
    }
}

impl HlsConfig {
    fn validate(&self) -> Result<(), HlsError> {
        if self.target_duration < Duration::from_millis(100) {
            return Err(HlsError::Config("target duration below 100 ms"));
        }
        if self.window == 0 {
            return Err(HlsError::Config("a window of 0 segments"));
        }
        if self.max_kept_bytes == 0 {
            return Err(HlsError::Config("no bytes for segments"));
        }
        if self.max_segment_duration < self.target_duration {
            return Err(HlsError::Config(
                "max segment duration shorter than the target duration",
            ));
        }
        if self.session.len() > MAX_SESSION_LEN
            || !self
                .session
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        {
            return Err(HlsError::Config(
                "a session name other than up to 32 of [0-9a-z]",
            ));
        }
        if self.max_segment_wall_time < self.target_duration {
            return Err(HlsError::Config(
                "max segment wall-clock time shorter than the target duration",
            ));
        }
        Ok(())
    }
}

/// One closed media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number (also in its name).
    pub sequence: u64,
    /// Measured duration: from its first unit to the next segment's first unit.
    pub duration: Duration,
    /// Whether a discontinuity (publisher restart) precedes this segment.
    pub discontinuity: bool,
    /// Whether its first video unit is a keyframe (always, without video),
    /// so it decodes alone; false after a forced cut (see the module doc).
    pub independent: bool,
    /// When it was closed, by the driver's clock.
    pub closed_at: Instant,
    /// The whole MPEG-TS file.
    pub data: Bytes,
    name: String,
}

impl Segment {
    /// The segment's file name, `<session>-<sequence>.ts`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The file name of the segment with this sequence number in `session`:
/// `<session>-<sequence>.ts`, or `<sequence>.ts` if `session` is empty.
pub fn segment_name(session: &str, sequence: u64) -> String {
    if session.is_empty() {
        format!("{sequence}.ts")
    } else {
        format!("{session}-{sequence}.ts")
    }
}

/// The longest [`HlsConfig::session`].
pub const MAX_SESSION_LEN: usize = 32;

/// Something a caller that mirrors segments elsewhere (e.g. to disk) must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsEvent {
    /// A segment was closed; the playlist now lists it.
    SegmentReady {
        /// Its file name.
        name: String,
        /// Its duration.
        duration: Duration,
        /// Its bytes.
        data: Bytes,
    },
    /// A segment left memory; a mirror may delete it.
    SegmentRemoved {
        /// Its file name.
        name: String,
    },
    /// The playlist changed (after every `SegmentReady`, end or restart).
    PlaylistUpdated,
}

/// The segment being written.
#[derive(Debug, Clone, Copy)]
struct Open {
    sequence: u64,
    start: Duration,
    /// The end of the latest unit (its pts plus its duration).
    end: Duration,
    discontinuity: bool,
    /// No video before its first keyframe (so far).
    independent: bool,
    video_seen: bool,
    /// When it was opened, by the driver's clock.
    opened_at: Instant,
    /// When its latest unit came, by the driver's clock.
    last_at: Instant,
}

/// A sans-IO HLS segmenter and media playlist for one rendition.
#[derive(Debug)]
pub struct HlsSegmenter {
    config: HlsConfig,
    muxer: TsMuxer,
    buf: BytesMut,
    open: Option<Open>,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    /// Discontinuities of segments already dropped from `segments`.
    dropped_discontinuities: u64,
    pending_discontinuity: bool,
    ended: bool,
    last_video_pts: Option<Duration>,
    frame_interval: Duration,
    max_duration: Duration,
    playlist: Bytes,
    playlist_modified: Option<Instant>,
    events: VecDeque<HlsEvent>,
    dropped: u64,
    dropped_events: u64,
    /// Bytes of the closed segments in `segments`.
    kept_bytes: usize,
    /// Segments let go early to stay within `max_kept_bytes`.
    trimmed: u64,
    /// Added to unit times (ns) so that a restarted session continues the timeline.
    offset_ns: i128,
    /// The end of the latest unit written, on the output timeline.
    timeline_end: Duration,
    /// Set by a restart or a jump: the next segment's first unit fixes `offset_ns`.
    rebase: bool,
    /// The decode time of the latest unit in, as it came, per track (audio, video).
    last_in: [Option<Duration>; 2],
    /// Timestamp jumps taken as discontinuities.
    timestamp_jumps: u64,
}

/// `t + offset_ns`, clamped to what a [`Duration`] of nanoseconds can hold.
fn shift(t: Duration, offset_ns: i128) -> Duration {
    let ns = (t.as_nanos() as i128 + offset_ns).clamp(0, i128::from(u64::MAX));
    Duration::from_nanos(ns as u64)
}

impl HlsSegmenter {
    /// A segmenter for a stream with these elementary streams.
    pub fn new(config: HlsConfig, streams: TsStreams) -> Result<Self, HlsError> {
        config.validate()?;
        let mut s = Self {
            config,
            muxer: TsMuxer::new(streams),
            buf: BytesMut::new(),
            open: None,
            segments: VecDeque::new(),
            next_sequence: 0,
            dropped_discontinuities: 0,
            pending_discontinuity: false,
            ended: false,
            last_video_pts: None,
            frame_interval: Duration::from_millis(33),
            max_duration: Duration::ZERO,
            playlist: Bytes::new(),
            playlist_modified: None,
            events: VecDeque::new(),
            dropped: 0,
            dropped_events: 0,
            kept_bytes: 0,
            trimmed: 0,
            offset_ns: 0,
            timeline_end: Duration::ZERO,
            rebase: false,
            last_in: [None; 2],
            timestamp_jumps: 0,
        };
        s.render();
        Ok(s)
    }

    /// The configuration in use.
    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// Adds one unit (H.264 access unit or raw AAC frame) in decode order,
    /// at `now` by the driver's clock.
    ///
    /// Units are expected interleaved in time order (see
    /// [`crate::Interleaver`]). A unit the muxer refuses is dropped, counted
    /// and returned as an error; the stream goes on. Pushing after
    /// [`Self::end`] implies [`Self::restart`] with the same streams.
    pub fn push(&mut self, unit: &EncodedUnit, now: Instant) -> Result<(), HlsError> {
        if self.ended {
            self.restart(self.muxer.streams(), now);
        }
        let streams = self.muxer.streams();
        let is_video = unit.codec == Codec::H264;
        let video_stream = streams.video || streams.audio.is_none();
        let cut_point = if video_stream {
            is_video && (unit.keyframe || nal::contains_idr(&unit.data))
        } else {
            unit.codec == Codec::Aac
        };
        let track = usize::from(is_video);
        let t_in = unit.dts.unwrap_or(unit.pts);
        let jumped = self.open.is_some() && self.is_jump(track, t_in);
        if jumped {
            // End the segment with what came before the jump; the next one
            // follows a discontinuity and continues the output timeline.
            self.close_segment(None, now);
            self.pending_discontinuity = true;
            self.rebase = true;
            self.last_video_pts = None;
            self.timestamp_jumps += 1;
        }
        if self.open.is_none() {
            if !cut_point && !jumped {
                // Nothing decodable to start a segment with yet.
                self.dropped += 1;
                return Ok(());
            }
            if std::mem::take(&mut self.rebase) {
                // After a restart or a jump, continue the timeline where it ended.
                self.offset_ns = self.timeline_end.as_nanos() as i128 - unit.pts.as_nanos() as i128;
            }
        }
        self.last_in[track] = Some(t_in);
        let retimed;
        let unit = if self.offset_ns == 0 {
            unit
        } else {
            retimed = EncodedUnit {
                pts: shift(unit.pts, self.offset_ns),
                dts: unit.dts.map(|d| shift(d, self.offset_ns)),
                ..unit.clone()
            };
            &retimed
        };
        match self.open {
            None => self.open_segment(unit.pts, now),
            Some(open) => {
                let elapsed = unit.pts.saturating_sub(open.start);
                let tolerance = self.config.target_duration / 10;
                let open_for = now.saturating_duration_since(open.opened_at);
                if (cut_point && elapsed + tolerance >= self.config.target_duration)
                    || elapsed >= self.config.max_segment_duration
                    || open_for >= self.config.max_segment_wall_time
                    || self.buf.len() >= MAX_SEGMENT_BYTES
                {
                    self.close_segment(Some(unit.pts), now);
                    self.open_segment(unit.pts, now);
                }
            }
        }
        if let Some(open) = self.open.as_mut().filter(|o| is_video && !o.video_seen) {
            open.video_seen = true;
            open.independent = cut_point;
        }
        if let Err(e) = self.muxer.write_unit(unit, &mut self.buf) {
            self.dropped += 1;
            return Err(e.into());
        }
        let unit_len = if is_video {
            if let Some(last) = self.last_video_pts {
                let d = unit.pts.saturating_sub(last);
                if !d.is_zero() && d < Duration::from_secs(1) {
                    self.frame_interval = d;
                }
            }
            self.last_video_pts = Some(unit.pts);
            self.frame_interval
        } else {
            let rate = streams.audio.map_or(48_000, |a| a.sample_rate());
            Duration::from_secs(1024) / rate
        };
        if let Some(open) = &mut self.open {
            open.end = open.end.max(unit.pts + unit_len);
            open.last_at = now;
        }
        self.timeline_end = self.timeline_end.max(unit.pts + unit_len);
        Ok(())
    }

    /// The publisher stopped at `now`: closes the open segment and adds `EXT-X-ENDLIST`.
    pub fn end(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        self.close_segment(None, now);
        self.ended = true;
        self.playlist_modified = Some(now);
        self.render();
        self.event(HlsEvent::PlaylistUpdated);
    }

    /// The publisher is back (possibly with other streams): the next segment
    /// follows an `EXT-X-DISCONTINUITY`, and `EXT-X-ENDLIST` goes away.
    pub fn restart(&mut self, streams: TsStreams, now: Instant) {
        self.close_segment(None, now);
        self.ended = false;
        self.pending_discontinuity = !self.segments.is_empty();
        self.muxer.set_streams(streams);
        self.last_video_pts = None;
        self.last_in = [None; 2];
        self.rebase = true;
        self.playlist_modified = Some(now);
        self.render();
        self.event(HlsEvent::PlaylistUpdated);
    }

    /// Whether [`Self::end`] was called and no unit or restart came since.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The current media playlist (`.m3u8`).
    pub fn playlist(&self) -> Bytes {
        self.playlist.clone()
    }

    /// A segment still in memory, by file name (`<session>-<sequence>.ts`).
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        let stem = name.strip_suffix(".ts")?;
        let digits = if self.config.session.is_empty() {
            stem
        } else {
            stem.strip_prefix(self.config.session.as_str())?
                .strip_prefix('-')?
        };
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let sequence: u64 = digits.parse().ok()?;
        let first = self.segments.front()?.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(index)
    }

    /// When the playlist last changed, by the driver's clock (None before
    /// the first segment, end or restart).
    pub fn playlist_modified(&self) -> Option<Instant> {
        self.playlist_modified
    }

    /// The closed segments in memory, oldest first (the playlist lists the last `window`).
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// The next event for a mirror of the segments, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<HlsEvent> {
        self.events.pop_front()
    }

    /// Units dropped so far: video before the first keyframe, and units the muxer refused.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events dropped because nobody polled them.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Segments let go before their time to keep within
    /// [`HlsConfig::max_kept_bytes`].
    pub fn trimmed_segments(&self) -> u64 {
        self.trimmed
    }

    /// Timestamp jumps taken as discontinuities so far.
    pub fn timestamp_jumps(&self) -> u64 {
        self.timestamp_jumps
    }

    /// The largest step between two units of a track that is still taken as
    /// the same timeline: ten target durations, and never more than the
    /// longest segment, so no segment's duration can come from a jump.
    fn max_step(&self) -> Duration {
        (self.config.target_duration * 10).min(self.config.max_segment_duration)
    }

    /// Whether `t` (decode time, as it came) jumps away from its track's
    /// timeline: forward by more than [`Self::max_step`] or back by more than
    /// [`MAX_STEP_BACK`]. A track whose unit lands where the output timeline
    /// already is (the other track jumped first and the timeline was rebased)
    /// has not jumped again.
    fn is_jump(&self, track: usize, t: Duration) -> bool {
        let away =
            |t: Duration, from: Duration| t > from + self.max_step() || t + MAX_STEP_BACK < from;
        let Some(last) = self.last_in[track] else {
            return false;
        };
        away(t, last) && away(shift(t, self.offset_ns), self.timeline_end)
    }

    /// Peak bitrate of the segments in memory, in bits per second (for `BANDWIDTH`).
    pub fn peak_bandwidth_bps(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration >= Duration::from_millis(100))
            .map(|s| (s.data.len() as f64 * 8.0 / s.duration.as_secs_f64()).ceil() as u64)
            .max()
            .unwrap_or(0)
    }

    /// The picture size from the last SPS seen, if it parses.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        let sps = nal::parse_sps(self.muxer.sps()?).ok()?;
        Some((sps.width, sps.height))
    }

    /// The RFC 6381 `CODECS` value, e.g. `avc1.42c01e,mp4a.40.2`, once the SPS is known.
    pub fn codecs(&self) -> Option<String> {
        let streams = self.muxer.streams();
        let mut parts = Vec::new();
        if streams.video || streams.audio.is_none() {
            let [p, c, l] = nal::profile_level_id(self.muxer.sps()?)?;
            parts.push(format!("avc1.{p:02x}{c:02x}{l:02x}"));
        }
        if let Some(a) = streams.audio {
            parts.push(a.codecs());
        }
        Some(parts.join(","))
    }

    fn open_segment(&mut self, start: Duration, now: Instant) {
        self.buf.clear();
        self.muxer.write_tables(&mut self.buf);
        self.open = Some(Open {
            sequence: self.next_sequence,
            start,
            end: start,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            independent: true,
            video_seen: false,
            opened_at: now,
            last_at: now,
        });
        self.next_sequence += 1;
    }

    /// Closes the open segment, ending at `next_start` (the cutting unit) or at its last unit's end.
    fn close_segment(&mut self, next_start: Option<Duration>, now: Instant) {
        let Some(open) = self.open.take() else {
            return;
        };
        let end = next_start.unwrap_or(open.end).max(open.start);
        let media = end - open.start;
        // A segment cut by the next unit lasts until that unit came; one
        // closed otherwise (end, restart, jump) until its own latest unit.
        let until = if next_start.is_some() {
            now
        } else {
            open.last_at
        };
        let wall = until.saturating_duration_since(open.opened_at);
        // Timestamps that moved less than a quarter as fast as the driver's
        // clock stood still (or stepped back): the wall-clock time is the
        // truth then. Either way no duration passes the longest segment
        // allowed twice over, so EXTINF and TARGETDURATION stay sane.
        let limit = self.config.max_segment_duration * 2;
        let duration = if media.saturating_mul(4) < wall || media > limit {
            wall.min(self.config.max_segment_duration)
        } else {
            media
        };
        let len = self.buf.len();
        let data = self.buf.split().freeze();
        // The next segment will be about as large; grow once, not by doubling.
        self.buf.reserve(len + len / 4);
        self.max_duration = self.max_duration.max(duration);
        let segment = Segment {
            sequence: open.sequence,
            duration,
            discontinuity: open.discontinuity,
            independent: open.independent,
            closed_at: now,
            data,
            name: segment_name(&self.config.session, open.sequence),
        };
        let ready = HlsEvent::SegmentReady {
            name: segment.name.clone(),
            duration,
            data: segment.data.clone(),
        };
        self.kept_bytes += segment.data.len();
        self.segments.push_back(segment);
        while self.segments.len() > self.config.window + self.config.retain_extra {
            self.drop_oldest();
        }
        while self.kept_bytes > self.config.max_kept_bytes
            && self.segments.len() > MIN_KEPT_SEGMENTS
        {
            self.drop_oldest();
            self.trimmed += 1;
        }
        self.event(ready);
        self.playlist_modified = Some(now);
        self.render();
        self.event(HlsEvent::PlaylistUpdated);
    }

    /// Lets the oldest closed segment go (its memory is freed once no reader
    /// holds a clone) and tells the mirror.
    fn drop_oldest(&mut self) {
        if let Some(old) = self.segments.pop_front() {
            self.kept_bytes -= old.data.len();
            self.dropped_discontinuities += u64::from(old.discontinuity);
            self.event(HlsEvent::SegmentRemoved { name: old.name });
        }
    }

    fn event(&mut self, e: HlsEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(e);
    }

    /// `EXT-X-TARGETDURATION`: whole seconds, at least every segment's duration and the target.
    pub fn target_duration_secs(&self) -> u64 {
        ceil_secs(self.max_duration.max(self.config.target_duration))
    }

    fn render(&mut self) {
        let skip = self.segments.len().saturating_sub(self.config.window);
        let listed = self.segments.iter().skip(skip);
        let media_sequence = self
            .segments
            .get(skip)
            .map_or(self.next_sequence, |s| s.sequence);
        let discontinuity_sequence = self.dropped_discontinuities
            + self
                .segments
                .iter()
                .take(skip)
                .filter(|s| s.discontinuity)
                .count() as u64;
        let mut p = String::with_capacity(128 + 48 * self.config.window);
        p.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(p, "#EXT-X-TARGETDURATION:{}", self.target_duration_secs());
        let _ = writeln!(p, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
        if discontinuity_sequence > 0 {
            let _ = writeln!(p, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
        }
        for s in listed {
            if s.discontinuity {
                p.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = writeln!(
                p,
                "#EXTINF:{:.3},\n{}{}",
                s.duration.as_secs_f64(),
                self.config.uri_prefix,
                s.name()
            );
        }
        if self.ended {
            p.push_str("#EXT-X-ENDLIST\n");
        }
        self.playlist = Bytes::from(p);
    }
}

/// Whole seconds, rounded up (with a millisecond of slack for timestamp rounding).
fn ceil_secs(d: Duration) -> u64 {
    let ms = d.as_millis().saturating_sub(1);
    u64::try_from(ms / 1000 + 1).unwrap_or(u64::MAX)
}

/// One entry of a master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// URI of the rendition's media playlist, relative to the master playlist.
    pub uri: String,
    /// Peak bitrate in bits per second.
    pub bandwidth_bps: u64,
    /// Picture size, if known.
    pub resolution: Option<(u32, u32)>,
    /// RFC 6381 codecs, e.g. `avc1.42c01e,mp4a.40.2`, if known.
    pub codecs: Option<String>,
    /// Frame rate, if known.
    pub frame_rate: Option<f64>,
}

/// Renders a master playlist listing each variant (source first, then renditions).
pub fn master_playlist(variants: &[Variant]) -> String {
    let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for v in variants {
        let _ = write!(p, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth_bps.max(1));
        if let Some((w, h)) = v.resolution {
            let _ = write!(p, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(p, ",FRAME-RATE={fps:.3}");
        }
        if let Some(c) = &v.codecs {
            let _ = write!(p, ",CODECS=\"{c}\"");
        }
        let _ = writeln!(p, "\n{}", v.uri);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{AudioSpecificConfig, TS_PACKET_SIZE};
    use std::sync::OnceLock;

    /// One fixed instant: most tests play the driver's clock standing still,
    /// so only timestamps decide.
    fn t0() -> Instant {
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn video(ms: u64, keyframe: bool) -> EncodedUnit {
        let mut d = Vec::new();
        if keyframe {
            d.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xab]);
            d.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        }
        d.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88, 0x84]);
        d.extend_from_slice(&[0x5a; 300]);
        EncodedUnit {
            codec: Codec::H264,
            keyframe,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: Instant::now(),
            data: Bytes::from(d),
        }
    }

    fn audio(ms: u64) -> EncodedUnit {
        EncodedUnit {
            codec: Codec::Aac,
            keyframe: true,
            pts: Duration::from_millis(ms),
            dts: None,
            capture: Instant::now(),
            data: Bytes::from(vec![0x21; 200]),
        }
    }

    fn streams() -> TsStreams {
        TsStreams {
            video: true,
            audio: Some(AudioSpecificConfig::parse(&[0x11, 0x90]).expect("asc")),
        }
    }

    /// Pushes `secs` of 30 fps video (keyframe every `keyint` frames) with 48 kHz AAC, from `from_ms`.
    fn feed(h: &mut HlsSegmenter, from_ms: u64, frames: u64, keyint: u64) {
        let mut next_audio = 0u64; // in samples
        for i in 0..frames {
            let t = i * 1000 / 30;
            while next_audio * 1000 / 48_000 <= t {
                h.push(&audio(from_ms + next_audio * 1000 / 48_000), t0())
                    .expect("audio");
                next_audio += 1024;
            }
            h.push(&video(from_ms + t, i % keyint == 0), t0())
                .expect("video");
        }
    }

    /// The PTS (90 kHz, offset included) of the first video PES of a segment.
    fn first_video_pts(s: &Segment) -> u64 {
        let p = &s.data[2 * TS_PACKET_SIZE..3 * TS_PACKET_SIZE];
        let pes = &p[5 + p[4] as usize..];
        assert_eq!(&pes[..4], &[0, 0, 1, 0xe0]);
        let b = &pes[9..14];
        (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1)
    }

    fn text(h: &HlsSegmenter) -> String {
        String::from_utf8(h.playlist().to_vec()).expect("utf-8")
    }

    fn durations(h: &HlsSegmenter) -> Vec<u128> {
        h.segments().map(|s| s.duration.as_millis()).collect()
    }

    /// A publisher whose timestamps stand still: nothing reaches the target
    /// or the maximum duration, yet segments are cut by size, so neither the
    /// open segment nor the kept ones grow without bound.
    #[test]
    fn frozen_timestamps_are_cut_by_size() {
        // Room for the whole window: this test is about where segments are
        // cut; the byte budget has its own test below.
        let config = HlsConfig {
            max_kept_bytes: usize::MAX,
            ..HlsConfig::default()
        };
        let mut h = HlsSegmenter::new(config, streams()).expect("config");
        h.push(&video(5000, true), t0()).expect("keyframe");
        let mut big = video(5000, false);
        let mut d = big.data.to_vec();
        d.resize(1 << 20, 0x5a);
        big.data = Bytes::from(d);
        // 200 MiB at one instant of timestamps, a MiB every 10 ms: 6 segments' worth and more.
        for i in 1..=200 {
            h.push(&big, t0() + Duration::from_millis(10 * i))
                .expect("video");
        }
        let sizes: Vec<usize> = h.segments().map(|s| s.data.len()).collect();
        assert!(sizes.len() >= 5, "{sizes:?}");
        let overhead = (1 << 20) + (1 << 20) / 8; // the unit that crossed the line, in TS packets
        for &len in &sizes {
            assert!(
                len >= MAX_SEGMENT_BYTES && len <= MAX_SEGMENT_BYTES + overhead,
                "{len}"
            );
        }
        let kept: usize = sizes.iter().sum();
        let limit = (HlsConfig::default().window + HlsConfig::default().retain_extra)
            * (MAX_SEGMENT_BYTES + overhead);
        assert!(kept <= limit, "{kept} > {limit}");
        // Each segment lasted about 32 pushes of the driver's clock, and says
        // so: not the 0 s its timestamps say.
        for d in durations(&h) {
            assert!((310..=340).contains(&d), "{d} ms: {}", text(&h));
        }
        assert!(!text(&h).contains("#EXTINF:0.000,"), "{}", text(&h));
        assert!(text(&h).contains("#EXT-X-TARGETDURATION:2\n"));
    }

    /// Segments of 32 MiB from frozen timestamps (or any bitrate past what
    /// the budget holds): the oldest are let go, from the playlist too, so
    /// the closed segments never hold more than `max_kept_bytes` (the
    /// default 64 MiB: two of them), and the playlist stays a valid sliding
    /// window whose removals the mirror is told of.
    #[test]
    fn closed_segments_stay_within_the_byte_budget() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        h.push(&video(5000, true), t0()).expect("keyframe");
        let mut big = video(5000, false);
        let mut d = big.data.to_vec();
        d.resize(1 << 20, 0x5a);
        big.data = Bytes::from(d);
        let (mut ready, mut removed) = (0, 0);
        for i in 1..=300 {
            h.push(&big, t0() + Duration::from_millis(10 * i))
                .expect("video");
            let kept: usize = h.segments().map(|s| s.data.len()).sum();
            let n = h.segments().count();
            // Within the budget, or down to the floor (two segments of a
            // little over 32 MiB each: the unit that crossed the line).
            assert!(
                kept <= 64 << 20 || (n == MIN_KEPT_SEGMENTS && kept <= 2 * (34 << 20)),
                "{kept} bytes in {n} segments kept after {i} MiB"
            );
            while let Some(e) = h.poll_event() {
                match e {
                    HlsEvent::SegmentReady { .. } => ready += 1,
                    HlsEvent::SegmentRemoved { .. } => removed += 1,
                    HlsEvent::PlaylistUpdated => {}
                }
            }
        }
        // 300 MiB make 9 segments; the budget keeps 2 (the rest told removed).
        assert_eq!(h.segments().count(), MIN_KEPT_SEGMENTS);
        assert!(ready >= 9, "{ready} segments cut");
        assert_eq!(ready - removed, MIN_KEPT_SEGMENTS);
        assert!(h.trimmed_segments() >= 1);
        let t = text(&h);
        assert_eq!(t.matches("#EXTINF").count(), MIN_KEPT_SEGMENTS, "{t}");
        let first = h.segments().next().map(|s| s.sequence).expect("one");
        assert!(
            t.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")),
            "{t}"
        );
        // A budget of 0 is refused.
        let zero = HlsConfig {
            max_kept_bytes: 0,
            ..HlsConfig::default()
        };
        assert!(HlsSegmenter::new(zero, streams()).is_err());
    }

    /// A publisher's timestamps leap forward 2^31 ms, or back 100 s: the
    /// segment before ends there, the next follows `EXT-X-DISCONTINUITY` and
    /// continues the output timeline, and no EXTINF or TARGETDURATION shows
    /// the leap.
    #[test]
    fn timestamp_jumps_are_discontinuities_that_poison_nothing() {
        for (from, to) in [(0, 1u64 << 31), (100_000, 0)] {
            let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
            // 3 s (keyframes every second): segment 0 closed, 1 open from 2 s.
            feed(&mut h, from, 90, 30);
            // 5 s more from the new origin.
            feed(&mut h, to, 150, 30);
            let p = text(&h);
            assert_eq!(h.timestamp_jumps(), 1, "{from} -> {to}: {p}");
            assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
            assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
            // 0: 2 s; 1: the second before the jump; 2, 3: 2 s each after it.
            assert_eq!(durations(&h), vec![2000, 999, 2000, 2000], "{p}");
            assert!(
                p.contains("1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n2.ts\n"),
                "{p}"
            );
            // The output timeline goes on from where segment 1 ended (2.999 s
            // after `from`: its last frame at 2.966 s plus one frame):
            // segment 3 starts 2 s later.
            let segs: Vec<&Segment> = h.segments().collect();
            assert!(segs[2].discontinuity && segs[2].independent);
            assert_eq!(
                first_video_pts(segs[3]),
                crate::ts::TS_OFFSET_90K + (from + 4999) * 90,
                "{from} -> {to}"
            );
        }
    }

    /// Whether a segment's first video packet carries the random-access indicator.
    fn random_access_first(s: &Segment) -> bool {
        let p = &s.data[2 * TS_PACKET_SIZE..];
        p[3] & 0x20 != 0 && p[5] & 0x40 != 0
    }

    /// No keyframe after the first: the driver's clock cuts every 6 s (three
    /// target durations), before the 10 s maximum by timestamps, and with
    /// timestamps that stand still too. The next segment starts at once with
    /// the unit that did not fit, marked as not independent.
    #[test]
    fn no_keyframe_for_three_targets_of_wall_clock_time_cuts() {
        for frozen in [false, true] {
            let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
            // 20 s of 30 fps video, pushed as it happens.
            let frames = 20 * 30;
            for i in 0..frames {
                let ms = i * 1000 / 30;
                let pts = if frozen { 5000 } else { 5000 + ms };
                let now = t0() + Duration::from_millis(ms);
                h.push(&video(pts, i == 0), now).expect("video");
            }
            let segs: Vec<&Segment> = h.segments().collect();
            assert_eq!(segs.len(), 3, "frozen {frozen}: {}", text(&h));
            for (n, s) in segs.iter().enumerate() {
                let closed = s.closed_at.duration_since(t0()).as_millis();
                // Cut at the first frame at or past 6 s of wall-clock time.
                assert!(
                    (6000 * (n as u128 + 1)..6000 * (n as u128 + 1) + 34).contains(&closed),
                    "frozen {frozen}: segment {n} closed at {closed} ms"
                );
                assert_eq!(s.independent, n == 0, "frozen {frozen}: segment {n}");
                assert_eq!(random_access_first(s), n == 0, "frozen {frozen}");
                assert!(!s.discontinuity);
            }
            assert_eq!(h.playlist_modified(), Some(segs[2].closed_at));
            // Frozen timestamps: the duration is the driver's clock's.
            assert_eq!(durations(&h), vec![6000, 6000, 6000], "frozen {frozen}");
            assert!(text(&h).contains("#EXT-X-TARGETDURATION:6\n"));
            assert!(!text(&h).contains("DISCONTINUITY"));
        }
    }

    #[test]
    fn cuts_at_the_first_keyframe_after_the_target() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        // Keyframes every 0.5 s: cuts at 2.0 s multiples.
        feed(&mut h, 0, 150, 15);
        assert_eq!(durations(&h), vec![2000, 2000]);
        // Keyframes every 0.8 s: the first keyframe at or past 2 s (minus 10 %) is 2.4 s.
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        feed(&mut h, 0, 300, 24);
        assert_eq!(durations(&h), vec![2400, 2400, 2400, 2400]);
        // A keyframe a frame early (1.967 s) still cuts.
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        feed(&mut h, 0, 120, 59);
        assert_eq!(durations(&h)[0], 1966);
        let p = text(&h);
        assert!(p.contains("#EXTINF:1.966,\n0.ts\n"), "{p}");
    }

    #[test]
    fn every_segment_starts_with_tables_and_a_keyframe() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        // Audio and P-frames before the first keyframe are dropped.
        h.push(&audio(0), t0()).expect("audio");
        h.push(&video(0, false), t0()).expect("video");
        assert_eq!(h.dropped(), 2);
        feed(&mut h, 33, 200, 30);
        assert!(h.segments().count() >= 3);
        for s in h.segments() {
            assert_eq!(s.data.len() % TS_PACKET_SIZE, 0);
            let pids: Vec<u16> = s
                .data
                .chunks(TS_PACKET_SIZE)
                .take(3)
                .map(|p| u16::from_be_bytes([p[1] & 0x1f, p[2]]))
                .collect();
            assert_eq!(pids, vec![0, crate::ts::PMT_PID, crate::ts::VIDEO_PID]);
            // The first video packet has the random access indicator.
            let p = &s.data[2 * TS_PACKET_SIZE..];
            assert!(p[3] & 0x20 != 0 && p[5] & 0x40 != 0);
        }
    }

    #[test]
    fn window_slides_and_old_segments_are_freed() {
        let cfg = HlsConfig {
            window: 3,
            retain_extra: 1,
            ..HlsConfig::default()
        };
        let mut h = HlsSegmenter::new(cfg, streams()).expect("config");
        feed(&mut h, 0, 30 * 2 * 7 + 1, 30); // 7 closed segments
        assert_eq!(
            h.segments().map(|s| s.sequence).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        let p = text(&h);
        assert!(
            p.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n"
            ),
            "{p}"
        );
        assert_eq!(p.matches("#EXTINF:2.000,").count(), 3);
        assert!(!p.contains("\n3.ts") && p.contains("\n4.ts\n") && p.ends_with("6.ts\n"));
        assert!(!p.contains("ENDLIST"));
        // Lookup: retained, listed, gone, malformed.
        assert!(h.segment("3.ts").is_some());
        assert_eq!(
            h.segment("6.ts").map(|s| s.data.len()),
            h.segments().last().map(|s| s.data.len())
        );
        assert!(h.segment("2.ts").is_none());
        assert!(
            h.segment("7.ts").is_none(),
            "the open segment is not served"
        );
        for bad in [
            "../4.ts",
            "4",
            "+4.ts",
            ".ts",
            "4.ts/",
            "99999999999999999999999.ts",
        ] {
            assert!(h.segment(bad).is_none(), "{bad}");
        }
        // Events: ready for 0..=6, removed for 0..=2, playlist updates.
        let mut ready = Vec::new();
        let mut removed = Vec::new();
        while let Some(e) = h.poll_event() {
            match e {
                HlsEvent::SegmentReady { name, .. } => ready.push(name),
                HlsEvent::SegmentRemoved { name } => removed.push(name),
                HlsEvent::PlaylistUpdated => {}
            }
        }
        let names = |r: std::ops::Range<u64>| r.map(|n| segment_name("", n)).collect::<Vec<_>>();
        assert_eq!(ready, names(0..7));
        assert_eq!(removed, names(0..3));
    }

    /// With a session, segment names carry it: another session's `0.ts`
    /// (a publisher back after its stream was dropped, or a restarted
    /// server) is never this one's.
    #[test]
    fn segments_are_named_by_their_session() {
        let cfg = HlsConfig {
            uri_prefix: "source/".into(),
            session: "5eed0042".into(),
            ..HlsConfig::default()
        };
        let mut h = HlsSegmenter::new(cfg, streams()).expect("config");
        feed(&mut h, 0, 30 * 4 + 1, 30);
        let p = text(&h);
        assert!(
            p.contains("\nsource/5eed0042-0.ts\n") && p.contains("\nsource/5eed0042-1.ts\n"),
            "{p}"
        );
        assert_eq!(
            h.segments()
                .map(|s| s.name().to_string())
                .collect::<Vec<_>>(),
            ["5eed0042-0.ts", "5eed0042-1.ts"]
        );
        assert!(h.segment("5eed0042-1.ts").is_some());
        for other in [
            "0.ts",
            "1.ts",
            "5eed00421.ts",
            "beef-1.ts",
            "5eed0042-.ts",
            "5eed0042--1.ts",
        ] {
            assert!(h.segment(other).is_none(), "{other}");
        }
        let mut ready = Vec::new();
        while let Some(e) = h.poll_event() {
            if let HlsEvent::SegmentReady { name, .. } = e {
                ready.push(name);
            }
        }
        assert_eq!(ready, ["5eed0042-0.ts", "5eed0042-1.ts"]);
        for bad in ["Caps", "a-b", "a/b", &"a".repeat(MAX_SESSION_LEN + 1)] {
            let cfg = HlsConfig {
                session: bad.to_string(),
                ..HlsConfig::default()
            };
            assert!(HlsSegmenter::new(cfg, streams()).is_err(), "{bad}");
        }
    }

    #[test]
    fn end_adds_endlist_with_the_last_segment() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        feed(&mut h, 0, 90, 30); // 0..3 s: one 2 s segment, one open
        h.end(t0());
        assert!(h.is_ended());
        // The last segment lasts to the end of its last frame: 2.0 s → 3.0 s
        // (2.999 s: the feed truncates frame times to whole milliseconds).
        assert_eq!(durations(&h), vec![2000, 999]);
        let p = text(&h);
        assert!(p.ends_with("#EXTINF:0.999,\n1.ts\n#EXT-X-ENDLIST\n"), "{p}");
        h.end(t0());
        assert_eq!(h.segments().count(), 2);
    }

    #[test]
    fn restart_marks_a_discontinuity_that_slides_out() {
        let cfg = HlsConfig {
            window: 2,
            retain_extra: 0,
            ..HlsConfig::default()
        };
        let mut h = HlsSegmenter::new(cfg, streams()).expect("config");
        feed(&mut h, 0, 61, 30); // one closed segment (0), one open from 2 s
        h.end(t0());
        assert!(text(&h).contains("#EXT-X-ENDLIST"));
        // The publisher comes back with timestamps from zero.
        h.restart(streams(), t0());
        assert!(!text(&h).contains("#EXT-X-ENDLIST"));
        feed(&mut h, 0, 61, 30);
        let p = text(&h);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{p}");
        assert!(
            p.contains("1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n2.ts\n"),
            "{p}"
        );
        assert!(!p.contains("DISCONTINUITY-SEQUENCE"), "{p}");
        // The timeline continues where segment 1 (one frame at 2.000 s) ended:
        // 2.034 s, as the feed's frame times are truncated to whole milliseconds
        // and its last frame interval was 1966 → 2000 ms.
        let segs: Vec<&Segment> = h.segments().collect();
        assert_eq!(first_video_pts(segs[0]), crate::ts::TS_OFFSET_90K + 180_000);
        assert_eq!(first_video_pts(segs[1]), crate::ts::TS_OFFSET_90K + 183_060);
        // Two more segments (3: 2.0 → 4.033 s, 4: → 6.033 s) push segment 2 out of the window.
        feed(&mut h, 2033, 150, 30);
        let p = text(&h);
        assert!(
            p.contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{p}"
        );
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
        // Pushing after end() is an implicit restart.
        h.end(t0());
        h.push(&video(0, true), t0()).expect("video");
        assert!(!h.is_ended());
        h.end(t0());
        assert!(text(&h).contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn target_duration_is_the_ceiling_of_the_longest_segment() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        // Keyframes every 2.5 s.
        feed(&mut h, 0, 30 * 6, 75);
        assert_eq!(durations(&h), vec![2500, 2500]);
        assert!(text(&h).contains("#EXT-X-TARGETDURATION:3\n"));
        assert_eq!(h.target_duration_secs(), 3);
        assert_eq!(ceil_secs(Duration::from_millis(2000)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn no_keyframe_forces_a_cut_at_the_maximum() {
        let cfg = HlsConfig {
            max_segment_duration: Duration::from_secs(4),
            ..HlsConfig::default()
        };
        let mut h = HlsSegmenter::new(cfg, streams()).expect("config");
        feed(&mut h, 0, 30 * 9, 1000);
        assert_eq!(durations(&h), vec![4000, 4000]);
    }

    #[test]
    fn audio_only_cuts_on_audio() {
        let s = TsStreams {
            video: false,
            audio: streams().audio,
        };
        let mut h = HlsSegmenter::new(HlsConfig::default(), s).expect("config");
        for i in 0..200u64 {
            h.push(&audio(i * 1024 * 1000 / 48_000), t0())
                .expect("audio");
        }
        // 200 frames × 21.33 ms = 4.27 s: first cut at the frame ≥ 1.8 s.
        let d = durations(&h);
        assert_eq!(d.len(), 2);
        assert!(d[0] >= 1800 && d[0] <= 2000, "{d:?}");
        assert!(h.push(&video(0, true), t0()).is_err());
    }

    #[test]
    fn stream_info_and_master_playlist() {
        let mut h = HlsSegmenter::new(HlsConfig::default(), streams()).expect("config");
        assert_eq!(h.codecs(), None);
        feed(&mut h, 0, 130, 30);
        assert_eq!(h.codecs().as_deref(), Some("avc1.42c01e,mp4a.40.2"));
        assert!(h.peak_bandwidth_bps() > 0);
        let m = master_playlist(&[
            Variant {
                uri: "hello/source.m3u8".into(),
                bandwidth_bps: 10_000_000,
                resolution: Some((640, 480)),
                codecs: h.codecs(),
                frame_rate: None,
            },
            Variant {
                uri: "hello/P144p30fps16x9.m3u8".into(),
                bandwidth_bps: 400_000,
                resolution: Some((192, 144)),
                codecs: Some("avc1.42c01e,mp4a.40.2".into()),
                frame_rate: Some(30.0),
            },
        ]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n\
             #EXT-X-STREAM-INF:BANDWIDTH=10000000,RESOLUTION=640x480,CODECS=\"avc1.42c01e,mp4a.40.2\"\n\
             hello/source.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=192x144,FRAME-RATE=30.000,CODECS=\"avc1.42c01e,mp4a.40.2\"\n\
             hello/P144p30fps16x9.m3u8\n"
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        for cfg in [
            HlsConfig {
                window: 0,
                ..HlsConfig::default()
            },
            HlsConfig {
                target_duration: Duration::ZERO,
                ..HlsConfig::default()
            },
            HlsConfig {
                max_segment_duration: Duration::from_secs(1),
                ..HlsConfig::default()
            },
        ] {
            assert!(matches!(
                HlsSegmenter::new(cfg, streams()),
                Err(HlsError::Config(_))
            ));
        }
    }
}
