//! The live streams a server holds: per stream key, the source and each
//! rendition as an [`HlsSegmenter`], and who is publishing.
//!
//! [`LiveStreams::begin`] claims a key for a publisher (refusing a key
//! that is already live) and hands out a [`PublishClaim`] for that publish
//! session; [`LiveStream::stages_started`] and
//! [`LiveStream::stages_finished`] bracket the session's stages feeding
//! the segmenters. Once the claim is released (the publisher has gone, or
//! one of its stages failed) and the stages have finished, the key is free
//! again. A returning publisher gets the same segmenters back, so its
//! playlists continue after a discontinuity. The playlist and segment
//! lookups are what an HTTP server needs; ended streams are kept for
//! [`LiveStreams::evict_ended`] to drop later, so the memory held is
//! bounded by the streams of the last few minutes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use pstream_mux::hls::{master_playlist, HlsConfig, HlsError, HlsSegmenter, Variant};
use pstream_mux::ts::TsStreams;
use pstream_transport::http::Resource;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The name of the source variant in URLs.
pub const SOURCE: &str = "source";

/// One variant of a stream: the source or a rendition.
#[derive(Debug)]
pub struct LiveVariant {
    name: String,
    nominal_bps: u64,
    segmenter: Mutex<HlsSegmenter>,
    /// Units written to the segmenter (video frames for the stats line).
    pub frames: AtomicU64,
    /// Units dropped on the way to this variant (queue overflow).
    pub dropped: AtomicU64,
    /// Segments cut so far (for `/metrics`).
    pub segments: AtomicU64,
}

impl LiveVariant {
    /// The variant's name: [`SOURCE`] or a rendition name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segmenter, locked (a poisoned lock is taken over: segmenters stay consistent).
    pub fn segmenter(&self) -> MutexGuard<'_, HlsSegmenter> {
        self.segmenter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
struct State {
    publishing: bool,
    stages: usize,
    ended_at: Option<Instant>,
    sessions: u64,
}

/// One stream key's variants and publish state.
#[derive(Debug)]
pub struct LiveStream {
    key: String,
    variants: Vec<Arc<LiveVariant>>,
    state: Mutex<State>,
}

impl LiveStream {
    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The variants, source first.
    pub fn variants(&self) -> &[Arc<LiveVariant>] {
        &self.variants
    }

    /// A variant by name.
    pub fn variant(&self, name: &str) -> Option<&Arc<LiveVariant>> {
        self.variants.iter().find(|v| v.name == name)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a publisher (or a stage still draining its media) holds the key.
    pub fn is_live(&self) -> bool {
        let s = self.state();
        s.publishing || s.stages > 0
    }

    /// How many publish sessions this key has had (1 for the first).
    pub fn sessions(&self) -> u64 {
        self.state().sessions
    }

    /// The stages of a publish session have started feeding the segmenters.
    pub fn stages_started(&self) {
        self.state().stages += 1;
    }

    /// The stages of a publish session have all returned and the playlists
    /// are ended: the key frees once the claim is released too.
    pub fn stages_finished(&self) {
        let mut s = self.state();
        s.stages = s.stages.saturating_sub(1);
        if !s.publishing && s.stages == 0 {
            s.ended_at = Some(Instant::now());
        }
    }

    /// The publisher has gone; the key frees once every stage has finished.
    fn publisher_gone(&self) {
        let mut s = self.state();
        s.publishing = false;
        if s.stages == 0 {
            s.ended_at = Some(Instant::now());
        }
    }

    /// The master playlist: the source, then each rendition, with
    /// `BANDWIDTH` (measured peak, or nominal before the first segment),
    /// `RESOLUTION` and `CODECS` once known. URIs are `<key>/<variant>.m3u8`.
    pub fn master_playlist(&self) -> Bytes {
        let variants: Vec<Variant> = self
            .variants
            .iter()
            .map(|v| {
                let seg = v.segmenter();
                let measured = seg.peak_bandwidth_bps();
                Variant {
                    uri: format!("{}/{}.m3u8", self.key, v.name),
                    bandwidth_bps: if measured > 0 {
                        measured
                    } else {
                        v.nominal_bps
                    },
                    resolution: seg.resolution(),
                    codecs: seg.codecs(),
                    frame_rate: None,
                }
            })
            .collect();
        Bytes::from(master_playlist(&variants))
    }
}

/// One publish session's hold on its key, from [`LiveStreams::begin`]:
/// the key stays busy until [`PublishClaim::release`] (or the drop of the
/// last holder). Releasing twice is harmless, so the publisher going and
/// its stages failing may both release it, and a session that has let go
/// can never free a key a later session holds.
#[derive(Debug)]
pub struct PublishClaim {
    stream: Arc<LiveStream>,
    session: u64,
    released: AtomicBool,
}

impl PublishClaim {
    /// The stream claimed.
    pub fn stream(&self) -> &Arc<LiveStream> {
        &self.stream
    }

