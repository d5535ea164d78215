//! The WebRTC side of the server: the UDP driver around the sans-IO
//! [`pstream_webrtc::Whep`]. One socket carries every viewer session; the
//! HTTP server hands it offers and DELETEs, the publishers their video
//! (and the rendition stages theirs), and one task feeds it datagrams and
//! the time and sends what it gives. [`AacToOpus`] turns a publish's AAC
//! into the Opus browsers play over WebRTC, while the stream has viewers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pstream_codec::{AacDecoder, CodecError, OpusApplication, OpusConfig, OpusEncoder, Resampler};
use pstream_core::{AudioBlock, Codec, EncodedUnit};
use pstream_mux::AudioSpecificConfig;
use pstream_transport::http::WhepAnswer;
use pstream_webrtc::{AudioFrame, Transmit, VideoFrame, Whep, WhepError, WhepStats};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::run::Stop;

/// Datagrams read in one go before the sessions are polled again.
const RECV_BATCH: usize = 64;

/// The sessions, shared by the driver task, the HTTP server and the publishers.
pub(crate) struct Hub {
    whep: Mutex<Whep>,
    /// Wakes the driver: an offer, a DELETE or a frame to send.
    wake: Notify,
    /// Datagrams the socket would not take (its send buffer full).
    pub(crate) send_dropped: AtomicU64,
}

