//! What every audio device stream shares, whatever the backend: live
//! counters, real-time scheduling for its threads, and the capture reader
//! that turns a device's ring into paced 10 ms blocks.
//!
//! A backend (cpal/ALSA, PipeWire) only owns the device and its callback,
//! which copies into an rtrb ring and counts; [`RingCaptureSource`] reads the
//! ring on an ordinary thread, compensates the device's clock drift and
//! stamps blocks on the pipeline clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pstream_core::{
    AudioBlock, AudioFormat, AudioSource, DeviceCounters, MediaError, PipelineClock,
};

use crate::drift::{apply, Adjust, DriftCompensator, DriftEstimator};
use crate::CaptureError;

/// How much audio a capture or playback ring holds: enough to ride out a
/// scheduling hiccup of the thread on the other side without adding much
/// latency when it runs full.
pub const RING_SECONDS: f32 = 0.5;

/// Silence queued ahead of the first block (and after the ring ran dry), so
/// that 20 ms decoder bursts against 10 ms device periods do not leave the
/// device short every other period.
pub const PLAYBACK_PRIME: Duration = Duration::from_millis(60);

/// How long a capture device may deliver nothing before the source gives up
/// (an unplugged device, a PipeWire node that went away).
pub const CAPTURE_STALL: Duration = Duration::from_secs(3);

/// How far a device may run ahead of the wall clock before its callback is
/// held back: more than any real device's buffer fills at start.
pub const PACER_LEAD: Duration = Duration::from_secs(1);

/// Set once the "device does not pace" warning was printed.
static PACER_WARNED: AtomicBool = AtomicBool::new(false);

/// Holds a device callback to real time when the device does not pace it.
///
/// ALSA's `null` and `file` plugins (and a device that lost its timer) return
/// at once, so cpal calls back in a tight loop: on a real-time thread that
/// takes a whole core from the decoders. A paced device never gets
/// [`PACER_LEAD`] ahead of the wall clock, so it never waits here.
#[derive(Debug)]
pub struct CallbackPacer {
    frames_per_sec: f64,
    channels: u64,
    start: Option<Instant>,
    samples: u64,
}

impl CallbackPacer {
    /// A pacer for a stream of `format`.
    pub fn new(format: AudioFormat) -> Self {
        Self {
            frames_per_sec: f64::from(format.sample_rate.max(1)),
            channels: u64::from(format.channels.max(1)),
            start: None,
            samples: 0,
        }
    }

    /// Accounts `samples` the device just moved; sleeps when that puts it
    /// more than [`PACER_LEAD`] ahead of the time since its first callback.
    pub fn after(&mut self, samples: usize, counters: &DeviceCounters) {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        self.samples += samples as u64;
        if let Some(wait) = self.ahead(now.saturating_duration_since(start)) {
            counters.paced.fetch_add(1, Ordering::Relaxed);
            if !PACER_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the audio device consumes faster than real time (a null or file device?); pacing it to the clock"
                );
            }
            std::thread::sleep(wait);
        }
    }

    /// How long to wait, `elapsed` after the first callback, to bring the
    /// device back to [`PACER_LEAD`] ahead of real time.
    fn ahead(&self, elapsed: Duration) -> Option<Duration> {
        let media = Duration::from_secs_f64(
            self.samples as f64 / self.channels as f64 / self.frames_per_sec,
        );
        media
            .checked_sub(elapsed + PACER_LEAD)
            .filter(|w| !w.is_zero())
    }
}

/// Set once the "no real-time scheduling" warning was printed.
static RT_WARNED: AtomicBool = AtomicBool::new(false);

