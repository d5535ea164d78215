//! One variant's stage: the publisher's units in (for the source, and a
//! rendition's audio) or the stream's decoded pictures (a rendition's
//! video, scaled and encoded here), segments out, mirrored to disk.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_codec::RenditionEncoder;
use pstream_core::{Codec, LinkReceiver, Recv};
use pstream_mux::hls::HlsEvent;
use pstream_mux::{HlsSegmenter, TsStreams};

use super::decode::Feed;
use super::hls_dir::HlsDir;
use super::live::{LiveStream, LiveVariant, SOURCE};
use super::relay::RenditionRelay;
use super::webrtc::Hub;
use crate::run::Stop;
use crate::Result;

/// How often a stage waiting for units looks at its group's stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One variant's thread: units in, segments out.
pub(crate) struct VariantStage {
    pub(crate) stream: Arc<LiveStream>,
    pub(crate) variant: Arc<LiveVariant>,
    /// For a rendition of a stream with video: scales and encodes the
    /// pictures that come; `None` for the source (units pass through).
    pub(crate) encoder: Option<RenditionEncoder>,
    pub(crate) streams: TsStreams,
    pub(crate) hls_dir: Option<HlsDir>,
    /// The relays of this rendition, fed its output.
    pub(crate) relay: Option<RenditionRelay>,
    /// For a rendition with WebRTC on: the sessions, and its feed's name
    /// (`<stream>/<rendition>`), given its H.264.
    pub(crate) webrtc: Option<(Arc<Hub>, String)>,
}

impl VariantStage {
    /// Segments what arrives until the publisher's link closes (after
    /// draining it) or the group's `stop` is set (at once), then ends the
    /// playlist.
    pub(crate) fn run(mut self, rx: LinkReceiver<Feed>, stop: &Stop) -> Result<()> {
        // A returning publisher continues the playlist after a discontinuity.
        let events = {
            let mut seg = self.variant.segmenter();
            seg.restart(self.streams, Instant::now());
            drain(&mut seg)
        };
        mirror(&self.hls_dir, &self.stream, &self.variant, events);
        let mut drops_seen = 0;
        let mut warned = false;
        while !stop.requested() {
            let feed = match rx.recv_timeout(STOP_POLL) {
                Recv::Item(feed) => feed,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            // The decode stage counts what is lost before it; this queue's
            // losses are added here. Lost pictures need no resync: the
            // encoder's own references are intact.
            let drops = rx.dropped();
            if drops != drops_seen {
                self.variant
                    .dropped
                    .fetch_add(drops - drops_seen, Ordering::Relaxed);
                drops_seen = drops;
            }
            let unit = match (feed, &mut self.encoder) {
                (Feed::Unit(unit), _) => unit,
                (Feed::Picture(picture), Some(e)) => match e.push(&picture) {
                    Ok(Some(u)) => u,
                    Ok(None) => continue,
                    Err(e) => {
                        if !warned {
                            tracing::warn!("{}/{}: {e}", self.stream.key(), self.variant.name());
                            warned = true;
                        }
                        continue;
                    }
                },
                (Feed::Picture(_), None) => continue,
            };
            if let Some((hub, feed)) = &self.webrtc {
                hub.unit(feed, &unit);
            }
            if let Some(relay) = &mut self.relay {
                relay.push(&unit, self.encoder.as_ref().and_then(|e| e.output_size()));
            }
            let is_video = unit.codec == Codec::H264;
            let events = {
                let mut seg = self.variant.segmenter();
                // A unit the muxer refuses is counted by the segmenter.
                let _ = seg.push(&unit, Instant::now());
                drain(&mut seg)
            };
            if is_video {
                self.variant.frames.fetch_add(1, Ordering::Relaxed);
            }
            mirror(&self.hls_dir, &self.stream, &self.variant, events);
        }
        end_playlist(&self.hls_dir, &self.stream, &self.variant);
        Ok(())
    }
}

/// Ends `variant`'s playlist (`EXT-X-ENDLIST`; nothing when already ended)
/// and mirrors that.
pub(crate) fn end_playlist(hls_dir: &Option<HlsDir>, stream: &LiveStream, variant: &LiveVariant) {
    let events = {
        let mut seg = variant.segmenter();
        seg.end(Instant::now());
        drain(&mut seg)
    };
    mirror(hls_dir, stream, variant, events);
}

/// Counts the segments cut, and writes events to the disk mirror, and the
/// master playlist with each new source segment.
fn mirror(
    hls_dir: &Option<HlsDir>,
    stream: &LiveStream,
    variant: &LiveVariant,
    events: Vec<(HlsEvent, Bytes)>,
) {
    let cut = events
        .iter()
        .filter(|(e, _)| matches!(e, HlsEvent::SegmentReady { .. }))
        .count();
    variant.segments.fetch_add(cut as u64, Ordering::Relaxed);
    let Some(dir) = hls_dir else { return };
    let key = stream.key();
    let mut master = false;
    for (event, playlist) in &events {
        if let Err(e) = dir.apply(key, variant.name(), event, playlist) {
            tracing::warn!("HLS mirror {}: {e}", dir.root().display());
        }
        master |= matches!(event, HlsEvent::SegmentReady { .. }) && variant.name() == SOURCE;
    }
    if master {
        if let Err(e) = dir.write_master(key, &stream.master_playlist()) {
            tracing::warn!("HLS mirror {}: {e}", dir.root().display());
        }
    }
}

/// Takes the segmenter's pending events, each with the playlist current after it.
fn drain(seg: &mut HlsSegmenter) -> Vec<(HlsEvent, Bytes)> {
    let mut out = Vec::new();
    while let Some(e) = seg.poll_event() {
        out.push((e, seg.playlist()));
    }
    out
}
