//! WebRTC for pstream, sans-IO: WHEP viewers served over str0m.
//!
//! [`Whep`] holds every viewer session of a server. It never touches a
//! socket or a clock: the driver (in `pstream-embed`'s serve) passes the
//! time and each UDP datagram in, hands it the published video, and sends
//! the datagrams [`Whep::poll`] gives back, all from one UDP port.
//!
//! - ICE-lite, one host candidate: the configured advertised address, so a
//!   server behind a NAT can name its public address and port.
//! - A datagram goes to the session whose str0m instance
//!   [`accepts`](str0m::Rtc::accepts) it (STUN by its ICE credentials, the
//!   rest by the nominated peer address); nobody's is dropped and counted.
//! - Video is forwarded as published (H.264 Annex B, parameter sets on key
//!   frames, as `pstream_mux::FlvDemuxer` gives them), without transcoding,
//!   when the viewer offered the stream's H.264 profile in packetization
//!   mode 1. A viewer starts at the next key frame.
//! - Each rendition is a feed of its own, `<stream>/<rendition>`, that a
//!   viewer asks for by name ([`Whep::offer_variant`]). A viewer of the
//!   source whose offer lacks the source's profile (H.264 High: browsers
//!   offer baseline and main) follows the first rendition whose key frame
//!   it can play instead, and the server logs which.
//! - Audio is Opus, passed in by the driver (which turns the published AAC
//!   into it) and sent to every viewer of the stream on its audio line.
//! - A viewer holds a bounded queue of frames; when it overflows (the
//!   driver fell behind for it), the queue is emptied and the viewer waits
//!   for the next key frame, so it never holds the others back.
//! - Sessions are capped per stream and in total; one that receives nothing
//!   for [`WhepConfig::idle_timeout`] (or never connects) is closed and freed.

#[cfg(fuzzing)]
pub mod fuzzing;
mod ids;
pub mod whip;

pub use ids::IdSeed;
use ids::SessionIds;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// Largest SDP offer accepted, in bytes (a browser's is a few KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Settings of a [`Whep`] server.
#[derive(Debug, Clone)]
pub struct WhepConfig {
    /// The address put in each answer's host candidate: the public IP and
    /// the UDP port viewers send to.
    pub advertised: SocketAddr,
    /// Sessions open at once over all streams.
    pub max_sessions: usize,
    /// Sessions open at once on one stream.
    pub max_sessions_per_stream: usize,
    /// A session that receives no datagram for this long is closed (browsers
    /// send STUN consent checks every few seconds while they play).
    pub idle_timeout: Duration,
    /// Frames a viewer may have waiting; past it the viewer drops to the
    /// next key frame.
    pub queue_frames: usize,
    /// Opus packets (20 ms each) a viewer may have waiting; past it its
    /// audio queue is emptied.
    pub queue_audio: usize,
}

impl WhepConfig {
    /// Defaults around `advertised`: 256 sessions, 64 per stream, 15 s
    /// idle timeout, 60 frames queued per viewer.
    pub fn new(advertised: SocketAddr) -> Self {
        Self {
            advertised,
            max_sessions: 256,
            max_sessions_per_stream: 64,
            idle_timeout: Duration::from_secs(15),
            queue_frames: 60,
            queue_audio: 50,
        }
    }
}

/// Why an offer got no session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhepError {
    /// The body is not an SDP offer str0m can parse or accept.
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// The offer has no video pstream can send (H.264, packetization mode 1).
    #[error("the offer has no H.264 video in packetization mode 1")]
    NoCodec,
    /// Too many sessions, on this stream or in total.
    #[error("too many WebRTC sessions ({open} open, limit {limit})")]
    Busy {
        /// Sessions open where the limit applies.
        open: usize,
        /// The limit.
        limit: usize,
    },
}

