//! WHIP ingest (RFC 9725), sans-IO: publishers sending H.264 (and Opus)
//! over str0m, on the same UDP port as the WHEP viewers.
//!
//! [`Whip`] holds every publisher session of a server. Like [`crate::Whep`]
//! it never touches a socket or a clock: the driver passes each datagram to
//! [`Whip::receive`] first (a datagram no publisher accepts is left for the
//! viewers), calls [`Whip::poll`] for the time, the datagrams to send and
//! the media received, and feeds that media into the server's stream.
//!
//! - The offer must send H.264 in packetization mode 1 (a video line the
//!   publisher sends on); Opus audio is taken when offered.
//! - Until the first key frame arrives, and after any gap in the video
//!   (a lost packet str0m could not repair with NACK), a PLI asks the
//!   publisher for one, at most every [`PLI_INTERVAL`].
//! - A session that receives nothing for [`WhipConfig::idle_timeout`], or
//!   once connected no media for [`WhipConfig::media_timeout`], is closed
//!   and reported ([`WhipEvent::Closed`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::ids::SessionIds;
use crate::{IdSeed, Transmit, MAX_OFFER_BYTES};

/// Least time between two keyframe requests to one publisher.
pub const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// Most media events held for the driver; past it the oldest are dropped
/// (the driver takes them after every poll, so this only bounds a bug).
const MAX_EVENTS: usize = 4096;

/// Settings of a [`Whip`] server.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// The address put in each answer's host candidate (the WebRTC port).
    pub advertised: SocketAddr,
    /// Publisher sessions open at once.
    pub max_sessions: usize,
    /// A session that receives no datagram for this long is closed.
    pub idle_timeout: Duration,
    /// A connected session that receives no media for this long is closed
    /// (the publisher stopped sending but still answers consent checks).
    pub media_timeout: Duration,
    /// Ask for a key frame when the last is this old: browsers send one
    /// only when asked, and HLS segments and new WHEP viewers start at one.
    pub keyframe_interval: Duration,
}

impl WhipConfig {
    /// Defaults around `advertised`: 32 sessions, 15 s idle, 5 s without
    /// media, a key frame every 2 s.
    pub fn new(advertised: SocketAddr) -> Self {
        Self {
            advertised,
            max_sessions: 32,
            idle_timeout: Duration::from_secs(15),
            media_timeout: Duration::from_secs(5),
            keyframe_interval: Duration::from_secs(2),
        }
    }
}

/// Why an offer got no session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhipError {
    /// The body is not an SDP offer str0m can parse or accept.
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// The offer sends no H.264 video in packetization mode 1.
    #[error("the offer sends no H.264 video in packetization mode 1")]
    NoCodec,
    /// Too many publisher sessions.
    #[error("too many WHIP sessions ({open} open, limit {limit})")]
    Busy {
        /// Sessions open.
        open: usize,
        /// The limit.
        limit: usize,
    },
}

/// What the server counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhipStats {
    /// Sessions open now.
    pub sessions: usize,
    /// Offers accepted.
    pub offers: u64,
    /// Offers refused (malformed, no codec, busy).
    pub refused: u64,
    /// Sessions that reached DTLS-connected, ever.
    pub connected: u64,
    /// Sessions closed for silence.
    pub timed_out: u64,
    /// Datagrams a publisher session took but could not use.
    pub bad_datagrams: u64,
    /// H.264 access units received.
    pub video_frames: u64,
    /// Opus packets received.
    pub audio_packets: u64,
    /// Keyframe requests (PLI) sent.
    pub plis: u64,
    /// Gaps in the received video (lost packets NACK did not repair).
    pub video_gaps: u64,
}

/// The tracks an accepted offer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhipTracks {
    /// Opus audio comes too (the video is always H.264).
    pub audio: bool,
}

/// One piece of media a publisher sent.
#[derive(Debug, Clone)]
pub struct WhipMedia {
    /// Video (an H.264 access unit, Annex B) or audio (one Opus packet).
    pub video: bool,
    /// The bytes.
    pub data: Arc<[u8]>,
    /// An IDR access unit (video only).
    pub keyframe: bool,
    /// Media time since this track's first packet, from its RTP timestamps.
    pub pts: Duration,
    /// When it was captured, as far as the server can tell: the arrival of
    /// the track's first packet plus `pts` (both tracks on the server's clock).
    pub capture: Instant,
}

