//! Real V4L2 devices: this machine loads no kernel modules, so the tests boot
//! Debian's kernel in qemu (pure emulation) with the vivid test driver and
//! v4l2loopback (scripts/vm/prepare.sh builds the guest, scripts/vm/run.sh
//! boots it) and run pstream there, on the guest's own loopback. The host
//! reads what the guest wrote into the 9p share and checks the pictures.
//!
//! Without the prepared guest or qemu the tests skip with a message saying
//! how to get them, except in CI (`CI=true`), where scripts/test.sh prepares
//! the guest and a missing one is a failure.
//!
//! Under emulation everything runs ten to fifty times slower than natively,
//! so the pictures are small (320x180, 320x240) and the streams short.

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gst::rtpbin_receiver;
use common::hls::free_tcp_port;
use common::nginx::start_nginx;
use common::video::{luma_psnr, scan_y4m, stat, summary};
use common::*;
use pstream_mux::Y4mReader;

/// Longest a guest may run, boot included (run.sh kills qemu after it).
const GUEST_LIMIT_SECS: u64 = 300;

/// Shell functions every guest script starts with.
const GUEST_PRELUDE: &str = r#"
# node NAME: the /dev/videoN whose driver-given name is NAME.
node() {
  for d in /sys/class/video4linux/video*; do
    [ "$(cat "$d/name")" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
  done
  echo "no video node named $1" >&2
  return 1
}
# wait_for TEXT FILE SECS: until FILE contains TEXT; fails after SECS.
wait_for() {
  i=0
  until grep -q "$1" "$2" 2>/dev/null; do
    i=$((i + 1))
    [ $i -le $(($3 * 10)) ] || { echo "no '$1' in $2 after $3 s" >&2; return 1; }
    sleep 0.1
  done
}
# settle FILE SECS: until FILE stops growing for 2 s (at most SECS).
settle() {
  last=-1; still=0; i=0
  while [ $still -lt 4 ] && [ $i -lt $(($2 * 2)) ]; do
    size=$(stat -c %s "$1" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$size; i=$((i + 1))
    sleep 0.5
  done
}
# read_back DEV COUNT: once DEV offers capture (v4l2loopback with
# exclusive_caps turns into a capture device when a writer starts), its
# format to /share/back.fmt and COUNT pictures to /share/back.raw;
# fails if it never offers capture or the read fails.
read_back() {
  i=0
  until v4l2-ctl -d "$1" --get-fmt-video >/share/back.fmt 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "$1 never offered capture"; return 1; }
    sleep 0.1
  done
  timeout 90 v4l2-ctl -d "$1" --stream-mmap --stream-count="$2" --stream-to=/tmp/back.raw
  rb=$?
  cp /tmp/back.raw /share/back.raw
  return $rb
}
# net_up: the NIC run.sh --net gives (qemu's user network) as 10.0.2.15;
# 10.0.2.2 is the host's loopback.
net_up() {
  loadmod virtio_net || return 1
  i=0
  until ip link set eth0 up 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 50 ] || { echo "no eth0" >&2; return 1; }
    sleep 0.1
  done
  ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
}
set -x
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// The prepared guest's directory, or None (after saying why) when the
/// tests cannot boot one here. In CI a missing guest fails the test.
fn guest_ready() -> Option<PathBuf> {
    let dir = std::env::var_os("PSTREAM_VM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/vm"));
    let why = if !in_path("qemu-system-x86_64") {
        "qemu-system-x86_64 is not installed".to_string()
    } else if !dir.join("ready").is_file() {
        format!("no prepared guest in {}", dir.display())
    } else {
        require("v4l2-ctl");
        return Some(dir);
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{why}: CI runs the V4L2 device tests (scripts/test.sh runs scripts/vm/prepare.sh)"
    );
    eprintln!(
        "SKIPPED: {why}. The V4L2 device tests boot a qemu guest: run scripts/install-deps.sh \
         and scripts/vm/prepare.sh to run them."
    );
    None
}

/// What a guest run left behind.
struct GuestRun {
    share: PathBuf,
    /// The guest script's exit code (None: the guest never reported).
    code: Option<i32>,
    /// The script's own output (with `set -x` tracing).
    log: String,
}

impl GuestRun {
    /// A file the guest wrote into the share, as text.
    fn text(&self, name: &str) -> String {
        read_lossy(&self.share.join(name))
    }

    /// Everything worth seeing when an assertion fails.
    fn dump(&self) -> String {
        let mut out = format!("guest.log:\n{}", self.log);
        for name in ["send.log", "recv.log"] {
            let text = self.text(name);
            if !text.is_empty() {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out += &format!("\n{name} (tail):\n");
                for line in tail.into_iter().rev() {
                    out += line;
                    out.push('\n');
                }
            }
        }
        out + &format!("\nconsole.log:\n{}", self.text("console.log"))
    }
}

/// Boots the guest with `script` (after the prelude) and `programs` copied
/// into a fresh share, and waits for it to power off. `prepare` may put
/// input files into the share first.
fn run_guest(
    test: &str,
    script: &str,
    programs: &[&Path],
    prepare: impl FnOnce(&Path),
) -> GuestRun {
    run_guest_on(test, script, programs, prepare, false)
}

/// [`run_guest`], and with `net` the guest gets qemu's user network
/// (run.sh --net; the script calls `net_up`), through which it reaches
/// peers listening on the host's loopback at 10.0.2.2.
fn run_guest_on(
    test: &str,
    script: &str,
    programs: &[&Path],
    prepare: impl FnOnce(&Path),
    net: bool,
) -> GuestRun {
    let dir = temp_dir(test);
    let share = dir.join("share");
    std::fs::create_dir_all(&share).expect("create the share");
    prepare(&share);
    let script_path = dir.join("guest.sh");
    std::fs::write(&script_path, format!("{GUEST_PRELUDE}\n{script}")).expect("write guest.sh");
    let mut args = vec!["--timeout".to_string(), GUEST_LIMIT_SECS.to_string()];
    if net {
        args.push("--net".to_string());
    }
    args.push(share.display().to_string());
    args.push(script_path.display().to_string());
    args.extend(programs.iter().map(|p| p.display().to_string()));
    let started = std::time::Instant::now();
    let mut vm = Proc::start("vm", &repo_root().join("scripts/vm/run.sh"), &args, &dir);
    let run_code = vm.wait(Duration::from_secs(GUEST_LIMIT_SECS + 30));
    eprintln!(
        "{test}: guest ran {:.1} s; run.sh: {}",
        started.elapsed().as_secs_f64(),
        vm.stderr().trim()
    );
    let code = std::fs::read_to_string(share.join("status"))
        .ok()
        .and_then(|s| s.trim().strip_prefix("exit ")?.parse().ok());
    // run.sh passes the script's code on; 125 means no report at all.
    assert!(
        run_code.is_some() && (code.is_some() || run_code == Some(125)),
        "scripts/vm/run.sh failed ({run_code:?}):\n{}",
        vm.stderr()
    );
    // The programs' copies (pstream alone is over 100 MB) are no evidence.
    let _ = std::fs::remove_dir_all(share.join("bin"));
    let _ = std::fs::remove_dir_all(share.join("lib"));
    GuestRun {
        log: read_lossy(&share.join("guest.log")),
        share,
        code,
    }
}

