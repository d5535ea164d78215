//! pstream's shmdata follower and writer against the reference library:
//! GStreamer's `shmdatasink` / `shmdatasrc` and `sdflow` from libshmdata
//! 1.3, built by scripts/peers.sh (the test command runs it). A missing
//! peer fails the test.

mod fake;
mod peer;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::{AudioBlock, VideoFrame};
use pstream_shmdata::{
    AudioCaps, Caps, FollowerEvent, FollowerOptions, PixelFormat, SampleFormat, ShmdataError,
    ShmdataFollower, ShmdataWriter, VideoCaps, WaitReason, WriterOptions,
};

use fake::FakeWriter;
use peer::{gst_file, psnr, sdflow_indices, serial, temp_dir, wait_until, Proc, SockPath};

fn follow(path: &SockPath) -> ShmdataFollower {
    ShmdataFollower::open(&path.path, FollowerOptions::default()).expect("follower opens")
}

/// The next event that is not a wait, within `limit`.
fn next(f: &mut ShmdataFollower, limit: Duration) -> FollowerEvent {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match f.next_event(left).expect("follower event") {
            Some(FollowerEvent::Waiting(_)) => {}
            Some(ev) => return ev,
            None => panic!("no event within {limit:?}"),
        }
    }
}

fn expect_connected(f: &mut ShmdataFollower, limit: Duration) -> (Caps, bool) {
    match next(f, limit) {
        FollowerEvent::Connected { caps, changed } => (caps, changed),
        other => panic!("expected a connection, got {other:?}"),
    }
}

fn next_video(f: &mut ShmdataFollower, limit: Duration) -> VideoFrame {
    match next(f, limit) {
        FollowerEvent::Video(v) => v,
        other => panic!("expected a picture, got {other:?}"),
    }
}

fn video_caps(caps: Caps) -> VideoCaps {
    match caps {
        Caps::Video(v) => v,
        other => panic!("expected video caps, got {other:?}"),
    }
}