    /// The session number of this publish (1 for the key's first).
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Lets go of the key (once); it frees when the session's stages have finished.
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.stream.publisher_gone();
        }
    }
}

impl Drop for PublishClaim {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every stream key a server has seen recently (see the module docs).
#[derive(Debug, Default)]
pub struct LiveStreams {
    streams: RwLock<HashMap<String, Arc<LiveStream>>>,
}

/// Why a key cannot be published now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBusy;

impl LiveStreams {
    /// No streams.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims `key` for a new publisher. A new key gets one segmenter per
    /// entry of `variants` (name, nominal bits per second), each with
    /// `config` and the URI prefix `<name>/`; a returning key keeps its own.
    pub fn begin(
        &self,
        key: &str,
        variants: &[(String, u64)],
        config: &HlsConfig,
    ) -> Result<Result<PublishClaim, KeyBusy>, HlsError> {
        let claim = |stream: &Arc<LiveStream>, session| PublishClaim {
            stream: stream.clone(),
            session,
            released: AtomicBool::new(false),
        };
        let mut map = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = map.get(key) {
            let mut s = stream.state();
            if s.publishing || s.stages > 0 {
                return Ok(Err(KeyBusy));
            }
            s.publishing = true;
            s.ended_at = None;
            s.sessions += 1;
            let session = s.sessions;
            drop(s);
            return Ok(Ok(claim(stream, session)));
        }
        let mut list = Vec::with_capacity(variants.len());
        for (name, nominal_bps) in variants {
            let config = HlsConfig {
                uri_prefix: format!("{name}/"),
                // Segment names unique to this segmenter, so that no URL
                // cached as immutable ever names another segment.
                session: format!("{:016x}", StdRng::from_os_rng().random::<u64>()),
                ..config.clone()
            };
            let segmenter = HlsSegmenter::new(
                config,
                TsStreams {
                    video: true,
                    audio: None,
                },
            )?;
            list.push(Arc::new(LiveVariant {
                name: name.clone(),
                nominal_bps: *nominal_bps,
                segmenter: Mutex::new(segmenter),
                frames: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                segments: AtomicU64::new(0),
            }));
        }
        let stream = Arc::new(LiveStream {
            key: key.to_string(),
            variants: list,
            state: Mutex::new(State {
                publishing: true,
                stages: 0,
                ended_at: None,
                sessions: 1,
            }),
        });
        map.insert(key.to_string(), stream.clone());
        Ok(Ok(claim(&stream, 1)))
    }

