//! `pstream serve`: take RTMP publishes, serve them as HLS with lighter renditions.
//!
//! ```text
//!                   ┌─link─▶ source stage ───────────────────────▶ HLS segmenter "source"
//! RTMP connection ──┤        (TS mux, --hls-dir mirror)
//! (FLV demux)       ├─link─▶ P144p30fps16x9 stage: decode ▶ scale ▶ encode ▶ HLS segmenter
//!                   └─link─▶ ... one thread per rendition, audio passed through
//!
//! HTTP server ◀── LiveStreams (playlists and segments in memory)
//! ```
//! The RTMP and HTTP servers share one tokio runtime; each stage is a std
//! thread behind a bounded drop-oldest link, so a rendition that cannot keep
//! up drops (and counts) its own units and never stalls the source. Logic
//! lives in the libraries: the RTMP server in `pstream_transport::rtmp`, the
//! HTTP server in `pstream_transport::http`, demuxing, segmenting and the
//! stream registry in `pstream_mux`, the transcoder in `pstream_codec`.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pstream_codec::{Rendition, Transcoder};
use pstream_core::{link, Codec, EncodedUnit, LinkReceiver, LinkSender};
use pstream_mux::hls::HlsEvent;
use pstream_mux::live::SOURCE;
use pstream_mux::{
    DemuxError, FlvDemuxer, HlsConfig, HlsDir, LiveStream, LiveStreams, LiveVariant, TsStreams,
};
use pstream_transport::http::{serve_http, HlsCatalog, HttpStats};
use pstream_transport::rtmp::{
    serve_rtmp, IngestHandler, IngestSink, MediaKind, MediaMessage, PublishRefusal,
    RtmpServerConfig, RtmpServerStats,
};

use crate::shutdown::Shutdown;
use crate::stats::{StatsMode, StatsPrinter};
use pstream_embed::run::spawn;

/// Units waiting for the source stage (it only muxes, so this rarely fills).
const SOURCE_QUEUE: usize = 512;
/// Units waiting for a rendition stage: about 1.5 s of 30 fps video plus AAC.
const RENDITION_QUEUE: usize = 120;
/// Most units held while waiting for both sequence headers.
const GATE_UNITS: usize = 300;
/// Longest media span held while waiting for the second track's sequence header.
const GATE_SPAN: Duration = Duration::from_secs(2);
/// Ended streams stay listed (with `EXT-X-ENDLIST`) this long.
const ENDED_RETENTION: Duration = Duration::from_secs(300);
/// Audio bitrate assumed in a rendition's nominal bandwidth before it is measured.
const NOMINAL_AUDIO_BPS: u64 = 128_000;

/// Options of `pstream serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to accept RTMP publishers on, e.g. 0.0.0.0:1935.
    #[arg(long, default_value = "0.0.0.0:1935")]
    pub rtmp: SocketAddr,
    /// Address to serve HLS on, e.g. 0.0.0.0:8935 (`/stream/<key>.m3u8`).
    #[arg(long, default_value = "0.0.0.0:8935")]
    pub http: SocketAddr,
    /// Lighter renditions, comma-separated (P144p30fps16x9, P240p30fps16x9,
    /// P360p30fps16x9, P720p30fps16x9), or `none` for the source alone.
    #[arg(long, default_value = "P144p30fps16x9", value_parser = parse_renditions)]
    pub renditions: RenditionList,
    /// Target segment duration in seconds (segments end at a keyframe).
    #[arg(long, default_value_t = 2.0, value_parser = parse_segment)]
    pub segment: f64,
    /// Segments listed in each media playlist.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub window: u64,
    /// Only these stream keys may publish: a file with one key per line
    /// (`#` starts a comment). Others are refused with NetStream.Publish.BadName.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Also write playlists and segments below this directory
    /// (`<key>.m3u8`, `<key>/<variant>.m3u8`, `<key>/<variant>/<n>.ts`).
    #[arg(long)]
    pub hls_dir: Option<PathBuf>,
    /// RTMP connections open at once; more are closed on accept.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The renditions of `--renditions`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionList(pub Vec<Rendition>);

fn parse_renditions(s: &str) -> Result<RenditionList, String> {
    if s.trim() == "none" || s.trim().is_empty() {
        return Ok(RenditionList(Vec::new()));
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        let r = Rendition::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| pstream_codec::scale::UnknownRendition(name.to_string()).to_string())?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(RenditionList(out))
}

