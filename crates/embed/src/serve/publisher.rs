//! The RTMP side of the server: which publishes are accepted (keys, busy
//! keys), and per publish the FLV demuxer, the gate that holds media until
//! both tracks are known, and the links into that stream's stages.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_codec::{Rendition, Transcoder};
use pstream_core::{link, BoxError, EncodedUnit, LinkSender};
use pstream_mux::{DemuxError, FlvDemuxer, HlsConfig};
use pstream_transport::http::{HlsCatalog, Resource};
use pstream_transport::rtmp::{IngestHandler, IngestSink, MediaKind, MediaMessage, PublishRefusal};

use super::group::{Groups, StageFn};
use super::hls_dir::HlsDir;
use super::live::{LiveStreams, PublishClaim};
use super::stage::VariantStage;
use crate::run::Stop;

/// Units waiting for the source stage (it only muxes, so this rarely fills).
const SOURCE_QUEUE: usize = 512;
/// Units waiting for a rendition stage: about 1.5 s of 30 fps video plus AAC.
const RENDITION_QUEUE: usize = 120;
/// Most units held while waiting for both sequence headers.
const GATE_UNITS: usize = 300;
/// Longest media span held while waiting for the second track's sequence header.
const GATE_SPAN: Duration = Duration::from_secs(2);

/// What the HTTP server serves from: the live streams.
pub(crate) struct Catalog(pub(crate) Arc<LiveStreams>);

impl HlsCatalog for Catalog {
    fn master_playlist(&self, key: &str) -> Option<Resource> {
        self.0.master_playlist(key)
    }

    fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource> {
        self.0.media_playlist(key, variant)
    }

    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource> {
        self.0.segment(key, variant, name)
    }
}

/// Decides on publishes and builds each publisher's pipeline.
pub(crate) struct Handler {
    pub(crate) live: Arc<LiveStreams>,
    /// Keys allowed to publish; `None`: any.
    pub(crate) keys: Option<HashSet<String>>,
    pub(crate) renditions: Vec<Rendition>,
    /// (name, nominal bits per second) of the source and each rendition.
    pub(crate) variants: Vec<(String, u64)>,
    pub(crate) hls: HlsConfig,
    pub(crate) hls_dir: Option<HlsDir>,
    pub(crate) unknown_codecs: Arc<AtomicU64>,
    /// Where each publish's stages run.
    pub(crate) groups: Arc<Groups>,
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
        if self.keys.as_ref().is_some_and(|k| !k.contains(key)) {
            tracing::warn!("{peer}: publish of {key:?} refused: not in --keys");
            return Err(refuse("stream key not allowed"));
        }
        let claim = match self.live.begin(key, &self.variants, &self.hls) {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(_busy)) => {
                tracing::warn!("{peer}: publish of {key:?} refused: already publishing");
                return Err(refuse("stream key already publishing"));
            }
            Err(e) => {
                tracing::error!("{peer}: {key}: {e}");
                return Err(PublishRefusal {
                    code: "NetStream.Publish.Failed".into(),
                    description: e.to_string(),
                });
            }
        };
        tracing::info!(
            "{key}: publishing from {peer} (session {})",
            claim.session()
        );
        Ok(Box::new(Publisher {
            key: key.to_string(),
            claim,
            demux: FlvDemuxer::new(),
            gate: Vec::new(),
            outs: None,
            group_stop: None,
            renditions: self.renditions.clone(),
            hls_dir: self.hls_dir.clone(),
            unknown_codecs: self.unknown_codecs.clone(),
            groups: self.groups.clone(),
        }))
    }
}

/// One publish: demuxes tags and feeds the stages.
struct Publisher {
    key: String,
    /// This publish session's hold on the key.
    claim: Arc<PublishClaim>,
    demux: FlvDemuxer,
    /// Units held until both tracks are known.
    gate: Vec<EncodedUnit>,
    /// One link per stage, once started.
    outs: Option<Vec<LinkSender<EncodedUnit>>>,
    /// The stop flag of this publish's stage group, set once one failed.
    group_stop: Option<Stop>,
    renditions: Vec<Rendition>,
    hls_dir: Option<HlsDir>,
    unknown_codecs: Arc<AtomicU64>,
    groups: Arc<Groups>,
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
        let span = match (self.gate.first(), self.gate.last()) {
            (Some(a), Some(b)) => b.pts.saturating_sub(a.pts),
            _ => Duration::ZERO,
        };
        (video || audio) && (span >= GATE_SPAN || self.gate.len() >= GATE_UNITS)
    }

    /// Starts the source and rendition stages, as one group, with the
    /// streams now known. Stage names, `serve/<key>/<session>/<variant>`,
    /// tell sessions apart (the key is the stream's public name, in its URL).
    fn start(&mut self) -> crate::Result<()> {
        let streams = self.demux.streams();
        let stream = self.claim.stream().clone();
        let mut outs = Vec::new();
        let mut stages: Vec<(String, StageFn)> = Vec::new();
        for variant in stream.variants() {
            let transcoder = match self.renditions.iter().find(|r| r.name() == variant.name()) {
                Some(r) if streams.video => {
                    Some(Transcoder::new(*r).map_err(|e| crate::Error::Codec {
                        what: format!("cannot start {r}"),
                        source: e,
                    })?)
                }
                _ => None,
            };
            let cap = if transcoder.is_some() {
                RENDITION_QUEUE
            } else {
                SOURCE_QUEUE
            };
            let (tx, rx) = link(cap);
            let stage = VariantStage {
                stream: stream.clone(),
                variant: variant.clone(),
                transcoder,
                streams,
                hls_dir: self.hls_dir.clone(),
            };
            let name = format!(
                "serve/{}/{}/{}",
                self.key,
                self.claim.session(),
                variant.name()
            );
            stages.push((name, Box::new(move |stop: &Stop| stage.run(rx, stop))));
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
        for unit in std::mem::take(&mut self.gate) {
            self.send(unit);
        }
        Ok(())
    }

    fn send(&self, unit: EncodedUnit) {
        if let Some(outs) = &self.outs {
            for tx in outs {
                // A stage that has gone only loses its own feed.
                let _ = tx.send(unit.clone());
            }
        }
    }
}

impl IngestSink for Publisher {
    fn media(&mut self, msg: MediaMessage) -> Result<(), BoxError> {
        if self.group_stop.as_ref().is_some_and(Stop::requested) {
            // The server has logged which stage failed; the key is already free.
            return Err("stopped after a stage failed".into());
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
                return Err(format!("{what}; stream refused").into());
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
        self.claim.release();
        tracing::info!("{}: publisher gone", self.key);
    }
}
