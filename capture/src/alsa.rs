//! Audio devices through cpal's ALSA backend: `default` and `alsa:NAME`,
//! for capture ([`open_capture`]) and playback ([`PlaybackSink`]).
//!
//! The device's callback runs on cpal's real-time thread and only copies
//! samples into or out of an rtrb single-producer/single-consumer ring;
//! everything else (drift compensation, block making, decoding) stays on the
//! caller's thread. When a playback ring runs dry the callback plays silence
//! and counts an underrun; when a ring is full the newest samples are
//! dropped and counted as an overrun, so neither side ever blocks the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use pstream_core::{
    AudioBlock, AudioFormat, AudioSink, AudioSource, DeviceCounters, MediaError, PipelineClock,
};

use crate::device::{
    check_block, promote_to_realtime, pull_from_callback, push_from_callback, CallbackPacer,
    RingCaptureSource, RingPlaybackWriter,
};
use crate::CaptureError;

/// The handler alsa-lib calls for its own diagnostics, as it calls it: the
/// C type is variadic, and a function that ignores the variadic part can
/// stand in for it on every Linux ABI (the fixed arguments are passed the
/// same way; the callee never touches the rest).
type QuietHandler = unsafe extern "C" fn(
    *const std::os::raw::c_char,
    std::os::raw::c_int,
    *const std::os::raw::c_char,
    std::os::raw::c_int,
    *const std::os::raw::c_char,
);

unsafe extern "C" fn ignore_alsa_error(
    _file: *const std::os::raw::c_char,
    _line: std::os::raw::c_int,
    _function: *const std::os::raw::c_char,
    _err: std::os::raw::c_int,
    _fmt: *const std::os::raw::c_char,
) {
}

/// Stops alsa-lib printing "ALSA lib pcm.c:...: Unknown PCM ..." lines on
/// stderr: every failure reaches pstream as an error value, which names the
/// device in one line of its own.
pub fn silence_alsa_lib() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let handler: QuietHandler = ignore_alsa_error;
        // SAFETY: see QuietHandler; the handler does nothing and is 'static.
        unsafe {
            let handler: alsa_sys::snd_lib_error_handler_t = Some(std::mem::transmute::<
                QuietHandler,
                unsafe extern "C" fn(
                    *const std::os::raw::c_char,
                    std::os::raw::c_int,
                    *const std::os::raw::c_char,
                    std::os::raw::c_int,
                    *const std::os::raw::c_char,
                    ...
                ),
            >(handler));
            alsa_sys::snd_lib_error_set_handler(handler);
        }
    });
}

/// Which way a device works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Capture,
    Playback,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Direction::Capture => "input",
            Direction::Playback => "output",
        }
    }
}

/// An ALSA device as cpal sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlsaDevice {
    /// The name `alsa:NAME` takes.
    pub name: String,
    /// Whether it can capture.
    pub input: bool,
    /// Whether it can play.
    pub output: bool,
}

/// Lists ALSA's devices (PCMs from the card list and the configuration).
pub fn list_devices() -> Result<Vec<AlsaDevice>, CaptureError> {
    silence_alsa_lib();
    let host = cpal::default_host();
    let mut all: Vec<AlsaDevice> = Vec::new();
    for (dir, list) in [
        (Direction::Capture, host.input_devices()),
        (Direction::Playback, host.output_devices()),
    ] {
        let list =
            list.map_err(|e| CaptureError::backend("alsa", "cannot list audio devices", e))?;
        for d in list {
            let Ok(name) = d.name() else { continue };
            let entry = match all.iter_mut().position(|a| a.name == name) {
                Some(i) => &mut all[i],
                None => {
                    all.push(AlsaDevice {
                        name,
                        input: false,
                        output: false,
                    });
                    let last = all.len() - 1;
                    &mut all[last]
                }
            };
            match dir {
                Direction::Capture => entry.input = true,
                Direction::Playback => entry.output = true,
            }
        }
    }
    Ok(all)
}

