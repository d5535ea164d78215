//! shmdata in and out of the pstream binary against the reference library
//! (libshmdata's `sdflow` and GStreamer's `shmdatasink` / `shmdatasrc`,
//! built by scripts/peers.sh): score's path without GStreamer.

mod common;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::gst::rtpbin_receiver;
use common::*;

/// The reference library built by scripts/peers.sh: fails (never skips)
/// when it is missing, like every peer.
fn peer_dir() -> PathBuf {
    let dir = std::env::var_os("PSTREAM_SHMDATA_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/shmdata")
        });
    assert!(
        dir.join("bin/sdflow").is_file() && dir.join("gst/libgstshmdata.so").is_file(),
        "the shmdata reference peer is not built in {}; run scripts/peers.sh (the test command does)",
        dir.display()
    );
    require("gst-launch-1.0");
    dir
}

/// What a reference peer needs to find libshmdata and the GStreamer plugin.
fn peer_env() -> Vec<(String, String)> {
    let dir = peer_dir();
    vec![
        (
            "LD_LIBRARY_PATH".into(),
            dir.join("lib").display().to_string(),
        ),
        (
            "GST_PLUGIN_PATH".into(),
            dir.join("gst").display().to_string(),
        ),
    ]
}

/// A socket path of this run (short enough for a unix socket), removed with
/// any System V IPC left under its keys when dropped.
struct Sock(PathBuf);