/// What the server counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhepStats {
    /// Sessions open now.
    pub sessions: usize,
    /// Sessions that reached DTLS-connected, ever.
    pub connected: u64,
    /// Offers accepted.
    pub offers: u64,
    /// Offers refused (malformed, no codec, busy).
    pub refused: u64,
    /// Datagrams no session accepted, or that failed to parse.
    pub dropped_datagrams: u64,
    /// Sessions closed for silence.
    pub timed_out: u64,
    /// Frames sent to viewers.
    pub frames_sent: u64,
    /// Frames a viewer skipped: before its first key frame, after a queue
    /// overflow, or because it did not offer the stream's profile.
    pub frames_skipped: u64,
    /// Opus packets sent to viewers.
    pub audio_sent: u64,
    /// Opus packets dropped: before the viewer connected, or on a queue
    /// overflow.
    pub audio_skipped: u64,
    /// Viewers of a source they could not play that were given a rendition.
    pub fallbacks: u64,
    /// Bytes of the datagrams sent (media, RTCP, STUN, DTLS).
    pub bytes_sent: u64,
    /// NACKs viewers sent (each names lost packets to resend).
    pub nacks: u64,
    /// Key frame requests (PLI and FIR) viewers sent.
    pub keyframe_requests: u64,
}

/// One datagram to send from the WebRTC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// One published video access unit: H.264 Annex B, with SPS and PPS on key frames.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Annex B bytes (shared between viewers).
    pub data: Arc<[u8]>,
    /// An IDR access unit.
    pub keyframe: bool,
    /// Presentation time from the start of the publish.
    pub pts: Duration,
}

/// One Opus packet (20 ms at 48 kHz) of a stream's audio.
#[derive(Debug, Clone)]
pub struct AudioFrame {
    /// The packet (shared between viewers).
    pub data: Arc<[u8]>,
    /// Presentation time of its first sample, on the video's timeline.
    pub pts: Duration,
}

/// A viewer session.
struct Session {
    /// The published stream's name.
    stream: String,
    /// The rendition asked for; None for the source.
    variant: Option<String>,
    /// The feed whose video it gets: `stream`, or `stream/rendition`.
    feed: String,
    /// A source viewer that did not offer the source's profile: it waits
    /// for a rendition's key frame to follow instead.
    unplayable: bool,
    rtc: Rtc,
    video: Option<Mid>,
    audio: Option<Mid>,
    /// The Opus payload type the viewer accepted.
    opus: Option<Pt>,
    audio_queue: VecDeque<AudioFrame>,
    /// NACKs received so far, by media line (str0m's counts are totals).
    nacks: HashMap<Mid, u64>,
    /// The H.264 payload types the viewer accepted, with their profile_idc.
    h264: Vec<(Pt, u8)>,
    /// The payload type chosen for the current publish's profile.
    pt: Option<Pt>,
    connected: bool,
    need_key: bool,
    queue: VecDeque<VideoFrame>,
    last_input: Instant,
}

/// Every WHEP viewer of a server; see the crate docs.
pub struct Whep {
    config: WhepConfig,
    sessions: HashMap<String, Session>,
    stats: WhepStats,
    ids: SessionIds,
    /// Datagrams a session gave outside [`Whep::poll`], sent at the next one.
    outbox: Vec<Transmit>,
}

