//! The RTMP side of the server: which publishes are accepted (keys, busy
//! keys), and per publish the FLV demuxer, the gate that holds media until
//! both tracks are known, and the links into that stream's stages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_codec::{Rendition, RenditionEncoder, SourceDecoder};
use pstream_core::{link_bytes, BoxError, Codec, EncodedUnit, LinkReceiver, LinkSender, Weigh};
use pstream_mux::{DemuxError, FlvDemuxer, HlsConfig};
use pstream_transport::http::{HlsCatalog, Resource, WhepAnswer, WhipAnswer};
use pstream_transport::rtmp::{
    mask_key, IngestHandler, IngestSink, MediaKind, MediaMessage, PublishRefusal,
};

use super::decode::{picture_queue, DecodeStage, Fanout, Feed};
use super::group::{Groups, StageFn};
use super::hls_dir::HlsDir;
use super::live::{KeyBusy, LiveStreams, PublishClaim, SOURCE};
use super::relay::{RelayOut, RelayTag, Relays, RenditionRelay};
use super::stage::VariantStage;
use super::webrtc::{AacToOpus, Hub};
use super::whip::Ingest;
use crate::run::Stop;

/// Units waiting for the source stage (it only muxes, so this rarely fills).
const SOURCE_QUEUE: usize = 512;
/// Payload bytes waiting for the source stage: over 10 s of a 20 Mbit/s
/// publish; the unit count alone would let 16 MiB messages take 8 GiB.
const SOURCE_QUEUE_BYTES: usize = 32 << 20;
/// Units waiting for the renditions' decode stage: about 1.5 s of 30 fps
/// video plus AAC.
const RENDITION_QUEUE: usize = 120;
/// Payload bytes waiting for the renditions' decode stage: 1.5 s of video
/// far above any publish a rendition is made from.
const RENDITION_QUEUE_BYTES: usize = 16 << 20;
/// Most units held while waiting for both sequence headers.
const GATE_UNITS: usize = 300;
/// Most payload bytes held while waiting for both sequence headers: past
/// it, as past [`GATE_UNITS`], the stages start with the tracks known.
const GATE_BYTES: usize = 16 << 20;

/// The queue from the publisher into a stage: the renditions' decode
/// stage's, or the source's.
fn stage_queue<T: Weigh>(rendition: bool) -> (LinkSender<T>, LinkReceiver<T>) {
    if rendition {
        link_bytes(RENDITION_QUEUE, RENDITION_QUEUE_BYTES)
    } else {
        link_bytes(SOURCE_QUEUE, SOURCE_QUEUE_BYTES)
    }
}

/// Units held until both tracks are known, counted in bytes too.
#[derive(Debug, Default)]
struct Gate {
    units: Vec<EncodedUnit>,
    bytes: usize,
}

impl Gate {
    fn push(&mut self, unit: EncodedUnit) {
        self.bytes += unit.data.len();
        self.units.push(unit);
    }

    /// Holds as much as it may: the stages start with what is known.
    fn full(&self) -> bool {
        self.units.len() >= GATE_UNITS || self.bytes >= GATE_BYTES
    }

    /// The media time it spans.
    fn span(&self) -> Duration {
        match (self.units.first(), self.units.last()) {
            (Some(a), Some(b)) => b.pts.saturating_sub(a.pts),
            _ => Duration::ZERO,
        }
    }

    fn take(&mut self) -> Vec<EncodedUnit> {
        self.bytes = 0;
        std::mem::take(&mut self.units)
    }
}
/// Longest media span held while waiting for the second track's sequence header.
const GATE_SPAN: Duration = Duration::from_secs(2);

/// What the HTTP server serves from: the live streams, and the WebRTC
/// sessions when WebRTC is on.
pub(crate) struct Catalog {
    pub(crate) live: Arc<LiveStreams>,
    pub(crate) webrtc: Option<Arc<Hub>>,
    /// WHIP publishers, when WebRTC is on.
    pub(crate) whip: Option<Arc<Ingest>>,
}

