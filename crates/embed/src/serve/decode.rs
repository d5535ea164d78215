//! A stream's one H.264 decode, shared by its renditions.
//!
//! The publisher's units come in through a drop-oldest queue bounded in
//! units and bytes; each picture decoded is handed to every rendition's
//! stage through a queue of its own, as a clone of one shared buffer (the
//! planes are not copied per rendition), and audio goes along in order. A
//! rendition that falls behind loses its own oldest pictures and counts
//! them; the decode, the other renditions and the publisher (which only
//! ever queues) go on. A gap in the decoder's own input (its queue dropped
//! units) skips to the next keyframe, and counts for every rendition.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pstream_codec::{SourceDecoder, SourcePicture};
use pstream_core::{link_bytes, Codec, EncodedUnit, LinkReceiver, LinkSender, Recv, Weigh};

use super::live::LiveVariant;
use crate::run::Stop;
use crate::Result;

/// How often the decode stage waiting for units looks at its group's stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Items waiting for one rendition's scale and encode: about 1.5 s of
/// 30 fps pictures plus AAC.
const PICTURE_QUEUE: usize = 120;
/// Picture bytes waiting for one rendition (10 pictures of 1080p, 22 of
/// 720p). Pictures are shared, so every rendition of a stream together
/// holds no more than the one furthest behind.
const PICTURE_QUEUE_BYTES: usize = 32 << 20;

/// What a variant's stage takes: the publisher's units (the source's, and
/// a rendition's audio), or a decoded picture for a rendition to encode.
#[derive(Debug, Clone)]
pub(crate) enum Feed {
    /// An access unit as published.
    Unit(EncodedUnit),
    /// A decoded source picture (shared with the stream's other renditions).
    Picture(SourcePicture),
}

impl Weigh for Feed {
    fn weight(&self) -> usize {
        match self {
            Feed::Unit(u) => u.weight(),
            Feed::Picture(p) => p.frame.weight(),
        }
    }
}

/// The queue from the decode stage to one rendition's stage.
pub(crate) fn picture_queue() -> (LinkSender<Feed>, LinkReceiver<Feed>) {
    link_bytes(PICTURE_QUEUE, PICTURE_QUEUE_BYTES)
}

/// One rendition fed by the decode stage.
pub(crate) struct Fanout {
    /// Into the rendition's stage.
    pub(crate) tx: LinkSender<Feed>,
    /// Where drops before the decoder are counted for it.
    pub(crate) variant: Arc<LiveVariant>,
}

/// The decode stage: units in, pictures (and audio) out to every rendition.
pub(crate) struct DecodeStage {
    /// `None` for a stream without video: audio is passed on.
    pub(crate) decoder: Option<SourceDecoder>,
    pub(crate) outs: Vec<Fanout>,
}

impl DecodeStage {
    /// Decodes what arrives until the publisher's link closes (after
    /// draining it) or the group's `stop` is set; the renditions' queues
    /// close when it returns, so they drain and end after it.
    pub(crate) fn run(mut self, rx: LinkReceiver<Feed>, stop: &Stop) -> Result<()> {
        let mut drops_seen = 0;
        while !stop.requested() {
            let feed = match rx.recv_timeout(STOP_POLL) {
                Recv::Item(feed) => feed,
                Recv::Timeout => continue,
                Recv::Closed => break,
            };
            let drops = rx.dropped();
            self.take(feed, drops - drops_seen);
            drops_seen = drops;
        }
        Ok(())
    }

