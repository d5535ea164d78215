//! The video decode stage: H.264 or JPEG units to pictures, never showing
//! a damaged one (wait for the next IDR, ask for it with a PLI), the frame
//! rate taken from what is known (`--framerate`) or from the first interval,
//! pictures held back for lip sync, the timecode read for the latency
//! figures, then the output.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use pstream_capture::timecode::read_timecode;
use pstream_core::{VideoFormat, VideoSink};

use crate::sources::open_video_sink;
use pstream_codec::VideoDecoder;
use pstream_core::{LinkReceiver, PipelineClock, Recv, VideoFrame};
use pstream_rtp::frame_rate::{self, DEFAULT_RATE};
use pstream_rtp::lipsync::Stream;
use pstream_rtp::receiver::ReceivedUnit;

use super::sync::{AvSync, Latencies};
use super::{Feedback, StreamCounters};
use crate::probe::{hit, Probe, ProbePoint};
use crate::{Error, Result};

/// Most decoded pictures held back for lip sync: a second at 60 fps (the
/// longest hold), about 80 MB at 720p.
const MAX_HELD: usize = 64;

/// The RTP clock of H.264 (RFC 6184) and JPEG (RFC 2435) video.
const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Longest the first picture waits for the second unit, whose timestamp
/// gives the frame rate when none is known: one interval down to 4 fps.
/// Past it the output opens at [`DEFAULT_RATE`]: a Y4M header's F and a
/// device's frame interval are informational for the consumers reading
/// them live (each picture is written as it is decoded), so a guessed rate
/// is better than a held picture.
const FIRST_INTERVAL_WAIT: Duration = Duration::from_millis(250);

/// Decodes video and writes pictures, discarding anything broken until the
/// next IDR so a damaged picture is never shown.
pub(crate) struct VideoDecodeStage {
    pub(crate) decoder: Box<dyn VideoDecoder>,
    /// The output spec; the output opens with the first picture (its size
    /// and the rate make the Y4M header or the device format); a shmdata
    /// writer binds as soon as the first picture is decoded.
    pub(crate) spec: String,
    /// The frame rate when it is known beforehand (`--framerate`); else it
    /// is read off the first interval.
    pub(crate) framerate: Option<(u32, u32)>,
    pub(crate) clock: PipelineClock,
    pub(crate) timecode: bool,
    pub(crate) counters: Arc<StreamCounters>,
    pub(crate) latencies: Arc<Mutex<Latencies>>,
    pub(crate) feedback: Sender<Feedback>,
    pub(crate) sync: Arc<AvSync>,
    /// Hears of each picture decoded.
    pub(crate) probe: Option<Probe>,
}

/// A decoded picture waiting for its time to be shown.
struct HeldFrame {
    due: Instant,
    frame: VideoFrame,
}

/// The open output, and the size it was opened with.
struct Output {
    sink: Box<dyn VideoSink>,
    width: u32,
    height: u32,
    /// Whether the sink was told the frame rate (a sink opened before it was
    /// known is told before its first picture).
    rate_told: bool,
}

impl VideoDecodeStage {
    /// Decodes until the link closes (the run is stopping), then finishes
    /// the output.
    pub(crate) fn run(self, units: LinkReceiver<ReceivedUnit>) -> Result<()> {
        let mut run = Running {
            stage: self,
            output: None,
        };
        run.decode_all(&units)?;
        if let Some(out) = &mut run.output {
            out.sink.finish().map_err(|source| Error::Output {
                action: "finish",
                stream: "video",
                source: Box::new(source),
            })?;
        }
        Ok(())
    }
}

/// The stage with its output, once opened.
struct Running {
    stage: VideoDecodeStage,
    output: Option<Output>,
}