/// Asks for SCHED_FIFO on the calling thread, so that the audio path is not
/// preempted by encoders; where that is not allowed (no CAP_SYS_NICE, no
/// rtprio limit) it warns once per process, in one line, and carries on.
pub fn promote_to_realtime(what: &str) {
    // Priority 10 of 1..99: above every normal thread, below the kernel's
    // own interrupt threads and PipeWire's data loop (usually 88).
    // SAFETY: sched_param is plain integers, all valid as zero (musl's has
    // SCHED_SPORADIC fields besides sched_priority).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = 10;
    // SAFETY: pthread_self is always valid for the calling thread, and
    // param lives across the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc != 0 && !RT_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{what}: real-time scheduling (SCHED_FIFO) not allowed ({}); audio runs at normal priority",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

/// Keeps a backend's device open while the source is in use; dropping it
/// closes the device.
pub trait DeviceGuard: Send {}

impl<T: Send> DeviceGuard for T {}

/// An [`AudioSource`] reading a capture device's ring: 10 ms blocks, drift
/// compensated, stamped on the pipeline clock.
pub struct RingCaptureSource {
    name: String,
    format: AudioFormat,
    consumer: rtrb::Consumer<f32>,
    counters: Arc<DeviceCounters>,
    clock: PipelineClock,
    opened: Instant,
    estimator: DriftEstimator,
    compensator: DriftCompensator,
    block: u64,
    pts: Duration,
    last_data: Instant,
    _guard: Box<dyn DeviceGuard>,
}

impl std::fmt::Debug for RingCaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingCaptureSource")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

impl RingCaptureSource {
    /// Reads `consumer`, which a device callback fills with interleaved f32
    /// in `format`, counting into `counters`; `guard` keeps the device open.
    pub fn new(
        name: &str,
        format: AudioFormat,
        consumer: rtrb::Consumer<f32>,
        counters: Arc<DeviceCounters>,
        clock: PipelineClock,
        guard: Box<dyn DeviceGuard>,
    ) -> Self {
        let now = clock.now();
        Self {
            name: name.to_string(),
            format,
            consumer,
            counters,
            clock,
            opened: now,
            estimator: DriftEstimator::new(format.sample_rate),
            compensator: DriftCompensator::new(format.sample_rate),
            block: 0,
            pts: Duration::ZERO,
            last_data: now,
            _guard: guard,
        }
    }

    /// A ring sized for `format`.
    pub fn ring(format: AudioFormat) -> (rtrb::Producer<f32>, rtrb::Consumer<f32>) {
        let capacity =
            (format.sample_rate as f32 * RING_SECONDS) as usize * usize::from(format.channels);
        rtrb::RingBuffer::<f32>::new(capacity.max(4096))
    }
}

impl AudioSource for RingCaptureSource {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, MediaError> {
        let ch = usize::from(self.format.channels);
        let frames = self.format.block_frames(self.block);
        // Wait for a block plus one spare frame, so a drop can be served.
        loop {
            if self.consumer.slots() >= (frames + 1) * ch {
                break;
            }
            if self.consumer.is_abandoned() {
                return Err(
                    CaptureError::unsupported(&self.name, "the audio device stream ended").into(),
                );
            }
            if self.last_data.elapsed() > CAPTURE_STALL {
                return Err(CaptureError::unsupported(
                    &self.name,
                    format!(
                        "the device delivered no audio for {} s (unplugged or gone?)",
                        CAPTURE_STALL.as_secs()
                    ),
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let now = self.clock.now();
        self.last_data = now;
        let elapsed = now.saturating_duration_since(self.opened);
        let delivered = self.counters.played_samples.load(Ordering::Relaxed) / ch as u64;
        self.estimator.observe(delivered, elapsed);
        if let Some(ppm) = self.estimator.ppm() {
            self.counters.set_drift_ppm(ppm);
        }
        let excess = delivered as f64
            - self.compensator.net_dropped() as f64
            - f64::from(self.format.sample_rate) * elapsed.as_secs_f64();
        let adjust = self.compensator.update(excess, elapsed, frames);
        let take = match adjust {
            Adjust::None => frames,
            Adjust::Drop => frames + 1,
            Adjust::Repeat => frames - 1,
        };
        let mut samples = Vec::with_capacity((frames + 1) * ch);
        if let Ok(chunk) = self.consumer.read_chunk(take * ch) {
            let (a, b) = chunk.as_slices();
            samples.extend_from_slice(a);
            samples.extend_from_slice(b);
            chunk.commit_all();
        }
        apply(adjust, &mut samples, ch);
        if adjust != Adjust::None {
            self.counters.drift_adjusted.fetch_add(1, Ordering::Relaxed);
        }
        // The first sample was captured before everything still queued
        // behind this block.
        let queued = self.consumer.slots() / ch + frames;
        let capture =
            now - Duration::from_secs_f64(queued as f64 / f64::from(self.format.sample_rate));
        let block = AudioBlock {
            sample_rate: self.format.sample_rate,
            channels: self.format.channels,
            samples,
            capture,
            pts: self.pts,
        };
        self.pts += block.duration();
        self.block += 1;
        Ok(Some(block))
    }

    fn device_counters(&self) -> Option<Arc<DeviceCounters>> {
        Some(self.counters.clone())
    }
}

/// Copies interleaved samples into a ring from a device callback: no
/// allocation, no lock; what does not fit is dropped and counted.
pub fn push_from_callback(
    producer: &mut rtrb::Producer<f32>,
    samples: &[f32],
    counters: &DeviceCounters,
) {
    let room = producer.slots().min(samples.len());
    if let Ok(mut chunk) = producer.write_chunk(room) {
        let (a, b) = chunk.as_mut_slices();
        let split = a.len();
        a.copy_from_slice(&samples[..split]);
        b.copy_from_slice(&samples[split..split + b.len()]);
        chunk.commit_all();
    }
    if room < samples.len() {
        counters
            .overrun_samples
            .fetch_add((samples.len() - room) as u64, Ordering::Relaxed);
    }
    counters
        .played_samples
        .fetch_add(samples.len() as u64, Ordering::Relaxed);
}

/// Copies samples out of a ring into a device buffer from its callback,
/// filling with silence and counting an underrun when the ring runs dry.
/// Returns the samples that came from the ring.
pub fn pull_from_callback(
    consumer: &mut rtrb::Consumer<f32>,
    out: &mut [f32],
    counters: &DeviceCounters,
) -> usize {
    let n = consumer.slots().min(out.len());
    if let Ok(chunk) = consumer.read_chunk(n) {
        let (a, b) = chunk.as_slices();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        chunk.commit_all();
    }
    if n < out.len() {
        out[n..].fill(0.0);
        counters.underruns.fetch_add(1, Ordering::Relaxed);
    }
    // The device consumed the whole buffer, silence included: that is its
    // clock, which the drift estimate measures.
    counters
        .played_samples
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    n
}

/// The writing side of a playback ring: drift compensation against the
/// device's consumption, and overrun counting. Backends' sinks hold one.
pub struct RingPlaybackWriter {
    format: AudioFormat,
    producer: rtrb::Producer<f32>,
    capacity: usize,
    counters: Arc<DeviceCounters>,
    clock: PipelineClock,
    opened: Instant,
    estimator: DriftEstimator,
    compensator: DriftCompensator,
    /// Frames of extra delay asked for with [`Self::set_hold`].
    hold_frames: usize,
    /// Frames still to skip from incoming blocks after the hold shrank.
    skip_frames: usize,
}

impl RingPlaybackWriter {
    /// A writer and the consumer its device callback reads.
    pub fn new(format: AudioFormat, clock: PipelineClock) -> (Self, rtrb::Consumer<f32>) {
        let capacity = ((format.sample_rate as f32 * RING_SECONDS) as usize
            * usize::from(format.channels))
        .max(4096);
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity);
        let opened = clock.now();
        (
            Self {
                format,
                producer,
                capacity,
                counters: Arc::new(DeviceCounters::new()),
                clock,
                opened,
                estimator: DriftEstimator::new(format.sample_rate),
                compensator: DriftCompensator::new(format.sample_rate),
                hold_frames: 0,
                skip_frames: 0,
            },
            consumer,
        )
    }

    /// The counters the device callback must update.
    pub fn counters(&self) -> Arc<DeviceCounters> {
        self.counters.clone()
    }

    /// Keeps `hold` more audio queued ahead of the device than it needs, so
    /// that what is written now is heard that much later (lip sync with a
    /// video path that is slower). A longer hold queues silence at once; a
    /// shorter one skips incoming audio until the ring is back down.
    pub fn set_hold(&mut self, hold: Duration) {
        let ch = usize::from(self.format.channels);
        let target = self.frames(hold).min(self.capacity / ch / 2);
        let current = self.hold_frames + self.skip_frames;
        if target > current {
            let add = target - current;
            let room = self.producer.slots() / ch;
            let added = add.min(room);
            if let Ok(chunk) = self.producer.write_chunk_uninit(added * ch) {
                chunk.fill_from_iter(std::iter::repeat(0.0));
            }
            self.skip_frames = 0;
            self.compensator.shift_baseline(added as f64);
            self.hold_frames = current + added;
        } else {
            // What is queued beyond the new hold is skipped from incoming
            // audio; the compensator's baseline follows as it is.
            self.skip_frames = current - target;
            self.hold_frames = target;
        }
    }

    /// How long audio written now takes to be heard, not counting the hold
    /// (ring fill plus the device's own latency where the backend says).
    pub fn latency(&self) -> Duration {
        let ch = usize::from(self.format.channels);
        let fill = (self.capacity - self.producer.slots()) / ch;
        let queued = fill.saturating_sub(self.hold_frames + self.skip_frames);
        let device = self.counters.device_latency_us.load(Ordering::Relaxed);
        Duration::from_secs_f64(queued as f64 / f64::from(self.format.sample_rate.max(1)))
            + Duration::from_micros(device)
    }

    fn frames(&self, d: Duration) -> usize {
        (d.as_secs_f64() * f64::from(self.format.sample_rate)) as usize
    }

    /// Queues one block for the device, dropping or repeating a frame when
    /// the device's clock has pulled the ring's fill away from where it was.
    pub fn write(&mut self, samples: &[f32]) {
        let ch = usize::from(self.format.channels);
        let elapsed = self.clock.now().saturating_duration_since(self.opened);
        let consumed = self.counters.played_samples.load(Ordering::Relaxed) / ch as u64;
        self.estimator.observe(consumed, elapsed);
        if let Some(ppm) = self.estimator.ppm() {
            self.counters.set_drift_ppm(ppm);
        }
        let mut fill = (self.capacity - self.producer.slots()) / ch;
        if fill == 0 {
            // A dry ring has lost the hold too (the device played it out):
            // queue it again with the prime.
            self.skip_frames = 0;
            let frames = self.frames(PLAYBACK_PRIME) + self.hold_frames;
            if let Ok(chunk) = self.producer.write_chunk_uninit(frames * ch) {
                chunk.fill_from_iter(std::iter::repeat(0.0));
                fill = frames;
            }
        }
        // A hold that shrank is given back by skipping incoming audio.
        let skip = self.skip_frames.min(samples.len() / ch);
        if skip > 0 {
            self.skip_frames -= skip;
            self.compensator.shift_baseline(-(skip as f64));
        }
        let samples = &samples[skip * ch..];
        if samples.is_empty() {
            return;
        }
        let mut block = samples.to_vec();
        let adjust = self
            .compensator
            .update(fill as f64, elapsed, samples.len() / ch);
        apply(adjust, &mut block, ch);
        if adjust != Adjust::None {
            self.counters.drift_adjusted.fetch_add(1, Ordering::Relaxed);
        }
        let room = self.producer.slots().min(block.len());
        if let Ok(chunk) = self.producer.write_chunk_uninit(room) {
            chunk.fill_from_iter(block.iter().copied());
        }
        if room < block.len() {
            self.counters
                .overrun_samples
                .fetch_add((block.len() - room) as u64, Ordering::Relaxed);
        }
    }
}

/// Refuses a block whose rate or channels differ from what the device plays.
pub fn check_block(
    name: &str,
    format: AudioFormat,
    block: &AudioBlock,
) -> Result<(), CaptureError> {
    if block.sample_rate != format.sample_rate || block.channels != format.channels {
        return Err(CaptureError::Mismatch {
            name: name.to_string(),
            reason: format!(
                "block is {} Hz {} ch, the device plays {} Hz {} ch",
                block.sample_rate, block.channels, format.sample_rate, format.channels
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_device_never_waits_and_a_runaway_one_does() {
        let format = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        let mut pacer = CallbackPacer::new(format);
        // 10 ms periods delivered on time for ten seconds: never ahead.
        for i in 1..=1000u64 {
            pacer.samples = i * 960;
            assert_eq!(pacer.ahead(Duration::from_millis(i * 10)), None);
        }
        // A device that took 5 s of audio in the first 100 ms waits out the
        // difference, less the lead it is allowed.
        pacer.samples = 5 * 96_000;
        let wait = pacer.ahead(Duration::from_millis(100)).expect("must wait");
        assert_eq!(wait, Duration::from_millis(3900));
    }

    #[test]
    fn a_hold_queues_silence_and_a_smaller_one_skips_audio() {
        let format = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        let (mut writer, mut consumer) = RingPlaybackWriter::new(format, PipelineClock::start());
        let fill = |c: &rtrb::Consumer<f32>| c.slots() / 2;
        let block = vec![0.5f32; 960];
        writer.write(&block);
        // The prime (60 ms) and the block (10 ms) are queued.
        assert_eq!(fill(&consumer), 2880 + 480);
        let before = writer.latency();
        writer.set_hold(Duration::from_millis(50));
        assert_eq!(fill(&consumer), 2880 + 480 + 2400);
        // The hold is not part of the latency the lip sync observes.
        assert_eq!(writer.latency(), before);
        // Shrinking to 20 ms skips 30 ms of incoming audio: three blocks.
        writer.set_hold(Duration::from_millis(20));
        for _ in 0..3 {
            writer.write(&block);
        }
        assert_eq!(fill(&consumer), 2880 + 480 + 2400);
        writer.write(&block);
        assert_eq!(fill(&consumer), 2880 + 480 + 2400 + 480);
        // The device drains everything; the next write primes the hold again.
        let n = consumer.slots();
        consumer.read_chunk(n).expect("readable").commit_all();
        writer.write(&block);
        assert_eq!(fill(&consumer), 2880 + 960 + 480);
    }

    #[test]
    fn callbacks_copy_and_count_xruns() {
        let counters = DeviceCounters::new();
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(4);
        push_from_callback(&mut p, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &counters);
        assert_eq!(counters.overrun_samples.load(Ordering::Relaxed), 2);
        let mut out = [9.0f32; 6];
        assert_eq!(pull_from_callback(&mut c, &mut out, &counters), 4);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(counters.underruns.load(Ordering::Relaxed), 1);
        assert!(counters.summary("played", 1, 1).contains("drift -"));
        counters.set_drift_ppm(-42.4);
        assert_eq!(counters.drift_ppm(), Some(-42.4));
    }

    #[test]
    fn capture_source_makes_10_ms_blocks_from_the_ring() {
        let format = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        let (mut p, c) = RingCaptureSource::ring(format);
        let counters = Arc::new(DeviceCounters::new());
        let samples: Vec<f32> = (0..2000).map(|i| i as f32).collect();
        push_from_callback(&mut p, &samples, &counters);
        let mut src = RingCaptureSource::new(
            "test-ring",
            format,
            c,
            counters,
            PipelineClock::start(),
            Box::new(()),
        );
        let b = src.next_block().expect("ok").expect("block");
        assert_eq!(b.frames(), 480);
        assert_eq!(b.samples[..4], [0.0, 1.0, 2.0, 3.0]);
        let b = src.next_block().expect("ok").expect("block");
        assert_eq!(b.pts, Duration::from_millis(10));
        assert_eq!(b.samples[0], 960.0);
        drop(p);
        let e = src.next_block().expect_err("ring abandoned");
        assert!(e.to_string().starts_with("test-ring: "), "{e}");
    }
}
