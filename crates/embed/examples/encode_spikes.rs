//! Where openh264's slow pictures come from: encodes a Y4M file at its
//! frame rate (paced, as `pstream send` does) and, for every picture, takes
//! the wall time of the encode call, the thread's CPU time in it
//! (`CLOCK_THREAD_CPUTIME_ID`; openh264 runs on the calling thread with one
//! thread) and the difference, time spent waiting for a CPU, and whether it
//! was an IDR. A slow picture with little waiting is the encoder's own work
//! (an IDR, a scene change); one with much waiting is the scheduler.
//!
//! ```sh
//! cargo run --release -p pstream-embed --example encode_spikes -- in.y4m 2500 fast
//! NO_PACE=1 cargo run ...   # as fast as it goes, not at the file's rate
//! ```

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_codec::h264::{H264Config, H264Encoder, H264Preset};
use pstream_core::VideoFrame;
use pstream_embed::bench::stats::CpuClock;

struct Sample {
    wall_us: f64,
    run_us: f64,
    wait_us: f64,
    idr: bool,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, s: &[&Sample]) {
    let mut w: Vec<f64> = s.iter().map(|x| x.wall_us / 1e3).collect();
    let mut r: Vec<f64> = s.iter().map(|x| x.run_us / 1e3).collect();
    let mut q: Vec<f64> = s.iter().map(|x| x.wait_us / 1e3).collect();
    println!(
        "{name:>10} n={:4}  wall ms median {:6.2} p99 {:6.2} max {:6.2} | on-CPU median {:6.2} p99 {:6.2} max {:6.2} | waiting p99 {:6.2} max {:6.2}",
        s.len(),
        pct(&mut w, 0.5),
        pct(&mut w, 0.99),
        pct(&mut w, 1.0),
        pct(&mut r, 0.5),
        pct(&mut r, 0.99),
        pct(&mut r, 1.0),
        pct(&mut q, 0.99),
        pct(&mut q, 1.0),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: encode_spikes FILE.y4m [KBPS] [fast|balanced|quality]")?;
    let kbps: u32 = args.get(2).map_or(Ok(2500), |s| s.parse())?;
    let preset = match args.get(3).map(String::as_str) {
        None | Some("fast") => H264Preset::Fast,
        Some("balanced") => H264Preset::Balanced,
        Some("quality") => H264Preset::Quality,
        Some(other) => return Err(format!("unknown preset {other}").into()),
    };
    let mut input = BufReader::new(std::fs::File::open(path)?);
    let mut header = String::new();
    input.read_line(&mut header)?;
    let field = |tag: char| {
        header
            .split_whitespace()
            .find_map(|f| f.strip_prefix(tag).map(str::to_string))
            .ok_or(format!("no {tag} in the Y4M header"))
    };
    let (width, height): (u32, u32) = (field('W')?.parse()?, field('H')?.parse()?);
    let rate = field('F')?;
    let (num, den) = rate.split_once(':').ok_or("bad F")?;
    let fps = num.parse::<f64>()? / den.parse::<f64>()?;
    let mut enc = H264Encoder::new(H264Config {
        width,
        height,
        fps: fps as f32,
        bitrate_bps: kbps * 1000,
        keyint_frames: (2.0 * fps).round() as u32,
        threads: 1,
        preset,
    })?;
    let len = width as usize * height as usize * 3 / 2;
    let period = Duration::from_secs_f64(1.0 / fps);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut line = String::new();
    for n in 0u32.. {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let mut data = vec![0u8; len];
        input.read_exact(&mut data)?;
        if let Some(wait) = (start + period * n)
            .checked_duration_since(Instant::now())
            .filter(|_| std::env::var_os("NO_PACE").is_none())
        {
            std::thread::sleep(wait);
        }
        let frame = VideoFrame::new(width, height, Bytes::from(data), Instant::now(), period * n)?;
        let c0 = CpuClock::Thread.now().ok_or("no thread CPU clock")?;
        let t0 = Instant::now();
        let unit = enc.encode(&frame)?;
        let wall = t0.elapsed();
        let c1 = CpuClock::Thread.now().ok_or("no thread CPU clock")?;
        let run = c1.saturating_sub(c0);
        samples.push(Sample {
            wall_us: wall.as_secs_f64() * 1e6,
            run_us: run.as_secs_f64() * 1e6,
            wait_us: wall.saturating_sub(run).as_secs_f64() * 1e6,
            idr: unit.is_some_and(|u| u.keyframe),
        });
    }
    let all: Vec<&Sample> = samples.iter().collect();
    let idr: Vec<&Sample> = samples.iter().filter(|s| s.idr).collect();
    let p: Vec<&Sample> = samples.iter().filter(|s| !s.idr).collect();
    println!("{width}x{height} {fps} fps, {kbps} kbit/s, {preset:?}, one thread, paced");
    summary("all", &all);
    summary("IDR", &idr);
    summary("P", &p);
    let mut walls: Vec<f64> = samples.iter().map(|s| s.wall_us).collect();
    let p99 = pct(&mut walls, 0.99);
    let slow: Vec<&Sample> = samples.iter().filter(|s| s.wall_us >= p99).collect();
    let slow_idr = slow.iter().filter(|s| s.idr).count();
    let slow_waited = slow.iter().filter(|s| s.wait_us > 0.25 * s.wall_us).count();
    println!(
        "pictures at or above the p99 ({:.2} ms): {}, of which IDR {}, and {} spent over a quarter of their wall time waiting for a CPU",
        p99 / 1e3,
        slow.len(),
        slow_idr,
        slow_waited
    );
    Ok(())
}
