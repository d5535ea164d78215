//! `pstream serve` as a library: RTMP publishes in, HLS out, with lighter
//! renditions, stream keys and an optional mirror on disk; with WebRTC on,
//! WHEP viewers and WHIP publishes too (`webrtc.rs`, `whip.rs`).
//!
//! ```text
//!                   ┌─link─▶ source stage ───────────────────────▶ HLS segmenter "source"
//! RTMP connection ──┤        (TS mux, hls_dir mirror)
//! (FLV demux)       ├─link─▶ P144p30fps16x9 stage: decode ▶ scale ▶ encode ▶ HLS segmenter
//!                   └─link─▶ ... one thread per rendition, audio passed through
//!
//! HTTP server ◀── LiveStreams (playlists and segments in memory)
//! ```
//! The RTMP and HTTP servers share one tokio runtime that the server owns;
//! each stage is a thread behind a drop-oldest queue bounded in units and
//! in bytes (`pstream_core::link_bytes`), so a rendition that cannot keep up drops (and
//! counts) its own units and never stalls the source, and no publisher's
//! units can fill memory. The RTMP server is `pstream_transport::rtmp`, the HTTP server
//! `pstream_transport::http`, demuxing and segmenting `pstream_mux`, the
//! transcoder `pstream_codec`; this module holds the live streams
//! ([`live`]), the disk mirror ([`hls_dir`]), the publisher with its gate
//! (`publisher.rs`), the stages (`stage.rs`) and the stats line (`stats.rs`).
//!
//! ```no_run
//! # fn main() -> Result<(), pstream_embed::Error> {
//! use pstream_embed::serve::{Rendition, Serve};
//! let mut server = Serve::new()
//!     .rtmp("0.0.0.0:1935")
//!     .http("0.0.0.0:8935")
//!     .renditions([Rendition::P144p30fps16x9])
//!     .start()?;
//! // ffmpeg ... -f flv rtmp://HOST:1935/hello_world, then players open
//! // http://HOST:8935/stream/hello_world.m3u8
//! println!("{}", server.stats_line());
//! server.stop();
//! server.wait()?;
//! # Ok(())
//! # }
//! ```

mod decode;
mod group;
pub mod hls_dir;
pub mod live;
mod metrics;
mod publisher;
pub mod relay;
mod stage;
mod stats;
mod webrtc;
mod whip;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_mux::HlsConfig;
use pstream_transport::http::{serve_http, serve_metrics, HttpStats, RenderMetrics};
use pstream_transport::rtmp::{serve_rtmp, RtmpServerConfig, RtmpServerStats};

use crate::run::{Stages, Stop};
use crate::{Error, Result};

pub use hls_dir::HlsDir;
pub use live::{LiveStream, LiveStreams, LiveVariant, PublishClaim, SOURCE};
pub use pstream_codec::Rendition;
pub use relay::{RelayTarget, RELAY_QUEUE_BYTES};

/// Ended streams stay listed (with `EXT-X-ENDLIST`) this long by default
/// ([`ServeConfig::keep_ended`]).
pub const ENDED_RETENTION: Duration = Duration::from_secs(300);
/// Audio bitrate assumed in a rendition's nominal bandwidth before it is measured.
const NOMINAL_AUDIO_BPS: u64 = 128_000;
/// How long [`HlsServer::wait`] gives the servers, then the stages, to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// One stream a keys list allows: the secret key its publisher puts in the
/// RTMP URL, and the public name viewers use (`/stream/<name>.m3u8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    /// The publish key (`rtmp://host/app/<key>`), a secret: logs show it masked.
    pub key: String,
    /// The name in viewers' URLs; the key itself when none was given.
    pub name: String,
    /// Where it was given (`keys.txt:3`), for messages; empty when built in code.
    pub origin: String,
    /// Where the stream is relayed (the words after `KEY NAME` in a keys file).
    pub relays: Vec<RelayTarget>,
}

impl StreamKey {
    /// A stream whose viewers use `name` and whose publisher uses `key`.
    pub fn new(key: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            origin: String::new(),
            relays: Vec::new(),
        }
    }

    /// A stream whose name is its key: its viewers can see the key.
    pub fn named_by_key(key: impl Into<String>) -> Self {
        let key = key.into();
        Self::new(key.clone(), key)
    }

    /// Where it was given, or which entry of the list it is (`n` from 1).
    fn origin(&self, n: usize) -> String {
        if self.origin.is_empty() {
            format!("stream {n} of the keys list")
        } else {
            self.origin.clone()
        }
    }
}