impl HlsCatalog for Catalog {
    fn master_playlist(&self, key: &str) -> Option<Resource> {
        self.live.master_playlist(key)
    }

    fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource> {
        self.live.media_playlist(key, variant)
    }

    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource> {
        self.live.segment(key, variant, name)
    }

    fn whep_offer(&self, key: &str, sdp: &str) -> WhepAnswer {
        // Only streams the server knows (live, or ended and still listed):
        // an offer for anything else costs no session.
        match &self.webrtc {
            Some(hub) if self.live.master_playlist(key).is_some() => hub.offer(key, None, sdp),
            _ => WhepAnswer::NotFound,
        }
    }

    fn whep_offer_rendition(&self, key: &str, rendition: &str, sdp: &str) -> WhepAnswer {
        if rendition == SOURCE {
            return self.whep_offer(key, sdp);
        }
        match &self.webrtc {
            Some(hub) if self.live.media_playlist(key, rendition).is_some() => {
                hub.offer(key, Some(rendition), sdp)
            }
            _ => WhepAnswer::NotFound,
        }
    }

    fn whep_delete(&self, key: &str, id: &str) -> bool {
        self.webrtc.as_ref().is_some_and(|hub| hub.close(key, id))
    }

    fn whip_offer(&self, token: &str, sdp: &str, peer: SocketAddr) -> WhipAnswer {
        match &self.whip {
            Some(ingest) => ingest.offer(token, sdp, peer),
            None => WhipAnswer::NotFound,
        }
    }

    fn whip_delete(&self, id: &str) -> bool {
        self.whip.as_ref().is_some_and(|i| i.close(id))
    }
}

/// Decides on publishes and builds each publisher's pipeline.
pub(crate) struct Handler {
    pub(crate) live: Arc<LiveStreams>,
    /// Keys allowed to publish, each with its stream's public name; `None`:
    /// any key, named by itself.
    pub(crate) keys: Option<HashMap<String, String>>,
    /// Publishes refused because as many streams as allowed were live.
    pub(crate) refused_streams: Arc<AtomicU64>,
    pub(crate) renditions: Vec<Rendition>,
    /// (name, nominal bits per second) of the source and each rendition.
    pub(crate) variants: Vec<(String, u64)>,
    pub(crate) hls: HlsConfig,
    pub(crate) hls_dir: Option<HlsDir>,
    pub(crate) unknown_codecs: Arc<AtomicU64>,
    /// Where each publish's stages run.
    pub(crate) groups: Arc<Groups>,
    /// Where streams are relayed.
    pub(crate) relays: Arc<Relays>,
    /// WebRTC viewers, when WebRTC is on.
    pub(crate) webrtc: Option<Arc<Hub>>,
}

/// Why a publish was refused (RTMP answers each with a status, WHIP with
/// an HTTP status).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The key is not allowed.
    Key,
    /// The stream is already being published.
    Busy,
    /// As many streams as allowed are live.
    TooMany,
    /// The stream could not be started.
    Failed(String),
}

impl IngestHandler for Handler {
    fn publish(
        &self,
        _app: &str,
        key: &str,
        peer: SocketAddr,
    ) -> Result<Box<dyn IngestSink>, PublishRefusal> {
        let refuse = |description: &str| PublishRefusal {
            code: "NetStream.Publish.BadName".into(),
            description: description.into(),
        };
        match self.admit(key, peer) {
            Ok(p) => Ok(Box::new(p)),
            Err(Refusal::Key) => Err(refuse("stream key not allowed")),
            Err(Refusal::TooMany) => Err(refuse("too many streams live")),
            Err(Refusal::Busy) => Err(refuse("stream key already publishing")),
            Err(Refusal::Failed(e)) => Err(PublishRefusal {
                code: "NetStream.Publish.Failed".into(),
                description: e,
            }),
        }
    }
}

