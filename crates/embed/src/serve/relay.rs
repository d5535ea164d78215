//! Relays: each published stream (or one of its renditions) passed on to
//! RTMP/RTMPS destinations (Twitch, YouTube, another server) as it
//! arrives, without decoding or re-encoding the source.
//!
//! ```text
//! publisher ─RTMP─▶ Publisher ──tags as received──┬─queue─▶ relay worker ─RTMP─▶ platform 1
//!                      │                          └─queue─▶ relay worker ─RTMP─▶ platform 2
//!                      └─▶ rendition stage ─FLV mux─┴─queue─▶ relay worker ─RTMP─▶ platform 3
//! ```
//! Each relay has one worker thread for the server's whole life and its own
//! drop-oldest queue bounded in bytes ([`RELAY_QUEUE_BYTES`] at most), so a
//! slow or dead platform only ever loses its own tags: the ingest, the HLS
//! stages and the other relays never wait for it. The worker connects when
//! its stream is published (push's client, reconnect and backoff:
//! `crate::rtmp_out`), starts every connection with the stream's current
//! sequence headers and a keyframe (the last one it holds, so a reconnect
//! does not wait a whole GOP), and ends the publish cleanly
//! (`FCUnpublish`, `deleteStream`) when the publisher leaves; a returning
//! publisher starts it again. Logs and stats show URLs with the stream key
//! masked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pstream_codec::Rendition;
use pstream_core::{link_bytes, EncodedUnit, LinkReceiver, LinkSender, Recv, Weigh};
use pstream_mux::{AudioInfo, AudioSpecificConfig, FlvMuxer, FlvTag, StreamInfo, VideoInfo};
use pstream_transport::rtmp::{redact, MediaKind, MediaMessage, RtmpConnection, RtmpError};
use pstream_transport::rtmp::{RtmpUrl, UrlError};

use crate::error::one_line;
use crate::rtmp_out::{run_rtmp, DestCounters, DestinationState, Feed};
use crate::run::{Stages, Stop};
use crate::{Error, Result};

/// Most bytes one relay may hold queued (the default, and the most
/// [`crate::ServeConfig::relay_queue_bytes`] may ask for).
pub const RELAY_QUEUE_BYTES: usize = 64 << 20;
/// Tags one relay may hold queued: over three minutes of 30 fps video
/// plus AAC, so that for real streams the byte bound is the one that acts.
const RELAY_QUEUE_TAGS: usize = 16_384;
/// What a queued tag costs besides its body (the tag, the channel slot).
const TAG_OVERHEAD: usize = 64;
/// Longest wait between a relay's reconnect attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How often an idle worker looks at the server's stop flag.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// RTMP message type of video, audio and AMF0 data.
const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

/// One relay destination: a stream (or one of its renditions) and the
/// RTMP/RTMPS URL it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The stream's public name (the name in viewers' URLs, not its key).
    pub stream: String,
    /// A rendition to relay instead of the source.
    pub rendition: Option<Rendition>,
    /// Where it goes.
    pub url: RtmpUrl,
}

/// A relay spec that cannot be used: what is wrong, with any stream key masked.
fn bad_spec(spec: &str, why: impl std::fmt::Display) -> Error {
    // What follows '=' is meant to be a URL holding a key: shown only
    // redacted, and not at all when it is not even URL-shaped.
    let shown = match spec.split_once('=') {
        Some((what, url)) if url.contains("://") => format!("{what}={}", redact(url)),
        Some((what, _)) => format!("{what}=****"),
        None => redact(spec),
    };
    Error::Config(format!("relay {shown}: {why}"))
}

/// Parses an RTMP/RTMPS URL, naming the spec (key masked) when it is bad.
fn parse_url(spec: &str, url: &str) -> Result<RtmpUrl> {
    RtmpUrl::parse(url).map_err(|e: UrlError| bad_spec(spec, e.why))
}

/// Parses a rendition name, naming the spec when it is unknown.
fn parse_rendition(spec: &str, name: &str) -> Result<Rendition> {
    name.parse::<Rendition>().map_err(|e| bad_spec(spec, e))
}

impl RelayTarget {
    /// The source of `stream` to `url`.
    pub fn new(stream: impl Into<String>, url: RtmpUrl) -> Self {
        Self {
            stream: stream.into(),
            rendition: None,
            url,
        }
    }