fn v4l2_ctl() -> PathBuf {
    ["/usr/bin/v4l2-ctl", "/bin/v4l2-ctl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("v4l2-ctl"))
}

/// The harness itself: the guest boots, loads vivid and v4l2loopback, and
/// v4l2-ctl (copied in from the host) sees their nodes and formats.
#[test]
fn guest_has_vivid_and_v4l2loopback() {
    let Some(_) = guest_ready() else { return };
    let _turn = serial();
    let run = run_guest(
        "vm-devices",
        r#"
loadmod vivid n_devs=1 node_types=0x101
loadmod v4l2loopback exclusive_caps=1 max_buffers=8 video_nr=9 card_label=pstream-loop
ls -l /dev/video*
v4l2-ctl --list-devices
cap=$(node vivid-000-vid-cap)
out=$(node vivid-000-vid-out)
loop=$(node pstream-loop)
echo "nodes: cap=$cap out=$out loop=$loop"
v4l2-ctl -d "$cap" --list-formats-ext
v4l2-ctl -d "$out" --list-formats-out
v4l2-ctl -d "$loop" --info
echo "--- pstream devices"
pstream devices
"#,
        &[&v4l2_ctl(), &pstream_bin()],
        |_| {},
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let log = &run.log;
    assert!(
        log.contains("nodes: cap=/dev/video0 out=/dev/video1 loop=/dev/video9"),
        "vivid's capture and output nodes and the loopback node:\n{log}"
    );
    assert!(log.contains("vivid (platform:vivid-000)"), "{log}");
    assert!(
        log.contains("pstream-loop (platform:v4l2loopback-000)"),
        "{log}"
    );
    // vivid's webcam input offers YUYV at 320x180 among its discrete sizes.
    assert!(
        log.contains("'YUYV'") && log.contains("Size: Discrete 320x180"),
        "{log}"
    );
    // pstream's own listing: both of vivid's nodes and the loopback, with
    // the camera's formats under it.
    // The last occurrence: the guest's shell traces the echo line first.
    let listing = log
        .rsplit_once("--- pstream devices\n")
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no pstream devices output:\n{log}"));
    assert!(listing.contains("V4L2 video devices"), "{listing}");
    for (node, kind) in [
        ("/dev/video0", "capture"),
        ("/dev/video1", "output"),
        ("/dev/video9", "output"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(node) && l.split_whitespace().nth(1) == Some(kind)),
            "{node} as {kind} in:\n{listing}"
        );
    }
    assert!(
        listing.contains("YUYV") && listing.contains("320x180"),
        "{listing}"
    );
    // exclusive_caps=1: with no writer the loopback node is an output only.
    let loop_info = log
        .split("--info")
        .nth(1)
        .and_then(|s| s.split("Device Caps").nth(1))
        .unwrap_or_else(|| panic!("no loopback device caps:\n{log}"));
    assert!(
        loop_info.contains("Video Output") && !loop_info.contains("Video Capture"),
        "{loop_info}"
    );
}

/// 75% colour bars in BT.601 limited range, left to right (white, yellow,
/// cyan, green, magenta, red, blue, black): vivid's default test pattern.
fn colour_bars_601() -> Vec<[f64; 3]> {
    let rgb = [
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0],
    ];
    rgb.iter()
        .map(|c| {
            let [r, g, b] = c.map(|v: f64| v * 0.75);
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            [
                16.0 + 219.0 * y,
                128.0 + 224.0 * (b - y) / 1.772,
                128.0 + 224.0 * (r - y) / 1.402,
            ]
        })
        .collect()
}

/// Mean Y, Cb, Cr of the middle half of each of the 8 bars, over the rows
/// `rows` of an I420 picture.
fn bar_means(frame: &[u8], w: usize, h: usize, rows: std::ops::Range<usize>) -> Vec<[f64; 3]> {
    let (cw, ch) = (w / 2, h / 2);
    let (u_plane, v_plane) = (&frame[w * h..], &frame[w * h + cw * ch..]);
    (0..8)
        .map(|bar| {
            let (x0, x1) = (w * (4 * bar + 1) / 32, w * (4 * bar + 3) / 32);
            let mut sum = [0.0; 3];
            let mut n = [0.0; 3];
            for y in rows.clone() {
                for x in x0..x1 {
                    sum[0] += f64::from(frame[y * w + x]);
                    n[0] += 1.0;
                    if y % 2 == 0 && x % 2 == 0 {
                        let c = (y / 2) * cw + x / 2;
                        sum[1] += f64::from(u_plane[c]);
                        sum[2] += f64::from(v_plane[c]);
                        n[1] += 1.0;
                        n[2] += 1.0;
                    }
                }
            }
            [sum[0] / n[0], sum[1] / n[1], sum[2] / n[2]]
        })
        .collect()
}

fn read_y4m_frames(path: &Path) -> (u32, u32, Vec<Vec<u8>>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = Y4mReader::new(BufReader::new(file), "y4m")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let f = reader.header().format;
    let mut frames = Vec::new();
    while let Some(data) = reader
        .read_frame()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        frames.push(data.to_vec());
    }
    (f.width, f.height, frames)
}