/// Finds the device a spec names: `default` or `alsa:NAME`.
fn find_device(spec: &str, dir: Direction) -> Result<cpal::Device, CaptureError> {
    silence_alsa_lib();
    let host = cpal::default_host();
    if spec == "default" {
        let d = match dir {
            Direction::Capture => host.default_input_device(),
            Direction::Playback => host.default_output_device(),
        };
        return d.ok_or_else(|| {
            CaptureError::unsupported(
                spec,
                format!(
                    "no default audio {} device (is there a sound card or sound server?)",
                    dir.noun()
                ),
            )
        });
    }
    let wanted = spec.strip_prefix("alsa:").unwrap_or(spec);
    let devices = match dir {
        Direction::Capture => host.input_devices(),
        Direction::Playback => host.output_devices(),
    }
    .map_err(|e| CaptureError::backend(spec, format!("cannot list audio {}s", dir.noun()), e))?;
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
            "no audio {} named {wanted:?}; available: {}",
            dir.noun(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}

/// The stream configuration for `format` (f32, the format's rate and
/// channels), or an error listing what the device offers.
fn config_for(
    spec: &str,
    device: &cpal::Device,
    dir: Direction,
    format: AudioFormat,
) -> Result<cpal::StreamConfig, CaptureError> {
    let offered: Vec<cpal::SupportedStreamConfigRange> = match dir {
        Direction::Capture => device.supported_input_configs().map(|c| c.collect()),
        Direction::Playback => device.supported_output_configs().map(|c| c.collect()),
    }
    .map_err(|e| CaptureError::backend(spec, "cannot query the device", e))?;
    let rate = cpal::SampleRate(format.sample_rate);
    let range = offered.iter().find(|r| {
        r.channels() == format.channels
            && r.sample_format() == cpal::SampleFormat::F32
            && r.min_sample_rate() <= rate
            && rate <= r.max_sample_rate()
    });
    match range {
        Some(r) => Ok((*r).with_sample_rate(rate).config()),
        None => {
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
            Err(CaptureError::unsupported(
                spec,
                format!(
                    "the device cannot {} {} Hz {}-channel f32; it offers: {}",
                    match dir {
                        Direction::Capture => "capture",
                        Direction::Playback => "play",
                    },
                    format.sample_rate,
                    format.channels,
                    list.join("; ")
                ),
            ))
        }
    }
}

/// The thread that owns a cpal stream (cpal streams are not Send
/// everywhere), keeping it alive until told to stop.
struct StreamOwner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StreamOwner {
    /// Builds the stream with `build` on a new thread and waits until it plays.
    fn start(
        spec: &str,
        thread_name: &str,
        build: impl FnOnce() -> Result<cpal::Stream, CaptureError> + Send + 'static,
    ) -> Result<Self, CaptureError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), CaptureError>>();
        let name = spec.to_owned();
        let owner_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                let stream = match build() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = stream.play() {
                    let _ = ready_tx.send(Err(CaptureError::backend(
                        &name,
                        "cannot start the stream",
                        e,
                    )));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while !owner_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                drop(stream);
            })
            .map_err(|e| CaptureError::io(spec, "start the audio thread", e))?;
        let mut owner = Self {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(owner),
            Ok(Err(e)) => {
                owner.stop();
                Err(e)
            }
            Err(_) => {
                owner.stop.store(true, Ordering::Relaxed);
                Err(CaptureError::unsupported(
                    spec,
                    "the audio device did not start within 5 s",
                ))
            }
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StreamOwner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// cpal reports stream errors (an unplugged device, an xrun it could not
/// recover) from its own thread.
fn stream_error(spec: &str, e: cpal::StreamError) {
    tracing::warn!("{spec}: {e}");
}

/// Opens the capture device named by `spec` (`default`, `alsa:NAME`) for
/// `format`: its callback copies into a ring that the returned source reads.
pub fn open_capture(
    spec: &str,
    format: AudioFormat,
    clock: PipelineClock,
) -> Result<Box<dyn AudioSource>, CaptureError> {
    format.validate(spec)?;
    let device = find_device(spec, Direction::Capture)?;
    let config = config_for(spec, &device, Direction::Capture, format)?;
    let (mut producer, consumer) = RingCaptureSource::ring(format);
    let counters = Arc::new(DeviceCounters::new());
    let cb_counters = counters.clone();
    let name = spec.to_string();
    let owner = StreamOwner::start(spec, "audio-capture", move || {
        let mut promoted = false;
        let mut pacer = CallbackPacer::new(format);
        let data_cb = move |input: &[f32], _: &cpal::InputCallbackInfo| {
            if !promoted {
                promoted = true;
                promote_to_realtime("audio capture");
            }
            // Only copies: no allocation, no lock, no syscall (the pacer
            // sleeps only for a device that does not pace itself).
            push_from_callback(&mut producer, input, &cb_counters);
            pacer.after(input.len(), &cb_counters);
        };
        let err_name = name.clone();
        device
            .build_input_stream(&config, data_cb, move |e| stream_error(&err_name, e), None)
            .map_err(|e| CaptureError::backend(&name, "cannot open the input stream", e))
    })?;
    Ok(Box::new(RingCaptureSource::new(
        spec,
        format,
        consumer,
        counters,
        clock,
        Box::new(owner),
    )))
}

/// An [`AudioSink`] that plays through an ALSA device.
pub struct PlaybackSink {
    name: String,
    format: AudioFormat,
    writer: RingPlaybackWriter,
    owner: Option<StreamOwner>,
}

impl std::fmt::Debug for PlaybackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackSink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

impl PlaybackSink {
    /// Opens the device named by `spec` for `format` (f32 at the format's
    /// rate and channel count) and starts it playing silence.
    pub fn open(spec: &str, format: AudioFormat) -> Result<Self, CaptureError> {
        let device = find_device(spec, Direction::Playback)?;
        let config = config_for(spec, &device, Direction::Playback, format)?;
        let (writer, mut consumer) = RingPlaybackWriter::new(format, PipelineClock::start());
        let cb_counters = writer.counters();
        let name = spec.to_string();
        let owner = StreamOwner::start(spec, "audio-playback", move || {
            let mut promoted = false;
            let mut pacer = CallbackPacer::new(format);
            let data_cb = move |out: &mut [f32], info: &cpal::OutputCallbackInfo| {
                if !promoted {
                    promoted = true;
                    promote_to_realtime("audio playback");
                }
                // cpal reads the device's own delay from ALSA's status: when
                // what is written now will be played. Lip sync adds it.
                let ts = info.timestamp();
                if let Some(delay) = ts.playback.duration_since(&ts.callback) {
                    cb_counters
                        .device_latency_us
                        .store(delay.as_micros() as u64, Ordering::Relaxed);
                }
                // Only copies: no allocation, no lock, no syscall (the pacer
                // sleeps only for a device that does not pace itself).
                pull_from_callback(&mut consumer, out, &cb_counters);
                pacer.after(out.len(), &cb_counters);
            };
            let err_name = name.clone();
            device
                .build_output_stream(&config, data_cb, move |e| stream_error(&err_name, e), None)
                .map_err(|e| CaptureError::backend(&name, "cannot open the output stream", e))
        })?;
        Ok(Self {
            name: spec.to_string(),
            format,
            writer,
            owner: Some(owner),
        })
    }
}

impl AudioSink for PlaybackSink {
    fn write_block(&mut self, block: &AudioBlock) -> Result<(), MediaError> {
        check_block(&self.name, self.format, block)?;
        self.writer.write(&block.samples);
        Ok(())
    }

    fn playback_counters(&self) -> Option<Arc<DeviceCounters>> {
        Some(self.writer.counters())
    }

    fn latency(&self) -> Option<Duration> {
        Some(self.writer.latency())
    }

    fn set_hold(&mut self, hold: Duration) {
        self.writer.set_hold(hold);
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        self.owner.take();
        Ok(())
    }
}