impl Running {
    /// Decodes until the link closes, showing each picture when it is due:
    /// at once, or after the lip-sync hold when audio is heard later.
    fn decode_all(&mut self, units: &LinkReceiver<ReceivedUnit>) -> Result<()> {
        let mut need_idr = true;
        // The output needs a frame rate (Y4M header, device frame interval)
        // before its first picture. Known (`--framerate`), it opens at once.
        // Otherwise the first picture waits for the second unit, whose
        // timestamp gives the first interval (33 ms at 30 fps), at most
        // FIRST_INTERVAL_WAIT; later pictures are never held for it.
        let mut fps: Option<(u32, u32)> = self.stage.framerate;
        let mut first_stamp: Option<u32> = None;
        let mut rate_deadline: Option<Instant> = None;
        let mut held: VecDeque<HeldFrame> = VecDeque::new();
        // The lip-sync hold as of the last picture with an SR mapping.
        let mut hold = Duration::ZERO;
        let mut ssrc: Option<u32> = None;
        let mut evicted = 0;
        let s = &self.stage;
        let (counters, feedback) = (s.counters.clone(), s.feedback.clone());
        loop {
            let wake = match (held.front(), fps) {
                (Some(first), Some(_)) => Some(first.due),
                (Some(_), None) => rate_deadline,
                (None, _) => None,
            };
            let unit = match wake {
                Some(at) => match units.recv_deadline(at) {
                    Recv::Item(u) => Some(u),
                    Recv::Timeout => None,
                    Recv::Closed => break,
                },
                None => match units.recv() {
                    Some(u) => Some(u),
                    None => break,
                },
            };
            if fps.is_none() && rate_deadline.is_some_and(|at| Instant::now() >= at) {
                tracing::debug!(
                    "no second picture in {FIRST_INTERVAL_WAIT:?}: video rate {DEFAULT_RATE:?}"
                );
                fps = Some(DEFAULT_RATE);
            }
            if let Some(rate) = fps {
                self.show_due(&mut held, rate, Instant::now())?;
            }
            let Some(unit) = unit else { continue };
            // A unit the link dropped because we fell behind may have been a
            // reference; a new sender's pictures refer to nothing we have.
            // Either way the picture is broken until the next IDR.
            let dropped = units.dropped();
            if dropped != evicted || ssrc.is_some_and(|s| s != unit.ssrc) {
                counters
                    .discarded
                    .fetch_add(dropped - evicted, Ordering::Relaxed);
                evicted = dropped;
                need_idr = true;
            }
            ssrc = Some(unit.ssrc);
            if !unit.complete {
                counters.discarded.fetch_add(1, Ordering::Relaxed);
                need_idr = true;
                let _ = feedback.try_send(Feedback::KeyframeNeeded);
                continue;
            }
            if need_idr && !unit.keyframe {
                // Ask again (the session rate-limits PLIs): the IDR that
                // answered an earlier PLI may itself have been lost, and a
                // new sender has not been asked at all.
                counters.discarded.fetch_add(1, Ordering::Relaxed);
                let _ = feedback.try_send(Feedback::KeyframeNeeded);
                continue;
            }
            if fps.is_none() {
                match first_stamp {
                    None => first_stamp = Some(unit.rtp_timestamp),
                    Some(t0) => {
                        let rate =
                            frame_rate::estimate_first(t0, unit.rtp_timestamp, VIDEO_CLOCK_RATE);
                        fps = Some(rate);
                        // The first picture goes out before this one decodes.
                        self.show_due(&mut held, rate, Instant::now())?;
                    }
                }
            }
            match self.stage.decoder.decode(&unit.data) {
                Ok(Some(picture)) => {
                    need_idr = false;
                    let frame = picture.frame;
                    hit(self.stage.probe.as_ref(), || ProbePoint::Decoded {
                        rtp_timestamp: unit.rtp_timestamp,
                        frame: &frame,
                    });
                    let now = Instant::now();
                    let s = &self.stage;
                    if s.timecode {
                        if let Some(tc) = read_timecode(&frame) {
                            let latency = s.clock.unix_micros(now).saturating_sub(tc);
                            if let Ok(mut l) = s.latencies.lock() {
                                l.push(latency);
                            }
                        }
                    }
                    if let Some(ntp) = unit.sender_ntp {
                        let delay = s.clock.unix_micros(now) as i64 - ntp.to_unix_micros() as i64;
                        hold = s.sync.observe(Stream::Video, delay);
                    }
                    let decoded = counters.decoded.fetch_add(1, Ordering::Relaxed) + 1;
                    crate::fault::maybe_panic_after("video-decode", decoded);
                    held.push_back(HeldFrame {
                        due: now + hold,
                        frame,
                    });
                    if fps.is_none() && rate_deadline.is_none() {
                        rate_deadline = Some(now + FIRST_INTERVAL_WAIT);
                    }
                    self.bind_shmdata_early()?;
                    // Memory stays bounded whatever the hold: past MAX_HELD
                    // the oldest pictures are shown early, not queued.
                    while held.len() > MAX_HELD {
                        if let (Some(rate), Some(f)) = (fps, held.pop_front()) {
                            self.write(&f.frame, rate)?;
                        } else {
                            break;
                        }
                    }
                    if let Some(rate) = fps {
                        self.show_due(&mut held, rate, Instant::now())?;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("video decode error: {e}");
                    counters.discarded.fetch_add(1, Ordering::Relaxed);
                    need_idr = true;
                    let _ = feedback.try_send(Feedback::KeyframeNeeded);
                }
            }
        }
        // The stream ended: what is held is shown now (a one-picture stream
        // gets the default rate).
        let rate = fps.unwrap_or(DEFAULT_RATE);
        for f in held.drain(..) {
            self.write(&f.frame, rate)?;
        }
        Ok(())
    }

    /// Writes the held pictures whose time has come.
    fn show_due(
        &mut self,
        held: &mut VecDeque<HeldFrame>,
        rate: (u32, u32),
        now: Instant,
    ) -> Result<()> {
        while held.front().is_some_and(|f| f.due <= now) {
            if let Some(f) = held.pop_front() {
                self.write(&f.frame, rate)?;
            }
        }
        Ok(())
    }

    /// A shmdata writer binds its socket and creates its segment with the
    /// first decoded picture, before the picture is shown (it may wait for
    /// the rate): followers polling for the socket (every 30 ms) connect
    /// meanwhile, and are greeted with the caps at the first frame, which
    /// is theirs too. Not at start: libshmdata's follower gives up on a
    /// writer that has not greeted it within a second, and then blocks
    /// until the writer closes, so a writer must not be bound long before
    /// it has caps.
    fn bind_shmdata_early(&mut self) -> Result<()> {
        if self.output.is_some() || !self.stage.spec.starts_with("shmdata:") {
            return Ok(());
        }
        let (fps_num, fps_den) = self.stage.framerate.unwrap_or((0, 1));
        let format = VideoFormat {
            width: 0,
            height: 0,
            fps_num,
            fps_den,
        };
        let sink = open_video_sink(&self.stage.spec, format)?;
        self.output = Some(Output {
            sink,
            width: 0,
            height: 0,
            rate_told: self.stage.framerate.is_some(),
        });
        Ok(())
    }

    fn write(&mut self, frame: &VideoFrame, fps: (u32, u32)) -> Result<()> {
        let (w, h) = (frame.width(), frame.height());
        let out = match &mut self.output {
            Some(out) => out,
            None => {
                let format = VideoFormat {
                    width: w,
                    height: h,
                    fps_num: fps.0,
                    fps_den: fps.1,
                };
                let spec = &self.stage.spec;
                let sink = open_video_sink(spec, format)?;
                tracing::info!("video {w}x{h} at {}/{} fps to {spec}", fps.0, fps.1);
                self.output.insert(Output {
                    sink,
                    width: w,
                    height: h,
                    rate_told: true,
                })
            }
        };
        if !out.rate_told {
            out.sink.set_frame_rate(fps.0, fps.1);
            out.rate_told = true;
            tracing::info!(
                "video {w}x{h} at {}/{} fps to {}",
                fps.0,
                fps.1,
                self.stage.spec
            );
        }
        if (out.width, out.height) != (w, h) {
            if out.sink.accepts_size_changes() {
                // A device renegotiates its format for the new size.
                (out.width, out.height) = (w, h);
            } else {
                // A Y4M stream has one size; a sender that changed size is
                // counted, not written.
                self.stage
                    .counters
                    .discarded
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        out.sink.write_frame(frame)?;
        Ok(())
    }
}