    /// Parses `NAME=URL` (the source of stream NAME) or
    /// `NAME/RENDITION=URL` (one of its renditions), as `--relay` takes it.
    pub fn parse(spec: &str) -> Result<Self> {
        let (what, url) = spec.split_once('=').ok_or_else(|| {
            bad_spec(
                spec,
                "must be NAME=URL or NAME/RENDITION=URL (rtmp:// or rtmps://)",
            )
        })?;
        let (stream, rendition) = match what.split_once('/') {
            Some((s, r)) => (s, Some(parse_rendition(spec, r)?)),
            None => (what, None),
        };
        if stream.is_empty() {
            return Err(bad_spec(spec, "names no stream before '='"));
        }
        Ok(Self {
            stream: stream.to_string(),
            rendition,
            url: parse_url(spec, url)?,
        })
    }

    /// Parses one relay word of a keys-file line for stream `stream`:
    /// `URL` (the source) or `RENDITION=URL`.
    pub fn parse_word(stream: &str, word: &str) -> Result<Self> {
        let lower = word.to_ascii_lowercase();
        let (rendition, url) = if lower.starts_with("rtmp://") || lower.starts_with("rtmps://") {
            (None, word)
        } else {
            match word.split_once('=') {
                Some((r, url)) => (Some(parse_rendition(word, r)?), url),
                None => {
                    return Err(bad_spec(
                        word,
                        "a word after KEY NAME must be a relay URL or RENDITION=URL",
                    ))
                }
            }
        };
        Ok(Self {
            stream: stream.to_string(),
            rendition,
            url: parse_url(word, url)?,
        })
    }

    /// How logs, stats and metrics name it: `name[/rendition]>url`, key masked.
    pub fn label(&self) -> String {
        match self.rendition {
            Some(r) => format!("{}/{}>{}", self.stream, r.name(), self.url),
            None => format!("{}>{}", self.stream, self.url),
        }
    }
}

/// One FLV tag on its way to a platform: type, timestamp and body as the
/// publisher (or the rendition's muxer) made them.
#[derive(Debug, Clone)]
pub(crate) struct RelayTag {
    type_id: u8,
    timestamp_ms: u32,
    /// A sequence header or `onMetaData`: kept for every later connection.
    header: bool,
    /// A video keyframe: where a connection may start.
    keyframe: bool,
    data: Bytes,
}

impl Weigh for RelayTag {
    fn weight(&self) -> usize {
        self.data.len() + TAG_OVERHEAD
    }
}

impl RelayTag {
    /// A publisher's message as it arrived; `None` for script data other
    /// than `onMetaData` (cue points and the like, which platforms ignore).
    pub(crate) fn from_message(msg: &MediaMessage) -> Option<Self> {
        let d = &msg.data;
        let (type_id, header, keyframe) = match msg.kind {
            // AVC (codec 7) packet type 0 is the sequence header; frame type 1 a keyframe.
            MediaKind::Video => {
                let first = d.first().copied().unwrap_or(0);
                let avc_header = first & 0x0f == 7 && d.get(1) == Some(&0);
                (VIDEO, avc_header, first >> 4 == 1 && !avc_header)
            }
            // AAC (format 10) packet type 0 is the AudioSpecificConfig.
            MediaKind::Audio => {
                let first = d.first().copied().unwrap_or(0);
                (AUDIO, first >> 4 == 10 && d.get(1) == Some(&0), false)
            }
            MediaKind::Data => {
                if !d.starts_with(b"\x02\x00\x0aonMetaData") {
                    return None;
                }
                (DATA, true, false)
            }
        };
        Some(Self {
            type_id,
            timestamp_ms: msg.timestamp_ms,
            header,
            keyframe,
            // A copy of exactly its size: the message was reassembled in a
            // buffer grown by doubling, whose spare capacity a queue that
            // weighs `len()` would not see (measured: a 64 MiB queue of
            // shared bodies held 105 MB).
            data: Bytes::copy_from_slice(d),
        })
    }

    /// A tag of pstream's own FLV muxer (a rendition's output).
    fn from_flv(tag: &FlvTag) -> Self {
        Self {
            type_id: tag.kind.type_id(),
            timestamp_ms: tag.timestamp_ms,
            header: tag.is_header,
            keyframe: tag.keyframe && !tag.is_header,
            data: tag.data.clone(),
        }
    }

    fn is_video_keyframe(&self) -> bool {
        self.type_id == VIDEO && self.keyframe && !self.header
    }
}