/// Which stream keys may publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Keys {
    /// Any key the RTMP server accepts as a name (`[A-Za-z0-9_-]`), which is
    /// also the stream's public name; at most [`ServeConfig::max_streams`]
    /// live at once.
    #[default]
    Any,
    /// Only these; others are refused with `NetStream.Publish.BadName`.
    Listed(Vec<StreamKey>),
    /// Only those listed in this file, read at start ([`read_keys`]).
    File(PathBuf),
}

/// Every option of `pstream serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to accept RTMP publishers on (`0.0.0.0:1935`; port 0 picks one).
    pub rtmp: String,
    /// Address to serve HLS on (`0.0.0.0:8935`; port 0 picks one).
    pub http: String,
    /// Lighter renditions, in this order after the source; none for the source alone.
    pub renditions: Vec<Rendition>,
    /// Target segment duration in seconds, 0.5 to 60 (segments end at a keyframe).
    pub segment_seconds: f64,
    /// Segments listed in each media playlist, 1 to 100.
    pub window: usize,
    /// Which stream keys may publish.
    pub keys: Keys,
    /// Also write playlists and segments below this directory
    /// (`<name>.m3u8`, `<name>/<variant>.m3u8`,
    /// `<name>/<variant>/<session>-<n>.ts`); a stream's files are removed
    /// when the server drops it ([`ServeConfig::keep_ended`]).
    pub hls_dir: Option<PathBuf>,
    /// How long an ended stream stays listed (its playlists ended with
    /// `EXT-X-ENDLIST`) before it and its `hls_dir` files are dropped.
    /// Without a keys list, at most `max_streams` ended streams are kept,
    /// the oldest dropped first.
    pub keep_ended: Duration,
    /// RTMP connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// RTMP connections open at once from one IP address; more from it are
    /// closed on accept.
    pub max_connections_per_ip: usize,
    /// Without a keys list, streams live at once; more publishes are refused.
    pub max_streams: usize,
    /// Serve Prometheus metrics at `http://<this>/metrics` (off when None;
    /// its own address, so it can stay private while HLS faces the internet).
    pub metrics: Option<String>,
    /// Where streams are relayed as they arrive (RTMP/RTMPS), besides the
    /// relays a keys list gives its streams.
    pub relays: Vec<RelayTarget>,
    /// Bytes each relay may hold queued for a slow platform before it drops
    /// its oldest tags: 64 KiB to [`RELAY_QUEUE_BYTES`] (64 MiB, the default).
    pub relay_queue_bytes: usize,
    /// WebRTC (WHEP) viewers: the UDP address every session uses
    /// (`0.0.0.0:8189`; port 0 picks one); None: no WebRTC.
    pub webrtc: Option<String>,
    /// The address named in WebRTC candidates (the public one behind a
    /// NAT); None: the bound address, or 127.0.0.1 when bound to all.
    pub webrtc_ip: Option<IpAddr>,
    /// WebRTC sessions open at once over all streams.
    pub webrtc_max_sessions: usize,
    /// WebRTC sessions open at once on one stream.
    pub webrtc_max_sessions_per_stream: usize,
}

impl ServeConfig {
    /// `pstream serve`'s defaults: RTMP on 0.0.0.0:1935, HLS on
    /// 0.0.0.0:8935, the source plus `P144p30fps16x9`, 2 s segments, 6 in
    /// each playlist, any key (16 streams live at most), no disk mirror,
    /// ended streams kept 5 minutes, 128 RTMP connections, 4 from one
    /// address.
    pub fn new() -> Self {
        Self {
            rtmp: "0.0.0.0:1935".into(),
            http: "0.0.0.0:8935".into(),
            renditions: vec![Rendition::P144p30fps16x9],
            segment_seconds: 2.0,
            window: 6,
            keys: Keys::Any,
            hls_dir: None,
            keep_ended: ENDED_RETENTION,
            max_connections: 128,
            max_connections_per_ip: 4,
            max_streams: 16,
            metrics: None,
            relays: Vec::new(),
            relay_queue_bytes: RELAY_QUEUE_BYTES,
            webrtc: None,
            webrtc_ip: None,
            webrtc_max_sessions: 256,
            webrtc_max_sessions_per_stream: 64,
        }
    }