fn parse_segment(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.5..=60.0).contains(&v) {
        return Err(format!(
            "segment duration {v} must be between 0.5 and 60 seconds"
        ));
    }
    Ok(v)
}

/// Reads a `--keys` file: one key per line, blank lines and `#` comments ignored.
fn read_keys(path: &std::path::Path) -> anyhow::Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --keys {}", path.display()))?;
    let keys: HashSet<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        anyhow::bail!("--keys {} lists no key", path.display());
    }
    Ok(keys)
}

/// What the HTTP server serves from: the live streams.
struct Catalog(Arc<LiveStreams>);

impl HlsCatalog for Catalog {
    fn master_playlist(&self, key: &str) -> Option<bytes::Bytes> {
        self.0.master_playlist(key)
    }

    fn media_playlist(&self, key: &str, variant: &str) -> Option<bytes::Bytes> {
        self.0.media_playlist(key, variant)
    }

    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<bytes::Bytes> {
        self.0.segment(key, variant, name)
    }
}

/// Decides on publishes and builds each publisher's pipeline.
struct Handler {
    live: Arc<LiveStreams>,
    keys: Option<HashSet<String>>,
    renditions: Vec<Rendition>,
    variants: Vec<(String, u64)>,
    hls: HlsConfig,
    hls_dir: Option<HlsDir>,
    unknown_codecs: Arc<AtomicU64>,
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
        let stream = match self.live.begin(key, &self.variants, &self.hls) {
            Ok(Ok(s)) => s,
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
            stream.sessions()
        );
        Ok(Box::new(Publisher {
            key: key.to_string(),
            stream,
            demux: FlvDemuxer::new(),
            gate: Vec::new(),
            outs: None,
            renditions: self.renditions.clone(),
            hls_dir: self.hls_dir.clone(),
            unknown_codecs: self.unknown_codecs.clone(),
        }))
    }
}

/// One publish: demuxes tags and feeds the stages.
struct Publisher {
    key: String,
    stream: Arc<LiveStream>,
    demux: FlvDemuxer,
    /// Units held until both tracks are known.
    gate: Vec<EncodedUnit>,
    /// One link per stage, once started.
    outs: Option<Vec<LinkSender<EncodedUnit>>>,
    renditions: Vec<Rendition>,
    hls_dir: Option<HlsDir>,
    unknown_codecs: Arc<AtomicU64>,
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

    /// Starts the source and rendition stages with the streams now known.
    fn start(&mut self) -> Result<(), String> {
        let streams = self.demux.streams();
        let mut outs = Vec::new();
        for variant in self.stream.variants() {
            let transcoder = match self.renditions.iter().find(|r| r.name() == variant.name()) {
                Some(r) if streams.video => {
                    Some(Transcoder::new(*r).map_err(|e| format!("cannot start {r}: {e}"))?)
                }
                _ => None,
            };
            let cap = if transcoder.is_some() {
                RENDITION_QUEUE
            } else {
                SOURCE_QUEUE
            };
            let (tx, rx) = link(cap);
            let stage = Stage {
                key: self.key.clone(),
                stream: self.stream.clone(),
                variant: variant.clone(),
                transcoder,
                streams,
                hls_dir: self.hls_dir.clone(),
            };
            self.stream.stage_started();
            let name = format!("serve-{}", variant.name());
            if let Err(e) = spawn(&name, move || stage.run(rx)) {
                self.stream.stage_finished();
                return Err(format!("{e:#}"));
            }
            outs.push(tx);
        }
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
    fn media(&mut self, msg: MediaMessage) -> Result<(), pstream_core::BoxError> {
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
        self.stream.publisher_gone();
        tracing::info!("{}: publisher gone", self.key);
    }
}

/// One variant's thread: units in, segments out.
struct Stage {
    key: String,
    stream: Arc<LiveStream>,
    variant: Arc<LiveVariant>,
    transcoder: Option<Transcoder>,
    streams: TsStreams,
    hls_dir: Option<HlsDir>,
}

impl Stage {
    fn run(mut self, rx: LinkReceiver<EncodedUnit>) {
        // A returning publisher continues the playlist after a discontinuity.
        let events = {
            let mut seg = self.variant.segmenter();
            seg.restart(self.streams);
            drain(&mut seg)
        };
        self.mirror(events);
        let drops_before = self.variant.dropped.load(Ordering::Relaxed);
        let mut drops_seen = 0;
        let mut warned = false;
        while let Some(unit) = rx.recv() {
            let drops = rx.dropped();
            if drops != drops_seen {
                drops_seen = drops;
                self.variant
                    .dropped
                    .store(drops_before + drops, Ordering::Relaxed);
                if let Some(t) = &mut self.transcoder {
                    t.resync();
                }
            }
            let unit = match (&mut self.transcoder, unit.codec) {
                (Some(t), Codec::H264) => match t.push(&unit) {
                    Ok(Some(u)) => u,
                    Ok(None) => continue,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(
                                "{}/{}: {}",
                                self.key,
                                self.variant.name(),
                                pstream_core::error::one_line(&e)
                            );
                            warned = true;
                        }
                        continue;
                    }
                },
                _ => unit,
            };
            let is_video = unit.codec == Codec::H264;
            let events = {
                let mut seg = self.variant.segmenter();
                // A unit the muxer refuses is counted by the segmenter.
                let _ = seg.push(&unit);
                drain(&mut seg)
            };
            if is_video {
                self.variant.frames.fetch_add(1, Ordering::Relaxed);
            }
            self.mirror(events);
        }
        let events = {
            let mut seg = self.variant.segmenter();
            seg.end();
            drain(&mut seg)
        };
        self.mirror(events);
        self.stream.stage_finished();
    }

    /// Writes events to `--hls-dir`, and the master playlist with each new source segment.
    fn mirror(&self, events: Vec<(HlsEvent, bytes::Bytes)>) {
        let Some(dir) = &self.hls_dir else { return };
        let mut master = false;
        for (event, playlist) in &events {
            if let Err(e) = dir.apply(&self.key, self.variant.name(), event, playlist) {
                tracing::warn!("--hls-dir {}: {e}", dir.root().display());
            }
            master |=
                matches!(event, HlsEvent::SegmentReady { .. }) && self.variant.name() == SOURCE;
        }
        if master {
            if let Err(e) = dir.write_master(&self.key, &self.stream.master_playlist()) {
                tracing::warn!("--hls-dir {}: {e}", dir.root().display());
            }
        }
    }
}

