//! Audio playback on a real device: cpal (ALSA) with a lock-free ring.
//!
//! The device's callback runs on cpal's real-time thread and only copies
//! samples out of an rtrb single-producer/single-consumer ring; decoding and
//! everything else stay on the caller's thread. When the ring runs dry the
//! callback plays silence and counts an underrun; when it is full the newest
//! samples are dropped and counted as an overrun, so neither side ever
//! blocks the other.
//!
//! The device half needs the `alsa` feature (on by default; cross builds
//! leave it off); the counters stay so that sinks report them either way.

use std::sync::atomic::AtomicU64;
#[cfg(feature = "alsa")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "alsa")]
use std::sync::{mpsc, Arc};
#[cfg(feature = "alsa")]
use std::thread::JoinHandle;
#[cfg(feature = "alsa")]
use std::time::Duration;

#[cfg(feature = "alsa")]
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
#[cfg(feature = "alsa")]
use pstream_core::AudioBlock;

#[cfg(feature = "alsa")]
use crate::{AudioFormat, AudioSink, CaptureError};

#[cfg(feature = "alsa")]
/// How much audio the ring holds: enough to ride out a scheduling hiccup of
/// the decoder thread without adding much latency when it runs full.
const RING_SECONDS: f32 = 0.5;

/// Counters a playback sink shares with the stats line.
#[derive(Debug, Default)]
pub struct PlaybackCounters {
    /// Callbacks that found fewer samples than the device wanted.
    pub underruns: AtomicU64,
    /// Samples dropped because the ring was full.
    pub overrun_samples: AtomicU64,
    /// Samples handed to the device.
    pub played_samples: AtomicU64,
}

#[cfg(feature = "alsa")]
/// An [`AudioSink`] that plays through an audio device.
pub struct PlaybackSink {
    name: String,
    format: AudioFormat,
    producer: rtrb::Producer<f32>,
    counters: Arc<PlaybackCounters>,
    stop: Arc<AtomicBool>,
    // cpal streams are not Send everywhere, so one thread owns the stream
    // and keeps it alive until `finish`.
    owner: Option<JoinHandle<()>>,
}

#[cfg(feature = "alsa")]
impl std::fmt::Debug for PlaybackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackSink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