/// (a) pstream captures vivid's camera in the guest and streams it to a
/// pstream receiver there; the host checks the receiver's Y4M holds vivid's
/// colour bars at the size asked for, and that the pictures move (vivid
/// paints a running frame counter over the bars).
#[test]
fn send_captures_vivid_camera() {
    let Some(_) = guest_ready() else { return };
    let _turn = serial();
    let run = run_guest(
        "vm-vivid-send",
        r#"
loadmod vivid n_devs=1 node_types=0x101
cap=$(node vivid-000-vid-cap)
pstream recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base 6000 \
  --video-out y4m:/tmp/out.y4m >/share/recv.log 2>&1 &
recv=$!
wait_for "receiving from" /share/recv.log 60
pstream send --peer 127.0.0.1 --port-base 6000 --audio none --duration 8 \
  --video "v4l2:$cap?size=320x180&fps=15" >/share/send.log 2>&1
sent=$?
# The receiver may still be decoding a backlog under emulation.
settle /tmp/out.y4m 30
kill -INT $recv
wait $recv
got=$?
cp /tmp/out.y4m /share/out.y4m
[ $sent -eq 0 ] && [ $got -eq 0 ]
"#,
        &[&pstream_bin()],
        |_| {},
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let sent = run.text("send.log");
    let got = run.text("recv.log");
    let sent = summary(&sent, "send finished");
    let got = summary(&got, "recv finished");
    eprintln!("{sent}\n{got}");

    let scan = scan_y4m(&run.share.join("out.y4m"), false);
    assert_eq!((scan.width, scan.height), (320, 180), "size asked for");
    // (The header's rate is recv's estimate from the first two pictures'
    // RTP timestamps; emulation's stalls make it meaningless here.)
    let (w, h, frames) = read_y4m_frames(&run.share.join("out.y4m"));
    assert_eq!(frames.len(), scan.pictures.len());
    assert!(
        frames.len() >= 5,
        "only {} pictures arrived:\n{}",
        frames.len(),
        run.dump()
    );
    assert_eq!(
        stat(got, "video", "frames"),
        Some(frames.len() as f64),
        "pictures decoded vs written: {got}"
    );
    let (w, h) = (w as usize, h as usize);

    // Below vivid's text the bars are clean: each bar's colour within a
    // few steps of 75% bars, in every picture.
    let expected = colour_bars_601();
    for (i, frame) in frames.iter().enumerate() {
        let means = bar_means(frame, w, h, h * 5 / 6..h - 2);
        for (bar, (got, want)) in means.iter().zip(&expected).enumerate() {
            let ok = (got[0] - want[0]).abs() < 10.0
                && (got[1] - want[1]).abs() < 14.0
                && (got[2] - want[2]).abs() < 14.0;
            assert!(
                ok,
                "picture {i}, bar {bar}: Y'CbCr {got:.0?}, colour bars have {want:.0?}"
            );
        }
    }
    // The counter in vivid's text changes, so the pictures are live, not
    // one frame repeated.
    let top = w * h / 4;
    let (first, last) = (&frames[0][..top], &frames[frames.len() - 1][..top]);
    let changed = first
        .iter()
        .zip(last)
        .filter(|(a, b)| a.abs_diff(**b) > 40)
        .count();
    assert!(
        changed > 20,
        "the first and last pictures' text is the same ({changed} pixels differ)"
    );
}

/// Parses v4l2-ctl's --get-fmt-video: (width, height, fourcc).
fn parse_fmt(text: &str) -> Option<(usize, usize, String)> {
    let mut size = None;
    let mut fourcc = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Width/Height") {
            let v = v.trim_start_matches([' ', ':']);
            let (w, h) = v.split_once('/')?;
            size = Some((w.trim().parse().ok()?, h.trim().parse().ok()?));
        } else if let Some(v) = line.strip_prefix("Pixel Format") {
            fourcc = Some(v.split('\'').nth(1)?.to_string());
        }
    }
    let (w, h) = size?;
    Some((w, h, fourcc?))
}

/// The luma planes of `count` raw frames v4l2-ctl streamed to a file.
///
/// v4l2-ctl writes each buffer's `bytesused`, which v4l2loopback rounds up
/// to whole pages (118784 bytes for a 115200-byte 320x240 I420 picture), so
/// the records are the file's length over the count, the picture first.
fn raw_lumas(data: &[u8], count: usize, w: usize, h: usize, fourcc: &str) -> Vec<Vec<u8>> {
    let picture = match fourcc {
        "YU12" | "YV12" => w * h * 3 / 2,
        "YUYV" => w * h * 2,
        other => panic!("the loopback device carries {other}, expected YU12 or YUYV"),
    };
    assert!(
        count > 0 && data.len() % count == 0 && data.len() / count >= picture,
        "{} bytes read back are not {count} pictures of {picture} bytes",
        data.len()
    );
    data.chunks_exact(data.len() / count)
        .map(|f| match fourcc {
            "YUYV" => f[..picture].iter().step_by(2).copied().collect(),
            _ => f[..w * h].to_vec(),
        })
        .collect()
}

/// Pictures the reader takes off the loopback device.
const READ_BACK: usize = 12;

/// (b) pstream recv writes a received stream into a v4l2loopback device
/// (exclusive_caps=1, the virtual camera OBS and browsers see); what a
/// reader takes off its capture side matches the pictures sent.
#[test]
fn recv_writes_into_v4l2loopback() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    let _turn = serial();
    let run = run_guest(
        "vm-loopback-recv",
        &r#"
# max_buffers=8 as `pstream setup` loads it: with the default 2, v4l2-ctl
# lagging under emulation reads a buffer the writer is already refilling.
loadmod v4l2loopback exclusive_caps=1 max_buffers=8 video_nr=9 card_label=pstream-loop
dev=$(node pstream-loop)
pstream recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base 6000 \
  --video-out "v4l2:$dev" >/share/recv.log 2>&1 &
recv=$!
wait_for "receiving from" /share/recv.log 60
pstream send --peer 127.0.0.1 --port-base 6000 --audio none \
  --video y4m:/share/src.y4m >/share/send.log 2>&1 &
send=$!
read_back "$dev" READ_BACK
read=$?
kill -INT $send
wait $send
sent=$?
kill -INT $recv
wait $recv
got=$?
[ $read -eq 0 ] && [ $sent -eq 0 ] && [ $got -eq 0 ]
"#
        .replace("READ_BACK", &READ_BACK.to_string()),
        &[&pstream_bin(), &v4l2_ctl()],
        // 20 s at 15 fps: the sender paces it in real time and the first
        // pictures reach the device some 8 s in under emulation; it is
        // stopped once read back.
        |share| testsrc_y4m(share, "320x240", 15, 300),
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let got = run.text("recv.log");
    eprintln!("{}", summary(&got, "recv finished"));

    assert_read_back(&run, READ_BACK, 4, "");
}

/// Asserts that what the guest's `read_back` took off a device
/// (/share/back.fmt, /share/back.raw) is `count` pictures of the source's
/// size (/share/src.y4m), each a source picture in order, at least
/// `distinct` different ones (see [`assert_source_pictures`]); `logs` goes
/// into the messages. The source is removed after.
fn assert_read_back(run: &GuestRun, count: usize, distinct: usize, logs: &str) {
    let (sw, sh, source) = read_y4m_frames(&run.share.join("src.y4m"));
    let (sw, sh) = (sw as usize, sh as usize);
    let fmt = run.text("back.fmt");
    let (w, h, fourcc) =
        parse_fmt(&fmt).unwrap_or_else(|| panic!("no format from v4l2-ctl:\n{fmt}\n{logs}"));
    assert_eq!((w, h), (sw, sh), "the device's size");
    let back = std::fs::read(run.share.join("back.raw")).expect("read back.raw");
    let lumas = raw_lumas(&back, count, w, h, &fourcc);
    assert_source_pictures(&lumas, &source, sw * sh, distinct);
    let _ = std::fs::remove_file(run.share.join("src.y4m"));
}