/// Takes the segmenter's pending events, each with the playlist current after it.
fn drain(seg: &mut pstream_mux::HlsSegmenter) -> Vec<(HlsEvent, bytes::Bytes)> {
    let mut out = Vec::new();
    while let Some(e) = seg.poll_event() {
        out.push((e, seg.playlist()));
    }
    out
}

/// Runs `pstream serve` until Ctrl-C, SIGTERM or `--duration`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::install(args.duration)?;
    let keys = args.keys.as_deref().map(read_keys).transpose()?;
    let hls = HlsConfig {
        target_duration: Duration::from_secs_f64(args.segment),
        window: args.window as usize,
        max_segment_duration: Duration::from_secs_f64((args.segment * 5.0).max(10.0)),
        ..HlsConfig::default()
    };
    let hls_dir = args
        .hls_dir
        .as_ref()
        .map(HlsDir::new)
        .transpose()
        .context("cannot create --hls-dir")?;
    let renditions = args.renditions.0.clone();
    let mut variants = vec![(SOURCE.to_string(), 0u64)];
    variants.extend(renditions.iter().map(|r| {
        (
            r.name().to_string(),
            u64::from(r.bitrate_bps()) + NOMINAL_AUDIO_BPS,
        )
    }));
    let live = Arc::new(LiveStreams::new());
    let unknown_codecs = Arc::new(AtomicU64::new(0));
    let handler = Arc::new(Handler {
        live: live.clone(),
        keys,
        renditions: renditions.clone(),
        variants,
        hls,
        hls_dir,
        unknown_codecs: unknown_codecs.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serve-net")
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the tokio runtime")?;
    let rtmp_stats = Arc::new(RtmpServerStats::default());
    let http_stats = Arc::new(HttpStats::new());
    let (rtmp_listener, http_listener) = runtime.block_on(async {
        let r = tokio::net::TcpListener::bind(args.rtmp)
            .await
            .with_context(|| format!("cannot listen on --rtmp {}", args.rtmp))?;
        let h = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("cannot listen on --http {}", args.http))?;
        anyhow::Ok((r, h))
    })?;
    let rtmp_addr = rtmp_listener.local_addr().context("rtmp address")?;
    let http_addr = http_listener.local_addr().context("http address")?;
    let stopped = |s: Shutdown| async move {
        while !s.requested() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let config = RtmpServerConfig {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        ..RtmpServerConfig::default()
    };
    let rtmp_task = runtime.spawn(serve_rtmp(
        rtmp_listener,
        handler,
        config,
        rtmp_stats.clone(),
        stopped(shutdown.clone()),
    ));
    let http_task = runtime.spawn(serve_http(
        http_listener,
        Arc::new(Catalog(live.clone())),
        http_stats.clone(),
        stopped(shutdown.clone()),
    ));
    tracing::info!(
        "listening: rtmp://{rtmp_addr}/<key> for publishers, http://{http_addr}/stream/<key>.m3u8 for players; renditions: {}",
        if renditions.is_empty() {
            "none".to_string()
        } else {
            renditions.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
        }
    );

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "serve");
    let mut line = StatsLine::default();
    while !shutdown.requested() {
        std::thread::sleep(Duration::from_millis(200));
        if line.due() {
            for key in live.evict_ended(ENDED_RETENTION) {
                tracing::info!("{key}: ended stream dropped");
            }
            printer.show(&line.render(&live, &rtmp_stats, &http_stats, &unknown_codecs));
        }
    }
    printer.finish();
    let result = runtime.block_on(async {
        let r = tokio::time::timeout(Duration::from_secs(5), rtmp_task).await;
        let h = tokio::time::timeout(Duration::from_secs(5), http_task).await;
        (r, h)
    });
    // Dropping the runtime drops every connection and so every publisher:
    // their stages drain and end their playlists.
    runtime.shutdown_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.all().iter().any(|s| s.is_live()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if let (Ok(Ok(Err(e))), _) | (_, Ok(Ok(Err(e)))) = result {
        return Err(anyhow::Error::new(e).context("server failed"));
    }
    Ok(())
}

/// The stats line: streams, publishers, viewers, per-rendition fps and drops.
#[derive(Default)]
struct StatsLine {
    last: Option<Instant>,
    /// (when, requests so far), for requests per minute.
    requests: VecDeque<(Instant, u64)>,
    /// Frames per variant at the last line, by "key/variant".
    frames: std::collections::HashMap<String, u64>,
}

impl StatsLine {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        true
    }

    fn render(
        &mut self,
        live: &LiveStreams,
        rtmp: &RtmpServerStats,
        http: &HttpStats,
        unknown_codecs: &AtomicU64,
    ) -> String {
        let now = Instant::now();
        let dt = self
            .last
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64().max(0.001));
        self.last = Some(now);
        let h = http.snapshot();
        self.requests.push_back((now, h.requests));
        while self
            .requests
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.requests.pop_front();
        }
        let per_min = match self.requests.front() {
            Some((t, first)) if now.duration_since(*t) >= Duration::from_secs(1) => {
                (h.requests - first) as f64 * 60.0 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let r = rtmp.snapshot();
        let mut streams = live.all();
        streams.sort_by(|a, b| a.key().cmp(b.key()));
        let mut s = format!(
            "streams {} | publishers {} | rtmp conns {} (refused: keys {}, limit {}, timeouts {}, bad {}, codec {}) | viewers {:.0} req/min, {} open",
            streams.len(),
            r.publishing,
            r.open,
            r.refused_publish,
            r.refused_limit,
            r.timeouts,
            r.protocol_errors,
            unknown_codecs.load(Ordering::Relaxed),
            per_min,
            h.open_connections,
        );
        for stream in streams.iter().filter(|s| s.is_live()) {
            s.push_str(&format!(" | {}:", stream.key()));
            for v in stream.variants() {
                let id = format!("{}/{}", stream.key(), v.name());
                let frames = v.frames.load(Ordering::Relaxed);
                let before = self.frames.insert(id, frames).unwrap_or(frames);
                let fps = frames.saturating_sub(before) as f64 / dt;
                s.push_str(&format!(
                    " {} {fps:.1} fps {} dropped",
                    v.name(),
                    v.dropped.load(Ordering::Relaxed)
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_lists_parse() {
        assert_eq!(
            parse_renditions("P144p30fps16x9,P360p30fps16x9"),
            Ok(RenditionList(vec![
                Rendition::P144p30fps16x9,
                Rendition::P360p30fps16x9
            ]))
        );
        assert_eq!(parse_renditions("none"), Ok(RenditionList(vec![])));
        assert!(parse_renditions("P100p").is_err());
    }

    #[test]
    fn keys_files_skip_comments_and_blanks() {
        let path = std::env::temp_dir().join(format!("pstream-keys-{}", std::process::id()));
        std::fs::write(&path, "# allowed\nalpha\n\n beta  # second\n").expect("write");
        let keys = read_keys(&path).expect("keys");
        assert_eq!(keys.len(), 2);
        assert!(keys.contains("alpha") && keys.contains("beta"));
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(read_keys(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