/// The latest `onMetaData` and sequence headers of a stream, for every
/// connection a relay makes (they came once, at the start of the publish).
#[derive(Debug, Default)]
pub(crate) struct Headers {
    meta: Option<RelayTag>,
    video: Option<RelayTag>,
    audio: Option<RelayTag>,
}

/// A lock that a panicking holder cannot poison for the others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One publish session of a relay's stream, handed to its worker.
struct Session {
    tags: LinkReceiver<RelayTag>,
    headers: Arc<Mutex<Headers>>,
}

/// One configured relay: its destination, counters and worker's inbox.
#[derive(Debug)]
pub(crate) struct Relay {
    target: RelayTarget,
    label: String,
    counters: Arc<DestCounters>,
    /// Tags dropped by the queues of finished sessions.
    past_queue_drops: AtomicU64,
    /// The drop counter of the current session's queue.
    queue_drops: Mutex<Option<Arc<AtomicU64>>>,
    sessions: Sender<Session>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// A relay's figures for the stats line and `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct RelaySnapshot {
    /// `name[/rendition]>url`, key masked.
    pub(crate) label: String,
    pub(crate) stream: String,
    pub(crate) rendition: String,
    /// The URL, key masked.
    pub(crate) url: String,
    pub(crate) state: DestinationState,
    pub(crate) bytes: u64,
    pub(crate) dropped: u64,
    pub(crate) reconnects: u64,
    pub(crate) errors: u64,
}