impl Handler {
    /// The public name of publish key `key`, if it may publish.
    pub(crate) fn name_of<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        match &self.keys {
            None => pstream_transport::rtmp::server::is_safe_name(key).then_some(key),
            Some(keys) => keys.get(key).map(String::as_str),
        }
    }

    /// Admits a publish of `key` from `peer` (RTMP or WHIP): the key
    /// checked, the stream claimed, its publisher ready for media.
    pub(crate) fn admit(&self, key: &str, peer: SocketAddr) -> Result<Publisher, Refusal> {
        // Logs name a stream by its public name and never show a key.
        let name = match &self.keys {
            None => key,
            Some(keys) => match keys.get(key) {
                Some(name) => name.as_str(),
                None => {
                    tracing::warn!(
                        "{peer}: publish refused: key {} not in --keys",
                        mask_key(key)
                    );
                    return Err(Refusal::Key);
                }
            },
        };
        let claim = match self.live.begin(name, &self.variants, &self.hls) {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(KeyBusy::TooManyStreams { max })) => {
                self.refused_streams.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "{peer}: publish of a new stream refused: {max} streams are live, the --max-streams limit"
                );
                return Err(Refusal::TooMany);
            }
            Ok(Err(_busy)) => {
                tracing::warn!("{peer}: publish refused: {name} is already publishing");
                return Err(Refusal::Busy);
            }
            Err(e) => {
                tracing::error!("{peer}: {name}: {e}");
                return Err(Refusal::Failed(e.to_string()));
            }
        };
        tracing::info!(
            "{name}: publishing from {peer} (session {})",
            claim.session()
        );
        Ok(Publisher {
            // The source's relays start with the publish: every tag as it comes.
            relay: self.relays.open(name, None),
            relays: self.relays.clone(),
            key: name.to_string(),
            claim,
            demux: FlvDemuxer::new(),
            gate: Gate::default(),
            outs: None,
            group_stop: None,
            renditions: self.renditions.clone(),
            hls_dir: self.hls_dir.clone(),
            unknown_codecs: self.unknown_codecs.clone(),
            groups: self.groups.clone(),
            webrtc: self.webrtc.clone(),
            opus: None,
        })
    }
}

/// One publish: demuxes tags and feeds the stages.
pub(crate) struct Publisher {
    /// The stream's public name (never its publish key).
    key: String,
    /// This publish session's hold on the key.
    claim: Arc<PublishClaim>,
    demux: FlvDemuxer,
    /// Units held until both tracks are known.
    gate: Gate,
    /// The queues into the source stage and the renditions' decode stage, once started.
    outs: Option<Vec<LinkSender<Feed>>>,
    /// The stop flag of this publish's stage group, set once one failed.
    group_stop: Option<Stop>,
    renditions: Vec<Rendition>,
    hls_dir: Option<HlsDir>,
    unknown_codecs: Arc<AtomicU64>,
    groups: Arc<Groups>,
    /// The source's relays, fed the publisher's tags as received.
    relay: Option<RelayOut>,
    /// Where the renditions' relays are found when the stages start.
    relays: Arc<Relays>,
    webrtc: Option<Arc<Hub>>,
    /// The AAC turned into Opus, while the stream has WebRTC viewers.
    opus: Option<AacToOpus>,
}

impl Publisher {
    /// Whether the streams are known well enough to start muxing.
    fn gate_open(&self) -> bool {
        let (video, audio) = (
            self.demux.has_video_config(),
            self.demux.audio_config().is_some(),
        );
        if video && audio {
            return true;
        }
        (video || audio) && (self.gate.span() >= GATE_SPAN || self.gate.full())
    }