impl Sock {
    fn new(tag: &str) -> Sock {
        let path = PathBuf::from(format!("/tmp/pst-shmt-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Sock(path)
    }

    fn s(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let Ok(c) = std::ffi::CString::new(self.s()) else {
            return;
        };
        // SAFETY: plain calls on a valid C string and on ids the kernel gave.
        unsafe {
            for (proj, sem) in [(b'n', false), (b'm', true)] {
                let key = libc::ftok(c.as_ptr(), i32::from(proj));
                if key == -1 {
                    continue;
                }
                if sem {
                    let id = libc::semget(key, 2, 0);
                    if id >= 0 {
                        libc::semctl(id, 0, libc::IPC_RMID);
                    }
                } else {
                    let id = libc::shmget(key, 0, 0);
                    if id >= 0 {
                        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                    }
                }
            }
        }
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `gst-launch-1.0` with the reference plugin, a pipeline in words.
fn gst(name: &str, pipeline: &str, dir: &std::path::Path) -> Proc {
    let words: Vec<String> = pipeline.split_whitespace().map(str::to_owned).collect();
    Proc::start_env(name, "gst-launch-1.0".as_ref(), &words, dir, &peer_env())
}

/// `sdflow` on `path`: one line per frame it reads.
fn sdflow(path: &str, dir: &std::path::Path) -> Proc {
    let bin = peer_dir().join("bin/sdflow");
    Proc::start_env("sdflow", &bin, &args(&[path]), dir, &peer_env())
}

fn sdflow_frames(p: &Proc) -> usize {
    p.stdout().lines().filter(|l| l.contains("data:")).count()
}

/// Buffers a `fakesink name=NAME silent=false` printed under `gst-launch -v`.
fn fakesink_frames(p: &Proc, name: &str) -> usize {
    p.stdout()
        .matches(&format!("{name}: last-message = chain"))
        .count()
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The `frames N` of a summary line.
fn frames_in(line: &str) -> u64 {
    line.split("frames ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {line:?}"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// (a) send -> recv --video-out shmdata: sdflow counts from the start, a
/// GStreamer follower joins mid-stream and is then stopped (SIGSTOP): it
/// is dropped, and sdflow still counts at least 95% of what was sent.
#[test]
fn recv_serves_sdflow_and_shmdatasrc_and_drops_a_stopped_follower() {
    let _turn = serial();
    let dir = temp_dir("shm-recv");
    let (video, audio) = (Sock::new("rv"), Sock::new("ra"));
    let base = free_port_base();
    let mut recv = Proc::start(
        "recv",
        &pstream_bin(),
        &args(&[
            "recv",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--video-out",
            &format!("shmdata:{}", video.s()),
            "--audio-out",
            &format!("shmdata:{}", audio.s()),
        ]),
        &dir,
    );
    // recv binds its ports at once; the sender's first packets find them.
    std::thread::sleep(Duration::from_millis(500));
    // sdflow waits for a writer: it follows from recv's first picture on.
    let flow = sdflow(&video.s(), &dir);
    let audio_flow = {
        let bin = peer_dir().join("bin/sdflow");
        Proc::start_env(
            "sdflow-audio",
            &bin,
            &args(&[&audio.s()]),
            &dir,
            &peer_env(),
        )
    };
    let seconds = 10u64;
    let mut send = Proc::start(
        "send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--size",
            "640x360",
            "--fps",
            "30",
            "--duration",
            &seconds.to_string(),
        ]),
        &dir,
    );
    assert!(
        wait_until(Duration::from_secs(10), || video.0.exists()),
        "recv made no shmdata socket:\n{}",
        recv.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let late = gst(
        "shmdatasrc",
        &format!(
            "-v shmdatasrc socket-path={} ! fakesink name=late silent=false sync=false",
            video.s()
        ),
        &dir,
    );
    std::thread::sleep(Duration::from_secs(3));
    let late_count = fakesink_frames(&late, "late");
    let flow_mid = sdflow_frames(&flow);
    late.signal("STOP");
    let code = send.wait(Duration::from_secs(seconds + 20));
    assert_eq!(code, Some(0), "send failed:\n{}", send.stderr());
    std::thread::sleep(Duration::from_secs(1));
    recv.signal("INT");
    assert_eq!(
        recv.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        recv.stderr()
    );
    let sent = frames_in(video::summary(&send.stderr(), "send finished"));
    let counted = sdflow_frames(&flow);
    let audio_buffers = sdflow_frames(&audio_flow);
    eprintln!(
        "sent {sent} pictures; sdflow counted {counted} ({flow_mid} when the late follower \
         had {late_count}); audio follower {audio_buffers} buffers"
    );
    late.signal("CONT");
    assert!(
        counted as f64 >= 0.95 * sent as f64,
        "sdflow counted {counted} of {sent}\n{}\n{}",
        tail(&flow.stderr(), 10),
        tail(&recv.stderr(), 20)
    );
    assert!(
        late_count >= 60,
        "the follower that joined mid-stream counted {late_count} in 3 s\n{}",
        tail(&late.stderr(), 10)
    );
    assert!(
        audio_buffers >= 100,
        "audio shmdata: {audio_buffers} buffers"
    );
    assert!(
        recv.stderr()
            .contains("dropped 1 follower(s) that did not read a frame in time"),
        "the stopped follower was not dropped:\n{}",
        recv.stderr()
    );
    assert!(
        !video.0.exists() && !audio.0.exists(),
        "the socket files go with recv"
    );
}

/// Followers that are there before recv and its sender (sdflow polling
/// for the socket, GStreamer's shmdatasrc) get at least 99% of the
/// pictures, the first ones included: recv binds its writer and creates
/// the segment with the first decoded picture, the followers connect while
/// it waits for the second unit (the frame rate), and the first frame waits
/// for the followers greeted with its caps. Before, the socket came with
/// the tenth picture (the frame rate estimate), 300 ms in.
#[test]
fn followers_started_before_recv_get_every_picture() {
    let _turn = serial();
    let dir = temp_dir("shm-early");
    let video = Sock::new("early");
    let base = free_port_base();
    let flow = sdflow(&video.s(), &dir);
    let early = gst(
        "shmdatasrc-early",
        &format!(
            "-v shmdatasrc socket-path={} ! fakesink name=early silent=false sync=false",
            video.s()
        ),
        &dir,
    );
    let mut recv = Proc::start(
        "recv",
        &pstream_bin(),
        &args(&[
            "recv",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--video-out",
            &format!("shmdata:{}", video.s()),
        ]),
        &dir,
    );
    // recv binds its ports at once; gst-launch takes a moment to start.
    std::thread::sleep(Duration::from_millis(1500));
    let seconds = 5u64;
    let mut send = Proc::start(
        "send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--size",
            "640x360",
            "--fps",
            "30",
            "--audio",
            "none",
            "--duration",
            &seconds.to_string(),
        ]),
        &dir,
    );
    let code = send.wait(Duration::from_secs(seconds + 20));
    assert_eq!(code, Some(0), "send failed:\n{}", send.stderr());
    std::thread::sleep(Duration::from_millis(500));
    recv.signal("INT");
    assert_eq!(
        recv.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        recv.stderr()
    );
    let sent = frames_in(video::summary(&send.stderr(), "send finished"));
    let (counted, gst_counted) = (sdflow_frames(&flow), fakesink_frames(&early, "early"));
    eprintln!("sent {sent} pictures; sdflow counted {counted}, shmdatasrc {gst_counted}");
    for (who, n) in [("sdflow", counted), ("shmdatasrc", gst_counted)] {
        assert!(
            n as f64 >= 0.99 * sent as f64,
            "{who} counted {n} of {sent}\n{}\n{}\n{}",
            tail(&flow.stdout(), 5),
            tail(&early.stderr(), 10),
            tail(&recv.stderr(), 10)
        );
    }
}

/// (b) a GStreamer writer at 720p30 in BGRA and in I420 -> `pstream send
/// --video shmdata:` -> costream's rtpbin receiver decodes at least 90%.
#[test]
fn shmdatasink_720p_bgra_and_i420_reach_an_rtpbin_receiver() {
    let _turn = serial();
    for format in ["BGRA", "I420"] {
        let dir = temp_dir("shm-send");
        let sock = Sock::new(&format!("s{format}"));
        let writer = gst(
            "writer",
            &format!(
                "videotestsrc is-live=true pattern=ball ! \
                 video/x-raw,format={format},width=1280,height=720,framerate=30/1 ! \
                 shmdatasink socket-path={}",
                sock.s()
            ),
            &dir,
        );
        assert!(wait_until(Duration::from_secs(20), || sock.0.exists()));
        let base = free_port_base();
        let mut rx = rtpbin_receiver(base, &dir);
        let seconds = 8u64;
        let mut send = Proc::start(
            "send",
            &pstream_bin(),
            &args(&[
                "send",
                "--peer",
                "127.0.0.1",
                "--port-base",
                &base.to_string(),
                "--video",
                &format!("shmdata:{}", sock.s()),
                "--audio",
                "none",
                "--duration",
                &seconds.to_string(),
            ]),
            &dir,
        );
        let code = send.wait(Duration::from_secs(seconds + 20));
        let log = send.stderr();
        assert_eq!(code, Some(0), "send failed:\n{log}");
        std::thread::sleep(Duration::from_secs(1));
        rx.signal("INT");
        rx.wait(Duration::from_secs(10));
        drop(writer);
        let sent = frames_in(video::summary(&log, "send finished"));
        let decoded = fakesink_frames(&rx, "vsink") as u64;
        eprintln!("{format} 720p30 via shmdata: sent {sent}, GStreamer decoded {decoded}");
        assert!(
            sent >= seconds * 30 * 8 / 10,
            "sent only {sent} in {seconds} s:\n{log}"
        );
        assert!(
            decoded * 10 >= sent * 9,
            "decoded {decoded} of {sent}\n{}\n{log}",
            tail(&rx.stdout(), 20)
        );
        assert!(rx.stdout().contains("width=(int)1280, height=(int)720"));
    }
}

/// GStreamer's shmdatasink writing its moving ball, 720p30 BGRA, on
/// `sock`; returns once the socket exists.
fn bgra_720p_writer(sock: &Sock, dir: &std::path::Path) -> Proc {
    let writer = gst(
        "writer",
        &format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,format=BGRA,width=1280,height=720,framerate=30/1 ! \
             shmdatasink socket-path={}",
            sock.s()
        ),
        dir,
    );
    assert!(wait_until(Duration::from_secs(20), || sock.0.exists()));
    writer
}

/// `pstream send --video shmdata:SOCK --audio none --video-codec mjpeg`
/// to 127.0.0.1 for `seconds`, with `extra` arguments; asserts it exits 0
/// and returns its log.
fn send_mjpeg(sock: &Sock, extra: &[&str], seconds: u64, dir: &std::path::Path) -> String {
    let video = format!("shmdata:{}", sock.s());
    let duration = seconds.to_string();
    let mut a = vec!["send", "--peer", "127.0.0.1", "--video", &video];
    a.extend_from_slice(&["--audio", "none", "--video-codec", "mjpeg"]);
    a.extend_from_slice(&["--duration", &duration]);
    a.extend_from_slice(extra);
    let mut send = Proc::start("send", &pstream_bin(), &args(&a), dir);
    let code = send.wait(Duration::from_secs(seconds + 20));
    let log = send.stderr();
    assert_eq!(code, Some(0), "send failed:\n{log}");
    log
}

/// (b) The same in MJPEG: a GStreamer writer's BGRA 720p30 sent as JPEG
/// over RTP, decoded by GStreamer's rtpjpegdepay.
#[test]
fn shmdatasink_720p_is_sent_as_mjpeg() {
    let _turn = serial();
    let dir = temp_dir("shm-mjpeg");
    let sock = Sock::new("mjpeg");
    let writer = bgra_720p_writer(&sock, &dir);
    let base = free_port_base();
    let rx_args = args(&[
        "-e", "-v", "udpsrc", "address=127.0.0.1", &format!("port={base}"),
        "caps=application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)JPEG,payload=(int)26",
        "!", "rtpjpegdepay", "!", "jpegdec", "!", "fakesink", "name=vsink", "silent=false",
        "sync=false",
    ]);
    let mut rx = Proc::start("rtpjpeg", "gst-launch-1.0".as_ref(), &rx_args, &dir);
    assert!(
        rx.wait_for_output("Setting pipeline to PLAYING", Duration::from_secs(30)),
        "{}",
        rx.stderr()
    );
    let seconds = 8u64;
    let log = send_mjpeg(&sock, &["--port-base", &base.to_string()], seconds, &dir);
    std::thread::sleep(Duration::from_secs(1));
    rx.signal("INT");
    rx.wait(Duration::from_secs(10));
    drop(writer);
    let sent = frames_in(video::summary(&log, "send finished"));
    let decoded = fakesink_frames(&rx, "vsink") as u64;
    eprintln!("MJPEG 720p30 via shmdata: sent {sent}, GStreamer decoded {decoded}");
    assert!(sent >= seconds * 30 * 8 / 10, "sent only {sent}:\n{log}");
    assert!(
        decoded * 10 >= sent * 9,
        "decoded {decoded} of {sent}\n{}\n{log}",
        tail(&rx.stdout(), 20)
    );
    assert!(rx.stdout().contains("width=(int)1280, height=(int)720"));
}

/// #15 must-show 1, second half: the reference writer (GStreamer's
/// shmdatasink, 720p BGRA) -> `pstream send --video shmdata: --video-codec
/// mjpeg` -> ffprobe reading the stream through the score guide's
/// mjpeg.sdp, byte for byte (port 5000 is fixed by it).
#[test]
fn shmdatasink_mjpeg_is_read_by_ffprobe_through_the_guides_sdp() {
    let _turn = serial();
    require("ffprobe");
    require_port_5000_free();
    let dir = temp_dir("shm-mjpeg-sdp");
    let sdp = dir.join("mjpeg.sdp");
    std::fs::write(&sdp, GUIDE_SDP).expect("write sdp");
    let sock = Sock::new("mjsdp");
    let writer = bgra_720p_writer(&sock, &dir);
    let probe_args = args(&[
        "-hide_banner",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
        &sdp.to_string_lossy(),
        "-select_streams",
        "v",
        "-show_entries",
        "frame=width,height",
        "-of",
        "csv",
    ]);
    let mut probe = Proc::start("ffprobe", "ffprobe".as_ref(), &probe_args, &dir);
    // ffprobe reads as soon as it has parsed the SDP and bound the port.
    std::thread::sleep(Duration::from_millis(1500));
    let seconds = 5u64;
    let log = send_mjpeg(&sock, &[], seconds, &dir);
    std::thread::sleep(Duration::from_secs(1));
    probe.signal("INT");
    probe.wait(Duration::from_secs(10));
    drop(writer);
    let out = probe.stdout();
    let decoded = out.lines().filter(|l| l.starts_with("frame,")).count() as u64;
    let sent = frames_in(video::summary(&log, "send finished"));
    eprintln!(
        "MJPEG 720p30 from shmdatasink: sent {sent}, ffprobe (guide's mjpeg.sdp) decoded {decoded}"
    );
    let probe_log = probe.stderr();
    assert!(
        probe_log.contains("Video: mjpeg") && probe_log.contains("1280x720"),
        "ffprobe did not see 1280x720 MJPEG:\n{probe_log}"
    );
    assert!(sent >= seconds * 30 * 8 / 10, "sent only {sent}:\n{log}");
    assert!(
        decoded * 10 >= sent * 9,
        "ffprobe decoded {decoded} of {sent}\n{probe_log}\n{log}"
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("frame,"))
            .all(|l| l == "frame,1280,720"),
        "a frame of another size"
    );
}

/// (c) `pstream bridge` from the reference writer to a Y4M file: every
/// picture matches GStreamer's own conversion of the same test pattern.
#[test]
fn bridge_from_shmdatasink_to_y4m_matches_gstreamers_conversion() {
    let _turn = serial();
    let dir = temp_dir("shm-bridge");
    let sock = Sock::new("bridge");
    let caps = "video/x-raw,format=BGRA,width=320,height=240,framerate=30/1";
    let reference = dir.join("ref.i420");
    let mut r = gst(
        "reference",
        &format!(
            "-q videotestsrc pattern=smpte100 num-buffers=1 ! {caps} ! videoconvert ! \
             video/x-raw,format=I420,colorimetry=bt601 ! filesink location={}",
            reference.display()
        ),
        &dir,
    );
    assert_eq!(r.wait(Duration::from_secs(60)), Some(0), "{}", r.stderr());
    let reference = std::fs::read(&reference).expect("reference picture");
    assert_eq!(reference.len(), 320 * 240 * 3 / 2);
    let writer = gst(
        "writer",
        &format!(
            "videotestsrc is-live=true pattern=smpte100 ! {caps} ! shmdatasink socket-path={}",
            sock.s()
        ),
        &dir,
    );
    let out = dir.join("bridged.y4m");
    let mut bridge = Proc::start(
        "bridge",
        &pstream_bin(),
        &args(&[
            "bridge",
            "--video",
            &format!("shmdata:{}", sock.s()),
            "--video-out",
            &format!("y4m:{}", out.display()),
            "--duration",
            "4",
        ]),
        &dir,
    );
    assert_eq!(
        bridge.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        bridge.stderr()
    );
    drop(writer);
    let line = video::summary(&bridge.stderr(), "bridge finished").to_owned();
    let scan = scan_frames(&out, 320, 240);
    eprintln!("bridge: {line}; {} pictures in the file", scan.len());
    assert!(scan.len() >= 80, "{} pictures in 4 s: {line}", scan.len());
    let worst = scan
        .iter()
        .map(|p| video::luma_psnr(p, &reference))
        .fold(f64::INFINITY, f64::min);
    eprintln!("worst PSNR against GStreamer's conversion: {worst:.1} dB");
    assert!(worst >= 40.0, "PSNR {worst:.1} dB");
}

/// The pictures of a Y4M file of a known size.
fn scan_frames(path: &std::path::Path, w: usize, h: usize) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("y4m");
    let head = data.iter().position(|&b| b == b'\n').expect("header") + 1;
    assert!(
        String::from_utf8_lossy(&data[..head]).contains(&format!("W{w} H{h}")),
        "header {:?}",
        String::from_utf8_lossy(&data[..head])
    );
    let size = w * h * 3 / 2;
    data[head..]
        .chunks(6 + size)
        .filter(|c| c.len() == 6 + size)
        .map(|c| c[6..].to_vec())
        .collect()
}

/// (d) The writer stopped and started again at another size while `pstream
/// send` runs: the stream follows, the receiver decodes both sizes.
#[test]
fn send_follows_a_writer_restarted_at_another_size() {
    let _turn = serial();
    let dir = temp_dir("shm-restart");
    let sock = Sock::new("restart");
    let writer = |w: u32, h: u32| {
        gst(
            &format!("writer{w}"),
            &format!(
                "-e videotestsrc is-live=true pattern=ball ! \
                 video/x-raw,format=I420,width={w},height={h},framerate=30/1 ! \
                 shmdatasink socket-path={}",
                sock.s()
            ),
            &dir,
        )
    };
    let mut first = writer(640, 360);
    assert!(wait_until(Duration::from_secs(20), || sock.0.exists()));
    let base = free_port_base();
    let mut rx = rtpbin_receiver(base, &dir);
    let mut send = Proc::start(
        "send",
        &pstream_bin(),
        &args(&[
            "send",
            "--peer",
            "127.0.0.1",
            "--port-base",
            &base.to_string(),
            "--video",
            &format!("shmdata:{}", sock.s()),
            "--audio",
            "none",
            "--duration",
            "10",
        ]),
        &dir,
    );
    std::thread::sleep(Duration::from_secs(3));
    first.signal("INT");
    first.wait(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let second = writer(320, 240);
    assert_eq!(
        send.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        send.stderr()
    );
    drop(second);
    std::thread::sleep(Duration::from_secs(1));
    rx.signal("INT");
    rx.wait(Duration::from_secs(10));
    let out = rx.stdout();
    let log = send.stderr();
    eprintln!("send: {}", video::summary(&log, "send finished"));
    assert!(
        out.contains("width=(int)640, height=(int)360"),
        "first size not decoded\n{}",
        tail(&out, 20)
    );
    assert!(
        out.contains("width=(int)320, height=(int)240"),
        "second size not decoded\n{}\n{log}",
        tail(&out, 20)
    );
    assert_eq!(
        log.matches("the writer left").count(),
        1,
        "one departure said:\n{log}"
    );
}

/// Hostile paths: not a socket is one error line; a stale socket (a
/// crashed writer's) is waited on, said once.
#[test]
fn a_path_that_is_not_a_socket_fails_and_a_stale_socket_is_waited_on() {
    let dir = temp_dir("shm-hostile");
    let file = dir.join("plain-file");
    std::fs::write(&file, b"not a socket").expect("write");
    let (code, _, err) = run_pstream(
        &[
            "bridge",
            "--video",
            &format!("shmdata:{}", file.display()),
            "--video-out",
            "null",
            "--duration",
            "2",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{err}");
    let line = err
        .lines()
        .rfind(|l| l.contains("error"))
        .unwrap_or_default();
    assert!(line.contains("not a unix socket"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );

    let stale = Sock::new("stale");
    drop(UnixListener::bind(&stale.0).expect("bind"));
    assert!(stale.0.exists(), "the socket file outlives its listener");
    let (code, _, err) = run_pstream(
        &[
            "bridge",
            "--video",
            &format!("shmdata:{}", stale.s()),
            "--video-out",
            "null",
            "--duration",
            "3",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.matches("a socket file with no writer behind it")
            .count(),
        1,
        "said once:\n{err}"
    );
}
