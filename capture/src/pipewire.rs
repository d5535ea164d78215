//! Audio through PipeWire: `pipewire` (the session manager's default) or
//! `pipewire:NODE`, a node named by its `node.name`, for capture and
//! playback. Capturing from a sink captures its monitor
//! (`stream.capture.sink`), which is how costream recorded what a loop
//! device played.
//!
//! Each stream has its own thread running a PipeWire main loop; the
//! stream's process callback (PipeWire's real-time data thread) only copies
//! between the buffer and an rtrb ring, like the ALSA backend's callback.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use pipewire as pw;
use pstream_core::{
    AudioBlock, AudioFormat, AudioSink, AudioSource, DeviceCounters, MediaError, PipelineClock,
};
use pw::spa;

use crate::device::{check_block, promote_to_realtime, RingCaptureSource, RingPlaybackWriter};
use crate::CaptureError;

/// Longest wait for the PipeWire daemon to answer a registry round trip.
const ROUNDTRIP_TIMEOUT: Duration = Duration::from_secs(3);

/// A PipeWire node, as `pstream devices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PwNode {
    /// The global id.
    pub id: u32,
    /// `node.name`: what `pipewire:NODE` takes.
    pub name: String,
    /// `node.description` (or `node.nick`), for people.
    pub description: String,
    /// `media.class`: `Audio/Sink`, `Audio/Source`, `Stream/Output/Audio`...
    pub media_class: String,
}

impl PwNode {
    /// Whether the node is a device-like audio sink or source (not an
    /// application's stream).
    pub fn is_audio_endpoint(&self) -> bool {
        self.media_class.starts_with("Audio/")
    }
}

/// Parses `pipewire` / `pipewire:NODE` into the optional node name.
pub fn target_of(spec: &str) -> Option<&str> {
    spec.strip_prefix("pipewire:").filter(|t| !t.is_empty())
}

/// Initialises libpipewire once per process, with its own log lines off
/// (unless PIPEWIRE_DEBUG asks for them): every failure reaches pstream as
/// an error, which says it in one line; libpipewire would add its own
/// (`can't make support.system handle` where PipeWire is not installed).
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        pw::init();
        if std::env::var_os("PIPEWIRE_DEBUG").is_none() {
            // SAFETY: a plain setter of a global, after pw_init.
            unsafe { pw::sys::pw_log_set_level(spa::sys::SPA_LOG_LEVEL_NONE) };
        }
    });
}

fn connect_error(spec: &str, e: pw::Error) -> CaptureError {
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "unset".into());
    CaptureError::backend(
        spec,
        format!("cannot connect to PipeWire (is it running? XDG_RUNTIME_DIR={dir})"),
        e,
    )
}

/// Lists the nodes the daemon has, by a registry round trip on a loop of
/// its own.
fn roundtrip_nodes(
    spec: &str,
    mainloop: &pw::main_loop::MainLoop,
    core: &pw::core::Core,
) -> Result<Vec<PwNode>, CaptureError> {
    let registry = core
        .get_registry()
        .map_err(|e| CaptureError::backend(spec, "cannot read the registry", e))?;
    let nodes: Rc<RefCell<Vec<PwNode>>> = Rc::new(RefCell::new(Vec::new()));
    let sink = nodes.clone();
    let _reg = registry
        .add_listener_local()
        .global(move |g| {
            if g.type_ != pw::types::ObjectType::Node {
                return;
            }
            let Some(props) = g.props else { return };
            let get = |k: &str| props.get(k).unwrap_or_default().to_string();
            let description = match props.get("node.description") {
                Some(d) => d.to_string(),
                None => get("node.nick"),
            };
            sink.borrow_mut().push(PwNode {
                id: g.id,
                name: get("node.name"),
                description,
                media_class: get("media.class"),
            });
        })
        .register();
    let done = Rc::new(Cell::new(false));
    let pending = core
        .sync(0)
        .map_err(|e| CaptureError::backend(spec, "cannot sync", e))?;
    let (ml, d) = (mainloop.clone(), done.clone());
    let _core = core
        .add_listener_local()
        .done(move |id, seq| {
            if id == pw::core::PW_ID_CORE && seq == pending {
                d.set(true);
                ml.quit();
            }
        })
        .register();
    let ml = mainloop.clone();
    let timer = mainloop.loop_().add_timer(move |_| ml.quit());
    timer.update_timer(Some(ROUNDTRIP_TIMEOUT), None);
    mainloop.run();
    if !done.get() {
        return Err(CaptureError::unsupported(
            spec,
            format!(
                "the PipeWire daemon did not answer within {} s",
                ROUNDTRIP_TIMEOUT.as_secs()
            ),
        ));
    }
    let list = nodes.borrow().clone();
    Ok(list)
}