    /// Starts the source and rendition stages, as one group, with the
    /// streams now known: the source stage fed by the publisher, and for
    /// the renditions one decode stage fed by the publisher, feeding each
    /// rendition's stage its pictures. Stage names,
    /// `serve/<key>/<session>/<variant>` (and `.../decode`), tell sessions
    /// apart (the key is the stream's public name, in its URL).
    fn start(&mut self) -> crate::Result<()> {
        let streams = self.demux.streams();
        let stream = self.claim.stream().clone();
        let mut outs = Vec::new();
        let mut stages: Vec<(String, StageFn)> = Vec::new();
        let mut fanout = Vec::new();
        let stage_name = |what: &str| format!("serve/{}/{}/{what}", self.key, self.claim.session());
        for variant in stream.variants() {
            let rendition = self.renditions.iter().find(|r| r.name() == variant.name());
            let (tx, rx) = match rendition {
                Some(_) => picture_queue(),
                None => stage_queue(false),
            };
            let relay = rendition.and_then(|r| {
                let out = self.relays.open(&self.key, Some(*r))?;
                Some(RenditionRelay::new(out, *r, streams.video, streams.audio))
            });
            let encoder = rendition
                .filter(|_| streams.video)
                .map(|r| RenditionEncoder::new(*r));
            // A rendition's H.264 goes to its WebRTC viewers from its stage.
            let webrtc = self
                .webrtc
                .clone()
                .filter(|_| encoder.is_some())
                .map(|hub| (hub, format!("{}/{}", self.key, variant.name())));
            let stage = VariantStage {
                webrtc,
                relay,
                stream: stream.clone(),
                variant: variant.clone(),
                encoder,
                streams,
                hls_dir: self.hls_dir.clone(),
            };
            stages.push((
                stage_name(variant.name()),
                Box::new(move |stop: &Stop| stage.run(rx, stop)),
            ));
            match rendition {
                Some(_) => fanout.push(Fanout {
                    tx,
                    variant: variant.clone(),
                }),
                None => outs.push(tx),
            }
        }
        if !fanout.is_empty() {
            // One decode for every rendition of the stream.
            let decoder = if streams.video {
                Some(SourceDecoder::new().map_err(|e| crate::Error::Codec {
                    what: "cannot start the renditions' decoder".into(),
                    source: e,
                })?)
            } else {
                None
            };
            let decode = DecodeStage {
                decoder,
                outs: fanout,
            };
            let (tx, rx) = stage_queue(true);
            stages.push((
                stage_name("decode"),
                Box::new(move |stop: &Stop| decode.run(rx, stop)),
            ));
            outs.push(tx);
        }
        let stop = self
            .groups
            .start(self.claim.clone(), self.hls_dir.clone(), stages);
        tracing::info!(
            "{}: video {}, audio {}",
            self.key,
            if streams.video { "H.264" } else { "none" },
            streams.audio.map_or("none".to_string(), |a| format!(
                "AAC {} Hz",
                a.sample_rate()
            ))
        );
        self.outs = Some(outs);
        self.group_stop = Some(stop);
        for unit in self.gate.take() {
            self.send(unit);
        }
        Ok(())
    }

    fn send(&mut self, unit: EncodedUnit) {
        // WebRTC viewers get the published access units as they are (no
        // stage, no queue of the publisher's: each viewer has its own).
        if let Some(hub) = &self.webrtc {
            if unit.codec == Codec::Aac {
                self.opus_for_webrtc(hub.clone(), &unit);
            } else {
                hub.unit(&self.key, &unit);
            }
        }
        if let Some(outs) = &self.outs {
            for tx in outs {
                // A stage that has gone only loses its own feed.
                let _ = tx.send(Feed::Unit(unit.clone()));
            }
        }
    }
}