/// What happened to the publishers, for the driver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WhipEvent {
    /// Media from session `id`.
    Media {
        /// The session.
        id: String,
        /// What came.
        media: WhipMedia,
    },
    /// Session `id` ended (timed out, ICE gone, or an error), not by
    /// [`Whip::close`].
    Closed {
        /// The session.
        id: String,
    },
}

/// Where a track's time starts: its first RTP time and when it arrived.
#[derive(Debug, Clone, Copy)]
struct Origin {
    time: MediaTime,
    arrival: Instant,
}

/// A publisher session.
struct Session {
    rtc: Rtc,
    video: Option<Mid>,
    connected: bool,
    /// The video needs a key frame: none yet, or a gap since the last.
    need_key: bool,
    last_pli: Option<Instant>,
    /// When the last key frame arrived.
    last_key: Option<Instant>,
    last_input: Instant,
    last_media: Instant,
    video_origin: Option<Origin>,
    audio_origin: Option<Origin>,
}

/// Every WHIP publisher of a server; see the module docs.
pub struct Whip {
    config: WhipConfig,
    sessions: HashMap<String, Session>,
    stats: WhipStats,
    ids: SessionIds,
    events: VecDeque<WhipEvent>,
}

impl Whip {
    /// No sessions yet; `seed` makes session ids unguessable (give it OS randomness).
    pub fn new(config: WhipConfig, seed: IdSeed) -> Self {
        Self {
            config,
            sessions: HashMap::new(),
            stats: WhipStats::default(),
            ids: SessionIds::new(seed),
            events: VecDeque::new(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> WhipStats {
        WhipStats {
            sessions: self.sessions.len(),
            ..self.stats.clone()
        }
    }

    /// Answers a publisher's SDP offer: the session id (for its resource
    /// URL), the SDP answer and the tracks it sends.
    pub fn offer(
        &mut self,
        now: Instant,
        sdp: &str,
    ) -> Result<(String, String, WhipTracks), WhipError> {
        let result = self.try_offer(now, sdp);
        match &result {
            Ok(_) => self.stats.offers += 1,
            Err(_) => self.stats.refused += 1,
        }
        result
    }

    fn try_offer(
        &mut self,
        now: Instant,
        sdp: &str,
    ) -> Result<(String, String, WhipTracks), WhipError> {
        if sdp.len() > MAX_OFFER_BYTES {
            return Err(WhipError::BadOffer(format!(
                "{} bytes, more than {MAX_OFFER_BYTES}",
                sdp.len()
            )));
        }
        if self.sessions.len() >= self.config.max_sessions {
            return Err(WhipError::Busy {
                open: self.sessions.len(),
                limit: self.config.max_sessions,
            });
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WhipError::BadOffer(e.to_string()))?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_ice_lite(true)
            .build(now);
        let candidate = Candidate::host(self.config.advertised, "udp")
            .map_err(|e| WhipError::BadOffer(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let mids: Vec<Mid> = offer.media_lines.iter().map(|m| m.mid()).collect();
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhipError::BadOffer(e.to_string()))?;
        // Lines the server receives on (the publisher sends): the first
        // video one with H.264 in packetization mode 1, and any audio one
        // with Opus.
        let receiving = |rtc: &Rtc, mid: &Mid, kind: MediaKind| {
            rtc.media(*mid).is_some_and(|m| {
                m.kind() == kind
                    && matches!(m.direction(), Direction::RecvOnly | Direction::SendRecv)
            })
        };
        let has = |rtc: &mut Rtc, mid: Mid, codec: Codec| {
            rtc.writer(mid).is_some_and(|w| {
                w.payload_params().any(|p| {
                    let spec = p.spec();
                    spec.codec == codec
                        && (codec != Codec::H264 || spec.format.packetization_mode == Some(1))
                })
            })
        };
        let mut video = None;
        let mut audio = false;
        for mid in mids {
            if video.is_none()
                && receiving(&rtc, &mid, MediaKind::Video)
                && has(&mut rtc, mid, Codec::H264)
            {
                video = Some(mid);
            }
            if receiving(&rtc, &mid, MediaKind::Audio) && has(&mut rtc, mid, Codec::Opus) {
                audio = true;
            }
        }
        let Some(video) = video else {
            return Err(WhipError::NoCodec);
        };
        let mut session = Session {
            rtc,
            video: Some(video),
            connected: false,
            need_key: true,
            last_pli: None,
            last_key: None,
            last_input: now,
            last_media: now,
            video_origin: None,
            audio_origin: None,
        };
        let id = self.ids.next();
        // The session's first events (media added) are taken now; nothing
        // is sent before the publisher's first STUN check.
        let mut out = Vec::new();
        session.drain(&id, &mut out, &mut self.stats, &mut self.events);
        tracing::debug!("whip: session {id} offered (audio {audio})");
        self.sessions.insert(id.clone(), session);
        Ok((id, answer.to_sdp_string(), WhipTracks { audio }))
    }

    /// Takes back the session just offered for `id`, which the server
    /// refused after all (its stream is busy): counted as refused.
    pub fn withdraw(&mut self, id: &str) -> bool {
        let gone = self.sessions.remove(id).is_some();
        if gone {
            self.stats.offers = self.stats.offers.saturating_sub(1);
            self.stats.refused += 1;
        }
        gone
    }

    /// Ends session `id` (the publisher's DELETE); false if there is none.
    pub fn close(&mut self, id: &str) -> bool {
        self.sessions.remove(id).is_some()
    }

    /// One datagram from `source` on the WebRTC port: true if a publisher
    /// session took it. False leaves it for others (the WHEP viewers), and
    /// counts nothing.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> bool {
        if self.sessions.is_empty() {
            return false;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.config.advertised, data) else {
            return false;
        };
        let input = Input::Receive(now, receive);
        let Some(session) = self.sessions.values_mut().find(|s| s.rtc.accepts(&input)) else {
            return false;
        };
        session.last_input = now;
        if let Err(e) = session.rtc.handle_input(input) {
            tracing::debug!("whip: input refused: {e}");
            self.stats.bad_datagrams += 1;
        }
        true
    }

    /// Feeds every session the time, asks for key frames, closes ended and
    /// silent sessions; pushes the datagrams to send into `out` and returns
    /// when to call again at the latest. Media and closes wait in
    /// [`Whip::poll_event`].
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Instant {
        let mut next = now + Duration::from_millis(100);
        let (idle, quiet) = (self.config.idle_timeout, self.config.media_timeout);
        let key_interval = self.config.keyframe_interval;
        let stats = &mut self.stats;
        let events = &mut self.events;
        self.sessions.retain(|id, s| {
            let silent = now.saturating_duration_since(s.last_input) >= idle
                || (s.connected && now.saturating_duration_since(s.last_media) >= quiet);
            if silent {
                tracing::debug!("whip: session {id} timed out");
                stats.timed_out += 1;
                events.push_back(WhipEvent::Closed { id: id.clone() });
                return false;
            }
            if let Err(e) = s.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!("whip: session {id}: {e}");
                events.push_back(WhipEvent::Closed { id: id.clone() });
                return false;
            }
            if s.last_key
                .is_some_and(|t| now.saturating_duration_since(t) >= key_interval)
            {
                s.need_key = true;
            }
            s.request_key(now, stats);
            match s.drain(id, out, stats, events) {
                Some(t) if s.rtc.is_alive() => {
                    next = next.min(t);
                    true
                }
                _ => {
                    events.push_back(WhipEvent::Closed { id: id.clone() });
                    false
                }
            }
        });
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
        next
    }

    /// The next media or close, in arrival order.
    pub fn poll_event(&mut self) -> Option<WhipEvent> {
        self.events.pop_front()
    }
}

impl Session {
    /// A PLI when the video needs a key frame, at most every [`PLI_INTERVAL`].
    fn request_key(&mut self, now: Instant, stats: &mut WhipStats) {
        let (true, true, Some(mid)) = (self.connected, self.need_key, self.video) else {
            return;
        };
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL)
        {
            return;
        }
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        // Fails until the first video packet made a receive stream: tried
        // again at the next poll.
        if writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
        {
            self.last_pli = Some(now);
            stats.plis += 1;
        }
    }

    /// Takes str0m's output until it asks for time: datagrams into `out`,
    /// media into `events`. The next timeout, or None when the session ended.
    fn drain(
        &mut self,
        id: &str,
        out: &mut Vec<Transmit>,
        stats: &mut WhipStats,
        events: &mut VecDeque<WhipEvent>,
    ) -> Option<Instant> {
        // Bounded: str0m yields a timeout once it has nothing else.
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => out.push(Transmit {
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.last_media = self.last_input;
                        stats.connected += 1;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return None;
                    }
                    Event::MediaData(data) => {
                        let video = Some(data.mid) == self.video;
                        let codec = data.params.spec().codec;
                        if video && codec == Codec::H264 {
                            stats.video_frames += 1;
                            if !data.contiguous {
                                stats.video_gaps += 1;
                                self.need_key = true;
                            }
                            let keyframe = data.is_keyframe();
                            if keyframe {
                                self.need_key = false;
                                self.last_key = Some(data.network_time);
                            }
                            let origin = self.video_origin.get_or_insert(Origin {
                                time: data.time,
                                arrival: data.network_time,
                            });
                            events.push_back(media_event(id, true, keyframe, origin, &data));
                        } else if codec == Codec::Opus {
                            stats.audio_packets += 1;
                            let origin = self.audio_origin.get_or_insert(Origin {
                                time: data.time,
                                arrival: data.network_time,
                            });
                            events.push_back(media_event(id, false, false, origin, &data));
                        }
                        self.last_media = data.network_time;
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("whip: session {id}: {e}");
                    return None;
                }
            }
        }
        self.rtc.is_alive().then_some(self.last_input)
    }
}