/// Lists PipeWire's nodes (sinks, sources, streams), sorted by id.
pub fn list_nodes() -> Result<Vec<PwNode>, CaptureError> {
    init();
    let mainloop = pw::main_loop::MainLoop::new(None).map_err(|e| connect_error("pipewire", e))?;
    let context = pw::context::Context::new(&mainloop).map_err(|e| connect_error("pipewire", e))?;
    let core = context
        .connect(None)
        .map_err(|e| connect_error("pipewire", e))?;
    let mut nodes = roundtrip_nodes("pipewire", &mainloop, &core)?;
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// The serialized EnumFormat parameter: interleaved f32 at the format's
/// rate and channel count (PipeWire converts from whatever the node has).
fn format_param(spec: &str, format: AudioFormat) -> Result<Vec<u8>, CaptureError> {
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa::param::audio::AudioFormat::F32LE);
    info.set_rate(format.sample_rate);
    info.set_channels(u32::from(format.channels));
    let obj = spa::pod::Object {
        type_: spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    };
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .map(|(c, _)| c.into_inner())
    .map_err(|e| CaptureError::backend(spec, "cannot build the format parameter", e))
}

/// What a stream thread does in its process callback.
enum Role {
    Capture(rtrb::Producer<f32>),
    Playback(rtrb::Consumer<f32>),
}

/// The per-stream state the process callback owns.
struct CallbackData {
    role: Role,
    counters: Arc<DeviceCounters>,
    stride: usize,
    promoted: bool,
}