impl Publisher {
    /// Turns `unit` into Opus for the stream's WebRTC viewers: the work is
    /// done only while there are some (the converter is made when the
    /// first comes and dropped when the last leaves).
    fn opus_for_webrtc(&mut self, hub: Arc<Hub>, unit: &EncodedUnit) {
        if !hub.watched(&self.key) {
            self.opus = None;
            return;
        }
        if self.opus.is_none() {
            let Some(asc) = self.demux.audio_config() else {
                return;
            };
            match AacToOpus::new(asc) {
                Ok(c) => self.opus = Some(c),
                Err(e) => {
                    tracing::warn!("{}: no Opus for WebRTC viewers: {e}", self.key);
                    return;
                }
            }
        }
        let Some(conv) = &mut self.opus else { return };
        match conv.push(unit) {
            Ok(frames) => hub.audio(&self.key, &frames),
            // A frame the decoder refuses costs its 20 ms or so; the
            // next one decodes on its own.
            Err(e) => tracing::debug!("{}: AAC to Opus: {e}", self.key),
        }
    }
}

impl IngestSink for Publisher {
    fn media(&mut self, msg: MediaMessage) -> Result<(), BoxError> {
        if self.group_stop.as_ref().is_some_and(Stop::requested) {
            // The server has logged which stage failed; the key is already free.
            return Err(format!("{}: stopped after a stage failed", self.key).into());
        }
        if let Some(relay) = &self.relay {
            if let Some(tag) = RelayTag::from_message(&msg) {
                relay.send(tag);
            }
        }
        let now = Instant::now();
        let result = match msg.kind {
            MediaKind::Video => self.demux.push_video(msg.timestamp_ms, &msg.data, now),
            MediaKind::Audio => self.demux.push_audio(msg.timestamp_ms, &msg.data, now),
            MediaKind::Data => Ok(None),
        };
        let unit = match result {
            Ok(u) => u,
            Err(DemuxError::Unsupported(what)) => {
                self.unknown_codecs.fetch_add(1, Ordering::Relaxed);
                return Err(format!("{}: {what}; stream refused", self.key).into());
            }
            Err(e) => {
                tracing::debug!("{}: {e} (dropped)", self.key);
                None
            }
        };
        if self.outs.is_some() {
            if let Some(u) = unit {
                self.send(u);
            }
            return Ok(());
        }
        if let Some(u) = unit {
            self.gate.push(u);
        }
        if self.gate_open() {
            self.start()?;
        }
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // Dropping the senders ends each stage once it has drained its queue.
        self.outs = None;
        // Dropping the relays' senders ends each relay's publish cleanly.
        self.relay = None;
        self.claim.release();
        tracing::info!("{}: publisher gone", self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A unit of `data` (clones share it, so the test allocates it once).
    fn unit(data: &Bytes) -> EncodedUnit {
        EncodedUnit {
            codec: Codec::H264,
            keyframe: true,
            pts: Duration::ZERO,
            dts: None,
            capture: Instant::now(),
            data: data.clone(),
        }
    }

    #[test]
    fn stage_queues_and_the_gate_are_bounded_in_bytes() {
        let mib = Bytes::from(vec![0u8; 1 << 20]);
        for (rendition, max) in [(false, SOURCE_QUEUE_BYTES), (true, RENDITION_QUEUE_BYTES)] {
            let (tx, _rx) = stage_queue::<EncodedUnit>(rendition);
            // A stalled stage and a publisher sending 1 MiB units: a unit
            // bound alone would hold 512 (or 120) MiB.
            for _ in 0..600 {
                tx.send(unit(&mib)).expect("stage alive");
                assert!(tx.queued_bytes() <= max, "{}", tx.queued_bytes());
            }
            let held = (max >> 20) as u64;
            assert_eq!(tx.dropped(), 600 - held, "rendition {rendition}");
        }
        let mut gate = Gate::default();
        for _ in 0..(GATE_BYTES >> 20) - 1 {
            gate.push(unit(&mib));
        }
        assert!(!gate.full());
        gate.push(unit(&mib));
        assert!(
            gate.full(),
            "{} units, {} bytes",
            gate.units.len(),
            gate.bytes
        );
        assert_eq!(gate.take().len(), GATE_BYTES >> 20);
        assert_eq!(gate.bytes, 0);
    }
}
