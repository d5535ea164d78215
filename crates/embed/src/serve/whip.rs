//! WHIP ingest: browsers and OBS publish over WebRTC into the same streams
//! RTMP publishers feed.
//!
//! ```text
//! POST /whip (Bearer KEY) ─▶ Ingest::offer: key → name, Whip session, Handler::admit (the claim)
//! UDP (shared with WHEP) ─▶ Whip core ─WhipMedia─▶ feed thread "serve/whip/<name>":
//!     H.264 as received, Opus ─decode─▶ AAC ─▶ interleave ─▶ FLV tags ─▶ Publisher (as RTMP's)
//! ```
//! The publish goes through the very [`Publisher`] an RTMP publish gets
//! (FLV tags in), so HLS, renditions, relays and WHEP viewers see no
//! difference. The socket driver (`webrtc.rs`) hands each datagram to
//! [`Ingest::receive`] before the WHEP viewers, and calls [`Ingest::poll`];
//! media goes to each publish's thread through a bounded drop-oldest link,
//! so transcoding audio never holds the socket up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_codec::aac::{AacConfig, AacEncoder};
use pstream_codec::opus::OpusDecoder;
use pstream_core::{
    link_bytes, AudioBlock, Codec, EncodedUnit, LinkReceiver, LinkSender, Recv, Weigh,
};
use pstream_mux::flv::{AudioInfo, FlvMuxer, FlvTag, StreamInfo, TagKind, VideoInfo};
use pstream_mux::Interleaver;
use pstream_transport::http::WhipAnswer;
use pstream_transport::rtmp::{mask_key, IngestSink, MediaKind, MediaMessage};
use pstream_webrtc::whip::{Whip, WhipError, WhipEvent, WhipMedia, WhipStats};
use pstream_webrtc::Transmit;

use super::publisher::{Handler, Publisher, Refusal};

/// Media waiting for a publish's thread: about 4 s of 30 fps video and
/// 50 Opus packets a second.
const FEED_UNITS: usize = 320;
/// Bytes waiting for a publish's thread (a hostile publisher's huge frames
/// cannot fill memory).
const FEED_BYTES: usize = 16 << 20;
/// AAC bitrate of a WHIP publish's audio.
const AAC_BPS: u32 = 128_000;
/// Longest a unit of one track waits for the other before FLV muxing.
const INTERLEAVE_WAIT: Duration = Duration::from_millis(500);

/// A [`WhipMedia`] weighs its bytes.
struct Item(WhipMedia);

impl Weigh for Item {
    fn weight(&self) -> usize {
        self.0.data.len()
    }
}

/// The WHIP publishers of a server: the sans-IO sessions, and per session
/// the link into its publish's thread.
pub(crate) struct Ingest {
    whip: Mutex<Whip>,
    handler: Arc<Handler>,
    feeds: Mutex<HashMap<String, LinkSender<Item>>>,
    /// Opus packets that did not decode or encode, over all publishes.
    pub(crate) audio_errors: Arc<AtomicU64>,
}