    /// Refuses values out of range.
    pub fn check(&self) -> Result<()> {
        let v = self.segment_seconds;
        if !(0.5..=60.0).contains(&v) {
            return Err(Error::Config(format!(
                "segment duration {v} must be between 0.5 and 60 seconds"
            )));
        }
        if !(1..=100).contains(&self.window) {
            return Err(Error::Config(format!(
                "playlist window {} must be between 1 and 100 segments",
                self.window
            )));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("max connections must be at least 1".into()));
        }
        if self.max_connections_per_ip == 0 {
            return Err(Error::Config(
                "max connections per address must be at least 1".into(),
            ));
        }
        if self.max_streams == 0 {
            return Err(Error::Config("max streams must be at least 1".into()));
        }
        if !(64 << 10..=RELAY_QUEUE_BYTES).contains(&self.relay_queue_bytes) {
            return Err(Error::Config(format!(
                "relay queue of {} bytes must be between 64 KiB and {} MiB",
                self.relay_queue_bytes,
                RELAY_QUEUE_BYTES >> 20
            )));
        }
        if self.webrtc_max_sessions == 0 || self.webrtc_max_sessions_per_stream == 0 {
            return Err(Error::Config(
                "WebRTC session limits must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The segmenter settings these options give.
    fn hls(&self) -> HlsConfig {
        HlsConfig {
            target_duration: Duration::from_secs_f64(self.segment_seconds),
            window: self.window,
            max_segment_duration: Duration::from_secs_f64((self.segment_seconds * 5.0).max(10.0)),
            max_segment_wall_time: Duration::from_secs_f64(self.segment_seconds * 3.0),
            ..HlsConfig::default()
        }
    }

    /// The renditions once each, in the order given.
    fn unique_renditions(&self) -> Vec<Rendition> {
        let mut out: Vec<Rendition> = Vec::new();
        for r in &self.renditions {
            if !out.contains(r) {
                out.push(*r);
            }
        }
        out
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a keys file: one stream per line, `KEY NAME` (the secret publish
/// key, then the public name viewers use) or `KEY` alone (the name is the
/// key), and after `KEY NAME` any number of relays, each `URL` (the
/// source, `rtmp://` or `rtmps://`) or `RENDITION=URL`; blank lines and `#`
/// comments ignored. A bad line is an error naming the file and line
/// ([`check_keys`]).
pub fn read_keys(path: &Path) -> Result<Vec<StreamKey>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{}:{}", path.display(), i + 1);
        let fields: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let mut entry = match fields.as_slice() {
            [] => continue,
            [key] => StreamKey::named_by_key(*key),
            [key, name] => StreamKey::new(*key, *name),
            [key, name, relays @ ..] => {
                let mut e = StreamKey::new(*key, *name);
                for word in relays {
                    let r = RelayTarget::parse_word(name, word)
                        .map_err(|err| Error::Config(format!("{origin}: {err}")))?;
                    e.relays.push(r);
                }
                e
            }
        };
        entry.origin = origin;
        keys.push(entry);
    }
    if keys.is_empty() {
        return Err(Error::Config(format!("{} lists no key", path.display())));
    }
    check_keys(&keys)?;
    Ok(keys)
}

/// Refuses a keys list that cannot work or would give a key away: keys and
/// names must be names the RTMP server and URLs take (`[A-Za-z0-9_-]`, at
/// most 64), each key and each name once, and no name may be another
/// stream's key (its viewers would see that key). The error names the
/// entry's origin (`keys.txt:3`).
pub fn check_keys(keys: &[StreamKey]) -> Result<()> {
    use pstream_transport::rtmp::mask_key;
    use pstream_transport::rtmp::server::{is_safe_name, MAX_NAME_LEN};
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let bad = |n: usize, e: &StreamKey, why: String| {
        Err(Error::Config(format!("{}: {why}", e.origin(n))))
    };
    for (i, e) in keys.iter().enumerate() {
        let n = i + 1;
        let rule = format!("only letters, digits, '_' and '-', at most {MAX_NAME_LEN}");
        if !is_safe_name(&e.key) {
            return bad(
                n,
                e,
                format!("key {} is not a stream key ({rule})", mask_key(&e.key)),
            );
        }
        if !is_safe_name(&e.name) {
            return bad(
                n,
                e,
                format!("name {:?} is not a stream name ({rule})", e.name),
            );
        }
        if let Some(first) = by_key.insert(&e.key, n) {
            let other = keys[first - 1].origin(first);
            return bad(
                n,
                e,
                format!("key {} already given at {other}", mask_key(&e.key)),
            );
        }
        if let Some(first) = by_name.insert(&e.name, n) {
            let other = keys[first - 1].origin(first);
            return bad(n, e, format!("name {:?} already given at {other}", e.name));
        }
    }
    for (i, e) in keys.iter().enumerate() {
        if let Some(&other) = by_key.get(e.name.as_str()).filter(|&&k| k != i + 1) {
            let o = keys[other - 1].origin(other);
            return bad(
                i + 1,
                e,
                format!("its name is the key of {o}: its viewers would see that key"),
            );
        }
    }
    Ok(())
}

/// Every relay: those of the config, then those of the keys list. Each
/// must name a stream the list has (with a list) and a rendition the
/// server makes.
fn relay_targets(
    config: &ServeConfig,
    keys: Option<&[StreamKey]>,
    renditions: &[Rendition],
) -> Result<Vec<RelayTarget>> {
    let mut all = config.relays.clone();
    if let Some(keys) = keys {
        for r in &config.relays {
            if !keys.iter().any(|e| e.name == r.stream) {
                return Err(Error::Config(format!(
                    "relay {}: the keys list has no stream named {:?}",
                    r.label(),
                    r.stream
                )));
            }
        }
        all.extend(keys.iter().flat_map(|e| e.relays.iter().cloned()));
    }
    for r in &all {
        if let Some(rendition) = r.rendition {
            if !renditions.contains(&rendition) {
                return Err(Error::Config(format!(
                    "relay {}: {rendition} is not among the renditions served",
                    r.label()
                )));
            }
        }
    }
    Ok(all)
}

/// The warnings a server gives at start about who may publish and who can
/// see a key: with no list, anyone may publish (and the cap); with a list,
/// one line per stream named by its own key (the key masked).
fn warn_about_keys(keys: Option<&[StreamKey]>, max_streams: usize) {
    use pstream_transport::rtmp::mask_key;
    let Some(keys) = keys else {
        tracing::warn!(
            "no keys list (--keys): anyone may publish under any key, and each stream's key is its name in viewers' URLs; at most {max_streams} streams live at once (--max-streams)"
        );
        return;
    };
    for (i, e) in keys.iter().enumerate().filter(|(_, e)| e.key == e.name) {
        tracing::warn!(
            "{}: stream key {} has no name of its own: its viewers see the key in their URL and can publish with it (give a name: KEY NAME)",
            e.origin(i + 1),
            mask_key(&e.key)
        );
    }
}

/// Builds an HLS server for RTMP publishers: [`Serve::new`], a few
/// settings, [`Serve::start`]. Players open `/stream/<name>.m3u8`.
#[derive(Debug, Clone, Default)]
pub struct Serve {
    config: ServeConfig,
    duration: Option<f64>,
}

impl Serve {
    /// A server with `pstream serve`'s defaults ([`ServeConfig::new`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Where publishers connect, e.g. `0.0.0.0:1935` (`127.0.0.1:0` picks a free port).
    pub fn rtmp(mut self, addr: impl Into<String>) -> Self {
        self.config.rtmp = addr.into();
        self
    }

    /// Where players connect, e.g. `0.0.0.0:8935` (`127.0.0.1:0` picks a free port).
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.config.http = addr.into();
        self
    }

    /// Lighter renditions besides the source (none: the source alone).
    pub fn renditions(mut self, renditions: impl IntoIterator<Item = Rendition>) -> Self {
        self.config.renditions = renditions.into_iter().collect();
        self
    }

    /// Target segment duration in seconds (0.5 to 60).
    pub fn segment_seconds(mut self, seconds: f64) -> Self {
        self.config.segment_seconds = seconds;
        self
    }

    /// Only these stream keys may publish, each under its own key as the
    /// stream's name (so its viewers see the key: a warning at start says
    /// so); [`Serve::streams`] gives streams names of their own.
    pub fn keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.config.keys = Keys::Listed(keys.into_iter().map(StreamKey::named_by_key).collect());
        self
    }

    /// Only these `(key, name)` streams may publish: the publisher uses the
    /// secret key, viewers the name (`/stream/<name>.m3u8`).
    pub fn streams<K: Into<String>, N: Into<String>>(
        mut self,
        streams: impl IntoIterator<Item = (K, N)>,
    ) -> Self {
        self.config.keys = Keys::Listed(
            streams
                .into_iter()
                .map(|(k, n)| StreamKey::new(k, n))
                .collect(),
        );
        self
    }

    /// Without a keys list, at most this many streams live at once (16).
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.config.max_streams = streams;
        self
    }

    /// How long an ended stream stays listed before it (and its disk
    /// mirror files) is dropped (5 minutes).
    pub fn keep_ended(mut self, keep: Duration) -> Self {
        self.config.keep_ended = keep;
        self
    }

    /// Only the streams listed in this file may publish (`KEY NAME` or
    /// `KEY` per line, `#` comments; [`read_keys`]).
    pub fn keys_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.keys = Keys::File(path.into());
        self
    }