fn i420_len(w: usize, h: usize) -> usize {
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// The test picture of frame `idx`: its index in the first four luma
/// bytes, a luma pattern that moves with it, flat chroma (U 90, V varying
/// by frame).
fn picture(w: u32, h: u32, idx: u32) -> VideoFrame {
    let (wu, hu) = (w as usize, h as usize);
    let mut d = vec![0u8; i420_len(wu, hu)];
    for (i, b) in d[..wu * hu].iter_mut().enumerate() {
        *b = ((i as u32).wrapping_mul(7).wrapping_add(idx * 13) % 256) as u8;
    }
    d[..4].copy_from_slice(&idx.to_le_bytes());
    let c = wu.div_ceil(2) * hu.div_ceil(2);
    d[wu * hu..wu * hu + c].fill(90);
    d[wu * hu + c..].fill(picture_v(idx));
    VideoFrame::new(
        w,
        h,
        Bytes::from(d),
        Instant::now(),
        Duration::from_millis(u64::from(idx) * 33),
    )
    .expect("valid picture")
}

fn picture_v(idx: u32) -> u8 {
    40 + (idx % 150) as u8
}

/// Writes `count` test pictures at `fps` (catching up if late), calling
/// `between` after each with the number written.
fn write_paced(
    w: &mut ShmdataWriter,
    (width, height): (u32, u32),
    fps: u32,
    count: u32,
    mut between: impl FnMut(u32),
) {
    let start = Instant::now();
    for i in 0..count {
        let due = start + Duration::from_secs_f64(f64::from(i) / f64::from(fps));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        w.write_video(&picture(width, height, i)).expect("write");
        between(i + 1);
    }
}

/// Frames of `size` bytes in a raw file.
fn frames(data: &[u8], size: usize) -> Vec<&[u8]> {
    data.chunks_exact(size).collect()
}

/// Planes of a packed I420 picture.
fn planes(d: &[u8], w: usize, h: usize) -> [&[u8]; 3] {
    let c = w.div_ceil(2) * h.div_ceil(2);
    [
        &d[..w * h],
        &d[w * h..w * h + c],
        &d[w * h + c..w * h + 2 * c],
    ]
}

#[test]
fn reference_bgra_720p30_writer_is_followed_at_its_rate_with_its_pictures() {
    let _turn = serial();
    let dir = temp_dir("bgra");
    let sock = SockPath::new("bgra");
    let caps = "video/x-raw,format=BGRA,width=1280,height=720,framerate=30/1";
    // What videotestsrc draws, converted by GStreamer with the BT.601 matrix.
    let reference = gst_file(
        &format!(
            "videotestsrc pattern=smpte100 num-buffers=1 ! {caps} ! videoconvert ! \
             video/x-raw,format=I420,colorimetry=bt601"
        ),
        &dir.join("ref.i420"),
        &dir,
    );
    assert_eq!(reference.len(), i420_len(1280, 720));
    let mut f = follow(&sock);
    let writer = Proc::gst(
        "writer",
        &format!(
            "videotestsrc is-live=true pattern=smpte100 ! {caps} ! shmdatasink socket-path={}",
            sock.as_str()
        ),
        &dir,
    );
    let (c, changed) = expect_connected(&mut f, Duration::from_secs(20));
    assert!(changed);
    assert_eq!(
        video_caps(c),
        VideoCaps {
            format: PixelFormat::Bgra,
            width: 1280,
            height: 720,
            fps_num: 30,
            fps_den: 1
        }
    );
    // Settle, then count for 3 s.
    for _ in 0..10 {
        next_video(&mut f, Duration::from_secs(5));
    }
    let copied0 = f.counters().frames();
    let dropped0 = f.counters().queue_dropped();
    let start = Instant::now();
    let mut got = 0u32;
    let mut worst = f64::INFINITY;
    while start.elapsed() < Duration::from_secs(3) {
        let v = next_video(&mut f, Duration::from_secs(2));
        assert_eq!((v.width(), v.height()), (1280, 720));
        if got % 15 == 0 {
            let [y, u, vv] = planes(v.data(), 1280, 720);
            let [ry, ru, rv] = planes(&reference, 1280, 720);
            worst = worst.min(psnr(y, ry)).min(psnr(u, ru)).min(psnr(vv, rv));
        }
        got += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let copied = f.counters().frames() - copied0;
    let rate = f64::from(got) / secs;
    let dropped = f.counters().queue_dropped() - dropped0;
    eprintln!(
        "BGRA 720p30: {got} pictures in {secs:.2} s ({rate:.1} fps), {copied} copied, \
         {dropped} dropped by the queue ({dropped0} before), worst PSNR {worst:.1} dB"
    );
    assert!(
        (27.0..=33.0).contains(&rate),
        "{rate:.1} fps\n{}",
        writer.report()
    );
    assert_eq!(dropped, 0, "the caller kept up");
    assert!(
        worst >= 40.0,
        "PSNR {worst:.1} dB against GStreamer's conversion"
    );
}

#[test]
fn reference_i420_writer_pictures_come_out_exact() {
    let _turn = serial();
    let dir = temp_dir("i420");
    for (w, h) in [(1280u32, 720u32), (322, 242), (321, 241)] {
        let sock = SockPath::new("i420");
        let caps = format!("video/x-raw,format=I420,width={w},height={h},framerate=30/1");
        let raw = gst_file(
            &format!("videotestsrc pattern=smpte100 num-buffers=1 ! {caps}"),
            &dir.join("ref.raw"),
            &dir,
        );
        // GStreamer's own layout, repacked by hand: rows padded to 4 bytes,
        // chroma after an even number of luma rows.
        let (wu, hu) = (w as usize, h as usize);
        let (ys, cs) = ((wu + 3) & !3, ((wu.div_ceil(2)) + 3) & !3);
        let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
        let u_at = ys * ((hu + 1) & !1);
        let v_at = u_at + cs * ch;
        let mut want = Vec::with_capacity(i420_len(wu, hu));
        for r in 0..hu {
            want.extend_from_slice(&raw[r * ys..][..wu]);
        }
        for at in [u_at, v_at] {
            for r in 0..ch {
                want.extend_from_slice(&raw[at + r * cs..][..cw]);
            }
        }
        let mut f = follow(&sock);
        let mut writer = Proc::gst(
            "writer",
            &format!(
                "videotestsrc is-live=true pattern=smpte100 ! {caps} ! shmdatasink socket-path={}",
                sock.as_str()
            ),
            &dir,
        );
        expect_connected(&mut f, Duration::from_secs(20));
        for _ in 0..5 {
            let v = next_video(&mut f, Duration::from_secs(5));
            if v.data()[..] != want[..] {
                let d = v.data();
                let first = d.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                let n = d.iter().zip(&want).filter(|(a, b)| a != b).count();
                panic!("{w}x{h}: picture differs from videotestsrc's: {n} bytes, first at {first}: {:?} vs {:?}", &d[first..first + 16], &want[first..first + 16]);
            }
        }
        writer.signal(libc::SIGINT);
        writer.wait(Duration::from_secs(10));
    }
}

#[test]
fn every_pixel_format_matches_gstreamers_conversion() {
    let _turn = serial();
    let dir = temp_dir("formats");
    let (w, h) = (321usize, 241usize);
    for format in PixelFormat::ALL {
        let name = format.name();
        let sock = SockPath::new("fmt");
        let caps = format!("video/x-raw,format={name},width={w},height={h},framerate=30/1");
        // RGB is converted with BT.601's matrix, as pstream does; YUV keeps
        // the colorimetry it has (asking for bt601 there would make
        // videoconvert convert transfer and primaries as well).
        let rgb = !matches!(
            format,
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Yuy2 | PixelFormat::Uyvy
        );
        let colorimetry = if rgb { ",colorimetry=bt601" } else { "" };
        let reference = gst_file(
            &format!(
                "videotestsrc pattern=colors num-buffers=1 ! {caps} ! videoconvert ! \
                 video/x-raw,format=I420{colorimetry}"
            ),
            &dir.join("ref.raw"),
            &dir,
        );
        let mut f = follow(&sock);
        let mut writer = Proc::gst(
            "writer",
            &format!(
                "videotestsrc is-live=true pattern=colors ! {caps} ! shmdatasink socket-path={}",
                sock.as_str()
            ),
            &dir,
        );
        let (c, _) = expect_connected(&mut f, Duration::from_secs(20));
        assert_eq!(video_caps(c).format, format);
        let v = next_video(&mut f, Duration::from_secs(5));
        // The reference is in GStreamer's padded layout: compare row by row.
        let (ys, cs) = ((w + 3) & !3, ((w.div_ceil(2)) + 3) & !3);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let u_at = ys * ((h + 1) & !1);
        let v_at = u_at + cs * ch;
        let mut want = Vec::new();
        for r in 0..h {
            want.extend_from_slice(&reference[r * ys..][..w]);
        }
        for at in [u_at, v_at] {
            for r in 0..ch {
                want.extend_from_slice(&reference[at + r * cs..][..cw]);
            }
        }
        let [y, u, vv] = planes(v.data(), w, h);
        let [ry, ru, rv] = planes(&want, w, h);
        let (py, pu, pv) = (psnr(y, ry), psnr(u, ru), psnr(vv, rv));
        eprintln!("{name} {w}x{h}: PSNR Y {py:.1} U {pu:.1} V {pv:.1} dB");
        if rgb {
            // GStreamer's 8-bit matrix rounds a little differently.
            assert!(
                py.min(pu).min(pv) >= 45.0,
                "{name}: PSNR {py:.1}/{pu:.1}/{pv:.1} dB"
            );
        } else {
            assert!(v.data()[..] == want[..], "{name}: not exact");
        }
        writer.signal(libc::SIGINT);
        writer.wait(Duration::from_secs(10));
    }
}

#[test]
fn reference_audio_writer_gives_the_sine_it_plays() {
    let _turn = serial();
    let dir = temp_dir("audio");
    for (format, sample) in [
        ("F32LE", SampleFormat::F32Le),
        ("S16LE", SampleFormat::S16Le),
    ] {
        let sock = SockPath::new("audio");
        let mut f = follow(&sock);
        let _writer = Proc::gst(
            "writer",
            &format!(
                "audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! \
                 audio/x-raw,format={format},rate=48000,channels=2,layout=interleaved ! \
                 shmdatasink socket-path={}",
                sock.as_str()
            ),
            &dir,
        );
        let (c, _) = expect_connected(&mut f, Duration::from_secs(20));
        assert_eq!(
            c,
            Caps::Audio(AudioCaps {
                format: sample,
                rate: 48_000,
                channels: 2
            })
        );
        // A second follower on the same writer, cutting 10 ms blocks.
        let mut g = ShmdataFollower::open(
            &sock.path,
            FollowerOptions {
                audio_block_ms: Some(10),
                ..FollowerOptions::default()
            },
        )
        .expect("open");
        expect_connected(&mut g, Duration::from_secs(5));
        let mut samples: Vec<f32> = Vec::new();
        let mut blocks: Vec<AudioBlock> = Vec::new();
        let mut next_pts = None;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            match next(&mut f, Duration::from_secs(2)) {
                FollowerEvent::Audio(b) => {
                    assert_eq!((b.sample_rate, b.channels), (48_000, 2));
                    if let Some(p) = next_pts {
                        assert_eq!(b.pts, p, "pts follow the sample count");
                    }
                    next_pts = Some(b.pts + b.duration());
                    samples.extend_from_slice(&b.samples);
                }
                other => panic!("expected audio, got {other:?}"),
            }
            while let Some(ev) = g.next_event(Duration::ZERO).expect("event") {
                match ev {
                    FollowerEvent::Audio(b) => blocks.push(b),
                    other => panic!("expected audio, got {other:?}"),
                }
            }
        }
        assert!(blocks.len() >= 150, "{} blocks", blocks.len());
        assert!(blocks.iter().all(|b| b.frames() == 480), "10 ms blocks");
        assert!(
            blocks
                .windows(2)
                .all(|p| p[1].pts - p[0].pts == Duration::from_millis(10)),
            "block pts 10 ms apart"
        );
        // The blocks carry the same sine.
        let peak = blocks
            .iter()
            .flat_map(|b| b.samples.iter())
            .fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.48..=0.52).contains(&peak), "blocks' peak {peak}");
        let secs = start.elapsed().as_secs_f64();
        let frames = samples.len() / 2;
        let rate = frames as f64 / secs;
        // Left channel: peak and zero crossings of a 440 Hz sine at 0.5.
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        let peak = left.iter().fold(0f32, |m, s| m.max(s.abs()));
        let crossings = left
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        let freq = crossings as f64 / (left.len() as f64 / 48_000.0);
        eprintln!("{format}: {rate:.0} samples/s, peak {peak:.3}, {freq:.1} Hz");
        assert!((43_000.0..=53_000.0).contains(&rate), "{rate:.0} samples/s");
        assert!((0.48..=0.52).contains(&peak), "peak {peak}");
        assert!((435.0..=445.0).contains(&freq), "{freq:.1} Hz");
        assert!(
            samples.chunks_exact(2).all(|p| (p[0] - p[1]).abs() < 1e-6),
            "both channels the same"
        );
    }
}