impl Relay {
    /// Tags dropped so far: by its queues (full) and by the worker (while
    /// disconnected, or waiting for a keyframe).
    fn dropped(&self) -> u64 {
        let current = lock(&self.queue_drops)
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Relaxed));
        self.past_queue_drops.load(Ordering::Relaxed)
            + current
            + self.counters.dropped.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> RelaySnapshot {
        let c = &self.counters;
        RelaySnapshot {
            label: self.label.clone(),
            stream: self.target.stream.clone(),
            rendition: self
                .target
                .rendition
                .map_or(super::SOURCE.to_string(), |r| r.name().to_string()),
            url: self.target.url.to_string(),
            state: c.state(),
            bytes: c.bytes.load(Ordering::Relaxed),
            dropped: self.dropped(),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Writes the state words (`retrying in N s`) for the stats line.
    pub(crate) fn state_words(&self, line: &mut crate::stats::StatsLine, now_ms: u64) {
        self.counters.state_words(line, now_ms);
    }
}

/// Every relay of a server, and their workers.
#[derive(Debug)]
pub(crate) struct Relays {
    list: Vec<Arc<Relay>>,
    queue_bytes: usize,
    workers: Mutex<Stages>,
    started: Instant,
}

impl Relays {
    /// Starts one idle worker per target; each queue holds at most `queue_bytes`.
    pub(crate) fn start(targets: &[RelayTarget], queue_bytes: usize) -> Result<Self> {
        let mut workers = Stages::new(Stop::new());
        let mut list = Vec::new();
        let started = Instant::now();
        for (i, target) in targets.iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let relay = Arc::new(Relay {
                target: target.clone(),
                label: target.label(),
                counters: Arc::new(DestCounters::default()),
                past_queue_drops: AtomicU64::new(0),
                queue_drops: Mutex::new(None),
                sessions: tx,
            });
            relay.counters.set(DestinationState::Idle);
            let r = relay.clone();
            workers.spawn(&format!("relay-{}", i + 1), move |stop| {
                worker(&r, &rx, queue_bytes, started, stop);
                Ok(())
            })?;
            list.push(relay);
        }
        if !list.is_empty() {
            tracing::info!(
                "relays: {}",
                list.iter()
                    .map(|r| r.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Self {
            list,
            queue_bytes,
            workers: Mutex::new(workers),
            started,
        })
    }

    /// No relay at all.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self {
            list: Vec::new(),
            queue_bytes: RELAY_QUEUE_BYTES,
            workers: Mutex::new(Stages::new(Stop::new())),
            started: Instant::now(),
        }
    }

    /// Starts a publish session on every relay of `stream`'s `rendition`
    /// (`None`: the source); the session ends when the returned sender is dropped.
    pub(crate) fn open(&self, stream: &str, rendition: Option<Rendition>) -> Option<RelayOut> {
        let mut outs = Vec::new();
        let headers = Arc::new(Mutex::new(Headers::default()));
        for r in self
            .list
            .iter()
            .filter(|r| r.target.stream == stream && r.target.rendition == rendition)
        {
            // The queue gets three quarters of the budget and the GOP a
            // disconnected worker holds the rest, so the two stay within it.
            let (tx, rx) = link_bytes::<RelayTag>(RELAY_QUEUE_TAGS, self.queue_bytes / 4 * 3);
            let drops = tx.drop_counter();
            let previous = lock(&r.queue_drops).replace(drops);
            if let Some(p) = previous {
                r.past_queue_drops
                    .fetch_add(p.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            let session = Session {
                tags: rx,
                headers: headers.clone(),
            };
            if r.sessions.send(session).is_ok() {
                outs.push(tx);
            }
        }
        (!outs.is_empty()).then_some(RelayOut { outs, headers })
    }

    /// Each relay's figures now.
    pub(crate) fn snapshot(&self) -> Vec<RelaySnapshot> {
        self.list.iter().map(|r| r.snapshot()).collect()
    }

    /// The relays themselves, in the order given.
    pub(crate) fn list(&self) -> &[Arc<Relay>] {
        &self.list
    }

    /// Milliseconds since the relays started (the clock of their retry times).
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Stops every worker (a connection still open is ended cleanly) and joins them.
    pub(crate) fn stop(&self) {
        let mut w = lock(&self.workers);
        w.stop();
        let _ = w.wait();
    }
}

/// The producer's end of one publish session's relays: every tag goes to
/// each relay's queue, and headers are also kept for later connections.
#[derive(Debug)]
pub(crate) struct RelayOut {
    outs: Vec<LinkSender<RelayTag>>,
    headers: Arc<Mutex<Headers>>,
}

impl RelayOut {
    /// Passes `tag` on to every relay of the session, never waiting.
    pub(crate) fn send(&self, tag: RelayTag) {
        if tag.header {
            let mut h = lock(&self.headers);
            let slot = match tag.type_id {
                VIDEO => &mut h.video,
                AUDIO => &mut h.audio,
                _ => &mut h.meta,
            };
            *slot = Some(tag.clone());
        }
        for tx in &self.outs {
            // A worker that has gone only loses its own feed.
            let _ = tx.send(tag.clone());
        }
    }
}

/// A rendition's relays: its encoded output muxed to FLV tags (once, for
/// all of them) and passed on.
#[derive(Debug)]
pub(crate) struct RenditionRelay {
    out: RelayOut,
    rendition: Rendition,
    audio: Option<AudioSpecificConfig>,
    has_video: bool,
    muxer: Option<FlvMuxer>,
    /// Units are timed by their media time from here: the muxer stamps
    /// tags by capture time, and a relay wants the publisher's own clock.
    epoch: Instant,
    tags: Vec<FlvTag>,
}

impl RenditionRelay {
    /// Relays of `rendition` fed by `out`; the stream has video or not, and this AAC track.
    pub(crate) fn new(
        out: RelayOut,
        rendition: Rendition,
        has_video: bool,
        audio: Option<AudioSpecificConfig>,
    ) -> Self {
        Self {
            out,
            rendition,
            audio,
            has_video,
            muxer: None,
            epoch: Instant::now(),
            tags: Vec::new(),
        }
    }

    /// Muxes one unit of the rendition's output (`size`: its picture size,
    /// once known) and passes the tags on.
    pub(crate) fn push(&mut self, unit: &EncodedUnit, size: Option<(u32, u32)>) {
        if self.muxer.is_none() {
            let video = if self.has_video {
                let Some((width, height)) = size else { return };
                Some(VideoInfo {
                    width,
                    height,
                    fps: f64::from(self.rendition.fps()),
                    bitrate_kbps: f64::from(self.rendition.bitrate_bps()) / 1000.0,
                })
            } else {
                None
            };
            let audio = self.audio.map(|a| AudioInfo {
                sample_rate: a.sample_rate(),
                channels: u16::from(a.channel_config),
                bitrate_kbps: 128.0,
                config: Bytes::from(vec![
                    (a.object_type << 3) | (a.frequency_index >> 1),
                    ((a.frequency_index & 1) << 7) | (a.channel_config << 3),
                ]),
            });
            self.muxer = Some(FlvMuxer::new(StreamInfo {
                video,
                audio,
                encoder: format!("pstream {}", env!("CARGO_PKG_VERSION")),
            }));
        }
        let Some(muxer) = self.muxer.as_mut() else {
            return;
        };
        let mut u = unit.clone();
        u.capture = self.epoch + u.pts;
        self.tags.clear();
        if let Err(e) = muxer.push(&u, &mut self.tags) {
            tracing::debug!("relay of {}: unit dropped: {e}", self.rendition.name());
            return;
        }
        for t in &self.tags {
            self.out.send(RelayTag::from_flv(t));
        }
    }
}

/// A relay's worker: idle until its stream is published, then relays
/// each session until the publisher leaves; until the server stops.
fn worker(
    relay: &Relay,
    sessions: &Receiver<Session>,
    queue_bytes: usize,
    started: Instant,
    stop: &Stop,
) {
    let counters = &relay.counters;
    while !stop.requested() {
        let mut session = match sessions.recv_timeout(IDLE_POLL) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Publishes that came and went while this worker was busy ending
        // an earlier one: only the newest is worth a connection.
        while let Ok(newer) = sessions.try_recv() {
            while let Recv::Item(_) = session.tags.try_recv() {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            session = newer;
        }
        tracing::info!("{}: stream published, relaying", relay.label);
        let mut feed = RelayFeed {
            tags: session.tags,
            headers: session.headers,
            counters: counters.clone(),
            max_bytes: queue_bytes / 4,
            held: VecDeque::new(),
            held_bytes: 0,
        };
        let result = run_rtmp(
            &relay.label,
            &relay.target.url,
            counters,
            RECONNECT_MAX,
            started,
            &mut feed,
            stop,
        );
        if let Err(e) = result {
            tracing::error!(
                "{}: giving up until the stream is published again: {}",
                relay.label,
                one_line(&e)
            );
            counters.set(DestinationState::Failed);
            // Keep taking the session's tags so its queue holds nothing.
            while !stop.requested() {
                match feed.tags.recv_timeout(IDLE_POLL) {
                    Recv::Item(_) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Recv::Timeout => {}
                    Recv::Closed => break,
                }
            }
        } else {
            counters.set(DestinationState::Idle);
            tracing::info!("{}: stream ended, relay idle", relay.label);
        }
    }
}

/// Where a connection is: the timestamp its first keyframe had (tags go
/// out relative to it), and whether it waits for a keyframe.
struct Out {
    base: Option<u32>,
    need_keyframe: bool,
}

/// One session's tags for [`run_rtmp`].
struct RelayFeed {
    tags: LinkReceiver<RelayTag>,
    headers: Arc<Mutex<Headers>>,
    counters: Arc<DestCounters>,
    max_bytes: usize,
    /// While disconnected: the tags since the last keyframe, for the next
    /// connection (at most `max_bytes`, a quarter of the relay's budget).
    held: VecDeque<RelayTag>,
    held_bytes: usize,
}

impl RelayFeed {
    fn has_video(&self) -> bool {
        lock(&self.headers).video.is_some()
    }

    fn drop_count(&self, n: usize) {
        self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Keeps a tag that came while disconnected: only those since the
    /// last keyframe are worth sending later (audio-only streams start afresh).
    fn hold(&mut self, tag: RelayTag) {
        if tag.header {
            return;
        }
        if !self.has_video() {
            self.drop_count(1);
            return;
        }
        if tag.is_video_keyframe() {
            self.drop_count(self.held.len());
            self.held.clear();
            self.held_bytes = 0;
        } else if self.held.is_empty() {
            self.drop_count(1);
            return;
        }
        self.held_bytes += tag.weight();
        self.held.push_back(tag);
        if self.held_bytes > self.max_bytes {
            // A GOP larger than the whole budget: nothing held can start a picture.
            self.drop_count(self.held.len());
            self.held.clear();
            self.held_bytes = 0;
        }
    }

    /// Sends the stream's headers at `ts`.
    fn send_headers(&self, conn: &mut RtmpConnection, ts: u32) -> Result<(), RtmpError> {
        let (meta, video, audio) = {
            let h = lock(&self.headers);
            (h.meta.clone(), h.video.clone(), h.audio.clone())
        };
        for t in [meta, video, audio].into_iter().flatten() {
            conn.send(t.type_id, ts, &t.data)?;
            self.counters
                .bytes
                .fetch_add(t.data.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sends one tag on the connection, starting it at a keyframe.
    fn forward(
        &self,
        conn: &mut RtmpConnection,
        out: &mut Out,
        tag: &RelayTag,
    ) -> Result<(), RtmpError> {
        let rel = |base: u32| (tag.timestamp_ms.wrapping_sub(base) as i32).max(0) as u32;
        if tag.header {
            // A new header mid-stream (the publisher changed its encoding).
            if let Some(base) = out.base {
                conn.send(tag.type_id, rel(base), &tag.data)?;
            }
            return Ok(());
        }
        if out.need_keyframe && !tag.is_video_keyframe() {
            self.drop_count(1);
            return Ok(());
        }
        let base = match out.base {
            Some(b) => {
                if out.need_keyframe {
                    // Back after a gap in the queue: headers again, then this keyframe.
                    self.send_headers(conn, rel(b))?;
                }
                b
            }
            None => {
                self.send_headers(conn, 0)?;
                out.base = Some(tag.timestamp_ms);
                tag.timestamp_ms
            }
        };
        out.need_keyframe = false;
        if (tag.timestamp_ms.wrapping_sub(base) as i32) < 0 {
            // From before this connection's first keyframe.
            self.drop_count(1);
            return Ok(());
        }
        conn.send(tag.type_id, rel(base), &tag.data)?;
        self.counters
            .bytes
            .fetch_add(tag.data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Feed for RelayFeed {
    fn idle(&mut self, until: Instant, stop: &Stop) -> bool {
        while Instant::now() < until && !stop.requested() {
            match self.tags.recv_timeout(Duration::from_millis(50)) {
                Recv::Item(t) => self.hold(t),
                Recv::Timeout => {}
                Recv::Closed => return false,
            }
        }
        true
    }

    fn stream(&mut self, mut conn: RtmpConnection, stop: &Stop) -> Result<(), RtmpError> {
        // What queued while connecting: from its last keyframe on.
        while let Recv::Item(t) = self.tags.try_recv() {
            self.hold(t);
        }
        let mut out = Out {
            base: None,
            need_keyframe: self.has_video(),
        };
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for t in &held {
            self.forward(&mut conn, &mut out, t)?;
        }
        let mut seen_drops = self.tags.dropped();
        let mut polled = Instant::now();
        loop {
            // Acknowledgements, pings and status messages from the platform.
            if polled.elapsed() >= Duration::from_millis(100) {
                polled = Instant::now();
                conn.poll()?;
            }
            if stop.requested() {
                break;
            }
            let tag = match self.tags.recv_timeout(Duration::from_millis(50)) {
                Recv::Item(t) => t,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            // After a drop in the queue the picture is broken until the next keyframe.
            let drops = self.tags.dropped();
            if drops != seen_drops {
                seen_drops = drops;
                out.need_keyframe = self.has_video();
            }
            self.forward(&mut conn, &mut out, &tag)?;
        }
        conn.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_specs_parse_and_never_show_the_key() {
        let r = RelayTarget::parse("show=rtmp://127.0.0.1:1935/live/s3cret").expect("source");
        assert_eq!(r.stream, "show");
        assert_eq!(r.rendition, None);
        assert_eq!(r.url.key, "s3cret");
        assert_eq!(r.label(), "show>rtmp://127.0.0.1:1935/live/****");
        let r = RelayTarget::parse("show/P360p30fps16x9=rtmps://live.example/app/s3cret")
            .expect("rendition");
        assert_eq!(r.rendition, Some(Rendition::P360p30fps16x9));
        assert!(r.url.tls);
        for bad in [
            "rtmp://127.0.0.1/live/s3cret",
            "show=http://127.0.0.1/live/s3cret",
            "show=rtmp://127.0.0.1/s3cret",
            "show/P100p=rtmp://127.0.0.1/live/s3cret",
            "=rtmp://127.0.0.1/live/s3cret",
            "show=garbage s3cret",
        ] {
            let e = RelayTarget::parse(bad).expect_err(bad).to_string();
            assert!(e.starts_with("relay "), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
        let w = RelayTarget::parse_word("show", "P144p30fps16x9=rtmp://h/live/k").expect("word");
        assert_eq!(w.rendition, Some(Rendition::P144p30fps16x9));
        let w = RelayTarget::parse_word("show", "RTMP://h/live/k?x=1").expect("url");
        assert_eq!((w.rendition, w.url.key.as_str()), (None, "k?x=1"));
        assert!(RelayTarget::parse_word("show", "two").is_err());
    }

    fn msg(kind: MediaKind, ts: u32, data: &[u8]) -> MediaMessage {
        MediaMessage {
            kind,
            timestamp_ms: ts,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn received_tags_are_told_apart() {
        let hdr =
            RelayTag::from_message(&msg(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0])).expect("video");
        assert!(hdr.header && !hdr.is_video_keyframe());
        let key =
            RelayTag::from_message(&msg(MediaKind::Video, 33, &[0x17, 1, 0, 0, 0])).expect("video");
        assert!(!key.header && key.is_video_keyframe());
        let inter =
            RelayTag::from_message(&msg(MediaKind::Video, 66, &[0x27, 1, 0, 0, 0])).expect("video");
        assert!(!inter.header && !inter.is_video_keyframe());
        let asc = RelayTag::from_message(&msg(MediaKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]))
            .expect("audio");
        assert!(asc.header);
        let meta = RelayTag::from_message(&msg(MediaKind::Data, 0, b"\x02\x00\x0aonMetaData\x08"))
            .expect("metadata");
        assert!(meta.header && meta.type_id == DATA);
        assert!(
            RelayTag::from_message(&msg(MediaKind::Data, 0, b"\x02\x00\x0aonCuePoint")).is_none()
        );
    }

    #[test]
    fn while_disconnected_only_the_last_gop_is_held() {
        let (_tx, rx) = link_bytes::<RelayTag>(16, 1 << 20);
        let headers = Arc::new(Mutex::new(Headers::default()));
        let mut feed = RelayFeed {
            tags: rx,
            headers: headers.clone(),
            counters: Arc::new(DestCounters::default()),
            max_bytes: 1 << 20,
            held: VecDeque::new(),
            held_bytes: 0,
        };
        let tag = |ts: u32, first: u8| {
            RelayTag::from_message(&msg(MediaKind::Video, ts, &[first, 1, 0, 0, 0])).expect("tag")
        };
        // Audio-only so far (no AVC header): nothing is held.
        feed.hold(tag(0, 0x17));
        assert!(feed.held.is_empty());
        lock(&headers).video =
            Some(RelayTag::from_message(&msg(MediaKind::Video, 0, &[0x17, 0, 1])).expect("hdr"));
        for (ts, first) in [
            (1, 0x27),
            (2, 0x17),
            (3, 0x27),
            (4, 0x27),
            (5, 0x17),
            (6, 0x27),
        ] {
            feed.hold(tag(ts, first));
        }
        let held: Vec<u32> = feed.held.iter().map(|t| t.timestamp_ms).collect();
        assert_eq!(held, [5, 6], "from the last keyframe on");
        // Dropped: the first tag, the inter frame before any keyframe, and the older GOP.
        assert_eq!(feed.counters.dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_session_queue_is_bounded_in_bytes_and_keeps_headers_aside() {
        let relays = Relays::none();
        assert!(relays.open("x", None).is_none(), "no relay, no session");
        let (tx, rx) = crossbeam_channel::unbounded();
        let relay = Arc::new(Relay {
            target: RelayTarget::parse("x=rtmp://127.0.0.1:9/live/k").expect("spec"),
            label: "x".into(),
            counters: Arc::new(DestCounters::default()),
            past_queue_drops: AtomicU64::new(0),
            queue_drops: Mutex::new(None),
            sessions: tx,
        });
        let relays = Relays {
            list: vec![relay.clone()],
            queue_bytes: 1 << 20,
            workers: Mutex::new(Stages::new(Stop::new())),
            started: Instant::now(),
        };
        let out = relays.open("x", None).expect("a session");
        let session = rx.try_recv().expect("handed to the worker");
        let mib = vec![0u8; 256 << 10];
        out.send(
            RelayTag::from_message(&msg(MediaKind::Video, 0, &[0x17, 0, 1, 2, 3])).expect("hdr"),
        );
        for i in 0..40 {
            let mut body = vec![0x27, 1, 0, 0, 0];
            body.extend_from_slice(&mib);
            out.send(RelayTag::from_message(&msg(MediaKind::Video, i, &body)).expect("tag"));
        }
        // A worker that never reads holds at most the budget.
        let queued: usize = std::iter::from_fn(|| match session.tags.try_recv() {
            Recv::Item(t) => Some(t.weight()),
            _ => None,
        })
        .sum();
        assert!(queued <= 1 << 20, "{queued}");
        assert!(relay.dropped() >= 36, "{}", relay.dropped());
        assert!(lock(&session.headers).video.is_some(), "header kept aside");
    }
}