    /// Also write playlists and segments below this directory.
    pub fn hls_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.hls_dir = Some(dir.into());
        self
    }

    /// Serves Prometheus metrics at `http://<addr>/metrics` (e.g. `127.0.0.1:9935`).
    pub fn metrics(mut self, addr: impl Into<String>) -> Self {
        self.config.metrics = Some(addr.into());
        self
    }

    /// Also relays a stream (or one of its renditions) to an RTMP/RTMPS
    /// destination while it is published ([`RelayTarget::parse`] reads
    /// `NAME=URL` and `NAME/RENDITION=URL`).
    pub fn relay(mut self, target: RelayTarget) -> Self {
        self.config.relays.push(target);
        self
    }

    /// Bytes each relay may queue for a slow platform (64 KiB to 64 MiB, the default).
    pub fn relay_queue_bytes(mut self, bytes: usize) -> Self {
        self.config.relay_queue_bytes = bytes;
        self
    }

    /// Serves WebRTC (WHEP) viewers with every session on this UDP address
    /// (e.g. `0.0.0.0:8189`), naming `ip` in candidates when given.
    pub fn webrtc(mut self, addr: impl Into<String>, ip: Option<IpAddr>) -> Self {
        self.config.webrtc = Some(addr.into());
        self.config.webrtc_ip = ip;
        self
    }

    /// Stops by itself after `seconds`.
    pub fn duration(mut self, seconds: f64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// Every setting, for what the shortcuts do not cover.
    pub fn config_mut(&mut self) -> &mut ServeConfig {
        &mut self.config
    }

    /// Binds both addresses, starts the servers and returns the running server.
    pub fn start(self) -> Result<HlsServer> {
        let stop = match self.duration {
            Some(secs) => Stop::after(secs)?,
            None => Stop::new(),
        };
        HlsServer::start(&self.config, stop)
    }
}