#[test]
fn reference_writer_restarted_at_another_size_is_followed() {
    let _turn = serial();
    let dir = temp_dir("restart");
    let sock = SockPath::new("restart");
    let pipeline = |w: u32, h: u32| {
        format!(
            "videotestsrc is-live=true ! video/x-raw,format=I420,width={w},height={h},framerate=30/1 ! \
             shmdatasink socket-path={}",
            sock.as_str()
        )
    };
    let mut f = follow(&sock);
    let mut writer = Proc::gst("writer1", &pipeline(320, 240), &dir);
    let (c, changed) = expect_connected(&mut f, Duration::from_secs(20));
    assert!(changed);
    assert_eq!((video_caps(c).width, video_caps(c).height), (320, 240));
    for _ in 0..5 {
        let v = next_video(&mut f, Duration::from_secs(5));
        assert_eq!((v.width(), v.height()), (320, 240));
    }
    // Stopped cleanly (Ctrl-C), then back at another size.
    writer.signal(libc::SIGINT);
    assert_eq!(
        writer.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        writer.report()
    );
    loop {
        match next(&mut f, Duration::from_secs(5)) {
            FollowerEvent::WriterGone => break,
            FollowerEvent::Video(_) => {}
            other => panic!("expected the writer gone, got {other:?}"),
        }
    }
    let mut writer = Proc::gst("writer2", &pipeline(640, 360), &dir);
    let (c, changed) = expect_connected(&mut f, Duration::from_secs(20));
    assert!(changed, "new caps are reported as a change");
    assert_eq!((video_caps(c).width, video_caps(c).height), (640, 360));
    for _ in 0..5 {
        let v = next_video(&mut f, Duration::from_secs(5));
        assert_eq!((v.width(), v.height()), (640, 360));
    }
    // Crashed (its socket file, segment and semaphores left behind), then
    // started again with the same caps.
    writer.kill();
    loop {
        match next(&mut f, Duration::from_secs(5)) {
            FollowerEvent::WriterGone => break,
            FollowerEvent::Video(_) => {}
            other => panic!("expected the writer gone, got {other:?}"),
        }
    }
    let _writer = Proc::gst("writer3", &pipeline(640, 360), &dir);
    let (c, changed) = expect_connected(&mut f, Duration::from_secs(20));
    assert!(!changed, "the same caps again");
    assert_eq!(video_caps(c).width, 640);
    for _ in 0..5 {
        next_video(&mut f, Duration::from_secs(5));
    }
    assert_eq!(f.counters().connections(), 3);
}