#[cfg(feature = "alsa")]
/// Finds the output device a spec names: `default` or `alsa:NAME`.
fn find_device(spec: &str) -> Result<cpal::Device, CaptureError> {
    let host = cpal::default_host();
    if spec == "default" {
        return host.default_output_device().ok_or_else(|| {
            CaptureError::unsupported(
                spec,
                "no default audio output device (is there a sound card or sound server?)",
            )
        });
    }
    let wanted = spec.strip_prefix("alsa:").unwrap_or(spec);
    let devices = host
        .output_devices()
        .map_err(|e| CaptureError::unsupported(spec, format!("cannot list audio outputs: {e}")))?;
    let mut names = Vec::new();
    for d in devices {
        if let Ok(n) = d.name() {
            if n == wanted {
                return Ok(d);
            }
            names.push(n);
        }
    }
    Err(CaptureError::unsupported(
        spec,
        format!(
            "no audio output named {wanted:?}; available: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}

#[cfg(feature = "alsa")]
impl PlaybackSink {
    /// Opens the device named by `spec` for `format` (f32 at the format's
    /// rate and channel count) and starts it playing silence.
    pub fn open(spec: &str, format: AudioFormat) -> Result<Self, CaptureError> {
        let device = find_device(spec)?;
        let offered: Vec<cpal::SupportedStreamConfigRange> = device
            .supported_output_configs()
            .map_err(|e| CaptureError::unsupported(spec, format!("cannot query the device: {e}")))?
            .collect();
        let rate = cpal::SampleRate(format.sample_rate);
        let range = offered
            .iter()
            .find(|r| {
                r.channels() == format.channels
                    && r.sample_format() == cpal::SampleFormat::F32
                    && r.min_sample_rate() <= rate
                    && rate <= r.max_sample_rate()
            })
            .ok_or_else(|| {
                let list: Vec<String> = offered
                    .iter()
                    .map(|r| {
                        format!(
                            "{}ch {:?} {}-{} Hz",
                            r.channels(),
                            r.sample_format(),
                            r.min_sample_rate().0,
                            r.max_sample_rate().0
                        )
                    })
                    .collect();
                CaptureError::unsupported(
                    spec,
                    format!(
                        "the device cannot play {} Hz {}-channel f32; it offers: {}",
                        format.sample_rate,
                        format.channels,
                        list.join("; ")
                    ),
                )
            })?;
        let config = (*range).with_sample_rate(rate).config();
        let capacity =
            (format.sample_rate as f32 * RING_SECONDS) as usize * format.channels as usize;
        let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(capacity.max(1024));
        let counters = Arc::new(PlaybackCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let cb_counters = counters.clone();
        let owner_stop = stop.clone();
        let owner = std::thread::Builder::new()
            .name("audio-playback".into())
            .spawn(move || {
                let data_cb = move |out: &mut [f32], _: &cpal::OutputCallbackInfo| {
                    // Only copies: no allocation, no lock, no syscall.
                    let n = consumer.slots().min(out.len());
                    if let Ok(chunk) = consumer.read_chunk(n) {
                        let (a, b) = chunk.as_slices();
                        out[..a.len()].copy_from_slice(a);
                        out[a.len()..a.len() + b.len()].copy_from_slice(b);
                        chunk.commit_all();
                    }
                    if n < out.len() {
                        out[n..].fill(0.0);
                        cb_counters.underruns.fetch_add(1, Ordering::Relaxed);
                    }
                    cb_counters
                        .played_samples
                        .fetch_add(n as u64, Ordering::Relaxed);
                };
                let err_cb = |e: cpal::StreamError| tracing_warn(&e.to_string());
                let stream = match device.build_output_stream(&config, data_cb, err_cb, None) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot open the output stream: {e}")));
                        return;
                    }
                };
                if let Err(e) = stream.play() {
                    let _ = ready_tx.send(Err(format!("cannot start playback: {e}")));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while !owner_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                drop(stream);
            })
            .map_err(|e| CaptureError::io(spec, "start the playback thread", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = owner.join();
                return Err(CaptureError::unsupported(spec, reason));
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err(CaptureError::unsupported(
                    spec,
                    "the audio device did not start within 5 s",
                ));
            }
        }
        Ok(Self {
            name: spec.to_string(),
            format,
            producer,
            counters,
            stop,
            owner: Some(owner),
        })
    }

    /// The counters the device callback updates.
    pub fn counters(&self) -> Arc<PlaybackCounters> {
        self.counters.clone()
    }
}

/// cpal reports stream errors (an unplugged device, an xrun it could not
/// recover) from its own thread; this crate has no logger, so stderr it is.
#[cfg(feature = "alsa")]
fn tracing_warn(msg: &str) {
    eprintln!("pstream: audio playback: {msg}");
}

#[cfg(feature = "alsa")]
impl AudioSink for PlaybackSink {
    fn write_block(&mut self, block: &AudioBlock) -> Result<(), CaptureError> {
        if block.sample_rate != self.format.sample_rate || block.channels != self.format.channels {
            return Err(CaptureError::Mismatch {
                name: self.name.clone(),
                reason: format!(
                    "block is {} Hz {} ch, the device plays {} Hz {} ch",
                    block.sample_rate,
                    block.channels,
                    self.format.sample_rate,
                    self.format.channels
                ),
            });
        }
        let room = self.producer.slots().min(block.samples.len());
        if let Ok(chunk) = self.producer.write_chunk_uninit(room) {
            chunk.fill_from_iter(block.samples.iter().copied());
        }
        let dropped = block.samples.len() - room;
        if dropped > 0 {
            self.counters
                .overrun_samples
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn playback_counters(&self) -> Option<Arc<PlaybackCounters>> {
        Some(self.counters.clone())
    }

    fn finish(&mut self) -> Result<(), CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
        Ok(())
    }
}

#[cfg(feature = "alsa")]
impl Drop for PlaybackSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