/// A running HLS server: its runtime (RTMP and HTTP servers), its live
/// streams and the threads that keep them.
pub struct HlsServer {
    stop: Stop,
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The keeper stage: tends each publish's stage group, evicts ended streams.
    keeper: Stages,
    groups: Arc<group::Groups>,
    live: Arc<LiveStreams>,
    rtmp_stats: Arc<RtmpServerStats>,
    http_stats: Arc<HttpStats>,
    unknown_codecs: Arc<AtomicU64>,
    refused_streams: Arc<AtomicU64>,
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    /// Every relay and its worker.
    relays: Arc<relay::Relays>,
    webrtc_addr: Option<SocketAddr>,
    webrtc: Option<Arc<webrtc::Hub>>,
    whip: Option<Arc<whip::Ingest>>,
    line: stats::ServeStats,
    started: Instant,
}

impl std::fmt::Debug for HlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsServer")
            .field("rtmp", &self.rtmp_addr)
            .field("http", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl HlsServer {
    /// Checks `config`, reads the keys, creates the disk mirror, binds both
    /// addresses and starts serving until `stop` is set.
    pub fn start(config: &ServeConfig, stop: Stop) -> Result<Self> {
        config.check()?;
        let keys = match &config.keys {
            Keys::Any => None,
            Keys::Listed(k) => {
                check_keys(k)?;
                Some(k.clone())
            }
            Keys::File(path) => Some(read_keys(path)?),
        };
        let renditions = config.unique_renditions();
        let relay_targets = relay_targets(config, keys.as_deref(), &renditions)?;
        warn_about_keys(keys.as_deref(), config.max_streams);
        let keys = keys.map(|list| {
            list.into_iter()
                .map(|e| (e.key, e.name))
                .collect::<HashMap<_, _>>()
        });
        let hls_dir = config
            .hls_dir
            .as_ref()
            .map(|dir| {
                HlsDir::new(dir).map_err(|source| Error::File {
                    action: "create",
                    path: dir.clone(),
                    source,
                })
            })
            .transpose()?;
        let relays = Arc::new(relay::Relays::start(
            &relay_targets,
            config.relay_queue_bytes,
        )?);
        let mut variants = vec![(SOURCE.to_string(), 0u64)];
        variants.extend(renditions.iter().map(|r| {
            (
                r.name().to_string(),
                u64::from(r.bitrate_bps()) + NOMINAL_AUDIO_BPS,
            )
        }));
        let live = Arc::new(match keys {
            Some(_) => LiveStreams::new(),
            None => LiveStreams::limited(config.max_streams),
        });
        let unknown_codecs = Arc::new(AtomicU64::new(0));
        let refused_streams = Arc::new(AtomicU64::new(0));
        let groups = Arc::new(group::Groups::new());
        let mut handler = publisher::Handler {
            groups: groups.clone(),
            live: live.clone(),
            keys,
            refused_streams: refused_streams.clone(),
            renditions: renditions.clone(),
            variants,
            hls: config.hls(),
            hls_dir: hls_dir.clone(),
            unknown_codecs: unknown_codecs.clone(),
            relays: relays.clone(),
            webrtc: None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("serve-net")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::failed("cannot start the tokio runtime", e))?;
        let (rtmp_listener, http_listener, metrics_listener) = runtime.block_on(async {
            let bind = |service: &'static str, addr: &str| {
                let addr = addr.to_string();
                async move {
                    tokio::net::TcpListener::bind(&addr)
                        .await
                        .map_err(|source| Error::Listen {
                            service,
                            addr,
                            source,
                        })
                }
            };
            let r = bind("RTMP", &config.rtmp).await?;
            let h = bind("HTTP", &config.http).await?;
            let m = match &config.metrics {
                Some(addr) => Some(bind("metrics", addr).await?),
                None => None,
            };
            Ok::<_, Error>((r, h, m))
        })?;
        let local = |l: &tokio::net::TcpListener, service: &'static str, addr: &str| {
            l.local_addr().map_err(|source| Error::Listen {
                service,
                addr: addr.to_string(),
                source,
            })
        };
        let webrtc_socket = match &config.webrtc {
            Some(addr) => Some(runtime.block_on(async {
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .and_then(|s| Ok((s.local_addr()?, s)))
                    .map_err(|source| Error::Listen {
                        service: "WebRTC",
                        addr: addr.clone(),
                        source,
                    })
            })?),
            None => None,
        };
        let webrtc_addr = webrtc_socket.as_ref().map(|(a, _)| *a);
        let hub = webrtc_socket.as_ref().map(|(bound, _)| {
            let mut whep =
                pstream_webrtc::WhepConfig::new(webrtc::advertised(*bound, config.webrtc_ip));
            whep.max_sessions = config.webrtc_max_sessions;
            whep.max_sessions_per_stream = config.webrtc_max_sessions_per_stream;
            // Session ids (the DELETE URLs) must not be guessable by other viewers.
            let seed = {
                use rand::{Rng, SeedableRng};
                rand::rngs::StdRng::from_os_rng().random()
            };
            Arc::new(webrtc::Hub::new(pstream_webrtc::Whep::new(whep, seed)))
        });
        handler.webrtc = hub.clone();
        let handler = Arc::new(handler);
        // WHIP publishers share the WebRTC port and the RTMP publishers' handler.
        let ingest = hub.as_ref().map(|h| {
            let mut whip = pstream_webrtc::whip::WhipConfig::new(h.advertised());
            // A key frame per segment: segments (and new WHEP viewers) start at one.
            whip.keyframe_interval = Duration::from_secs_f64(config.segment_seconds);
            let seed = {
                use rand::{Rng, SeedableRng};
                rand::rngs::StdRng::from_os_rng().random()
            };
            Arc::new(whip::Ingest::new(
                pstream_webrtc::whip::Whip::new(whip, seed),
                handler.clone(),
            ))
        });
        let rtmp_addr = local(&rtmp_listener, "RTMP", &config.rtmp)?;
        let http_addr = local(&http_listener, "HTTP", &config.http)?;
        let metrics_addr = match (&metrics_listener, &config.metrics) {
            (Some(l), Some(addr)) => Some(local(l, "metrics", addr)?),
            _ => None,
        };
        let rtmp_stats = Arc::new(RtmpServerStats::default());
        let http_stats = Arc::new(HttpStats::new());
        let stopped = |s: Stop| async move {
            while !s.requested() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let rtmp_config = RtmpServerConfig {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            ..RtmpServerConfig::default()
        };
        let mut tasks = vec![
            runtime.spawn(serve_rtmp(
                rtmp_listener,
                handler,
                rtmp_config,
                rtmp_stats.clone(),
                stopped(stop.clone()),
            )),
            runtime.spawn(serve_http(
                http_listener,
                Arc::new(publisher::Catalog {
                    live: live.clone(),
                    webrtc: hub.clone(),
                    whip: ingest.clone(),
                }),
                http_stats.clone(),
                stopped(stop.clone()),
            )),
        ];
        if let (Some((_, socket)), Some(hub)) = (webrtc_socket, &hub) {
            tasks.push(runtime.spawn(webrtc::drive(
                hub.clone(),
                ingest.clone(),
                socket,
                stop.clone(),
            )));
        }
        if let Some(listener) = metrics_listener {
            let (live, rtmp, http) = (live.clone(), rtmp_stats.clone(), http_stats.clone());
            let refused = metrics::Refused {
                codecs: unknown_codecs.clone(),
                streams: refused_streams.clone(),
            };
            let relays = relays.clone();
            let webrtc = hub.clone();
            let render: RenderMetrics = Arc::new(move || {
                let mut text = metrics::render(&live, &rtmp, &http, &refused, &relays);
                if let Some(hub) = &webrtc {
                    let unsent = hub.send_dropped.load(std::sync::atomic::Ordering::Relaxed);
                    metrics::webrtc_families(&mut text, &hub.stats(), unsent);
                }
                text
            });
            tasks.push(runtime.spawn(serve_metrics(listener, render, stopped(stop.clone()))));
        }
        // The keeper has a stop flag of its own: at the end it outlives the
        // servers, to finish the groups their publishers leave behind.
        let mut keeper = Stages::new(Stop::new());
        let (tended, evicting) = (groups.clone(), live.clone());
        let eviction = group::Eviction {
            after: config.keep_ended,
            hls_dir: hls_dir.clone(),
        };
        keeper.spawn("serve/keeper", move |stop| {
            group::keep(&tended, &evicting, &eviction, stop)
        })?;
        if let Some(m) = metrics_addr {
            tracing::info!("metrics: http://{m}/metrics");
        }
        if let Some(w) = webrtc_addr {
            tracing::info!(
                "WebRTC: udp {w}; viewers POST offers to http://{http_addr}/stream/<name>/whep, or open http://{http_addr}/stream/<name>/"
            );
            tracing::info!(
                "WHIP: publishers POST offers to http://{http_addr}/whip with Authorization: Bearer <key>"
            );
        }
        tracing::info!(
            "listening: rtmp://{rtmp_addr}/<key> for publishers, http://{http_addr}/stream/<name>.m3u8 for players; renditions: {}",
            if renditions.is_empty() {
                "none".to_string()
            } else {
                renditions.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
            }
        );
        Ok(Self {
            stop,
            runtime: Some(runtime),
            tasks,
            keeper,
            groups,
            live,
            rtmp_stats,
            http_stats,
            unknown_codecs,
            refused_streams,
            rtmp_addr,
            http_addr,
            metrics_addr,
            relays,
            webrtc_addr,
            webrtc: hub,
            whip: ingest,
            line: stats::ServeStats::default(),
            started: Instant::now(),
        })
    }

    /// The address publishers connect to (the bound port when 0 was asked for).
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    /// The address players connect to (the bound port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address `/metrics` is served on, when asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The UDP address WebRTC viewers use, when WebRTC is on.
    pub fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.webrtc_addr
    }

    /// WebRTC counts (sessions, refusals, datagrams dropped), when WebRTC is
    /// on; the second figure is datagrams the socket would not take.
    pub fn webrtc_stats(&self) -> Option<(pstream_webrtc::WhepStats, u64)> {
        self.webrtc.as_ref().map(|h| {
            (
                h.stats(),
                h.send_dropped.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// WHIP ingest counts (sessions, offers, media received), when WebRTC
    /// is on; the second figure is Opus packets that did not become AAC.
    pub fn whip_stats(&self) -> Option<(pstream_webrtc::whip::WhipStats, u64)> {
        self.whip.as_ref().map(|i| {
            (
                i.stats(),
                i.audio_errors.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// The live streams: keys, variants, playlists and segments.
    pub fn streams(&self) -> &Arc<LiveStreams> {
        &self.live
    }

    /// True once the server is ending (stop requested, its duration passed,
    /// or its keeper failed: a bug, the server's own stage). A failing
    /// stream's stage ends that stream only.
    pub fn stopping(&self) -> bool {
        self.stop.requested() || self.keeper.failed()
    }

    /// Asks the server to stop; [`HlsServer::wait`] then returns promptly.
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// The stats since the last call: streams, publishers, RTMP connections
    /// and refusals, viewers, then per live stream each variant's frame rate
    /// and drops.
    pub fn stats_line(&mut self) -> String {
        self.line.render(
            &self.live,
            &self.rtmp_stats,
            &self.http_stats,
            &self.unknown_codecs,
            &self.refused_streams,
            &self.relays,
        )
    }

    /// Totals over the whole run: publishes, refusals and what players fetched.
    pub fn summary(&self) -> String {
        stats::summary(
            self.started.elapsed(),
            &self.live,
            &self.rtmp_stats,
            &self.http_stats,
            &self.unknown_codecs,
            &self.refused_streams,
        )
    }

    /// Waits until the server is asked to stop (or its duration passes),
    /// then closes every connection, lets each stream's stages end their
    /// playlists and returns; an error when a server or a stage of the
    /// server itself failed.
    pub fn wait(&mut self) -> Result<()> {
        while !self.stopping() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        self.stop.trigger();
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let tasks = std::mem::take(&mut self.tasks);
        let results = runtime.block_on(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(tokio::time::timeout(DRAIN_LIMIT, t).await);
            }
            out
        });
        // Dropping the runtime drops every connection and so every
        // publisher: their stages drain and end their playlists.
        runtime.shutdown_timeout(Duration::from_secs(2));
        // WHIP publishes end with their sessions' links, as RTMP's with
        // their connections.
        if let Some(ingest) = &self.whip {
            ingest.close_all();
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        while !self.groups.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The keeper stops what is left (a stage stuck past the limit) and joins it.
        self.keeper.stop();
        let kept = self.keeper.wait();
        // Every publisher has gone, so each relay has ended its publish (or
        // is giving up a connect); then their workers go.
        self.relays.stop();
        kept?;
        for r in results {
            if let Ok(Ok(Err(e))) = r {
                return Err(Error::failed("server failed", e));
            }
        }
        Ok(())
    }
}

impl Drop for HlsServer {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_files_skip_comments_and_blanks() {
        let path = std::env::temp_dir().join(format!("pstream-serve-keys-{}", std::process::id()));
        std::fs::write(&path, "# allowed\nalpha\n\n beta  viewers # second\n").expect("write");
        let keys = read_keys(&path).expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].key.as_str(), keys[0].name.as_str()),
            ("alpha", "alpha")
        );
        assert_eq!(
            (keys[1].key.as_str(), keys[1].name.as_str()),
            ("beta", "viewers")
        );
        assert_eq!(keys[1].origin, format!("{}:4", path.display()));
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(matches!(read_keys(&path), Err(Error::Config(_))));
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            read_keys(&path),
            Err(Error::File { action: "read", .. })
        ));
    }

    #[test]
    fn bad_keys_lines_name_their_file_and_line_and_never_show_the_key() {
        let path =
            std::env::temp_dir().join(format!("pstream-serve-badkeys-{}", std::process::id()));
        let cases = [
            ("s3cret one\ns3cret two\n", ":2: key **** already given at "),
            (
                "s3cret one\nother one\n",
                ":2: name \"one\" already given at ",
            ),
            (
                "# c\ns3cret one two\n",
                ":2: relay two: a word after KEY NAME must be a relay URL",
            ),
            (
                "s3cret one rtmp://h/live/k3y rtmp://h/s3cret\n",
                ":1: relay rtmp://h/****: needs both an app and a stream key",
            ),
            ("s3cret ../up\n", ":1: name \"../up\" is not a stream name"),
            ("s3cret/x name\n", ":1: key **** is not a stream key"),
            ("s3cret one\nother s3cret\n", ":2: its name is the key of "),
        ];
        for (text, needle) in cases {
            std::fs::write(&path, text).expect("write");
            let err = read_keys(&path).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let _ = std::fs::remove_file(&path);
        // The builder's lists are checked the same way at start.
        let err = Serve::new()
            .rtmp("127.0.0.1:0")
            .http("127.0.0.1:0")
            .streams([("k1", "same"), ("k2", "same")])
            .start()
            .expect_err("a name twice");
        assert!(
            err.to_string()
                .starts_with("stream 2 of the keys list: name"),
            "{err}"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused_before_anything_binds() {
        let mut config = ServeConfig::new();
        assert!(config.check().is_ok());
        config.segment_seconds = 0.0;
        assert!(config.check().is_err());
        config.segment_seconds = 2.0;
        config.window = 0;
        assert!(config.check().is_err());
        config.window = 6;
        config.max_connections = 0;
        assert!(config.check().is_err());
        config.max_connections = 1;
        config.max_streams = 0;
        assert!(config.check().is_err());
        let mut serve = Serve::new().segment_seconds(100.0);
        assert!(matches!(serve.clone().start(), Err(Error::Config(_))));
        serve.config_mut().segment_seconds = 2.0;
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken = busy.local_addr().expect("addr").to_string();
        let err = serve.rtmp(taken.clone()).http("127.0.0.1:0").start();
        assert!(
            matches!(&err, Err(Error::Listen { service: "RTMP", addr, .. }) if *addr == taken),
            "{err:?}"
        );
    }

    #[test]
    fn a_server_on_port_zero_answers_and_stops() {
        use std::io::{Read, Write};
        let mut server = Serve::new()
            .rtmp("127.0.0.1:0")
            .http("127.0.0.1:0")
            .renditions([])
            .metrics("127.0.0.1:0")
            .start()
            .expect("start");
        assert_ne!(server.rtmp_addr().port(), 0);
        assert_ne!(server.http_addr().port(), 0);
        let mut conn = std::net::TcpStream::connect(server.http_addr()).expect("connect");
        conn.write_all(b"GET /stream/nobody.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        let metrics = server.metrics_addr().expect("metrics address");
        let mut conn = std::net::TcpStream::connect(metrics).expect("connect");
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut scrape = String::new();
        let _ = conn.read_to_string(&mut scrape);
        assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
        // The players' request above was counted, as a 404.
        assert!(
            scrape.contains("pstream_http_requests_total{kind=\"not_found\"} 1\n"),
            "{scrape}"
        );
        // A publisher's TCP connection is accepted (the RTMP server is up).
        assert!(std::net::TcpStream::connect(server.rtmp_addr()).is_ok());
        assert!(server.stats_line().starts_with("streams 0 | publishers 0"));
        assert!(!server.stopping());
        server.stop();
        assert!(server.stopping());
        server.wait().expect("clean stop");
        assert!(
            server.summary().contains("http requests 1"),
            "{}",
            server.summary()
        );
    }
}