impl Ingest {
    pub(crate) fn new(whip: Whip, handler: Arc<Handler>) -> Self {
        Self {
            whip: Mutex::new(whip),
            handler,
            feeds: Mutex::new(HashMap::new()),
            audio_errors: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Whip> {
        // A panic while holding the lock leaves the sessions usable (each
        // call finishes or drops its session).
        self.whip.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn feeds(&self) -> MutexGuard<'_, HashMap<String, LinkSender<Item>>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts so far.
    pub(crate) fn stats(&self) -> WhipStats {
        self.lock().stats()
    }

    /// A publisher's offer with its bearer `token` (the publish key).
    pub(crate) fn offer(&self, token: &str, sdp: &str, peer: SocketAddr) -> WhipAnswer {
        let Some(name) = self.handler.name_of(token).map(str::to_string) else {
            tracing::warn!(
                "{peer}: WHIP publish refused: key {} not allowed",
                mask_key(token)
            );
            return WhipAnswer::Unauthorized;
        };
        // The offer first: a malformed one claims no stream.
        let offered = self.lock().offer(Instant::now(), sdp);
        let (id, answer, tracks) = match offered {
            Ok(o) => o,
            Err(e @ WhipError::BadOffer(_)) => return WhipAnswer::BadOffer(e.to_string()),
            Err(e @ WhipError::NoCodec) => return WhipAnswer::NoCodec(e.to_string()),
            Err(e) => return WhipAnswer::Busy(e.to_string()),
        };
        let refused = |answer: WhipAnswer| {
            self.lock().withdraw(&id);
            answer
        };
        let publisher = match self.handler.admit(token, peer) {
            Ok(p) => p,
            Err(Refusal::Key) => return refused(WhipAnswer::Unauthorized),
            Err(Refusal::Busy) => {
                return refused(WhipAnswer::Conflict(format!(
                    "stream {name} is already being published"
                )))
            }
            Err(Refusal::TooMany) => {
                return refused(WhipAnswer::Busy("too many streams live".into()))
            }
            Err(Refusal::Failed(e)) => return refused(WhipAnswer::Busy(e)),
        };
        let (tx, rx) = link_bytes(FEED_UNITS, FEED_BYTES);
        let audio_errors = self.audio_errors.clone();
        let thread_name = format!("serve/whip/{name}");
        let feed_name = name.clone();
        let spawned = crate::run::spawn(&thread_name, move || {
            feed(publisher, rx, tracks.audio, &feed_name, &audio_errors);
        });
        if let Err(e) = spawned {
            tracing::error!("{name}: {e}");
            return refused(WhipAnswer::Busy(e.to_string()));
        }
        self.feeds().insert(id.clone(), tx);
        tracing::info!(
            "{name}: WHIP publish from {peer} (H.264{})",
            if tracks.audio {
                " + Opus as AAC"
            } else {
                ", no audio"
            }
        );
        WhipAnswer::Created { id, sdp: answer }
    }

    /// The publisher's DELETE: its session and its publish end.
    pub(crate) fn close(&self, id: &str) -> bool {
        let closed = self.lock().close(id);
        // Dropping the link ends the publish's thread, and so the publish.
        self.feeds().remove(id);
        closed
    }

    /// Ends every publish (the server is stopping).
    pub(crate) fn close_all(&self) {
        let ids: Vec<String> = self.feeds().keys().cloned().collect();
        for id in ids {
            self.close(&id);
        }
    }

    /// A datagram on the WebRTC port: true if a publisher's session took it.
    pub(crate) fn receive(&self, now: Instant, from: SocketAddr, data: &[u8]) -> bool {
        self.lock().receive(now, from, data)
    }

    /// The sessions' time and datagrams (into `out`); their media to each
    /// publish's thread. When to call again at the latest.
    pub(crate) fn poll(&self, now: Instant, out: &mut Vec<Transmit>) -> Instant {
        let mut events = Vec::new();
        let next = {
            let mut whip = self.lock();
            let next = whip.poll(now, out);
            while let Some(e) = whip.poll_event() {
                events.push(e);
            }
            next
        };
        let mut gone = Vec::new();
        {
            let mut feeds = self.feeds();
            for e in events {
                match e {
                    WhipEvent::Media { id, media } => {
                        let ended = feeds
                            .get(&id)
                            .is_some_and(|tx| tx.send(Item(media)).is_err());
                        if ended {
                            // The publish's thread ended (a stage failed):
                            // the session goes too.
                            feeds.remove(&id);
                            gone.push(id);
                        }
                    }
                    WhipEvent::Closed { id } => {
                        feeds.remove(&id);
                    }
                    _ => {}
                }
            }
        }
        for id in gone {
            self.lock().close(&id);
        }
        next
    }
}

/// One WHIP publish's thread: media in, FLV tags into its [`Publisher`],
/// until the session's link closes or the publisher refuses.
fn feed(
    mut publisher: Publisher,
    rx: LinkReceiver<Item>,
    audio: bool,
    name: &str,
    audio_errors: &AtomicU64,
) {
    let mut convert = match Convert::new(audio) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{name}: WHIP audio: {e}; publishing video only");
            match Convert::new(false) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{name}: WHIP: {e}");
                    return;
                }
            }
        }
    };
    let mut tags = Vec::new();
    loop {
        let end = match rx.recv_timeout(Duration::from_millis(200)) {
            Recv::Item(Item(m)) => {
                if !convert.push(m) {
                    audio_errors.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Recv::Timeout => false,
            Recv::Closed => true,
        };
        convert.tags(end, &mut tags);
        for tag in tags.drain(..) {
            let msg = MediaMessage {
                kind: match tag.kind {
                    TagKind::Audio => MediaKind::Audio,
                    TagKind::Video => MediaKind::Video,
                    TagKind::Script => MediaKind::Data,
                },
                timestamp_ms: tag.timestamp_ms,
                data: tag.data,
            };
            if let Err(e) = publisher.media(msg) {
                tracing::warn!("{name}: WHIP publish ends: {e}");
                return;
            }
        }
        if end {
            return;
        }
    }
}

/// A WHIP publish's media as RTMP would carry it: H.264 as received, Opus
/// decoded and encoded as AAC, in capture order, as FLV tags.
struct Convert {
    audio: Option<(OpusDecoder, AacEncoder)>,
    interleave: Interleaver,
    flv: FlvMuxer,
}

impl Convert {
    fn new(audio: bool) -> Result<Self, pstream_codec::CodecError> {
        let audio = if audio {
            let decoder = OpusDecoder::new(2)?;
            let encoder = AacEncoder::new(AacConfig {
                sample_rate: 48_000,
                channels: 2,
                bitrate_bps: AAC_BPS,
            })?;
            Some((decoder, encoder))
        } else {
            None
        };
        let info = StreamInfo {
            // onMetaData only informs (players read the SPS): the size is
            // not known before the first key frame.
            video: Some(VideoInfo {
                width: 0,
                height: 0,
                fps: 30.0,
                bitrate_kbps: 0.0,
            }),
            audio: audio.as_ref().map(|(_, enc)| AudioInfo {
                sample_rate: 48_000,
                channels: 2,
                bitrate_kbps: f64::from(AAC_BPS) / 1000.0,
                config: enc.audio_specific_config(),
            }),
            encoder: "pstream WHIP ingest".into(),
        };
        Ok(Self {
            interleave: Interleaver::new(true, audio.is_some(), INTERLEAVE_WAIT),
            audio,
            flv: FlvMuxer::new(info),
        })
    }

    /// Takes one piece of media; false if it was audio that would not
    /// decode or encode (dropped).
    fn push(&mut self, m: WhipMedia) -> bool {
        if m.video {
            self.interleave.push(EncodedUnit {
                codec: Codec::H264,
                keyframe: m.keyframe,
                pts: m.pts,
                dts: None,
                capture: m.capture,
                data: Bytes::copy_from_slice(&m.data),
            });
            return true;
        }
        let Some((decoder, encoder)) = &mut self.audio else {
            return true;
        };
        let Ok(samples) = decoder.decode(Some(&m.data)) else {
            return false;
        };
        let block = AudioBlock {
            sample_rate: 48_000,
            channels: 2,
            samples,
            capture: m.capture,
            pts: m.pts,
        };
        match encoder.encode(&block) {
            Ok(units) => {
                for u in units {
                    self.interleave.push(u);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The FLV tags of every unit the interleaver releases (all of them at
    /// the end); units the muxer cannot take are dropped.
    fn tags(&mut self, end: bool, out: &mut Vec<FlvTag>) {
        let units = if end {
            self.interleave.drain()
        } else {
            std::iter::from_fn(|| self.interleave.pop()).collect()
        };
        for u in units {
            if let Err(e) = self.flv.push(&u, out) {
                tracing::debug!("WHIP: {e} (dropped)");
            }
        }
    }
}