    /// A stream by key.
    pub fn get(&self, key: &str) -> Option<Arc<LiveStream>> {
        let map = self.streams.read().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Every stream, in no particular order.
    pub fn all(&self) -> Vec<Arc<LiveStream>> {
        let map = self.streams.read().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    /// Drops streams that ended more than `age` ago; returns their keys.
    pub fn evict_ended(&self, age: Duration) -> Vec<String> {
        let mut map = self.streams.write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let old: Vec<String> = map
            .iter()
            .filter(|(_, s)| {
                let st = s.state();
                !st.publishing
                    && st.stages == 0
                    && st.ended_at.is_some_and(|t| now.duration_since(t) >= age)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            map.remove(k);
        }
        old
    }

    /// The master playlist of `key`; it changes with its variants' playlists
    /// (the measured `BANDWIDTH`), so it was modified when the newest of them was.
    pub fn master_playlist(&self, key: &str) -> Option<Resource> {
        let stream = self.get(key)?;
        let body = stream.master_playlist();
        let (mut modified, mut refresh) = (None, Duration::ZERO);
        for v in &stream.variants {
            let seg = v.segmenter();
            modified = modified.max(seg.playlist_modified());
            refresh = seg.config().target_duration;
        }
        Some(Resource {
            body,
            modified,
            refresh,
        })
    }

    /// The media playlist of `variant` of `key`.
    pub fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource> {
        let stream = self.get(key)?;
        let v = stream.variant(variant)?;
        let seg = v.segmenter();
        Some(Resource {
            body: seg.playlist(),
            modified: seg.playlist_modified(),
            refresh: seg.config().target_duration,
        })
    }

    /// Segment `name` (`<session>-<sequence>.ts`) of `variant` of `key`.
    pub fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource> {
        let stream = self.get(key)?;
        let v = stream.variant(variant)?;
        let seg = v.segmenter();
        let s = seg.segment(name)?;
        Some(Resource {
            body: s.data.clone(),
            modified: Some(s.closed_at),
            refresh: seg.config().target_duration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants() -> Vec<(String, u64)> {
        vec![
            (SOURCE.to_string(), 1_000_000),
            ("P144p30fps16x9".to_string(), 500_000),
        ]
    }

    #[test]
    fn a_live_key_is_busy_until_its_stages_finish() {
        let live = LiveStreams::new();
        let cfg = HlsConfig::default();
        let first = live
            .begin("k", &variants(), &cfg)
            .expect("config")
            .expect("free");
        let s = first.stream().clone();
        assert_eq!(first.session(), 1);
        assert!(matches!(
            live.begin("k", &variants(), &cfg).expect("config"),
            Err(KeyBusy)
        ));
        s.stages_started();
        first.release();
        assert!(s.is_live(), "a stage is still draining");
        assert!(live.begin("k", &variants(), &cfg).expect("config").is_err());
        s.stages_finished();
        assert!(!s.is_live());
        let again = live
            .begin("k", &variants(), &cfg)
            .expect("config")
            .expect("free");
        assert!(
            Arc::ptr_eq(&s, again.stream()),
            "same segmenters for a returning publisher"
        );
        assert_eq!(again.session(), 2);
        assert_eq!(s.sessions(), 2);
        // The first session letting go again (its publisher's connection
        // closing after its stages failed) leaves the second's hold alone.
        first.release();
        drop(first);
        assert!(s.is_live());
        assert!(live.begin("k", &variants(), &cfg).expect("config").is_err());
        drop(again);
        assert!(!s.is_live());
        assert!(live.evict_ended(Duration::from_secs(60)).is_empty());
        assert_eq!(live.evict_ended(Duration::ZERO), vec!["k".to_string()]);
        assert!(live.get("k").is_none());
    }

    #[test]
    fn lookups_and_master_playlist() {
        let live = LiveStreams::new();
        live.begin("k", &variants(), &HlsConfig::default())
            .expect("config")
            .expect("free");
        let master = live.master_playlist("k").expect("master");
        let text = String::from_utf8_lossy(&master.body);
        assert!(text.contains("BANDWIDTH=1000000\nk/source.m3u8"), "{text}");
        assert!(
            text.contains("BANDWIDTH=500000\nk/P144p30fps16x9.m3u8"),
            "{text}"
        );
        assert!(live.media_playlist("k", "source").is_some());
        assert!(live.media_playlist("k", "nope").is_none());
        assert!(live.media_playlist("x", "source").is_none());
        assert!(live.segment("k", "source", "0.ts").is_none());
    }
}