    /// Decodes (or passes on) one item that came after `lost` items the
    /// input queue dropped, and hands the result to every rendition.
    fn take(&mut self, feed: Feed, lost: u64) {
        if lost > 0 {
            // Every rendition lost those units.
            for out in &self.outs {
                out.variant.dropped.fetch_add(lost, Ordering::Relaxed);
            }
            if let Some(d) = &mut self.decoder {
                d.resync();
            }
        }
        let out = match feed {
            Feed::Unit(unit) if unit.codec == Codec::H264 => {
                let Some(d) = &mut self.decoder else { return };
                match d.push(&unit) {
                    Some(picture) => Feed::Picture(picture),
                    None => return,
                }
            }
            other => other,
        };
        // A rendition whose stage has gone only loses its own feed.
        for o in &self.outs {
            let _ = o.tx.send(out.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::live::{LiveStream, LiveStreams, PublishClaim};
    use crate::serve::SOURCE;
    use bytes::Bytes;
    use pstream_codec::{H264Config, H264Encoder, H264Preset};
    use pstream_core::{link, VideoFrame};
    use pstream_mux::HlsConfig;
    use std::time::Instant;

    /// `n` units of a moving 320x240 pattern, an IDR every 10 pictures.
    fn units(n: u64) -> Vec<EncodedUnit> {
        let mut enc = H264Encoder::new(H264Config {
            width: 320,
            height: 240,
            fps: 30.0,
            bitrate_bps: 500_000,
            keyint_frames: 10,
            threads: 1,
            preset: H264Preset::Fast,
        })
        .expect("encoder");
        let start = Instant::now();
        (0..n)
            .filter_map(|i| {
                let pts = Duration::from_millis(i * 1000 / 30);
                let mut data = vec![128u8; VideoFrame::byte_len(320, 240)];
                for (j, p) in data.iter_mut().enumerate().take(320 * 240) {
                    *p = ((j as u64 + i * 5) % 199) as u8;
                }
                let f =
                    VideoFrame::new(320, 240, Bytes::from(data), start + pts, pts).expect("frame");
                enc.encode(&f).expect("encode")
            })
            .collect()
    }

    fn audio() -> EncodedUnit {
        EncodedUnit {
            codec: Codec::Aac,
            keyframe: true,
            pts: Duration::ZERO,
            dts: None,
            capture: Instant::now(),
            data: Bytes::from_static(&[1, 2, 3]),
        }
    }

    /// A live stream with the source and renditions `a` and `b`.
    fn stream(live: &LiveStreams) -> (PublishClaim, Arc<LiveStream>) {
        let variants: Vec<(String, u64)> = [SOURCE, "a", "b"]
            .iter()
            .map(|n| (n.to_string(), 0))
            .collect();
        let claim = live
            .begin("k", &variants, &HlsConfig::default())
            .expect("config")
            .expect("free");
        let stream = claim.stream().clone();
        (claim, stream)
    }

    /// Everything queued, in order: pictures' pts, and `None` for audio.
    fn drain(rx: &LinkReceiver<Feed>) -> Vec<(Option<Duration>, Option<SourcePicture>)> {
        let mut out = Vec::new();
        while let Recv::Item(f) = rx.recv_timeout(Duration::ZERO) {
            out.push(match f {
                Feed::Picture(p) => (Some(p.frame.pts), Some(p)),
                Feed::Unit(_) => (None, None),
            });
        }
        out
    }

    #[test]
    fn one_decode_feeds_shared_pictures_and_a_stalled_rendition_drops_only_its_own() {
        let live = LiveStreams::new();
        let (_claim, stream) = stream(&live);
        let (a_tx, a_rx) = picture_queue();
        // Rendition b's stage is stuck (never reads): a queue of 4.
        let (b_tx, b_rx) = link_bytes::<Feed>(4, PICTURE_QUEUE_BYTES);
        let stage = DecodeStage {
            decoder: Some(SourceDecoder::new().expect("decoder")),
            outs: vec![
                Fanout {
                    tx: a_tx,
                    variant: stream.variants()[1].clone(),
                },
                Fanout {
                    tx: b_tx,
                    variant: stream.variants()[2].clone(),
                },
            ],
        };
        let all = units(40);
        let (in_tx, in_rx) = link::<Feed>(100);
        in_tx.send(Feed::Unit(audio())).expect("open");
        for u in &all {
            in_tx.send(Feed::Unit(u.clone())).expect("open");
        }
        drop(in_tx);
        // The publisher has gone: the stage drains its queue and ends.
        stage.run(in_rx, &Stop::new()).expect("clean end");
        let a = drain(&a_rx);
        assert_eq!(a[0].0, None, "audio goes along, in order");
        let a_pts: Vec<Duration> = a.iter().filter_map(|(p, _)| *p).collect();
        let pts: Vec<Duration> = all.iter().map(|u| u.pts).collect();
        assert_eq!(a_pts, pts, "the reading rendition got every picture");
        // The stuck one kept its newest 4 and counted the rest.
        let b = drain(&b_rx);
        assert_eq!(b.len(), 4);
        assert_eq!(b[3].0, Some(all[all.len() - 1].pts));
        assert_eq!(b_rx.dropped(), all.len() as u64 + 1 - 4);
        // Both got the same buffer: one decode, no copy per rendition.
        let (Some(pa), Some(pb)) = (&a[a.len() - 1].1, &b[3].1) else {
            panic!("pictures at the end");
        };
        assert_eq!(pa.frame.data().as_ptr(), pb.frame.data().as_ptr());
        assert_eq!(stream.variants()[1].dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_gap_before_the_decoder_skips_to_the_next_keyframe_for_every_rendition() {
        let live = LiveStreams::new();
        let (_claim, stream) = stream(&live);
        let (a_tx, a_rx) = picture_queue();
        let (b_tx, b_rx) = picture_queue();
        let mut stage = DecodeStage {
            decoder: Some(SourceDecoder::new().expect("decoder")),
            outs: vec![
                Fanout {
                    tx: a_tx,
                    variant: stream.variants()[1].clone(),
                },
                Fanout {
                    tx: b_tx,
                    variant: stream.variants()[2].clone(),
                },
            ],
        };
        let all = units(40);
        let keys: Vec<usize> = (0..all.len()).filter(|&i| all[i].keyframe).collect();
        assert!(keys.len() >= 3, "{keys:?}");
        // Three P units after the second keyframe are lost on the way in.
        let gap = keys[1] + 2;
        for u in &all[..gap] {
            stage.take(Feed::Unit(u.clone()), 0);
        }
        stage.take(Feed::Unit(all[gap + 3].clone()), 3);
        for u in &all[gap + 4..] {
            stage.take(Feed::Unit(u.clone()), 0);
        }
        let want: Vec<Duration> = all[..gap]
            .iter()
            .chain(&all[keys[2]..])
            .map(|u| u.pts)
            .collect();
        for (rx, variant) in [(&a_rx, 1), (&b_rx, 2)] {
            let got: Vec<Duration> = drain(rx).iter().filter_map(|(p, _)| *p).collect();
            assert_eq!(got, want, "no picture from a missing reference");
            assert_eq!(
                stream.variants()[variant].dropped.load(Ordering::Relaxed),
                3
            );
        }
    }
}