/// Writes ffmpeg's moving test picture (`size` as WxH, `rate` fps,
/// `frames` pictures) to share/src.y4m.
fn testsrc_y4m(share: &Path, size: &str, rate: u32, frames: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate={rate}"))
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"])
        .arg(share.join("src.y4m"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not write the source");
}

/// Asserts each picture read back is one of the source pictures (luma
/// planes of `luma_len` bytes first in each), coded once, in order, with at
/// least `distinct` different ones among them.
fn assert_source_pictures(lumas: &[Vec<u8>], source: &[Vec<u8>], luma_len: usize, distinct: usize) {
    let mut matched = Vec::new();
    for (i, luma) in lumas.iter().enumerate() {
        let (best, psnr) = source
            .iter()
            .map(|s| luma_psnr(luma, &s[..luma_len]))
            .enumerate()
            .fold((0, f64::MIN), |a, (k, p)| if p > a.1 { (k, p) } else { a });
        eprintln!("read back {i}: source picture {best}, luma PSNR {psnr:.1} dB");
        assert!(
            psnr > 35.0,
            "picture {i} read back matches no source picture (best {best}: {psnr:.1} dB)"
        );
        matched.push(best);
    }
    // In order, and moving: several different source pictures came through.
    assert!(
        matched.windows(2).all(|p| p[0] <= p[1]),
        "pictures read back out of order: {matched:?}"
    );
    let mut seen = matched.clone();
    seen.dedup();
    assert!(
        seen.len() >= distinct,
        "the device repeated pictures: {matched:?}"
    );
}

/// Pictures read back from vivid's capture node: it runs at the HDMI
/// timings' 60 Hz (some 10 Hz under emulation), repeating the output's last
/// picture in between.
const VIVID_READ_BACK: usize = 20;

/// (b') pstream recv writes into vivid's HDMI output node (mmap output
/// streaming, the path real output drivers get) with the capture node's
/// loop_video control on: what vivid's capture side shows is the received
/// stream. 640x480 is vivid's smallest HDMI timing. vivid's text overlay is
/// turned off so the pictures are the sender's alone.
#[test]
fn recv_writes_into_vivid_output() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    let _turn = serial();
    let run = run_guest(
        "vm-vivid-out-recv",
        &r#"
loadmod vivid n_devs=1 node_types=0x101
cap=$(node vivid-000-vid-cap)
out=$(node vivid-000-vid-out)
# HDMI in and out at the same timings, same pixel format: vivid loops.
v4l2-ctl -d "$cap" -i 3
v4l2-ctl -d "$cap" -c loop_video=1
v4l2-ctl -d "$cap" -c osd_text_mode=2
v4l2-ctl -d "$out" -o 1
v4l2-ctl -d "$cap" --set-dv-bt-timings index=0
v4l2-ctl -d "$out" --set-dv-bt-timings index=0
v4l2-ctl -d "$cap" --set-fmt-video=pixelformat=YU12
v4l2-ctl -d "$cap" --get-fmt-video >/share/back.fmt
pstream recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base 6000 \
  --video-out "v4l2:$out" >/share/recv.log 2>&1 &
recv=$!
wait_for "receiving from" /share/recv.log 60
pstream send --peer 127.0.0.1 --port-base 6000 --audio none \
  --video y4m:/share/src.y4m >/share/send.log 2>&1 &
send=$!
wait_for "to v4l2:" /share/recv.log 120
v4l2-ctl -d "$out" --get-fmt-video-out
# Output streaming starts with the first picture queued.
sleep 2
timeout 90 v4l2-ctl -d "$cap" --stream-mmap --stream-count=READ_BACK --stream-to=/tmp/back.raw
read=$?
cp /tmp/back.raw /share/back.raw
kill -INT $send
wait $send
sent=$?
kill -INT $recv
wait $recv
got=$?
[ $read -eq 0 ] && [ $sent -eq 0 ] && [ $got -eq 0 ]
"#
        .replace("READ_BACK", &VIVID_READ_BACK.to_string()),
        &[&pstream_bin(), &v4l2_ctl()],
        // 30 s at 5 fps: at 640x480 the first pictures reach the device
        // some 14 s in under emulation; a low rate keeps the file small and
        // the emulated encoder and decoder up with it. The sender is
        // stopped once the pictures are read back.
        |share| testsrc_y4m(share, "640x480", 5, 150),
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    eprintln!("{}", summary(&run.text("recv.log"), "recv finished"));
    assert_read_back(&run, VIVID_READ_BACK, 2, "");
}

/// `pstream setup --apply` in the guest runs the guest's own modprobe (as
/// root, no sudo), which loads v4l2loopback by name with costream's two
/// labelled cameras; run again, it finds them and does nothing.
#[test]
fn setup_apply_loads_the_loopback_cameras() {
    let Some(_) = guest_ready() else { return };
    let _turn = serial();
    let run = run_guest(
        "vm-setup",
        r#"
echo "--- plan"
pstream setup --only video
echo "--- apply"
pstream setup --apply --only video
echo "--- names"
for d in /sys/devices/virtual/video4linux/*; do echo "$(basename $d) $(cat $d/name)"; done
grep -h . /sys/module/v4l2loopback/parameters/max_buffers /sys/module/v4l2loopback/parameters/exclusive_caps 2>/dev/null || true
echo "--- again"
pstream setup --apply --only video
echo "--- end"
"#,
        &[&pstream_bin()],
        |_| {},
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let log = &run.log;
    let section = |name: &str| -> String {
        log.rsplit_once(&format!("--- {name}\n"))
            .map(|(_, rest)| rest.split("\n--- ").next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no {name} section:\n{log}"))
    };
    let plan = section("plan");
    assert!(
        plan.contains("modprobe v4l2loopback devices=2 video_nr=10,11"),
        "{plan}"
    );
    assert!(
        !plan.contains("pw-cli"),
        "--only video showed the sinks: {plan}"
    );
    // No PipeWire in the guest, and none needed: not a word from libpipewire.
    assert!(!log.contains("[E]"), "{log}");
    let apply = section("apply");
    assert!(
        apply.contains("pstream setup: running modprobe v4l2loopback"),
        "{apply}"
    );
    let names = section("names");
    assert!(names.contains("video10 pstream-topeer"), "{names}");
    assert!(names.contains("video11 pstream-frompeer"), "{names}");
    let again = section("again");
    assert!(
        again.contains("already done: both loopback devices exist"),
        "{again}"
    );
    assert!(!again.contains("running"), "{again}");
}

/// Distinct pictures of the MJPEG camera stand-in.
const JPEG_FRAMES: usize = 25;

/// Writes `JPEG_FRAMES` 320x240 JPEGs of a moving picture into
/// `dir/frames` with `encoder` (a gst-launch-1.0 or ffmpeg command line
/// whose output pattern is `{frames}`), and returns their luma planes
/// (decoded by ffmpeg, no range or colour conversion) to compare with.
fn camera_jpegs(dir: &Path, encoder: &[&str]) -> Vec<Vec<u8>> {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).expect("frames dir");
    let pattern = frames.join("%03d.jpg").display().to_string();
    let args: Vec<String> = encoder[1..]
        .iter()
        .map(|a| a.replace("{frames}", &pattern))
        .collect();
    let status = std::process::Command::new(encoder[0])
        .args(&args)
        .status()
        .unwrap_or_else(|e| panic!("run {}: {e}", encoder[0]));
    assert!(status.success(), "{} could not write the JPEGs", encoder[0]);
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(frames.join("%03d.jpg"))
        .args(["-f", "rawvideo", "-pix_fmt", "yuvj422p", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg could not decode the JPEGs");
    let frame = 320 * 240 * 2;
    assert_eq!(out.stdout.len(), frame * JPEG_FRAMES);
    out.stdout
        .chunks_exact(frame)
        .map(|f| f[..320 * 240].to_vec())
        .collect()
}

/// The guest's MJPEG camera: v4l2loopback set to MJPG 320x240, fed one JPEG
/// per write() (dd) as a UVC camera delivers one per buffer, looping over
/// the frames; then pstream sends from it with `--video-codec mjpeg` to a
/// pstream receiver writing Y4M.
const MJPEG_CAMERA_SCRIPT: &str = r#"
loadmod v4l2loopback exclusive_caps=0 max_buffers=8 video_nr=9 card_label=pstream-mjpeg
dev=$(node pstream-mjpeg)
v4l2-ctl -d "$dev" -c keep_format=1
v4l2-ctl -d "$dev" --set-fmt-video-out=width=320,height=240,pixelformat=MJPG
( while :; do for f in /share/frames/*.jpg; do
    dd if="$f" of="$dev" bs=1M count=1 2>/dev/null; usleep 40000
  done; done ) &
writer=$!
sleep 1
v4l2-ctl -d "$dev" --list-formats-ext
pstream recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base 6000 --video-codec mjpeg \
  --video-out y4m:/share/out.y4m >/share/recv.log 2>&1 &
recv=$!
wait_for "receiving from" /share/recv.log 60
pstream send --peer 127.0.0.1 --port-base 6000 --audio none --video-codec mjpeg \
  --video "v4l2:$dev?format=MJPG" --duration 8 >/share/send.log 2>&1
sent=$?
kill $writer
sleep 2
kill -INT $recv
wait $recv
got=$?
[ $sent -eq 0 ] && [ $got -eq 0 ]
"#;

/// Checks every received picture is one of the camera's JPEGs (luma PSNR
/// over `min_psnr` against the best match), with at least `distinct` of them.
fn assert_camera_pictures(run: &GuestRun, source: &[Vec<u8>], min_psnr: f64, distinct: usize) {
    let (w, h, frames) = read_y4m_frames(&run.share.join("out.y4m"));
    assert_eq!((w, h), (320, 240), "{}", run.dump());
    assert!(
        frames.len() >= 10,
        "only {} pictures received:\n{}",
        frames.len(),
        run.dump()
    );
    let mut matched = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let (best, psnr) = source
            .iter()
            .map(|s| luma_psnr(&f[..320 * 240], s))
            .enumerate()
            .fold((0, f64::MIN), |a, (k, p)| if p > a.1 { (k, p) } else { a });
        assert!(
            psnr > min_psnr,
            "picture {i} matches no camera JPEG (best {best}: {psnr:.1} dB)"
        );
        matched.push(best);
    }
    matched.sort_unstable();
    matched.dedup();
    assert!(
        matched.len() >= distinct,
        "the same few pictures: {matched:?}"
    );
}

/// A camera that delivers MJPEG (4:2:2, standard Huffman tables, as UVC
/// webcams send) is sent as it is: the sender says so, encodes nothing, and
/// every received picture is one of the camera's JPEGs, decoded.
#[test]
fn an_mjpeg_camera_is_sent_without_reencoding() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    require("gst-launch-1.0");
    let _turn = serial();
    let mut source = Vec::new();
    let run = run_guest(
        "vm-mjpeg-camera",
        MJPEG_CAMERA_SCRIPT,
        &[&pstream_bin(), &v4l2_ctl()],
        |share| {
            // libjpeg through GStreamer's jpegenc: 4:2:2 sampled 2x1 and
            // the standard Huffman tables, what UVC cameras deliver.
            source = camera_jpegs(
                share,
                &[
                    "gst-launch-1.0",
                    "-q",
                    "videotestsrc",
                    "pattern=ball",
                    &format!("num-buffers={JPEG_FRAMES}"),
                    "!",
                    "video/x-raw,format=Y42B,width=320,height=240,framerate=25/1",
                    "!",
                    "jpegenc",
                    "quality=85",
                    "!",
                    "multifilesink",
                    "location={frames}",
                ],
            )
        },
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let sent = run.text("send.log");
    eprintln!("{}", summary(&sent, "send finished"));
    assert!(
        sent.contains("sending the camera's JPEGs as they are"),
        "{sent}"
    );
    assert!(!sent.contains("decoding and re-encoding"), "{sent}");
    // The camera's own counters are on the stats line: frames taken from
    // the driver, none corrupt.
    let finished = summary(&sent, "send finished");
    let frames = stat(finished, "cam", "frames").unwrap_or_else(|| panic!("{finished}"));
    assert!(frames >= 10.0, "{finished}");
    assert_eq!(stat(finished, "cam", "corrupt"), Some(0.0), "{finished}");
    assert!(run.log.contains("'MJPG'"), "{}", run.log);
    // The receiver decodes exactly what the camera produced: only the two
    // decoders' rounding differs.
    assert_camera_pictures(&run, &source, 45.0, 5);
}

/// A camera whose JPEGs RFC 2435 cannot carry as they are (ffmpeg's: 4:2:2
/// as 2x2 luma over 1x2 chroma, optimised Huffman tables) still streams:
/// the sender says why in one line and re-encodes them, and the received
/// pictures are the camera's.
#[test]
fn an_mjpeg_camera_with_unsendable_jpegs_is_reencoded() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    let _turn = serial();
    let mut source = Vec::new();
    let run = run_guest(
        "vm-mjpeg-reencode",
        MJPEG_CAMERA_SCRIPT,
        &[&pstream_bin(), &v4l2_ctl()],
        |share| {
            source = camera_jpegs(
                share,
                &[
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=320x240:rate=25",
                    "-frames:v",
                    &JPEG_FRAMES.to_string(),
                    "-c:v",
                    "mjpeg",
                    "-pix_fmt",
                    "yuvj422p",
                    "-q:v",
                    "4",
                    "{frames}",
                ],
            )
        },
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let sent = run.text("send.log");
    eprintln!("{}", summary(&sent, "send finished"));
    let warning: Vec<&str> = sent
        .lines()
        .filter(|l| l.contains("decoding and re-encoding"))
        .collect();
    assert_eq!(warning.len(), 1, "one warning line:\n{sent}");
    assert!(
        warning[0].contains("Huffman") || warning[0].contains("sampled"),
        "{sent}"
    );
    assert_camera_pictures(&run, &source, 30.0, 5);
}

/// An MJPEG camera sent as H.264: the camera still delivers its JPEGs (MJPG
/// is what it offers), and the sending pipeline decodes them for the
/// encoder; every received picture is one of the camera's, none counted
/// corrupt.
#[test]
fn an_mjpeg_camera_is_decoded_for_h264() {
    let Some(_) = guest_ready() else { return };
    require("gst-launch-1.0");
    let _turn = serial();
    let mut source = Vec::new();
    let run = run_guest(
        "vm-mjpeg-h264",
        &MJPEG_CAMERA_SCRIPT.replace("--video-codec mjpeg", "--video-codec h264"),
        &[&pstream_bin(), &v4l2_ctl()],
        |share| {
            source = camera_jpegs(
                share,
                &[
                    "gst-launch-1.0",
                    "-q",
                    "videotestsrc",
                    "pattern=ball",
                    &format!("num-buffers={JPEG_FRAMES}"),
                    "!",
                    "video/x-raw,format=Y42B,width=320,height=240,framerate=25/1",
                    "!",
                    "jpegenc",
                    "quality=85",
                    "!",
                    "multifilesink",
                    "location={frames}",
                ],
            )
        },
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let sent = run.text("send.log");
    let finished = summary(&sent, "send finished");
    eprintln!("{finished}");
    assert!(!sent.contains("camera's JPEGs as they are"), "{sent}");
    let frames = stat(finished, "cam", "frames").unwrap_or_else(|| panic!("{finished}"));
    assert!(frames >= 10.0, "{finished}");
    assert_eq!(stat(finished, "cam", "corrupt"), Some(0.0), "{finished}");
    assert!(run.log.contains("'MJPG'"), "{}", run.log);
    // Decoded, encoded as H.264 at the default 2.5 Mbit/s and decoded again.
    assert_camera_pictures(&run, &source, 30.0, 5);
}

/// The V4L2 memory-to-memory check program (bins/pstream/src/bin).
fn m2m_check_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pstream-m2m-check"))
}

/// vicodec's pictures: 640x360 is its smallest size.
const VICODEC_W: usize = 640;
const VICODEC_H: usize = 360;
const VICODEC_FRAMES: usize = 20;

/// The memory-to-memory encoder (the code behind `--encoder v4l2m2m`) on
/// the kernel's virtual stateful codec vicodec (FWHT), multi-planar as the
/// Pi's bcm2835-codec and then single-planar: pictures in, coded frames
/// out, decoded back by vicodec's stateful decoder and compared with the
/// source by PSNR. Then the product path: `--encoder v4l2m2m:` on vicodec
/// is refused naming the device and what it offers (no H.264), and
/// `--encoder auto` falls back to openh264.
#[test]
fn vicodec_round_trip_through_the_m2m_encoder() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    let _turn = serial();
    let run = run_guest(
        "vm-vicodec",
        &r#"
for planes in 1 0; do
  loadmod vicodec multiplanar=$planes
  enc=$(node stateful-encoder)
  dec=$(node stateful-decoder)
  echo "--- planes=$planes enc=$enc dec=$dec"
  pstream-m2m-check "$enc" "$dec" FWHT W H 6 /share/src.yuv /share/coded-$planes.bin /share/out-$planes.yuv \
    >/share/check-$planes.log 2>&1 || { cat /share/check-$planes.log; exit 1; }
  cat /share/check-$planes.log
  [ $planes -eq 0 ] || rmmod vicodec
done
echo "--- refused"
pstream send --peer 127.0.0.1 --audio none --size 640x360 --duration 1 --encoder "v4l2m2m:$enc" \
  >/share/refused.log 2>&1 && { echo "v4l2m2m on vicodec was accepted"; exit 1; }
cat /share/refused.log
echo "--- auto"
pstream send --peer 127.0.0.1 --audio none --size 320x180 --fps 5 --duration 1 --encoder auto \
  >/share/auto.log 2>&1 || { cat /share/auto.log; exit 1; }
cat /share/auto.log
"#
        .replace(" W H ", &format!(" {VICODEC_W} {VICODEC_H} ")),
        &[&pstream_bin(), &m2m_check_bin()],
        |share| {
            let status = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                .arg(format!("testsrc2=size={VICODEC_W}x{VICODEC_H}:rate=30"))
                .args(["-frames:v", &VICODEC_FRAMES.to_string(), "-pix_fmt", "yuv420p", "-f", "rawvideo"])
                .arg(share.join("src.yuv"))
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "ffmpeg could not write the source");
        },
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    let frame = VICODEC_W * VICODEC_H * 3 / 2;
    let luma = VICODEC_W * VICODEC_H;
    let source = std::fs::read(run.share.join("src.yuv")).expect("src.yuv");
    for planes in ["1", "0"] {
        let log = run.text(&format!("check-{planes}.log"));
        eprintln!("multiplanar={planes}: {log}");
        let line = log
            .lines()
            .find(|l| l.starts_with("pstream-m2m-check: pictures"))
            .unwrap_or_else(|| panic!("no summary:\n{}", run.dump()));
        let field = |name: &str| -> String {
            line.split_whitespace()
                .skip_while(|w| *w != name)
                .nth(1)
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(field("pictures"), VICODEC_FRAMES.to_string(), "{line}");
        assert_eq!(
            field("coded"),
            VICODEC_FRAMES.to_string(),
            "one coded frame per picture: {line}"
        );
        assert_eq!(field("decoded"), VICODEC_FRAMES.to_string(), "{line}");
        // GOP size 6 (vicodec's default is 10) reached vicodec: key frames
        // at 0, 6, 12 and 18 at least (it may code another picture as a
        // key frame on its own), P-frames in between. vicodec has no
        // force-key-frame control, so the request at 7 is counted.
        let keys: Vec<usize> = field("keyframes")
            .trim_matches(['[', ']'])
            .split(',')
            .filter_map(|k| k.parse().ok())
            .collect();
        assert!(
            [0, 6, 12, 18].iter().all(|k| keys.contains(k)) && keys.len() < VICODEC_FRAMES / 2,
            "key frames {keys:?}: {line}"
        );
        assert_eq!(field("keyframes-unsupported"), "1", "{line}");
        assert!(
            log.contains("missing: bitrate mode, bitrate, force key frame"),
            "the controls vicodec lacks are named: {log}"
        );
        let bytes: usize = field("bytes").parse().unwrap_or(0);
        assert!(
            bytes > 0 && bytes < source.len() / 2,
            "coded {bytes} bytes for {} raw",
            source.len()
        );
        let out = std::fs::read(run.share.join(format!("out-{planes}.yuv"))).expect("out.yuv");
        assert_eq!(out.len(), source.len(), "decoded pictures");
        let psnrs: Vec<f64> = source
            .chunks_exact(frame)
            .zip(out.chunks_exact(frame))
            .map(|(s, d)| luma_psnr(&d[..luma], &s[..luma]))
            .collect();
        let min = psnrs.iter().copied().fold(f64::MAX, f64::min);
        let mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
        eprintln!(
            "multiplanar={planes}: luma PSNR min {min:.1} dB, mean {mean:.1} dB over {} pictures",
            psnrs.len()
        );
        assert!(
            min > 35.0,
            "a decoded picture is not the source: {psnrs:.1?}"
        );
    }
    let _ = std::fs::remove_file(run.share.join("src.yuv"));
    let refused = run.text("refused.log");
    assert!(
        refused.contains("/dev/video")
            && refused.contains("offers no H264 on its CAPTURE queue")
            && refused.contains("FWHT"),
        "{refused}"
    );
    let auto = run.text("auto.log");
    assert!(auto.contains("encoder: openh264"), "{auto}");
}

/// Pictures of the H.264 camera stand-in.
const H264_CAMERA_FRAMES: usize = 30;

/// A camera that encodes H.264 (a C920 in its H.264 mode, the Pi camera):
/// v4l2loopback set to H264 320x240, fed one x264 access unit per write()
/// by a shell loop in the guest, as such a camera fills one buffer per
/// access unit. pstream sends its stream as it is to a pstream receiver in
/// the guest: no encoder starts, the SDP carries the stream's own SPS and
/// PPS, and every received picture is one of x264's, decoded.
#[test]
fn an_h264_camera_is_sent_without_reencoding() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    require("gst-launch-1.0");
    let _turn = serial();
    let mut reference = Vec::new();
    // The host's peers, on its loopback (10.0.2.2 from the guest).
    let host_dir = temp_dir("vm-h264-camera-peers");
    let nginx_port = free_tcp_port();
    let _nginx = start_nginx(&host_dir, nginx_port, "nginx");
    let gst_base = free_port_base();
    let gst = rtpbin_receiver(gst_base, &host_dir);
    let run = run_guest_on(
        "vm-h264-camera",
        r#"
loadmod v4l2loopback exclusive_caps=0 max_buffers=8 video_nr=9 card_label=pstream-h264
dev=$(node pstream-h264)
v4l2-ctl -d "$dev" -c keep_format=1
v4l2-ctl -d "$dev" --set-fmt-video-out=width=320,height=240,pixelformat=H264
( while :; do for f in /share/frames/*.h264; do
    dd if="$f" of="$dev" bs=1M count=1 2>/dev/null; usleep 100000
  done; done ) &
writer=$!
sleep 1
v4l2-ctl -d "$dev" --list-formats-ext
pstream recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base 6000 \
  --video-out y4m:/share/out.y4m >/share/recv.log 2>&1 &
recv=$!
wait_for "receiving from" /share/recv.log 60
pstream send --peer 127.0.0.1 --port-base 6000 --audio none --video "v4l2:$dev" \
  --size 320x240 --fps 15 --duration 12 --sdp /share/send.sdp >/share/send.log 2>&1
sent=$?
sleep 2
kill -INT $recv
wait $recv
got=$?
# Over the guest's network to the host's peers: the same camera pushed into
# nginx-rtmp (and kept as FLV), then sent to GStreamer's costream receiver.
net_up
pstream push rtmp://10.0.2.2:NGINX/live/cam --out /share/camera.flv \
  --video "v4l2:$dev" --audio none --size 320x240 --fps 15 --duration 10 \
  >/share/push.log 2>&1
pushed=$?
pstream send --peer 10.0.2.2 --port-base GBASE --audio none --video "v4l2:$dev" \
  --size 320x240 --fps 15 --duration 8 >/share/send-gst.log 2>&1
sent_gst=$?
# CPU: the camera's H.264 passed on, against openh264 encoding the same
# pictures (decoded on the host). cpu_window OUT CMD...: the CPU ticks
# (1/100 s, utime + stime) CMD spends from its 3rd to its 7th second, when
# it is past start-up (loading a 100 MB binary over 9p costs more than
# either job), then its log.
cpu_window() {
  out=$1; shift
  "$@" >/dev/null 2>"$out.log" &
  p=$!
  sleep 3; a=$(cut -d' ' -f14,15 /proc/$p/stat)
  sleep 4; b=$(cut -d' ' -f14,15 /proc/$p/stat)
  wait $p
  echo "$a $b" >"$out"
}
cpu_window /share/cpu-pass.txt pstream push file:/tmp/pass.flv --video "v4l2:$dev" \
  --audio none --size 320x240 --fps 15 --duration 9
cpu_window /share/cpu-enc.txt pstream push file:/tmp/enc.flv --video y4m:/share/decoded.y4m \
  --audio none --duration 9
kill $writer
[ $sent -eq 0 ] && [ $got -eq 0 ] && [ $pushed -eq 0 ] && [ $sent_gst -eq 0 ]
"#
        .replace("NGINX", &nginx_port.to_string())
        .replace("GBASE", &gst_base.to_string())
        .as_str(),
        &[&pstream_bin(), &v4l2_ctl()],
        |share| {
            // x264 baseline, a key frame every 10 pictures with SPS and
            // PPS before each (as cameras repeat them), then split into
            // one file per access unit.
            let stream = share.join("camera.h264");
            let status = std::process::Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=320x240:rate=15",
                ])
                .args([
                    "-frames:v",
                    &H264_CAMERA_FRAMES.to_string(),
                    "-c:v",
                    "libx264",
                ])
                .args(["-profile:v", "baseline", "-pix_fmt", "yuv420p"])
                .args([
                    "-x264-params",
                    "keyint=10:min-keyint=10:scenecut=0:repeat-headers=1",
                ])
                .arg(&stream)
                .status()
                .expect("run ffmpeg");
            assert!(
                status.success(),
                "ffmpeg could not encode the camera stream"
            );
            let frames = share.join("frames");
            std::fs::create_dir_all(&frames).expect("frames dir");
            let status = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i"])
                .arg(&stream)
                .args(["-c:v", "copy", "-f", "image2"])
                .arg(frames.join("%03d.h264"))
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "ffmpeg could not split the access units");
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&stream)
                .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
                .output()
                .expect("run ffmpeg");
            assert!(
                out.status.success(),
                "ffmpeg could not decode the camera stream"
            );
            reference = out
                .stdout
                .chunks_exact(320 * 240 * 3 / 2)
                .map(|f| f[..320 * 240].to_vec())
                .collect();
            // The same pictures for the software encoder to take, each
            // once, looped, at 4 fps: about the rate the camera's writer
            // loop reaches under emulation, which openh264 there keeps up
            // with (at 15 fps it drops most).
            let status = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-stream_loop", "3", "-i"])
                .arg(&stream)
                .args(["-vf", "setpts=N/(4*TB)", "-r", "4", "-pix_fmt", "yuv420p"])
                .arg(share.join("decoded.y4m"))
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "ffmpeg could not write decoded.y4m");
        },
        true,
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{}", run.dump());
    assert_eq!(reference.len(), H264_CAMERA_FRAMES);
    let sent = run.text("send.log");
    eprintln!("{}", summary(&sent, "send finished"));
    assert!(
        sent.contains("sending the camera's H.264 as it is"),
        "{sent}"
    );
    assert!(!sent.contains("encoder:"), "an encoder started: {sent}");
    assert!(run.log.contains("'H264'"), "{}", run.log);
    // The SDP carries the camera stream's own SPS (x264's, not openh264's).
    let sdp = run.text("send.sdp");
    let stream = std::fs::read(run.share.join("camera.h264")).expect("camera.h264");
    let (sps, _) = pstream_codec::h264::nal::parameter_sets(&stream).expect("x264 SPS/PPS");
    let plid: String = sps[1..4].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        sdp.contains(&format!("profile-level-id={plid}")),
        "SDP without the camera's profile-level-id {plid}:\n{sdp}"
    );
    // Every received picture is one of the camera's, decoded: the same
    // bits through another decoder.
    assert_camera_pictures(&run, &reference, 40.0, 5);

    // The FLV recording: the camera's H.264 with its own SPS/PPS in the
    // AVC sequence header, every picture one of the camera's (decoded by
    // ffmpeg from the FLV).
    let pushed = run.text("push.log");
    eprintln!("{}", summary(&pushed, "push finished"));
    assert!(
        pushed.contains("pushing the camera's H.264 as it is"),
        "{pushed}"
    );
    assert!(!pushed.contains("encoder:"), "an encoder started: {pushed}");
    let finished = summary(&pushed, "push finished");
    let units = stat(finished, "video", "frames").unwrap_or_else(|| panic!("{finished}"));
    assert!(units >= 5.0, "the camera's units are counted: {finished}");
    let flv = run.share.join("camera.flv");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args([
            "stream=codec_name,width,height,profile",
            "-of",
            "default=nw=1",
        ])
        .arg(&flv)
        .output()
        .expect("run ffprobe");
    let probe = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        probe.contains("codec_name=h264")
            && probe.contains("width=320")
            && probe.contains("height=240"),
        "{probe}"
    );
    let pictures = decode_320x240(&flv);
    assert!(
        pictures.len() >= 5,
        "{} pictures in the FLV",
        pictures.len()
    );
    assert_all_camera_pictures(&pictures, &reference, "the FLV");
    eprintln!("FLV: {} pictures, {probe}", pictures.len());

    // nginx-rtmp on the host recorded what the guest pushed: the camera's
    // H.264, decodable, 320x240.
    let recorded: Vec<_> = std::fs::read_dir(host_dir.join("rec"))
        .expect("nginx rec dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "flv"))
        .collect();
    assert_eq!(recorded.len(), 1, "nginx recordings: {recorded:?}");
    let pictures = decode_320x240(&recorded[0]);
    eprintln!(
        "nginx-rtmp on the host recorded {} pictures from the guest",
        pictures.len()
    );
    assert!(
        pictures.len() >= 5,
        "nginx recorded {} pictures:\n{}",
        pictures.len(),
        run.text("push.log")
    );
    assert_all_camera_pictures(&pictures, &reference, "nginx's recording");

    // GStreamer's costream receiver on the host decoded what the guest
    // sent: at least 90% of the camera's units.
    let mut gst = gst;
    gst.signal("INT");
    gst.wait(Duration::from_secs(10));
    let decoded = gst.stdout().matches("vsink: last-message = chain").count();
    let sent_gst = run.text("send-gst.log");
    let finished = summary(&sent_gst, "send finished");
    let units = stat(finished, "video", "frames").unwrap_or_else(|| panic!("{sent_gst}"));
    eprintln!(
        "GStreamer's costream receiver decoded {decoded} of {units} pictures sent from the guest"
    );
    assert!(units >= 10.0, "sent only {units}: {sent_gst}");
    assert!(
        decoded as f64 >= 0.9 * units,
        "GStreamer decoded {decoded} of {units}\n{}",
        gst.stderr()
    );

    // CPU per picture, from the window of each run and its average rate
    // (pictures over the 9 s run); under emulation the ratio is the figure.
    let per_picture = |name: &str| {
        let t = run.text(name);
        let v: Vec<f64> = t
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert_eq!(v.len(), 4, "{name}: {t}");
        let seconds = (v[2] + v[3] - v[0] - v[1]) / 100.0 / 4.0;
        // User and kernel apart: at this size both runs are mostly the
        // emulated kernel's (timers, 9p), about 0.2 s a second.
        eprintln!(
            "{name}: user {:.3} s/s, system {:.3} s/s",
            (v[2] - v[0]) / 400.0,
            (v[3] - v[1]) / 400.0
        );
        let log = run.text(&format!("{name}.log"));
        let finished = summary(&log, "push finished");
        let frames = stat(finished, "video", "frames").unwrap_or_else(|| panic!("{log}"));
        assert!(frames > 0.0, "{name}: no pictures: {log}");
        eprintln!("{name}: {finished}");
        (seconds, seconds / (frames / 9.0))
    };
    let ((pass_s, pass), (enc_s, enc)) = (per_picture("cpu-pass.txt"), per_picture("cpu-enc.txt"));
    eprintln!(
        "CPU in the guest (TCG), per second / per picture: passthrough {pass_s:.3} s / {:.1} ms, \
         openh264 {enc_s:.3} s / {:.1} ms; per picture {:.2}x",
        pass * 1e3,
        enc * 1e3,
        pass / enc
    );
}

/// Decodes a file's pictures at 320x240, each coded picture once.
fn decode_320x240(path: &Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}",
        path.display()
    );
    out.stdout
        .chunks_exact(320 * 240 * 3 / 2)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Asserts each picture is one of the camera's (luma PSNR over 40 dB
/// against some reference picture).
fn assert_all_camera_pictures(pictures: &[Vec<u8>], reference: &[Vec<u8>], what: &str) {
    for (i, p) in pictures.iter().enumerate() {
        let best = reference
            .iter()
            .map(|r| luma_psnr(&p[..320 * 240], r))
            .fold(f64::MIN, f64::max);
        assert!(
            best > 40.0,
            "{what}: picture {i} is none of the camera's ({best:.1} dB)"
        );
    }
}

/// #15's guest half: pstream's own shmdata writer and follower in the
/// guest (SysV shared memory and semaphores are per kernel, and the guest
/// has no GStreamer): `pstream bridge` writes a Y4M's pictures into
/// shmdata, a second `pstream bridge` follows it into v4l2loopback (the
/// guide's first pipeline, virtual camera), and what a reader takes off
/// the device matches the source pictures.
#[test]
fn bridge_from_shmdata_into_v4l2loopback() {
    let Some(_) = guest_ready() else { return };
    require("ffmpeg");
    let _turn = serial();
    let run = run_guest(
        "vm-shmdata-bridge",
        &r#"
loadmod v4l2loopback exclusive_caps=1 max_buffers=8 video_nr=9 card_label=pstream-loop
dev=$(node pstream-loop)
pstream bridge --video y4m:/share/src.y4m --video-out shmdata:/tmp/score_shm_video \
  >/share/writer.log 2>&1 &
writer=$!
pstream bridge --video shmdata:/tmp/score_shm_video --video-out "v4l2:$dev" \
  >/share/follower.log 2>&1 &
follower=$!
read_back "$dev" READ_BACK
read=$?
kill -INT $follower
wait $follower
followed=$?
kill -INT $writer
wait $writer
wrote=$?
[ $read -eq 0 ] && [ $followed -eq 0 ] && [ $wrote -eq 0 ]
"#
        .replace("READ_BACK", &READ_BACK.to_string()),
        &[&pstream_bin(), &v4l2_ctl()],
        // 20 s at 15 fps, paced by the writer in real time; stopped once
        // read back.
        |share| testsrc_y4m(share, "320x240", 15, 300),
    );
    let logs = format!(
        "{}\nwriter.log:\n{}\nfollower.log:\n{}",
        run.dump(),
        run.text("writer.log"),
        run.text("follower.log")
    );
    assert_eq!(run.code, Some(0), "guest script failed:\n{logs}");
    eprintln!("{}", summary(&run.text("follower.log"), "bridge finished"));

    // Raw pictures all the way: each read back is a source picture, far
    // above a codec's PSNR.
    assert_read_back(&run, READ_BACK, 4, &logs);
}