/// The thread that runs one stream's main loop until told to stop.
struct StreamThread {
    quit: Option<pw::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StreamThread {
    fn start(
        spec: &str,
        format: AudioFormat,
        role: Role,
        counters: Arc<DeviceCounters>,
    ) -> Result<Self, CaptureError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<pw::channel::Sender<()>, CaptureError>>();
        let target = target_of(spec).map(str::to_string);
        let capture = matches!(role, Role::Capture(_));
        let name = spec.to_string();
        let thread = std::thread::Builder::new()
            .name(if capture { "pw-capture" } else { "pw-playback" }.into())
            .spawn(move || {
                if let Err(e) = run_stream(&name, target, format, role, counters, &ready_tx) {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| CaptureError::io(spec, "start the PipeWire thread", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(quit)) => Ok(Self {
                quit: Some(quit),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(CaptureError::unsupported(
                spec,
                "PipeWire did not start the stream within 10 s",
            )),
        }
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        if let Some(q) = self.quit.take() {
            let _ = q.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Body of a stream thread: connect, check the target exists, start the
/// stream, report ready, run until told to quit.
fn run_stream(
    spec: &str,
    target: Option<String>,
    format: AudioFormat,
    role: Role,
    counters: Arc<DeviceCounters>,
    ready: &mpsc::Sender<Result<pw::channel::Sender<()>, CaptureError>>,
) -> Result<(), CaptureError> {
    init();
    let cant = |e: pw::Error| connect_error(spec, e);
    let mainloop = pw::main_loop::MainLoop::new(None).map_err(cant)?;
    let context = pw::context::Context::new(&mainloop).map_err(cant)?;
    let core = context.connect(None).map_err(cant)?;
    let capture = matches!(role, Role::Capture(_));
    let mut target_is_sink = false;
    if let Some(t) = &target {
        // PipeWire would quietly link a stream whose target does not exist
        // to the default node; refuse it instead, naming what exists.
        let nodes = roundtrip_nodes(spec, &mainloop, &core)?;
        let found = nodes.iter().find(|n| &n.name == t);
        target_is_sink = found.is_some_and(|n| n.media_class.starts_with("Audio/Sink"));
        if found.is_none() {
            let mut names: Vec<String> = nodes
                .iter()
                .filter(|n| n.is_audio_endpoint())
                .map(|n| format!("{} ({})", n.name, n.media_class))
                .collect();
            names.sort();
            return Err(CaptureError::unsupported(
                spec,
                format!(
                    "no PipeWire node named {t:?}; audio nodes: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
    }
    let mut props = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Audio",
        *pw::keys::MEDIA_CATEGORY => if capture { "Capture" } else { "Playback" },
        *pw::keys::MEDIA_ROLE => "Communication",
        *pw::keys::APP_NAME => "pstream",
        *pw::keys::NODE_NAME => if capture { "pstream-capture" } else { "pstream-playback" },
        // 10 ms periods, the size of our blocks: less latency than the
        // default quantum and evenly spaced capture stamps.
        *pw::keys::NODE_LATENCY => "480/48000",
        // Stay on the named node: never moved to another when it goes.
        "node.dont-reconnect" => "true",
    };
    if let Some(t) = &target {
        props.insert("target.object", t.as_str());
        if capture && target_is_sink {
            // A sink as the target means its monitor.
            props.insert("stream.capture.sink", "true");
        }
    }
    let stream = pw::stream::Stream::new(&core, "pstream", props).map_err(cant)?;
    let data = CallbackData {
        role,
        counters,
        stride: std::mem::size_of::<f32>() * usize::from(format.channels),
        promoted: false,
    };
    let err_name = spec.to_string();
    let _listener = stream
        .add_local_listener_with_user_data(data)
        .state_changed(move |_, _, _, new| {
            if let pw::stream::StreamState::Error(e) = new {
                tracing::warn!("{err_name}: PipeWire stream error: {e}");
            }
        })
        .process(process)
        .register()
        .map_err(|e| CaptureError::backend(spec, "cannot listen to the stream", e))?;
    let param = format_param(spec, format)?;
    let pod = spa::pod::Pod::from_bytes(&param)
        .ok_or_else(|| CaptureError::unsupported(spec, "bad format parameter"))?;
    let mut params = [pod];
    stream
        .connect(
            if capture {
                spa::utils::Direction::Input
            } else {
                spa::utils::Direction::Output
            },
            None,
            pw::stream::StreamFlags::AUTOCONNECT
                | pw::stream::StreamFlags::MAP_BUFFERS
                | pw::stream::StreamFlags::RT_PROCESS,
            &mut params,
        )
        .map_err(|e| CaptureError::backend(spec, "cannot connect the stream", e))?;
    let (quit_tx, quit_rx) = pw::channel::channel::<()>();
    let ml = mainloop.clone();
    let _quit = quit_rx.attach(mainloop.loop_(), move |_| ml.quit());
    if ready.send(Ok(quit_tx)).is_err() {
        return Ok(());
    }
    mainloop.run();
    let _ = stream.disconnect();
    Ok(())
}

/// The process callback, on PipeWire's data thread: copy and count only.
fn process(stream: &pw::stream::StreamRef, d: &mut CallbackData) {
    if !d.promoted {
        d.promoted = true;
        // PipeWire usually made this thread real-time already (module-rt);
        // where it could not, ask ourselves (warns once if not allowed).
        let mut policy = 0;
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pthread_self is valid; both out-pointers live across the call.
        let rc =
            unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
        if rc != 0 || (policy != libc::SCHED_FIFO && policy != libc::SCHED_RR) {
            promote_to_realtime("PipeWire audio");
        }
    }
    let Some(mut buffer) = stream.dequeue_buffer() else {
        d.counters.underruns.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let requested = buffer.requested() as usize;
    let datas = buffer.datas_mut();
    let Some(data) = datas.first_mut() else {
        return;
    };
    match &mut d.role {
        Role::Capture(producer) => {
            let (offset, size) = {
                let c = data.chunk();
                (c.offset() as usize, c.size() as usize)
            };
            let Some(bytes) = data.data() else { return };
            let end = offset.saturating_add(size).min(bytes.len());
            let bytes = &bytes[offset.min(end)..end];
            let samples = bytes.len() / 4;
            let room = producer.slots().min(samples);
            if let Ok(chunk) = producer.write_chunk_uninit(room) {
                chunk.fill_from_iter(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            if room < samples {
                d.counters
                    .overrun_samples
                    .fetch_add((samples - room) as u64, Ordering::Relaxed);
            }
            d.counters
                .played_samples
                .fetch_add(samples as u64, Ordering::Relaxed);
        }
        Role::Playback(consumer) => {
            let stride = d.stride;
            let Some(bytes) = data.data() else { return };
            let mut frames = bytes.len() / stride;
            if requested > 0 {
                frames = frames.min(requested);
            }
            let want = frames * stride / 4;
            let have = consumer.slots().min(want);
            if let Ok(chunk) = consumer.read_chunk(have) {
                let (a, b) = chunk.as_slices();
                for (dst, s) in bytes.chunks_exact_mut(4).zip(a.iter().chain(b.iter())) {
                    dst.copy_from_slice(&s.to_le_bytes());
                }
                chunk.commit_all();
            }
            if have < want {
                bytes[have * 4..want * 4].fill(0);
                d.counters.underruns.fetch_add(1, Ordering::Relaxed);
            }
            d.counters
                .played_samples
                .fetch_add(want as u64, Ordering::Relaxed);
            store_device_latency(stream, frames, &d.counters);
            let chunk = data.chunk_mut();
            *chunk.offset_mut() = 0;
            *chunk.stride_mut() = stride as i32;
            *chunk.size_mut() = (frames * stride) as u32;
        }
    }
}

/// Records how long the buffer being filled takes to reach the device: the
/// graph's delay to the device (filters and the sink's own buffering, from
/// `pw_stream_get_time_n`, which is safe on the data thread) plus the buffer.
fn store_device_latency(stream: &pw::stream::StreamRef, frames: usize, counters: &DeviceCounters) {
    // SAFETY: an all-zero pw_time is a valid value of the plain C struct.
    let mut time: pw::sys::pw_time = unsafe { std::mem::zeroed() };
    // SAFETY: the stream pointer is the live stream this callback runs for;
    // `time` is a properly sized, writable pw_time.
    let rc = unsafe {
        pw::sys::pw_stream_get_time_n(
            stream.as_raw_ptr(),
            &mut time,
            std::mem::size_of::<pw::sys::pw_time>(),
        )
    };
    let rate = ticks_per_second(&time);
    if rc != 0 || rate <= 0.0 {
        return;
    }
    // The graph's rate is the stream's (PipeWire resamples otherwise, and
    // the difference is far below what lip sync resolves).
    let delay = time.delay.max(0) as f64 / rate;
    let buffer = frames as f64 / rate;
    let us = ((delay + buffer) * 1e6) as u64;
    counters.device_latency_us.store(us, Ordering::Relaxed);
}

/// Ticks per second of a `pw_time` (its rate is a fraction of a second per tick).
fn ticks_per_second(time: &pw::sys::pw_time) -> f64 {
    if time.rate.num == 0 {
        return 0.0;
    }
    f64::from(time.rate.denom) / f64::from(time.rate.num)
}

/// Opens a PipeWire capture stream (`pipewire`, `pipewire:NODE`; a sink
/// node captures its monitor).
pub fn open_capture(
    spec: &str,
    format: AudioFormat,
    clock: PipelineClock,
) -> Result<Box<dyn AudioSource>, CaptureError> {
    format.validate(spec)?;
    let (producer, consumer) = RingCaptureSource::ring(format);
    let counters = Arc::new(DeviceCounters::new());
    let thread = StreamThread::start(spec, format, Role::Capture(producer), counters.clone())?;
    Ok(Box::new(RingCaptureSource::new(
        spec,
        format,
        consumer,
        counters,
        clock,
        Box::new(thread),
    )))
}

/// An [`AudioSink`] playing into a PipeWire node.
pub struct PipeWireSink {
    name: String,
    format: AudioFormat,
    writer: RingPlaybackWriter,
    thread: Option<StreamThread>,
}

impl std::fmt::Debug for PipeWireSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWireSink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

impl PipeWireSink {
    /// Opens a playback stream to `pipewire` or `pipewire:NODE`.
    pub fn open(spec: &str, format: AudioFormat) -> Result<Self, CaptureError> {
        format.validate(spec)?;
        let (writer, consumer) = RingPlaybackWriter::new(format, PipelineClock::start());
        let thread =
            StreamThread::start(spec, format, Role::Playback(consumer), writer.counters())?;
        Ok(Self {
            name: spec.to_string(),
            format,
            writer,
            thread: Some(thread),
        })
    }
}

impl AudioSink for PipeWireSink {
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
        self.thread.take();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(target_of("pipewire"), None);
        assert_eq!(target_of("pipewire:"), None);
        assert_eq!(target_of("pipewire:sink_a"), Some("sink_a"));
    }

    #[test]
    fn the_format_parameter_serializes() {
        let p = format_param(
            "pipewire",
            AudioFormat {
                sample_rate: 48_000,
                channels: 2,
            },
        )
        .expect("serializes");
        assert!(spa::pod::Pod::from_bytes(&p).is_some());
    }
}