impl Hub {
    pub(crate) fn new(whep: Whep) -> Self {
        Self {
            whep: Mutex::new(whep),
            wake: Notify::new(),
            send_dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Whep> {
        // A panic while holding the lock leaves the sessions consistent
        // enough to go on serving (each call finishes or drops its session).
        self.whep.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address named in candidates (WHIP's sessions name it too).
    pub(crate) fn advertised(&self) -> SocketAddr {
        self.lock().config().advertised
    }

    /// Counts so far, with the socket's refusals.
    pub(crate) fn stats(&self) -> WhepStats {
        self.lock().stats()
    }

    /// A viewer's offer for `stream`'s source, or for its `rendition`.
    pub(crate) fn offer(&self, stream: &str, rendition: Option<&str>, sdp: &str) -> WhepAnswer {
        let result = self
            .lock()
            .offer_variant(Instant::now(), stream, rendition, sdp);
        self.wake.notify_one();
        match result {
            Ok((id, sdp)) => WhepAnswer::Created { id, sdp },
            Err(e @ WhepError::BadOffer(_)) => WhepAnswer::BadOffer(e.to_string()),
            Err(e @ WhepError::NoCodec) => WhepAnswer::NoCodec(e.to_string()),
            Err(e) => WhepAnswer::Busy(e.to_string()),
        }
    }

    /// A viewer's DELETE.
    pub(crate) fn close(&self, stream: &str, id: &str) -> bool {
        self.lock().close(stream, id)
    }

    /// Whether `stream` has viewers (of its source or a rendition).
    pub(crate) fn watched(&self, stream: &str) -> bool {
        self.lock().watched(stream)
    }

    /// Opus packets of `stream`, for all its viewers.
    pub(crate) fn audio(&self, stream: &str, frames: &[AudioFrame]) {
        if frames.is_empty() {
            return;
        }
        let mut whep = self.lock();
        for f in frames {
            whep.audio(stream, f);
        }
        drop(whep);
        self.wake.notify_one();
    }

    /// A video unit of `feed` (a stream's name for its source, or
    /// `<stream>/<rendition>`): H.264 goes to its viewers, if any.
    pub(crate) fn unit(&self, feed: &str, unit: &EncodedUnit) {
        if unit.codec != Codec::H264 {
            return;
        }
        let mut whep = self.lock();
        if !whep.wants_video(feed) {
            return;
        }
        let frame = VideoFrame {
            data: Arc::from(&unit.data[..]),
            keyframe: unit.keyframe,
            pts: unit.pts,
        };
        whep.video(feed, &frame);
        drop(whep);
        self.wake.notify_one();
    }
}

/// Runs the sessions on `socket` until `stop` is set.
pub(crate) async fn drive(
    hub: Arc<Hub>,
    whip: Option<Arc<super::whip::Ingest>>,
    socket: UdpSocket,
    stop: Stop,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut out: Vec<Transmit> = Vec::new();
    while !stop.requested() {
        let mut next = hub.lock().poll(Instant::now(), &mut out);
        if let Some(whip) = &whip {
            next = next.min(whip.poll(Instant::now(), &mut out));
        }
        for t in out.drain(..) {
            // Never wait on the socket: a full send buffer costs the
            // datagram (counted; NACK/RTX or the next key frame repair it),
            // not every other viewer's turn.
            if socket.try_send_to(&t.data, t.destination).is_err() {
                hub.send_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    let mut whep = hub.lock();
                    let now = Instant::now();
                    // WHIP publishers first: what none of them takes is
                    // the viewers' (or dropped and counted there).
                    let mut take = |from, data: &[u8]| {
                        if !whip.as_ref().is_some_and(|w| w.receive(now, from, data)) {
                            whep.receive(now, from, data);
                        }
                    };
                    take(from, &buf[..n]);
                    // Take what else is waiting while the lock is held.
                    for _ in 1..RECV_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => take(from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = hub.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    Ok(())
}

/// The address to advertise in candidates: `ip` when given, else the bound
/// address, or 127.0.0.1 when bound to every interface (with a warning:
/// remote viewers need `--webrtc-ip`).
pub(crate) fn advertised(bound: SocketAddr, ip: Option<std::net::IpAddr>) -> SocketAddr {
    match ip {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None if bound.ip().is_unspecified() => {
            tracing::warn!(
                "WebRTC bound to {bound} with no --webrtc-ip: candidates name 127.0.0.1, so only viewers on this machine can play WHEP"
            );
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
        }
        None => bound,
    }
}

/// Opus bitrate per channel: transparent enough for a stream's audio.
const OPUS_BPS_PER_CHANNEL: u32 = 48_000;

/// A publish's AAC turned into 48 kHz Opus in 20 ms packets: decoded,
/// resampled when not at 48 kHz, encoded. One per stream, made when the
/// stream has WebRTC viewers, dropped when it has none.
pub(crate) struct AacToOpus {
    decoder: AacDecoder,
    in_rate: u32,
    /// Made at the first decoded frame, when the channels are known.
    chain: Option<(Option<Resampler>, OpusEncoder, u16)>,
    /// The first unit's pts: the Opus timeline counts samples from it.
    start: Option<Duration>,
    /// 48 kHz frames handed to the encoder so far.
    frames_out: u64,
    resampled: Vec<f32>,
}

impl AacToOpus {
    /// A converter for the AAC `asc` describes.
    pub(crate) fn new(asc: AudioSpecificConfig) -> Result<Self, CodecError> {
        // The two bytes of an AudioSpecificConfig (ISO 14496-3 1.6.2.1).
        let bytes = [
            asc.object_type << 3 | asc.frequency_index >> 1,
            (asc.frequency_index & 1) << 7 | asc.channel_config << 3,
        ];
        Ok(Self {
            decoder: AacDecoder::new(&bytes)?,
            in_rate: asc.sample_rate(),
            chain: None,
            start: None,
            frames_out: 0,
            resampled: Vec::new(),
        })
    }

    /// One raw AAC frame in; the Opus packets now complete out.
    pub(crate) fn push(&mut self, unit: &EncodedUnit) -> Result<Vec<AudioFrame>, CodecError> {
        let pcm = self.decoder.decode(&unit.data)?;
        let channels = self.decoder.channels();
        if pcm.is_empty() || channels == 0 {
            return Ok(Vec::new());
        }
        // Opus carries one or two channels: more are cut to the first two.
        let out_channels = channels.min(2);
        let pcm: Vec<f32> = if channels > 2 {
            pcm.chunks_exact(usize::from(channels))
                .flat_map(|f| [f[0], f[1]])
                .collect()
        } else {
            pcm
        };
        if self.chain.as_ref().is_none_or(|c| c.2 != out_channels) {
            let resampler = (self.in_rate != 48_000)
                .then(|| Resampler::new(self.in_rate, 48_000, out_channels))
                .transpose()?;
            let encoder = OpusEncoder::new(OpusConfig {
                channels: out_channels,
                bitrate_bps: OPUS_BPS_PER_CHANNEL * u32::from(out_channels),
                application: OpusApplication::Audio,
            })?;
            self.chain = Some((resampler, encoder, out_channels));
            self.start = Some(unit.pts);
            self.frames_out = 0;
        }
        let Some((resampler, encoder, _)) = &mut self.chain else {
            return Ok(Vec::new());
        };
        let samples = match resampler {
            Some(r) => {
                self.resampled.clear();
                r.process(&pcm, &mut self.resampled);
                std::mem::take(&mut self.resampled)
            }
            None => pcm,
        };
        let frames = samples.len() / usize::from(out_channels);
        // A continuous timeline from the first unit on (the resampler's
        // output lines up with its input), so packets never overlap.
        let pts = self.start.unwrap_or(unit.pts)
            + Duration::from_micros(self.frames_out * 1_000_000 / 48_000);
        self.frames_out += frames as u64;
        let block = AudioBlock {
            sample_rate: 48_000,
            channels: out_channels,
            samples,
            capture: unit.capture,
            pts,
        };
        let units = encoder.encode(&block)?;
        self.resampled = block.samples;
        Ok(units
            .into_iter()
            .map(|u| AudioFrame {
                data: Arc::from(&u.data[..]),
                pts: u.pts,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pstream_codec::{AacConfig, AacEncoder, OpusDecoder};

    /// 44.1 kHz stereo AAC of a 440 Hz tone, turned into Opus and decoded
    /// again: 20 ms packets on a 20 ms timeline, carrying the tone.
    #[test]
    fn aac_at_44_1_khz_becomes_opus_at_48() {
        let rate = 44_100;
        let mut aac = AacEncoder::new(AacConfig {
            sample_rate: rate,
            channels: 2,
            bitrate_bps: 128_000,
        })
        .expect("AAC encoder");
        let asc = AudioSpecificConfig::parse(&aac.audio_specific_config()).expect("asc");
        let mut conv = AacToOpus::new(asc).expect("converter");
        let t0 = Instant::now();
        let mut packets = Vec::new();
        // One second of tone, in 1024-frame blocks.
        for b in 0..43usize {
            let samples: Vec<f32> = (b * 1024..(b + 1) * 1024)
                .flat_map(|i| {
                    let v =
                        (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5;
                    [v, v]
                })
                .collect();
            let pts = Duration::from_secs_f64((b * 1024) as f64 / f64::from(rate));
            let block = AudioBlock {
                sample_rate: rate,
                channels: 2,
                samples,
                capture: t0 + pts,
                pts,
            };
            for unit in aac.encode(&block).expect("AAC encode") {
                packets.extend(conv.push(&unit).expect("to Opus"));
            }
        }
        // About a second, less the encoders' delays.
        assert!((40..=50).contains(&packets.len()), "{}", packets.len());
        for pair in packets.windows(2) {
            assert_eq!(pair[1].pts - pair[0].pts, Duration::from_millis(20));
        }
        let mut opus = OpusDecoder::new(2).expect("Opus decoder");
        let mut energy = 0.0f64;
        let mut n = 0usize;
        for p in &packets[10..] {
            let pcm = opus.decode(Some(&p.data)).expect("decode");
            assert_eq!(pcm.len(), 960 * 2);
            energy += pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            n += pcm.len();
        }
        // A 0.5 sine has a mean square of 0.125; the codecs keep most of it.
        let ms = energy / n as f64;
        assert!((0.08..0.17).contains(&ms), "mean square {ms}");
    }
}