/// A media event from `data`, timed from its track's `origin`.
fn media_event(
    id: &str,
    video: bool,
    keyframe: bool,
    origin: &Origin,
    data: &str0m::media::MediaData,
) -> WhipEvent {
    let pts = if data.time.frequency() == origin.time.frequency() {
        let ticks = data.time.numer().saturating_sub(origin.time.numer());
        Duration::from_secs_f64(ticks as f64 / f64::from(data.time.denom().max(1)))
    } else {
        Duration::ZERO
    };
    WhipEvent::Media {
        id: id.to_string(),
        media: WhipMedia {
            video,
            data: data.data.clone(),
            keyframe,
            pts,
            capture: origin.arrival + pts,
        },
    }
}

/// The fuzzing harness for [`Whip`], built under `--cfg fuzzing`
/// (cargo-fuzz's `whep` target runs it beside the WHEP one) and for the
/// unit tests.
#[cfg(any(fuzzing, test))]
pub mod fuzzing {
    use super::*;

    /// A publisher's offer shaped like a browser's, with `lines` (fuzzed)
    /// as its media attributes, so offers get past the first parse.
    fn offer(lines: &str) -> String {
        let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
             a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\n{lines}",
            fp.join(":")
        )
    }

    /// Splits `data` into steps (a kind byte, a length byte, that many
    /// bytes): offers raw or browser-shaped, closes of real or made-up
    /// sessions, datagrams from three peers, and time steps with polls and
    /// events drained. After every step: sessions within the cap, offers
    /// and refusals adding up, counters never falling, no empty datagram,
    /// no wake-up in the past, events bounded.
    pub fn whip(data: &[u8]) {
        let mut config = WhipConfig::new(SocketAddr::from(([127, 0, 0, 1], 8189)));
        config.max_sessions = 3;
        config.idle_timeout = Duration::from_secs(2);
        config.media_timeout = Duration::from_secs(1);
        let cap = config.max_sessions;
        let mut whip = Whip::new(config, [11; 32]);
        let peers: [SocketAddr; 3] = [
            SocketAddr::from(([127, 0, 0, 1], 50000)),
            SocketAddr::from(([127, 0, 0, 2], 50001)),
            SocketAddr::from(([10, 0, 0, 1], 9)),
        ];
        let mut now = Instant::now();
        let mut ids: Vec<String> = Vec::new();
        let mut offers = 0u64;
        let mut out: Vec<Transmit> = Vec::new();
        let mut last = whip.stats();
        let mut rest = data;
        while let [kind, len, tail @ ..] = rest {
            let n = usize::from(*len).min(tail.len());
            let (body, next) = tail.split_at(n);
            rest = next;
            let pick = usize::from(*len);
            match kind % 6 {
                0 | 1 => {
                    let text = String::from_utf8_lossy(body);
                    let sdp = if kind % 6 == 0 {
                        offer(&text)
                    } else {
                        text.into_owned()
                    };
                    offers += 1;
                    if let Ok((id, answer, _)) = whip.offer(now, &sdp) {
                        assert!(!answer.is_empty());
                        ids.push(id);
                    }
                }
                2 => match ids.get(pick % (ids.len() + 1)) {
                    Some(id) => {
                        let id = id.clone();
                        whip.close(&id);
                    }
                    None => {
                        whip.close(&String::from_utf8_lossy(body));
                    }
                },
                3 | 4 => {
                    whip.receive(now, peers[pick % peers.len()], body);
                }
                _ => {
                    now += Duration::from_millis(u64::from(*len) * 20);
                    out.clear();
                    let wake = whip.poll(now, &mut out);
                    assert!(wake >= now, "asked to wake in the past");
                    assert!(out.iter().all(|t| !t.data.is_empty()), "an empty datagram");
                    let mut events = 0;
                    while whip.poll_event().is_some() {
                        events += 1;
                    }
                    assert!(events <= MAX_EVENTS + cap, "{events} events");
                }
            }
            let s = whip.stats();
            assert!(s.sessions <= cap, "{} sessions over {cap}", s.sessions);
            assert_eq!(s.offers + s.refused, offers, "offers counted");
            assert!(s.connected >= last.connected);
            assert!(s.timed_out >= last.timed_out);
            assert!(s.bad_datagrams >= last.bad_datagrams);
            assert!(s.video_frames >= last.video_frames);
            last = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Whip {
        Whip::new(
            WhipConfig::new("127.0.0.1:8189".parse().expect("addr")),
            [0x77; 32],
        )
    }

    /// A minimal browser-like offer: one send-only video line with `rtpmap`.
    fn offer_sdp(direction: &str, rtpmap: &str) -> String {
        let fp: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
             a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a={direction}\r\na=rtcp-mux\r\n{rtpmap}",
            fp.join(":")
        )
    }

    const H264: &str = "a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn offers_must_send_h264_in_packetization_mode_1() {
        let mut whip = server();
        let now = Instant::now();
        for bad in ["", "hello", "v=0\r\n"] {
            assert!(
                matches!(whip.offer(now, bad), Err(WhipError::BadOffer(_))),
                "{bad:?}"
            );
        }
        let vp8 = offer_sdp("sendonly", "a=rtpmap:96 VP8/90000\r\n");
        assert!(matches!(whip.offer(now, &vp8), Err(WhipError::NoCodec)));
        // A viewer's offer (it only receives) is no publish.
        let recv = offer_sdp("recvonly", H264);
        assert!(matches!(whip.offer(now, &recv), Err(WhipError::NoCodec)));
        let (id, answer, tracks) = whip
            .offer(now, &offer_sdp("sendonly", H264))
            .expect("an H.264 publish");
        assert_eq!(id.len(), 32);
        assert!(!tracks.audio);
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("a=recvonly"), "{answer}");
        assert!(answer.contains("127.0.0.1 8189 typ host"), "{answer}");
        assert_eq!(whip.stats().sessions, 1);
        assert_eq!(whip.stats().refused, 5);
        assert!(whip.close(&id));
        assert!(!whip.close(&id));
        let (id, _, _) = whip
            .offer(now, &offer_sdp("sendonly", H264))
            .expect("an H.264 publish");
        assert!(whip.withdraw(&id));
        assert_eq!((whip.stats().offers, whip.stats().refused), (1, 6));
    }

    #[test]
    fn the_fuzzing_harness_runs_offers_closes_datagrams_and_time() {
        let h264 = b"a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n";
        let mut data = Vec::new();
        for step in 0..12u8 {
            // A good offer, a raw one, a close, a datagram, a time step.
            data.extend_from_slice(&[0, h264.len() as u8]);
            data.extend_from_slice(h264);
            data.extend_from_slice(&[1, 3, b'v', b'=', b'0']);
            data.extend_from_slice(&[2, step, b'x']);
            data.extend_from_slice(&[3, 4, 0, 1, 0, 0]);
            data.extend_from_slice(&[5, 60]);
        }
        fuzzing::whip(&data);
        fuzzing::whip(&[]);
        fuzzing::whip(&[0, 255, 1]);
    }

    #[test]
    fn silent_sessions_are_closed_and_reported() {
        let mut whip = server();
        let now = Instant::now();
        let (id, _, _) = whip
            .offer(now, &offer_sdp("sendonly", H264))
            .expect("offer");
        let mut out = Vec::new();
        whip.poll(now + Duration::from_secs(1), &mut out);
        assert_eq!(whip.stats().sessions, 1);
        whip.poll(now + Duration::from_secs(16), &mut out);
        assert_eq!(whip.stats().sessions, 0);
        assert_eq!(whip.stats().timed_out, 1);
        assert!(matches!(whip.poll_event(), Some(WhipEvent::Closed { id: c }) if c == id));
        // Garbage on the port is none of WHIP's business.
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(!whip.receive(now, from, &[0xff; 100]));
    }

    /// A str0m publisher against a [`Whip`], datagrams in memory, time by hand.
    #[test]
    fn a_str0m_publisher_is_asked_for_a_key_frame_and_its_frames_come_out() {
        let server_addr: SocketAddr = "127.0.0.1:8189".parse().expect("addr");
        let client_addr: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let mut whip = Whip::new(WhipConfig::new(server_addr), [5; 32]);
        let mut now = Instant::now();
        let mut client = Rtc::new(now);
        client.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
        let mut api = client.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let (_, answer, _) = whip.offer(now, &offer.to_sdp_string()).expect("answered");
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer");
        client
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accepted");
        let mut connected = false;
        let mut plis = 0;
        let mut frames = Vec::new();
        let mut at_3s = None;
        let mut closed = false;
        // 3 s of frames, then 6 s of nothing but the client's consent checks.
        for n in 0..900u64 {
            now += Duration::from_millis(10);
            if n == 300 {
                at_3s = Some(whip.stats());
            }
            if connected && n < 300 && n % 3 == 0 {
                // A delta frame until the server asked for a key frame.
                let key = plis > 0 && n % 30 == 0;
                let mut au = Vec::new();
                if key {
                    au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xab]);
                    au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c]);
                }
                au.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
                au.extend(std::iter::repeat_n(n as u8, 2000));
                let writer = client.writer(mid).expect("writer");
                let pt = writer.payload_params().next().expect("a payload type").pt();
                writer
                    .write(pt, now, MediaTime::from_90khz(n * 900), au)
                    .expect("write");
            }
            let _ = client.handle_input(Input::Timeout(now));
            for _ in 0..1000 {
                match client.poll_output().expect("client output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        // Every datagram is the session's, until it is closed.
                        assert!(whip.receive(now, client_addr, &t.contents) || closed);
                    }
                    Output::Event(Event::Connected) => connected = true,
                    Output::Event(Event::KeyframeRequest(_)) => plis += 1,
                    Output::Event(_) => {}
                }
            }
            let mut out = Vec::new();
            whip.poll(now, &mut out);
            for t in out {
                let r = Receive::new(Protocol::Udp, server_addr, client_addr, &t.data)
                    .expect("a datagram str0m made");
                let _ = client.handle_input(Input::Receive(now, r));
            }
            while let Some(e) = whip.poll_event() {
                match e {
                    WhipEvent::Media { media, .. } => frames.push((media.keyframe, media.pts)),
                    WhipEvent::Closed { .. } => closed = true,
                }
            }
        }
        // The media stopped: the session was closed 5 s later, and said so.
        assert!(closed);
        assert_eq!(whip.stats().sessions, 0);
        assert_eq!(whip.stats().timed_out, 1);
        let stats = at_3s.expect("stats at 3 s");
        assert!(connected, "{stats:?}");
        assert!(plis >= 1, "{stats:?}");
        let first_key = frames.iter().position(|f| f.0).expect("a key frame came");
        assert!(frames.len() > first_key + 10, "{frames:?}");
        // Times follow the RTP timestamps (30 ms apart), from the first frame.
        assert_eq!(frames[0].1, Duration::ZERO);
        assert_eq!(frames[1].1, Duration::from_millis(30));
        // Once the key frame came, no more requests.
        assert_eq!(stats.video_gaps, 0, "{stats:?}");
        assert!(stats.plis <= 3, "{stats:?}");
    }
}
