//! The audio decode stage: Opus to 48 kHz stereo, lost packets concealed
//! so the output keeps its length, the lip-sync hold given to the output.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_codec::OpusDecoder;
use pstream_core::AudioSink;
use pstream_core::{AudioBlock, LinkReceiver, PipelineClock};
use pstream_rtp::lipsync::Stream;
use pstream_rtp::receiver::ReceivedUnit;

use super::sync::AvSync;
use super::{StreamCounters, AUDIO_CHANNELS, AUDIO_RATE};
use crate::{Error, Result};

/// RTP ticks in one 20 ms Opus frame.
const OPUS_FRAME_TICKS: u32 = 960;
/// Most consecutive lost Opus frames concealed; a longer gap is a resync.
const MAX_CONCEALED: u32 = 10;

/// Decodes Opus, concealing lost packets so the output keeps its length.
pub(crate) struct AudioDecodeStage {
    decoder: OpusDecoder,
    sink: Box<dyn AudioSink>,
    clock: PipelineClock,
    counters: Arc<StreamCounters>,
    sync: Arc<AvSync>,
    /// The RTP timestamp the next packet should carry.
    next_ts: Option<u32>,
    /// Where the next block is on the output's timeline.
    pts: Duration,
    /// The hold last given to the sink.
    hold: Duration,
}

impl AudioDecodeStage {
    /// A stage decoding into `sink` (opened already, so a bad one fails
    /// before anything starts).
    pub(crate) fn new(
        decoder: OpusDecoder,
        sink: Box<dyn AudioSink>,
        clock: PipelineClock,
        counters: Arc<StreamCounters>,
        sync: Arc<AvSync>,
    ) -> Self {
        Self {
            decoder,
            sink,
            clock,
            counters,
            sync,
            next_ts: None,
            pts: Duration::ZERO,
            hold: Duration::ZERO,
        }
    }

    /// Decodes until the link closes (the run is stopping), then finishes
    /// the output.
    pub(crate) fn run(mut self, units: LinkReceiver<ReceivedUnit>) -> Result<()> {
        while let Some(unit) = units.recv() {
            self.handle(&unit)?;
        }
        self.sink.finish().map_err(|source| Error::Output {
            action: "finish",
            stream: "audio",
            source: Box::new(source),
        })
    }

    fn handle(&mut self, unit: &ReceivedUnit) -> Result<()> {
        // Conceal the packets lost right before this one. The count comes
        // from the sequence numbers, not the timestamps: senders that stamp
        // audio with its capture time (as pstream does) have timestamp
        // jitter that is not loss. The timestamp gap only caps the count
        // (a sender restart or a long outage just resyncs).
        if let (Some(expected), lost) = (self.next_ts, unit.lost_before) {
            let gap = (unit.rtp_timestamp.wrapping_sub(expected) as i32).unsigned_abs();
            let frames = if gap < OPUS_FRAME_TICKS * MAX_CONCEALED {
                lost.min(u64::from(MAX_CONCEALED))
            } else {
                0
            };
            for _ in 0..frames {
                match self.decoder.decode(None) {
                    Ok(samples) => {
                        self.counters.concealed.fetch_add(1, Ordering::Relaxed);
                        self.write(samples)?;
                    }
                    Err(e) => tracing::debug!("Opus concealment failed: {e}"),
                }
            }
        }
        match self.decoder.decode(Some(&unit.data)) {
            Ok(samples) => {
                let frames = (samples.len() / AUDIO_CHANNELS as usize) as u32;
                self.next_ts = Some(unit.rtp_timestamp.wrapping_add(frames));
                if let Some(ntp) = unit.sender_ntp {
                    // Heard after what the device has queued (no hold: the
                    // lip sync adds its own).
                    let queued = self.sink.latency().unwrap_or_default().as_micros() as i64;
                    let delay = self.clock.unix_micros(Instant::now()) as i64
                        - ntp.to_unix_micros() as i64
                        + queued;
                    let hold = self.sync.observe(Stream::Audio, delay);
                    if hold != self.hold {
                        self.sink.set_hold(hold);
                        self.hold = hold;
                    }
                }
                let decoded = self.counters.decoded.fetch_add(1, Ordering::Relaxed) + 1;
                crate::fault::maybe_panic_after("audio-decode", decoded);
                self.write(samples)?;
            }
            Err(e) => {
                tracing::debug!("Opus decode error: {e}");
                self.counters.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn write(&mut self, samples: Vec<f32>) -> Result<()> {
        let block = AudioBlock {
            sample_rate: AUDIO_RATE,
            channels: AUDIO_CHANNELS,
            samples,
            capture: Instant::now(),
            pts: self.pts,
        };
        self.pts += block.duration();
        self.sink.write_block(&block)?;
        Ok(())
    }
}