#[test]
fn writer_frames_reach_sdflow_and_a_gstreamer_follower_joining_mid_stream() {
    let _turn = serial();
    let dir = temp_dir("writer");
    let sock = SockPath::new("writer");
    // An odd size: GStreamer must read pstream's padded layout right.
    let (w, h) = (322u32, 242u32);
    let mut writer = ShmdataWriter::bind(
        &sock.path,
        WriterOptions {
            framerate: Some((30, 1)),
            ..WriterOptions::default()
        },
    )
    .expect("bind");
    let counters = writer.counters();
    let sdflow = Proc::sdflow("sdflow", sock.as_str(), &dir);
    let y444 = dir.join("y444.raw");
    let mut gst = None;
    let total = 150; // 5 s
    write_paced(&mut writer, (w, h), 30, total, |n| {
        if n == 45 {
            gst = Some(Proc::gst(
                "shmdatasrc",
                &format!(
                    "shmdatasrc socket-path={} ! videoconvert ! video/x-raw,format=Y444 ! \
                     filesink buffer-mode=unbuffered location={}",
                    sock.as_str(),
                    y444.display()
                ),
                &dir,
            ));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut gst = gst.expect("started");
    let joined = counters.joined();
    drop(writer);
    assert!(!sock.path.exists(), "the socket file goes with the writer");
    gst.wait(Duration::from_secs(2));

    let seen = sdflow_indices(&sdflow.stdout());
    let (first, last) = (seen[0], *seen.last().expect("frames"));
    let span = last - first + 1;
    eprintln!(
        "sdflow: {} of frames {first}..={last} ({span}); followers joined: {joined}",
        seen.len()
    );
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "in order, no repeats");
    assert!(
        span >= 100,
        "sdflow followed most of the stream\n{}",
        sdflow.report()
    );
    assert!(
        seen.len() as f64 >= 0.95 * f64::from(span),
        "sdflow counted {} of {span}\n{}",
        seen.len(),
        sdflow.report()
    );

    // GStreamer's follower joined at frame 45: check each picture it read
    // (Y444: three planes of 324-byte rows).
    let stride = 324usize;
    let size = 3 * stride * h as usize;
    let data = std::fs::read(&y444).expect("gst output");
    let pics = frames(&data, size);
    let mut indices = Vec::new();
    for p in &pics {
        let idx = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let want = picture(w, h, idx);
        let (wu, hu) = (w as usize, h as usize);
        for r in 0..hu {
            assert_eq!(
                &p[r * stride..][..wu],
                &want.y()[r * wu..][..wu],
                "frame {idx} row {r}"
            );
        }
        let u = &p[stride * hu..2 * stride * hu];
        let v = &p[2 * stride * hu..];
        for r in 0..hu {
            assert!(
                u[r * stride..][..wu].iter().all(|&b| b == 90),
                "frame {idx}: U"
            );
            assert!(
                v[r * stride..][..wu].iter().all(|&b| b == picture_v(idx)),
                "frame {idx}: V"
            );
        }
        indices.push(idx);
    }
    let span = indices.last().copied().unwrap_or(0) - indices.first().copied().unwrap_or(0) + 1;
    eprintln!(
        "shmdatasrc: {} pictures of frames {:?}..",
        pics.len(),
        indices.first()
    );
    assert!(
        indices.first().copied().unwrap_or(0) >= 45,
        "joined mid-stream"
    );
    assert!(span >= 60, "{}", gst.report());
    assert!(
        pics.len() as f64 >= 0.95 * f64::from(span),
        "shmdatasrc counted {} of {span}\n{}",
        pics.len(),
        gst.report()
    );
}

#[test]
fn a_stopped_follower_is_dropped_and_the_others_keep_their_frames() {
    let _turn = serial();
    let dir = temp_dir("sigstop");
    let sock = SockPath::new("sigstop");
    let mut writer = ShmdataWriter::bind(
        &sock.path,
        WriterOptions {
            framerate: Some((30, 1)),
            ..WriterOptions::default()
        },
    )
    .expect("bind");
    let counters = writer.counters();
    let sdflow = Proc::sdflow("sdflow", sock.as_str(), &dir);
    let stopped = Proc::gst(
        "shmdatasrc",
        &format!("shmdatasrc socket-path={} ! fakesink", sock.as_str()),
        &dir,
    );
    let mut mine = follow(&sock);
    let total = 240; // 8 s
    let start = Instant::now();
    let mut stopped_at = None;
    let mut both_at = None;
    write_paced(&mut writer, (320, 240), 30, total, |n| {
        if both_at.is_none() && counters.followers() == 3 {
            both_at = Some(n);
        }
        if stopped_at.is_none() && both_at.is_some_and(|b| n >= b + 30) {
            stopped.signal(libc::SIGSTOP);
            stopped_at = Some(n);
        }
        // pstream's follower takes its pictures as they come.
        while let Ok(Some(_)) = mine.next_event(Duration::ZERO) {}
    });
    let took = start.elapsed();
    let both_at = both_at.expect("all three followers joined");
    let stopped_at = stopped_at.expect("stopped one");
    eprintln!(
        "{total} frames in {took:?}; followers all in at {both_at}, one stopped at {stopped_at}; \
         dropped {}, forced {}",
        counters.dropped(),
        counters.forced()
    );
    assert!(counters.dropped() >= 1, "the stopped follower was dropped");
    assert!(
        took < Duration::from_secs_f64(f64::from(total) / 30.0 + 1.0),
        "the writer never stalled"
    );
    let seen = sdflow_indices(&sdflow.stdout());
    let after: Vec<u32> = seen.iter().copied().filter(|&i| i >= both_at).collect();
    let span = total - both_at;
    eprintln!(
        "sdflow: {} of the {span} frames since all joined",
        after.len()
    );
    assert!(
        after.len() as f64 >= 0.95 * f64::from(span),
        "sdflow counted {} of {span}\n{}",
        after.len(),
        sdflow.report()
    );
    let taken = mine.counters().frames();
    assert!(
        taken as f64 >= 0.95 * f64::from(total - both_at),
        "pstream's follower took {taken}"
    );
    stopped.signal(libc::SIGCONT);
}

#[test]
fn writer_replaces_stale_sockets_refuses_live_ones_and_cleans_up() {
    let _turn = serial();
    let dir = temp_dir("stale");
    // A stale socket file: bound, never unlinked, nobody listening.
    let sock = SockPath::new("stale");
    drop(UnixListener::bind(&sock.path).expect("bind"));
    assert!(sock.path.exists());
    let mut w = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect("replaces it");
    // A live writer's path is refused, and the live one keeps serving.
    let e = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect_err("live");
    assert!(matches!(e, ShmdataError::WriterLive { .. }), "{e}");
    assert!(e.to_string().contains("another writer is live"), "{e}");
    let mut f = follow(&sock);
    w.write_video(&picture(64, 48, 0)).expect("write");
    expect_connected(&mut f, Duration::from_secs(5));
    for i in 1..10 {
        std::thread::sleep(Duration::from_millis(30));
        w.write_video(&picture(64, 48, i)).expect("write");
    }
    let v = next_video(&mut f, Duration::from_secs(2));
    assert_eq!(v.width(), 64);
    // Dropping removes the socket file, segment and semaphores.
    let c = std::ffi::CString::new(sock.as_str()).expect("path");
    // SAFETY: valid C string.
    let keys = unsafe {
        (
            libc::ftok(c.as_ptr(), b'n' as i32),
            libc::ftok(c.as_ptr(), b'm' as i32),
        )
    };
    drop(w);
    assert!(!sock.path.exists());
    // SAFETY: plain lookups.
    unsafe {
        assert!(libc::shmget(keys.0, 0, 0) < 0, "segment removed");
        assert!(libc::semget(keys.1, 2, 0) < 0, "semaphores removed");
    }
    assert!(matches!(
        next(&mut f, Duration::from_secs(2)),
        FollowerEvent::Video(_) | FollowerEvent::WriterGone
    ));

    // A writer that crashed (GStreamer's, killed): its socket, segment and
    // semaphores are left; pstream's writer takes the path over and
    // sdflow follows it.
    let sock = SockPath::new("crashed");
    let mut gst = Proc::gst(
        "crashed",
        &format!(
            "videotestsrc is-live=true ! video/x-raw,format=I420,width=64,height=48 ! \
             shmdatasink socket-path={}",
            sock.as_str()
        ),
        &dir,
    );
    assert!(wait_until(Duration::from_secs(20), || sock.path.exists()));
    std::thread::sleep(Duration::from_millis(300));
    gst.kill();
    assert!(sock.path.exists(), "a crashed writer leaves its socket");
    let mut w = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect("takes over");
    let sdflow = Proc::sdflow("sdflow", sock.as_str(), &dir);
    write_paced(&mut w, (64, 48), 30, 60, |_| {});
    assert!(
        sdflow_indices(&sdflow.stdout()).len() >= 20,
        "{}",
        sdflow.report()
    );

    // Not a socket: refused, left as it was.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, b"keep me").expect("file");
    let e = ShmdataWriter::bind(&file, WriterOptions::default()).expect_err("not a socket");
    assert!(e.to_string().contains("not a unix socket"), "{e}");
    assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
}

#[test]
fn follower_refuses_bad_paths_and_waits_out_missing_or_stale_writers() {
    let _turn = serial();
    let dir = temp_dir("paths");
    let file = dir.join("regular");
    std::fs::write(&file, b"x").expect("file");
    let e = ShmdataFollower::open(&file, FollowerOptions::default()).expect_err("not a socket");
    assert!(
        e.to_string()
            .starts_with(&format!("shmdata:{}: not a unix socket", file.display())),
        "{e}"
    );
    let long = format!("/tmp/{}", "x".repeat(120));
    let e = ShmdataFollower::open(&long, FollowerOptions::default()).expect_err("too long");
    assert!(matches!(e, ShmdataError::PathTooLong { .. }), "{e}");

    for stale in [false, true] {
        let sock = SockPath::new("wait");
        if stale {
            drop(UnixListener::bind(&sock.path).expect("bind"));
        }
        let mut f = follow(&sock);
        let want = if stale {
            WaitReason::StaleSocket
        } else {
            WaitReason::NoSocket
        };
        match f.next_event(Duration::from_secs(2)).expect("event") {
            Some(FollowerEvent::Waiting(r)) => assert_eq!(r, want),
            other => panic!("expected a wait, got {other:?}"),
        }
        // Said once, not at every retry.
        assert!(f
            .next_event(Duration::from_millis(500))
            .expect("quiet")
            .is_none());
        let mut w = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect("bind");
        w.write_video(&picture(32, 32, 7)).expect("write");
        expect_connected(&mut f, Duration::from_secs(5));
        for i in 8..20 {
            std::thread::sleep(Duration::from_millis(30));
            w.write_video(&picture(32, 32, i)).expect("write");
        }
        let v = next_video(&mut f, Duration::from_secs(2));
        assert!(u32::from_le_bytes([v.y()[0], v.y()[1], v.y()[2], v.y()[3]]) >= 8);
    }
}

#[test]
fn a_writer_dying_mid_frame_does_not_hang_the_follower() {
    let _turn = serial();
    let sock = SockPath::new("die");
    let mut fake = FakeWriter::bind(&sock, 384);
    let mut f = ShmdataFollower::open(
        &sock.path,
        FollowerOptions {
            lock_timeout: Duration::from_millis(200),
            ..FollowerOptions::default()
        },
    )
    .expect("open");
    fake.accept();
    fake.greet(
        "video/x-raw, format=(string)I420, width=(int)16, height=(int)16",
        384,
    );
    expect_connected(&mut f, Duration::from_secs(5));
    // One good frame, then one announced by a writer that dies holding its lock.
    fake.frame(384, false);
    next_video(&mut f, Duration::from_secs(2));
    let t = Instant::now();
    fake.frame(384, true);
    std::thread::sleep(Duration::from_millis(50));
    fake.hang_up();
    assert!(matches!(
        next(&mut f, Duration::from_secs(3)),
        FollowerEvent::WriterGone
    ));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(f.counters().lock_timeouts(), 1);
    assert_eq!(f.counters().frames(), 1);
    assert_eq!(fake.sem_value(0), 0, "the follower gave its read lock back");
}

#[test]
fn frames_the_segment_or_the_caps_cannot_hold_are_dropped_and_counted() {
    let _turn = serial();
    let sock = SockPath::new("small");
    // Caps of 64x64 BGRA (16384 bytes) over a segment of 1000.
    let mut fake = FakeWriter::bind(&sock, 1000);
    let mut f = follow(&sock);
    fake.accept();
    fake.greet(
        "video/x-raw,format=BGRA,width=64,height=64,framerate=30/1",
        1000,
    );
    expect_connected(&mut f, Duration::from_secs(5));
    fake.frame(16_384, false);
    fake.frame(u64::MAX, false);
    fake.frame(100, false);
    assert!(wait_until(Duration::from_secs(2), || {
        let c = f.counters();
        c.small_segment() == 2 && c.short_frames() == 1
    }));
    assert!(f
        .next_event(Duration::from_millis(200))
        .expect("no error")
        .is_none());
    assert_eq!(fake.sem_value(0), 0, "every announced frame released");
    assert_eq!(f.counters().frames(), 0);
}

#[test]
fn garbage_or_silence_on_the_socket() {
    let _turn = serial();
    // A server that answers with something else entirely.
    let sock = SockPath::new("garbage");
    let l = UnixListener::bind(&sock.path).expect("bind");
    let mut f = follow(&sock);
    let (mut s, _) = l.accept().expect("accept");
    s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(3);
    let e = loop {
        match f.next_event(deadline.saturating_duration_since(Instant::now())) {
            Err(e) => break e,
            Ok(Some(FollowerEvent::Waiting(_))) => {}
            other => panic!("expected an error, got {other:?}"),
        }
    };
    assert!(matches!(e, ShmdataError::Protocol { .. }), "{e}");
    assert!(
        e.to_string().contains("unknown message type") && e.to_string().contains("48 54"),
        "{e}"
    );
    drop(s);

    // A server that accepts and says nothing: a wait, said once.
    let sock = SockPath::new("silent");
    let l = UnixListener::bind(&sock.path).expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let mut f = ShmdataFollower::open(
        &sock.path,
        FollowerOptions {
            greeting_timeout: Duration::from_millis(200),
            ..FollowerOptions::default()
        },
    )
    .expect("open");
    let mut held = Vec::new();
    let start = Instant::now();
    let mut waits = Vec::new();
    while start.elapsed() < Duration::from_millis(1500) {
        while let Ok((s, _)) = l.accept() {
            held.push(s);
        }
        if let Some(ev) = f.next_event(Duration::from_millis(20)).expect("no error") {
            waits.push(format!("{ev:?}"));
        }
    }
    assert_eq!(waits, ["Waiting(NoGreeting)"]);
    assert!(
        held.len() >= 3,
        "it kept trying ({} connections)",
        held.len()
    );
}

#[test]
fn unconvertible_caps_are_one_clear_error() {
    let _turn = serial();
    let dir = temp_dir("gray");
    let sock = SockPath::new("gray");
    let mut f = follow(&sock);
    let _writer = Proc::gst(
        "writer",
        &format!(
            "videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48 ! \
             shmdatasink socket-path={}",
            sock.as_str()
        ),
        &dir,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        match f.next_event(deadline.saturating_duration_since(Instant::now())) {
            Err(e) => break e,
            Ok(Some(FollowerEvent::Waiting(_))) => {}
            other => panic!("expected an error, got {other:?}"),
        }
    };
    let text = e.to_string();
    eprintln!("{text}");
    assert!(matches!(e, ShmdataError::UnsupportedCaps { .. }));
    assert!(
        text.contains("format=(string)GRAY8") && text.contains("pixel format GRAY8 is not one of"),
        "{text}"
    );
    assert!(matches!(
        f.next_event(Duration::from_millis(100)),
        Err(ShmdataError::ReaderStopped { .. })
    ));
}

#[test]
fn pstream_writer_to_pstream_follower_keeps_pictures_sizes_and_samples() {
    let _turn = serial();
    let sock = SockPath::new("loop");
    let mut w = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect("bind");
    let mut f = follow(&sock);
    for (size, first) in [((320u32, 240u32), 0u32), ((322, 242), 100)] {
        w.write_video(&picture(size.0, size.1, first))
            .expect("write");
        if first > 0 {
            assert!(matches!(
                next(&mut f, Duration::from_secs(2)),
                FollowerEvent::WriterGone
            ));
        }
        let (c, changed) = expect_connected(&mut f, Duration::from_secs(5));
        assert!(changed);
        assert_eq!((video_caps(c).width, video_caps(c).height), size);
        // Its acknowledgement makes it a follower the next frame goes to.
        let counters = w.counters();
        assert!(wait_until(Duration::from_secs(2), || counters.followers() == 1));
        let mut got = 0;
        // The picture written with the new caps reaches the follower too
        // when its acknowledgement beat the write (a loaded machine): it
        // must then be that picture, whole, ahead of the others.
        let mut early = Some(picture(size.0, size.1, first));
        for i in first + 1..first + 20 {
            std::thread::sleep(Duration::from_millis(20));
            w.write_video(&picture(size.0, size.1, i)).expect("write");
            let mut v = next_video(&mut f, Duration::from_secs(1));
            if let Some(e) = early.take() {
                if v.data()[..] == e.data()[..] {
                    v = next_video(&mut f, Duration::from_secs(1));
                }
            }
            let want = picture(size.0, size.1, i);
            assert!(v.data()[..] == want.data()[..], "{size:?} frame {i}");
            got += 1;
        }
        assert_eq!(got, 19);
    }
    drop(w);
    assert!(matches!(
        next(&mut f, Duration::from_secs(2)),
        FollowerEvent::WriterGone
    ));

    let sock = SockPath::new("loop-audio");
    let mut w = ShmdataWriter::bind(&sock.path, WriterOptions::default()).expect("bind");
    let mut f = follow(&sock);
    let block = |n: usize| AudioBlock {
        sample_rate: 48_000,
        channels: 2,
        samples: (0..960)
            .map(|i| ((n * 960 + i) as f32 / 10_000.0).sin())
            .collect(),
        capture: Instant::now(),
        pts: Duration::from_millis(n as u64 * 10),
    };
    w.write_audio(&block(0)).expect("write");
    let (c, _) = expect_connected(&mut f, Duration::from_secs(5));
    assert_eq!(
        c,
        Caps::Audio(AudioCaps {
            format: SampleFormat::F32Le,
            rate: 48_000,
            channels: 2
        })
    );
    let counters = w.counters();
    assert!(wait_until(Duration::from_secs(2), || counters.followers() == 1));
    // As for video: the block that set the caps reaches a follower that was
    // there before it (the writer greets it and waits for its answer), and
    // must then be that block, whole, ahead of the others.
    let mut early = Some(block(0));
    for n in 1..30 {
        std::thread::sleep(Duration::from_millis(10));
        w.write_audio(&block(n)).expect("write");
        let mut event = next(&mut f, Duration::from_secs(1));
        if let (Some(e), FollowerEvent::Audio(b)) = (early.take(), &event) {
            if b.samples == e.samples {
                event = next(&mut f, Duration::from_secs(1));
            }
        }
        match event {
            FollowerEvent::Audio(b) => assert!(b.samples == block(n).samples, "block {n}"),
            other => panic!("expected audio, got {other:?}"),
        }
    }
}