impl Whep {
    /// No sessions yet; `seed` makes session ids unguessable (give it OS randomness).
    pub fn new(config: WhepConfig, seed: IdSeed) -> Self {
        Self {
            config,
            sessions: HashMap::new(),
            stats: WhepStats::default(),
            ids: SessionIds::new(seed),
            outbox: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &WhepConfig {
        &self.config
    }

    /// Counts so far.
    pub fn stats(&self) -> WhepStats {
        WhepStats {
            sessions: self.sessions.len(),
            ..self.stats.clone()
        }
    }

    /// Answers a viewer's SDP offer for `stream`'s source: the session id
    /// (for its resource URL) and the SDP answer.
    pub fn offer(
        &mut self,
        now: Instant,
        stream: &str,
        sdp: &str,
    ) -> Result<(String, String), WhepError> {
        self.offer_variant(now, stream, None, sdp)
    }

    /// Like [`Whep::offer`], for `rendition` of `stream` (None: the source).
    pub fn offer_variant(
        &mut self,
        now: Instant,
        stream: &str,
        rendition: Option<&str>,
        sdp: &str,
    ) -> Result<(String, String), WhepError> {
        let result = self.try_offer(now, stream, rendition, sdp);
        match &result {
            Ok(_) => self.stats.offers += 1,
            Err(_) => self.stats.refused += 1,
        }
        result
    }

    fn try_offer(
        &mut self,
        now: Instant,
        stream: &str,
        rendition: Option<&str>,
        sdp: &str,
    ) -> Result<(String, String), WhepError> {
        if sdp.len() > MAX_OFFER_BYTES {
            return Err(WhepError::BadOffer(format!(
                "{} bytes, more than {MAX_OFFER_BYTES}",
                sdp.len()
            )));
        }
        if self.sessions.len() >= self.config.max_sessions {
            return Err(WhepError::Busy {
                open: self.sessions.len(),
                limit: self.config.max_sessions,
            });
        }
        let on_stream = self
            .sessions
            .values()
            .filter(|s| s.stream == stream)
            .count();
        if on_stream >= self.config.max_sessions_per_stream {
            return Err(WhepError::Busy {
                open: on_stream,
                limit: self.config.max_sessions_per_stream,
            });
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_ice_lite(true)
            // Egress stats carry the NACK counts.
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        let candidate = Candidate::host(self.config.advertised, "udp")
            .map_err(|e| WhepError::BadOffer(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        // The offer's media ids: the video one is where frames go.
        let mids: Vec<Mid> = offer.media_lines.iter().map(|m| m.mid()).collect();
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let of_kind = |rtc: &Rtc, kind: MediaKind| {
            mids.iter()
                .copied()
                .find(|mid| rtc.media(*mid).is_some_and(|m| m.kind() == kind))
        };
        let video = of_kind(&rtc, MediaKind::Video);
        let audio = of_kind(&rtc, MediaKind::Audio);
        let feed = match rendition {
            Some(r) => format!("{stream}/{r}"),
            None => stream.to_string(),
        };
        let mut session = Session {
            stream: stream.to_string(),
            variant: rendition.map(str::to_string),
            feed,
            unplayable: false,
            rtc,
            video,
            audio,
            opus: None,
            audio_queue: VecDeque::new(),
            nacks: HashMap::new(),
            h264: Vec::new(),
            pt: None,
            connected: false,
            need_key: true,
            queue: VecDeque::new(),
            last_input: now,
        };
        // Nothing to send before the viewer's first STUN check, but the
        // session's first events (media added) are taken now.
        session.drain(now, &mut self.outbox, &mut self.stats);
        let Some(mid) = session.video else {
            return Err(WhepError::NoCodec);
        };
        if let Some(writer) = session.rtc.writer(mid) {
            session.h264 = writer
                .payload_params()
                .filter(|p| {
                    let spec = p.spec();
                    spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
                })
                .map(|p| {
                    let profile = p.spec().format.profile_level_id.unwrap_or(0);
                    (p.pt(), (profile >> 16) as u8)
                })
                .collect();
        }
        if session.h264.is_empty() {
            return Err(WhepError::NoCodec);
        }
        // An offer without Opus (or without audio) plays video only.
        session.opus = session
            .audio
            .and_then(|mid| session.rtc.writer(mid))
            .and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
            });
        let id = self.ids.next();
        tracing::debug!("whep {stream}: session {id} offered");
        self.sessions.insert(id.clone(), session);
        Ok((id, answer.to_sdp_string()))
    }

    /// Ends session `id` of `stream` (the viewer's DELETE); false if there is none.
    pub fn close(&mut self, stream: &str, id: &str) -> bool {
        match self.sessions.get(id) {
            Some(s) if s.stream == stream => {
                self.sessions.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Whether stream `stream` has sessions, of its source or a rendition
    /// (so the driver knows whose audio to make).
    pub fn watched(&self, stream: &str) -> bool {
        self.sessions.values().any(|s| s.stream == stream)
    }

    /// Whether video of `feed` (a stream's name for its source, or
    /// `<stream>/<rendition>`) has a viewer: one that follows it, or for a
    /// rendition, a source viewer waiting for one it can play.
    pub fn wants_video(&self, feed: &str) -> bool {
        let stream = feed.split_once('/').map(|(s, _)| s);
        self.sessions.values().any(|s| {
            s.feed == feed || (s.unplayable && s.feed == s.stream && stream == Some(&s.stream))
        })
    }

    /// One datagram from `source` on the WebRTC port: given to the session
    /// that accepts it, else dropped and counted. False if dropped.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> bool {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.config.advertised, data) else {
            self.stats.dropped_datagrams += 1;
            return false;
        };
        let input = Input::Receive(now, receive);
        let Some(session) = self.sessions.values_mut().find(|s| s.rtc.accepts(&input)) else {
            self.stats.dropped_datagrams += 1;
            return false;
        };
        session.last_input = now;
        if let Err(e) = session.rtc.handle_input(input) {
            tracing::debug!("whep {}: input refused: {e}", session.stream);
            self.stats.dropped_datagrams += 1;
            return false;
        }
        true
    }

    /// A frame of `feed` (a stream's name for its source, or
    /// `<stream>/<rendition>`), queued for each of its viewers.
    pub fn video(&mut self, feed: &str, frame: &VideoFrame) {
        let profile = frame.keyframe.then(|| sps_profile(&frame.data)).flatten();
        let limit = self.config.queue_frames;
        let (stream, rendition) = match feed.split_once('/') {
            Some((s, r)) => (s, Some(r)),
            None => (feed, None),
        };
        for (id, s) in self.sessions.iter_mut().filter(|(_, s)| s.stream == stream) {
            if s.feed != feed {
                // A source viewer that cannot play the source takes the
                // first rendition key frame whose profile it offered.
                let adopt = s.unplayable
                    && s.feed == s.stream
                    && profile.is_some_and(|p| s.choose_pt(p).is_some());
                let Some(r) = rendition.filter(|_| adopt) else {
                    continue;
                };
                tracing::info!(
                    "whep {stream}: session {id} did not offer the source's H.264 profile; playing rendition {r} instead"
                );
                s.feed = feed.to_string();
                s.unplayable = false;
                s.need_key = true;
                self.stats.fallbacks += 1;
            }
            if let Some(p) = profile {
                s.pt = s.choose_pt(p);
                // Only the source falls back; a rendition is what it is.
                s.unplayable = s.pt.is_none() && s.variant.is_none() && rendition.is_none();
            }
            if !s.connected || s.pt.is_none() || (s.need_key && !frame.keyframe) {
                self.stats.frames_skipped += 1;
                continue;
            }
            s.need_key = false;
            if s.queue.len() >= limit {
                // The driver has not drained this viewer: it starts over
                // at the next key frame rather than fall further behind.
                self.stats.frames_skipped += s.queue.len() as u64 + 1;
                s.queue.clear();
                s.need_key = true;
                continue;
            }
            s.queue.push_back(frame.clone());
        }
    }

    /// An Opus packet of `stream`'s audio, queued for every viewer of the
    /// stream (source or rendition) that accepted Opus.
    pub fn audio(&mut self, stream: &str, frame: &AudioFrame) {
        let limit = self.config.queue_audio;
        for s in self.sessions.values_mut().filter(|s| s.stream == stream) {
            if !s.connected || s.opus.is_none() {
                self.stats.audio_skipped += 1;
                continue;
            }
            if s.audio_queue.len() >= limit {
                self.stats.audio_skipped += s.audio_queue.len() as u64;
                s.audio_queue.clear();
            }
            s.audio_queue.push_back(frame.clone());
        }
    }

    /// Feeds every session the time, writes queued frames, closes ended
    /// and silent sessions; pushes the datagrams to send into `out` and
    /// returns when to call again at the latest.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Instant {
        let mut next = now + Duration::from_millis(100);
        let idle = self.config.idle_timeout;
        // Datagrams already in `out` are the caller's, not counted here.
        let before = out.len();
        out.append(&mut self.outbox);
        let stats = &mut self.stats;
        self.sessions.retain(|id, s| {
            if now.saturating_duration_since(s.last_input) >= idle {
                tracing::debug!("whep {}: session {id} timed out", s.stream);
                stats.timed_out += 1;
                return false;
            }
            if let Err(e) = s.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!("whep {}: session {id}: {e}", s.stream);
                return false;
            }
            s.write_queued(now, stats);
            match s.drain(now, out, stats) {
                Some(t) => {
                    next = next.min(t);
                    s.rtc.is_alive()
                }
                None => false,
            }
        });
        stats.bytes_sent += out[before..]
            .iter()
            .map(|t| t.data.len() as u64)
            .sum::<u64>();
        next
    }
}

impl Session {
    /// The payload type for a publish of `profile_idc`: the same profile
    /// (constrained baseline and baseline both as baseline, 66).
    fn choose_pt(&self, profile_idc: u8) -> Option<Pt> {
        self.h264
            .iter()
            .find(|(_, p)| *p == profile_idc)
            .map(|(pt, _)| *pt)
    }

    fn write_queued(&mut self, now: Instant, stats: &mut WhepStats) {
        self.write_video(now, stats);
        self.write_audio(now, stats);
    }

    fn write_video(&mut self, now: Instant, stats: &mut WhepStats) {
        let (Some(mid), Some(pt)) = (self.video, self.pt) else {
            self.queue.clear();
            return;
        };
        while let Some(frame) = self.queue.pop_front() {
            let Some(writer) = self.rtc.writer(mid) else {
                return;
            };
            let ticks = frame.pts.as_micros() as u64 * 9 / 100;
            match writer.write(pt, now, MediaTime::from_90khz(ticks), frame.data.clone()) {
                Ok(()) => stats.frames_sent += 1,
                Err(e) => {
                    tracing::debug!("whep {}: write: {e}", self.stream);
                    stats.frames_skipped += 1;
                    self.need_key = true;
                }
            }
        }
    }

    fn write_audio(&mut self, now: Instant, stats: &mut WhepStats) {
        let (Some(mid), Some(pt)) = (self.audio, self.opus) else {
            self.audio_queue.clear();
            return;
        };
        while let Some(frame) = self.audio_queue.pop_front() {
            let Some(writer) = self.rtc.writer(mid) else {
                return;
            };
            let ticks = frame.pts.as_micros() as u64 * 48 / 1000;
            let time = MediaTime::new(ticks, Frequency::FORTY_EIGHT_KHZ);
            match writer.write(pt, now, time, frame.data.clone()) {
                Ok(()) => stats.audio_sent += 1,
                Err(e) => {
                    tracing::debug!("whep {}: audio write: {e}", self.stream);
                    stats.audio_skipped += 1;
                }
            }
        }
    }

    /// Takes str0m's output until it asks for time: datagrams into `out`,
    /// events noted. The next timeout, or None when the session ended.
    fn drain(
        &mut self,
        _now: Instant,
        out: &mut Vec<Transmit>,
        stats: &mut WhepStats,
    ) -> Option<Instant> {
        // Bounded: str0m yields a timeout once it has nothing else.
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => out.push(Transmit {
                    destination: t.destination,
                    // str0m hands the datagram over: take it, no copy.
                    data: t.contents.into(),
                }),
                Ok(Output::Event(e)) => match e {
                    Event::MediaAdded(m) if m.kind == MediaKind::Video && self.video.is_none() => {
                        self.video = Some(m.mid);
                    }
                    Event::Connected => {
                        self.connected = true;
                        stats.connected += 1;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return None;
                    }
                    Event::KeyframeRequest(_) => stats.keyframe_requests += 1,
                    Event::MediaEgressStats(e) => {
                        // str0m counts per media line since the start:
                        // add what is new.
                        let seen = self.nacks.entry(e.mid).or_default();
                        stats.nacks += e.nacks.saturating_sub(*seen);
                        *seen = (*seen).max(e.nacks);
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("whep {}: {e}", self.stream);
                    return None;
                }
            }
        }
        Some(_now)
    }
}

/// The profile_idc of the first SPS in an Annex B access unit.
fn sps_profile(annexb: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i + 4 < annexb.len() {
        if annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1 {
            if annexb[i + 3] & 0x1f == 7 {
                return annexb.get(i + 4).copied();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Whep {
        Whep::new(
            WhepConfig::new("127.0.0.1:8189".parse().expect("addr")),
            [0x12; 32],
        )
    }

    #[test]
    fn the_profile_comes_from_the_sps() {
        let au = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce];
        assert_eq!(sps_profile(&au), Some(0x42));
        assert_eq!(sps_profile(&[0, 0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(sps_profile(&[]), None);
    }

    #[test]
    fn malformed_offers_are_refused_and_counted() {
        let mut whep = server();
        let now = Instant::now();
        for bad in [
            "",
            "hello",
            "v=0\r\n",
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n\0\0\0",
        ] {
            assert!(
                matches!(whep.offer(now, "s", bad), Err(WhepError::BadOffer(_))),
                "{bad:?}"
            );
        }
        let huge = "a".repeat(MAX_OFFER_BYTES + 1);
        assert!(matches!(
            whep.offer(now, "s", &huge),
            Err(WhepError::BadOffer(_))
        ));
        assert_eq!(whep.stats().refused, 5);
        assert_eq!(whep.stats().sessions, 0);
    }

    /// A minimal browser-like offer: one receive-only video line with `rtpmap`.
    pub(crate) fn offer_sdp(rtpmap: &str) -> String {
        let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
             a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=recvonly\r\na=rtcp-mux\r\n{rtpmap}",
            fp.join(":")
        )
    }

    #[test]
    fn offers_need_h264_in_packetization_mode_1() {
        let mut whep = server();
        let now = Instant::now();
        let vp8 = offer_sdp("a=rtpmap:96 VP8/90000\r\n");
        assert!(matches!(
            whep.offer(now, "s", &vp8),
            Err(WhepError::NoCodec)
        ));
        let mode0 = offer_sdp(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n",
        );
        assert!(matches!(
            whep.offer(now, "s", &mode0),
            Err(WhepError::NoCodec)
        ));
        let h264 = offer_sdp(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
        );
        let (id, answer) = whep.offer(now, "s", &h264).expect("an H.264 offer");
        assert_eq!(id.len(), 32);
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("127.0.0.1 8189 typ host"), "{answer}");
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("a=sendonly"), "{answer}");
        assert_eq!(whep.stats().sessions, 1);
        assert!(whep.watched("s"));
        // Another stream's name cannot close it; its own can, once.
        assert!(!whep.close("t", &id));
        assert!(whep.close("s", &id));
        assert!(!whep.close("s", &id));
        assert_eq!(whep.stats().refused, 2);
    }

    #[test]
    fn sessions_are_capped_and_silent_ones_freed() {
        let mut config = WhepConfig::new("127.0.0.1:8189".parse().expect("addr"));
        config.max_sessions = 3;
        config.max_sessions_per_stream = 2;
        let mut whep = Whep::new(config, [7; 32]);
        let now = Instant::now();
        let h264 = offer_sdp(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n",
        );
        assert!(whep.offer(now, "a", &h264).is_ok());
        assert!(whep.offer(now, "a", &h264).is_ok());
        assert!(matches!(
            whep.offer(now, "a", &h264),
            Err(WhepError::Busy { open: 2, limit: 2 })
        ));
        assert!(whep.offer(now, "b", &h264).is_ok());
        assert!(matches!(
            whep.offer(now, "c", &h264),
            Err(WhepError::Busy { open: 3, limit: 3 })
        ));
        let mut out = Vec::new();
        whep.poll(now + Duration::from_secs(1), &mut out);
        assert_eq!(whep.stats().sessions, 3);
        // Nobody ever sent a datagram: all freed after the idle timeout.
        whep.poll(now + Duration::from_secs(16), &mut out);
        assert_eq!(whep.stats().sessions, 0);
        assert_eq!(whep.stats().timed_out, 3);
        assert!(whep
            .offer(now + Duration::from_secs(16), "c", &h264)
            .is_ok());
    }

    /// A str0m client (a browser's part) against a [`Whep`], datagrams
    /// passed in memory and time advanced by hand.
    struct Pair {
        whep: Whep,
        client: Rtc,
        now: Instant,
        server_addr: SocketAddr,
        client_addr: SocketAddr,
        /// Video frames the client received.
        frames: usize,
        /// Audio packets the client received.
        audio: usize,
    }

    impl Pair {
        fn connect(queue_frames: usize) -> Pair {
            Pair::connect_to(queue_frames, None, false)
        }

        /// A client with a video and an audio line, for `rendition` of
        /// stream "s"; `baseline_only`: it offers no High or Main (as if
        /// it could not play a High source).
        fn connect_to(queue_frames: usize, rendition: Option<&str>, baseline_only: bool) -> Pair {
            let server_addr: SocketAddr = "127.0.0.1:8189".parse().expect("addr");
            let client_addr: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
            let mut config = WhepConfig::new(server_addr);
            config.queue_frames = queue_frames;
            let mut whep = Whep::new(config, [99; 32]);
            let now = Instant::now();
            let mut client = if baseline_only {
                let mut c = RtcConfig::new().clear_codecs().enable_opus(true, false);
                c.codec_config()
                    .add_h264(Pt::new_with_value(108), None, true, 0x42e01f);
                c.build(now)
            } else {
                Rtc::new(now)
            };
            client.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
            let mut api = client.sdp_api();
            for kind in [MediaKind::Video, MediaKind::Audio] {
                api.add_media(kind, str0m::media::Direction::RecvOnly, None, None, None);
            }
            let (offer, pending) = api.apply().expect("an offer");
            let (_, answer) = whep
                .offer_variant(now, "s", rendition, &offer.to_sdp_string())
                .expect("answered");
            let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer");
            client
                .sdp_api()
                .accept_answer(pending, answer)
                .expect("accepted");
            let mut pair = Pair {
                whep,
                client,
                now,
                server_addr,
                client_addr,
                frames: 0,
                audio: 0,
            };
            for _ in 0..500 {
                pair.step(true);
                if pair.whep.stats().connected == 1 {
                    return pair;
                }
            }
            panic!("no connection in 5 s of simulated time");
        }

        /// 10 ms: the client's datagrams to the server, the server's
        /// (when `serve`; a stalled driver does not poll) to the client.
        fn step(&mut self, serve: bool) {
            self.now += Duration::from_millis(10);
            let _ = self.client.handle_input(Input::Timeout(self.now));
            for _ in 0..1000 {
                match self.client.poll_output().expect("client output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        self.whep.receive(self.now, self.client_addr, &t.contents);
                    }
                    Output::Event(Event::MediaData(d)) if d.params.spec().codec == Codec::Opus => {
                        self.audio += 1
                    }
                    Output::Event(Event::MediaData(_)) => self.frames += 1,
                    Output::Event(_) => {}
                }
            }
            if !serve {
                return;
            }
            let mut out = Vec::new();
            self.whep.poll(self.now, &mut out);
            for t in out {
                let r = Receive::new(Protocol::Udp, self.server_addr, self.client_addr, &t.data)
                    .expect("a datagram str0m made");
                let _ = self.client.handle_input(Input::Receive(self.now, r));
            }
        }

        fn frame(&mut self, n: u64, keyframe: bool) {
            self.frame_of("s", 0x42, n, keyframe);
        }

        /// Frame `n` of `feed`, its SPS of `profile_idc`.
        fn frame_of(&mut self, feed: &str, profile_idc: u8, n: u64, keyframe: bool) {
            // SPS, PPS, then a slice: str0m carries the bytes, it does not
            // decode them.
            let mut au = vec![
                0,
                0,
                0,
                1,
                0x67,
                profile_idc,
                0xc0,
                0x1e,
                0xab,
                0,
                0,
                0,
                1,
                0x68,
                0xce,
                0x3c,
            ];
            au.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
            au.extend(std::iter::repeat_n(n as u8, 3000));
            let frame = VideoFrame {
                data: au.into(),
                keyframe,
                pts: Duration::from_millis(n * 33),
            };
            self.whep.video(feed, &frame);
        }
    }

    #[test]
    fn opus_reaches_every_viewer_of_the_stream() {
        let mut pair = Pair::connect_to(60, Some("360p"), false);
        // A rendition viewer gets the stream's audio, and its own video
        // only (the source's is not its feed and is not counted skipped).
        assert!(pair.whep.watched("s"));
        assert!(pair.whep.wants_video("s/360p"));
        assert!(!pair.whep.wants_video("s"));
        for n in 0..50u64 {
            let frame = AudioFrame {
                data: vec![0xf8, 0xff, 0xfe, n as u8].into(),
                pts: Duration::from_millis(n * 20),
            };
            pair.whep.audio("s", &frame);
            pair.whep.audio("other", &frame);
            if n % 2 == 0 {
                pair.frame_of("s/360p", 0x42, n / 2, n == 0);
                pair.frame_of("s", 0x42, n / 2, n == 0);
            }
            pair.step(true);
        }
        for _ in 0..50 {
            pair.step(true);
        }
        let stats = pair.whep.stats();
        assert_eq!(stats.audio_sent, 50, "{stats:?}");
        assert_eq!(stats.frames_sent, 25, "{stats:?}");
        assert_eq!(stats.frames_skipped, 0, "{stats:?}");
        assert_eq!(pair.audio, 50);
        assert_eq!(pair.frames, 25);
        assert!(stats.bytes_sent > 25 * 3000, "{stats:?}");
    }

    #[test]
    fn a_source_viewer_without_its_profile_follows_a_rendition() {
        let mut pair = Pair::connect_to(60, None, true);
        // The source is High (100): this viewer offered baseline only.
        for n in 0..10u64 {
            pair.frame_of("s", 100, n, n % 5 == 0);
            pair.step(true);
        }
        assert_eq!(pair.whep.stats().frames_sent, 0);
        assert!(pair.whep.wants_video("s/360p"));
        for n in 10..40u64 {
            pair.frame_of("s", 100, n, n % 5 == 0);
            // The rendition's key frames come at 12, 17, ...
            pair.frame_of("s/360p", 0x42, n, n % 5 == 2);
            pair.step(true);
        }
        for _ in 0..50 {
            pair.step(true);
        }
        let stats = pair.whep.stats();
        assert_eq!(stats.fallbacks, 1, "{stats:?}");
        // Rendition frames 12..40 sent, none of the source's.
        assert_eq!(stats.frames_sent, 28, "{stats:?}");
        assert_eq!(pair.frames, 28);
        assert!(!pair.whep.wants_video("s"));
    }

    #[test]
    fn a_str0m_peer_receives_the_frames_from_a_key_frame_on() {
        let mut pair = Pair::connect(60);
        // Two delta frames first: the viewer waits for the key frame.
        for n in 0..30u64 {
            pair.frame(n, n == 2);
            pair.step(true);
        }
        for _ in 0..50 {
            pair.step(true);
        }
        let stats = pair.whep.stats();
        assert_eq!(stats.frames_sent, 28, "{stats:?}");
        assert_eq!(stats.frames_skipped, 2, "{stats:?}");
        assert_eq!(pair.frames, 28);
    }

    #[test]
    fn a_viewer_the_driver_falls_behind_for_restarts_at_a_key_frame() {
        let mut pair = Pair::connect(10);
        pair.frame(0, true);
        pair.step(true);
        // The driver stalls for 20 frames: the queue (10) overflows, is
        // emptied, and the viewer skips to the next key frame.
        for n in 1..21u64 {
            pair.frame(n, false);
            pair.step(false);
        }
        for n in 21..31u64 {
            pair.frame(n, n == 25);
            pair.step(true);
        }
        for _ in 0..50 {
            pair.step(true);
        }
        let stats = pair.whep.stats();
        // Frame 0, then 25 to 30; 1 to 24 skipped.
        assert_eq!(stats.frames_sent, 7, "{stats:?}");
        assert_eq!(stats.frames_skipped, 24, "{stats:?}");
        assert_eq!(pair.frames, 7);
    }

    #[test]
    fn garbage_datagrams_are_dropped_and_counted() {
        let mut whep = server();
        let now = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(!whep.receive(now, from, &[]));
        assert!(!whep.receive(now, from, &[0xff; 1200]));
        assert!(!whep.receive(now, from, &[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]));
        assert_eq!(whep.stats().dropped_datagrams, 3);
        let mut out = Vec::new();
        whep.poll(now, &mut out);
        assert!(out.is_empty());
    }
}
